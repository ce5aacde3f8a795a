//! Change capture on SQLite: four triggers per table write the captured
//! columns of every changed row into `dualsync_changes` in the same file.
//!
//! SQLite has one writer at a time, so sequence order is commit order and a
//! plain sequence number is an exact cursor. dualsync's own write transactions
//! put a row into `dualsync_origin` while they run (and remove it before they
//! end): the triggers skip changes made while it is there, so nothing dualsync
//! writes is captured back. Triggers use only SQL that every SQLite since 3.38
//! knows, because the application's own SQLite runs them too.
//!
//! Every transaction here that writes begins IMMEDIATE: a deferred one that
//! reads first cannot wait for the write lock in WAL mode (SQLite refuses it
//! at once with `database is locked` when the application committed since its
//! read began, whatever the busy timeout), while `BEGIN IMMEDIATE` waits.

use super::db_error;
use crate::sql::double_quote as quote;
use crate::{CaptureSpec, Change, ChangeKind, ConnectorError, Cursor, ErrorKind};
use dualsync_model::row::key_from_text;
use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};

const SETUP: &str = "
CREATE TABLE IF NOT EXISTS dualsync_changes (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    tbl    TEXT NOT NULL,
    key    TEXT NOT NULL,
    op     TEXT NOT NULL,
    origin TEXT NOT NULL,
    at     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dualsync_origin (writer INTEGER);
CREATE TABLE IF NOT EXISTS dualsync_capture (tbl TEXT PRIMARY KEY, columns TEXT NOT NULL);
";

/// Microseconds since 1970 in SQL every SQLite version knows (millisecond precision).
const NOW_MICROS: &str = "CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)";

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The triggers of a captured table: insert, update, key change, delete.
const TRIGGERS: [char; 4] = ['i', 'u', 'k', 'd'];

fn trigger_name(table: &str, op: char) -> String {
    quote(&format!("dualsync_{table}_{op}"))
}

/// A write transaction that holds the write lock from its start (waiting for it up to the busy timeout).
fn write_transaction(conn: &mut rusqlite::Connection) -> Result<Transaction<'_>, ConnectorError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)
}

pub fn install(conn: &mut rusqlite::Connection, spec: &CaptureSpec) -> Result<(), ConnectorError> {
    let tx = write_transaction(conn)?;
    tx.execute_batch(SETUP).map_err(db_error)?;
    let table = quote(&spec.table);
    let key =
        |row: &str| format!("json_array({})", spec.columns.iter().map(|c| format!("{row}.{}", quote(c))).collect::<Vec<_>>().join(", "));
    let record = |row: &str, op: &str| {
        format!(
            "INSERT INTO dualsync_changes (tbl, key, op, origin, at) VALUES ({}, {}, '{op}', 'app', {NOW_MICROS});",
            literal(&spec.table),
            key(row)
        )
    };
    let guard = "NOT EXISTS (SELECT 1 FROM dualsync_origin)";
    for op in TRIGGERS {
        tx.execute_batch(&format!("DROP TRIGGER IF EXISTS {}", trigger_name(&spec.table, op))).map_err(db_error)?;
    }
    // An update that changes the key (or company) also deletes the old key: its own trigger, so
    // that ordinary updates do not compare keys.
    let columns = spec.columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    let key_changed = spec.columns.iter().map(|c| format!("OLD.{0} IS NOT NEW.{0}", quote(c))).collect::<Vec<_>>().join(" OR ");
    let statements = [
        format!("CREATE TRIGGER {} AFTER INSERT ON {table} WHEN {guard} BEGIN {} END", trigger_name(&spec.table, 'i'), record("NEW", "I")),
        format!(
            "CREATE TRIGGER {} AFTER UPDATE OF {columns} ON {table} WHEN ({key_changed}) AND {guard} BEGIN {} END",
            trigger_name(&spec.table, 'k'),
            record("OLD", "D")
        ),
        // SQLite runs the last-created trigger first: this one, before the key change's delete.
        format!("CREATE TRIGGER {} AFTER UPDATE ON {table} WHEN {guard} BEGIN {} END", trigger_name(&spec.table, 'u'), record("NEW", "U")),
        format!("CREATE TRIGGER {} AFTER DELETE ON {table} WHEN {guard} BEGIN {} END", trigger_name(&spec.table, 'd'), record("OLD", "D")),
    ];
    for sql in &statements {
        tx.execute_batch(sql).map_err(|e| capture_error(&spec.table, e))?;
    }
    let columns = serde_json::to_string(&spec.columns).expect("strings serialize");
    tx.execute("INSERT OR REPLACE INTO dualsync_capture (tbl, columns) VALUES (?1, ?2)", params![spec.table, columns]).map_err(db_error)?;
    tx.commit().map_err(db_error)
}

fn capture_error(table: &str, e: rusqlite::Error) -> ConnectorError {
    let mut err = db_error(e);
    err.message = format!("cannot install change capture on table {table:?}: {}", err.message);
    err
}

fn table_exists(conn: &rusqlite::Connection, name: &str) -> Result<bool, ConnectorError> {
    conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", [name], |r| r.get::<_, i64>(0))
        .map(|n| n > 0)
        .map_err(db_error)
}

fn has_setup(conn: &rusqlite::Connection) -> Result<bool, ConnectorError> {
    table_exists(conn, "dualsync_capture")
}

pub fn remove(conn: &mut rusqlite::Connection, table: &str) -> Result<(), ConnectorError> {
    let tx = write_transaction(conn)?;
    for op in TRIGGERS {
        tx.execute_batch(&format!("DROP TRIGGER IF EXISTS {}", trigger_name(table, op))).map_err(db_error)?;
    }
    // Whatever is left of a damaged install goes too.
    for registry in ["dualsync_changes", "dualsync_capture"] {
        if table_exists(&tx, registry)? {
            tx.execute(&format!("DELETE FROM {registry} WHERE tbl = ?1"), [table]).map_err(db_error)?;
        }
    }
    tx.commit().map_err(db_error)
}

pub fn capture_of(conn: &rusqlite::Connection, table: &str) -> Result<Option<Vec<String>>, ConnectorError> {
    if !has_setup(conn)? {
        return Ok(None);
    }
    let names = TRIGGERS.map(|op| format!("dualsync_{table}_{op}"));
    let triggers: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?1 AND name IN (?2, ?3, ?4, ?5)",
            params![table, names[0], names[1], names[2], names[3]],
            |r| r.get(0),
        )
        .map_err(db_error)?;
    let columns: Option<String> =
        conn.query_row("SELECT columns FROM dualsync_capture WHERE tbl = ?1", [table], |r| r.get(0)).optional().map_err(db_error)?;
    Ok(match columns {
        Some(c) if triggers == TRIGGERS.len() as i64 => serde_json::from_str(&c).ok(),
        _ => None,
    })
}

fn require_setup(conn: &rusqlite::Connection) -> Result<(), ConnectorError> {
    if has_setup(conn)? {
        Ok(())
    } else {
        Err(ConnectorError::new(ErrorKind::Schema, "change capture is not installed in this database; run `dualsync start MAP`"))
    }
}

pub fn cursor(conn: &rusqlite::Connection) -> Result<Cursor, ConnectorError> {
    require_setup(conn)?;
    let seq: i64 = conn.query_row("SELECT coalesce(max(seq), 0) FROM dualsync_changes", [], |r| r.get(0)).map_err(db_error)?;
    Ok(Cursor(seq.to_string()))
}

fn seq_of(cursor: &Cursor) -> Result<i64, ConnectorError> {
    if cursor.0.is_empty() {
        return Ok(0);
    }
    cursor.0.parse().map_err(|_| ConnectorError::new(ErrorKind::Database, format!("{:?} is not a SQLite change cursor", cursor.0)))
}

pub fn read(conn: &rusqlite::Connection, table: &str, after: &Cursor, limit: usize) -> Result<(Vec<Change>, Cursor), ConnectorError> {
    require_setup(conn)?;
    let mut stmt = conn
        .prepare_cached("SELECT seq, key, op, at FROM dualsync_changes WHERE tbl = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3")
        .map_err(db_error)?;
    let mut last = seq_of(after)?;
    let mut out = Vec::new();
    let mut rows = stmt.query(params![table, last, limit as i64]).map_err(db_error)?;
    while let Some(r) = rows.next().map_err(db_error)? {
        last = r.get(0).map_err(db_error)?;
        let key: String = r.get(1).map_err(db_error)?;
        let op: String = r.get(2).map_err(db_error)?;
        out.push(Change { values: key_from_text(&key), kind: kind_of(&op), at_micros: r.get(3).map_err(db_error)? });
    }
    Ok((out, Cursor(last.to_string())))
}

pub(crate) fn kind_of(op: &str) -> ChangeKind {
    match op {
        "I" => ChangeKind::Insert,
        "D" => ChangeKind::Delete,
        _ => ChangeKind::Update,
    }
}

pub fn trim(conn: &mut rusqlite::Connection, table: &str, readers: &[Cursor]) -> Result<u64, ConnectorError> {
    if readers.is_empty() || !has_setup(conn)? {
        return Ok(0);
    }
    let upto = readers.iter().map(seq_of).collect::<Result<Vec<_>, _>>()?.into_iter().min().unwrap_or(0);
    let tx = write_transaction(conn)?;
    let trimmed = tx
        .execute("DELETE FROM dualsync_changes WHERE tbl = ?1 AND seq <= ?2", params![table, upto])
        .map(|n| n as u64)
        .map_err(db_error)?;
    tx.commit().map_err(db_error)?;
    Ok(trimmed)
}

pub fn pending(conn: &rusqlite::Connection, table: &str, after: &Cursor) -> Result<u64, ConnectorError> {
    if !has_setup(conn)? {
        return Ok(0);
    }
    conn.query_row("SELECT count(*) FROM dualsync_changes WHERE tbl = ?1 AND seq > ?2", params![table, seq_of(after)?], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n as u64)
    .map_err(db_error)
}

/// Whether this database has capture set up, so dualsync's writes must be marked.
pub fn origin_table_exists(conn: &rusqlite::Connection) -> Result<bool, ConnectorError> {
    conn.prepare_cached("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'dualsync_origin'")
        .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
        .map(|n| n > 0)
        .map_err(db_error)
}
