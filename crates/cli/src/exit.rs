//! Exit codes and the error type that carries them.

use dualsync_engine::EngineError;
use dualsync_model::ConfigErrors;

pub const OK: i32 = 0;
pub const FAILURE: i32 = 1;
pub const USAGE: i32 = 2;
pub const ROWS_FAILED: i32 = 3;

pub struct CliError {
    pub code: i32,
    pub error: anyhow::Error,
}

pub type CliResult = Result<i32, CliError>;

impl From<ConfigErrors> for CliError {
    fn from(e: ConfigErrors) -> Self {
        CliError { code: USAGE, error: e.into() }
    }
}

impl From<EngineError> for CliError {
    fn from(e: EngineError) -> Self {
        let code = match e {
            EngineError::Preflight { environment: false, .. } | EngineError::Usage(_) => USAGE,
            _ => FAILURE,
        };
        CliError { code, error: e.into() }
    }
}

impl From<dualsync_state::StateError> for CliError {
    fn from(e: dualsync_state::StateError) -> Self {
        CliError { code: FAILURE, error: e.into() }
    }
}

impl From<anyhow::Error> for CliError {
    fn from(error: anyhow::Error) -> Self {
        CliError { code: FAILURE, error }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError { code: FAILURE, error: e.into() }
    }
}

pub fn usage(message: impl Into<String>) -> CliError {
    CliError { code: USAGE, error: anyhow::anyhow!(message.into()) }
}
