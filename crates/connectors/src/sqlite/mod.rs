//! SQLite apps: a file opened with a busy timeout, so the application that
//! owns it keeps working while dualsync reads and writes.
//!
//! Opening a file changes nothing in it: `check`, `plan` and reads leave its
//! journal mode as the application set it. The file is switched to WAL mode
//! (for good: the mode is stored in the file) only where dualsync writes: at
//! the first committed write batch, when change capture is installed, and by
//! `prepare_for_writing` before a sync or a bootstrap, whose readers and writers use
//! the same file at once (in a rollback journal, a writer cannot commit while
//! a reader's statement is open, so a sync would wait on its own reader).

mod capture;
mod values;
mod write;

use crate::select::{self, Build, SelectRows};
use crate::sql::{double_quote, select, Dialect};
use crate::{
    CaptureSpec, Change, Connection, Connector, ConnectorError, Cursor, ErrorKind, FetchRequest, ScanRequest, Selection, WriteBatch,
    WriteOutcome,
};
use dualsync_model::{ColumnInfo, Row, TableSchema, TypeClass, Value};
use rusqlite::{params_from_iter, OpenFlags};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

pub(crate) use capture::kind_of as change_kind;
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
        let conn = self.open()?;
        let wal = journal_mode(&conn)? == "wal";
        if wal {
            wal_session(&conn)?;
        }
        // 2 MB of page cache per connection (SQLite's default): a sync holds several per partition,
        // several partitions at once, and its reads and writes go in key order, which a bigger cache
        // does not speed up (measured on the 1M-row customers bench).
        conn.pragma_update(None, "cache_size", -2000).map_err(db_error)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Box::new(SqliteConnection { conn, schemas: HashMap::new(), wal_checked: wal, fence: None }))
    }

    fn prepare_for_writing(&self) -> Result<(), ConnectorError> {
        self.use_wal()
    }
}

impl SqliteConnector {
    /// Puts the file in WAL mode unless it is in it already, waiting for the
    /// application's locks. For a command that reads and writes the file at
    /// once (a sync): call it before the first read.
    fn use_wal(&self) -> Result<(), ConnectorError> {
        use_wal(&self.open()?)
    }

    /// Opens the file (which must exist) with the busy timeout; changes nothing in it.
    fn open(&self) -> Result<rusqlite::Connection, ConnectorError> {
        if !self.path.exists() {
            return Err(ConnectorError::new(
                ErrorKind::Unavailable,
                format!(
                    "cannot connect to sqlite://{}: the database file does not exist; check the app's url (relative paths start at the config file's folder)",
                    self.path.display()
                ),
            ));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let conn = rusqlite::Connection::open_with_flags(&self.path, flags)
            .map_err(|e| ConnectorError::new(ErrorKind::Unavailable, format!("cannot open {}: {e}", self.path.display())))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db_error)?;
        Ok(conn)
    }
}

/// The file's journal mode, lower case (`delete`, `wal`, …). Only reads.
fn journal_mode(conn: &rusqlite::Connection) -> Result<String, ConnectorError> {
    conn.query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0)).map(|m| m.to_ascii_lowercase()).map_err(db_error)
}

/// Switches the file to WAL mode if it is not in it yet: WAL lets the owning
/// application read and write while dualsync writes, and dualsync's readers
/// and writers work at once. Switching needs the file to itself for a moment:
/// it waits for other connections' locks up to the busy timeout. A file that
/// cannot use WAL (a VFS without shared memory) stays as it is.
fn use_wal(conn: &rusqlite::Connection) -> Result<(), ConnectorError> {
    let mut mode = journal_mode(conn)?;
    if mode != "wal" {
        mode = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)).map_err(|e| {
            let mut err = db_error(e);
            err.message = format!("cannot switch the file from journal mode {mode} to WAL: {}", err.message);
            err
        })?;
        mode.make_ascii_lowercase();
    }
    if mode == "wal" {
        wal_session(conn)?;
    }
    Ok(())
}

/// This connection's settings for a file in WAL mode (they last as long as the connection, nothing is stored).
fn wal_session(conn: &rusqlite::Connection) -> Result<(), ConnectorError> {
    // NORMAL sync is durable across application crashes in WAL mode (in a rollback journal it is not: FULL stays).
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(db_error)?;
    // Checkpoint after ~32 MB of WAL instead of 4 MB: a bulk sync rewrites the
    // same B-tree pages in consecutive batches, and each checkpoint copies them again.
    conn.pragma_update(None, "wal_autocheckpoint", 8192).map_err(db_error)
}

struct SqliteDialect;

impl Dialect for SqliteDialect {
    fn quote(&self, name: &str) -> String {
        double_quote(name)
    }
    fn placeholder(&self, _index: usize, _column: &str) -> String {
        "?".into()
    }
    fn order_by(&self, column: &str) -> String {
        format!("{} COLLATE BINARY", double_quote(column))
    }
}

pub struct SqliteConnection {
    conn: rusqlite::Connection,
    schemas: HashMap<String, TableSchema>,
    /// The file is in WAL mode, or was switched (or found unable to switch) by this connection.
    wal_checked: bool,
    /// Checked by every write transaction, once set.
    fence: Option<crate::Fence>,
}

impl SqliteConnection {
    /// Before dualsync writes for good: the file goes to WAL mode (once per connection).
    fn before_writing(&mut self) -> Result<(), ConnectorError> {
        if !self.wal_checked {
            use_wal(&self.conn)?;
            self.wal_checked = true;
        }
        Ok(())
    }

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

impl SelectRows for SqliteConnection {
    fn select_list(&mut self, _table: &str, columns: &[String]) -> Result<String, ConnectorError> {
        Ok(columns.iter().map(|c| double_quote(c)).collect::<Vec<_>>().join(", "))
    }

    fn keys_per_query(&self, key_width: usize) -> usize {
        MAX_PARAMS / key_width.max(1)
    }

    fn select_rows(
        &mut self,
        table: &str,
        build: Build<'_>,
        columns: &[String],
        on_row: &mut dyn FnMut(Row) -> bool,
    ) -> Result<bool, ConnectorError> {
        let classes = self.classes(table, columns)?;
        let sql = build(&SqliteDialect);
        let mut stmt = self.conn.prepare_cached(&sql.text).map_err(db_error)?;
        let mut rows = stmt.query(params_from_iter(sql.params.iter().map(values::Bind))).map_err(db_error)?;
        while let Some(row) = rows.next().map_err(db_error)? {
            let mut values = Vec::with_capacity(classes.len() + crate::contract::ROW_SPARE);
            for (i, class) in classes.iter().enumerate() {
                values.push(values::read(row.get_ref(i).map_err(db_error)?, *class));
            }
            if !on_row(values) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl Connection for SqliteConnection {
    fn describe(&mut self, table: &str) -> Result<TableSchema, ConnectorError> {
        self.schemas.remove(table);
        self.schema(table).cloned()
    }

    fn distinct(&mut self, selection: &Selection, column: &str) -> Result<Vec<Value>, ConnectorError> {
        select::distinct(self, selection, column)
    }

    fn count(&mut self, selection: &Selection) -> Result<u64, ConnectorError> {
        self.schema(&selection.table)?;
        let sql = select(&SqliteDialect, selection, "count(*)", &[]);
        self.conn
            .query_row(&sql.text, params_from_iter(sql.params.iter().map(values::Bind)), |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(db_error)
    }

    fn scan(&mut self, request: &ScanRequest, on_batch: &mut dyn FnMut(Vec<Row>) -> bool) -> Result<(), ConnectorError> {
        select::scan(self, request, on_batch)
    }

    fn fetch(&mut self, request: &FetchRequest) -> Result<Vec<Row>, ConnectorError> {
        select::fetch(self, request)
    }

    /// A SQLite file can be read by whoever opened it; it can be written when
    /// neither the file nor the connection is read-only.
    fn privileges(&mut self, _table: &str) -> Result<crate::Privileges, ConnectorError> {
        let writable = !self.conn.is_readonly(rusqlite::MAIN_DB).map_err(db_error)?;
        Ok(crate::Privileges {
            user: String::new(),
            select: Some(true),
            insert: Some(writable),
            update: Some(writable),
            live: vec![("DELETE".into(), Some(writable))],
            certain: true,
            grant: None,
            grantee: String::new(),
        })
    }

    /// A probe is rolled back: it leaves the file, journal mode included, as it was.
    fn probe(&mut self, batch: &WriteBatch) -> Result<WriteOutcome, ConnectorError> {
        self.schema(&batch.table)?;
        write::write_batch(&mut self.conn, &self.schemas[&batch.table], batch, self.fence.as_ref(), crate::Finish::Rollback)
    }

    fn write(&mut self, batch: &WriteBatch) -> Result<WriteOutcome, ConnectorError> {
        self.schema(&batch.table)?;
        self.before_writing()?;
        write::write_batch(&mut self.conn, &self.schemas[&batch.table], batch, self.fence.as_ref(), crate::Finish::Commit)
    }

    fn database_identity(&mut self) -> Result<String, ConnectorError> {
        let path = self.conn.path().unwrap_or_default().to_string();
        let path = std::fs::canonicalize(&path).map(|p| p.display().to_string()).unwrap_or(path);
        // The inode tells a copy (or a restored backup) from the file itself, wherever it lies.
        #[cfg(unix)]
        let inode = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(&path).map(|m| format!(" (device {}, inode {})", m.dev(), m.ino())).unwrap_or_default()
        };
        #[cfg(not(unix))]
        let inode = String::new();
        Ok(format!("sqlite file {path}{inode}"))
    }

    fn create_link_table(&mut self) -> Result<(), ConnectorError> {
        self.conn.execute_batch(crate::link::CREATE).map_err(db_error)
    }

    fn set_fence(&mut self, fence: crate::Fence) -> Result<(), ConnectorError> {
        if self.fence.as_ref() != Some(&fence) {
            write::raise_fence(&mut self.conn, &fence)?;
            self.fence = Some(fence);
        }
        Ok(())
    }

    fn install_capture(&mut self, spec: &CaptureSpec) -> Result<(), ConnectorError> {
        self.schema(&spec.table)?;
        self.before_writing()?;
        capture::install(&mut self.conn, spec)
    }

    fn remove_capture(&mut self, table: &str) -> Result<(), ConnectorError> {
        capture::remove(&mut self.conn, table)
    }

    fn capture_of(&mut self, table: &str) -> Result<Option<Vec<String>>, ConnectorError> {
        capture::capture_of(&self.conn, table)
    }

    fn change_cursor(&mut self) -> Result<Cursor, ConnectorError> {
        capture::cursor(&self.conn)
    }

    fn read_changes(&mut self, table: &str, after: &Cursor, limit: usize) -> Result<(Vec<Change>, Cursor), ConnectorError> {
        capture::read(&self.conn, table, after, limit)
    }

    fn trim_changes(&mut self, table: &str, readers: &[Cursor]) -> Result<u64, ConnectorError> {
        capture::trim(&mut self.conn, table, readers)
    }

    fn pending_changes(&mut self, table: &str, after: &Cursor) -> Result<u64, ConnectorError> {
        capture::pending(&self.conn, table, after)
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
