//! Change capture on MySQL/MariaDB: row triggers per table record the captured
//! columns of every changed row in `dualsync_changes`.
//!
//! InnoDB numbers rows before commit and has no snapshot horizon to read, so
//! the cursor is time-based: a change is read only once every transaction
//! that was running when it was written has ended. The oldest running
//! transaction comes from `information_schema.INNODB_TRX` (the app user needs
//! PROCESS to see other users' transactions); its start is known to the
//! second and the view is cached, hence a margin of a second (half a second
//! when nothing writes). So capture on MySQL adds about a second of latency;
//! it never passes a change that commits late.
//!
//! dualsync's sessions set `@dualsync_origin`; the triggers skip their rows.

use super::{backtick, db_error};
use crate::{CaptureSpec, Change, ConnectorError, Cursor, ErrorKind};
use dualsync_model::row::key_from_text;
use mysql::prelude::Queryable;

pub const ORIGIN: &str = "SET @dualsync_origin = 'dualsync'";

const SETUP: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS dualsync_changes (
        seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        tbl VARCHAR(64) NOT NULL,
        `key` TEXT NOT NULL,
        op CHAR(1) NOT NULL,
        origin VARCHAR(300) NOT NULL,
        at BIGINT NOT NULL,
        KEY dualsync_changes_by_time (tbl, at, seq)
    ) ENGINE = InnoDB",
    "CREATE TABLE IF NOT EXISTS dualsync_capture (tbl VARCHAR(64) PRIMARY KEY, columns TEXT NOT NULL) ENGINE = InnoDB",
];

/// Microseconds since 1970 when the row is written (SYSDATE, not NOW: the
/// statement may have started, waiting on a lock, before its transaction did).
const NOW_MICROS: &str = "CAST(UNIX_TIMESTAMP(SYSDATE(6)) * 1000000 AS SIGNED)";

const TRIGGERS: [char; 3] = ['i', 'u', 'd'];

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

fn trigger_name(table: &str, op: char) -> String {
    backtick(&format!("dualsync_{table}_{op}"))
}

pub fn install(conn: &mut mysql::Conn, spec: &CaptureSpec) -> Result<(), ConnectorError> {
    for sql in SETUP {
        conn.query_drop(sql).map_err(|e| capture_error(&spec.table, e))?;
    }
    let table = backtick(&spec.table);
    let key =
        |row: &str| format!("JSON_ARRAY({})", spec.columns.iter().map(|c| format!("{row}.{}", backtick(c))).collect::<Vec<_>>().join(", "));
    let record = |row: &str, op: &str| {
        format!(
            "INSERT INTO dualsync_changes (tbl, `key`, op, origin, at) VALUES ({}, {}, '{op}', CURRENT_USER(), {NOW_MICROS});",
            literal(&spec.table),
            key(row)
        )
    };
    let same_key = spec.columns.iter().map(|c| format!("OLD.{0} <=> NEW.{0}", backtick(c))).collect::<Vec<_>>().join(" AND ");
    let bodies = [
        ('i', "INSERT", record("NEW", "I")),
        ('u', "UPDATE", format!("{} IF NOT ({same_key}) THEN {} END IF;", record("NEW", "U"), record("OLD", "D"))),
        ('d', "DELETE", record("OLD", "D")),
    ];
    for (op, event, body) in bodies {
        conn.query_drop(format!("DROP TRIGGER IF EXISTS {}", trigger_name(&spec.table, op))).map_err(db_error)?;
        conn.query_drop(format!(
            "CREATE TRIGGER {} AFTER {event} ON {table} FOR EACH ROW BEGIN IF @dualsync_origin IS NULL THEN {body} END IF; END",
            trigger_name(&spec.table, op)
        ))
        .map_err(|e| capture_error(&spec.table, e))?;
    }
    let columns = serde_json::to_string(&spec.columns).expect("strings serialize");
    conn.exec_drop("REPLACE INTO dualsync_capture (tbl, columns) VALUES (?, ?)", (&spec.table, columns)).map_err(db_error)
}

fn capture_error(table: &str, e: mysql::Error) -> ConnectorError {
    let mut err = db_error(e);
    err.message = format!("cannot install change capture on table {table:?}: {}; the app's user needs CREATE and TRIGGER", err.message);
    err
}

fn has(conn: &mut mysql::Conn, table: &str) -> Result<bool, ConnectorError> {
    let n: Option<u64> = conn
        .exec_first("SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?", (table,))
        .map_err(db_error)?;
    Ok(n.unwrap_or(0) > 0)
}

pub fn remove(conn: &mut mysql::Conn, table: &str) -> Result<(), ConnectorError> {
    for op in TRIGGERS {
        conn.query_drop(format!("DROP TRIGGER IF EXISTS {}", trigger_name(table, op))).map_err(db_error)?;
    }
    for registry in ["dualsync_changes", "dualsync_capture"] {
        if has(conn, registry)? {
            conn.exec_drop(format!("DELETE FROM {registry} WHERE tbl = ?"), (table,)).map_err(db_error)?;
        }
    }
    Ok(())
}

pub fn capture_of(conn: &mut mysql::Conn, table: &str) -> Result<Option<Vec<String>>, ConnectorError> {
    if !has(conn, "dualsync_capture")? {
        return Ok(None);
    }
    let names = TRIGGERS.map(|op| format!("dualsync_{table}_{op}"));
    let triggers: Option<u64> = conn
        .exec_first(
            "SELECT count(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME IN (?, ?, ?)",
            (&names[0], &names[1], &names[2]),
        )
        .map_err(db_error)?;
    let columns: Option<String> = conn.exec_first("SELECT columns FROM dualsync_capture WHERE tbl = ?", (table,)).map_err(db_error)?;
    Ok(match columns {
        Some(c) if triggers == Some(TRIGGERS.len() as u64) => serde_json::from_str(&c).ok(),
        _ => None,
    })
}

fn require_setup(conn: &mut mysql::Conn) -> Result<(), ConnectorError> {
    if has(conn, "dualsync_changes")? {
        Ok(())
    } else {
        Err(ConnectorError::new(ErrorKind::Schema, "change capture is not installed in this database; run `dualsync start MAP`"))
    }
}

/// Every change written before this instant (µs) is final: committed or rolled back.
///
/// InnoDB refreshes `INNODB_TRX` only when nobody read it in the last 0.1 s, so
/// reading it at every poll would keep it stale: a server's horizon is read
/// at most every 0.25 s per process, and an older horizon is only more careful.
fn settled_before(conn: &mut mysql::Conn) -> Result<i64, ConnectorError> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};
    static HORIZONS: Mutex<Option<HashMap<String, (Instant, i64)>>> = Mutex::new(None);
    let server: String = conn.query_first("SELECT CONCAT(@@hostname, ':', @@port)").map_err(db_error)?.unwrap_or_default();
    if let Some((read, horizon)) = HORIZONS.lock().unwrap().get_or_insert_with(HashMap::new).get(&server) {
        if read.elapsed() < Duration::from_millis(250) {
            return Ok(*horizon);
        }
    }
    // Only transactions that changed rows can have written a change (its time is the write's, not the transaction's start).
    let row: Option<(Option<i64>, i64)> = conn
        .query_first(
            "SELECT CAST(UNIX_TIMESTAMP(MIN(trx_started)) * 1000000 AS SIGNED), CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)
             FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id <> CONNECTION_ID() AND trx_rows_modified > 0",
        )
        .map_err(db_error)?;
    let (oldest, now) = row.unwrap_or((None, 0));
    let horizon = match oldest {
        Some(started) => started.min(now) - 1_000_000,
        None => now - 500_000,
    };
    HORIZONS.lock().unwrap().get_or_insert_with(HashMap::new).insert(server, (Instant::now(), horizon));
    Ok(horizon)
}

/// A cursor is `at:seq`: after every change written before `at`, and those at `at` up to `seq`.
fn parse(cursor: &Cursor) -> Result<(i64, i64), ConnectorError> {
    if cursor.0.is_empty() {
        return Ok((0, 0));
    }
    let bad = || ConnectorError::new(ErrorKind::Database, format!("{:?} is not a MySQL change cursor", cursor.0));
    let (at, seq) = cursor.0.split_once(':').ok_or_else(bad)?;
    Ok((at.parse().map_err(|_| bad())?, seq.parse().map_err(|_| bad())?))
}

pub fn cursor(conn: &mut mysql::Conn) -> Result<Cursor, ConnectorError> {
    require_setup(conn)?;
    // Changes still unsettled may commit after now: the cursor stays before them.
    Ok(Cursor(format!("{}:0", settled_before(conn)?)))
}

pub fn read(conn: &mut mysql::Conn, table: &str, after: &Cursor, limit: usize) -> Result<(Vec<Change>, Cursor), ConnectorError> {
    require_setup(conn)?;
    let (at, seq) = parse(after)?;
    let settled = settled_before(conn)?;
    let rows: Vec<(i64, i64, String, String)> = conn
        .exec(
            "SELECT at, seq, `key`, op FROM dualsync_changes
             WHERE tbl = ? AND (at > ? OR (at = ? AND seq > ?)) AND at < ? ORDER BY at, seq LIMIT ?",
            (table, at, at, seq, settled, limit as u64),
        )
        .map_err(db_error)?;
    let mut last = after.clone();
    let mut out = Vec::with_capacity(rows.len());
    for (at, seq, key, op) in rows {
        last = Cursor(format!("{at}:{seq}"));
        out.push(Change { values: key_from_text(&key), kind: crate::sqlite::change_kind(&op), at_micros: at });
    }
    Ok((out, last))
}

pub fn trim(conn: &mut mysql::Conn, table: &str, readers: &[Cursor]) -> Result<u64, ConnectorError> {
    if readers.is_empty() || !has(conn, "dualsync_changes")? {
        return Ok(0);
    }
    let earliest = readers.iter().map(parse).collect::<Result<Vec<_>, _>>()?.into_iter().min().unwrap_or((0, 0));
    conn.exec_drop(
        "DELETE FROM dualsync_changes WHERE tbl = ? AND (at < ? OR (at = ? AND seq <= ?))",
        (table, earliest.0, earliest.0, earliest.1),
    )
    .map_err(db_error)?;
    Ok(conn.affected_rows())
}

pub fn pending(conn: &mut mysql::Conn, table: &str, after: &Cursor) -> Result<u64, ConnectorError> {
    if !has(conn, "dualsync_changes")? {
        return Ok(0);
    }
    let (at, seq) = parse(after)?;
    let n: Option<u64> = conn
        .exec_first("SELECT count(*) FROM dualsync_changes WHERE tbl = ? AND (at > ? OR (at = ? AND seq > ?))", (table, at, at, seq))
        .map_err(db_error)?;
    Ok(n.unwrap_or(0))
}
