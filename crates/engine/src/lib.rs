//! The sync engine: turns maps into reads, decisions and batched writes.
//!
//! Data flow of one (map, company) partition:
//!
//! ```text
//!  app 0 ──scan──▶ reader 0 ──┐                 ┌──▶ writer 0 ──▶ app 0
//!                             ├─▶ merge-join ───┤
//!  app 1 ──scan──▶ reader 1 ──┘   (decide.rs)   └──▶ writer 1 ──▶ app 1
//!                                      │                 │
//!                                      └──▶ recorder ◀───┘──▶ state store
//! ```
//!
//! Readers translate rows into the map's common form (values and lookups as
//! the first app spells them); the merge decides per key what to write;
//! writers translate back, resolve lookups and write in batches.

pub mod apps;
pub mod bootstrap;
pub mod check;
mod decide;
mod error;
pub mod live;
mod lookup;
pub mod merge;
pub mod migrate;
pub mod order;
pub mod plan;
mod shape;
pub mod side;
pub mod sync;

pub use apps::{Apps, Pooled};
pub use decide::{decide, CommonRow, Decision, Rules, Write};
pub use error::EngineError;
pub use shape::MapShape;
pub use side::Side;
