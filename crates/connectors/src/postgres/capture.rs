//! Change capture on PostgreSQL: a row trigger per table records the captured
//! columns of every changed row in `dualsync_changes`, and a statement trigger
//! wakes listeners with `NOTIFY dualsync_changes`.
//!
//! Sequence numbers are taken before commit, so they do not arrive in commit
//! order. Each change also records its transaction id, and a reader takes only
//! changes of transactions older than the oldest one still running
//! (`pg_snapshot_xmin`): those have all committed or aborted, so the cursor
//! (transaction id, sequence) never passes a change that commits later. A
//! long transaction on the app delays capture until it ends; it loses nothing.
//!
//! dualsync's connections set `dualsync.origin = 'dualsync'`; the triggers'
//! WHEN clause skips their changes without calling any function.

use super::db_error;
use crate::sql::double_quote as quote;
use crate::{CaptureSpec, Change, ConnectorError, Cursor, ErrorKind};
use dualsync_model::row::key_from_text;
use std::time::Duration;

pub const CHANNEL: &str = "dualsync_changes";

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
CREATE OR REPLACE FUNCTION dualsync_capture() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE
    new_key text;
    old_key text;
    j jsonb;
BEGIN
    IF TG_OP <> 'DELETE' THEN
        j := to_jsonb(NEW);
        SELECT jsonb_agg(j -> c ORDER BY o)::text INTO new_key FROM unnest(TG_ARGV) WITH ORDINALITY AS t(c, o);
        INSERT INTO dualsync_changes (tbl, key, op) VALUES (TG_TABLE_NAME, new_key, left(TG_OP, 1));
    END IF;
    IF TG_OP <> 'INSERT' THEN
        j := to_jsonb(OLD);
        SELECT jsonb_agg(j -> c ORDER BY o)::text INTO old_key FROM unnest(TG_ARGV) WITH ORDINALITY AS t(c, o);
        IF old_key IS DISTINCT FROM new_key THEN
            INSERT INTO dualsync_changes (tbl, key, op) VALUES (TG_TABLE_NAME, old_key, 'D');
        END IF;
    END IF;
    RETURN NULL;
END
$f$;
CREATE OR REPLACE FUNCTION dualsync_notify() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    PERFORM pg_notify('dualsync_changes', TG_TABLE_NAME);
    RETURN NULL;
END
$f$;
"#;

const NOT_DUALSYNC: &str = "current_setting('dualsync.origin', true) IS DISTINCT FROM 'dualsync'";

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub fn install(client: &mut postgres::Client, spec: &CaptureSpec) -> Result<(), ConnectorError> {
    let mut tx = client.transaction().map_err(db_error)?;
    // Two installs at once would race on CREATE OR REPLACE FUNCTION.
    tx.batch_execute("SELECT pg_advisory_xact_lock(727274)").map_err(db_error)?;
    tx.batch_execute(SETUP).map_err(|e| capture_error(&spec.table, e))?;
    let table = quote(&spec.table);
    let args = spec.columns.iter().map(|c| literal(c)).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "DROP TRIGGER IF EXISTS dualsync_capture ON {table};
         DROP TRIGGER IF EXISTS dualsync_notify ON {table};
         CREATE TRIGGER dualsync_capture AFTER INSERT OR UPDATE OR DELETE ON {table}
             FOR EACH ROW WHEN ({NOT_DUALSYNC}) EXECUTE FUNCTION dualsync_capture({args});
         CREATE TRIGGER dualsync_notify AFTER INSERT OR UPDATE OR DELETE ON {table}
             FOR EACH STATEMENT WHEN ({NOT_DUALSYNC}) EXECUTE FUNCTION dualsync_notify();"
    );
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
        tx.batch_execute(&format!(
            "DROP TRIGGER IF EXISTS dualsync_capture ON {quoted}; DROP TRIGGER IF EXISTS dualsync_notify ON {quoted};"
        ))
        .map_err(db_error)?;
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
                                   WHERE t.tgrelid = to_regclass($2) AND t.tgname IN ('dualsync_capture', 'dualsync_notify')) = 2",
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
    let rows = client
        .query(
            "SELECT xid::text, seq, key, op, at FROM dualsync_changes
             WHERE tbl = $1 AND (xid, seq) > ($2::text::xid8, $3) AND xid < pg_snapshot_xmin(pg_current_snapshot())
             ORDER BY xid, seq LIMIT $4",
            &[&table, &xid, &seq, &(limit as i64)],
        )
        .map_err(db_error)?;
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
