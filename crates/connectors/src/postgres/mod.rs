//! PostgreSQL apps. Reads stream rows in `COLLATE "C"` order, numerics and
//! timestamps in binary. A batch of inserts is one `COPY` into the table
//! (binary where every value encodes); other batches, and a batch the server
//! refused, go through a temporary staging table and one set-based statement
//! per kind of op (see `write.rs`). Parameters are bound as text and cast to
//! the column's type on the server, so every type takes one path.

mod binary;
mod capture;
mod describe;
mod logical;
mod tls;
mod values;
mod write;

use crate::log::stream::Streams;
use crate::log::LogCursor;
use crate::select::{self, Build, SelectRows};
use crate::sql::{double_quote, select, Dialect};
use crate::{
    CaptureSpec, Change, Connection, Connector, ConnectorError, Cursor, ErrorKind, FetchRequest, ScanRequest, Selection, WriteBatch,
    WriteOutcome,
};
use describe::PgTable;
use dualsync_model::{Row, TableSchema, Value};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Keys per point query (each key is one bound parameter per key column).
const KEYS_PER_QUERY: usize = 1000;
/// How long a wait for changes listens to log streams alone before it looks
/// for a trigger's notification (the longest a notified change can wait then).
const BELL_SLICE: Duration = Duration::from_millis(10);

pub struct PostgresConnector {
    config: postgres::Config,
    tls: Arc<tls::PgTls>,
    location: String,
    /// The log streams of this database's readers, shared by its connections.
    streams: Arc<Streams>,
}

impl PostgresConnector {
    /// `url` without a password; `password` from the environment or a file.
    pub fn new(url: &str, location: String, password: Option<&str>) -> Result<Self, ConnectorError> {
        let (url, tls) = tls::PgTls::from_url(url, &location)?;
        let mut config = postgres::Config::from_str(&url)
            .map_err(|e| ConnectorError::new(ErrorKind::Unavailable, format!("{location} is not a valid PostgreSQL URL: {e}")))?;
        if let Some(p) = password {
            config.password(p);
        }
        config.application_name("dualsync");
        config.ssl_mode(tls.driver_mode());
        Ok(PostgresConnector { config, tls: Arc::new(tls), location, streams: Arc::default() })
    }
}

impl Connector for PostgresConnector {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn concurrent_writes(&self) -> bool {
        true
    }

    /// Measured: 10,000-row transactions loaded twice as fast as 2,000-row ones
    /// before inserts went through COPY; with COPY, 5,000 rows load as fast as
    /// 10,000 and hold half the memory.
    fn write_batch_size(&self) -> usize {
        5_000
    }

    fn notifies(&self) -> bool {
        true
    }

    fn connect(&self) -> Result<Box<dyn Connection>, ConnectorError> {
        let client = match self.config.get_ssl_mode() {
            postgres::config::SslMode::Disable => self.config.connect(postgres::NoTls),
            _ => self.config.connect(self.tls.connector()),
        }
        .map_err(|e| connect_error(&self.location, &self.tls, e))?;
        let mut client = client;
        // Marks every write of this connection as dualsync's: capture triggers skip them.
        // UTC whatever the server's or the database's TimeZone: a timestamptz is read as
        // its instant in UTC (`…+00:00`), so apps in different zones agree and other
        // databases receive UTC; a value without offset written into one is taken as UTC.
        client.batch_execute("SET dualsync.origin = 'dualsync'; SET TIME ZONE 'UTC'").map_err(db_error)?;
        // Where the WAL is logical, log capture may read it: every write transaction then marks itself as dualsync's.
        let marks_writes = client.query_one("SELECT current_setting('wal_level') = 'logical'", &[]).map_err(db_error)?.get(0);
        Ok(Box::new(PgConnection {
            client,
            tables: HashMap::new(),
            listening: false,
            fence: None,
            marks_writes,
            streams: self.streams.clone(),
            config: self.config.clone(),
            tls: self.tls.clone(),
            location: self.location.clone(),
        }))
    }
}

fn connect_error(location: &str, tls: &tls::PgTls, e: postgres::Error) -> ConnectorError {
    if let Some(refused) = tls.explain(&e) {
        return ConnectorError::new(ErrorKind::Unavailable, format!("cannot connect to {location}: {refused}"));
    }
    let detail = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| {
        let mut s = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            s = format!("{s}: {cause}");
            source = cause.source();
        }
        s
    });
    let hint = match e.as_db_error().map(|d| d.code().code()) {
        Some("28P01") | Some("28000") => "check the user and the password (password_env / password_file)",
        Some("3D000") => "create the database or fix its name in the url",
        None if detail.contains("server does not support TLS") => "turn ssl on in the server, or lower sslmode in the url",
        _ => "check that the server runs and the host and port in the url",
    };
    ConnectorError::new(ErrorKind::Unavailable, format!("cannot connect to {location}: {detail}; {hint}"))
}

pub struct PgConnection {
    client: postgres::Client,
    tables: HashMap<String, PgTable>,
    /// Whether this connection has run LISTEN for capture notifications.
    listening: bool,
    /// Checked by every write transaction, once set.
    fence: Option<crate::Fence>,
    /// Whether write transactions carry dualsync's logical message (log capture skips them).
    marks_writes: bool,
    streams: Arc<Streams>,
    /// To open replication sessions.
    config: postgres::Config,
    tls: Arc<tls::PgTls>,
    location: String,
}

/// The dialect of one table: parameters are cast to its columns' types.
struct PgDialect<'a> {
    table: &'a PgTable,
}

impl Dialect for PgDialect<'_> {
    fn quote(&self, name: &str) -> String {
        double_quote(name)
    }
    fn placeholder(&self, index: usize, column: &str) -> String {
        match self.table.column(column) {
            Some(c) => format!("${index}::text::{}", c.cast),
            None => format!("${index}"),
        }
    }
    fn key_arrays(&self, index: usize, columns: &[String], values: &[Vec<&Value>]) -> Option<(String, Vec<Value>)> {
        // A subquery, not `= ANY($1)`: with a parameter the planner cannot see the
        // array's size and filters the whole partition with it instead of using the key's index.
        let mut arrays = Vec::with_capacity(columns.len());
        for (j, (column, values)) in columns.iter().zip(values).enumerate() {
            let c = self.table.column(column)?;
            arrays.push((format!("${}::text::{}[]", index + j, c.cast), Value::Text(values::array_literal(values))));
        }
        let list = arrays.iter().map(|a| a.0.as_str()).collect::<Vec<_>>().join(", ");
        Some((format!("SELECT * FROM unnest({list})"), arrays.into_iter().map(|a| a.1).collect()))
    }

    fn order_by(&self, column: &str) -> String {
        match self.table.column(column) {
            Some(c) if c.collatable => format!("{} COLLATE \"C\"", double_quote(column)),
            _ => double_quote(column),
        }
    }
}

impl PgConnection {
    /// The replication slot (and publication) of a reader's table in this database.
    fn slot(&self, table: &str, reader: &str) -> String {
        logical::slot_name(&self.config, table, reader)
    }

    fn table(&mut self, name: &str) -> Result<&PgTable, ConnectorError> {
        if !self.tables.contains_key(name) {
            let t = describe::describe(&mut self.client, name)?;
            self.tables.insert(name.to_string(), t);
        }
        Ok(&self.tables[name])
    }
}

impl SelectRows for PgConnection {
    fn select_list(&mut self, table: &str, columns: &[String]) -> Result<String, ConnectorError> {
        Ok(self.table(table)?.select_list(columns))
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
        let dialect = PgDialect { table: t };
        let sql = build(&dialect);
        let params: Vec<Option<String>> = sql.params.iter().map(values::text).collect();
        let text = sql.text;
        let mut rows = self.client.query_raw(text.as_str(), params.iter()).map_err(db_error)?;
        use postgres::fallible_iterator::FallibleIterator;
        while let Some(row) = rows.next().map_err(db_error)? {
            let mut values = Vec::with_capacity(readers.len() + crate::contract::ROW_SPARE);
            for (i, r) in readers.iter().enumerate() {
                values.push(r.read(&row, i).map_err(db_error)?);
            }
            if !on_row(values) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl Connection for PgConnection {
    fn describe(&mut self, table: &str) -> Result<TableSchema, ConnectorError> {
        self.tables.remove(table);
        Ok(self.table(table)?.schema.clone())
    }

    fn distinct(&mut self, selection: &Selection, column: &str) -> Result<Vec<Value>, ConnectorError> {
        select::distinct(self, selection, column)
    }

    fn count(&mut self, selection: &Selection) -> Result<u64, ConnectorError> {
        let mut n = 0;
        let table = self.table(&selection.table)?.clone();
        let dialect = PgDialect { table: &table };
        let sql = select(&dialect, selection, "count(*)", &[]);
        let params: Vec<Option<String>> = sql.params.iter().map(values::text).collect();
        let mut rows = self.client.query_raw(sql.text.as_str(), params.iter()).map_err(db_error)?;
        use postgres::fallible_iterator::FallibleIterator;
        if let Some(row) = rows.next().map_err(db_error)? {
            n = row.try_get::<_, i64>(0).map_err(db_error)? as u64;
        }
        Ok(n)
    }

    fn scan(&mut self, request: &ScanRequest, on_batch: &mut dyn FnMut(Vec<Row>) -> bool) -> Result<(), ConnectorError> {
        select::scan(self, request, on_batch)
    }

    fn fetch(&mut self, request: &FetchRequest) -> Result<Vec<Row>, ConnectorError> {
        select::fetch(self, request)
    }

    /// A listening connection is not pooled: notifications would pile up in it unread.
    fn is_healthy(&mut self) -> bool {
        !self.client.is_closed() && !self.listening
    }

    fn install_capture(&mut self, spec: &CaptureSpec) -> Result<(), ConnectorError> {
        self.table(&spec.table)?;
        capture::install(&mut self.client, spec)
    }

    fn remove_capture(&mut self, table: &str) -> Result<(), ConnectorError> {
        capture::remove(&mut self.client, table)
    }

    fn capture_of(&mut self, table: &str) -> Result<Option<Vec<String>>, ConnectorError> {
        capture::capture_of(&mut self.client, table)
    }

    fn change_cursor(&mut self) -> Result<Cursor, ConnectorError> {
        capture::cursor(&mut self.client)
    }

    fn read_changes(&mut self, table: &str, after: &Cursor, limit: usize) -> Result<(Vec<Change>, Cursor), ConnectorError> {
        match LogCursor::parse(after)? {
            Some(log) => logical::read(&mut self.client, &self.streams, &self.config, &self.tls, &self.location, &log, limit),
            None => capture::read(&mut self.client, table, after, limit),
        }
    }

    /// Log readers' slots are moved on by their streams, not here.
    fn trim_changes(&mut self, table: &str, readers: &[Cursor]) -> Result<u64, ConnectorError> {
        let triggers: Vec<Cursor> = readers.iter().filter(|c| !c.reads_log()).cloned().collect();
        capture::trim(&mut self.client, table, &triggers)
    }

    /// Log readers' backlog is told in bytes of WAL (`log_retained`), not in changes.
    fn pending_changes(&mut self, table: &str, after: &Cursor) -> Result<u64, ConnectorError> {
        if after.reads_log() {
            return Ok(0);
        }
        capture::pending(&mut self.client, table, after)
    }

    fn wait_for_changes(&mut self, timeout: Duration) -> Result<bool, ConnectorError> {
        if self.streams.any() {
            // Log streams ring as changes arrive; trigger capture notifies. Both are
            // watched the whole time: the bell in short slices, with a look at the
            // notifications between them, so that neither waits behind the other.
            let deadline = Instant::now() + timeout;
            loop {
                if self.streams.wait(BELL_SLICE) || capture::wait(&mut self.client, &mut self.listening, Duration::ZERO)? {
                    return Ok(true);
                }
                if Instant::now() >= deadline {
                    return Ok(false);
                }
            }
        }
        capture::wait(&mut self.client, &mut self.listening, timeout)
    }

    fn log_capture_missing(&mut self) -> Result<Vec<String>, ConnectorError> {
        logical::missing(&mut self.client)
    }

    fn log_capture_advice(&mut self) -> Result<Vec<String>, ConnectorError> {
        logical::advice(&mut self.client)
    }

    fn install_log_capture(&mut self, spec: &CaptureSpec, reader: &str) -> Result<Cursor, ConnectorError> {
        self.table(&spec.table)?;
        let slot = self.slot(&spec.table, reader);
        logical::install(&mut self.client, spec, &slot)
    }

    fn remove_log_capture(&mut self, table: &str, reader: &str) -> Result<(), ConnectorError> {
        let slot = self.slot(table, reader);
        logical::remove(&mut self.client, &self.streams, table, &slot)
    }

    fn release_log_capture(&mut self, table: &str, reader: &str) {
        self.streams.close(&self.slot(table, reader));
    }

    fn log_capture_of(&mut self, table: &str, reader: &str) -> Result<Option<Vec<String>>, ConnectorError> {
        let slot = self.slot(table, reader);
        logical::capture_of(&mut self.client, table, &slot)
    }

    fn log_retained(&mut self, table: &str, reader: &str) -> Result<Option<(u64, String)>, ConnectorError> {
        let slot = self.slot(table, reader);
        logical::retained(&mut self.client, &slot)
    }

    fn database_identity(&mut self) -> Result<String, ConnectorError> {
        let row = self
            .client
            .query_one(
                "SELECT (SELECT system_identifier::text FROM pg_control_system()), d.oid::text, current_database()
                 FROM pg_database d WHERE d.datname = current_database()",
                &[],
            )
            .map_err(db_error)?;
        let (system, oid, name): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        Ok(format!("postgres system {system}, database {name} (oid {oid})"))
    }

    fn create_link_table(&mut self) -> Result<(), ConnectorError> {
        let exists = "SELECT to_regclass('dualsync_link') IS NOT NULL";
        if !self.client.query_one(exists, &[]).map_err(db_error)?.get::<_, bool>(0) {
            if let Err(e) = self.client.batch_execute(crate::link::CREATE) {
                // Another process made it at the same moment (PostgreSQL fails the slower CREATE).
                if !self.client.query_one(exists, &[]).map_err(db_error)?.get::<_, bool>(0) {
                    return Err(db_error(e));
                }
            }
        }
        Ok(())
    }

    fn transport(&mut self) -> Result<crate::Transport, ConnectorError> {
        let row =
            self.client.query_opt("SELECT version, cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl", &[]).map_err(db_error)?;
        let (tls, settings) = (&self.tls.settings, self.tls.settings.to_string());
        let host = match self.config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(name)) => name.clone(),
            Some(postgres::config::Host::Unix(path)) => path.display().to_string(),
            None => "localhost".into(),
        };
        let exposure = dualsync_tls::exposure(tls, &host, row.is_some());
        Ok(match row {
            Some(row) => crate::Transport::Tls { version: row.get(0), cipher: row.get(1), verified: tls.verified(), settings, exposure },
            None => crate::Transport::Plain { settings, exposure },
        })
    }

    fn privileges(&mut self, table: &str) -> Result<crate::Privileges, ConnectorError> {
        let row = self
            .client
            .query_one(
                "SELECT current_user::text, has_table_privilege(to_regclass($1), 'SELECT'),
                        has_table_privilege(to_regclass($1), 'INSERT'), has_table_privilege(to_regclass($1), 'UPDATE'),
                        has_table_privilege(to_regclass($1), 'DELETE'), has_table_privilege(to_regclass($1), 'TRIGGER'),
                        has_schema_privilege(current_schema(), 'CREATE'), current_schema()::text",
                &[&double_quote(table)],
            )
            .map_err(db_error)?;
        let user: String = row.get(0);
        let grant = format!("GRANT {{privileges}} ON TABLE {} TO {};", double_quote(table), double_quote(&user));
        Ok(crate::Privileges {
            user,
            select: Some(row.get(1)),
            insert: Some(row.get(2)),
            update: Some(row.get(3)),
            live: vec![
                ("DELETE".into(), Some(row.get(4))),
                ("TRIGGER".into(), Some(row.get(5))),
                (format!("CREATE ON SCHEMA {}", double_quote(&row.get::<_, String>(7))), Some(row.get(6))),
            ],
            certain: true,
            grant: Some(grant),
            grantee: double_quote(&row.get::<_, String>(0)),
        })
    }

    fn probe(&mut self, batch: &WriteBatch) -> Result<WriteOutcome, ConnectorError> {
        self.table(&batch.table)?;
        let table = self.tables[&batch.table].clone();
        write::write_batch(&mut self.client, &table, batch, self.fence.as_ref(), self.marks_writes, crate::Finish::Rollback)
    }

    fn write(&mut self, batch: &WriteBatch) -> Result<WriteOutcome, ConnectorError> {
        self.table(&batch.table)?;
        let table = self.tables[&batch.table].clone();
        write::write_batch(&mut self.client, &table, batch, self.fence.as_ref(), self.marks_writes, crate::Finish::Commit)
    }

    fn set_fence(&mut self, fence: crate::Fence) -> Result<(), ConnectorError> {
        if self.fence.as_ref() != Some(&fence) {
            write::raise_fence(&mut self.client, &fence)?;
            self.fence = Some(fence);
        }
        Ok(())
    }
}

/// Maps a PostgreSQL error to a connector error of the right kind.
pub(crate) fn db_error(e: postgres::Error) -> ConnectorError {
    let kind = match e.as_db_error().map(|d| d.code().code().to_string()) {
        Some(c) if c.starts_with("40") || c == "55P03" => ErrorKind::Busy,
        Some(c) if c == "42P01" || c == "42703" => ErrorKind::Schema,
        Some(c) if c.starts_with("08") || c.starts_with("57") => ErrorKind::Unavailable,
        Some(_) => ErrorKind::Database,
        None if e.is_closed() => ErrorKind::Unavailable,
        None => ErrorKind::Database,
    };
    ConnectorError::new(kind, message_of(&e))
}

/// The server's message with its detail, or the client error.
pub(crate) fn message_of(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => match d.detail() {
            Some(detail) => format!("{} ({detail})", d.message()),
            None => d.message().to_string(),
        },
        None => e.to_string(),
    }
}
