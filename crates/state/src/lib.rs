//! The state store: run history, the error log, and per-key content hashes.
//!
//! SQLite by default, PostgreSQL for a shared control plane (`[state] url`).
//! Statements are written once, in SQL both accept; schema changes are
//! numbered SQL files per database, applied in order and recorded in
//! `schema_version`. Timestamps are UTC ISO 8601 text made here, so both
//! databases store the same thing.

mod db;
mod links;
mod live;
mod owner;
mod records;
mod retention;
mod service;
mod time;
mod work;

pub use links::AppLink;
pub use live::{ConflictRecord, MapState, MapStateRecord, NewConflict};
pub use owner::{Holder, StoreClaim, Token};
pub use records::*;
pub use retention::Purged;
pub use service::{Activity, ApiToken, NewToken, RunRecord};
pub use time::{days_from_now, now};
pub use work::{fence_unit, Chunk, ChunkDone, SyncJob, Unit, WorkUnit, Worker};

use db::{Cell, Db, P};
use dualsync_model::config::{DatabaseUrl, StateConfig};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

const SQLITE_MIGRATIONS: &[&str] = &[
    include_str!("migrations/sqlite/001_initial.sql"),
    include_str!("migrations/sqlite/002_live.sql"),
    include_str!("migrations/sqlite/003_owner.sql"),
    include_str!("migrations/sqlite/004_service.sql"),
    include_str!("migrations/sqlite/005_links.sql"),
];
const POSTGRES_MIGRATIONS: &[&str] = &[
    include_str!("migrations/postgres/001_initial.sql"),
    include_str!("migrations/postgres/002_live.sql"),
    include_str!("migrations/postgres/003_leases.sql"),
    include_str!("migrations/postgres/004_work.sql"),
    include_str!("migrations/postgres/005_service.sql"),
    include_str!("migrations/postgres/006_links.sql"),
];

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot open the state store {location}: {message}")]
    Open { location: String, message: String },
    #[error("the state store {location} has schema version {found}, newer than this dualsync knows ({known}); upgrade dualsync")]
    TooNew { location: String, found: i64, known: i64 },
    #[error("{0} state stores are not supported; use sqlite://PATH or postgres://…")]
    Unsupported(&'static str),
    #[error(
        "the state store {location} is in use by {holder}; a SQLite store serves one syncing process at a time, and a \
         PostgreSQL store one command at a time (any number of `run`s, or of `sync`s, share it): wait for it to finish \
         or stop it (SIGTERM lets it finish its batch), then run this again"
    )]
    InUse { location: String, holder: String },
    #[error("state store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("state store: {0}")]
    Postgres(String),
    /// A request the store's contents refuse (a name in use, say); the message says what to do.
    #[error("{0}")]
    Refused(String),
    /// Work this process held was taken over by another.
    #[error("{0}")]
    Lost(String),
    #[error("the state-store recorder stopped with a panic ({0}); the run's merge bases and errors may not all be stored: run it again")]
    Panicked(String),
}

pub struct StateStore {
    db: Mutex<Db>,
    partition_ids: Mutex<HashMap<(String, String), i64>>,
    /// A server store's TLS settings and what they verify (`check`).
    tls: Option<(String, &'static str)>,
}

impl StateStore {
    /// Opens (and creates or upgrades) the store of a config's `[state]`; a
    /// PostgreSQL store's password comes from its `password_env`, never the URL.
    pub fn open(state: &StateConfig) -> Result<StateStore, StateError> {
        let password = state.password_env.as_deref().and_then(|v| std::env::var(v).ok());
        Self::open_url(&state.url, password.as_deref())
    }

    pub fn open_url(url: &DatabaseUrl, password: Option<&str>) -> Result<StateStore, StateError> {
        let open_err = |message: String| StateError::Open { location: url.to_string(), message };
        let mut tls_note = None;
        let mut db = match url {
            DatabaseUrl::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| open_err(format!("cannot create folder {}: {e}", dir.display())))?;
                }
                // It holds the values of refused rows: readable by its owner only. SQLite gives
                // the -wal and -shm files it makes the store's own mode.
                if !path.exists() {
                    owner::open_private(path).map_err(|e| open_err(format!("cannot create it: {e}")))?;
                }
                let conn = rusqlite::Connection::open(path).map_err(|e| open_err(e.to_string()))?;
                conn.busy_timeout(Duration::from_secs(30))?;
                conn.pragma_update(None, "journal_mode", "WAL")?;
                conn.pragma_update(None, "synchronous", "NORMAL")?;
                conn.pragma_update(None, "cache_size", -8000)?;
                conn.set_prepared_statement_cache_capacity(32);
                Db::Sqlite(conn)
            }
            DatabaseUrl::Postgres(raw) => {
                // TLS as for a PostgreSQL app: the url's sslmode, sslrootcert, sslcert and sslkey.
                let (raw, tls) = dualsync_tls::url::split_postgres(raw).map_err(|e| open_err(e.to_string()))?;
                let tls_client = dualsync_tls::client_config(&tls).map_err(|e| open_err(e.to_string()))?;
                let mut config: postgres::Config = raw.parse().map_err(|e: postgres::Error| open_err(e.to_string()))?;
                if let Some(p) = password {
                    config.password(p);
                }
                config.application_name("dualsync-state");
                config.ssl_mode(match (tls.mode.uses_tls(), tls.requires_tls()) {
                    (false, _) => postgres::config::SslMode::Disable,
                    (true, false) => postgres::config::SslMode::Prefer,
                    (true, true) => postgres::config::SslMode::Require,
                });
                let connected = match tls.mode.uses_tls() {
                    true => config.connect(tokio_postgres_rustls::MakeRustlsConnect::new((*tls_client).clone())),
                    false => config.connect(postgres::NoTls),
                };
                let mut client =
                    connected.map_err(|e| open_err(dualsync_tls::explain(&e, &tls).unwrap_or_else(|| db::pg(e).to_string())))?;
                // While this process holds the store (or works on it), its sessions carry the lease
                // they write under: the store refuses their writes once that lease has moved on
                // (004_work.sql).
                if let Some((unit, epoch)) = owner::held_session(&url.to_string()) {
                    client
                        .execute(
                            "SELECT set_config('dualsync.lease_unit', $1, false), set_config('dualsync.lease_epoch', $2, false)",
                            &[&unit, &epoch.to_string()],
                        )
                        .map_err(db::pg)?;
                }
                tls_note = Some((tls.to_string(), tls.verified()));
                Db::Postgres(client)
            }
            DatabaseUrl::Mysql(_) => return Err(StateError::Unsupported("MySQL")),
            DatabaseUrl::OData(_) => return Err(StateError::Unsupported("OData")),
        };
        migrate(&mut db, url)?;
        Ok(StateStore { db: Mutex::new(db), partition_ids: Mutex::new(HashMap::new()), tls: tls_note })
    }

    /// How the store's connection travels, as the server reports it: None
    /// for a SQLite file, else "TLSv1.3 TLS_AES_…, certificate … (sslmode=…)".
    pub fn transport(&self) -> Result<Option<String>, StateError> {
        let Some((settings, verified)) = &self.tls else { return Ok(None) };
        let rows = self.db().query("SELECT version, cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl", &[])?;
        Ok(Some(match rows.first() {
            Some(row) => format!("{} {}, {verified} ({settings})", row[0].text(), row[1].text()),
            None => format!("not encrypted ({settings})"),
        }))
    }

    /// Whether the store already exists (a server store always may).
    pub fn exists(state: &StateConfig) -> bool {
        match &state.url {
            DatabaseUrl::Sqlite(p) => Path::new(p).exists(),
            _ => true,
        }
    }

    fn db(&self) -> MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Inserts a row and returns its id.
    fn insert_returning_id(&self, sql: &str, params: &[P<'_>]) -> Result<i64, StateError> {
        let rows = self.db().query(&format!("{sql} RETURNING id"), params)?;
        Ok(rows.first().and_then(|r| r.first()).map_or(0, Cell::int))
    }

    pub fn begin_run(&self, kind: &str) -> Result<i64, StateError> {
        self.insert_returning_id("INSERT INTO runs (kind, started_at) VALUES (?1, ?2)", &[P::Text(kind), P::Text(&now())])
    }

    pub fn finish_run(&self, run_id: i64, status: RunStatus, message: Option<&str>) -> Result<(), StateError> {
        self.db().execute(
            "UPDATE runs SET status = ?2, message = ?3, ended_at = ?4 WHERE id = ?1",
            &[P::Int(run_id), P::Text(status.as_str()), P::OptText(message), P::Text(&now())],
        )?;
        Ok(())
    }

    pub fn begin_partition(&self, run_id: i64, map: &str, company: &str, apps: [&str; 2]) -> Result<i64, StateError> {
        self.insert_returning_id(
            "INSERT INTO run_partitions (run_id, map, company, app_0, app_1, started_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            &[P::Int(run_id), P::Text(map), P::Text(company), P::Text(apps[0]), P::Text(apps[1]), P::Text(&now())],
        )
    }

    pub fn finish_partition(&self, id: i64, counts: &Counts, status: RunStatus, message: Option<&str>) -> Result<(), StateError> {
        let n = |v: u64| P::Int(v as i64);
        self.db().execute(
            "UPDATE run_partitions SET status = ?2, message = ?3, ended_at = ?4,
               read_0 = ?5, read_1 = ?6, inserted_0 = ?7, inserted_1 = ?8, updated_0 = ?9, updated_1 = ?10,
               failed_0 = ?11, failed_1 = ?12, unchanged = ?13, deleted_0 = ?14, deleted_1 = ?15, conflicts = ?16
             WHERE id = ?1",
            &[
                P::Int(id),
                P::Text(status.as_str()),
                P::OptText(message),
                P::Text(&now()),
                n(counts.read[0]),
                n(counts.read[1]),
                n(counts.inserted[0]),
                n(counts.inserted[1]),
                n(counts.updated[0]),
                n(counts.updated[1]),
                n(counts.failed[0]),
                n(counts.failed[1]),
                n(counts.unchanged),
                n(counts.deleted[0]),
                n(counts.deleted[1]),
                n(counts.conflicts),
            ],
        )?;
        Ok(())
    }

    /// Logs failed rows. A row that is already open in the log gets its
    /// message, value and run updated and its attempts counted up.
    pub fn record_errors(&self, run_id: i64, errors: &[NewError]) -> Result<(), StateError> {
        self.record_errors_of(run_id, None, errors)
    }

    /// `record_errors`, noting the chunk of a shared sync (work.rs) that met
    /// them: its company's cleanup keeps open only the errors of the attempt
    /// that finished each chunk (PostgreSQL store).
    pub fn record_errors_of(&self, run_id: i64, chunk: Option<i64>, errors: &[NewError]) -> Result<(), StateError> {
        let mut db = self.db();
        let at = now();
        let (column, value, update) = match chunk {
            Some(_) => (", chunk_item", ", ?11", ", chunk_item = excluded.chunk_item"),
            None => ("", "", ""),
        };
        let sql = format!(
            "INSERT INTO errors (run_id, map, company, source_app, target_app, key, column_name, value, message, first_seen, last_seen{column})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10{value})
             ON CONFLICT (map, company, target_app, key) WHERE status = 'open' DO UPDATE SET
               run_id = excluded.run_id, column_name = excluded.column_name, value = excluded.value,
               message = excluded.message, source_app = excluded.source_app,
               attempts = errors.attempts + 1, last_seen = excluded.last_seen{update}"
        );
        db.batch("BEGIN")?;
        for e in errors {
            let mut params = vec![
                P::Int(run_id),
                P::Text(&e.map),
                P::Text(&e.company),
                P::Text(&e.source_app),
                P::Text(&e.target_app),
                P::Text(&e.key),
                P::OptText(e.column.as_deref()),
                P::OptText(e.value.as_deref()),
                P::Text(&e.message),
                P::Text(&at),
            ];
            if let Some(chunk) = chunk {
                params.push(P::Int(chunk));
            }
            let result = db.execute(&sql, &params);
            if let Err(e) = result {
                db.batch("ROLLBACK")?;
                return Err(e);
            }
        }
        db.batch("COMMIT")
    }

    /// After a complete full run of a partition: open errors that this run did
    /// not hit again are resolved (the row synced, or no longer differs).
    pub fn resolve_errors_not_in_run(&self, map: &str, company: &str, run_id: i64) -> Result<u64, StateError> {
        self.db().execute(
            "UPDATE errors SET status = 'resolved', last_seen = ?4 WHERE map = ?1 AND company = ?2 AND status = 'open' AND run_id <> ?3",
            &[P::Text(map), P::Text(company), P::Int(run_id), P::Text(&now())],
        )
    }

    /// Resolves the open error of one row, if there is one (after a retry or resync synced it).
    pub fn resolve_row(&self, map: &str, company: &str, key: &str) -> Result<u64, StateError> {
        self.db().execute(
            "UPDATE errors SET status = 'resolved', last_seen = ?4 WHERE map = ?1 AND company = ?2 AND key = ?3 AND status = 'open'",
            &[P::Text(map), P::Text(company), P::Text(key), P::Text(&now())],
        )
    }

    /// The conditions of an error query and their parameters: only the filters
    /// given, each a plain comparison, so that the store can use its indexes
    /// (an `id > after` page of a million errors starts at `after`).
    fn error_conditions<'a>(query: &'a ErrorQuery) -> (String, Vec<P<'a>>) {
        let mut clauses = Vec::new();
        let mut params: Vec<P<'_>> = Vec::new();
        let mut add = |clause: &str, param: P<'a>| {
            params.push(param);
            clauses.push(clause.replace('?', &format!("?{}", params.len())));
        };
        for (column, value) in [("map", &query.map), ("company", &query.company), ("column_name", &query.column)] {
            if let Some(v) = value {
                add(&format!("{column} = ?"), P::Text(v));
            }
        }
        if let Some(app) = &query.app {
            add("(source_app = ? OR target_app = ?)", P::Text(app));
        }
        if let Some(run) = query.run {
            add("run_id = ?", P::Int(run));
        }
        if let Some(after) = query.after_id {
            add("id > ?", P::Int(after));
        }
        if !query.include_resolved {
            clauses.push("status = 'open'".into());
        }
        if !query.ids.is_empty() {
            clauses.push(format!("id IN ({})", query.ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")));
        }
        let clause = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
        (clause, params)
    }

    /// How many errors the query selects (its limit aside).
    pub fn error_count(&self, query: &ErrorQuery) -> Result<u64, StateError> {
        let (clause, params) = Self::error_conditions(query);
        let sql = format!("SELECT count(*) FROM errors {clause}");
        Ok(self.db().query(&sql, &params)?.first().and_then(|r| r.first()).map_or(0, Cell::int) as u64)
    }

    pub fn errors(&self, query: &ErrorQuery) -> Result<Vec<ErrorRecord>, StateError> {
        let limit = query.limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
        let (clause, params) = Self::error_conditions(query);
        let rows = self.db().query(
            &format!(
                "SELECT id, run_id, map, company, source_app, target_app, key, column_name, value, message, attempts, status, first_seen, last_seen, note
                 FROM errors {clause} ORDER BY id{limit}"
            ),
            &params,
        )?;
        Ok(rows
            .iter()
            .map(|r| ErrorRecord {
                id: r[0].int(),
                run_id: r[1].int(),
                error: NewError {
                    map: r[2].text(),
                    company: r[3].text(),
                    source_app: r[4].text(),
                    target_app: r[5].text(),
                    key: r[6].text(),
                    column: r[7].opt_text(),
                    value: r[8].opt_text(),
                    message: r[9].text(),
                },
                attempts: r[10].int(),
                status: r[11].text(),
                first_seen: r[12].text(),
                last_seen: r[13].text(),
                note: r[14].opt_text(),
            })
            .collect())
    }

    pub fn open_error_count(&self, map: &str) -> Result<i64, StateError> {
        self.count("SELECT count(*) FROM errors WHERE map = ?1 AND status = 'open'", map)
    }

    fn count(&self, sql: &str, param: &str) -> Result<i64, StateError> {
        Ok(self.db().query(sql, &[P::Text(param)])?.first().and_then(|r| r.first()).map_or(0, Cell::int))
    }

    /// The number of a (map, company) pair, created on first use.
    fn partition_id(&self, db: &mut Db, map: &str, company: &str) -> Result<i64, StateError> {
        let key = (map.to_string(), company.to_string());
        if let Some(id) = self.partition_ids.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(*id);
        }
        db.execute("INSERT INTO partitions (map, company) VALUES (?1, ?2) ON CONFLICT DO NOTHING", &[P::Text(map), P::Text(company)])?;
        let id = db.query("SELECT id FROM partitions WHERE map = ?1 AND company = ?2", &[P::Text(map), P::Text(company)])?[0][0].int();
        self.partition_ids.lock().unwrap_or_else(|p| p.into_inner()).insert(key, id);
        Ok(id)
    }

    /// Stores the merge base (column hashes) of synced keys (one transaction per call).
    pub fn record_key_bases(&self, map: &str, company: &str, run_id: i64, hashes: &[(String, Vec<u8>)]) -> Result<(), StateError> {
        self.record_key_bases_of(map, company, run_id, None, hashes)
    }

    /// `record_key_bases`, noting the chunk of a shared sync (work.rs) that
    /// recorded them: its company's cleanup keeps only the bases recorded by
    /// the attempt that finished each chunk (PostgreSQL store).
    pub fn record_key_bases_of(
        &self,
        map: &str,
        company: &str,
        run_id: i64,
        chunk: Option<i64>,
        hashes: &[(String, Vec<u8>)],
    ) -> Result<(), StateError> {
        let mut db = self.db();
        let partition = self.partition_id(&mut db, map, company)?;
        match &mut *db {
            // Keys in statements of 200 rows: one statement per key was a quarter of a sync's CPU.
            Db::Sqlite(c) => {
                const ROWS: usize = 200;
                let sql = |n: usize| {
                    format!(
                        "INSERT INTO key_state (partition_id, key, content_hash, run_id) VALUES {}
                         ON CONFLICT (partition_id, key) DO UPDATE SET content_hash = excluded.content_hash, run_id = excluded.run_id",
                        vec!["(?, ?, ?, ?)"; n].join(", ")
                    )
                };
                let tx = c.transaction()?;
                for chunk in hashes.chunks(ROWS) {
                    let mut stmt = tx.prepare_cached(&sql(chunk.len()))?;
                    let mut params: Vec<rusqlite::types::ToSqlOutput<'_>> = Vec::with_capacity(chunk.len() * 4);
                    for (key, hash) in chunk {
                        params.push(rusqlite::types::ToSqlOutput::Owned(rusqlite::types::Value::Integer(partition)));
                        params.push(rusqlite::types::ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Text(key.as_bytes())));
                        params.push(rusqlite::types::ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Blob(&hash[..])));
                        params.push(rusqlite::types::ToSqlOutput::Owned(rusqlite::types::Value::Integer(run_id)));
                    }
                    stmt.execute(rusqlite::params_from_iter(params))?;
                }
                tx.commit()?;
            }
            // One statement per batch: a round trip per key would be the bottleneck.
            Db::Postgres(c) => {
                let keys: Vec<&str> = hashes.iter().map(|h| h.0.as_str()).collect();
                let digests: Vec<&[u8]> = hashes.iter().map(|h| &h.1[..]).collect();
                c.execute(
                    "INSERT INTO key_state (partition_id, key, content_hash, run_id, chunk_item)
                     SELECT $1, k, h, $4, $5 FROM unnest($2::text[], $3::bytea[]) AS t(k, h)
                     ON CONFLICT (partition_id, key) DO UPDATE
                     SET content_hash = excluded.content_hash, run_id = excluded.run_id, chunk_item = excluded.chunk_item",
                    &[&partition, &keys, &digests, &run_id, &chunk],
                )
                .map_err(db::pg)?;
            }
        }
        Ok(())
    }

    /// After a complete full run of a partition: keys it did not see exist on neither side any more.
    pub fn forget_keys_not_in_run(&self, map: &str, company: &str, run_id: i64) -> Result<u64, StateError> {
        let mut db = self.db();
        let partition = self.partition_id(&mut db, map, company)?;
        db.execute("DELETE FROM key_state WHERE partition_id = ?1 AND run_id <> ?2", &[P::Int(partition), P::Int(run_id)])
    }

    pub fn key_base(&self, map: &str, company: &str, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        let rows = self.db().query(
            "SELECT k.content_hash FROM key_state k JOIN partitions p ON p.id = k.partition_id
             WHERE p.map = ?1 AND p.company = ?2 AND k.key = ?3",
            &[P::Text(map), P::Text(company), P::Text(key)],
        )?;
        Ok(match rows.first().and_then(|r| r.first()) {
            Some(Cell::Blob(b)) => Some(b.clone()),
            _ => None,
        })
    }

    /// How many keys of one (map, company) have a merge base.
    pub fn partition_key_count(&self, map: &str, company: &str) -> Result<i64, StateError> {
        let rows = self.db().query(
            "SELECT count(*) FROM key_state k JOIN partitions p ON p.id = k.partition_id WHERE p.map = ?1 AND p.company = ?2",
            &[P::Text(map), P::Text(company)],
        )?;
        Ok(rows[0][0].int())
    }

    /// A page of a map's keys with a merge base, as (company, key), after
    /// `after` in (company, key) order: live sync's delete scan walks them.
    pub fn base_keys_after(&self, map: &str, after: Option<(&str, &str)>, limit: usize) -> Result<Vec<(String, String)>, StateError> {
        let (company, key) = after.unwrap_or(("", ""));
        let rows = self.db().query(
            "SELECT p.company, k.key FROM key_state k JOIN partitions p ON p.id = k.partition_id
             WHERE p.map = ?1 AND (p.company > ?2 OR (p.company = ?2 AND k.key > ?3)) ORDER BY p.company, k.key LIMIT ?4",
            &[P::Text(map), P::Text(company), P::Text(key), P::Int(limit as i64)],
        )?;
        Ok(rows.into_iter().map(|r| (r[0].text(), r[1].text())).collect())
    }

    pub fn key_count(&self, map: &str) -> Result<i64, StateError> {
        self.count("SELECT count(*) FROM key_state k JOIN partitions p ON p.id = k.partition_id WHERE p.map = ?1", map)
    }

    /// The partitions of the most recent run of each map.
    pub fn last_partitions(&self) -> Result<Vec<PartitionRecord>, StateError> {
        self.partitions("WHERE p.run_id = (SELECT max(q.run_id) FROM run_partitions q WHERE q.map = p.map) ORDER BY p.map, p.company", &[])
    }

    pub fn partitions_of_run(&self, run_id: i64) -> Result<Vec<PartitionRecord>, StateError> {
        self.partitions("WHERE p.run_id = ?1 ORDER BY p.id", &[P::Int(run_id)])
    }

    fn partitions(&self, clause: &str, params: &[P<'_>]) -> Result<Vec<PartitionRecord>, StateError> {
        let rows = self.db().query(
            &format!(
                "SELECT p.id, p.run_id, p.map, p.company, p.app_0, p.app_1, p.started_at, p.ended_at, p.status, p.message,
                        p.read_0, p.read_1, p.inserted_0, p.inserted_1, p.updated_0, p.updated_1, p.failed_0, p.failed_1, p.unchanged,
                        p.deleted_0, p.deleted_1, p.conflicts
                 FROM run_partitions p {clause}"
            ),
            params,
        )?;
        let n = |c: &Cell| c.int() as u64;
        Ok(rows
            .iter()
            .map(|r| PartitionRecord {
                id: r[0].int(),
                run_id: r[1].int(),
                map: r[2].text(),
                company: r[3].text(),
                apps: [r[4].text(), r[5].text()],
                started_at: r[6].text(),
                ended_at: r[7].opt_text(),
                status: r[8].text(),
                message: r[9].opt_text(),
                counts: Counts {
                    read: [n(&r[10]), n(&r[11])],
                    inserted: [n(&r[12]), n(&r[13])],
                    updated: [n(&r[14]), n(&r[15])],
                    failed: [n(&r[16]), n(&r[17])],
                    unchanged: n(&r[18]),
                    deleted: [n(&r[19]), n(&r[20])],
                    conflicts: n(&r[21]),
                    no_company: [0, 0],
                },
            })
            .collect())
    }
}

fn migrate(db: &mut Db, url: &DatabaseUrl) -> Result<(), StateError> {
    let migrations = if db.is_postgres() { POSTGRES_MIGRATIONS } else { SQLITE_MIGRATIONS };
    if let Err(e) = db.batch("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)") {
        // Two processes creating it at once: PostgreSQL fails the slower one, and the table is there.
        let made = db.query("SELECT count(*) FROM schema_version", &[]).is_ok();
        if !made {
            return Err(e);
        }
    }
    let known = migrations.len() as i64;
    let current = |db: &mut Db| -> Result<i64, StateError> {
        let version = db.query("SELECT coalesce(max(version), 0) FROM schema_version", &[])?[0][0].int();
        if version > known {
            return Err(StateError::TooNew { location: url.to_string(), found: version, known });
        }
        Ok(version)
    };
    if current(db)? == known {
        return Ok(());
    }
    // Several processes may start on a new store at once: one applies each step, the others wait and skip it.
    db.batch(if db.is_postgres() { "BEGIN; LOCK TABLE schema_version IN EXCLUSIVE MODE" } else { "BEGIN IMMEDIATE" })?;
    let applied = (|| {
        for (i, sql) in migrations.iter().enumerate().skip(current(db)? as usize) {
            db.batch(sql)?;
            db.execute("INSERT INTO schema_version (version) VALUES (?1)", &[P::Int(i as i64 + 1)])?;
        }
        Ok(())
    })();
    match applied {
        Ok(()) => db.batch("COMMIT"),
        Err(e) => {
            db.batch("ROLLBACK")?;
            Err(e)
        }
    }
}
