//! MySQL and MariaDB apps, in strict SQL mode so that nothing is truncated
//! silently. Reads stream rows in `<charset>_bin` order; inserts go in
//! multi-row statements (see `write.rs`).

mod binlog;
mod capture;
mod describe;
mod tls;
mod values;
mod write;

pub use binlog::MARK_TRANSACTION;

use crate::log::stream::Streams;
use crate::log::LogCursor;
use crate::select::{self, Build, SelectRows};
use crate::sql::{select, Dialect};
use crate::{
    CaptureSpec, Change, Connection, Connector, ConnectorError, Cursor, ErrorKind, FetchRequest, ScanRequest, Selection, WriteBatch,
    WriteOutcome,
};
use describe::MyTable;
use dualsync_model::{Row, TableSchema, Value};
use mysql::prelude::Queryable;
use std::collections::HashMap;
use std::sync::Arc;

const KEYS_PER_QUERY: usize = 1000;

/// Refuse what does not fit instead of truncating, and talk UTF-8 and UTC.
const SESSION: &str =
    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION',
    time_zone = '+00:00', NAMES utf8mb4";

pub struct MysqlConnector {
    opts: mysql::Opts,
    tls: dualsync_tls::TlsSettings,
    /// Set once a `PREFERRED` connection found that the server offers no TLS.
    plain: std::sync::atomic::AtomicBool,
    location: String,
    /// The log streams of this database's readers, shared by its connections.
    streams: Arc<Streams>,
}

impl MysqlConnector {
    pub fn new(url: &str, location: String, password: Option<&str>) -> Result<Self, ConnectorError> {
        let url = url.replacen("mariadb://", "mysql://", 1);
        let (url, tls, ssl) = tls::from_url(&url, &location)?;
        let opts = mysql::Opts::from_url(&url)
            .map_err(|e| ConnectorError::new(ErrorKind::Unavailable, format!("{location} is not a valid MySQL URL: {e}")))?;
        // Every session marks its writes as dualsync's: capture triggers skip them.
        let mut builder = mysql::OptsBuilder::from_opts(opts).init(vec![SESSION, capture::ORIGIN]).prefer_socket(false).ssl_opts(ssl);
        if let Some(p) = password {
            builder = builder.pass(Some(p));
        }
        Ok(MysqlConnector { opts: builder.into(), tls, plain: Default::default(), location, streams: Arc::default() })
    }
}

impl Connector for MysqlConnector {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn concurrent_writes(&self) -> bool {
        true
    }

    fn write_batch_size(&self) -> usize {
        5_000
    }

    fn connect(&self) -> Result<Box<dyn Connection>, ConnectorError> {
        use std::sync::atomic::Ordering;
        let mut opts = self.opts.clone();
        if self.plain.load(Ordering::Relaxed) {
            opts = mysql::OptsBuilder::from_opts(opts).ssl_opts(None::<mysql::SslOpts>).into();
        }
        let conn = match mysql::Conn::new(opts.clone()) {
            Err(e) if tls::falls_back(&self.tls, &e) => {
                self.plain.store(true, Ordering::Relaxed);
                opts = mysql::OptsBuilder::from_opts(opts).ssl_opts(None::<mysql::SslOpts>).into();
                mysql::Conn::new(opts.clone())
            }
            connected => connected,
        };
        let conn = conn.map_err(|e| {
            if let Some(refused) = dualsync_tls::explain(&e, &self.tls) {
                return ConnectorError::new(ErrorKind::Unavailable, format!("cannot connect to {}: {refused}", self.location));
            }
            let hint = match &e {
                mysql::Error::DriverError(mysql::DriverError::TlsNotSupported) => {
                    "turn TLS on in the server (ssl_cert, ssl_key), or lower ssl-mode in the url"
                }
                mysql::Error::MySqlError(m) if m.code == 1045 => "check the user and the password (password_env / password_file)",
                mysql::Error::MySqlError(m) if m.code == 1049 => "create the database or fix its name in the url",
                _ => "check that the server runs and the host and port in the url",
            };
            ConnectorError::new(ErrorKind::Unavailable, format!("cannot connect to {}: {e}; {hint}", self.location))
        })?;
        let mut conn = conn;
        let marks_writes = mark_writes(&mut conn)?;
        Ok(Box::new(MyConnection {
            conn,
            tables: HashMap::new(),
            fence: None,
            marks_writes,
            streams: self.streams.clone(),
            opts,
            tls: self.tls.clone(),
        }))
    }
}

/// Where the binary log is on, log capture may read it: the session's
/// writes are marked as dualsync's. `skip_replication` marks every event of
/// the session (MariaDB, no privilege needed); where it cannot be set
/// (MySQL), returns true: each write transaction then writes the echo row.
fn mark_writes(conn: &mut mysql::Conn) -> Result<bool, ConnectorError> {
    let log_bin: Option<i64> = conn.query_first("SELECT @@log_bin").map_err(db_error)?;
    if log_bin.unwrap_or(0) == 0 {
        return Ok(false);
    }
    Ok(conn.query_drop("SET SESSION skip_replication = 1").is_err())
}

pub struct MyConnection {
    conn: mysql::Conn,
    tables: HashMap<String, MyTable>,
    /// Checked by every write transaction, once set.
    fence: Option<crate::Fence>,
    /// Whether write transactions write the echo row (log capture skips them).
    marks_writes: bool,
    streams: Arc<Streams>,
    /// To open binlog sessions.
    opts: mysql::Opts,
    tls: dualsync_tls::TlsSettings,
}

struct MyDialect<'a> {
    table: &'a MyTable,
}

impl Dialect for MyDialect<'_> {
    fn quote(&self, name: &str) -> String {
        backtick(name)
    }
    fn placeholder(&self, _index: usize, _column: &str) -> String {
        "?".into()
    }
    fn order_by(&self, column: &str) -> String {
        match self.table.column(column).and_then(|c| c.charset.as_deref()) {
            Some(charset) => format!("{} COLLATE {charset}_bin", backtick(column)),
            None => backtick(column),
        }
    }
}

pub fn backtick(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

impl MyConnection {
    fn table(&mut self, name: &str) -> Result<&MyTable, ConnectorError> {
        if !self.tables.contains_key(name) {
            let t = describe::describe(&mut self.conn, name)?;
            self.tables.insert(name.to_string(), t);
        }
        Ok(&self.tables[name])
    }
}

impl SelectRows for MyConnection {
    fn select_list(&mut self, _table: &str, columns: &[String]) -> Result<String, ConnectorError> {
        Ok(columns.iter().map(|c| backtick(c)).collect::<Vec<_>>().join(", "))
    }

    fn keys_per_query(&self, _key_width: usize) -> usize {
        KEYS_PER_QUERY
    }

    fn select_rows(
        &mut self,
        table: &str,
        build: Build<'_>,
        columns: &[String],
        on_row: &mut dyn FnMut(Row) -> bool,
    ) -> Result<bool, ConnectorError> {
        self.table(table)?;
        let t = &self.tables[table];
        let readers = columns.iter().map(|c| t.reader(c)).collect::<Result<Vec<_>, _>>()?;
        let dialect = MyDialect { table: t };
        let sql = build(&dialect);
        let params: Vec<mysql::Value> = sql.params.iter().map(values::param).collect();
        let text = sql.text;
        let mut result = self.conn.exec_iter(text, params).map_err(db_error)?;
        let mut complete = true;
        if let Some(rows) = result.iter() {
            for row in rows {
                let row = row.map_err(db_error)?;
                let mut values: Vec<Value> = Vec::with_capacity(readers.len() + crate::contract::ROW_SPARE);
                values.extend(row.unwrap().into_iter().zip(&readers).map(|(v, r)| r.read(v)));
                if !on_row(values) {
                    complete = false;
                    break;
                }
            }
        }
        Ok(complete)
    }
}

impl Connection for MyConnection {
    fn describe(&mut self, table: &str) -> Result<TableSchema, ConnectorError> {
        self.tables.remove(table);
        Ok(self.table(table)?.schema.clone())
    }

    fn distinct(&mut self, selection: &Selection, column: &str) -> Result<Vec<Value>, ConnectorError> {
        select::distinct(self, selection, column)
    }

    fn count(&mut self, selection: &Selection) -> Result<u64, ConnectorError> {
        let table = self.table(&selection.table)?.clone();
        let dialect = MyDialect { table: &table };
        let sql = select(&dialect, selection, "count(*)", &[]);
        let params: Vec<mysql::Value> = sql.params.iter().map(values::param).collect();
        let n: Option<u64> = self.conn.exec_first(sql.text, params).map_err(db_error)?;
        Ok(n.unwrap_or(0))
    }

    fn scan(&mut self, request: &ScanRequest, on_batch: &mut dyn FnMut(Vec<Row>) -> bool) -> Result<(), ConnectorError> {
        select::scan(self, request, on_batch)
    }

    fn fetch(&mut self, request: &FetchRequest) -> Result<Vec<Row>, ConnectorError> {
        select::fetch(self, request)
    }

    fn is_healthy(&mut self) -> bool {
        self.conn.ping().is_ok()
    }

    fn database_identity(&mut self) -> Result<String, ConnectorError> {
        let schema: Option<String> = self.conn.query_first("SELECT DATABASE()").map_err(db_error)?;
        let schema = schema.unwrap_or_default();
        // MySQL names each server; MariaDB has no server_uuid: where it runs and keeps its files.
        let server = match self.conn.query_first::<String, _>("SELECT @@server_uuid") {
            Ok(Some(uuid)) => format!("mysql server {uuid}"),
            _ => {
                let row: Option<(String, i64, String)> = self.conn.query_first("SELECT @@hostname, @@port, @@datadir").map_err(db_error)?;
                let (host, port, datadir) = row.unwrap_or_default();
                format!("mariadb server {host}:{port} {datadir}")
            }
        };
        Ok(format!("{server}, database {schema}"))
    }

    fn create_link_table(&mut self) -> Result<(), ConnectorError> {
        self.conn.query_drop(crate::link::CREATE).map_err(db_error)
    }

    fn transport(&mut self) -> Result<crate::Transport, ConnectorError> {
        let status: Vec<(String, String)> =
            self.conn.query("SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')").map_err(db_error)?;
        let of = |name: &str| status.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_default();
        let (version, cipher, settings) = (of("Ssl_version"), of("Ssl_cipher"), self.tls.to_string());
        let exposure = dualsync_tls::exposure(&self.tls, &self.opts.get_ip_or_hostname(), !cipher.is_empty());
        Ok(if cipher.is_empty() {
            crate::Transport::Plain { settings, exposure }
        } else {
            crate::Transport::Tls { version, cipher, verified: self.tls.verified(), settings, exposure }
        })
    }

    /// From information_schema at the global, database and table levels, for
    /// the user and its enabled roles. Grants can come by other ways (a role
    /// not enabled by default, a proxy user), so a missing one is not certain.
    fn privileges(&mut self, table: &str) -> Result<crate::Privileges, ConnectorError> {
        let row: Option<(String, Option<String>)> = self.conn.query_first("SELECT CURRENT_USER(), DATABASE()").map_err(db_error)?;
        let Some((user, database)) = row else { return Ok(crate::Privileges::default()) };
        let (name, host) = user.rsplit_once('@').unwrap_or((&user, "%"));
        let grantee = format!("'{name}'@'{host}'");
        // MariaDB lists one NULL role when none is enabled.
        let roles: Vec<Option<String>> = self.conn.query("SELECT ROLE_NAME FROM information_schema.ENABLED_ROLES").unwrap_or_default();
        let mut grantees: Vec<String> = roles.iter().flatten().map(|r| format!("'{r}'")).collect();
        grantees.push(grantee);
        let granted: Vec<(String, String)> = self
            .conn
            .exec(
                "SELECT GRANTEE, PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES
                 UNION ALL SELECT GRANTEE, PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES WHERE TABLE_SCHEMA = DATABASE()
                 UNION ALL SELECT GRANTEE, PRIVILEGE_TYPE FROM information_schema.TABLE_PRIVILEGES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                (table,),
            )
            .map_err(db_error)?;
        let has = |p: &str| granted.iter().any(|(g, t)| t == p && grantees.contains(g));
        let grant =
            format!("GRANT {{privileges}} ON {}.{} TO '{name}'@'{host}';", backtick(&database.unwrap_or_default()), backtick(table));
        Ok(crate::Privileges {
            select: Some(has("SELECT")),
            insert: Some(has("INSERT")),
            update: Some(has("UPDATE")),
            live: vec![
                ("DELETE".into(), Some(has("DELETE"))),
                ("TRIGGER".into(), Some(has("TRIGGER"))),
                ("PROCESS ON *.*".into(), Some(has("PROCESS"))),
            ],
            grantee: format!("'{name}'@'{host}'"),
            user,
            certain: false,
            grant: Some(grant),
        })
    }

    fn probe(&mut self, batch: &WriteBatch) -> Result<WriteOutcome, ConnectorError> {
        let table = self.table(&batch.table)?.clone();
        write::write_batch(&mut self.conn, &table, batch, self.fence.as_ref(), self.marks_writes, crate::Finish::Rollback)
    }

    fn write(&mut self, batch: &WriteBatch) -> Result<WriteOutcome, ConnectorError> {
        let table = self.table(&batch.table)?.clone();
        write::write_batch(&mut self.conn, &table, batch, self.fence.as_ref(), self.marks_writes, crate::Finish::Commit)
    }

    fn set_fence(&mut self, fence: crate::Fence) -> Result<(), ConnectorError> {
        if self.fence.as_ref() != Some(&fence) {
            write::raise_fence(&mut self.conn, &fence)?;
            self.fence = Some(fence);
        }
        Ok(())
    }

    fn install_capture(&mut self, spec: &CaptureSpec) -> Result<(), ConnectorError> {
        self.table(&spec.table)?;
        capture::install(&mut self.conn, spec)
    }

    fn remove_capture(&mut self, table: &str) -> Result<(), ConnectorError> {
        capture::remove(&mut self.conn, table)
    }

    fn capture_of(&mut self, table: &str) -> Result<Option<Vec<String>>, ConnectorError> {
        capture::capture_of(&mut self.conn, table)
    }

    fn change_cursor(&mut self) -> Result<Cursor, ConnectorError> {
        capture::cursor(&mut self.conn)
    }

    fn read_changes(&mut self, table: &str, after: &Cursor, limit: usize) -> Result<(Vec<Change>, Cursor), ConnectorError> {
        match LogCursor::parse(after)? {
            Some(log) => binlog::read(&mut self.conn, &self.streams, &self.opts, &log, limit),
            None => capture::read(&mut self.conn, table, after, limit),
        }
    }

    /// The binary log is kept by the server's expiry, not by readers: nothing to trim for log readers.
    fn trim_changes(&mut self, table: &str, readers: &[Cursor]) -> Result<u64, ConnectorError> {
        let triggers: Vec<Cursor> = readers.iter().filter(|c| !c.reads_log()).cloned().collect();
        capture::trim(&mut self.conn, table, &triggers)
    }

    fn pending_changes(&mut self, table: &str, after: &Cursor) -> Result<u64, ConnectorError> {
        if after.reads_log() {
            return Ok(0);
        }
        capture::pending(&mut self.conn, table, after)
    }

    /// Not a notifying connector (`notifies` is false): trigger capture is
    /// polled, and so is the log, whose streams ring here all the same.
    fn wait_for_changes(&mut self, timeout: std::time::Duration) -> Result<bool, ConnectorError> {
        if self.streams.any() {
            return Ok(self.streams.wait(timeout));
        }
        std::thread::sleep(timeout);
        Ok(false)
    }

    fn log_capture_missing(&mut self) -> Result<Vec<String>, ConnectorError> {
        binlog::missing(&mut self.conn)
    }

    fn log_capture_advice(&mut self) -> Result<Vec<String>, ConnectorError> {
        binlog::advice(&mut self.conn)
    }

    fn install_log_capture(&mut self, spec: &CaptureSpec, reader: &str) -> Result<Cursor, ConnectorError> {
        let table = self.table(&spec.table)?;
        if let Some(c) = spec.columns.iter().find(|c| table.column(c).is_none()) {
            return Err(ConnectorError::new(ErrorKind::Schema, format!("table {:?} has no column {c:?} to capture", spec.table)));
        }
        let id = self.stream_id(&spec.table, reader)?;
        binlog::install(&mut self.conn, spec, &id)
    }

    fn remove_log_capture(&mut self, table: &str, reader: &str) -> Result<(), ConnectorError> {
        let id = self.stream_id(table, reader)?;
        binlog::remove(&mut self.conn, &self.streams, &id)
    }

    fn release_log_capture(&mut self, table: &str, reader: &str) {
        if let Ok(id) = self.stream_id(table, reader) {
            self.streams.close(&id);
        }
    }

    fn log_capture_of(&mut self, table: &str, reader: &str) -> Result<Option<Vec<String>>, ConnectorError> {
        let id = self.stream_id(table, reader)?;
        binlog::capture_of(&mut self.conn, table, &id)
    }
}

impl MyConnection {
    /// The reader's stream of a table in this database (one binary log serves every database of the server).
    fn stream_id(&self, table: &str, reader: &str) -> Result<String, ConnectorError> {
        let database = self
            .opts
            .get_db_name()
            .ok_or_else(|| ConnectorError::new(ErrorKind::Unsupported, "log capture needs the database named in the url"))?;
        Ok(crate::log::stream_id(&format!("{database}\u{0}{reader}"), table))
    }
}

/// MySQL error codes about one row's values; the statement is undone, the transaction goes on.
pub(crate) fn is_row_error(e: &mysql::Error) -> bool {
    const ROW_ERRORS: [u16; 17] = [1048, 1062, 1264, 1265, 1292, 1364, 1366, 1367, 1406, 1411, 1451, 1452, 1690, 3819, 4025, 1582, 1586];
    matches!(e, mysql::Error::MySqlError(m) if ROW_ERRORS.contains(&m.code))
}

pub(crate) fn db_error(e: mysql::Error) -> ConnectorError {
    let kind = match &e {
        mysql::Error::MySqlError(m) if m.code == 1205 || m.code == 1213 => ErrorKind::Busy,
        mysql::Error::MySqlError(m) if m.code == 1146 || m.code == 1054 => ErrorKind::Schema,
        mysql::Error::MySqlError(_) => ErrorKind::Database,
        mysql::Error::IoError(_) | mysql::Error::DriverError(_) => ErrorKind::Unavailable,
        _ => ErrorKind::Database,
    };
    ConnectorError::new(kind, message_of(&e))
}

pub(crate) fn message_of(e: &mysql::Error) -> String {
    match e {
        mysql::Error::MySqlError(m) => m.message.clone(),
        other => other.to_string(),
    }
}
