//! The fence rows each app keeps for dualsync (see `contract::Fence`): per
//! unit of work (the whole store, or one that workers share), the epoch of
//! the latest holder that wrote to the app. A write
//! transaction first reads it under a shared lock and goes on only if it is
//! still its own epoch; a new holder raises it under an exclusive lock, which
//! waits for the transactions in flight and fences every later one.

use crate::{ConnectorError, ErrorKind, Fence};

/// The app's fence table, in SQL every supported database accepts.
pub const CREATE: &str =
    "CREATE TABLE IF NOT EXISTS dualsync_fence (unit VARCHAR(64) PRIMARY KEY, epoch BIGINT NOT NULL, holder VARCHAR(200))";

/// What a connection decides from the epoch it read in the fence row.
pub fn check(found: Option<i64>, fence: &Fence) -> Result<(), ConnectorError> {
    match found {
        Some(epoch) if epoch > fence.epoch => Err(ConnectorError::new(
            ErrorKind::Fenced,
            format!(
                "fenced: another dualsync process has taken this work over (its epoch {epoch} is later than this \
                 process's {}); nothing of this write landed",
                fence.epoch
            ),
        )),
        _ => Ok(()),
    }
}

/// Who raised the fence, for people reading the table.
pub fn holder() -> String {
    format!("PID {}", std::process::id())
}
