//! Log capture on PostgreSQL: logical decoding with `pgoutput`, streamed
//! over the replication protocol.
//!
//! Each reader (a map's side) has a publication over its table and a
//! logical replication slot of the same name (`log::stream_id`); the
//! publication's comment records the captured columns. The slot keeps the
//! WAL from the reader's confirmed place on: the stream confirms only what
//! the engine has stored (its saved cursor), so a crash or a restart reads
//! again from there and loses nothing. Deletes and key changes carry the old
//! row's replica identity, which must cover the captured columns.
//!
//! dualsync's own write transactions start with a transactional logical
//! message (`pg_logical_emit_message(true, 'dualsync', '')`): the decoder
//! skips their changes. It needs no privilege and writes no table.

mod pgoutput;
mod session;

pub use pgoutput::MARK_TRANSACTION;

/// How often a reader with nothing to read writes a tick to learn where
/// the log ends (it moves an idle table's slot on; see `pgoutput::TICK`).
const TICK_EVERY: Duration = Duration::from_secs(1);

use super::capture::literal;
use super::db_error;
use crate::log::stream::{End, Streams};
use crate::log::{stream_id, LogCursor, LogEvent, LogPos, LogSource, Logged};

/// The slot and publication of a reader's table in one database (slot names are the server's, not the database's).
pub fn slot_name(config: &postgres::Config, table: &str, reader: &str) -> String {
    let database = config.get_dbname().or(config.get_user()).unwrap_or("postgres");
    stream_id(&format!("{database}\u{0}{reader}"), table)
}
use crate::sql::double_quote as quote;
use crate::{CaptureSpec, Change, ConnectorError, Cursor, ErrorKind};
use std::time::Duration;

/// What log capture needs that the server or the user lacks, each with its fix.
pub fn missing(client: &mut postgres::Client) -> Result<Vec<String>, ConnectorError> {
    let row = client
        .query_one(
            "SELECT current_setting('wal_level'), current_user::text,
                    (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user),
                    current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots)::int,
                    current_setting('max_wal_senders')::int - (SELECT count(*) FROM pg_stat_replication)::int",
            &[],
        )
        .map_err(db_error)?;
    let (level, user): (String, String) = (row.get(0), row.get(1));
    let mut out = Vec::new();
    if level != "logical" {
        out.push(format!("wal_level is {level}: run `ALTER SYSTEM SET wal_level = logical` as a superuser and restart the server"));
    }
    if !row.get::<_, bool>(2) {
        out.push(format!("user {user} may not replicate: run `ALTER ROLE {} REPLICATION`", quote(&user)));
    }
    if row.get::<_, i32>(3) <= 0 {
        out.push("every replication slot is in use (max_replication_slots): raise it and restart the server".into());
    }
    if row.get::<_, i32>(4) <= 0 {
        out.push("every WAL sender is in use (max_wal_senders): raise it and restart the server".into());
    }
    Ok(out)
}

/// Advice that does not stop log capture: a slot without a WAL limit can fill the disk.
pub fn advice(client: &mut postgres::Client) -> Result<Vec<String>, ConnectorError> {
    let limit: String = client.query_one("SELECT current_setting('max_slot_wal_keep_size')", &[]).map_err(db_error)?.get(0);
    Ok(if limit == "-1" {
        vec!["max_slot_wal_keep_size is unlimited: a paused map's slot keeps WAL until the disk is full; set a limit (see docs/operations.md)".into()]
    } else {
        Vec::new()
    })
}

/// Creates the reader's publication and slot (kept when they exist) and
/// returns the cursor before every change the slot will give.
pub fn install(client: &mut postgres::Client, spec: &CaptureSpec, id: &str) -> Result<Cursor, ConnectorError> {
    if let Some(problem) = missing(client)?.into_iter().next() {
        return Err(ConnectorError::new(ErrorKind::Unsupported, format!("log capture is not possible here: {problem}")));
    }
    check_identity(client, spec)?;
    let columns = serde_json::to_string(&spec.columns).expect("strings serialize");
    let exists: bool = client.query_one("SELECT EXISTS (SELECT FROM pg_publication WHERE pubname = $1)", &[&id]).map_err(db_error)?.get(0);
    let table = quote(&spec.table);
    let sql =
        if exists { format!("ALTER PUBLICATION {id} SET TABLE {table}") } else { format!("CREATE PUBLICATION {id} FOR TABLE {table}") };
    client.batch_execute(&sql).map_err(|e| install_error(&spec.table, e))?;
    client.batch_execute(&format!("COMMENT ON PUBLICATION {id} IS {}", literal(&columns))).map_err(db_error)?;
    let slot =
        client.query_opt("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", &[&id]).map_err(db_error)?;
    let start: String = match slot {
        Some(row) => row.get(0),
        // Waits for the transactions running now to end: every later commit is in the slot.
        None => client
            .query_one("SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')", &[&id])
            .map_err(|e| install_error(&spec.table, e))?
            .get(0),
    };
    Ok(LogCursor { stream: id.to_string(), pos: LogPos::new(parse_lsn(&start)?, 0) }.to_cursor())
}

fn install_error(table: &str, e: postgres::Error) -> ConnectorError {
    let mut err = db_error(e);
    err.message = format!(
        "cannot set up log capture on table {table:?}: {}; the app's user needs REPLICATION, CREATE on the database and to own the table",
        err.message
    );
    err
}

/// Deletes and key changes name the old row by the table's replica
/// identity: it must hold every captured column.
fn check_identity(client: &mut postgres::Client, spec: &CaptureSpec) -> Result<(), ConnectorError> {
    let row = client
        .query_one(
            "SELECT c.relreplident::text,
                    ARRAY(SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                          WHERE i.indrelid = c.oid AND CASE c.relreplident WHEN 'd' THEN i.indisprimary ELSE i.indisreplident END)
             FROM pg_class c WHERE c.oid = to_regclass($1)",
            &[&quote(&spec.table)],
        )
        .map_err(db_error)?;
    let (identity, columns): (String, Vec<String>) = (row.get(0), row.get(1));
    if identity == "f" {
        return Ok(());
    }
    let uncovered: Vec<&String> = spec.columns.iter().filter(|c| !columns.contains(c)).collect();
    if uncovered.is_empty() {
        return Ok(());
    }
    let has = if columns.is_empty() { "no replica identity (no primary key)".to_string() } else { format!("replica identity {columns:?}") };
    Err(ConnectorError::new(
        ErrorKind::Schema,
        format!(
            "table {:?} has {has}, which leaves out {uncovered:?}: deletes and key changes in the log would not say which row left. \
             Run `ALTER TABLE {} REPLICA IDENTITY FULL` (or USING INDEX on a unique index over {:?}), or use capture = \"trigger\" for this app",
            spec.table,
            quote(&spec.table),
            spec.columns
        ),
    ))
}

/// Drops the reader's slot and publication (ending this process's stream first).
pub fn remove(client: &mut postgres::Client, streams: &Streams, table: &str, id: &str) -> Result<(), ConnectorError> {
    streams.close(id);
    // The slot stays busy until the stream's server process has ended.
    for attempt in 0.. {
        let dropped = client
            .query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active", &[&id]);
        dropped.map_err(db_error)?;
        let left: bool =
            client.query_one("SELECT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = $1)", &[&id]).map_err(db_error)?.get(0);
        if !left {
            break;
        }
        if attempt == 50 {
            return Err(ConnectorError::new(
                ErrorKind::Busy,
                format!("replication slot {id} of table {table:?} is in use by another session: stop the dualsync process reading it, then try again"),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    client.batch_execute(&format!("DROP PUBLICATION IF EXISTS {id}")).map_err(db_error)
}

/// The columns the reader's log capture records, where its slot and publication are in place.
pub fn capture_of(client: &mut postgres::Client, table: &str, id: &str) -> Result<Option<Vec<String>>, ConnectorError> {
    let row = client
        .query_opt(
            "SELECT obj_description(p.oid, 'pg_publication') FROM pg_publication p
             WHERE p.pubname = $1 AND EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = $1)
               AND EXISTS (SELECT FROM pg_publication_rel r WHERE r.prpubid = p.oid AND r.prrelid = to_regclass($2))",
            &[&id, &quote(table)],
        )
        .map_err(db_error)?;
    Ok(row.and_then(|r| r.get::<_, Option<String>>(0)).and_then(|c| serde_json::from_str(&c).ok()))
}

/// WAL the reader's slot keeps on the server, in bytes, and whether the
/// server still has all of it (`wal_status` lost: the slot is broken).
pub fn retained(client: &mut postgres::Client, id: &str) -> Result<Option<(u64, String)>, ConnectorError> {
    let row = client
        .query_opt(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint, coalesce(wal_status, '')
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&id],
        )
        .map_err(db_error)?;
    Ok(row.map(|r| (r.get::<_, Option<i64>>(0).unwrap_or(0).max(0) as u64, r.get(1))))
}

/// Reads the reader's changes after `after` from its stream, starting a
/// replication session when none runs.
pub fn read(
    client: &mut postgres::Client,
    streams: &Streams,
    config: &postgres::Config,
    tls: &super::tls::PgTls,
    location: &str,
    after: &LogCursor,
    limit: usize,
) -> Result<(Vec<Change>, Cursor), ConnectorError> {
    // A first read (`sync` on a started map) catches up to now; later ones give what has arrived, and
    // now and then, with nothing to give, learn where the log ends so that an idle slot moves on.
    let first = streams.is_new(&after.stream);
    let end = if first || streams.end_due(&after.stream, after.pos, TICK_EVERY) {
        let tick: String = client.query_one(pgoutput::EMIT_TICK, &[]).map_err(db_error)?.get(0);
        Some(End { pos: LogPos::new(parse_lsn(&tick)?, 0), must_reach: first })
    } else {
        None
    };
    let mut attempts = 0;
    let read = loop {
        let read = streams.read(&after.stream, after.pos, end, limit, |from| {
            let (columns, table) = slot_capture(client, &after.stream)?;
            let session = start_session(config, tls, location, &after.stream, from.major).map_err(|e| slot_error(e, &table))?;
            Ok(Box::new(PgLogSource { session, decoder: pgoutput::Decoder::new(columns), received: from.major, confirmed: 0 })
                as Box<dyn LogSource>)
        });
        match read {
            // The failed stream is gone: the next attempt opens a session at the slot's new restart point.
            Err(e) if e.message.ends_with(session::WAL_MOVED_ON) && attempts < 3 => attempts += 1,
            read => break read.map_err(|e| lost_slot(client, &after.stream, e))?,
        }
    };
    wait_until_visible(client, &read.changes)?;
    let next = LogCursor { stream: after.stream.clone(), pos: read.next }.to_cursor();
    Ok((read.changes.into_iter().map(|l| l.change).collect(), next))
}

/// The log gives a transaction once its commit is in the WAL, which can be
/// a moment before other sessions see it; the engine reads the rows as they
/// are now, so it waits until every given transaction is visible to a new
/// snapshot (ids of 32 bits, placed in the epoch of the snapshot's xmax).
fn wait_until_visible(client: &mut postgres::Client, changes: &[Logged]) -> Result<(), ConnectorError> {
    let mut txns: Vec<i64> = changes.iter().map(|l| l.txn as i64).collect();
    txns.sort_unstable();
    txns.dedup();
    if txns.is_empty() {
        return Ok(());
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let visible: bool = client
            .query_one(
                "WITH s AS (SELECT pg_current_snapshot() AS snap, pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax)
                 SELECT coalesce(bool_and(pg_visible_in_snapshot(
                     (CASE WHEN ((s.xmax >> 32) << 32 | x) > s.xmax THEN ((s.xmax >> 32) - 1) << 32 | x ELSE (s.xmax >> 32) << 32 | x END)::text::xid8,
                     s.snap)), true)
                 FROM s, unnest($1::bigint[]) x",
                &[&txns],
            )
            .map_err(db_error)?
            .get(0);
        if visible {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(ConnectorError::new(ErrorKind::Busy, "transactions the log gave are still not visible after 30 s; reading again"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A replication session streaming the slot from `from`. A slot still held
/// by a session that is ending (this process's earlier stream, a process
/// that died) is waited for a few seconds.
fn start_session(
    config: &postgres::Config,
    tls: &super::tls::PgTls,
    location: &str,
    slot: &str,
    from: u64,
) -> Result<session::Session, ConnectorError> {
    let mut attempts = 0;
    loop {
        let mut session = session::Session::connect(config, tls, location)?;
        match session.start(slot, slot, from) {
            Ok(()) => return Ok(session),
            Err(e) if e.kind == ErrorKind::Busy && attempts < 30 => attempts += 1,
            Err(e) => return Err(e),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A stream that failed because the server dropped WAL its slot still
/// needed (beyond `max_slot_wal_keep_size`) will never read again: changes
/// were missed, which waiting cannot mend. Said as such (a Schema error: the
/// capture is broken), not as a server to retry.
fn lost_slot(client: &mut postgres::Client, id: &str, e: ConnectorError) -> ConnectorError {
    if !matches!(e.kind, ErrorKind::Unavailable | ErrorKind::Busy) {
        return e;
    }
    match retained(client, id) {
        Ok(Some((_, status))) if status == "lost" => ConnectorError::new(
            ErrorKind::Schema,
            format!(
                "replication slot {id} lost WAL it had not read: the server removed it (the slot kept more than max_slot_wal_keep_size), \
                 so changes were missed ({})",
                e.message
            ),
        ),
        _ => e,
    }
}

fn slot_error(mut e: ConnectorError, table: &str) -> ConnectorError {
    if e.kind == ErrorKind::Schema {
        e.message = format!("{}; the log capture of table {table:?} is gone or not allowed", e.message);
    }
    e
}

/// The captured columns and the table of a stream, from its publication.
fn slot_capture(client: &mut postgres::Client, id: &str) -> Result<(Vec<String>, String), ConnectorError> {
    let row = client
        .query_opt(
            "SELECT obj_description(p.oid, 'pg_publication'), (SELECT r.prrelid::regclass::text FROM pg_publication_rel r WHERE r.prpubid = p.oid LIMIT 1)
             FROM pg_publication p WHERE p.pubname = $1",
            &[&id],
        )
        .map_err(db_error)?;
    let gone = || ConnectorError::new(ErrorKind::Schema, format!("the log capture {id} (its publication) is not in this database"));
    let row = row.ok_or_else(gone)?;
    let columns: Option<String> = row.get(0);
    let columns = columns.and_then(|c| serde_json::from_str(&c).ok()).ok_or_else(gone)?;
    Ok((columns, row.get::<_, Option<String>>(1).unwrap_or_default()))
}

struct PgLogSource {
    session: session::Session,
    decoder: pgoutput::Decoder,
    /// How far the server's stream got.
    received: u64,
    confirmed: u64,
}

impl LogSource for PgLogSource {
    fn poll(&mut self, wait: Duration, out: &mut Vec<LogEvent>) -> Result<(), ConnectorError> {
        let mut wait = wait;
        // Everything already received, and what arrives within `wait`, up to a batch.
        while out.len() < 5000 {
            match self.session.next(wait)? {
                None => break,
                Some(session::Frame::Data { wal_end, message }) => {
                    self.received = self.received.max(wal_end);
                    self.decoder.decode(&message, out)?;
                }
                Some(session::Frame::Keepalive { wal_end, reply }) => {
                    // Not a place passed: nothing promises every commit before it was sent (see pgoutput's TICK).
                    self.received = self.received.max(wal_end);
                    if reply {
                        self.session.status(self.received, self.confirmed)?;
                    }
                }
            }
            // Then only what has arrived already: a socket timeout is coarse (a jiffy, 4 ms), a non-blocking read is not.
            wait = Duration::ZERO;
        }
        Ok(())
    }

    fn confirm(&mut self, pos: LogPos) -> Result<(), ConnectorError> {
        self.confirmed = self.confirmed.max(pos.major);
        self.session.status(self.received, self.confirmed)
    }
}

/// `16/B374D848` as a number.
fn parse_lsn(text: &str) -> Result<u64, ConnectorError> {
    let bad = || ConnectorError::new(ErrorKind::Database, format!("{text:?} is not an LSN"));
    let (hi, lo) = text.split_once('/').ok_or_else(bad)?;
    Ok((u64::from_str_radix(hi, 16).map_err(|_| bad())? << 32) | u64::from_str_radix(lo, 16).map_err(|_| bad())?)
}
