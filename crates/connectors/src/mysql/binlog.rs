//! Log capture on MySQL/MariaDB: the binary log, read as a replica reads it
//! (COM_BINLOG_DUMP), row events decoded into the changes capture records.
//!
//! The server keeps no place for a reader (no slot): the reader's cursor is
//! its place, and the log is kept as long as the server's expiry says
//! (`binlog_expire_logs_seconds`). A cursor whose file was purged cannot be
//! read any more: the map must be restarted. Each reader's captured columns
//! are recorded in `dualsync_log_capture`.
//!
//! Positions: a change is at `(file sequence << 32 | offset of its
//! transaction's first event, ordinal within the transaction)`, so a session
//! reopened at a change's `major` reads its transaction again from the start
//! and the stream drops the ordinals already taken. After each transaction
//! the stream is told `Passed(offset after its commit, 0)`.
//!
//! dualsync's own write transactions run with `skip_replication = 1`
//! (MariaDB: every event of theirs carries flag 0x8000, and no privilege is
//! needed). Where that cannot be set (MySQL), each write transaction first
//! writes a row of `dualsync_log_echo`. The decoder skips both kinds.
//! Caveat: a replica configured with `replicate_events_marked_for_skip` other
//! than REPLICATE would not apply dualsync's writes.
//!
//! Column names come from `information_schema.COLUMNS` (by position) unless
//! the table map carries them (`binlog_row_metadata = FULL`). Read by
//! position, events older than an ALTER still map when columns were added at
//! the end; a table whose columns no longer fit its older events (dropped,
//! moved, retyped) is a schema error (and two same-typed columns swapped
//! would go unseen: FULL metadata avoids both).

use super::db_error;
use crate::log::stream::{End, Streams};
use crate::log::{LogCursor, LogEvent, LogPos, LogSource, Logged};
use crate::{CaptureSpec, Change, ChangeKind, ConnectorError, Cursor, ErrorKind};
use dualsync_model::Value;
use mysql::binlog::events::{EventData, OptionalMetaExtractor, RowsEventData, TableMapEvent};
use mysql::binlog::value::BinlogValue;
use mysql::consts::ColumnType;
use mysql::prelude::Queryable;
use mysql::{BinlogRequest, BinlogStream, Conn, Opts, OptsBuilder};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

/// The table dualsync's write transactions mark themselves in where `skip_replication` cannot be set.
pub const ECHO_TABLE: &str = "dualsync_log_echo";
/// What those write transactions run first: a row per session, so writers
/// seldom wait on each other, and at most 4096 rows however many sessions come and go.
pub const MARK_TRANSACTION: &str =
    "INSERT INTO dualsync_log_echo (id, n) VALUES (CONNECTION_ID() % 4096, 1) ON DUPLICATE KEY UPDATE n = n + 1";

const SETUP: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS dualsync_log_capture (stream VARCHAR(64) PRIMARY KEY, tbl VARCHAR(64) NOT NULL, columns TEXT NOT NULL) ENGINE = InnoDB",
    "CREATE TABLE IF NOT EXISTS dualsync_log_echo (id BIGINT UNSIGNED PRIMARY KEY, n BIGINT NOT NULL) ENGINE = InnoDB",
];

/// Heartbeats the server sends on a quiet log, and how long a read may wait before the session counts as dead.
const HEARTBEAT: Duration = Duration::from_secs(1);
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// LOG_EVENT_SKIP_REPLICATION_F, on every event of a session with `skip_replication = 1`.
const SKIP_REPLICATION: u16 = 0x8000;
/// LOG_EVENT_ARTIFICIAL_F: events the dump thread makes up (the first ROTATE).
const ARTIFICIAL: u16 = 0x0020;
/// MariaDB's GTID event (mysql_common does not decode it).
const MARIA_GTID: u8 = 162;
const HEARTBEAT_EVENT: u8 = 27;
/// GTID flag: a group without BEGIN/COMMIT (DDL).
const GTID_STANDALONE: u8 = 1;

/// The server's current end of the binary log, as a position.
pub fn end(conn: &mut Conn) -> Result<(String, u64), ConnectorError> {
    let row: Option<mysql::Row> = match conn.query_first("SHOW MASTER STATUS") {
        // MySQL 8.4 knows only its new name.
        Err(mysql::Error::MySqlError(e)) if e.code == 1064 => conn.query_first("SHOW BINARY LOG STATUS"),
        other => other,
    }
    .map_err(status_error)?;
    let row = row.ok_or_else(|| ConnectorError::new(ErrorKind::Unsupported, "the binary log is off (log_bin): log capture needs it"))?;
    let file: Option<String> = row.get_opt(0).and_then(|r| r.ok());
    let pos: Option<u64> = row.get_opt(1).and_then(|r| r.ok());
    match (file, pos) {
        (Some(file), Some(pos)) => Ok((file, pos)),
        _ => Err(ConnectorError::new(ErrorKind::Database, "SHOW MASTER STATUS gave no file and position")),
    }
}

fn status_error(e: mysql::Error) -> ConnectorError {
    let mut err = db_error(e);
    err.message = format!("cannot read the binary log's position: {}", err.message);
    err
}

/// `mariadb-bin.000008` → 8.
fn file_seq(file: &str) -> Result<u64, ConnectorError> {
    file.rsplit_once('.')
        .and_then(|(_, n)| n.parse().ok())
        .ok_or_else(|| ConnectorError::new(ErrorKind::Database, format!("{file:?} is not a binary log file name")))
}

/// The file of sequence `seq`, named like `like`.
fn file_named(like: &str, seq: u64) -> String {
    let (base, digits) = like.rsplit_once('.').unwrap_or((like, "000000"));
    format!("{base}.{seq:0width$}", width = digits.len().max(6))
}

fn major(seq: u64, pos: u64) -> u64 {
    (seq << 32) | (pos & 0xFFFF_FFFF)
}

/// The log's end now, as a log position.
pub fn end_pos(conn: &mut Conn) -> Result<LogPos, ConnectorError> {
    let (file, pos) = end(conn)?;
    Ok(LogPos::new(major(file_seq(&file)?, pos), 0))
}

fn variables(conn: &mut Conn, names: &[&str]) -> Result<std::collections::HashMap<String, String>, ConnectorError> {
    let list = names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ");
    let rows: Vec<(String, String)> = conn.query(format!("SHOW GLOBAL VARIABLES WHERE Variable_name IN ({list})")).map_err(db_error)?;
    Ok(rows.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect())
}

/// What log capture needs that the server or the user lacks, each with its fix.
pub fn missing(conn: &mut Conn) -> Result<Vec<String>, ConnectorError> {
    let vars = variables(conn, &["log_bin", "binlog_format", "binlog_row_image", "version", "binlog_transaction_compression"])?;
    let get = |n: &str| vars.get(n).map(String::as_str).unwrap_or("");
    let mariadb = get("version").to_ascii_lowercase().contains("mariadb");
    let mut out = Vec::new();
    if !matches!(get("log_bin").to_ascii_uppercase().as_str(), "ON" | "1") {
        out.push(
            "the binary log is off (log_bin): set `log_bin` and `server_id` (a number no other server of the replication uses) \
             in the server's configuration and restart the server"
                .to_string(),
        );
    }
    if !get("binlog_format").eq_ignore_ascii_case("ROW") {
        out.push(format!(
            "binlog_format is {}: run `SET GLOBAL binlog_format = 'ROW'` and set binlog_format = ROW in the server's configuration",
            get("binlog_format")
        ));
    }
    if !get("binlog_row_image").eq_ignore_ascii_case("FULL") {
        out.push(format!(
            "binlog_row_image is {}: run `SET GLOBAL binlog_row_image = 'FULL'` and set binlog_row_image = FULL in the server's configuration",
            get("binlog_row_image")
        ));
    }
    if get("binlog_transaction_compression").eq_ignore_ascii_case("ON") {
        out.push(
            "binlog_transaction_compression is ON (MySQL): dualsync cannot read compressed transactions; \
             run `SET GLOBAL binlog_transaction_compression = OFF` and set it in the server's configuration"
                .to_string(),
        );
    }
    let user: Option<String> = conn.query_first("SELECT CURRENT_USER()").map_err(db_error)?;
    let user = user.unwrap_or_default();
    let (name, host) = user.rsplit_once('@').unwrap_or((&user, "%"));
    let grantee = format!("'{name}'@'{host}'");
    let grants: Vec<String> = conn.query("SHOW GRANTS").map_err(db_error)?;
    let global: Vec<String> = grants.iter().map(|g| g.to_ascii_uppercase()).filter(|g| g.contains(" ON *.* ")).collect();
    let has = |p: &str| global.iter().any(|g| g.contains("ALL PRIVILEGES") || g.contains(p));
    if !has("REPLICATION SLAVE") && !has("REPLICATION REPLICA") {
        out.push(format!("user {grantee} may not read the binary log: run `GRANT REPLICATION SLAVE ON *.* TO {grantee}`"));
    }
    // SHOW MASTER STATUS needs BINLOG MONITOR (MariaDB 10.5+) or REPLICATION CLIENT (MySQL); SUPER no longer implies it.
    if let Err(e) = end(conn) {
        if e.message.contains("denied") || e.message.contains("privilege") {
            let privilege = if mariadb { "BINLOG MONITOR" } else { "REPLICATION CLIENT" };
            out.push(format!("user {grantee} may not see the binary log's position: run `GRANT {privilege} ON *.* TO {grantee}`"));
        }
    }
    Ok(out)
}

/// Advice that does not stop log capture: a log expiry shorter than a day,
/// and column names left out of the log.
pub fn advice(conn: &mut Conn) -> Result<Vec<String>, ConnectorError> {
    let vars = variables(conn, &["binlog_expire_logs_seconds", "expire_logs_days", "binlog_row_metadata"])?;
    let seconds = match vars.get("binlog_expire_logs_seconds").and_then(|s| s.parse::<f64>().ok()) {
        Some(s) if s > 0.0 => s,
        _ => vars.get("expire_logs_days").and_then(|d| d.parse::<f64>().ok()).unwrap_or(0.0) * 86_400.0,
    };
    let mut out = Vec::new();
    if seconds > 0.0 && seconds < 86_400.0 {
        out.push(format!(
            "the binary log is kept only {} s (binlog_expire_logs_seconds): a map paused for longer loses its place and must be restarted; \
             keep it at least a day",
            seconds as u64
        ));
    }
    if vars.get("binlog_row_metadata").is_some_and(|m| !m.eq_ignore_ascii_case("FULL")) {
        out.push(
            "binlog_row_metadata is not FULL: the log does not name columns, so a map behind in the log when a column is dropped, \
             moved or retyped must be restarted; `SET GLOBAL binlog_row_metadata = FULL` avoids it"
                .to_string(),
        );
    }
    Ok(out)
}

/// Records the reader's captured columns and returns the cursor at the log's end now.
pub fn install(conn: &mut Conn, spec: &CaptureSpec, id: &str) -> Result<Cursor, ConnectorError> {
    if let Some(problem) = missing(conn)?.into_iter().next() {
        return Err(ConnectorError::new(ErrorKind::Unsupported, format!("log capture is not possible here: {problem}")));
    }
    for sql in SETUP {
        conn.query_drop(sql).map_err(|e| {
            let mut err = db_error(e);
            err.message = format!("cannot set up log capture on table {:?}: {}; the app's user needs CREATE", spec.table, err.message);
            err
        })?;
    }
    let columns = serde_json::to_string(&spec.columns).expect("strings serialize");
    conn.exec_drop("REPLACE INTO dualsync_log_capture (stream, tbl, columns) VALUES (?, ?, ?)", (id, &spec.table, columns))
        .map_err(db_error)?;
    Ok(LogCursor { stream: id.to_string(), pos: end_pos(conn)? }.to_cursor())
}

fn has_registry(conn: &mut Conn) -> Result<bool, ConnectorError> {
    let n: Option<u64> = conn
        .query_first(
            "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'dualsync_log_capture'",
        )
        .map_err(db_error)?;
    Ok(n.unwrap_or(0) > 0)
}

/// Ends this process's stream of the reader and forgets its columns.
pub fn remove(conn: &mut Conn, streams: &Streams, id: &str) -> Result<(), ConnectorError> {
    streams.close(id);
    if has_registry(conn)? {
        conn.exec_drop("DELETE FROM dualsync_log_capture WHERE stream = ?", (id,)).map_err(db_error)?;
    }
    Ok(())
}

pub fn capture_of(conn: &mut Conn, table: &str, id: &str) -> Result<Option<Vec<String>>, ConnectorError> {
    if !has_registry(conn)? {
        return Ok(None);
    }
    let columns: Option<String> =
        conn.exec_first("SELECT columns FROM dualsync_log_capture WHERE stream = ? AND tbl = ?", (id, table)).map_err(db_error)?;
    Ok(columns.and_then(|c| serde_json::from_str(&c).ok()))
}

/// The captured columns and the table of a stream.
fn registered(conn: &mut Conn, id: &str) -> Result<(Vec<String>, String), ConnectorError> {
    let gone = || ConnectorError::new(ErrorKind::Schema, format!("the log capture {id} is not in this database (dualsync_log_capture)"));
    let row: Option<(String, String)> = match conn.exec_first("SELECT columns, tbl FROM dualsync_log_capture WHERE stream = ?", (id,)) {
        Err(mysql::Error::MySqlError(e)) if e.code == 1146 => return Err(gone()),
        other => other.map_err(db_error)?,
    };
    let (columns, table) = row.ok_or_else(gone)?;
    Ok((serde_json::from_str(&columns).map_err(|_| gone())?, table))
}

/// Reads the reader's changes after `after` from its stream, opening a
/// binlog session when none runs.
pub fn read(
    conn: &mut Conn,
    streams: &Streams,
    opts: &Opts,
    after: &LogCursor,
    limit: usize,
) -> Result<(Vec<Change>, Cursor), ConnectorError> {
    let (columns, table) = registered(conn, &after.stream)?;
    let (file, pos) = end(conn)?;
    let end = LogPos::new(major(file_seq(&file)?, pos), 0);
    let (key_columns, key_table) = (columns.clone(), table.clone());
    let end = End { pos: end, must_reach: streams.is_new(&after.stream) };
    let read = streams.read(&after.stream, after.pos, Some(end), limit, |from| {
        let start = file_named(&file, from.major >> 32);
        check_not_purged(conn, &start)?;
        let source = BinlogSource::open(opts, &after.stream, table, columns, start, from.major & 0xFFFF_FFFF)?;
        Ok(Box::new(source) as Box<dyn LogSource>)
    })?;
    let changes: Vec<Change> = read.changes.into_iter().map(|l| l.change).collect();
    wait_for_commits(conn, &key_table, &key_columns, &changes)?;
    let next = LogCursor { stream: after.stream.clone(), pos: read.next }.to_cursor();
    Ok((changes, next))
}

/// A transaction is in the binary log before InnoDB commits it (the log is
/// written first, then the engine commits), and the engine reads the rows as
/// they are now: a shared-lock read of the changed keys waits for any
/// writer still holding them, so once it returns, their commits are visible.
fn wait_for_commits(conn: &mut Conn, table: &str, columns: &[String], changes: &[Change]) -> Result<(), ConnectorError> {
    if changes.is_empty() {
        return Ok(());
    }
    let row = format!("({})", vec!["?"; columns.len()].join(", "));
    let names = columns.iter().map(|c| super::backtick(c)).collect::<Vec<_>>().join(", ");
    let mut tx = conn.start_transaction(mysql::TxOpts::default()).map_err(super::db_error)?;
    for chunk in changes.chunks(500) {
        let sql = format!(
            "SELECT 1 FROM {} WHERE ({names}) IN ({}) LOCK IN SHARE MODE",
            super::backtick(table),
            vec![row.as_str(); chunk.len()].join(", ")
        );
        let params: Vec<mysql::Value> = chunk.iter().flat_map(|c| c.values.iter().take(columns.len()).map(super::values::param)).collect();
        tx.exec_drop(sql, params).map_err(super::db_error)?;
    }
    tx.commit().map_err(super::db_error)
}

fn purged(file: &str) -> ConnectorError {
    ConnectorError::new(
        ErrorKind::Schema,
        format!(
            "the reader's place in the binary log ({file}) was purged by the server (binlog_expire_logs_seconds): \
             changes since are lost to it; the map must be restarted (`dualsync stop` and `dualsync start`)"
        ),
    )
}

fn check_not_purged(conn: &mut Conn, file: &str) -> Result<(), ConnectorError> {
    let rows: Vec<mysql::Row> = conn.query("SHOW BINARY LOGS").map_err(status_error)?;
    let files: Vec<String> = rows.into_iter().filter_map(|r| r.get_opt::<String, _>(0).and_then(|v| v.ok())).collect();
    if files.iter().any(|f| f == file) {
        Ok(())
    } else {
        Err(purged(file))
    }
}

/// A stable replica id per stream, far above hand-picked server ids: the
/// server ends an older session of the same id when a new one registers.
fn server_id(stream: &str) -> u32 {
    let hash = xxhash_rust::xxh3::xxh3_64(stream.as_bytes());
    0x4000_0000 + (hash % (u32::MAX as u64 - 0x4000_0000)) as u32
}

/// One binlog session, decoded on a thread of its own (the protocol's reads
/// block): its events arrive over a bounded channel.
struct BinlogSource {
    rx: Receiver<Result<LogEvent, ConnectorError>>,
    stop: Arc<AtomicBool>,
    opts: Opts,
    dump_id: u32,
    /// The session's end, told after the events before it.
    failed: Option<ConnectorError>,
}

impl BinlogSource {
    fn open(opts: &Opts, stream: &str, table: String, columns: Vec<String>, file: String, pos: u64) -> Result<Self, ConnectorError> {
        let database = opts
            .get_db_name()
            .map(str::to_string)
            .ok_or_else(|| ConnectorError::new(ErrorKind::Unsupported, "log capture needs the database named in the url"))?;
        let meta = Conn::new(opts.clone()).map_err(db_error)?;
        let dump_opts = OptsBuilder::from_opts(opts.clone()).read_timeout(Some(READ_TIMEOUT)).tcp_keepalive_time_ms(Some(10_000));
        let mut dump = Conn::new(dump_opts).map_err(db_error)?;
        // 4: MariaDB sends its own GTID events (decoded here) and no dummy events.
        dump.query_drop("SET @mariadb_slave_capability = 4").map_err(db_error)?;
        dump.query_drop(format!("SET @master_heartbeat_period = {}", HEARTBEAT.as_nanos())).map_err(db_error)?;
        let dump_id = dump.connection_id();
        let request = BinlogRequest::new(server_id(stream)).with_filename(file.clone().into_bytes()).with_pos(pos);
        let binlog = dump.get_binlog_stream(request).map_err(|e| dump_error(e, &file))?;
        let (tx, rx) = sync_channel(4096);
        let stop = Arc::new(AtomicBool::new(false));
        let seq = file_seq(&file)?;
        let mut decoder = Decoder { database, table, columns, meta, file, seq, pos, txn: None, info: None, passed: 0, group: None };
        let thread_stop = stop.clone();
        std::thread::Builder::new()
            .name(format!("binlog {stream}"))
            .spawn(move || decoder.run(binlog, tx, thread_stop))
            .map_err(|e| ConnectorError::new(ErrorKind::Unavailable, format!("cannot start the binlog reader thread: {e}")))?;
        Ok(BinlogSource { rx, stop, opts: opts.clone(), dump_id, failed: None })
    }
}

impl LogSource for BinlogSource {
    /// What arrived within `wait`, up to a batch; an error that follows
    /// events is told at the next poll, after they are handed over.
    fn poll(&mut self, wait: Duration, out: &mut Vec<LogEvent>) -> Result<(), ConnectorError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let first = match self.rx.recv_timeout(wait) {
            Ok(e) => e,
            Err(RecvTimeoutError::Timeout) => return Ok(()),
            Err(RecvTimeoutError::Disconnected) => return Err(ended()),
        };
        out.push(first?);
        while out.len() < 5000 {
            match self.rx.try_recv() {
                Ok(Ok(e)) => out.push(e),
                Ok(Err(e)) => {
                    self.failed = Some(e);
                    break;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.failed = Some(ended());
                    break;
                }
            }
        }
        Ok(())
    }
}

impl Drop for BinlogSource {
    /// Ends the dump session at once (its thread is blocked reading it).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let (opts, id) = (self.opts.clone(), self.dump_id);
        let _ = std::thread::Builder::new().name("binlog kill".into()).spawn(move || {
            if let Ok(mut c) = Conn::new(opts) {
                let _ = c.query_drop(format!("KILL CONNECTION {id}"));
            }
        });
    }
}

fn ended() -> ConnectorError {
    ConnectorError::new(ErrorKind::Unavailable, "the binary log session ended; reading again restarts it")
}

fn dump_error(e: mysql::Error, file: &str) -> ConnectorError {
    match &e {
        // ER_MASTER_FATAL_ERROR_READING_BINLOG: the file is gone (or the position is not in it).
        mysql::Error::MySqlError(m) if m.code == 1236 && m.message.contains("ould not find first log file") => purged(file),
        mysql::Error::MySqlError(m) if m.code == 1227 || m.code == 1045 => {
            let mut err = db_error(e);
            err.kind = ErrorKind::Unsupported;
            err.message = format!("cannot read the binary log: {}; run `GRANT REPLICATION SLAVE ON *.* TO` the app's user", err.message);
            err
        }
        _ => {
            let mut err = db_error(e);
            err.message = format!("binary log session: {}", err.message);
            if err.kind == ErrorKind::Database {
                err.kind = ErrorKind::Unavailable;
            }
            err
        }
    }
}

fn malformed(what: String) -> ConnectorError {
    ConnectorError::new(ErrorKind::Unavailable, format!("binary log: {what}; the session restarts"))
}

/// Per-column details from information_schema.
#[derive(Debug, Clone)]
struct ColInfo {
    name: String,
    data_type: String,
    unsigned: bool,
    charset: Option<String>,
    /// Fractional digits of DATETIME/TIME/TIMESTAMP.
    frac: u32,
    /// BINARY(n) length (the log drops trailing zero bytes).
    binary_len: Option<usize>,
    /// ENUM/SET labels.
    labels: Vec<String>,
}

/// Name, DATA_TYPE, COLUMN_TYPE, character set and octet length, from information_schema.COLUMNS.
type SchemaColumn = (String, String, String, Option<String>, Option<u64>);

struct TableInfo {
    cols: Vec<ColInfo>,
    types: Vec<ColumnType>,
    /// Where the captured columns are.
    wanted: Vec<usize>,
}

struct Txn {
    /// The position of the transaction's first event.
    start: u64,
    ordinal: u64,
    /// dualsync's own (skip_replication or the echo row).
    ours: bool,
    standalone: bool,
}

struct Decoder {
    database: String,
    table: String,
    columns: Vec<String>,
    meta: Conn,
    file: String,
    seq: u64,
    /// The offset after the last event read, in `file`.
    pos: u64,
    txn: Option<Txn>,
    /// The captured table's columns, until a DDL.
    info: Option<TableInfo>,
    /// The last `Passed` sent.
    passed: u64,
    /// Where MySQL's current group began (its GTID event).
    group: Option<u64>,
}

impl Decoder {
    fn run(&mut self, mut binlog: BinlogStream, tx: SyncSender<Result<LogEvent, ConnectorError>>, stop: Arc<AtomicBool>) {
        let mut out = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            let result = match binlog.next() {
                None => Err(ended()),
                Some(Err(e)) => Err(dump_error(e, &self.file)),
                Some(Ok(event)) => self.handle(&binlog, &event, &mut out),
            };
            for e in out.drain(..) {
                if tx.send(Ok(e)).is_err() {
                    return;
                }
            }
            if let Err(e) = result {
                let _ = tx.send(Err(e));
                return;
            }
        }
    }

    fn here(&self) -> u64 {
        major(self.seq, self.pos)
    }

    fn handle(
        &mut self,
        binlog: &BinlogStream,
        event: &mysql::binlog::events::Event,
        out: &mut Vec<LogEvent>,
    ) -> Result<(), ConnectorError> {
        let h = event.header();
        let flags = h.flags_raw();
        if h.event_type_raw() == HEARTBEAT_EVENT {
            // The log is quiet here (its position is the server's, not taken: ours is).
            self.pass(out);
            return Ok(());
        }
        let start = self.here();
        // Within a file positions only grow: a resent format description (position 0, or its old place) moves nothing.
        let log_pos = h.log_pos() as u64;
        if log_pos > self.pos && flags & ARTIFICIAL == 0 {
            self.pos = log_pos;
        }
        if let Some(txn) = self.txn.as_mut() {
            txn.ours |= flags & SKIP_REPLICATION != 0;
        }
        let at_micros = h.timestamp() as i64 * 1_000_000;
        if h.event_type_raw() == MARIA_GTID {
            let d = event.data();
            let standalone = d.len() > 12 && d[12] & GTID_STANDALONE != 0;
            self.txn = Some(Txn { start, ordinal: 0, ours: flags & SKIP_REPLICATION != 0, standalone });
            return Ok(());
        }
        let data = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| event.read_data())) {
            Ok(Ok(Some(d))) => d,
            // MariaDB's other events (annotate rows, checkpoints, GTID lists) and unknown ones.
            Ok(Ok(None)) => {
                self.pass(out);
                return Ok(());
            }
            Ok(Err(e)) => return Err(malformed(format!("event type {} at {}:{}: {e}", h.event_type_raw(), self.file, log_pos))),
            Err(_) => return Err(malformed(format!("event type {} at {}:{} does not decode", h.event_type_raw(), self.file, log_pos))),
        };
        match data {
            EventData::RotateEvent(r) => {
                let name = if flags & ARTIFICIAL != 0 || log_pos == 0 {
                    clean_fake_rotate_name(r.name_raw())
                } else {
                    String::from_utf8_lossy(r.name_raw()).into_owned()
                };
                self.seq = file_seq(&name)?;
                self.file = name;
                self.pos = r.position();
            }
            EventData::QueryEvent(q) => {
                let sql = q.query();
                let s = sql.trim();
                let upper: String = s.chars().take(12).collect::<String>().to_ascii_uppercase();
                if s.starts_with('#') {
                    // A dummy event standing for one this session did not ask for.
                } else if upper == "BEGIN" || upper.starts_with("START TRANS") {
                    if self.txn.is_none() {
                        // MySQL's transaction starts at its GTID event, before BEGIN.
                        let start = self.group.take().unwrap_or(start);
                        self.txn = Some(Txn { start, ordinal: 0, ours: flags & SKIP_REPLICATION != 0, standalone: false });
                    }
                } else if upper == "COMMIT" || upper == "ROLLBACK" || upper.starts_with("XA COMMIT") || upper.starts_with("XA ROLLBACK") {
                    // ROLLBACK: a mixed transaction whose non-transactional changes did happen.
                    // XA COMMIT/ROLLBACK of a prepared transaction: its own group, after the changes.
                    self.txn = None;
                    self.group = None;
                } else if self.txn.as_ref().is_none_or(|t| t.standalone) {
                    // DDL: the table's columns may have changed.
                    self.info = None;
                    self.txn = None;
                    self.group = None;
                }
            }
            EventData::XidEvent(_) => {
                self.txn = None;
                self.group = None;
            }
            // An XA transaction's changes are logged at its PREPARE, which ends their group: they are
            // taken then (an XA ROLLBACK after PREPARE is not undone here).
            EventData::XaPrepareLogEvent(_) => {
                self.txn = None;
                self.group = None;
            }
            // MySQL: a group (a transaction, or a DDL statement) starts here.
            EventData::GtidEvent(_) | EventData::AnonymousGtidEvent(_) => self.group = Some(start),
            EventData::RowsEvent(rows) => {
                let tme = binlog
                    .get_tme(rows.table_id())
                    .ok_or_else(|| malformed(format!("a row event of table id {} without its table map", rows.table_id())))?;
                if tme.database_name() != self.database.as_str() {
                    return Ok(());
                }
                let table = tme.table_name();
                if table == ECHO_TABLE {
                    if let Some(txn) = self.txn.as_mut() {
                        txn.ours = true;
                    }
                    return Ok(());
                }
                if table != self.table.as_str() || self.txn.as_ref().is_some_and(|t| t.ours) || flags & SKIP_REPLICATION != 0 {
                    return Ok(());
                }
                let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.rows(&rows, tme, at_micros, start, out)));
                decoded
                    .unwrap_or_else(|_| Err(malformed(format!("a row of {} at {}:{log_pos} does not decode", self.table, self.file))))?;
            }
            _ => {}
        }
        self.pass(out);
        Ok(())
    }

    /// Between transactions, the place reached is passed.
    fn pass(&mut self, out: &mut Vec<LogEvent>) {
        if self.txn.is_none() && self.group.is_none() && self.here() != self.passed {
            self.passed = self.here();
            out.push(LogEvent::Passed(LogPos::new(self.passed, 0)));
        }
    }

    fn rows(
        &mut self,
        rows: &RowsEventData<'_>,
        tme: &TableMapEvent<'static>,
        at_micros: i64,
        start: u64,
        out: &mut Vec<LogEvent>,
    ) -> Result<(), ConnectorError> {
        let kind = match rows {
            RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => ChangeKind::Insert,
            RowsEventData::UpdateRowsEventV1(_) | RowsEventData::UpdateRowsEvent(_) | RowsEventData::PartialUpdateRowsEvent(_) => {
                ChangeKind::Update
            }
            RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => ChangeKind::Delete,
        };
        if self.info.as_ref().is_none_or(|i| i.cols.len() != tme.columns_count() as usize) {
            self.info = Some(self.table_info(tme)?);
        }
        // A row event outside BEGIN (a non-transactional table without GTIDs) is its own transaction.
        let start = self.group.unwrap_or(start);
        let txn = self.txn.get_or_insert(Txn { start, ordinal: 0, ours: false, standalone: false });
        let info = self.info.as_ref().expect("described above");
        let table = &self.table;
        let captured = |image: Option<mysql::binlog::row::BinlogRow>| -> Result<Option<Vec<Value>>, ConnectorError> {
            let Some(image) = image else { return Ok(None) };
            if image.len() != info.cols.len() {
                return Err(ConnectorError::new(
                    ErrorKind::Schema,
                    format!(
                        "the binary log has {} of {} columns of table {table:?}: binlog_row_image must be FULL",
                        image.len(),
                        info.cols.len()
                    ),
                ));
            }
            info.wanted
                .iter()
                .map(|&p| {
                    let v = image.as_ref(p).ok_or_else(|| malformed(format!("a row of {table:?} without column {p}")))?;
                    convert(v, info.types[p], &info.cols[p])
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        };
        let mut push = |kind: ChangeKind, values: Vec<Value>| {
            txn.ordinal += 1;
            out.push(LogEvent::Change(Logged {
                pos: LogPos::new(txn.start, txn.ordinal),
                change: Change { values, kind, at_micros },
                txn: 0,
            }));
        };
        for row in rows.rows(tme) {
            let (before, after) = row.map_err(|e| malformed(format!("a row of {table:?}: {e}")))?;
            let (before, after) = (captured(before)?, captured(after)?);
            match (kind, before, after) {
                (ChangeKind::Insert, _, Some(new)) => push(ChangeKind::Insert, new),
                (ChangeKind::Delete, Some(old), _) => push(ChangeKind::Delete, old),
                (ChangeKind::Update, old, Some(new)) => {
                    // An update that moves the captured columns (a key or company change) also deletes the old key.
                    if let Some(old) = old.filter(|old| *old != new) {
                        push(ChangeKind::Delete, old);
                    }
                    push(ChangeKind::Update, new);
                }
                _ => return Err(malformed(format!("a row event of {table:?} without its row image"))),
            }
        }
        Ok(())
    }

    /// The table's columns: names from the table map where it has them
    /// (binlog_row_metadata = FULL), else from information_schema by position.
    fn table_info(&mut self, tme: &TableMapEvent<'static>) -> Result<TableInfo, ConnectorError> {
        let table = self.table.clone();
        let ncols = tme.columns_count() as usize;
        let rows: Vec<SchemaColumn> = self
            .meta
            .exec(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_SET_NAME, CHARACTER_OCTET_LENGTH FROM information_schema.COLUMNS
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (&self.database, &table),
            )
            .map_err(db_error)?;
        let schema: Vec<ColInfo> = rows
            .into_iter()
            .map(|(name, data_type, column_type, charset, octets)| {
                let dt = data_type.to_ascii_lowercase();
                ColInfo {
                    unsigned: column_type.to_ascii_lowercase().contains("unsigned"),
                    labels: if dt == "enum" || dt == "set" { parse_labels(&column_type) } else { vec![] },
                    binary_len: if matches!(dt.as_str(), "binary" | "uuid" | "inet6" | "inet4") {
                        octets.map(|o| o as usize)
                    } else {
                        None
                    },
                    frac: 0,
                    name,
                    data_type: dt,
                    charset,
                }
            })
            .collect();
        let mut types = Vec::with_capacity(ncols);
        for i in 0..ncols {
            match tme.get_column_type(i) {
                Ok(Some(t)) => types.push(t),
                _ => return Err(malformed(format!("column {i} of {table:?} has a type this reader does not know"))),
            }
        }
        let names: Vec<String> = OptionalMetaExtractor::new(tme.iter_optional_meta())
            .map(|x| x.iter_column_name().filter_map(|n| n.ok().map(|n| n.name().into_owned())).collect())
            .unwrap_or_default();
        let changed = |what: String| {
            ConnectorError::new(
                ErrorKind::Schema,
                format!(
                    "table {table:?} changed since this part of the binary log ({what}): its changes cannot be read by column; \
                     restart the map (or set binlog_row_metadata = FULL)"
                ),
            )
        };
        let mut cols: Vec<ColInfo> = if names.len() == ncols {
            names
                .iter()
                .zip(&types)
                .map(|(n, &t)| {
                    schema.iter().find(|c| c.name.eq_ignore_ascii_case(n) && type_compatible(&c.data_type, t)).cloned().unwrap_or(ColInfo {
                        name: n.clone(),
                        data_type: String::new(),
                        unsigned: false,
                        charset: None,
                        frac: 0,
                        binary_len: None,
                        labels: vec![],
                    })
                })
                .collect()
        } else {
            // Columns added since (at the end, as ADD COLUMN puts them) are not in older events.
            if schema.len() < ncols {
                return Err(changed(format!("{ncols} columns in the log, {} now", schema.len())));
            }
            let mut schema = schema;
            schema.truncate(ncols);
            for (c, &t) in schema.iter().zip(&types) {
                if !type_compatible(&c.data_type, t) {
                    return Err(changed(format!("column {:?} is {t:?} in the log, {} now", c.name, c.data_type)));
                }
            }
            schema
        };
        for (i, c) in cols.iter_mut().enumerate() {
            use ColumnType::*;
            if matches!(types[i], MYSQL_TYPE_DATETIME2 | MYSQL_TYPE_TIME2 | MYSQL_TYPE_TIMESTAMP2) {
                c.frac = tme.get_column_metadata(i).and_then(|m| m.first().copied()).unwrap_or(0) as u32;
            }
        }
        let wanted = self
            .columns
            .iter()
            .map(|w| {
                cols.iter().position(|c| c.name.eq_ignore_ascii_case(w)).ok_or_else(|| {
                    ConnectorError::new(ErrorKind::Schema, format!("the captured column {w:?} is no longer in table {table:?}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TableInfo { cols, types, wanted })
    }
}

/// The first ROTATE is decoded before checksums are known: its name ends in
/// the 4 bytes of a CRC. Binary log names end in `.NNNNNN`.
fn clean_fake_rotate_name(raw: &[u8]) -> String {
    let ends_digits = |b: &[u8]| {
        let digits = b.iter().rev().take_while(|c| c.is_ascii_digit()).count();
        digits >= 6 && b.len() > digits && b[b.len() - digits - 1] == b'.'
    };
    if !ends_digits(raw) && raw.len() > 4 && ends_digits(&raw[..raw.len() - 4]) {
        String::from_utf8_lossy(&raw[..raw.len() - 4]).into_owned()
    } else {
        String::from_utf8_lossy(raw).into_owned()
    }
}

/// `enum('a','b''c')` → its labels.
fn parse_labels(column_type: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Some(start) = column_type.find('(') else { return out };
    let mut chars = column_type[start + 1..].chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            let mut s = String::new();
            loop {
                match chars.next() {
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        s.push('\'');
                    }
                    Some('\'') | None => break,
                    Some('\\') => {
                        if let Some(n) = chars.next() {
                            s.push(n)
                        }
                    }
                    Some(o) => s.push(o),
                }
            }
            out.push(s);
        }
    }
    out
}

/// Whether a log column type fits information_schema's DATA_TYPE (else the table changed since).
fn type_compatible(data_type: &str, t: ColumnType) -> bool {
    use ColumnType::*;
    let ok: &[ColumnType] = match data_type {
        "tinyint" => &[MYSQL_TYPE_TINY],
        "smallint" => &[MYSQL_TYPE_SHORT],
        "mediumint" => &[MYSQL_TYPE_INT24],
        "int" => &[MYSQL_TYPE_LONG],
        "bigint" => &[MYSQL_TYPE_LONGLONG],
        "decimal" => &[MYSQL_TYPE_NEWDECIMAL, MYSQL_TYPE_DECIMAL],
        "float" => &[MYSQL_TYPE_FLOAT],
        "double" => &[MYSQL_TYPE_DOUBLE],
        "date" => &[MYSQL_TYPE_NEWDATE, MYSQL_TYPE_DATE],
        "datetime" => &[MYSQL_TYPE_DATETIME2, MYSQL_TYPE_DATETIME],
        "timestamp" => &[MYSQL_TYPE_TIMESTAMP2, MYSQL_TYPE_TIMESTAMP],
        "time" => &[MYSQL_TYPE_TIME2, MYSQL_TYPE_TIME],
        "year" => &[MYSQL_TYPE_YEAR],
        "char" | "binary" | "uuid" | "inet6" | "inet4" => &[MYSQL_TYPE_STRING],
        "varchar" | "varbinary" => &[MYSQL_TYPE_VARCHAR, MYSQL_TYPE_VAR_STRING],
        "tinytext" | "text" | "mediumtext" | "longtext" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "json" => &[MYSQL_TYPE_BLOB],
        "enum" => &[MYSQL_TYPE_ENUM, MYSQL_TYPE_STRING],
        "set" => &[MYSQL_TYPE_SET, MYSQL_TYPE_STRING],
        "bit" => &[MYSQL_TYPE_BIT],
        _ => return true,
    };
    ok.contains(&t)
}

fn unsigned(u: u64) -> Value {
    i64::try_from(u).map(Value::Int).unwrap_or_else(|_| Value::Decimal(u.to_string()))
}

/// A logged value typed as trigger capture records it (through JSON):
/// integers as Int, decimals as Decimal, floats as Float, the rest as text
/// (dates as MySQL writes them), binary strings as bytes.
///
/// mysql_common gives integers signed unless the table map says otherwise
/// (UNSIGNED is taken from information_schema), DECIMAL and character data
/// as bytes, TIMESTAMP as Unix seconds.
fn convert(v: &BinlogValue<'_>, t: ColumnType, c: &ColInfo) -> Result<Value, ConnectorError> {
    use mysql::Value as V;
    use ColumnType::*;
    let bad = |what: &str| malformed(format!("column {:?}: {what}", c.name));
    let BinlogValue::Value(v) = v else { return Err(bad("JSON columns (MySQL's binary JSON) cannot be captured from the log")) };
    Ok(match v {
        V::NULL => Value::Null,
        V::Int(i) => {
            let i = *i;
            match t {
                MYSQL_TYPE_ENUM => label(&c.labels, i as usize).map(Value::Text).unwrap_or(Value::Int(i)),
                MYSQL_TYPE_TIMESTAMP => Value::Text(epoch_to_utc(i, 0, 0)),
                _ if c.unsigned => unsigned(match t {
                    MYSQL_TYPE_TINY => i as u8 as u64,
                    MYSQL_TYPE_SHORT => i as u16 as u64,
                    MYSQL_TYPE_INT24 => (i as u64) & 0x00FF_FFFF,
                    MYSQL_TYPE_LONG => i as u32 as u64,
                    _ => i as u64,
                }),
                _ => Value::Int(i),
            }
        }
        V::UInt(u) => unsigned(*u),
        V::Float(f) => Value::Float(*f as f64),
        V::Double(f) => Value::Float(*f),
        V::Date(y, mo, d, h, mi, s, us) => {
            if c.data_type == "date" {
                Value::Text(format!("{y:04}-{mo:02}-{d:02}"))
            } else {
                Value::Text(format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}{}", frac(*us, c.frac)))
            }
        }
        V::Time(neg, days, h, mi, s, us) => {
            Value::Text(format!("{}{:02}:{mi:02}:{s:02}{}", if *neg { "-" } else { "" }, *days as u64 * 24 + *h as u64, frac(*us, c.frac)))
        }
        V::Bytes(b) => match t {
            MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_DECIMAL => {
                Value::Decimal(String::from_utf8(b.clone()).map_err(|_| bad("a decimal not in ASCII"))?)
            }
            MYSQL_TYPE_TIMESTAMP2 => {
                let s = std::str::from_utf8(b).map_err(|_| bad("a timestamp not in ASCII"))?;
                let (secs, us) = match s.split_once('.') {
                    Some((a, f)) => (a, format!("{f:0<6}")[..6].parse::<u32>().map_err(|_| bad("a timestamp"))?),
                    None => (s, 0),
                };
                Value::Text(epoch_to_utc(secs.parse::<i64>().map_err(|_| bad("a timestamp"))?, us, c.frac))
            }
            MYSQL_TYPE_YEAR => {
                let y: i64 = std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).ok_or_else(|| bad("a year"))?;
                // YEAR 0000 is stored as 0 and read by mysql_common as 1900.
                Value::Int(if y == 1900 { 0 } else { y })
            }
            MYSQL_TYPE_BIT => unsigned(b.iter().fold(0u64, |a, &x| (a << 8) | x as u64)),
            MYSQL_TYPE_SET => {
                let names: Vec<&str> = c
                    .labels
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| b.get(i / 8).is_some_and(|byte| byte & (1 << (i % 8)) != 0))
                    .map(|(_, l)| l.as_str())
                    .collect();
                Value::Text(names.join(","))
            }
            _ => match c.charset.as_deref() {
                Some(cs) if cs.starts_with("utf8") || cs == "ascii" => {
                    Value::Text(String::from_utf8(b.clone()).map_err(|_| bad("text not in UTF-8"))?)
                }
                // latin1 is cp1252 in MySQL; ISO-8859-1 differs only in 0x80..0x9F.
                Some("latin1") => Value::Text(b.iter().map(|&x| x as char).collect()),
                Some(_) => match String::from_utf8(b.clone()) {
                    Ok(s) => Value::Text(s),
                    Err(e) => Value::Bytes(e.into_bytes()),
                },
                None => {
                    let mut b = b.clone();
                    if let Some(n) = c.binary_len {
                        if b.len() < n {
                            b.resize(n, 0);
                        }
                    }
                    Value::Bytes(b)
                }
            },
        },
    })
}

fn label(labels: &[String], index: usize) -> Option<String> {
    if index == 0 {
        Some(String::new())
    } else {
        labels.get(index - 1).cloned()
    }
}

fn frac(us: u32, digits: u32) -> String {
    if digits == 0 {
        return String::new();
    }
    let s = format!("{us:06}");
    format!(".{}", &s[..(digits.min(6) as usize)])
}

/// Unix seconds → `YYYY-MM-DD HH:MM:SS[.f]` in UTC.
fn epoch_to_utc(secs: i64, us: u32, digits: u32) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}{}", sod / 3600, (sod % 3600) / 60, sod % 60, frac(us, digits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_files_and_names() {
        assert_eq!(file_seq("mariadb-bin.000008").unwrap(), 8);
        assert_eq!(file_named("mariadb-bin.000008", 9), "mariadb-bin.000009");
        assert_eq!(file_named("binlog.1234567", 12), "binlog.0000012");
        assert!(major(8, 1170627) < major(9, 4));
        assert_eq!(major(9, 4) >> 32, 9);
        assert_eq!(clean_fake_rotate_name(b"mariadb-bin.000008\x01\x02\x03\x04"), "mariadb-bin.000008");
        assert_eq!(clean_fake_rotate_name(b"mariadb-bin.000008"), "mariadb-bin.000008");
        assert_eq!(parse_labels("enum('a','b''c')"), vec!["a", "b'c"]);
        assert_eq!(epoch_to_utc(0, 120_000, 3), "1970-01-01 00:00:00.120");
        let id = server_id("dualsync_00ff");
        assert!(id >= 0x4000_0000);
        assert_eq!(id, server_id("dualsync_00ff"));
    }
}
