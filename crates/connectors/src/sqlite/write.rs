//! Batch writes in one transaction. Inserts go in multi-row statements; SQLite
//! undoes only the failing statement on a constraint error, so when a chunk is
//! refused its rows are re-run one by one: each refused row is reported with
//! SQLite's message and every other row of the batch commits.

use super::db_error;
use super::values::Bind;
use super::MAX_PARAMS;
use crate::sql::double_quote as quote;
use crate::{ConnectorError, Finish, RowFailure, WriteBatch, WriteOp, WriteOutcome};
use rusqlite::{params_from_iter, ErrorCode, Transaction, TransactionBehavior};

/// Rows per multi-row INSERT (fewer when the table is wide).
const ROWS_PER_INSERT: usize = 64;

pub fn write_batch(conn: &mut rusqlite::Connection, batch: &WriteBatch, finish: Finish) -> Result<WriteOutcome, ConnectorError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
    // With capture installed, mark this transaction as dualsync's so that the triggers skip it.
    let marked = super::capture::origin_table_exists(&tx)?;
    if marked {
        tx.execute_batch("INSERT INTO dualsync_origin VALUES (1)").map_err(db_error)?;
    }
    let mut outcome = WriteOutcome::default();
    let writer = Writer::new(&tx, batch);
    let mut index = 0;
    while index < batch.ops.len() {
        // Consecutive inserts go together; updates one by one.
        let run = batch.ops[index..].iter().take(writer.rows_per_insert).take_while(|o| matches!(o, WriteOp::Insert(_))).count();
        if run > 1 {
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
            writer.one(index, &mut outcome)?;
            index += 1;
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
    batch: &'a WriteBatch,
    rows_per_insert: usize,
    where_sql: String,
}

impl<'a> Writer<'a> {
    fn new(tx: &'a Transaction<'a>, batch: &'a WriteBatch) -> Self {
        let where_sql = batch
            .key_columns
            .iter()
            .map(|c| format!("{} = ?", quote(c)))
            .chain(batch.scope_conditions().map(|(c, v)| format!("{} {}", quote(c), if v.is_some() { "= ?" } else { "IS NULL" })))
            .collect::<Vec<_>>()
            .join(" AND ");
        let rows_per_insert = (MAX_PARAMS / batch.columns.len().max(1)).clamp(1, ROWS_PER_INSERT);
        Writer { tx, batch, rows_per_insert, where_sql }
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
        stmt.execute(params_from_iter(values.map(Bind))).map(|_| ())
    }

    /// Applies one op; a refused row is recorded and the transaction goes on.
    fn one(&self, index: usize, outcome: &mut WriteOutcome) -> Result<(), ConnectorError> {
        let result = match &self.batch.ops[index] {
            WriteOp::Insert(row) => {
                self.tx.prepare_cached(&self.insert_sql(1)).and_then(|mut s| s.execute(params_from_iter(row.iter().map(Bind))))
            }
            WriteOp::Update { key, set } => {
                let sql = format!(
                    "UPDATE {} SET {} WHERE {}",
                    quote(&self.batch.table),
                    set.iter().map(|(c, _)| format!("{} = ?", quote(c))).collect::<Vec<_>>().join(", "),
                    self.where_sql
                );
                let params = set.iter().map(|s| &s.1).chain(key.iter()).chain(self.batch.scope_conditions().filter_map(|s| s.1));
                self.tx.prepare_cached(&sql).and_then(|mut s| s.execute(params_from_iter(params.map(Bind))))
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

/// Errors that concern one row's values, after which the transaction goes on.
fn is_row_error(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::ConstraintViolation | ErrorCode::TypeMismatch | ErrorCode::TooBig))
}

fn column_named_in(message: &str, batch: &WriteBatch) -> Option<String> {
    crate::failure::guess_column(message, &batch.table, &batch.columns)
}
