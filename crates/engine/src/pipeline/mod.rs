//! The pipeline of one (map, company) partition, shared by `sync`, `plan`
//! and live sync:
//!
//! ```text
//!  app A ──scan──▶ read.rs ──┐                 ┌──▶ sink A ──▶ app A
//!                            ├─▶ join.rs ──────┤
//!  app B ──scan──▶ read.rs ──┘  (merge.rs,     └──▶ sink B ──▶ app B
//!                                deletes.rs)          │
//!                                     └──▶ record.rs ◀┘──▶ state store
//! ```
//!
//! Readers translate rows into the map's common form; the join pairs them by
//! key and merges each pair against its merge base; a side's sink gets the
//! decided writes: `AppWriter` writes them (`write.rs`), `plan` hands in a
//! dry run that checks them; the recorder stores bases, errors and conflicts.
//! Live sync reads changed keys instead of scanning, and uses the same
//! reader, merge and writer.

pub(crate) mod chunks;
pub mod company;
pub(crate) mod deletes;
pub(crate) mod join;
pub(crate) mod partition;
pub(crate) mod read;
pub(crate) mod record;
mod spool;
pub(crate) mod write;

use crate::apps::in_app;
use crate::shape::MapShape;
use crate::side::Side;
use crate::{Apps, EngineError};
use company::Company;
use dualsync_connectors::Selection;
use dualsync_model::Value;
use dualsync_state::{Counts, StateStore};
use record::Record;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use write::{PendingOp, TargetWriter};

/// Where a side's decided writes go. Batches arrive on `rx` (several sinks of
/// a side may take them in turn); returns what was written (or would be).
pub(crate) trait SideSink: Send + Sync {
    fn drain(
        &self,
        ctx: &Context,
        shape: &MapShape,
        side: Side,
        company: Option<Company>,
        rx: &Mutex<Receiver<Vec<PendingOp>>>,
    ) -> Result<Counts, EngineError>;
}

/// The sink of a sync: each batch written into the app in its own transaction.
pub(crate) struct AppWriter;

impl SideSink for AppWriter {
    fn drain(
        &self,
        ctx: &Context,
        shape: &MapShape,
        side: Side,
        company: Option<Company>,
        rx: &Mutex<Receiver<Vec<PendingOp>>>,
    ) -> Result<Counts, EngineError> {
        let app = &shape.apps[side];
        let mut conn: Option<crate::Pooled> = None;
        let mut writer = TargetWriter::new(shape, side, company);
        let mut written = Counts::default();
        // Writers of a side take batches in turn; each batch is its own transaction.
        while let Ok(ops) = rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            // Connect on the first batch: a side that receives nothing is never opened for writing.
            let c = match &mut conn {
                Some(c) => c,
                None => conn.insert(ctx.apps.connect(app)?),
            };
            let applied = writer.apply(c.as_mut(), shape, ops).map_err(in_app(&ctx.apps, app))?;
            written.inserted[side] += applied.inserted;
            written.updated[side] += applied.updated;
            written.deleted[side] += applied.deleted;
            written.failed[side] += applied.errors.len() as u64;
            let (map, company) = (shape.name.clone(), writer.company_shown().to_string());
            if !applied.synced.is_empty() {
                ctx.send(Record::Synced { map: map.clone(), company: company.clone(), keys: applied.synced });
            }
            if !applied.forgotten.is_empty() {
                ctx.send(Record::Forget { map, company, keys: applied.forgotten });
            }
            if !applied.errors.is_empty() {
                ctx.send(Record::Errors(applied.errors));
            }
        }
        Ok(written)
    }
}

/// What every partition of a run shares.
pub(crate) struct Context {
    pub apps: Apps,
    pub recorder: SyncSender<Record>,
    pub rows_done: Arc<AtomicU64>,
    /// Where each side's decided writes go: the app (sync) or a dry run (plan).
    pub sink: Arc<dyn SideSink>,
    /// Where the merge bases are read (None: there are none yet).
    pub store: Option<Arc<StateStore>>,
    /// The run confirmed deletes past the mass-delete guard.
    pub allow_deletes: bool,
    /// The chunk of a shared sync this context syncs: its bases and errors are noted as its.
    pub chunk: Option<i64>,
    /// No key of the partition can have a merge base (a fresh chunk): none are looked up.
    pub without_bases: bool,
}

impl Context {
    pub(crate) fn send(&self, record: Record) {
        let record = match (self.chunk, record) {
            (Some(chunk), record @ (Record::Synced { .. } | Record::Errors(_))) => Record::InChunk(chunk, Box::new(record)),
            (_, record) => record,
        };
        // The recorder only stops when the run ends; a failed store is reported by finish().
        let _ = self.recorder.send(record);
    }

    /// Waits until the recorder has stored everything sent so far: the next
    /// stage (a cycle's second pass) reads the merge bases this one recorded.
    /// False when the store refused some of it (the run fails then).
    pub(crate) fn wait_for_records(&self) -> bool {
        let (done, stored) = std::sync::mpsc::channel();
        self.recorder.send(Record::Barrier(done)).is_ok() && stored.recv().unwrap_or(false)
    }

    /// The same run, syncing a unit of work of a shared sync: writing into
    /// the apps under its fence, and noting its records as its chunk's.
    pub(crate) fn for_unit(&self, unit: &dualsync_state::Unit) -> Context {
        Context {
            apps: self.apps.fenced(crate::apps::fence_of(&unit.fence)),
            recorder: self.recorder.clone(),
            rows_done: self.rows_done.clone(),
            sink: self.sink.clone(),
            store: self.store.clone(),
            allow_deletes: self.allow_deletes,
            chunk: unit.chunk.as_ref().map(|_| unit.id),
            without_bases: unit.chunk.as_ref().is_some_and(|c| c.fresh),
        }
    }
}

/// The companies present on either side (all of them, in key order), or one
/// partition for a global map. Rows without a company are counted and reported.
pub(crate) fn companies_of(
    ctx: &Context,
    shape: &MapShape,
    only: &[String],
    warnings: &mut Vec<String>,
) -> Result<Vec<Option<Value>>, EngineError> {
    if shape.company[0].is_none() {
        return Ok(vec![None]);
    }
    let mut all: Vec<Value> = Vec::new();
    for side in Side::BOTH {
        let app = &shape.apps[side];
        let column = shape.company[side].as_ref().expect("company map");
        let mut conn = ctx.apps.connect(app)?;
        let selection =
            Selection { table: shape.tables[side].clone(), filter: shape.filter[side].clone(), equals: Vec::new(), range: None };
        let values = conn.distinct(&selection, column).map_err(in_app(&ctx.apps, app))?;
        if values.iter().any(Value::is_null) {
            let mut no_company = selection.clone();
            no_company.equals.push((column.clone(), Value::Null));
            let n = conn.count(&no_company).map_err(in_app(&ctx.apps, app))?;
            warnings.push(format!(
                "map {}: {n} row{} of {app}.{} {} no company ({column} is NULL) and take no part; give them a company to sync them",
                shape.name,
                if n == 1 { "" } else { "s" },
                shape.tables[side],
                if n == 1 { "has" } else { "have" },
            ));
        }
        let (codes, unknown) = company::codes_of(&ctx.apps, shape, side, values.into_iter().filter(|v| !v.is_null()).collect())?;
        if unknown > 0 {
            let lookup = shape.company_lookup[side].as_ref().expect("ids only with a company lookup");
            warnings.push(format!(
                "map {}: {unknown} company value{} of {app}.{}.{column} refer to no row of {app}.{} (map {}); their rows take no part",
                shape.name,
                if unknown == 1 { "" } else { "s" },
                shape.tables[side],
                lookup.table,
                lookup.map
            ));
        }
        all.extend(codes);
    }
    all.sort_by(|a, b| a.key_cmp(b));
    all.dedup_by(|a, b| a.same_as(b));
    if !only.is_empty() {
        all.retain(|v| only.iter().any(|c| c.as_str() == v.display()));
    }
    Ok(all.into_iter().map(Some).collect())
}
