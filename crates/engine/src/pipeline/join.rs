//! The merge-join of a full diff: rows paired by key, each pair merged three
//! ways against its merge base (`merge.rs`; a key without a base follows the
//! first-contact rules), and the writes queued per app.
//!
//! Merge bases are looked up a window of keys at a time, and only when the
//! partition has any (a first sync never asks).
//!
//! The first pass of a cycle (a map whose lookups refer to itself or to a map
//! that refers back) only creates the rows one app lacks and has no base for,
//! without the cycle's lookup columns: everything else waits for the second
//! pass, which merges whole rows once every referenced row exists, so a
//! conflict is settled on the whole row as in any other map. A key held by one app only
//! that has a base was deleted in the other app or left its filter there:
//! such keys are set aside (`deletes.rs`) and settled after the join, once the
//! mass-delete guard has counted them.

use super::deletes::{self, Candidates};
use super::record::Record;
use super::spool::Entry;
use super::write::{BaseChange, BaseUpdate, PendingOp};
use super::Context;
use crate::decide::CommonRow;
use crate::merge::{merge, Merge as Merged, MergeRules, SideNow};
use crate::pipeline::company::Company;
use crate::shape::MapShape;
use crate::side::Side;
use crate::EngineError;
use dualsync_model::column_hashes;
use dualsync_model::row::key_to_json;
use dualsync_model::Value;
use dualsync_state::{Counts, NewConflict, NewError, StateStore};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

/// Whether two rows of a key hold the same content (and no dangling lookup).
fn in_step(a: &CommonRow, b: &CommonRow) -> bool {
    a.unresolved.is_empty() && b.unresolved.is_empty() && a.values.iter().zip(&b.values).all(|(x, y)| x.same_as(y))
}

/// The rows of one key, as both apps hold them (None: absent).
pub(crate) type Pair = [Option<CommonRow>; 2];

pub(crate) struct Join<'a> {
    pub ctx: &'a Context,
    pub shape: &'a MapShape,
    pub company: &'a Option<Company>,
    pub company_shown: &'a str,
    senders: Vec<SyncSender<Vec<PendingOp>>>,
    pub rules: MergeRules,
    /// Where merge bases come from; None when the partition has none.
    bases: Option<Arc<StateStore>>,
    /// Pairs waiting for their bases.
    window: Vec<Pair>,
    pending: [Vec<PendingOp>; 2],
    unchanged: Vec<(String, Vec<u8>)>,
    forgotten: Vec<String>,
    refused: Vec<NewError>,
    conflicts: Vec<NewConflict>,
    candidates: Candidates,
}

impl<'a> Join<'a> {
    pub fn new(
        ctx: &'a Context,
        shape: &'a MapShape,
        company: &'a Option<Company>,
        company_shown: &'a str,
        senders: Vec<SyncSender<Vec<PendingOp>>>,
    ) -> Result<Self, EngineError> {
        let bases = match &ctx.store {
            Some(_) if ctx.without_bases => None,
            Some(store) if store.partition_key_count(&shape.name, company_shown)? > 0 => Some(store.clone()),
            _ => None,
        };
        Ok(Join {
            ctx,
            shape,
            company,
            company_shown,
            senders,
            rules: shape.merge_rules(),
            bases,
            window: Vec::new(),
            pending: [Vec::new(), Vec::new()],
            unchanged: Vec::new(),
            forgotten: Vec::new(),
            refused: Vec::new(),
            conflicts: Vec::new(),
            candidates: Candidates::default(),
        })
    }

    /// Whether the partition has merge bases (it was synced before).
    pub fn has_bases(&self) -> bool {
        self.bases.is_some()
    }

    /// One key's rows, from the join.
    pub fn pair(&mut self, rows: Pair, counts: &mut Counts) -> Result<(), EngineError> {
        if self.shape.is_first_pass() && rows.iter().all(Option::is_some) {
            return Ok(()); // both apps hold it: the second pass merges it
        }
        if self.bases.is_none() {
            let m = merge(&self.rules, rows.map(|row| SideNow { row, ..SideNow::default() }), None);
            return self.settle(m, None, None, counts);
        }
        // Both apps hold the same row: whatever its base, the merge writes nothing and takes the
        // row as the new base. Most keys of a repeated sync are such: they need no look-up.
        if let [Some(a), Some(b)] = &rows {
            if in_step(a, b) {
                counts.unchanged += 1;
                let key = self.shape.key_values(&a.values);
                self.unchanged.push((key_to_json(&key), column_hashes(&a.values)));
                return self.flush(false);
            }
        }
        self.window.push(rows);
        if self.window.len() >= self.shape.batch_size {
            self.merge_window(counts)?;
        }
        Ok(())
    }

    /// Looks up the window's bases and merges each pair.
    fn merge_window(&mut self, counts: &mut Counts) -> Result<(), EngineError> {
        let window = std::mem::take(&mut self.window);
        if window.is_empty() {
            return Ok(());
        }
        let store = self.bases.clone().expect("a window only with bases");
        let keys: Vec<Vec<Value>> = window.iter().map(|rows| self.key_of(rows)).collect();
        let json: Vec<String> = keys.iter().map(|k| key_to_json(k)).collect();
        let mut bases = store.key_bases(&self.shape.name, self.company_shown, &json)?;
        for ((rows, key), json) in window.into_iter().zip(keys).zip(json) {
            let base = bases.remove(&json);
            if self.shape.is_first_pass() && base.is_some() {
                continue; // synced before: the second pass merges it
            }
            match (&rows, base) {
                ([Some(_), None], Some(base)) | ([None, Some(_)], Some(base)) => {
                    let absent = rows.iter().position(Option::is_none).expect("one side absent") as u8;
                    self.candidates.push(Entry { tag: absent, key, base })?;
                }
                (_, base) => {
                    let m = merge(&self.rules, rows.map(|row| SideNow { row, ..SideNow::default() }), base.as_deref());
                    self.settle(m, base, Some(json), counts)?;
                }
            }
        }
        Ok(())
    }

    /// Queues a merged key's writes and records what the merge decided.
    /// `old`: the key's base before (of the whole map); `json`: its key as stored, where known.
    pub fn settle(&mut self, m: Merged, old: Option<Vec<u8>>, json: Option<String>, counts: &mut Counts) -> Result<(), EngineError> {
        let Merged { decision, base: new, conflict } = m;
        // The key as stored is made only where needed: not for the inserts and updates of a first sync.
        let mut json = json;
        let mut stored_key = |key: &[Value]| json.get_or_insert_with(|| key_to_json(key)).clone();
        if let Some(c) = &conflict {
            counts.conflicts += 1;
            self.conflicts.push(self.shape.conflict_record(self.company_shown, stored_key(&decision.key), c));
        }
        for refused in &decision.refused {
            counts.failed[refused.target] += 1;
            self.refused.push(self.shape.refused_error(self.company_shown, stored_key(&decision.key), refused));
        }
        // A refused write leaves the old base: the app that missed it must still look behind.
        let new = if decision.refused.is_empty() { new.map(|b| self.shape.whole_base(b)) } else { old.clone() };
        let key = decision.key;
        match decision.writes {
            [Some(a), Some(b)] => {
                let (ua, ub) = BaseUpdate::both(BaseChange { new, old });
                self.pending[0].push(PendingOp { key: key.clone(), write: a, base: ua });
                self.pending[1].push(PendingOp { key, write: b, base: ub });
            }
            [Some(w), None] => self.pending[0].push(PendingOp { key, write: w, base: BaseUpdate::One(BaseChange { new, old }) }),
            [None, Some(w)] => self.pending[1].push(PendingOp { key, write: w, base: BaseUpdate::One(BaseChange { new, old }) }),
            [None, None] => {
                if decision.refused.is_empty() && conflict.is_none() {
                    counts.unchanged += 1;
                }
                match new {
                    Some(base) => self.unchanged.push((stored_key(&key), base)),
                    // Gone from both apps: nothing to keep (a refused key without a base has none to keep either).
                    None if old.is_some() => self.forgotten.push(stored_key(&key)),
                    None => {}
                }
            }
        }
        self.flush(false)
    }

    /// The join is done: merges the last window and settles the keys set
    /// aside as deletes (unless the mass-delete guard stops them), then sends
    /// everything still queued.
    pub fn finish(mut self, counts: &mut Counts) -> Result<(), EngineError> {
        self.merge_window(counts)?;
        self.flush(true)?;
        let candidates = std::mem::take(&mut self.candidates);
        if !candidates.is_empty() {
            deletes::settle(&mut self, candidates, counts)?;
        }
        self.flush(true)
    }

    fn key_of(&self, rows: &Pair) -> Vec<Value> {
        let row = rows.iter().flatten().next().expect("a pair holds a row");
        self.shape.key_values(&row.values)
    }

    /// Sends what is due: full batches, or everything at the end.
    pub fn flush(&mut self, all: bool) -> Result<(), EngineError> {
        let size = self.shape.batch_size;
        for side in Side::BOTH {
            if self.pending[side].len() >= self.shape.write_batch[side] || (all && !self.pending[side].is_empty()) {
                let ops = std::mem::take(&mut self.pending[side]);
                self.senders[side.index()].send(ops).map_err(|_| EngineError::Data("a writer stopped".into()))?;
            }
        }
        let (map, company) = (&self.shape.name, self.company_shown);
        if self.unchanged.len() >= size * 4 || (all && !self.unchanged.is_empty()) {
            let keys = std::mem::take(&mut self.unchanged);
            self.ctx.send(Record::Synced { map: map.clone(), company: company.to_string(), keys });
        }
        if self.forgotten.len() >= size || (all && !self.forgotten.is_empty()) {
            let keys = std::mem::take(&mut self.forgotten);
            self.ctx.send(Record::Forget { map: map.clone(), company: company.to_string(), keys });
        }
        if self.refused.len() >= 1000 || (all && !self.refused.is_empty()) {
            self.ctx.send(Record::Errors(std::mem::take(&mut self.refused)));
        }
        if !self.conflicts.is_empty() && (self.conflicts.len() >= 1000 || all) {
            self.ctx.send(Record::Conflicts(std::mem::take(&mut self.conflicts)));
        }
        Ok(())
    }

    /// Errors found by the join itself (duplicate keys), for the error log.
    pub fn refuse(&mut self, error: NewError) {
        self.refused.push(error);
    }
}
