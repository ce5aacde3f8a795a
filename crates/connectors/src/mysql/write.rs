//! Batch writes in one transaction: inserts as multi-row statements, updates
//! one by one. InnoDB undoes only a failing statement, so a refused chunk is
//! re-run row by row: each refused row is reported with MySQL's message and
//! every other row commits.

use super::describe::MyTable;
use super::values::param;
use super::{backtick, db_error, is_row_error, message_of};
use crate::{failure, ConnectorError, Fence, Finish, RowFailure, WriteBatch, WriteOp, WriteOutcome};
use mysql::prelude::Queryable;
use mysql::{Transaction, TxOpts};

const ROWS_PER_INSERT: usize = 200;
const MAX_PARAMS: usize = 60_000;

pub fn write_batch(
    conn: &mut mysql::Conn,
    table: &MyTable,
    batch: &WriteBatch,
    fence: Option<&Fence>,
    marks_writes: bool,
    finish: Finish,
) -> Result<WriteOutcome, ConnectorError> {
    let mut outcome = WriteOutcome::default();
    let mut tx = conn.start_transaction(TxOpts::default()).map_err(db_error)?;
    if marks_writes {
        // Log capture skips the transaction (the echo table exists once log capture is set up).
        match tx.query_drop(super::binlog::MARK_TRANSACTION) {
            Ok(()) => {}
            Err(mysql::Error::MySqlError(e)) if e.code == 1146 => {}
            Err(e) => return Err(db_error(e)),
        }
    }
    if let Some(fence) = fence {
        // Shared: writers of every partition go on together; a new holder's raise waits for them.
        crate::fence::check(fence_epoch(&mut tx, &fence.store, "LOCK IN SHARE MODE")?, fence)?;
    }
    let per_insert = (MAX_PARAMS / batch.columns.len().max(1)).clamp(1, ROWS_PER_INSERT);
    let mut index = 0;
    while index < batch.ops.len() {
        let run = batch.ops[index..].iter().take(per_insert).take_while(|o| matches!(o, WriteOp::Insert(_))).count();
        let lossy = (index..index + run.max(1)).any(|i| refused(table, batch, i).is_some());
        if run > 1 && !lossy {
            match insert(&mut tx, batch, index, run) {
                Ok(()) => {}
                Err(e) if is_row_error(&e) => {
                    for i in index..index + run {
                        one(&mut tx, table, batch, i, &mut outcome)?;
                    }
                }
                Err(e) => return Err(db_error(e)),
            }
            index += run;
        } else {
            for i in index..index + run.max(1) {
                one(&mut tx, table, batch, i, &mut outcome)?;
            }
            index += run.max(1);
        }
    }
    match finish {
        Finish::Commit => tx.commit().map_err(db_error)?,
        Finish::Rollback => tx.rollback().map_err(db_error)?,
    }
    Ok(outcome)
}

fn insert_sql(batch: &WriteBatch, rows: usize) -> String {
    let tuple = format!("({})", vec!["?"; batch.columns.len()].join(", "));
    format!(
        "INSERT INTO {} ({}) VALUES {}",
        backtick(&batch.table),
        batch.columns.iter().map(|c| backtick(c)).collect::<Vec<_>>().join(", "),
        vec![tuple; rows].join(", ")
    )
}

fn insert(tx: &mut Transaction<'_>, batch: &WriteBatch, start: usize, rows: usize) -> Result<(), mysql::Error> {
    let params: Vec<mysql::Value> = batch.ops[start..start + rows]
        .iter()
        .flat_map(|op| match op {
            WriteOp::Insert(row) => row.iter().map(param).collect::<Vec<_>>(),
            WriteOp::Update { .. } | WriteOp::Delete { .. } => Vec::new(),
        })
        .collect();
    tx.exec_drop(insert_sql(batch, rows), params)
}

/// Applies one op; a refused row is recorded and the transaction goes on.
fn one(
    tx: &mut Transaction<'_>,
    table: &MyTable,
    batch: &WriteBatch,
    index: usize,
    outcome: &mut WriteOutcome,
) -> Result<(), ConnectorError> {
    if let Some(f) = refused(table, batch, index) {
        outcome.failures.push(f);
        return Ok(());
    }
    let conditions = || {
        batch
            .key_columns
            .iter()
            .map(|c| format!("{} = ?", backtick(c)))
            .chain(batch.scope_conditions().map(|(c, v)| format!("{} {}", backtick(c), if v.is_some() { "= ?" } else { "IS NULL" })))
            .collect::<Vec<_>>()
    };
    let result = match &batch.ops[index] {
        WriteOp::Insert(row) => tx.exec_drop(insert_sql(batch, 1), row.iter().map(param).collect::<Vec<_>>()),
        WriteOp::Delete { key } => {
            let sql = format!("DELETE FROM {} WHERE {}", backtick(&batch.table), conditions().join(" AND "));
            let params: Vec<mysql::Value> = key.iter().chain(batch.scope_conditions().filter_map(|s| s.1)).map(param).collect();
            tx.exec_drop(sql, params)
        }
        WriteOp::Update { key, set } => {
            let conditions = conditions();
            let sql = format!(
                "UPDATE {} SET {} WHERE {}",
                backtick(&batch.table),
                set.iter().map(|(c, _)| format!("{} = ?", backtick(c))).collect::<Vec<_>>().join(", "),
                conditions.join(" AND ")
            );
            let params: Vec<mysql::Value> =
                set.iter().map(|s| &s.1).chain(key.iter()).chain(batch.scope_conditions().filter_map(|s| s.1)).map(param).collect();
            tx.exec_drop(sql, params)
        }
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if is_row_error(&e) => {
            let message = message_of(&e);
            let columns = match &batch.ops[index] {
                WriteOp::Insert(_) => batch.columns.clone(),
                WriteOp::Update { set, .. } => set.iter().map(|s| s.0.clone()).collect(),
                WriteOp::Delete { .. } => batch.key_columns.clone(),
            };
            let column = failure::guess_column(&message, &batch.table, &columns).or_else(|| {
                // "CONSTRAINT `CONSTRAINT_1` failed": the column is in the constraint's definition.
                let name = message.split('`').nth(1)?;
                let clause: Option<String> = tx
                    .exec_first(
                        "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = ? AND CONSTRAINT_NAME = ?",
                        (&batch.table, name),
                    )
                    .ok()
                    .flatten();
                failure::guess_column(&clause?, &batch.table, &columns)
            });
            outcome.failures.push(RowFailure { index, column, message });
            Ok(())
        }
        Err(e) => Err(db_error(e)),
    }
}

/// Values MySQL would round without an error, even in strict mode.
fn refused(table: &MyTable, batch: &WriteBatch, index: usize) -> Option<RowFailure> {
    let pairs: Vec<(&String, &dualsync_model::Value)> = match &batch.ops[index] {
        WriteOp::Insert(row) => batch.columns.iter().zip(row).collect(),
        WriteOp::Update { set, .. } => set.iter().map(|(c, v)| (c, v)).collect(),
        WriteOp::Delete { .. } => Vec::new(),
    };
    pairs.into_iter().find_map(|(column, value)| {
        let info = table.schema.column(column)?;
        let numeric = table.column(column).and_then(|c| c.numeric);
        failure::silently_changed(value, info.class, numeric).map(|why| RowFailure {
            index,
            column: Some(column.clone()),
            message: format!("{why} ({}.{column})", batch.table),
        })
    })
}

/// The app's fence row's epoch, if the app has one, read under `lock`.
fn fence_epoch(tx: &mut Transaction<'_>, unit: &str, lock: &str) -> Result<Option<i64>, ConnectorError> {
    tx.exec_first(format!("SELECT epoch FROM dualsync_fence WHERE unit = ? {lock}"), (unit,)).map_err(db_error)
}

/// Raises the app's fence to `fence` (see `crate::fence`), or fails when a later holder got there first.
pub fn raise_fence(conn: &mut mysql::Conn, fence: &Fence) -> Result<(), ConnectorError> {
    // DDL commits on its own in MySQL: before the transaction.
    conn.query_drop(crate::fence::CREATE).map_err(db_error)?;
    let mut tx = conn.start_transaction(TxOpts::default()).map_err(db_error)?;
    tx.exec_drop("INSERT IGNORE INTO dualsync_fence (unit, epoch) VALUES (?, 0)", (&fence.store,)).map_err(db_error)?;
    crate::fence::check(fence_epoch(&mut tx, &fence.store, "FOR UPDATE")?, fence)?;
    tx.exec_drop(
        "UPDATE dualsync_fence SET epoch = ?, holder = ? WHERE unit = ? AND epoch < ?",
        (fence.epoch, crate::fence::holder(), &fence.store, fence.epoch),
    )
    .map_err(db_error)?;
    tx.commit().map_err(db_error)
}
