use std::fmt;

/// What kind of failure, so the engine can decide: retry, log the row, or stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The database cannot be reached or opened.
    Unavailable,
    /// A table or column the request names does not exist.
    Schema,
    /// The database is busy or locked; trying again later can succeed.
    Busy,
    /// This kind of database is not supported by this build.
    Unsupported,
    /// Anything else the database refused.
    Database,
    /// A later holder of the state store has written to this app: this
    /// process must not write any more (see `Fence`).
    Fenced,
}

#[derive(Debug, thiserror::Error)]
pub struct ConnectorError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ConnectorError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ConnectorError { kind, message: message.into() }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Busy | ErrorKind::Unavailable)
    }
}

impl fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
