use dualsync_connectors::ConnectorError;
use dualsync_state::StateError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A database of an app failed; says which app and where it points.
    #[error("app {app} ({location}): {source}")]
    App { app: String, location: String, source: ConnectorError },
    /// The checks before a run failed; nothing was written. `environment`: an
    /// app is down or a table is missing (exit 1), rather than the config not
    /// fitting the tables (exit 2).
    #[error("{message}")]
    Preflight { message: String, environment: bool },
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{0}")]
    Usage(String),
    /// The mass-delete guard stopped a partition's deletes (`max_delete_percent`).
    #[error("{0}")]
    DeleteGuard(String),
    /// The temporary file that holds a partition's keys to delete failed.
    #[error("cannot spool keys to delete in the temporary folder (TMPDIR): {0}")]
    Spool(#[from] std::io::Error),
    /// The data breaks an assumption the merge relies on (keys out of order).
    #[error("{0}")]
    Data(String),
    /// An app's database is not the one this state store linked (environment
    /// fencing, `link.rs`): restored, copied, or another environment's.
    #[error("{0}")]
    Unlinked(String),
    /// A run asked to stop (SIGTERM) stopped between units of work.
    #[error("{0}")]
    Stopped(String),
}
