//! The sync engine: turns maps into reads, decisions and batched writes.
//!
//! - `pipeline/`: one (map, company) partition: read → merge-join → write →
//!   record, with the sink of each side handed in (`sync` writes, `plan` checks).
//! - `merge.rs`, `decide.rs`: the pure decision for one key (the rule book,
//!   docs/reconciliation.md); `side.rs`: the map's two apps.
//! - `sync/`: `dualsync sync`, `retry`, `resync`: maps in lookup order
//!   (`order.rs`), companies in parallel; which maps are diffed whole and
//!   which reconcile captured changes (`sync_modes`).
//! - `plan/`: the same pipeline, dry. `live/`: capture, cursors, live rounds.

pub mod apps;
pub mod bootstrap;
pub mod check;
mod decide;
mod error;
pub mod link;
pub mod live;
mod lookup;
pub mod merge;
pub mod migrate;
pub mod order;
mod pipeline;
pub mod plan;
mod redact;
mod shape;
pub mod side;
pub mod status;
pub mod sync;

pub use apps::{Apps, Pooled};
pub use decide::{decide, CommonRow, Decision, Rules, Write};
pub use error::EngineError;
pub use shape::MapShape;
pub use side::Side;
