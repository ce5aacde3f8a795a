//! Batch writes. SQLite undoes only the failing statement on a constraint
//! error, so one transaction isolates bad rows exactly: each refused row is
//! reported and every other row commits, with no batch splitting or re-runs.

use super::db_error;
use super::values::Bind;
use crate::sql::{quote, quote_list};
use crate::{ConnectorError, RowFailure, WriteBatch, WriteOp, WriteOutcome};
use rusqlite::{params_from_iter, ErrorCode, TransactionBehavior};

pub fn write_batch(
    conn: &mut rusqlite::Connection,
    batch: &WriteBatch,
) -> Result<WriteOutcome, ConnectorError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)?;
    let mut outcome = WriteOutcome::default();
    let insert_sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        quote(&batch.table),
        quote_list(&batch.columns),
        vec!["?"; batch.columns.len()].join(", ")
    );
    let where_sql = batch
        .key_columns
        .iter()
        .chain(batch.scope.iter().map(|s| &s.0))
        .map(|c| format!("{} = ?", quote(c)))
        .collect::<Vec<_>>()
        .join(" AND ");
    for (index, op) in batch.ops.iter().enumerate() {
        let result = match op {
            WriteOp::Insert(row) => tx
                .prepare_cached(&insert_sql)
                .and_then(|mut s| s.execute(params_from_iter(row.iter().map(Bind)))),
            WriteOp::Update { key, set } => {
                let sql = format!(
                    "UPDATE {} SET {} WHERE {where_sql}",
                    quote(&batch.table),
                    set.iter()
                        .map(|(c, _)| format!("{} = ?", quote(c)))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let params = set
                    .iter()
                    .map(|s| &s.1)
                    .chain(key.iter())
                    .chain(batch.scope.iter().map(|s| &s.1));
                tx.prepare_cached(&sql)
                    .and_then(|mut s| s.execute(params_from_iter(params.map(Bind))))
            }
        };
        match result {
            Ok(_) => {}
            Err(e) if is_row_error(&e) => {
                let message = e.to_string();
                outcome.failures.push(RowFailure {
                    index,
                    column: column_named_in(&message, batch),
                    message,
                });
            }
            Err(e) => return Err(db_error(e)), // the transaction rolls back on drop
        }
    }
    tx.commit().map_err(db_error)?;
    Ok(outcome)
}

/// Errors that concern one row's values, after which the transaction goes on.
fn is_row_error(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::ConstraintViolation | ErrorCode::TypeMismatch | ErrorCode::TooBig)
    )
}

/// SQLite names the column in "NOT NULL constraint failed: t.col"; for a CHECK
/// it shows the expression, which names the column.
fn column_named_in(message: &str, batch: &WriteBatch) -> Option<String> {
    let detail = message
        .split_once("failed: ")
        .map(|x| x.1)
        .unwrap_or(message);
    let prefix = format!("{}.", batch.table);
    if let Some(col) = detail
        .split(", ")
        .next()
        .and_then(|d| d.strip_prefix(&prefix))
    {
        return Some(col.to_string());
    }
    batch
        .columns
        .iter()
        .filter(|c| contains_word(detail, c))
        .max_by_key(|c| c.len())
        .cloned()
}

fn contains_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().last();
        let after = text[i + word.len()..].chars().next();
        let edge = |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        edge(before) && edge(after)
    })
}
