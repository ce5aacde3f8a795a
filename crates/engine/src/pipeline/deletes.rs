//! Keys of a full diff that one app holds and the other does not, although
//! both held them at the last sync (they have a merge base): deleted in that
//! app, or gone out of its filter. They are set aside during the join and
//! settled here, after it:
//!
//! 1. The mass-delete guard: deletes into an app may not exceed the map's
//!    `max_delete_percent` of its rows in the partition, nor take every row,
//!    unless the run allows it (`sync --allow-deletes`). When the keys set
//!    aside could exceed that, they are merged once without writing to count
//!    the real deletes; if those still exceed it, nothing of them is written
//!    and the partition stops with what to do.
//! 2. Each key is read again on both apps: the holder's row as it is now, and
//!    the other app's row without the map's filter. A row found there only
//!    left the filter, which deletes nothing (as in live sync); a row found
//!    nowhere was deleted, and the merge applies `on_delete` and `conflict`.

use super::join::Join;
use super::read::SideReader;
use super::spool::{Entry, Spool};
use crate::apps::in_app;
use crate::decide::{CommonRow, Write};
use crate::merge::{merge, Merge, SideNow};
use crate::shape::MapShape;
use crate::side::Side;
use crate::EngineError;
use dualsync_connectors::Selection;
use dualsync_model::{content_hash, Value};
use dualsync_state::Counts;
use std::collections::{HashMap, HashSet};

/// The keys set aside, with how many are absent in each app.
#[derive(Default)]
pub struct Candidates {
    spool: Spool,
    absent_in: [u64; 2],
}

impl Candidates {
    /// A key with a base that the app `entry.tag` lacks.
    pub fn push(&mut self, entry: Entry) -> Result<(), EngineError> {
        self.absent_in[entry.tag as usize] += 1;
        Ok(self.spool.push(entry)?)
    }

    pub fn is_empty(&self) -> bool {
        self.spool.is_empty()
    }
}

/// The guard of one partition: `rows[s]` is what app `s` holds of it.
pub(crate) struct Guard {
    percent: u8,
    allowed: bool,
    rows: [u64; 2],
}

impl Guard {
    pub fn new(shape: &MapShape, allowed: bool, rows: [u64; 2]) -> Guard {
        Guard { percent: shape.max_delete_percent, allowed, rows }
    }

    /// Whether deleting `n` rows from app `side` goes past the guard.
    pub fn trips(&self, side: Side, n: u64) -> bool {
        let rows = self.rows[side];
        !self.allowed && n > 0 && (n >= rows || n * 100 > u64::from(self.percent) * rows)
    }

    /// Why the deletes stop, and what to do.
    pub fn stop(&self, shape: &MapShape, company: &str, side: Side, n: u64) -> EngineError {
        let rows = self.rows[side];
        let (app, other) = (&shape.apps[side], &shape.apps[side.other()]);
        let share = if n >= rows {
            "every row".to_string()
        } else {
            format!("{}%, more than max_delete_percent = {}", n * 100 / rows.max(1), self.percent)
        };
        let company = if company.is_empty() { String::new() } else { format!(", company {company}") };
        EngineError::DeleteGuard(format!(
            "map {}{company}: the sync would delete {n} of the {rows} rows of {app}.{} ({share}) because {other}.{} no longer holds them; \
             nothing was deleted. If {other}'s table was emptied, its filter or company is wrong, or it points at the wrong database, fix that \
             and sync again; if the deletes are meant, run `dualsync sync --map {} --allow-deletes` (or raise max_delete_percent)",
            shape.name, shape.tables[side], shape.tables[side.other()], shape.name
        ))
    }
}

/// Keys per read when settling.
const CHUNK: usize = 1000;

/// Settles the keys set aside by the join (see the module's notes).
pub(crate) fn settle(join: &mut Join<'_>, mut candidates: Candidates, counts: &mut Counts) -> Result<(), EngineError> {
    let guard = Guard::new(join.shape, join.ctx.allow_deletes, counts.read);
    // Deletes into app s come from keys app 1-s lacks: at most that many.
    let could_trip = Side::BOTH.into_iter().any(|s| guard.trips(s, candidates.absent_in[s.other()]));
    if could_trip {
        let mut deletes = [0u64; 2];
        candidates.spool.for_each_chunk(CHUNK, |entries| -> Result<(), EngineError> {
            for (m, _, _) in merged(join, entries)? {
                for (s, w) in m.decision.writes.iter().enumerate() {
                    deletes[s] += matches!(w, Some(Write::Delete)) as u64;
                }
            }
            Ok(())
        })?;
        if let Some(s) = Side::BOTH.into_iter().find(|&s| guard.trips(s, deletes[s])) {
            return Err(guard.stop(join.shape, join.company_shown, s, deletes[s]));
        }
    }
    candidates.spool.for_each_chunk(CHUNK, |entries| -> Result<(), EngineError> {
        for (m, base, json) in merged(join, entries)? {
            join.settle(m, Some(base), Some(json), counts)?;
        }
        Ok(())
    })
}

/// Reads a chunk of set-aside keys again and merges each: (merge, old base, key as stored).
fn merged(join: &Join<'_>, entries: Vec<Entry>) -> Result<Vec<(Merge, Vec<u8>, String)>, EngineError> {
    let mut out = Vec::with_capacity(entries.len());
    for absent in Side::BOTH {
        let these: Vec<Entry> = entries.iter().filter(|e| e.tag as usize == absent.index()).cloned().collect();
        if these.is_empty() {
            continue;
        }
        let holder = absent.other();
        let keys: Vec<Vec<Value>> = these.iter().map(|e| e.key.clone()).collect();
        let mut held = rows_by_key(join, holder, true, keys.clone())?;
        let elsewhere: HashSet<[u8; 16]> = rows_by_key(join, absent, false, keys)?.into_keys().collect();
        for e in these {
            let h = content_hash(&e.key);
            let mut sides = [SideNow::default(), SideNow::default()];
            sides[holder].row = held.remove(&h);
            sides[absent].deleted = !elsewhere.contains(&h);
            let m = merge(&join.rules, sides, Some(&e.base));
            out.push((m, e.base, dualsync_model::row::key_to_json(&e.key)));
        }
    }
    Ok(out)
}

/// App `side`'s rows with these keys in the partition's company, by key hash;
/// `filtered`: within the map's filter, or regardless of it.
fn rows_by_key(join: &Join<'_>, side: Side, filtered: bool, keys: Vec<Vec<Value>>) -> Result<HashMap<[u8; 16], CommonRow>, EngineError> {
    let (ctx, shape) = (join.ctx, join.shape);
    let mut reader = SideReader::new(side, join.company.clone());
    if !reader.has_company(shape) {
        return Ok(HashMap::new());
    }
    if !filtered {
        reader = reader.regardless_of_filter();
    }
    let app = &shape.apps[side];
    let mut conn = ctx.apps.connect(app)?;
    let rows = reader.fetch(conn.as_mut(), shape, keys).map_err(in_app(&ctx.apps, app))?;
    Ok(rows.into_iter().map(|r| (content_hash(shape.key_positions.iter().map(|&p| &r.values[p])), r)).collect())
}

/// Before anything is written: an app that holds no row of a partition that
/// has merge bases, not even outside the map's filter, while the other app
/// does, would lose every row (an emptied table, a wrong company or database).
pub(crate) fn precheck(join: &Join<'_>) -> Result<(), EngineError> {
    if join.ctx.allow_deletes || !join.has_bases() {
        return Ok(());
    }
    let (ctx, shape) = (join.ctx, join.shape);
    let mut rows = [0u64; 2];
    let mut anywhere = [0u64; 2];
    for side in Side::BOTH {
        let reader = SideReader::new(side, join.company.clone());
        if !reader.has_company(shape) {
            continue;
        }
        let app = &shape.apps[side];
        let mut conn = ctx.apps.connect(app)?;
        let selection: Selection = reader.selection(shape);
        rows[side] = conn.count(&selection).map_err(in_app(&ctx.apps, app))?;
        anywhere[side] = if rows[side] > 0 {
            rows[side]
        } else {
            conn.count(&Selection { filter: None, ..selection }).map_err(in_app(&ctx.apps, app))?
        };
    }
    let guard = Guard::new(shape, false, rows);
    for side in Side::BOTH {
        if anywhere[side.other()] == 0 && guard.trips(side, rows[side]) {
            return Err(guard.stop(shape, join.company_shown, side, rows[side]));
        }
    }
    Ok(())
}
