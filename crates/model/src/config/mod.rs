//! `dualsync.toml`: what the user declares (apps, state store, maps).
//!
//! [`Config::load`] reads and checks everything that can be checked without a
//! database. Checks against the real tables (columns exist, types fit) are the
//! engine's preflight, which runs before anything is written.

mod locate;
pub mod odata;
mod parse;

use crate::filter::Filter;
use std::fmt;
use std::path::{Path, PathBuf};

pub use parse::parse_config;

pub const DEFAULT_STATE_URL: &str = "sqlite://.dualsync/state.db";
/// At most this many workers by default, and no more than the machine has cores: a
/// partition keeps a core busy (reading, merging, writing), and each worker holds
/// its batches in memory (docs/architecture.md, "Memory").
pub const MAX_DEFAULT_WORKERS: usize = 4;

/// A map's `workers` when the config gives none.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_DEFAULT_WORKERS)
}
pub const DEFAULT_BATCH_SIZE: usize = 2000;
/// The mass-delete guard's default share (see `MapConfig::max_delete_percent`).
pub const DEFAULT_MAX_DELETE_PERCENT: u8 = 10;

#[derive(Clone, Debug)]
pub struct Config {
    pub file: PathBuf,
    pub state: StateConfig,
    pub apps: Vec<AppConfig>,
    pub maps: Vec<MapConfig>,
}

#[derive(Clone, Debug)]
pub struct StateConfig {
    pub url: DatabaseUrl,
    /// The environment variable that holds a PostgreSQL store's password.
    pub password_env: Option<String>,
    /// How long a PostgreSQL store's lease lasts without renewal: how soon
    /// another process takes over from one that died.
    pub lease_seconds: u64,
    /// Rows per chunk of a company that `sync` processes sharing a
    /// PostgreSQL store split between them (a company with more rows is
    /// synced a key range at a time).
    pub chunk_rows: u64,
    /// Days that settled errors (resolved, skipped) and settled conflicts are
    /// kept; `run` and `serve` delete older ones. None: kept until purged.
    pub retention_days: Option<u32>,
}

/// `[state] lease_seconds` when the config gives none.
pub const DEFAULT_LEASE_SECONDS: u64 = 15;

/// `[state] chunk_rows` when the config gives none.
pub const DEFAULT_CHUNK_ROWS: u64 = 1_000_000;

#[derive(Clone, Debug)]
pub struct AppConfig {
    pub name: String,
    pub url: DatabaseUrl,
    /// Name of the environment variable that holds the password.
    pub password_env: Option<String>,
    /// File whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// What the config calls the secret's variable (`password_env`, or an
    /// OData app's `token_env`, `client_secret_env`), for messages.
    pub secret_key: &'static str,
    /// How live sync captures the app's changes.
    pub capture: Capture,
}

/// How changes are captured on an app.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Capture {
    /// The database's log where the server allows it, else triggers.
    #[default]
    Auto,
    /// The database's log (PostgreSQL logical decoding, the MySQL/MariaDB binary log); refused where the server does not allow it.
    Log,
    /// Triggers that write a change table in the app's database.
    Trigger,
}

/// Where a database lives. Relative SQLite paths are already resolved against
/// the config file's folder.
#[derive(Clone, Debug, PartialEq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
    Mysql(String),
    /// An OData v4 service (`kind = "odata"`), with how to talk to it.
    OData(Box<odata::ODataApp>),
}

impl DatabaseUrl {
    pub fn parse(url: &str, base_dir: &Path) -> Result<DatabaseUrl, String> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite:// needs a file path, such as sqlite://erp.db".into());
            }
            let p = Path::new(path);
            Ok(DatabaseUrl::Sqlite(if p.is_absolute() { p.to_path_buf() } else { base_dir.join(p) }))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseUrl::Postgres(url.to_string()))
        } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            Ok(DatabaseUrl::Mysql(url.to_string()))
        } else {
            Err(format!(
                "{:?} is not a database URL dualsync knows; use sqlite://PATH, postgres://USER@HOST:PORT/DB or mysql://USER@HOST:PORT/DB",
                redact_url(url)
            ))
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            DatabaseUrl::Sqlite(_) => "sqlite",
            DatabaseUrl::Postgres(_) => "postgres",
            DatabaseUrl::Mysql(_) => "mysql",
            DatabaseUrl::OData(_) => "odata",
        }
    }
}

impl fmt::Display for DatabaseUrl {
    /// Always without a password: this is what logs and messages show.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            DatabaseUrl::Postgres(u) | DatabaseUrl::Mysql(u) => f.write_str(&redact_url(u)),
            DatabaseUrl::OData(o) => f.write_str(&redact_url(&o.url)),
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!("{}{}:***{}", &url[..scheme_end + 3], &authority[..colon], &rest[at..]),
        _ => url.to_string(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threading {
    /// Rows applied in key order on one connection, one company after the other.
    Single,
    /// Companies applied in parallel over `workers` connections.
    Multi,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictPolicy {
    Master,
    Latest,
    Merge,
    Manual,
}

/// What a delete on one app does to the other app's row (live and incremental sync).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDelete {
    /// Delete it there too, unless it changed there since the last sync (a conflict).
    Delete,
    /// Leave it; the key is forgotten, so a later full sync copies it back.
    Ignore,
}

/// Pause a map when it logs `errors` failed rows within `minutes` (live sync).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlertRule {
    pub errors: usize,
    pub minutes: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdDefault {
    Uuid,
}

/// Which way a column's values may flow between the map's two sides (0 and 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Both,
    /// Only from this side to the other.
    From(usize),
}

#[derive(Clone, Debug)]
pub struct MapConfig {
    pub name: String,
    /// Position in the file (`maps[index]`), for messages.
    pub index: usize,
    pub threading: Threading,
    pub workers: usize,
    /// Rows per read batch and per write transaction, when set; otherwise
    /// reads take `DEFAULT_BATCH_SIZE` and writes the target database's own preference.
    pub batch_size: Option<usize>,
    /// The side (0 or 1) whose values win when both sides hold a row and differ.
    pub master: usize,
    pub conflict: ConflictPolicy,
    pub on_delete: OnDelete,
    pub alert: Option<AlertRule>,
    /// A full diff that would delete more than this share (percent) of a
    /// partition's rows in an app, or every row, deletes nothing there
    /// until confirmed (`sync --allow-deletes`).
    pub max_delete_percent: u8,
    pub sides: [SideConfig; 2],
    pub columns: Vec<ColumnMapping>,
}

#[derive(Clone, Debug)]
pub struct SideConfig {
    pub app: String,
    pub table: String,
    pub key: Vec<String>,
    pub company: Option<String>,
    /// The global map whose rows the company column refers to by id (a CRM's
    /// company lookup); None when the column holds the company code itself.
    pub company_lookup: Option<String>,
    pub id: Option<String>,
    pub id_default: Option<IdDefault>,
    pub filter: Option<Filter>,
}

#[derive(Clone, Debug)]
pub struct ColumnMapping {
    /// The column's name on side 0 and side 1.
    pub names: [String; 2],
    pub direction: Direction,
    /// The map whose rows this column refers to.
    pub lookup: Option<String>,
    /// Value translation: (side 0 value, side 1 value).
    pub values: Vec<(String, String)>,
    /// The column's values are never stored in the error log or the conflict
    /// queue, nor printed: a hash stands for them (see `redact`).
    pub redact: bool,
}

impl MapConfig {
    pub fn app(&self, side: usize) -> &str {
        &self.sides[side].app
    }

    /// Positions, in `columns`, of the key columns, in side 0's key order.
    pub fn key_positions(&self) -> Vec<usize> {
        self.sides[0].key.iter().map(|k| self.columns.iter().position(|c| &c.names[0] == k).expect("validated: key is mapped")).collect()
    }

    pub fn is_global(&self) -> bool {
        self.sides[0].company.is_none()
    }

    pub fn side_of_app(&self, app: &str) -> Option<usize> {
        self.sides.iter().position(|s| s.app == app)
    }

    /// The maps this map refers to: its lookups, and the map of companies its company column refers to.
    pub fn lookups(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().filter_map(|c| c.lookup.as_deref()).chain(self.sides.iter().filter_map(|s| s.company_lookup.as_deref()))
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.display().to_string(),
                line: None,
                path: String::new(),
                message: format!("cannot read the config file: {e}"),
                hint: "run `dualsync init` to write a starter file, or pass --config PATH".into(),
            }])
        })?;
        parse_config(&text, path)
    }

    pub fn app(&self, name: &str) -> Option<&AppConfig> {
        self.apps.iter().find(|a| a.name == name)
    }

    pub fn map(&self, name: &str) -> Option<&MapConfig> {
        self.maps.iter().find(|m| m.name == name)
    }
}

/// One mistake in the config: where it is and what to do about it.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    /// The key path in the file, such as `maps[1].columns[2].crm`.
    pub path: String,
    pub message: String,
    pub hint: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)?;
        if !self.hint.is_empty() {
            write!(f, "\n    fix: {}", self.hint)?;
        }
        Ok(())
    }
}

/// Every mistake found in one read of the config, so the user fixes them in one go.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(f, "the config has {n} problem{}:", if n == 1 { "" } else { "s" })?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests;
