//! The state store: run history, the error log, and per-key content hashes.
//!
//! SQLite by default (`[state] url`). Schema changes are numbered SQL files
//! applied in order; the applied version is kept in `schema_version`.

mod records;

pub use records::*;

use dualsync_model::config::DatabaseUrl;
use rusqlite::{params, OptionalExtension};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

const MIGRATIONS: &[&str] = &[include_str!("migrations/001_initial.sql")];

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot open the state store {location}: {message}")]
    Open { location: String, message: String },
    #[error("the state store {location} has schema version {found}, newer than this dualsync knows ({known}); upgrade dualsync")]
    TooNew { location: String, found: i64, known: i64 },
    #[error("{0} state stores are not supported yet; use sqlite://PATH")]
    Unsupported(&'static str),
    #[error("state store: {0}")]
    Database(#[from] rusqlite::Error),
}

pub struct StateStore {
    conn: Mutex<rusqlite::Connection>,
    partition_ids: Mutex<HashMap<(String, String), i64>>,
}

impl StateStore {
    pub fn open(url: &DatabaseUrl) -> Result<StateStore, StateError> {
        let DatabaseUrl::Sqlite(path) = url else {
            return Err(StateError::Unsupported(url.kind()));
        };
        let open_err = |message: String| StateError::Open { location: url.to_string(), message };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_err(format!("cannot create folder {}: {e}", dir.display())))?;
        }
        let conn = rusqlite::Connection::open(path).map_err(|e| open_err(e.to_string()))?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "cache_size", -32000)?;
        conn.set_prepared_statement_cache_capacity(32);
        migrate(&conn, url)?;
        Ok(StateStore { conn: Mutex::new(conn), partition_ids: Mutex::new(HashMap::new()) })
    }

    /// Opens the store only if it exists (for read-only commands such as `status`).
    pub fn exists(url: &DatabaseUrl) -> bool {
        match url {
            DatabaseUrl::Sqlite(p) => Path::new(p).exists(),
            _ => true,
        }
    }

    fn conn(&self) -> MutexGuard<'_, rusqlite::Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn begin_run(&self, kind: &str) -> Result<i64, StateError> {
        let c = self.conn();
        c.execute("INSERT INTO runs (kind) VALUES (?1)", [kind])?;
        Ok(c.last_insert_rowid())
    }

    pub fn finish_run(&self, run_id: i64, status: RunStatus, message: Option<&str>) -> Result<(), StateError> {
        self.conn().execute(
            "UPDATE runs SET status = ?2, message = ?3, ended_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
            params![run_id, status.as_str(), message],
        )?;
        Ok(())
    }

    pub fn begin_partition(&self, run_id: i64, map: &str, company: &str, apps: [&str; 2]) -> Result<i64, StateError> {
        let c = self.conn();
        c.execute(
            "INSERT INTO run_partitions (run_id, map, company, app_0, app_1) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![run_id, map, company, apps[0], apps[1]],
        )?;
        Ok(c.last_insert_rowid())
    }

    pub fn finish_partition(&self, id: i64, counts: &Counts, status: RunStatus, message: Option<&str>) -> Result<(), StateError> {
        self.conn().execute(
            "UPDATE run_partitions SET status = ?2, message = ?3, ended_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
               read_0 = ?4, read_1 = ?5, inserted_0 = ?6, inserted_1 = ?7, updated_0 = ?8, updated_1 = ?9,
               failed_0 = ?10, failed_1 = ?11, unchanged = ?12
             WHERE id = ?1",
            params![
                id,
                status.as_str(),
                message,
                counts.read[0] as i64,
                counts.read[1] as i64,
                counts.inserted[0] as i64,
                counts.inserted[1] as i64,
                counts.updated[0] as i64,
                counts.updated[1] as i64,
                counts.failed[0] as i64,
                counts.failed[1] as i64,
                counts.unchanged as i64
            ],
        )?;
        Ok(())
    }

    /// Logs failed rows. A row that is already open in the log gets its
    /// message, value and run updated and its attempts counted up.
    pub fn record_errors(&self, run_id: i64, errors: &[NewError]) -> Result<(), StateError> {
        let mut c = self.conn();
        let tx = c.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO errors (run_id, map, company, source_app, target_app, key, column_name, value, message)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (map, company, target_app, key) WHERE status = 'open' DO UPDATE SET
                   run_id = excluded.run_id, column_name = excluded.column_name, value = excluded.value,
                   message = excluded.message, source_app = excluded.source_app,
                   attempts = attempts + 1, last_seen = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            )?;
            for e in errors {
                stmt.execute(params![run_id, e.map, e.company, e.source_app, e.target_app, e.key, e.column, e.value, e.message])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// After a complete full run of a partition: open errors that this run did
    /// not hit again are resolved (the row synced, or no longer differs).
    pub fn resolve_errors_not_in_run(&self, map: &str, company: &str, run_id: i64) -> Result<usize, StateError> {
        Ok(self.conn().execute(
            "UPDATE errors SET status = 'resolved', last_seen = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE map = ?1 AND company = ?2 AND status = 'open' AND run_id <> ?3",
            params![map, company, run_id],
        )?)
    }

    pub fn resolve_error(&self, id: i64) -> Result<(), StateError> {
        self.conn()
            .execute("UPDATE errors SET status = 'resolved', last_seen = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Resolves the open error of one row, if there is one (after a retry or resync synced it).
    pub fn resolve_row(&self, map: &str, company: &str, key: &str) -> Result<usize, StateError> {
        Ok(self.conn().execute(
            "UPDATE errors SET status = 'resolved', last_seen = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE map = ?1 AND company = ?2 AND key = ?3 AND status = 'open'",
            params![map, company, key],
        )?)
    }

    pub fn errors(&self, query: &ErrorQuery) -> Result<Vec<ErrorRecord>, StateError> {
        let c = self.conn();
        let mut stmt = c.prepare(
            "SELECT id, run_id, map, company, source_app, target_app, key, column_name, value, message, attempts, status, first_seen, last_seen
             FROM errors
             WHERE (?1 IS NULL OR map = ?1) AND (?2 IS NULL OR run_id = ?2) AND (?3 OR status = 'open')
               AND (?4 IS NULL OR id IN (SELECT value FROM json_each(?4)))
             ORDER BY id",
        )?;
        let ids = if query.ids.is_empty() { None } else { Some(serde_json::to_string(&query.ids).unwrap_or_default()) };
        let rows = stmt.query_map(params![query.map, query.run, query.include_resolved, ids], ErrorRecord::from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn open_error_count(&self, map: &str) -> Result<i64, StateError> {
        Ok(self.conn().query_row("SELECT count(*) FROM errors WHERE map = ?1 AND status = 'open'", [map], |r| r.get(0))?)
    }

    /// The number of a (map, company) pair, created on first use.
    fn partition_id(&self, conn: &rusqlite::Connection, map: &str, company: &str) -> Result<i64, StateError> {
        let key = (map.to_string(), company.to_string());
        if let Some(id) = self.partition_ids.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(*id);
        }
        conn.execute("INSERT INTO partitions (map, company) VALUES (?1, ?2) ON CONFLICT DO NOTHING", params![map, company])?;
        let id = conn.query_row("SELECT id FROM partitions WHERE map = ?1 AND company = ?2", params![map, company], |r| r.get(0))?;
        self.partition_ids.lock().unwrap_or_else(|p| p.into_inner()).insert(key, id);
        Ok(id)
    }

    /// Stores the content hash of synced keys (one transaction per call).
    pub fn record_key_hashes(&self, map: &str, company: &str, run_id: i64, hashes: &[(String, [u8; 16])]) -> Result<(), StateError> {
        let mut c = self.conn();
        let partition = self.partition_id(&c, map, company)?;
        let tx = c.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO key_state (partition_id, key, content_hash, run_id) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (partition_id, key) DO UPDATE SET content_hash = excluded.content_hash, run_id = excluded.run_id",
            )?;
            for (key, hash) in hashes {
                stmt.execute(params![partition, key, &hash[..], run_id])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// After a complete full run of a partition: keys it did not see exist on neither side any more.
    pub fn forget_keys_not_in_run(&self, map: &str, company: &str, run_id: i64) -> Result<usize, StateError> {
        let c = self.conn();
        let partition = self.partition_id(&c, map, company)?;
        Ok(c.execute("DELETE FROM key_state WHERE partition_id = ?1 AND run_id <> ?2", params![partition, run_id])?)
    }

    pub fn key_hash(&self, map: &str, company: &str, key: &str) -> Result<Option<[u8; 16]>, StateError> {
        let h: Option<Vec<u8>> = self
            .conn()
            .query_row(
                "SELECT k.content_hash FROM key_state k JOIN partitions p ON p.id = k.partition_id
                 WHERE p.map = ?1 AND p.company = ?2 AND k.key = ?3",
                params![map, company, key],
                |r| r.get(0),
            )
            .optional()?;
        Ok(h.and_then(|h| h.try_into().ok()))
    }

    pub fn key_count(&self, map: &str) -> Result<i64, StateError> {
        Ok(self.conn().query_row(
            "SELECT count(*) FROM key_state k JOIN partitions p ON p.id = k.partition_id WHERE p.map = ?1",
            [map],
            |r| r.get(0),
        )?)
    }

    /// The partitions of the most recent run of each map.
    pub fn last_partitions(&self) -> Result<Vec<PartitionRecord>, StateError> {
        let c = self.conn();
        let mut stmt = c.prepare(
            "SELECT p.id, p.run_id, p.map, p.company, p.app_0, p.app_1, p.started_at, p.ended_at, p.status, p.message,
                    p.read_0, p.read_1, p.inserted_0, p.inserted_1, p.updated_0, p.updated_1, p.failed_0, p.failed_1, p.unchanged
             FROM run_partitions p
             WHERE p.run_id = (SELECT max(q.run_id) FROM run_partitions q WHERE q.map = p.map)
             ORDER BY p.map, p.company",
        )?;
        let rows = stmt.query_map([], PartitionRecord::from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn partitions_of_run(&self, run_id: i64) -> Result<Vec<PartitionRecord>, StateError> {
        let c = self.conn();
        let mut stmt = c.prepare(
            "SELECT id, run_id, map, company, app_0, app_1, started_at, ended_at, status, message,
                    read_0, read_1, inserted_0, inserted_1, updated_0, updated_1, failed_0, failed_1, unchanged
             FROM run_partitions WHERE run_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([run_id], PartitionRecord::from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn migrate(conn: &rusqlite::Connection, url: &DatabaseUrl) -> Result<(), StateError> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let version: i64 = conn.query_row("SELECT coalesce(max(version), 0) FROM schema_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StateError::TooNew { location: url.to_string(), found: version, known });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [i as i64 + 1])?;
        tx.commit()?;
    }
    Ok(())
}
