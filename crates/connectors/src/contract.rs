//! The connector contract: what every kind of app database provides.

use crate::ConnectorError;
use dualsync_model::{Filter, Key, Row, TableSchema, Value};

/// A kind of database at one address. Cheap to share between threads; each
/// worker opens its own [`Connection`].
pub trait Connector: Send + Sync {
    /// Where this connector points, without secrets, for messages.
    fn location(&self) -> String;

    fn connect(&self) -> Result<Box<dyn Connection>, ConnectorError>;

    /// Rows per write transaction that suit this database (servers commit
    /// fewer, larger batches faster). A map's `batch_size` overrides it.
    fn write_batch_size(&self) -> usize {
        2000
    }

    /// Whether several connections may write to this database at once with
    /// gain (SQLite has one writer per file: no).
    fn concurrent_writes(&self) -> bool {
        false
    }

    /// Whether [`Connection::wait_for_changes`] is woken by the database
    /// (otherwise live sync polls).
    fn notifies(&self) -> bool {
        false
    }

    /// Readies the database for a run that reads and writes it at once (a
    /// sync, a bootstrap): called once, after the checks and before the
    /// first read. SQLite switches the file to WAL mode here, since in a
    /// rollback journal a writer cannot commit while a reader's statement is
    /// open. `check` and `plan` never call it.
    fn prepare_for_writing(&self) -> Result<(), ConnectorError> {
        Ok(())
    }

    /// How this database's changes are captured when not from its log.
    fn capture_way(&self) -> CaptureWay {
        CaptureWay::Triggers
    }

    /// Where change capture sees changed rows but not deleted ones (polling
    /// a service): how often live sync looks its maps' keys up to find the
    /// deleted ones. None: capture records deletes.
    fn delete_scan_every(&self) -> Option<std::time::Duration> {
        None
    }
}

/// How a connector captures changes (besides reading a database's log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureWay {
    /// Triggers record each change, with the capture's columns, in a change table.
    Triggers,
    /// A change timestamp is polled (an OData service): nothing is installed,
    /// and [`Connection::capture_of`] records no columns of its own.
    Polling,
    /// The service's own change tracking (Dataverse's delta links): nothing
    /// is installed either.
    ChangeTracking,
}

impl CaptureWay {
    /// As `check` and `status` name it.
    pub fn name(self) -> &'static str {
        match self {
            CaptureWay::Triggers => "trigger",
            CaptureWay::Polling => "poll",
            CaptureWay::ChangeTracking => "track",
        }
    }

    /// Whether something is installed in the database (triggers, a change table).
    pub fn installs(self) -> bool {
        self == CaptureWay::Triggers
    }
}

/// One open connection. Not shared between threads.
///
/// Contract:
/// - [`Connection::scan`] yields rows in `order_by` order under a binary
///   collation (byte order for text), as [`dualsync_model::Value::key_cmp`] sorts.
/// - [`Connection::write`] is one transaction: rows the database refuses are
///   reported in [`WriteOutcome::failures`] with the database's own message,
///   and every other row of the batch commits. An `Err` means nothing of the
///   batch committed (the database is gone, locked, or full) and the whole
///   batch may be retried.
/// - Writes are idempotent per key when retried after a failure.
pub trait Connection: Send {
    fn describe(&mut self, table: &str) -> Result<TableSchema, ConnectorError>;

    /// The distinct values of `column` among the selected rows, in key order.
    fn distinct(&mut self, selection: &Selection, column: &str) -> Result<Vec<Value>, ConnectorError>;

    fn count(&mut self, selection: &Selection) -> Result<u64, ConnectorError>;

    /// Streams the selected rows in `order_by` order, `batch_size` rows at a
    /// time. Stops early when `on_batch` returns false.
    fn scan(&mut self, request: &ScanRequest, on_batch: &mut dyn FnMut(Vec<Row>) -> bool) -> Result<(), ConnectorError>;

    /// The selected rows whose `match_columns` equal one of `keys` (in no particular order).
    fn fetch(&mut self, request: &FetchRequest) -> Result<Vec<Row>, ConnectorError>;

    fn write(&mut self, batch: &WriteBatch) -> Result<WriteOutcome, ConnectorError>;

    /// Writes the batch exactly as `write` does, then undoes it: nothing is
    /// left in the table. Measures what writing costs (`dualsync plan`).
    fn probe(&mut self, batch: &WriteBatch) -> Result<WriteOutcome, ConnectorError>;

    /// What the connected user may do with the table: for each of SELECT,
    /// INSERT and UPDATE, whether it is granted (None: this database cannot say).
    fn privileges(&mut self, _table: &str) -> Result<Privileges, ConnectorError> {
        Ok(Privileges::default())
    }

    /// What identifies this database itself, for environment fencing: what
    /// the server tells of itself (PostgreSQL's system identifier and the
    /// database's oid; MySQL's server_uuid, MariaDB's host, port and data
    /// directory; with the schema), or a SQLite file's path and inode. A
    /// database restored or copied elsewhere answers differently.
    fn database_identity(&mut self) -> Result<String, ConnectorError> {
        Err(not_built("environment fencing"))
    }

    /// Creates the link table (`link::CREATE`) where it is missing.
    fn create_link_table(&mut self) -> Result<(), ConnectorError> {
        Err(not_built("environment fencing"))
    }

    /// How this connection travels, as the server reports it (`dualsync check`).
    fn transport(&mut self) -> Result<Transport, ConnectorError> {
        Ok(Transport::Local)
    }

    /// Whether the connection can be used again (a pool keeps only those).
    fn is_healthy(&mut self) -> bool {
        true
    }

    /// Installs change capture on a table: triggers that record, for every
    /// row inserted, updated or deleted by anyone but dualsync, the values of
    /// `spec.columns` in the change table `dualsync_changes` of this database.
    /// Replaces capture already installed on the table.
    fn install_capture(&mut self, _spec: &CaptureSpec) -> Result<(), ConnectorError> {
        Err(not_built("change capture"))
    }

    /// Removes a table's triggers and its pending changes.
    fn remove_capture(&mut self, _table: &str) -> Result<(), ConnectorError> {
        Err(not_built("change capture"))
    }

    /// The columns a table's capture records, or None where none is installed
    /// (or, where the connector installs nothing, none can run: an empty list says it can).
    fn capture_of(&mut self, _table: &str) -> Result<Option<Vec<String>>, ConnectorError> {
        Ok(None)
    }

    /// A cursor before every change that commits from now on: reading from it
    /// yields exactly the changes committed after this call.
    fn change_cursor(&mut self) -> Result<Cursor, ConnectorError> {
        Err(not_built("change capture"))
    }

    /// Up to `limit` committed changes of `table` after `after`, in order, and
    /// the cursor after the last one. A change is returned once it and all
    /// changes before it are readable by a new read of the table, so a cursor
    /// never passes one that commits late, and the engine, which reads the
    /// rows as they are now, never reads a row before its change is visible.
    /// A cursor from [`Connection::install_log_capture`] reads the log.
    fn read_changes(&mut self, _table: &str, _after: &Cursor, _limit: usize) -> Result<(Vec<Change>, Cursor), ConnectorError> {
        Err(not_built("change capture"))
    }

    /// Deletes the table's changes that every reader has passed: those at or
    /// before the earliest of `readers` (each reader's cursor).
    fn trim_changes(&mut self, _table: &str, _readers: &[Cursor]) -> Result<u64, ConnectorError> {
        Ok(0)
    }

    /// Waits up to `timeout` for a change to be captured (PostgreSQL is
    /// woken by NOTIFY; other databases just wait). Returns whether it was woken.
    fn wait_for_changes(&mut self, timeout: std::time::Duration) -> Result<bool, ConnectorError> {
        std::thread::sleep(timeout);
        Ok(false)
    }

    /// The number of changes of the table after `after` (lag, for `status`).
    fn pending_changes(&mut self, _table: &str, _after: &Cursor) -> Result<u64, ConnectorError> {
        Ok(0)
    }

    /// What log capture (reading the database's own log instead of
    /// triggers) needs here that the server or the user lacks, each with the
    /// fix. Empty when it is ready.
    fn log_capture_missing(&mut self) -> Result<Vec<String>, ConnectorError> {
        Ok(vec!["this kind of database has no log dualsync can read: it keeps trigger capture".into()])
    }

    /// Advice on log capture that does not stop it (a WAL limit, say).
    fn log_capture_advice(&mut self) -> Result<Vec<String>, ConnectorError> {
        Ok(Vec::new())
    }

    /// Sets up log capture of a table for one reader (a map's side): the
    /// reader's own place in the log, kept by the database (a replication
    /// slot) or by the cursor alone (a binary log). Kept when it exists.
    /// Returns a cursor before every change committed from now on; reading
    /// the table's changes with it ([`Connection::read_changes`]) reads the log.
    fn install_log_capture(&mut self, _spec: &CaptureSpec, _reader: &str) -> Result<Cursor, ConnectorError> {
        Err(not_built("log capture"))
    }

    /// Removes the reader's log capture of the table (its slot), if any.
    fn remove_log_capture(&mut self, _table: &str, _reader: &str) -> Result<(), ConnectorError> {
        Ok(())
    }

    /// Ends this process's session on the reader's log (another process
    /// applies the reader's map now): the database keeps the reader's place,
    /// and the next holder's session may start at once.
    fn release_log_capture(&mut self, _table: &str, _reader: &str) {}

    /// The columns the reader's log capture of the table records, or None where none is set up.
    fn log_capture_of(&mut self, _table: &str, _reader: &str) -> Result<Option<Vec<String>>, ConnectorError> {
        Ok(None)
    }

    /// How much log the database keeps for the reader, in bytes, and its
    /// state as the database names it (None where it keeps none for it).
    fn log_retained(&mut self, _table: &str, _reader: &str) -> Result<Option<(u64, String)>, ConnectorError> {
        Ok(None)
    }

    /// Fences this connection's writes with `fence` (see [`Fence`]): raises
    /// the app's fence to it (creating the app's `dualsync_fence` table on
    /// first use), or fails with [`ErrorKind::Fenced`](crate::ErrorKind) when a
    /// later holder got there first. Once set, every [`Connection::write`]
    /// checks the fence inside its own transaction.
    fn set_fence(&mut self, _fence: Fence) -> Result<(), ConnectorError> {
        Err(not_built("fencing"))
    }
}

/// The fencing token of the process that holds the state store, or a unit
/// of its work: the lease's epoch, which grows with every claim. A process that lost its lease (paused,
/// cut off) may still try to write; its transactions find a later epoch in the
/// app's fence row and write nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    /// The app's fence row: the state store's identity (a store made anew
    /// starts its epochs again, under a row of its own), and the unit of work.
    pub store: String,
    pub epoch: i64,
}

fn not_built(what: &str) -> ConnectorError {
    ConnectorError::new(
        crate::ErrorKind::Unsupported,
        format!("{what} is not built for this kind of database yet (SQLite, PostgreSQL and MySQL/MariaDB have it)"),
    )
}

/// What capture records for each changed row of a table.
#[derive(Clone, Debug, PartialEq)]
pub struct CaptureSpec {
    pub table: String,
    /// Recorded per change, in this order (a map's key columns, then its company column).
    pub columns: Vec<String>,
}

/// A position in a database's change table or log, as the database defines
/// it (opaque to the engine, which stores it and hands it back; a log
/// cursor starts with `log:`, see [`Cursor::reads_log`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cursor(pub String);

impl Cursor {
    /// Whether the cursor reads the database's log (else a trigger change table).
    pub fn reads_log(&self) -> bool {
        crate::log::is_log_position(&self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Insert,
    Update,
    Delete,
}

/// One captured row change.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The captured columns' values (see [`CaptureSpec::columns`]).
    pub values: Vec<Value>,
    pub kind: ChangeKind,
    /// When the change was made, in microseconds since 1970 (the database's clock).
    pub at_micros: i64,
}

/// Table privileges of the connected user; None where the database cannot say.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Privileges {
    pub user: String,
    pub select: Option<bool>,
    pub insert: Option<bool>,
    pub update: Option<bool>,
    /// What live sync needs besides: DELETE (deletes flow), and for change
    /// capture TRIGGER on the table and `CREATE ON SCHEMA x` where the change
    /// table goes (a privilege on something else than the table has a space in its name).
    pub live: Vec<(String, Option<bool>)>,
    /// Whether a privilege reported missing is surely missing (false where
    /// grants may come by ways the database does not list, such as roles).
    pub certain: bool,
    /// The statement that grants privileges, with `{privileges}` to fill in, where there is one.
    pub grant: Option<String>,
    /// The user as a GRANT statement names it (`"user"`, `'user'@'host'`), for grants on other things than the table.
    pub grantee: String,
}

/// Which rows of a table: those matching `filter` and every `equals` (a NULL
/// value in `equals` selects rows where that column IS NULL), within `range`.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub table: String,
    pub filter: Option<Filter>,
    pub equals: Vec<(String, Value)>,
    pub range: Option<KeyRange>,
}

/// Rows whose key is after `after` and up to `upto` (either open), in the
/// order a scan sorts keys in (`Value::key_cmp`, byte order for text): a
/// chunk of a big partition.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeyRange {
    /// The key columns, in key order.
    pub columns: Vec<String>,
    pub after: Option<Vec<Value>>,
    pub upto: Option<Vec<Value>>,
}

/// Spare room each row read is allocated with: a writer appends a partition's
/// company and a generated id to a row without moving it (a bulk sync moves
/// millions of rows; a moved row is fresh memory touched again).
pub const ROW_SPARE: usize = 2;

#[derive(Clone, Debug)]
pub struct ScanRequest {
    pub selection: Selection,
    pub columns: Vec<String>,
    pub order_by: Vec<String>,
    pub batch_size: usize,
}

#[derive(Clone, Debug)]
pub struct FetchRequest {
    pub selection: Selection,
    pub columns: Vec<String>,
    pub match_columns: Vec<String>,
    pub keys: Vec<Key>,
}

/// Inserts and updates for one table, applied in order in one transaction.
#[derive(Clone, Debug)]
pub struct WriteBatch {
    pub table: String,
    /// The columns every insert gives values for, in order.
    pub columns: Vec<String>,
    /// The columns that identify a row for updates.
    pub key_columns: Vec<String>,
    /// Extra conditions every update must meet (the company column).
    pub scope: Vec<(String, Value)>,
    pub ops: Vec<WriteOp>,
}

/// How a batch's transaction ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    Commit,
    /// Undo everything (a probe).
    Rollback,
}

impl WriteBatch {
    /// The scope conditions for an update: `(column, Some(value))` compares
    /// with a parameter, `(column, None)` is `IS NULL` (a NULL scope value).
    pub fn scope_conditions(&self) -> impl Iterator<Item = (&String, Option<&Value>)> {
        self.scope.iter().map(|(c, v)| (c, (!v.is_null()).then_some(v)))
    }
}

#[derive(Clone, Debug)]
pub enum WriteOp {
    /// Values for `WriteBatch::columns`, in that order.
    Insert(Row),
    /// Set the named columns of the row with this key.
    Update { key: Key, set: Vec<(String, Value)> },
    /// Delete the row with this key (within the scope); a row already gone is no failure.
    Delete { key: Key },
}

#[derive(Debug, Default)]
pub struct WriteOutcome {
    /// Rows the database refused; every other op was applied.
    pub failures: Vec<RowFailure>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RowFailure {
    /// Position of the op in [`WriteBatch::ops`].
    pub index: usize,
    /// The column the database named, where it named one.
    pub column: Option<String>,
    /// The database's own message.
    pub message: String,
}

/// How a connection's traffic is protected, as the server reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A file on this machine: nothing travels over a network.
    Local,
    /// Not encrypted; `settings` is what the url asked for (`sslmode=prefer`).
    /// `exposure`: what that risks, for a server beyond loopback.
    Plain { settings: String, exposure: Option<dualsync_tls::Exposure> },
    /// Encrypted; `verified` says what the certificate check proved.
    Tls { version: String, cipher: String, verified: &'static str, settings: String, exposure: Option<dualsync_tls::Exposure> },
}

impl Transport {
    /// What a machine between dualsync and a server beyond loopback could do.
    pub fn exposure(&self) -> Option<&dualsync_tls::Exposure> {
        match self {
            Transport::Local => None,
            Transport::Plain { exposure, .. } | Transport::Tls { exposure, .. } => exposure.as_ref(),
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Local => write!(f, "local file"),
            Transport::Plain { settings, .. } => write!(f, "not encrypted ({settings})"),
            Transport::Tls { version, cipher, verified, settings, .. } => write!(f, "{version} {cipher}, {verified} ({settings})"),
        }
    }
}
