//! Batch writes in one transaction. Inserts go in multi-row statements; SQLite
//! undoes only the failing statement on a constraint error, so when a chunk is
//! refused its rows are re-run one by one: each refused row is reported with
//! SQLite's message and every other row of the batch commits. Values SQLite
//! would store as another amount (its column affinity turns long decimals
//! into floats) are refused before writing.

use super::db_error;
use super::values::{affinity, changed_by_affinity, Affinity, Bind, Stored};
use super::MAX_PARAMS;
use crate::sql::double_quote as quote;
use crate::{ConnectorError, Fence, Finish, RowFailure, WriteBatch, WriteOp, WriteOutcome};
use dualsync_model::TableSchema;
use rusqlite::{params_from_iter, ErrorCode, Transaction, TransactionBehavior};

/// Rows per multi-row INSERT (fewer when the table is wide).
const ROWS_PER_INSERT: usize = 64;

pub fn write_batch(
    conn: &mut rusqlite::Connection,
    schema: &TableSchema,
    batch: &WriteBatch,
    fence: Option<&Fence>,
    finish: Finish,
) -> Result<WriteOutcome, ConnectorError> {
    let affinities = Affinities::of(schema);
    let mut refused = refusals(&affinities, batch);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
    if let Some(fence) = fence {
        // The transaction is the file's only writer from here: a plain read of the fence is enough.
        crate::fence::check(fence_epoch(&tx, &fence.store)?, fence)?;
    }
    // With capture installed, mark this transaction as dualsync's so that the triggers skip it.
    let marked = super::capture::origin_table_exists(&tx)?;
    if marked {
        tx.execute_batch("INSERT INTO dualsync_origin VALUES (1)").map_err(db_error)?;
    }
    let mut outcome = WriteOutcome::default();
    let writer = Writer::new(&tx, &affinities, batch);
    let mut index = 0;
    while index < batch.ops.len() {
        // Consecutive inserts go together; updates one by one.
        let run = batch.ops[index..].iter().take(writer.rows_per_insert).take_while(|o| matches!(o, WriteOp::Insert(_))).count();
        let lossy = !refused.is_empty() && (index..index + run.max(1)).any(|i| refused[i].is_some());
        if run > 1 && !lossy {
            match writer.insert_many(index, run) {
                Ok(()) => {}
                Err(e) if is_row_error(&e) => {
                    for i in index..index + run {
                        writer.one(i, &mut outcome)?;
                    }
                }
                Err(e) => return Err(db_error(e)), // the transaction rolls back on drop
            }
            index += run;
        } else {
            for i in index..index + run.max(1) {
                match refused.get_mut(i).and_then(Option::take) {
                    Some(failure) => outcome.failures.push(failure),
                    None => writer.one(i, &mut outcome)?,
                }
            }
            index += run.max(1);
        }
    }
    if marked {
        tx.execute_batch("DELETE FROM dualsync_origin").map_err(db_error)?;
    }
    match finish {
        Finish::Commit => tx.commit().map_err(db_error)?,
        Finish::Rollback => tx.rollback().map_err(db_error)?,
    }
    Ok(outcome)
}

struct Writer<'a> {
    tx: &'a Transaction<'a>,
    column_affinities: &'a Affinities<'a>,
    batch: &'a WriteBatch,
    /// The affinity of each of the batch's columns.
    affinities: Vec<Affinity>,
    rows_per_insert: usize,
    where_sql: String,
}

impl<'a> Writer<'a> {
    fn new(tx: &'a Transaction<'a>, column_affinities: &'a Affinities<'a>, batch: &'a WriteBatch) -> Self {
        let where_sql = batch
            .key_columns
            .iter()
            .map(|c| format!("{} = ?", quote(c)))
            .chain(batch.scope_conditions().map(|(c, v)| format!("{} {}", quote(c), if v.is_some() { "= ?" } else { "IS NULL" })))
            .collect::<Vec<_>>()
            .join(" AND ");
        let rows_per_insert = (MAX_PARAMS / batch.columns.len().max(1)).clamp(1, ROWS_PER_INSERT);
        let affinities = batch.columns.iter().map(|c| column_affinities.get(c)).collect();
        Writer { tx, column_affinities, batch, affinities, rows_per_insert, where_sql }
    }

    fn insert_sql(&self, rows: usize) -> String {
        let tuple = format!("({})", vec!["?"; self.batch.columns.len()].join(", "));
        format!(
            "INSERT INTO {} ({}) VALUES {}",
            quote(&self.batch.table),
            self.batch.columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", "),
            vec![tuple; rows].join(", ")
        )
    }

    /// Inserts ops `start..start + rows` (all inserts) in one statement.
    fn insert_many(&self, start: usize, rows: usize) -> rusqlite::Result<()> {
        let mut stmt = self.tx.prepare_cached(&self.insert_sql(rows))?;
        let values = self.batch.ops[start..start + rows].iter().flat_map(|op| match op {
            WriteOp::Insert(row) => row.iter(),
            WriteOp::Update { .. } | WriteOp::Delete { .. } => [].iter(),
        });
        let affinities = self.affinities.iter().cycle();
        stmt.execute(params_from_iter(values.zip(affinities).map(|(v, a)| Stored(v, *a)))).map(|_| ())
    }

    /// Applies one op; a refused row is recorded and the transaction goes on.
    fn one(&self, index: usize, outcome: &mut WriteOutcome) -> Result<(), ConnectorError> {
        let result = match &self.batch.ops[index] {
            WriteOp::Insert(row) => {
                let values = row.iter().zip(&self.affinities).map(|(v, a)| Stored(v, *a));
                self.tx.prepare_cached(&self.insert_sql(1)).and_then(|mut s| s.execute(params_from_iter(values)))
            }
            WriteOp::Update { key, set } => {
                let sql = format!(
                    "UPDATE {} SET {} WHERE {}",
                    quote(&self.batch.table),
                    set.iter().map(|(c, _)| format!("{} = ?", quote(c))).collect::<Vec<_>>().join(", "),
                    self.where_sql
                );
                // Only a float's binding depends on the column (see `Stored`).
                let set_values = set.iter().map(|(c, v)| {
                    Stored(v, if matches!(v, dualsync_model::Value::Float(_)) { self.column_affinities.get(c) } else { Affinity::Blob })
                });
                let conditions = key.iter().chain(self.batch.scope_conditions().filter_map(|s| s.1));
                let params = set_values.chain(conditions.map(|v| Stored(v, Affinity::Blob)));
                self.tx.prepare_cached(&sql).and_then(|mut s| s.execute(params_from_iter(params)))
            }
            WriteOp::Delete { key } => {
                let sql = format!("DELETE FROM {} WHERE {}", quote(&self.batch.table), self.where_sql);
                let params = key.iter().chain(self.batch.scope_conditions().filter_map(|s| s.1));
                self.tx.prepare_cached(&sql).and_then(|mut s| s.execute(params_from_iter(params.map(Bind))))
            }
        };
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_row_error(&e) => {
                let message = e.to_string();
                outcome.failures.push(RowFailure { index, column: column_named_in(&message, self.batch), message });
                Ok(())
            }
            Err(e) => Err(db_error(e)),
        }
    }
}

/// Each column's affinity and declared type, worked out once per batch. A
/// short list: updates look columns up per value.
struct Affinities<'a> {
    columns: Vec<(&'a str, Affinity, &'a str)>,
    /// Whether any column turns text into numbers (INTEGER, REAL, NUMERIC affinity).
    any_numeric: bool,
}

impl<'a> Affinities<'a> {
    fn of(schema: &'a TableSchema) -> Self {
        let columns: Vec<_> =
            schema.columns.iter().map(|c| (c.name.as_str(), affinity(&c.declared_type), c.declared_type.as_str())).collect();
        let any_numeric = columns.iter().any(|(_, a, _)| is_numeric(*a));
        Affinities { columns, any_numeric }
    }

    /// A column the table lacks converts nothing (SQLite refuses the statement).
    fn get(&self, column: &str) -> Affinity {
        self.columns.iter().find(|(name, ..)| *name == column).map_or(Affinity::Blob, |c| c.1)
    }

    /// The affinity and declared type of a column that turns text into numbers.
    fn numeric(&self, column: &str) -> Option<(Affinity, &'a str)> {
        self.columns.iter().find(|(name, ..)| *name == column).filter(|c| is_numeric(c.1)).map(|c| (c.1, c.2))
    }
}

fn is_numeric(a: Affinity) -> bool {
    matches!(a, Affinity::Integer | Affinity::Real | Affinity::Numeric)
}

/// Per op, the refusal of a value SQLite would store as another amount (see
/// [`changed_by_affinity`]); empty when no op has one.
fn refusals(affinities: &Affinities<'_>, batch: &WriteBatch) -> Vec<Option<RowFailure>> {
    let numeric = |column: &str| affinities.numeric(column);
    let inserted: Vec<_> = batch.columns.iter().map(|c| numeric(c)).collect();
    let refuse = |column: &String, value: &dualsync_model::Value, affinity: (Affinity, &str)| {
        changed_by_affinity(value, affinity.0, affinity.1).map(|why| (column.clone(), format!("{why} ({}.{column})", batch.table)))
    };
    let mut out: Vec<Option<RowFailure>> = Vec::new();
    for (index, op) in batch.ops.iter().enumerate() {
        let found = match op {
            WriteOp::Insert(row) => row.iter().zip(&batch.columns).zip(&inserted).find_map(|((v, c), a)| a.and_then(|a| refuse(c, v, a))),
            WriteOp::Update { set, .. } if affinities.any_numeric => set.iter().find_map(|(c, v)| numeric(c).and_then(|a| refuse(c, v, a))),
            WriteOp::Update { .. } => None,
            WriteOp::Delete { .. } => None,
        };
        if let Some((column, message)) = found {
            out.resize(batch.ops.len(), None);
            out[index] = Some(RowFailure { index, column: Some(column), message });
        }
    }
    out
}

/// Errors that concern one row's values, after which the transaction goes on.
fn is_row_error(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::ConstraintViolation | ErrorCode::TypeMismatch | ErrorCode::TooBig))
}

fn column_named_in(message: &str, batch: &WriteBatch) -> Option<String> {
    crate::failure::guess_column(message, &batch.table, &batch.columns)
}

/// The app's fence row's epoch, if the app has one.
fn fence_epoch(tx: &rusqlite::Connection, unit: &str) -> Result<Option<i64>, ConnectorError> {
    use rusqlite::OptionalExtension;
    tx.query_row("SELECT epoch FROM dualsync_fence WHERE unit = ?1", [unit], |r| r.get(0)).optional().map_err(db_error)
}

/// Raises the app's fence to `fence` (see `crate::fence`), or fails when a later holder got there first.
pub fn raise_fence(conn: &mut rusqlite::Connection, fence: &Fence) -> Result<(), ConnectorError> {
    conn.execute_batch(crate::fence::CREATE).map_err(db_error)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
    tx.execute("INSERT OR IGNORE INTO dualsync_fence (unit, epoch) VALUES (?1, 0)", [&fence.store]).map_err(db_error)?;
    crate::fence::check(fence_epoch(&tx, &fence.store)?, fence)?;
    tx.execute(
        "UPDATE dualsync_fence SET epoch = ?2, holder = ?3 WHERE unit = ?1 AND epoch < ?2",
        rusqlite::params![fence.store, fence.epoch, crate::fence::holder()],
    )
    .map_err(db_error)?;
    tx.commit().map_err(db_error)
}
