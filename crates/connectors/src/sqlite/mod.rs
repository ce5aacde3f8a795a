//! SQLite apps: a file opened in WAL mode with a busy timeout, so the
//! application that owns it keeps working while dualsync reads and writes.

mod values;
mod write;

use crate::sql::{quote, quote_list, render_where};
use crate::{Connection, Connector, ConnectorError, ErrorKind, FetchRequest, ScanRequest, Selection, WriteBatch, WriteOutcome};
use dualsync_model::{ColumnInfo, Row, TableSchema, TypeClass, Value};
use rusqlite::{params_from_iter, OpenFlags};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

pub use values::type_class;

/// How long a write waits for the application's own writers before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// SQLite accepts up to 32,766 bound values; stay well below per statement.
pub(crate) const MAX_PARAMS: usize = 900;

pub struct SqliteConnector {
    path: PathBuf,
}

impl SqliteConnector {
    pub fn new(path: PathBuf) -> Self {
        SqliteConnector { path }
    }
}

impl Connector for SqliteConnector {
    fn location(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    fn connect(&self) -> Result<Box<dyn Connection>, ConnectorError> {
        if !self.path.exists() {
            return Err(ConnectorError::new(
                ErrorKind::Unavailable,
                format!(
                    "database file {} does not exist; check the app's url (relative paths start at the config file's folder)",
                    self.path.display()
                ),
            ));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let conn = rusqlite::Connection::open_with_flags(&self.path, flags)
            .map_err(|e| ConnectorError::new(ErrorKind::Unavailable, format!("cannot open {}: {e}", self.path.display())))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db_error)?;
        // WAL lets the owning application read and write while we sync; NORMAL
        // sync is durable across application crashes in WAL mode.
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db_error)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(db_error)?;
        conn.pragma_update(None, "cache_size", -16000).map_err(db_error)?;
        // Checkpoint after ~32 MB of WAL instead of 4 MB: a bulk sync rewrites the
        // same B-tree pages in consecutive batches, and each checkpoint copies them again.
        conn.pragma_update(None, "wal_autocheckpoint", 8192).map_err(db_error)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Box::new(SqliteConnection { conn, schemas: HashMap::new() }))
    }
}

pub struct SqliteConnection {
    conn: rusqlite::Connection,
    schemas: HashMap<String, TableSchema>,
}

impl SqliteConnection {
    fn schema(&mut self, table: &str) -> Result<&TableSchema, ConnectorError> {
        if !self.schemas.contains_key(table) {
            let s = describe(&self.conn, table)?;
            self.schemas.insert(table.to_string(), s);
        }
        Ok(&self.schemas[table])
    }

    fn classes(&mut self, table: &str, columns: &[String]) -> Result<Vec<TypeClass>, ConnectorError> {
        let schema = self.schema(table)?;
        columns
            .iter()
            .map(|c| {
                schema.column(c).map(|c| c.class).ok_or_else(|| {
                    ConnectorError::new(
                        ErrorKind::Schema,
                        format!("column {c:?} does not exist in table {table:?} (columns: {})", schema.column_names()),
                    )
                })
            })
            .collect()
    }
}

impl Connection for SqliteConnection {
    fn describe(&mut self, table: &str) -> Result<TableSchema, ConnectorError> {
        self.schemas.remove(table);
        self.schema(table).cloned()
    }

    fn distinct(&mut self, selection: &Selection, column: &str) -> Result<Vec<Value>, ConnectorError> {
        let class = self.classes(&selection.table, &[column.to_string()])?[0];
        let mut params = Vec::new();
        let sql = format!(
            "SELECT DISTINCT {c} FROM {t}{w} ORDER BY {c} COLLATE BINARY",
            c = quote(column),
            t = quote(&selection.table),
            w = render_where(selection.filter.as_ref(), &selection.equals, &mut params)
        );
        let mut stmt = self.conn.prepare(&sql).map_err(db_error)?;
        let mut rows = stmt.query(params_from_iter(params.iter().map(values::Bind))).map_err(db_error)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(db_error)? {
            out.push(values::read(row.get_ref(0).map_err(db_error)?, class));
        }
        Ok(out)
    }

    fn count(&mut self, selection: &Selection) -> Result<u64, ConnectorError> {
        self.schema(&selection.table)?;
        let mut params = Vec::new();
        let sql = format!(
            "SELECT count(*) FROM {}{}",
            quote(&selection.table),
            render_where(selection.filter.as_ref(), &selection.equals, &mut params)
        );
        self.conn
            .query_row(&sql, params_from_iter(params.iter().map(values::Bind)), |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(db_error)
    }

    fn scan(&mut self, request: &ScanRequest, on_batch: &mut dyn FnMut(Vec<Row>) -> bool) -> Result<(), ConnectorError> {
        let sel = &request.selection;
        let classes = self.classes(&sel.table, &request.columns)?;
        let mut params = Vec::new();
        let order = request.order_by.iter().map(|c| format!("{} COLLATE BINARY", quote(c))).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT {} FROM {}{} ORDER BY {order}",
            quote_list(&request.columns),
            quote(&sel.table),
            render_where(sel.filter.as_ref(), &sel.equals, &mut params)
        );
        let mut stmt = self.conn.prepare(&sql).map_err(db_error)?;
        let mut rows = stmt.query(params_from_iter(params.iter().map(values::Bind))).map_err(db_error)?;
        let mut batch = Vec::with_capacity(request.batch_size);
        while let Some(row) = rows.next().map_err(db_error)? {
            let mut values = Vec::with_capacity(classes.len());
            for (i, class) in classes.iter().enumerate() {
                values.push(values::read(row.get_ref(i).map_err(db_error)?, *class));
            }
            batch.push(values);
            if batch.len() >= request.batch_size {
                if !on_batch(std::mem::replace(&mut batch, Vec::with_capacity(request.batch_size))) {
                    return Ok(());
                }
            }
        }
        if !batch.is_empty() {
            on_batch(batch);
        }
        Ok(())
    }

    fn fetch(&mut self, request: &FetchRequest) -> Result<Vec<Row>, ConnectorError> {
        let sel = &request.selection;
        let classes = self.classes(&sel.table, &request.columns)?;
        self.classes(&sel.table, &request.match_columns)?;
        let width = request.match_columns.len().max(1);
        let mut out = Vec::new();
        for chunk in request.keys.chunks((MAX_PARAMS / width).max(1)) {
            let mut params = Vec::new();
            let mut sql = format!(
                "SELECT {} FROM {}{}",
                quote_list(&request.columns),
                quote(&sel.table),
                render_where(sel.filter.as_ref(), &sel.equals, &mut params)
            );
            sql.push_str(if params.is_empty() && sel.equals.is_empty() && sel.filter.is_none() { " WHERE " } else { " AND " });
            if width == 1 {
                sql.push_str(&format!("{} IN ({})", quote(&request.match_columns[0]), vec!["?"; chunk.len()].join(", ")));
            } else {
                let tuple = format!("({})", vec!["?"; width].join(", "));
                sql.push_str(&format!("({}) IN (VALUES {})", quote_list(&request.match_columns), vec![tuple; chunk.len()].join(", ")));
            }
            params.extend(chunk.iter().flatten().cloned());
            let mut stmt = self.conn.prepare_cached(&sql).map_err(db_error)?;
            let mut rows = stmt.query(params_from_iter(params.iter().map(values::Bind))).map_err(db_error)?;
            while let Some(row) = rows.next().map_err(db_error)? {
                let mut values = Vec::with_capacity(classes.len());
                for (i, class) in classes.iter().enumerate() {
                    values.push(values::read(row.get_ref(i).map_err(db_error)?, *class));
                }
                out.push(values);
            }
        }
        Ok(out)
    }

    fn write(&mut self, batch: &WriteBatch) -> Result<WriteOutcome, ConnectorError> {
        self.schema(&batch.table)?;
        write::write_batch(&mut self.conn, batch)
    }
}

fn describe(conn: &rusqlite::Connection, table: &str) -> Result<TableSchema, ConnectorError> {
    let mut stmt = conn
        .prepare("SELECT name, type, \"notnull\", dflt_value IS NOT NULL, pk FROM pragma_table_info(?1) ORDER BY cid")
        .map_err(db_error)?;
    let mut pk: Vec<(i64, String)> = Vec::new();
    let columns = stmt
        .query_map([table], |r| {
            let name: String = r.get(0)?;
            let declared: String = r.get(1)?;
            let pk_pos: i64 = r.get(4)?;
            Ok((
                ColumnInfo {
                    class: type_class(&declared),
                    declared_type: declared,
                    nullable: r.get::<_, i64>(2)? == 0 && pk_pos == 0,
                    has_default: r.get(3)?,
                    name,
                },
                pk_pos,
            ))
        })
        .map_err(db_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(db_error)?
        .into_iter()
        .map(|(c, pk_pos)| {
            if pk_pos > 0 {
                pk.push((pk_pos, c.name.clone()));
            }
            c
        })
        .collect::<Vec<_>>();
    if columns.is_empty() {
        return Err(ConnectorError::new(ErrorKind::Schema, format!("table {table:?} does not exist")));
    }
    pk.sort();
    let mut unique_keys = Vec::new();
    let mut idx = conn.prepare("SELECT name FROM pragma_index_list(?1) WHERE \"unique\" = 1 AND origin <> 'pk'").map_err(db_error)?;
    let names: Vec<String> = idx.query_map([table], |r| r.get(0)).map_err(db_error)?.collect::<Result<_, _>>().map_err(db_error)?;
    for name in names {
        let mut cols = conn.prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno").map_err(db_error)?;
        let key: Vec<String> =
            cols.query_map([&name], |r| r.get::<_, Option<String>>(0)).map_err(db_error)?.filter_map(|c| c.ok().flatten()).collect();
        unique_keys.push(key);
    }
    Ok(TableSchema { name: table.to_string(), columns, primary_key: pk.into_iter().map(|p| p.1).collect(), unique_keys })
}

/// Maps an SQLite error to a connector error of the right kind.
pub(crate) fn db_error(e: rusqlite::Error) -> ConnectorError {
    use rusqlite::ErrorCode::*;
    let kind = match e.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked) => ErrorKind::Busy,
        Some(CannotOpen | NotADatabase | PermissionDenied) => ErrorKind::Unavailable,
        _ if e.to_string().contains("no such column") || e.to_string().contains("no such table") => ErrorKind::Schema,
        _ => ErrorKind::Database,
    };
    ConnectorError::new(kind, e.to_string())
}
