//! `plan`'s sink: each batch of a side is converted, checked against the
//! target table and written in a transaction that is rolled back (which also
//! measures the write rate); problems go where a sync's errors would.

use super::check::{check, Target};
use super::Probes;
use crate::apps::in_app;
use crate::lookup::Resolver;
use crate::pipeline::company::Company;
use crate::pipeline::record::Record;
use crate::pipeline::write::{PendingOp, TargetWriter};
use crate::pipeline::{Context, SideSink};
use crate::shape::MapShape;
use crate::side::Side;
use crate::EngineError;
use dualsync_state::Counts;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

pub(crate) struct DryRun {
    pub probes: Arc<Probes>,
}

impl SideSink for DryRun {
    fn drain(
        &self,
        ctx: &Context,
        shape: &MapShape,
        side: Side,
        company: Option<Company>,
        rx: &Mutex<Receiver<Vec<PendingOp>>>,
    ) -> Result<Counts, EngineError> {
        let (app, other_app) = (&shape.apps[side], &shape.apps[side.other()]);
        let mut other_resolver = Resolver::new(side.other(), company.clone());
        let mut writer = TargetWriter::new(shape, side, company);
        let (mut conn, mut other) = (ctx.apps.connect(app)?, ctx.apps.connect(other_app)?);
        let schema = conn.describe(&shape.tables[side]).map_err(in_app(&ctx.apps, app))?;
        let mut would = Counts::default();
        while let Ok(ops) = rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            let target = Target { conn: conn.as_mut(), other: other.as_mut(), other_resolver: &mut other_resolver, schema: &schema };
            let checked = check(&mut writer, target, shape, side, ops, true).map_err(in_app(&ctx.apps, app))?;
            if let Some((rows, seconds)) = checked.probe {
                self.probes.record(app, &shape.tables[side], rows, seconds);
            }
            would.inserted[side] += checked.would_insert;
            would.updated[side] += checked.would_update;
            would.deleted[side] += checked.would_delete;
            would.failed[side] += checked.problems.len() as u64;
            if !checked.problems.is_empty() {
                ctx.send(Record::Errors(checked.problems));
            }
        }
        Ok(would)
    }
}
