//! Batch writes. A batch of inserts goes straight into the table with one
//! `COPY` (binary where every value encodes, see `binary.rs`). Otherwise the
//! batch's values go into a temporary staging table with
//! `COPY` (text format), then one set-based statement per kind of op moves
//! them into the table with a cast per column, all in one transaction. When
//! the database refuses a statement, its range of staged rows is split in
//! halves under savepoints until each refused row stands alone: the refused
//! rows come back with PostgreSQL's message and every other row commits.

use super::binary;
use super::describe::PgTable;
use super::values::text;
use super::{db_error, message_of};
use crate::sql::double_quote as quote;
use crate::{failure, ConnectorError, Fence, Finish, RowFailure, WriteBatch, WriteOp, WriteOutcome};
use dualsync_model::Value;
use postgres::Transaction;
use std::io::Write;

pub fn write_batch(
    client: &mut postgres::Client,
    table: &PgTable,
    batch: &WriteBatch,
    fence: Option<&Fence>,
    marked: bool,
    finish: Finish,
) -> Result<WriteOutcome, ConnectorError> {
    let converted = utc_readings(table, batch);
    let batch = converted.as_ref().unwrap_or(batch);
    let mut outcome = WriteOutcome::default();
    let mut refused = vec![false; batch.ops.len()];
    let checks = ColumnChecks::of(table, batch);
    for (i, op) in batch.ops.iter().enumerate() {
        if let Some(f) = checks.refuse_before_writing(table, batch, i, op) {
            refused[i] = true;
            outcome.failures.push(f);
        }
    }
    let mut tx = client.transaction().map_err(db_error)?;
    if marked {
        // First in the transaction: log capture skips the changes of a transaction that carries it.
        tx.batch_execute(super::logical::MARK_TRANSACTION).map_err(db_error)?;
    }
    if let Some(fence) = fence {
        // Shared: writers of every partition go on together; a new holder's raise waits for them.
        crate::fence::check(fence_epoch(&mut tx, &fence.store, "FOR SHARE")?, fence)?;
    }
    let inserts: Vec<usize> = (0..batch.ops.len()).filter(|&i| !refused[i] && matches!(batch.ops[i], WriteOp::Insert(_))).collect();
    let only_inserts = inserts.len() == batch.ops.len();
    if only_inserts && copy_into_table(&mut tx, table, batch)? {
        // The fast path: every row went straight into the table.
        end(tx, finish)?;
        return Ok(outcome);
    }
    if !inserts.is_empty() {
        let rows = inserts.iter().map(|&i| match &batch.ops[i] {
            WriteOp::Insert(row) => row.iter().collect::<Vec<_>>(),
            _ => unreachable!("only inserts"),
        });
        stage(&mut tx, batch.columns.len(), rows)?;
        let casts = batch.columns.iter().enumerate().map(|(j, c)| format!("c{j}::{}", cast_of(table, c))).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "INSERT INTO {} ({}) SELECT {casts} FROM {} WHERE n BETWEEN $1 AND $2 ORDER BY n",
            quote(&batch.table),
            batch.columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", "),
            stage_name(batch.columns.len())
        );
        apply_isolating(&mut tx, &sql, &[], &inserts, batch, &mut outcome)?;
    }
    // Updates, grouped by the columns they set; deletes are the group that sets none.
    let mut groups: Vec<(Vec<String>, Vec<usize>)> = Vec::new();
    for (i, op) in batch.ops.iter().enumerate() {
        let columns: Vec<String> = match op {
            WriteOp::Update { set, .. } => set.iter().map(|s| s.0.clone()).collect(),
            WriteOp::Delete { .. } => Vec::new(),
            WriteOp::Insert(_) => continue,
        };
        if !refused[i] {
            match groups.iter_mut().find(|g| g.0 == columns) {
                Some(g) => g.1.push(i),
                None => groups.push((columns, vec![i])),
            }
        }
    }
    for (columns, ops) in groups {
        update_group(&mut tx, table, batch, &columns, &ops, &mut outcome)?;
    }
    end(tx, finish)?;
    outcome.failures.sort_by_key(|f| f.index);
    Ok(outcome)
}

fn update_group(
    tx: &mut Transaction<'_>,
    table: &PgTable,
    batch: &WriteBatch,
    columns: &[String],
    ops: &[usize],
    outcome: &mut WriteOutcome,
) -> Result<(), ConnectorError> {
    let keys = batch.key_columns.len();
    let rows = ops.iter().map(|&i| match &batch.ops[i] {
        WriteOp::Update { key, set } => key.iter().chain(set.iter().map(|s| &s.1)).collect::<Vec<_>>(),
        WriteOp::Delete { key } => key.iter().collect(),
        WriteOp::Insert(_) => unreachable!("only updates and deletes"),
    });
    let width = keys + columns.len();
    stage(tx, width, rows)?;
    let set = columns
        .iter()
        .enumerate()
        .map(|(j, c)| format!("{} = s.c{}::{}", quote(c), keys + j, cast_of(table, c)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut conditions: Vec<String> =
        batch.key_columns.iter().enumerate().map(|(j, c)| format!("t.{} = s.c{j}::{}", quote(c), cast_of(table, c))).collect();
    let mut scope: Vec<Option<String>> = Vec::new();
    for (c, value) in batch.scope_conditions() {
        match value {
            Some(v) => {
                scope.push(text(v));
                conditions.push(format!("t.{} = ${}::text::{}", quote(c), scope.len() + 2, cast_of(table, c)));
            }
            None => conditions.push(format!("t.{} IS NULL", quote(c))),
        }
    }
    let sql = if columns.is_empty() {
        format!(
            "DELETE FROM {} AS t USING {} AS s WHERE {} AND s.n BETWEEN $1 AND $2",
            quote(&batch.table),
            stage_name(width),
            conditions.join(" AND ")
        )
    } else {
        format!(
            "UPDATE {} AS t SET {set} FROM {} AS s WHERE {} AND s.n BETWEEN $1 AND $2",
            quote(&batch.table),
            stage_name(width),
            conditions.join(" AND ")
        )
    };
    apply_isolating(tx, &sql, &scope, ops, batch, outcome)
}

fn cast_of<'a>(table: &'a PgTable, column: &str) -> &'a str {
    table.column(column).map_or("text", |c| c.cast.as_str())
}

fn stage_name(width: usize) -> String {
    format!("dualsync_stage_{width}")
}

/// A batch of inserts copied straight into the table, under a savepoint.
/// Returns false (and undoes it) when the database refused a row: the
/// staging path then finds which.
fn copy_into_table(tx: &mut Transaction<'_>, table: &PgTable, batch: &WriteBatch) -> Result<bool, ConnectorError> {
    tx.batch_execute("SAVEPOINT dualsync_copy").map_err(db_error)?;
    let columns = batch.columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    let copy = format!("COPY {} ({columns}) FROM STDIN", quote(&batch.table));
    let inserted = || {
        batch.ops.iter().map(|op| match op {
            WriteOp::Insert(row) => &row[..],
            _ => unreachable!("only inserts"),
        })
    };
    let copied = match binary::BinaryRows::for_columns(table, &batch.columns) {
        Some(encoder) => match copy_binary(tx, &format!("{copy} (FORMAT binary)"), &encoder, inserted()) {
            Ok(true) => Ok(()),
            // A value with no binary form: the abandoned COPY left nothing; send the batch as text.
            Ok(false) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT dualsync_copy").map_err(db_error)?;
                copy_rows(tx, &copy, inserted().map(|row| row.iter().collect()), false)
            }
            Err(e) => Err(e),
        },
        None => copy_rows(tx, &copy, inserted().map(|row| row.iter().collect()), false),
    };
    match copied {
        Ok(()) => {
            tx.batch_execute("RELEASE SAVEPOINT dualsync_copy").map_err(db_error)?;
            Ok(true)
        }
        Err(e) if is_row_error(&e) => {
            tx.batch_execute("ROLLBACK TO SAVEPOINT dualsync_copy; RELEASE SAVEPOINT dualsync_copy").map_err(db_error)?;
            Ok(false)
        }
        Err(e) => Err(db_error(e)),
    }
}

/// Fills the staging table of this width with the rows, numbered from 0.
fn stage<'v>(tx: &mut Transaction<'_>, width: usize, rows: impl Iterator<Item = Vec<&'v Value>>) -> Result<(), ConnectorError> {
    let name = stage_name(width);
    let columns = (0..width).map(|j| format!(", c{j} text")).collect::<String>();
    // Temporary: private to this connection and gone with it; emptied by every commit.
    tx.batch_execute(&format!("CREATE TEMP TABLE IF NOT EXISTS {name} (n int4{columns}) ON COMMIT DELETE ROWS; TRUNCATE {name}"))
        .map_err(db_error)?;
    copy_rows(tx, &format!("COPY {name} FROM STDIN"), rows, true).map_err(db_error)
}

/// Streams rows as a binary COPY, 64 KB at a time. Ok(false) when a row has
/// a value with no binary form: the COPY is then abandoned (nothing of it stays).
fn copy_binary<'v>(
    tx: &mut Transaction<'_>,
    copy_sql: &str,
    encoder: &binary::BinaryRows,
    rows: impl Iterator<Item = &'v [Value]>,
) -> Result<bool, postgres::Error> {
    const CHUNK: usize = 64 * 1024;
    let mut copy = tx.copy_in(copy_sql)?;
    let mut buf = Vec::with_capacity(2 * CHUNK);
    binary::BinaryRows::header(&mut buf);
    for row in rows {
        if encoder.row(row, &mut buf).is_none() {
            drop(copy); // unfinished: the server aborts the COPY
            return Ok(false);
        }
        if buf.len() >= CHUNK {
            if copy.write_all(&buf).is_err() {
                // The server stopped the COPY: finish() returns its error.
                return copy.finish().map(|_| true);
            }
            buf.clear();
        }
    }
    binary::BinaryRows::trailer(&mut buf);
    // On a refused row the server stops the COPY: finish() returns its error.
    let _ = copy.write_all(&buf);
    copy.finish().map(|_| true)
}

/// Streams rows to a `COPY … FROM STDIN` in text format (numbered from 0 when `numbered`).
fn copy_rows<'v>(
    tx: &mut Transaction<'_>,
    copy_sql: &str,
    rows: impl Iterator<Item = Vec<&'v Value>>,
    numbered: bool,
) -> Result<(), postgres::Error> {
    let mut copy = tx.copy_in(copy_sql)?;
    let mut line = String::new();
    for (n, row) in rows.enumerate() {
        line.clear();
        if numbered {
            line.push_str(&n.to_string());
            line.push('\t');
        }
        for (j, v) in row.into_iter().enumerate() {
            if j > 0 {
                line.push('\t');
            }
            push_copy_value(v, &mut line);
        }
        line.push('\n');
        if copy.write_all(line.as_bytes()).is_err() {
            // The server stopped the COPY: finish() returns its error.
            break;
        }
    }
    copy.finish().map(|_| ())
}

/// A value in COPY's text format: `\N` for NULL; backslash, tab, newline and
/// carriage return escaped. Written straight into the line (once per value).
fn push_copy_value(v: &Value, out: &mut String) {
    use std::fmt::Write;
    match v {
        Value::Null => out.push_str("\\N"),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Text(s) | Value::Decimal(s) | Value::Date(s) | Value::Time(s) | Value::Timestamp(s) => escape_copy(s, out),
        other => escape_copy(&text(other).unwrap_or_default(), out),
    }
}

fn escape_copy(text: &str, out: &mut String) {
    if !text.bytes().any(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r')) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// Runs `sql` for staged rows `0..ops.len()`; on a refused row, halves the
/// range under a savepoint until the refused rows are found.
fn apply_isolating(
    tx: &mut Transaction<'_>,
    sql: &str,
    extra: &[Option<String>],
    ops: &[usize],
    batch: &WriteBatch,
    outcome: &mut WriteOutcome,
) -> Result<(), ConnectorError> {
    let statement = tx.prepare(sql).map_err(db_error)?;
    let mut pending = vec![(0i32, ops.len() as i32 - 1)];
    while let Some((lo, hi)) = pending.pop() {
        tx.batch_execute("SAVEPOINT dualsync_range").map_err(db_error)?;
        let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![&lo, &hi];
        params.extend(extra.iter().map(|e| e as &(dyn postgres::types::ToSql + Sync)));
        match tx.execute(&statement, &params) {
            Ok(_) => tx.batch_execute("RELEASE SAVEPOINT dualsync_range").map_err(db_error)?,
            Err(e) if is_row_error(&e) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT dualsync_range; RELEASE SAVEPOINT dualsync_range").map_err(db_error)?;
                if lo == hi {
                    let index = ops[lo as usize];
                    outcome.failures.push(row_failure(index, &e, batch));
                } else {
                    let mid = lo + (hi - lo) / 2;
                    // Second half first on the stack: rows are applied in order.
                    pending.push((mid + 1, hi));
                    pending.push((lo, mid));
                }
            }
            Err(e) => return Err(db_error(e)),
        }
    }
    Ok(())
}

/// Data errors (class 22) and constraint violations (class 23) concern a row.
fn is_row_error(e: &postgres::Error) -> bool {
    e.as_db_error().is_some_and(|d| {
        let c = d.code().code();
        c.starts_with("22") || c.starts_with("23")
    })
}

fn row_failure(index: usize, e: &postgres::Error, batch: &WriteBatch) -> RowFailure {
    let db = e.as_db_error();
    let named = db.and_then(|d| d.column()).map(str::to_string);
    let message = message_of(e);
    let hint = format!("{message} {}", db.and_then(|d| d.constraint()).unwrap_or(""));
    let column = named.or_else(|| failure::guess_column(&hint, &batch.table, &columns_of(batch, index)));
    RowFailure { index, column, message }
}

fn columns_of(batch: &WriteBatch, index: usize) -> Vec<String> {
    match &batch.ops[index] {
        WriteOp::Insert(_) => batch.columns.clone(),
        WriteOp::Update { set, .. } => set.iter().map(|s| s.0.clone()).collect(),
        WriteOp::Delete { .. } => batch.key_columns.clone(),
    }
}

/// Where a value sits in a batch: an insert's column, an update's or delete's key, an update's set column.
enum Slot {
    Row(usize),
    Key(usize),
    Set(usize),
}

/// The batch with every value with an offset in a `timestamp` (without zone)
/// column replaced by its UTC reading: PostgreSQL would drop the offset
/// (`10:00+05:30` would be stored as `10:00`), while dualsync compares the
/// value as its UTC reading `04:30` (docs/types.md). None when no value needs
/// it, which is every batch of a table without such a column.
fn utc_readings(table: &PgTable, batch: &WriteBatch) -> Option<WriteBatch> {
    if !table.columns.iter().any(|c| c.wall_clock) {
        return None;
    }
    let wall = |c: &String| table.column(c).is_some_and(|c| c.wall_clock);
    let reading = |v: &Value| match v {
        Value::Timestamp(s) | Value::Text(s) => dualsync_model::value::utc_reading(s),
        _ => None,
    };
    let inserted: Vec<bool> = batch.columns.iter().map(wall).collect();
    let keyed: Vec<bool> = batch.key_columns.iter().map(wall).collect();
    let mut changes: Vec<(usize, Slot, String)> = Vec::new();
    for (i, op) in batch.ops.iter().enumerate() {
        let key = match op {
            WriteOp::Insert(row) => {
                let found = row.iter().enumerate().filter(|(j, _)| inserted.get(*j) == Some(&true));
                changes.extend(found.filter_map(|(j, v)| Some((i, Slot::Row(j), reading(v)?))));
                continue;
            }
            WriteOp::Update { key, set } => {
                let found = set.iter().enumerate().filter(|(_, (c, _))| wall(c));
                changes.extend(found.filter_map(|(j, (_, v))| Some((i, Slot::Set(j), reading(v)?))));
                key
            }
            WriteOp::Delete { key } => key,
        };
        let found = key.iter().enumerate().filter(|(j, _)| keyed.get(*j) == Some(&true));
        changes.extend(found.filter_map(|(j, v)| Some((i, Slot::Key(j), reading(v)?))));
    }
    if changes.is_empty() {
        return None;
    }
    let mut out = batch.clone();
    for (i, slot, utc) in changes {
        let value = match (&mut out.ops[i], slot) {
            (WriteOp::Insert(row), Slot::Row(j)) => &mut row[j],
            (WriteOp::Update { set, .. }, Slot::Set(j)) => &mut set[j].1,
            (WriteOp::Update { key, .. } | WriteOp::Delete { key }, Slot::Key(j)) => &mut key[j],
            _ => unreachable!("slots are found in their own kind of op"),
        };
        *value = Value::Timestamp(utc);
    }
    Some(out)
}

/// A column's type class and numeric precision (None: a column the table lacks).
type Check = Option<(dualsync_model::TypeClass, Option<(u32, u32)>)>;

/// What each column of a batch needs checked before writing, looked up once
/// per batch, not once per value.
struct ColumnChecks {
    inserted: Vec<Check>,
    keyed: Vec<Check>,
}

impl ColumnChecks {
    fn of(table: &PgTable, batch: &WriteBatch) -> ColumnChecks {
        let check = |c: &String| Self::check_of(table, c);
        ColumnChecks { inserted: batch.columns.iter().map(check).collect(), keyed: batch.key_columns.iter().map(check).collect() }
    }

    fn check_of(table: &PgTable, column: &str) -> Check {
        let info = table.schema.column(column)?;
        Some((info.class, table.column(column).and_then(|c| c.numeric)))
    }

    /// Values PostgreSQL would change without an error: refused here instead.
    fn refuse_before_writing(&self, table: &PgTable, batch: &WriteBatch, index: usize, op: &WriteOp) -> Option<RowFailure> {
        let refuse = |column: &str, message: String| Some(RowFailure { index, column: Some(column.to_string()), message });
        let check = |column: &str, value: &Value, checked: Check| {
            if let Value::Text(s) = value {
                if s.contains('\0') {
                    return refuse(
                        column,
                        format!(
                            "PostgreSQL text cannot hold the NUL character (0x00): remove it in the source app ({}.{column})",
                            batch.table
                        ),
                    );
                }
            }
            let (class, numeric) = checked?;
            failure::silently_changed(value, class, numeric).and_then(|why| refuse(column, format!("{why} ({}.{column})", batch.table)))
        };
        match op {
            WriteOp::Insert(row) => batch.columns.iter().zip(row).zip(&self.inserted).find_map(|((c, v), k)| check(c, v, *k)),
            WriteOp::Update { key, set } => batch
                .key_columns
                .iter()
                .zip(key)
                .zip(&self.keyed)
                .find_map(|((c, v), k)| check(c, v, *k))
                .or_else(|| set.iter().find_map(|(c, v)| check(c, v, Self::check_of(table, c)))),
            WriteOp::Delete { key } => batch.key_columns.iter().zip(key).zip(&self.keyed).find_map(|((c, v), k)| check(c, v, *k)),
        }
    }
}

fn end(tx: Transaction<'_>, finish: Finish) -> Result<(), ConnectorError> {
    match finish {
        Finish::Commit => tx.commit(),
        Finish::Rollback => tx.rollback(),
    }
    .map_err(db_error)
}

/// The app's fence row's epoch, if the app has one, read under `lock`.
fn fence_epoch(tx: &mut Transaction<'_>, unit: &str, lock: &str) -> Result<Option<i64>, ConnectorError> {
    let sql = format!("SELECT epoch FROM dualsync_fence WHERE unit = $1 {lock}");
    Ok(tx.query_opt(sql.as_str(), &[&unit]).map_err(db_error)?.map(|r| r.get(0)))
}

/// Raises the app's fence to `fence` (see `crate::fence`), or fails when a later holder got there first.
pub fn raise_fence(client: &mut postgres::Client, fence: &Fence) -> Result<(), ConnectorError> {
    let exists: bool = client.query_one("SELECT to_regclass('dualsync_fence') IS NOT NULL", &[]).map_err(db_error)?.get(0);
    if !exists {
        if let Err(e) = client.batch_execute(crate::fence::CREATE) {
            // Another process made it at the same moment (PostgreSQL fails the slower CREATE): it is there.
            let made: bool = client.query_one("SELECT to_regclass('dualsync_fence') IS NOT NULL", &[]).map_err(db_error)?.get(0);
            if !made {
                return Err(db_error(e));
            }
        }
    }
    let mut tx = client.transaction().map_err(db_error)?;
    tx.execute("INSERT INTO dualsync_fence (unit, epoch) VALUES ($1, 0) ON CONFLICT (unit) DO NOTHING", &[&fence.store])
        .map_err(db_error)?;
    crate::fence::check(fence_epoch(&mut tx, &fence.store, "FOR UPDATE")?, fence)?;
    tx.execute(
        "UPDATE dualsync_fence SET epoch = $2, holder = $3 WHERE unit = $1 AND epoch < $2",
        &[&fence.store, &fence.epoch, &crate::fence::holder()],
    )
    .map_err(db_error)?;
    tx.commit().map_err(db_error)
}
