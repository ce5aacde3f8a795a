//! Change capture on PostgreSQL: statement triggers per table (one per event)
//! record the captured columns of every changed row in `dualsync_changes`
//! from the statement's transition tables, in one INSERT … SELECT per
//! statement, and wake listeners with `NOTIFY dualsync_changes`.
//!
//! Sequence numbers are taken before commit, so they do not arrive in commit
//! order. Each change also records its transaction id, and a reader takes only
//! changes of transactions older than the oldest one that may still write into
//! this database ([`HORIZON`]): those have all committed or aborted, so the
//! cursor (transaction id, sequence) never passes a change that commits later.
//! A long transaction on the app's database delays capture until it ends; it
//! loses nothing. One in another database of the server does not delay it.
//!
//! dualsync's connections set `dualsync.origin = 'dualsync'`; the triggers'
//! WHEN clause skips their statements without calling any function.

use super::db_error;
use crate::sql::double_quote as quote;
use crate::{CaptureSpec, Change, ConnectorError, Cursor, ErrorKind};
use dualsync_model::row::key_from_text;
use std::time::Duration;

pub const CHANNEL: &str = "dualsync_changes";

/// The transaction id below which every transaction that can write into this
/// database has ended: the oldest id the snapshot sees running, leaving out
/// those `pg_stat_activity` shows are of sessions of another database (a
/// session writes only into its own), else the snapshot's `xmax`.
///
/// Which of the two is read first does not matter: an id shown as another
/// database's is never ours, and one not shown (a session too new, a prepared
/// transaction, statistics we may not see) only holds the horizon back. The
/// server-wide `pg_snapshot_xmin` would let any long transaction of another
/// database, a bulk load say, hold capture back until it ends.
const HORIZON: &str = "(WITH s AS (SELECT pg_current_snapshot() AS snap)
     SELECT coalesce(
       (SELECT x FROM s, pg_snapshot_xip(s.snap) x
         WHERE x::text::bigint % 4294967296 NOT IN (
           SELECT a.backend_xid::text::bigint FROM pg_stat_activity a
            WHERE a.backend_xid IS NOT NULL
              AND a.datid IS DISTINCT FROM (SELECT oid FROM pg_database WHERE datname = current_database()))
         ORDER BY x LIMIT 1),
       (SELECT pg_snapshot_xmax(snap) FROM s)))";

const SETUP: &str = r#"
CREATE TABLE IF NOT EXISTS dualsync_changes (
    seq    bigint GENERATED ALWAYS AS IDENTITY,
    xid    xid8 NOT NULL DEFAULT pg_current_xact_id(),
    tbl    text NOT NULL,
    key    text NOT NULL,
    op     text NOT NULL,
    origin text NOT NULL DEFAULT session_user,
    at     bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint,
    PRIMARY KEY (tbl, xid, seq)
);
CREATE TABLE IF NOT EXISTS dualsync_capture (tbl text PRIMARY KEY, columns text NOT NULL);
-- One call per statement: the trigger's argument is the INSERT … SELECT that
-- copies the keys of the statement's transition tables into the change table.
CREATE OR REPLACE FUNCTION dualsync_capture() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    EXECUTE TG_ARGV[0];
    PERFORM pg_notify('dualsync_changes', TG_TABLE_NAME);
    RETURN NULL;
END
$f$;
"#;

/// One statement trigger per event, each with the transition tables it reads.
const TRIGGERS: [(&str, &str, &str); 3] = [
    ("dualsync_capture_i", "INSERT", "NEW TABLE AS dualsync_new"),
    ("dualsync_capture_u", "UPDATE", "OLD TABLE AS dualsync_old NEW TABLE AS dualsync_new"),
    ("dualsync_capture_d", "DELETE", "OLD TABLE AS dualsync_old"),
];

const NOT_DUALSYNC: &str = "current_setting('dualsync.origin', true) IS DISTINCT FROM 'dualsync'";

pub(super) fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub fn install(client: &mut postgres::Client, spec: &CaptureSpec) -> Result<(), ConnectorError> {
    let mut tx = client.transaction().map_err(db_error)?;
    // Two installs at once would race on CREATE OR REPLACE FUNCTION.
    tx.batch_execute("SELECT pg_advisory_xact_lock(727274)").map_err(db_error)?;
    tx.batch_execute(SETUP).map_err(|e| capture_error(&spec.table, e))?;
    let table = quote(&spec.table);
    let key = |row: &str| {
        format!("json_build_array({})::text", spec.columns.iter().map(|c| format!("{row}.{}", quote(c))).collect::<Vec<_>>().join(", "))
    };
    let insert =
        |select: String| format!("INSERT INTO dualsync_changes (tbl, key, op) SELECT {}, key, op FROM ({select}) c", literal(&spec.table));
    // An update that changes a key (or company) also deletes the old key: the
    // old keys no new row has (EXCEPT: hashed, and NULLs compare equal).
    let statements = [
        insert(format!("SELECT {} AS key, 'I' AS op FROM dualsync_new n", key("n"))),
        insert(format!(
            "SELECT {} AS key, 'U' AS op FROM dualsync_new n UNION ALL (SELECT {}, 'D' FROM dualsync_old o EXCEPT SELECT {}, 'D' FROM dualsync_new n)",
            key("n"),
            key("o"),
            key("n")
        )),
        insert(format!("SELECT {} AS key, 'D' AS op FROM dualsync_old o", key("o"))),
    ];
    let mut sql = String::new();
    for ((trigger, event, transition), statement) in TRIGGERS.iter().zip(statements) {
        sql.push_str(&format!(
            "DROP TRIGGER IF EXISTS {trigger} ON {table};
             CREATE TRIGGER {trigger} AFTER {event} ON {table} REFERENCING {transition}
                 FOR EACH STATEMENT WHEN ({NOT_DUALSYNC}) EXECUTE FUNCTION dualsync_capture({});",
            literal(&statement)
        ));
    }
    tx.batch_execute(&sql).map_err(|e| capture_error(&spec.table, e))?;
    let columns = serde_json::to_string(&spec.columns).expect("strings serialize");
    tx.execute(
        "INSERT INTO dualsync_capture (tbl, columns) VALUES ($1, $2) ON CONFLICT (tbl) DO UPDATE SET columns = excluded.columns",
        &[&spec.table, &columns],
    )
    .map_err(db_error)?;
    tx.commit().map_err(db_error)
}

fn capture_error(table: &str, e: postgres::Error) -> ConnectorError {
    let mut err = db_error(e);
    err.message = format!(
        "cannot install change capture on table {table:?}: {}; the app's user needs CREATE on the schema and to own the table (or TRIGGER on it)",
        err.message
    );
    err
}

fn has_setup(client: &mut postgres::Client) -> Result<bool, ConnectorError> {
    let row = client.query_one("SELECT to_regclass('dualsync_capture') IS NOT NULL", &[]).map_err(db_error)?;
    Ok(row.get(0))
}

pub fn remove(client: &mut postgres::Client, table: &str) -> Result<(), ConnectorError> {
    let mut tx = client.transaction().map_err(db_error)?;
    let quoted = quote(table);
    let exists: bool = tx.query_one("SELECT to_regclass($1) IS NOT NULL", &[&quoted]).map_err(db_error)?.get(0);
    if exists {
        for (trigger, _, _) in TRIGGERS {
            tx.batch_execute(&format!("DROP TRIGGER IF EXISTS {trigger} ON {quoted}")).map_err(db_error)?;
        }
    }
    // Whatever is left of a damaged install goes too.
    for registry in ["dualsync_changes", "dualsync_capture"] {
        let present: bool = tx.query_one("SELECT to_regclass($1) IS NOT NULL", &[&registry]).map_err(db_error)?.get(0);
        if present {
            tx.execute(&format!("DELETE FROM {registry} WHERE tbl = $1"), &[&table]).map_err(db_error)?;
        }
    }
    tx.commit().map_err(db_error)
}

pub fn capture_of(client: &mut postgres::Client, table: &str) -> Result<Option<Vec<String>>, ConnectorError> {
    if !has_setup(client)? {
        return Ok(None);
    }
    let row = client
        .query_opt(
            "SELECT c.columns FROM dualsync_capture c
             WHERE c.tbl = $1 AND (SELECT count(*) FROM pg_trigger t
                                   WHERE t.tgrelid = to_regclass($2) AND t.tgname IN ('dualsync_capture_i', 'dualsync_capture_u', 'dualsync_capture_d')) = 3",
            &[&table, &quote(table)],
        )
        .map_err(db_error)?;
    Ok(row.and_then(|r| serde_json::from_str(r.get::<_, &str>(0)).ok()))
}

/// A cursor is `xid:seq`: after every change of an older transaction, and of this one up to seq.
fn parse(cursor: &Cursor) -> Result<(String, i64), ConnectorError> {
    if cursor.0.is_empty() {
        return Ok(("0".into(), -1));
    }
    let bad = || ConnectorError::new(ErrorKind::Database, format!("{:?} is not a PostgreSQL change cursor", cursor.0));
    let (xid, seq) = cursor.0.split_once(':').ok_or_else(bad)?;
    xid.parse::<u64>().map_err(|_| bad())?;
    Ok((xid.to_string(), seq.parse().map_err(|_| bad())?))
}

fn require_setup(client: &mut postgres::Client) -> Result<(), ConnectorError> {
    if has_setup(client)? {
        Ok(())
    } else {
        Err(ConnectorError::new(ErrorKind::Schema, "change capture is not installed in this database; run `dualsync start MAP`"))
    }
}

pub fn cursor(client: &mut postgres::Client) -> Result<Cursor, ConnectorError> {
    require_setup(client)?;
    let row = client.query_one("SELECT pg_snapshot_xmin(pg_current_snapshot())::text", &[]).map_err(db_error)?;
    // Every transaction that commits from now on has an id of at least xmin.
    let xmin: u64 = row.get::<_, String>(0).parse().unwrap_or(0);
    Ok(Cursor(format!("{}:{}", xmin.saturating_sub(1), i64::MAX)))
}

pub fn read(client: &mut postgres::Client, table: &str, after: &Cursor, limit: usize) -> Result<(Vec<Change>, Cursor), ConnectorError> {
    require_setup(client)?;
    let (xid, seq) = parse(after)?;
    let query = format!(
        "SELECT xid::text, seq, key, op, at FROM dualsync_changes
         WHERE tbl = $1 AND (xid, seq) > ($2::text::xid8, $3) AND xid < {HORIZON}
         ORDER BY xid, seq LIMIT $4"
    );
    let rows = client.query(&query, &[&table, &xid, &seq, &(limit as i64)]).map_err(db_error)?;
    let mut last = after.clone();
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        last = Cursor(format!("{}:{}", r.get::<_, String>(0), r.get::<_, i64>(1)));
        let key: &str = r.get(2);
        out.push(Change { values: key_from_text(key), kind: crate::sqlite::change_kind(r.get(3)), at_micros: r.get(4) });
    }
    Ok((out, last))
}

pub fn trim(client: &mut postgres::Client, table: &str, readers: &[Cursor]) -> Result<u64, ConnectorError> {
    if !has_setup(client)? || readers.is_empty() {
        return Ok(0);
    }
    let mut earliest = readers.iter().map(parse).collect::<Result<Vec<_>, _>>()?;
    earliest.sort_by_key(|(xid, seq)| (xid.parse::<u64>().unwrap_or(0), *seq));
    let (xid, seq) = earliest.swap_remove(0);
    client
        .execute("DELETE FROM dualsync_changes WHERE tbl = $1 AND (xid, seq) <= ($2::text::xid8, $3)", &[&table, &xid, &seq])
        .map_err(db_error)
}

pub fn pending(client: &mut postgres::Client, table: &str, after: &Cursor) -> Result<u64, ConnectorError> {
    if !has_setup(client)? {
        return Ok(0);
    }
    let (xid, seq) = parse(after)?;
    let row = client
        .query_one("SELECT count(*) FROM dualsync_changes WHERE tbl = $1 AND (xid, seq) > ($2::text::xid8, $3)", &[&table, &xid, &seq])
        .map_err(db_error)?;
    Ok(row.get::<_, i64>(0) as u64)
}

/// Waits until an app's transaction notifies a change, or the timeout passes.
pub fn wait(client: &mut postgres::Client, listening: &mut bool, timeout: Duration) -> Result<bool, ConnectorError> {
    if !*listening {
        client.batch_execute(&format!("LISTEN {CHANNEL}")).map_err(db_error)?;
        *listening = true;
    }
    use postgres::fallible_iterator::FallibleIterator;
    let mut notifications = client.notifications();
    let woke = notifications.timeout_iter(timeout).next().map_err(db_error)?.is_some();
    // Several notifications may wait; one wake-up reads them all.
    while notifications.iter().next().map_err(db_error)?.is_some() {}
    Ok(woke)
}
