use dualsync_connectors::ConnectorError;
use dualsync_state::StateError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A database of an app failed; says which app and where it points.
    #[error("app {app} ({location}): {source}")]
    App { app: String, location: String, source: ConnectorError },
    /// The config does not fit the real tables; nothing was written.
    #[error("{0}")]
    Preflight(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{0}")]
    Usage(String),
    /// The data breaks an assumption the merge relies on (keys out of order).
    #[error("{0}")]
    Data(String),
}
