//! Units of work shared by the workers of a PostgreSQL store (owner.rs says
//! how a process joins as one).
//!
//! - **Live apply**: one unit per group of lookup-linked maps, held for as
//!   long as its worker lives; each worker takes a fair share of them.
//! - **Sync**: one unit per (job, stage, map pass, company), taken one at a
//!   time by whichever worker is free, and marked done with the data synced.
//!   A big company is split into key-range chunks, units of their own; the
//!   company is done (and cleaned up) with its last chunk.
//!
//! A unit is free when nobody holds it or its holder's worker lease has run
//! out, on the store's clock. Claims take free units with `FOR UPDATE SKIP
//! LOCKED`, so workers never wait on each other, and give each claim a new
//! epoch from the store's one sequence: the fencing token the apps' fence row
//! of the unit checks (`fence_unit`). Everything a worker writes here goes
//! through its own session, which the store fences by the worker's lease.

use crate::db::{Cell, P};
use crate::{StateError, StateStore, Token};
use std::time::Duration;

/// A process that joined a store to share its work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Worker {
    /// Its id in the store: host, PID and start time.
    pub owner: String,
    pub command: String,
    /// The store's identity, which the apps' fence rows are named after.
    pub incarnation: String,
    pub ttl: Duration,
}

/// A unit of work this worker holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    pub id: i64,
    /// The map pass (sync) or the maps (live) it covers.
    pub step: String,
    pub company: String,
    /// What the apps' fence row of this unit must not have passed.
    pub fence: Token,
    /// A chunk of a company: its keys after the first and up to the second
    /// (JSON keys; None: open), and its company's item.
    pub chunk: Option<Chunk>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub parent: i64,
    pub number: i64,
    pub after: Option<String>,
    pub upto: Option<String>,
    /// No key of it can have a merge base: its company had none when it was
    /// split, and this is its first attempt (the chunks' keys are disjoint).
    pub fresh: bool,
}

/// What finishing a chunk left to do.
#[derive(Debug, PartialEq, Eq)]
pub enum ChunkDone {
    /// Another worker holds it now: nothing was recorded.
    Lost,
    /// Other chunks of its company are not done yet.
    More,
    /// It was its company's last: the company is done, and was cleaned up
    /// (keys gone from both apps forgotten, errors no run saw resolved)
    /// unless a chunk stopped early or the pass was not complete.
    Company,
}

/// A sync job: the items of one selection of maps and companies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncJob {
    pub id: i64,
    /// Items done before this process joined (a job that a crash left unfinished).
    pub done: i64,
    pub total: i64,
}

/// The name of a unit's row in the apps' `dualsync_fence` table (64 characters at most).
pub fn fence_unit(incarnation: &str, id: i64) -> String {
    format!("{}:{id}", &incarnation[..incarnation.len().min(16)])
}

/// Values passed to SQL as one text, split there (no arrays in `db::P`).
const SEP: char = '\u{1f}';

/// A unit nobody holds, or whose holder's lease has run out.
const FREE: &str = "(i.owner IS NULL OR NOT EXISTS (SELECT 1 FROM leases l
    WHERE l.unit = 'worker:' || i.owner AND l.owner = i.owner AND l.expires_at > now()))";

impl StateStore {
    /// The open job of this selection, made if there is none.
    pub fn open_sync_job(&self, selection: &str) -> Result<SyncJob, StateError> {
        let mut db = self.db();
        db.execute(
            "INSERT INTO sync_jobs (selection) VALUES (?1) ON CONFLICT (selection) WHERE ended_at IS NULL DO NOTHING",
            &[P::Text(selection)],
        )?;
        let rows = db.query(
            "SELECT j.id, count(i.done_at), count(i.id) FROM sync_jobs j LEFT JOIN work_items i ON i.job = j.id
             WHERE j.selection = ?1 AND j.ended_at IS NULL GROUP BY j.id",
            &[P::Text(selection)],
        )?;
        let row = rows.first().ok_or_else(|| StateError::Postgres("the sync job just opened is gone".into()))?;
        Ok(SyncJob { id: row[0].int(), done: row[1].int(), total: row[2].int() })
    }

    /// Adds the items of one map pass of a job's stage, one per company (those already there stay).
    pub fn add_sync_items(&self, job: i64, stage: usize, step: &str, companies: &[String]) -> Result<(), StateError> {
        // In one order in every process: inserts of the same keys in different orders deadlock.
        let mut sorted: Vec<&str> = companies.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        let joined = sorted.join(&SEP.to_string());
        self.db().execute(
            "INSERT INTO work_items (unit, job, stage, step, company)
             SELECT 'sync ' || ?1::bigint || '/' || ?2::bigint || '/' || ?3 || '/' || c, ?1::bigint, ?2::bigint, ?3, c
             FROM unnest(string_to_array(?4, chr(31))) AS c
             ON CONFLICT (unit) DO NOTHING",
            &[P::Int(job), P::Int(stage as i64), P::Text(step), P::Text(&joined)],
        )?;
        Ok(())
    }

    /// Takes one free item of a job's map pass, if there is one.
    pub fn claim_sync_item(&self, worker: &Worker, job: i64, stage: usize, step: &str) -> Result<Option<Unit>, StateError> {
        let filter = "job = ?2 AND stage = ?3 AND step = ?4 AND done_at IS NULL AND NOT split";
        let units = self.claim_units(worker, filter, &[P::Int(job), P::Int(stage as i64), P::Text(step)], 1)?;
        Ok(units.into_iter().next())
    }

    /// Items of a job's map pass not done yet, by anyone.
    pub fn open_sync_items(&self, job: i64, stage: usize, step: &str) -> Result<i64, StateError> {
        let rows = self.db().query(
            "SELECT count(*) FROM work_items WHERE job = ?1 AND stage = ?2 AND step = ?3 AND done_at IS NULL",
            &[P::Int(job), P::Int(stage as i64), P::Text(step)],
        )?;
        Ok(rows[0][0].int())
    }

    /// Marks an item done (with why it stopped early, if it did), if this
    /// worker still holds it under the same epoch; false when it does not.
    pub fn finish_sync_item(&self, worker: &Worker, unit: &Unit, message: Option<&str>) -> Result<bool, StateError> {
        let n = self.db().execute(
            "UPDATE work_items SET done_at = now(), done_by = owner, owner = NULL, message = ?4 WHERE id = ?1 AND owner = ?2 AND epoch = ?3",
            &[P::Int(unit.id), P::Text(&worker.owner), P::Int(unit.fence.epoch), P::OptText(message)],
        )?;
        Ok(n == 1)
    }

    /// Splits a company item this worker holds into chunks at these key
    /// bounds (JSON keys, in key order): chunk 0 up to the first bound, the
    /// last after the last one. False when the item is no longer this worker's.
    /// `fresh`: the company has no merge bases yet (its chunks need not look any up).
    pub fn split_sync_item(&self, worker: &Worker, unit: &Unit, bounds: &[String], fresh: bool) -> Result<bool, StateError> {
        let mut db = self.db();
        db.batch("BEGIN")?;
        let split = (|| {
            let n = db.execute(
                "UPDATE work_items SET split = true, owner = NULL WHERE id = ?1 AND owner = ?2 AND epoch = ?3 AND NOT split",
                &[P::Int(unit.id), P::Text(&worker.owner), P::Int(unit.fence.epoch)],
            )?;
            if n == 1 {
                db.execute(
                    "INSERT INTO work_items (unit, job, stage, step, company, parent, chunk, after_key, upto_key, fresh)
                     SELECT p.unit || ' #' || i, p.job, p.stage, p.step, p.company, p.id, i, b[i], b[i + 1], ?3
                     FROM work_items p, string_to_array(?2, chr(31)) AS b, generate_series(0, cardinality(string_to_array(?2, chr(31)))) AS i
                     WHERE p.id = ?1
                     ON CONFLICT (unit) DO NOTHING",
                    &[P::Int(unit.id), P::Text(&bounds.join(&SEP.to_string())), P::Bool(fresh)],
                )?;
            }
            Ok(n == 1)
        })();
        db.batch(if matches!(split, Ok(true)) { "COMMIT" } else { "ROLLBACK" })?;
        split
    }

    /// Marks a chunk done (with why it stopped early, if it did) if this
    /// worker still holds it. The last chunk of a company also finishes the
    /// company, in the same transaction: with `complete` (a full pass) and no
    /// chunk stopped early, the merge bases of keys that none of its chunks'
    /// runs saw are forgotten (they are gone from both apps), and the errors
    /// they did not see resolved, as a whole company's run does.
    pub fn finish_sync_chunk(
        &self,
        worker: &Worker,
        unit: &Unit,
        map: &str,
        run_id: i64,
        message: Option<&str>,
        complete: bool,
    ) -> Result<ChunkDone, StateError> {
        let Some(chunk) = &unit.chunk else { return Err(StateError::Postgres("not a chunk".into())) };
        let mut db = self.db();
        let partition = self.partition_id(&mut db, map, &unit.company)?;
        db.batch("BEGIN")?;
        let finished = (|| {
            // The company's row first: the chunks of a company finish one after the other.
            db.query("SELECT id FROM work_items WHERE id = ?1 FOR UPDATE", &[P::Int(chunk.parent)])?;
            let n = db.execute(
                "UPDATE work_items SET done_at = now(), done_by = owner, owner = NULL, message = ?4, run_id = ?5
                 WHERE id = ?1 AND owner = ?2 AND epoch = ?3",
                &[P::Int(unit.id), P::Text(&worker.owner), P::Int(unit.fence.epoch), P::OptText(message), P::Int(run_id)],
            )?;
            if n == 0 {
                return Ok(ChunkDone::Lost);
            }
            let left = db.query(
                "SELECT count(*) FILTER (WHERE done_at IS NULL), count(*) FILTER (WHERE message IS NOT NULL)
                 FROM work_items WHERE parent = ?1",
                &[P::Int(chunk.parent)],
            )?;
            let (open, stopped) = (left[0][0].int(), left[0][1].int());
            if open > 0 {
                return Ok(ChunkDone::More);
            }
            if complete && stopped == 0 {
                // What the attempt that finished each chunk recorded stays; the rest is of keys
                // that no finishing attempt saw: gone from both apps (or, for errors, synced since).
                let finished_by = "EXISTS (SELECT 1 FROM work_items c WHERE c.parent = ?1 AND c.id = r.chunk_item AND c.run_id = r.run_id)";
                db.execute(
                    &format!("DELETE FROM key_state r WHERE r.partition_id = ?2 AND NOT {finished_by}"),
                    &[P::Int(chunk.parent), P::Int(partition)],
                )?;
                db.execute(
                    &format!(
                        "UPDATE errors r SET status = 'resolved', last_seen = ?4
                         WHERE r.map = ?2 AND r.company = ?3 AND r.status = 'open' AND NOT {finished_by}"
                    ),
                    &[P::Int(chunk.parent), P::Text(map), P::Text(&unit.company), P::Text(&crate::time::now())],
                )?;
            }
            let message = (stopped > 0).then(|| format!("{stopped} of its chunks stopped early"));
            db.execute(
                "UPDATE work_items SET done_at = now(), done_by = ?2, message = ?3 WHERE id = ?1",
                &[P::Int(chunk.parent), P::Text(&worker.owner), P::OptText(message.as_deref())],
            )?;
            Ok(ChunkDone::Company)
        })();
        db.batch(if matches!(finished, Ok(ChunkDone::More | ChunkDone::Company)) { "COMMIT" } else { "ROLLBACK" })?;
        finished
    }

    /// Ends a job whose items are all done.
    pub fn end_sync_job(&self, job: i64) -> Result<(), StateError> {
        self.db().execute(
            "UPDATE sync_jobs SET ended_at = now()
             WHERE id = ?1 AND ended_at IS NULL AND NOT EXISTS (SELECT 1 FROM work_items WHERE job = ?1 AND done_at IS NULL)",
            &[P::Int(job)],
        )?;
        Ok(())
    }

    /// The live units `units` (each a group of maps) that this worker holds
    /// after taking its fair share of them: the live workers of its command
    /// split them evenly, and a worker above its share hands the extra back.
    /// With `all`, it takes every free one (a one-off catch-up).
    pub fn balance_live_units(&self, worker: &Worker, units: &[String], all: bool) -> Result<Vec<Unit>, StateError> {
        let joined = units.join(&SEP.to_string());
        self.db().execute(
            "INSERT INTO work_items (unit, step) SELECT 'live ' || u, u FROM unnest(string_to_array(?1, chr(31))) AS u
             ON CONFLICT (unit) DO NOTHING",
            &[P::Text(&joined)],
        )?;
        let mine = self.held_live_units(worker, &joined)?;
        let keep = if all { units.len() } else { self.fair_share(worker, &joined, units.len())? };
        if mine.len() > keep {
            self.release_units(worker, &mine[keep..])?;
            return Ok(mine[..keep].to_vec());
        }
        let filter = "job IS NULL AND step = ANY(string_to_array(?2, chr(31)))";
        let mut held = mine;
        held.extend(self.claim_units(worker, filter, &[P::Text(&joined)], keep - held.len())?);
        Ok(held)
    }

    /// How many of `total` live units this worker should hold: the live
    /// workers of its command split them evenly, one more for some while
    /// they do not divide, but none above the even split while another
    /// worker holds less than it (it would never get its share otherwise).
    fn fair_share(&self, worker: &Worker, joined: &str, total: usize) -> Result<usize, StateError> {
        let held = self.db().query(
            "SELECT l.owner, count(i.id) FROM leases l
             LEFT JOIN work_items i ON i.owner = l.owner AND i.job IS NULL AND i.step = ANY(string_to_array(?2, chr(31)))
             WHERE l.unit LIKE 'worker:%' AND l.owner IS NOT NULL AND l.expires_at > now() AND l.command = ?1
             GROUP BY l.owner",
            &[P::Text(&worker.command), P::Text(joined)],
        )?;
        let workers = held.len().max(1);
        let even = total / workers;
        let starving = held.iter().any(|r| r[0].text() != worker.owner && (r[1].int() as usize) < even);
        Ok(if starving || total % workers == 0 { even } else { even + 1 })
    }

    /// Hands units back, unfinished (a catch-up that is over, a share above the even one).
    pub fn release_units(&self, worker: &Worker, units: &[Unit]) -> Result<(), StateError> {
        let ids: Vec<String> = units.iter().map(|u| u.id.to_string()).collect();
        self.db().execute(
            "UPDATE work_items SET owner = NULL WHERE owner = ?1 AND done_at IS NULL AND id::text = ANY(string_to_array(?2, ','))",
            &[P::Text(&worker.owner), P::Text(&ids.join(","))],
        )?;
        Ok(())
    }

    fn held_live_units(&self, worker: &Worker, joined: &str) -> Result<Vec<Unit>, StateError> {
        let rows = self.db().query(
            "SELECT id, step, company, epoch, parent, chunk, after_key, upto_key, 'false' FROM work_items
             WHERE owner = ?1 AND job IS NULL AND step = ANY(string_to_array(?2, chr(31))) ORDER BY id",
            &[P::Text(&worker.owner), P::Text(joined)],
        )?;
        Ok(rows.iter().map(|r| unit_of(worker, r)).collect())
    }

    /// Takes up to `n` free units matching `filter` (whose parameters start at ?2).
    fn claim_units(&self, worker: &Worker, filter: &str, params: &[P<'_>], n: usize) -> Result<Vec<Unit>, StateError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut db = self.db();
        // A worker whose lease ran out is fenced before its units are taken: its store sessions write nothing more.
        db.execute(crate::owner::FENCE_DEAD_WORKERS, &[])?;
        let limit = params.len() + 2;
        let sql = format!(
            "UPDATE work_items i SET owner = ?1, epoch = nextval('lease_epochs'), claimed_at = now(), claims = claims + 1,
                    takeovers = takeovers + CASE WHEN i.owner IS NULL THEN 0 ELSE 1 END
             WHERE i.id IN (SELECT i.id FROM work_items i WHERE {filter} AND {FREE} ORDER BY i.id LIMIT ?{limit} FOR UPDATE SKIP LOCKED)
             RETURNING i.id, i.step, i.company, i.epoch, i.parent, i.chunk, i.after_key, i.upto_key, (i.fresh AND i.claims = 1)::text"
        );
        let mut all = vec![P::Text(&worker.owner)];
        all.extend_from_slice(params);
        all.push(P::Int(n as i64));
        let rows = db.query(&sql, &all)?;
        Ok(rows.iter().map(|r| unit_of(worker, r)).collect())
    }
}

fn unit_of(worker: &Worker, row: &[Cell]) -> Unit {
    let id = row[0].int();
    let chunk = row[4].opt_int().map(|parent| Chunk {
        parent,
        number: row[5].int(),
        after: row[6].opt_text(),
        upto: row[7].opt_text(),
        fresh: row[8].text() == "true",
    });
    Unit {
        id,
        step: row[1].text(),
        company: row[2].text(),
        fence: Token { store: fence_unit(&worker.incarnation, id), epoch: row[3].int() },
        chunk,
    }
}

/// A unit of work as `dualsync workers` shows it.
#[derive(Clone, Debug)]
pub struct WorkUnit {
    /// The sync job it belongs to (None: live apply).
    pub job: Option<i64>,
    pub step: String,
    pub company: String,
    /// A chunk's number within its company.
    pub chunk: Option<i64>,
    /// The live worker holding it: "PID on host".
    pub holder: Option<String>,
    pub epoch: i64,
    pub claims: i64,
    pub takeovers: i64,
    pub done: bool,
}

impl StateStore {
    /// The live units, and the items of sync jobs not ended (none on SQLite, which has no workers).
    pub fn work_units(&self) -> Result<Vec<WorkUnit>, StateError> {
        if !self.db().is_postgres() {
            return Ok(Vec::new());
        }
        let rows = self.db().query(
            "SELECT i.job, i.step, i.company, l.pid || ' on ' || l.host, i.epoch, i.claims, i.takeovers, (i.done_at IS NOT NULL)::text,
                    i.chunk
             FROM work_items i
             LEFT JOIN leases l ON l.unit = 'worker:' || i.owner AND l.owner = i.owner AND l.expires_at > now()
             WHERE i.job IS NULL OR i.job IN (SELECT id FROM sync_jobs WHERE ended_at IS NULL)
             ORDER BY i.job NULLS FIRST, i.stage, i.id",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| WorkUnit {
                job: r[0].opt_int(),
                step: r[1].text(),
                company: r[2].text(),
                holder: r[3].opt_text(),
                epoch: r[4].int(),
                claims: r[5].int(),
                takeovers: r[6].int(),
                done: r[7].text() == "true",
                chunk: r[8].opt_int(),
            })
            .collect())
    }
}
