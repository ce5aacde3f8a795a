//! What live sync keeps: each map's state, its change cursors (watermarks),
//! the merge bases of the keys it reconciles, and conflicts.

use crate::db::{Cell, Db, P};
use crate::time::{minutes_ago, now};
use crate::{StateError, StateStore};
use std::collections::HashMap;

/// A map's live state; a map without one is stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapState {
    Running,
    Paused,
}

impl MapState {
    pub fn as_str(self) -> &'static str {
        match self {
            MapState::Running => "running",
            MapState::Paused => "paused",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct MapStateRecord {
    pub map: String,
    pub state: MapState,
    /// Why dualsync paused the map (an alert), if it did.
    pub reason: Option<String>,
    pub changed_at: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NewConflict {
    pub map: String,
    pub company: String,
    pub key: String,
    /// The columns both apps changed.
    pub columns: Vec<String>,
    /// Each app's row as JSON (None: deleted there).
    pub values: [Option<String>; 2],
    pub policy: String,
    /// How it was settled, or None while it waits for `dualsync resolve`.
    pub resolution: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConflictRecord {
    pub id: i64,
    pub conflict: NewConflict,
    pub status: String,
    pub detected_at: String,
    pub resolved_at: Option<String>,
}

impl StateStore {
    pub fn map_states(&self) -> Result<Vec<MapStateRecord>, StateError> {
        let rows = self.db().query("SELECT map, state, reason, changed_at FROM map_states ORDER BY map", &[])?;
        Ok(rows
            .iter()
            .map(|r| MapStateRecord {
                map: r[0].text(),
                state: if r[1].text() == "paused" { MapState::Paused } else { MapState::Running },
                reason: r[2].opt_text(),
                changed_at: r[3].text(),
            })
            .collect())
    }

    pub fn map_state(&self, map: &str) -> Result<Option<MapStateRecord>, StateError> {
        Ok(self.map_states()?.into_iter().find(|s| s.map == map))
    }

    pub fn set_map_state(&self, map: &str, state: MapState, reason: Option<&str>) -> Result<(), StateError> {
        self.db().execute(
            "INSERT INTO map_states (map, state, reason, changed_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (map) DO UPDATE SET state = excluded.state, reason = excluded.reason, changed_at = excluded.changed_at",
            &[P::Text(map), P::Text(state.as_str()), P::OptText(reason), P::Text(&now())],
        )?;
        Ok(())
    }

    /// Stops a map: forgets its state and cursors (its merge bases stay for a later start).
    pub fn clear_map_state(&self, map: &str) -> Result<(), StateError> {
        let mut db = self.db();
        db.execute("DELETE FROM map_states WHERE map = ?1", &[P::Text(map)])?;
        db.execute("DELETE FROM cursors WHERE map = ?1", &[P::Text(map)])?;
        Ok(())
    }

    /// The map's cursor in each app's change table, where it has one.
    pub fn cursors(&self, map: &str) -> Result<HashMap<String, String>, StateError> {
        let rows = self.db().query("SELECT app, position FROM cursors WHERE map = ?1", &[P::Text(map)])?;
        Ok(rows.iter().map(|r| (r[0].text(), r[1].text())).collect())
    }

    /// Saves the map's cursors together (one transaction).
    pub fn save_cursors(&self, map: &str, cursors: &[(&str, &str)]) -> Result<(), StateError> {
        let mut db = self.db();
        let at = now();
        db.batch("BEGIN")?;
        for (app, position) in cursors {
            let saved = db.execute(
                "INSERT INTO cursors (map, app, position, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (map, app) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
                &[P::Text(map), P::Text(app), P::Text(position), P::Text(&at)],
            );
            if let Err(e) = saved {
                db.batch("ROLLBACK")?;
                return Err(e);
            }
        }
        db.batch("COMMIT")
    }

    /// The merge bases of these keys (JSON) in a partition; keys never synced are absent.
    pub fn key_bases(&self, map: &str, company: &str, keys: &[String]) -> Result<HashMap<String, Vec<u8>>, StateError> {
        let mut db = self.db();
        let partition = self.partition_id(&mut db, map, company)?;
        let mut out = HashMap::with_capacity(keys.len());
        // PostgreSQL takes the keys as one array: a statement of thousands of parameters costs
        // more to plan than to run (a full sync of a million known keys spent minutes on it).
        if let Db::Postgres(client) = &mut *db {
            let rows = client
                .query("SELECT key, content_hash FROM key_state WHERE partition_id = $1 AND key = ANY($2)", &[&partition, &keys])
                .map_err(crate::db::pg)?;
            out.extend(rows.into_iter().map(|r| (r.get::<_, String>(0), r.get::<_, Vec<u8>>(1))));
            return Ok(out);
        }
        for chunk in keys.chunks(KEYS_PER_STATEMENT) {
            let (list, params) = keys_of_partition(partition, chunk);
            let sql = format!("SELECT key, content_hash FROM key_state WHERE partition_id = ?1 AND key IN ({list})");
            for row in db.query(&sql, &params)? {
                if let [Cell::Text(key), Cell::Blob(base)] = &row[..] {
                    out.insert(key.clone(), base.clone());
                }
            }
        }
        Ok(out)
    }

    /// Forgets keys deleted on both apps.
    pub fn forget_keys(&self, map: &str, company: &str, keys: &[String]) -> Result<(), StateError> {
        let mut db = self.db();
        let partition = self.partition_id(&mut db, map, company)?;
        if let Db::Postgres(client) = &mut *db {
            client
                .execute("DELETE FROM key_state WHERE partition_id = $1 AND key = ANY($2)", &[&partition, &keys])
                .map_err(crate::db::pg)?;
            return Ok(());
        }
        for chunk in keys.chunks(KEYS_PER_STATEMENT) {
            let (list, params) = keys_of_partition(partition, chunk);
            db.execute(&format!("DELETE FROM key_state WHERE partition_id = ?1 AND key IN ({list})"), &params)?;
        }
        Ok(())
    }

    /// Records a conflict; a key with an open conflict gets it replaced by the newer one.
    pub fn record_conflict(&self, c: &NewConflict) -> Result<i64, StateError> {
        let mut db = self.db();
        let at = now();
        let open = if c.resolution.is_none() { "open" } else { "resolved" };
        let columns = c.columns.join(",");
        // ?1…?6 in both statements below.
        let row = [
            P::Text(&c.map),
            P::Text(&c.company),
            P::Text(&c.key),
            P::Text(&columns),
            P::OptText(c.values[0].as_deref()),
            P::OptText(c.values[1].as_deref()),
        ];
        if c.resolution.is_none() {
            // Still waiting: the queued conflict keeps its id and shows the rows as they are now.
            let rows = db.query(
                "UPDATE conflicts SET columns = ?4, value_0 = ?5, value_1 = ?6, detected_at = ?7
                 WHERE map = ?1 AND company = ?2 AND key = ?3 AND status = 'open' RETURNING id",
                &[&row[..], &[P::Text(&at)]].concat(),
            )?;
            if let Some(id) = rows.first().map(|r| r[0].int()) {
                return Ok(id);
            }
        }
        let rows = db.query(
            "INSERT INTO conflicts (map, company, key, columns, value_0, value_1, policy, resolution, status, detected_at, resolved_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) RETURNING id",
            &[
                &row[..],
                &[
                    P::Text(&c.policy),
                    P::OptText(c.resolution.as_deref()),
                    P::Text(open),
                    P::Text(&at),
                    P::OptText(c.resolution.as_ref().map(|_| at.as_str())),
                ],
            ]
            .concat(),
        )?;
        Ok(rows.first().and_then(|r| r.first()).map_or(0, Cell::int))
    }

    /// The conflict queue: a map's (or every map's) open conflicts, or with `include_resolved` all of them.
    pub fn conflicts(&self, map: Option<&str>, include_resolved: bool) -> Result<Vec<ConflictRecord>, StateError> {
        let mut clause = vec!["1 = 1"];
        if map.is_some() {
            clause.push("map = ?1");
        }
        if !include_resolved {
            clause.push("status = 'open'");
        }
        let params: Vec<P<'_>> = map.into_iter().map(P::Text).collect();
        self.conflicts_where(&format!("{} ORDER BY id", clause.join(" AND ")), &params)
    }

    /// A page of conflicts: those numbered after `after`, at most `limit`, oldest first.
    pub fn conflicts_page(
        &self,
        map: Option<&str>,
        include_resolved: bool,
        after: i64,
        limit: usize,
    ) -> Result<Vec<ConflictRecord>, StateError> {
        let clause = format!("(CAST(?1 AS TEXT) IS NULL OR map = ?1) AND (?2 OR status = 'open') AND id > ?3 ORDER BY id LIMIT {limit}");
        self.conflicts_where(&clause, &[P::OptText(map), P::Bool(include_resolved), P::Int(after)])
    }

    pub fn conflict(&self, id: i64) -> Result<Option<ConflictRecord>, StateError> {
        Ok(self.conflicts_where("id = ?1", &[P::Int(id)])?.into_iter().next())
    }

    pub fn open_conflict_count(&self, map: &str) -> Result<i64, StateError> {
        self.count("SELECT count(*) FROM conflicts WHERE map = ?1 AND status = 'open'", map)
    }

    fn conflicts_where(&self, clause: &str, params: &[P<'_>]) -> Result<Vec<ConflictRecord>, StateError> {
        let rows = self.db().query(
            &format!(
                "SELECT id, map, company, key, columns, value_0, value_1, policy, resolution, status, detected_at, resolved_at
                 FROM conflicts WHERE {clause}"
            ),
            params,
        )?;
        Ok(rows
            .iter()
            .map(|r| ConflictRecord {
                id: r[0].int(),
                conflict: NewConflict {
                    map: r[1].text(),
                    company: r[2].text(),
                    key: r[3].text(),
                    columns: r[4].text().split(',').filter(|s| !s.is_empty()).map(str::to_string).collect(),
                    values: [r[5].opt_text(), r[6].opt_text()],
                    policy: r[7].text(),
                    resolution: r[8].opt_text(),
                },
                status: r[9].text(),
                detected_at: r[10].text(),
                resolved_at: r[11].opt_text(),
            })
            .collect())
    }

    pub fn resolve_conflict(&self, id: i64, resolution: &str) -> Result<(), StateError> {
        self.db().execute(
            "UPDATE conflicts SET status = 'resolved', resolution = ?2, resolved_at = ?3 WHERE id = ?1",
            &[P::Int(id), P::Text(resolution), P::Text(&now())],
        )?;
        Ok(())
    }

    /// Failed rows of a map logged (first or again) within the last `minutes`: the alert rule's count.
    pub fn recent_error_count(&self, map: &str, minutes: u64) -> Result<u64, StateError> {
        let rows = self.db().query(
            "SELECT count(*) FROM errors WHERE map = ?1 AND status = 'open' AND last_seen >= ?2",
            &[P::Text(map), P::Text(&minutes_ago(minutes))],
        )?;
        Ok(rows.first().and_then(|r| r.first()).map_or(0, Cell::int) as u64)
    }
}

/// Keys per statement that reads or forgets merge bases: one statement per key was most of a live batch's time.
const KEYS_PER_STATEMENT: usize = 500;

/// `?2, ?3, …` for the keys, and the parameters: the partition (`?1`), then the keys.
fn keys_of_partition(partition: i64, keys: &[String]) -> (String, Vec<P<'_>>) {
    let list = (0..keys.len()).map(|i| format!("?{}", i + 2)).collect::<Vec<_>>().join(", ");
    let mut params = vec![P::Int(partition)];
    params.extend(keys.iter().map(|k| P::Text(k)));
    (list, params)
}
