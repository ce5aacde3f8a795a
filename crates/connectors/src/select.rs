//! Reading rows, written once for the SQL connectors: each provides its SELECT
//! list and runs a statement built by `sql.rs` with its own dialect; `scan`,
//! `fetch` and `distinct` are the same on every database.

use crate::sql::{select, select_keys, Dialect, Statement};
use crate::{ConnectorError, FetchRequest, ScanRequest, Selection};
use dualsync_model::{Row, Value};

/// A statement builder, given the dialect of the table it reads.
pub type Build<'b> = &'b dyn Fn(&dyn Dialect) -> Statement;

pub trait SelectRows {
    /// The SELECT list for `columns` of `table` (with casts where the database needs them).
    fn select_list(&mut self, table: &str, columns: &[String]) -> Result<String, ConnectorError>;

    /// Runs the statement `build` makes and hands each row (of `columns`) to
    /// `on_row` until it returns false; returns whether every row was handed over.
    fn select_rows(
        &mut self,
        table: &str,
        build: Build<'_>,
        columns: &[String],
        on_row: &mut dyn FnMut(Row) -> bool,
    ) -> Result<bool, ConnectorError>;

    /// Keys per point query (each key column of each key is a bound parameter).
    fn keys_per_query(&self, key_width: usize) -> usize;
}

pub fn scan(c: &mut impl SelectRows, request: &ScanRequest, on_batch: &mut dyn FnMut(Vec<Row>) -> bool) -> Result<(), ConnectorError> {
    let list = c.select_list(&request.selection.table, &request.columns)?;
    let mut batch = Vec::with_capacity(request.batch_size);
    let build = |d: &dyn Dialect| select(d, &request.selection, &list, &request.order_by).finish();
    let go_on = c.select_rows(&request.selection.table, &build, &request.columns, &mut |row| {
        batch.push(row);
        batch.len() < request.batch_size || on_batch(std::mem::replace(&mut batch, Vec::with_capacity(request.batch_size)))
    })?;
    if go_on && !batch.is_empty() {
        on_batch(batch);
    }
    Ok(())
}

pub fn fetch(c: &mut impl SelectRows, request: &FetchRequest) -> Result<Vec<Row>, ConnectorError> {
    let list = c.select_list(&request.selection.table, &request.columns)?;
    let per_query = c.keys_per_query(request.match_columns.len().max(1)).max(1);
    let mut out = Vec::new();
    for chunk in request.keys.chunks(per_query) {
        let build = |d: &dyn Dialect| select_keys(d, &request.selection, &list, &request.match_columns, chunk).finish();
        c.select_rows(&request.selection.table, &build, &request.columns, &mut |row| {
            out.push(row);
            true
        })?;
    }
    Ok(out)
}

/// Distinct values in key order (sorted here: DISTINCT cannot ORDER BY a COLLATE it does not select).
pub fn distinct(c: &mut impl SelectRows, selection: &Selection, column: &str) -> Result<Vec<Value>, ConnectorError> {
    let columns = [column.to_string()];
    let list = format!("DISTINCT {}", c.select_list(&selection.table, &columns)?);
    let mut out = Vec::new();
    let build = |d: &dyn Dialect| select(d, selection, &list, &[]).finish();
    c.select_rows(&selection.table, &build, &columns, &mut |mut r| {
        out.push(r.pop().unwrap_or(Value::Null));
        true
    })?;
    out.sort_by(|a, b| a.key_cmp(b));
    Ok(out)
}
