//! Change capture from a database's own log (PostgreSQL's logical decoding,
//! MySQL/MariaDB's binary log) instead of triggers: the apps' writes cost
//! nothing more, and changes arrive in commit order as they commit.
//!
//! ```text
//!  database log ──▶ LogSource (per reader: a replication session) ──▶ Stream (bounded queue, its own thread)
//!                                                                          │ read(after, limit)
//!                                                            Connection::read_changes ──▶ engine
//! ```
//!
//! A log cursor is `log:<reader id>:<position>:<ordinal>`: the position of a
//! transaction in the log (its commit, or its start, as the database orders
//! them) and the ordinal of a change within it. Cursors of trigger capture
//! never start with `log:`, so a connector tells the two apart by the cursor.

pub mod stream;

use crate::{Change, ConnectorError, Cursor, ErrorKind};

/// A place in a database's log: transactions by `major` in commit order,
/// changes within one by `ordinal` (from 1). `(m, 0)` is before every change
/// of the transaction at `m`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogPos {
    pub major: u64,
    pub ordinal: u64,
}

impl LogPos {
    pub fn new(major: u64, ordinal: u64) -> LogPos {
        LogPos { major, ordinal }
    }
}

const PREFIX: &str = "log:";

/// A reader's place in its log stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogCursor {
    /// The stream (a PostgreSQL replication slot, a binlog reader).
    pub stream: String,
    pub pos: LogPos,
}

impl LogCursor {
    /// None for a trigger cursor; an error for a log cursor that does not parse.
    pub fn parse(cursor: &Cursor) -> Result<Option<LogCursor>, ConnectorError> {
        let Some(rest) = cursor.0.strip_prefix(PREFIX) else { return Ok(None) };
        let bad = || ConnectorError::new(ErrorKind::Database, format!("{:?} is not a log cursor (log:stream:position:ordinal)", cursor.0));
        let mut parts = rest.rsplitn(3, ':');
        let ordinal = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let major = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let stream = parts.next().filter(|s| !s.is_empty()).ok_or_else(bad)?;
        Ok(Some(LogCursor { stream: stream.to_string(), pos: LogPos { major, ordinal } }))
    }

    pub fn to_cursor(&self) -> Cursor {
        Cursor(format!("{PREFIX}{}:{}:{}", self.stream, self.pos.major, self.pos.ordinal))
    }
}

/// Whether a saved cursor position reads the log (else a trigger change table).
pub fn is_log_position(position: &str) -> bool {
    position.starts_with(PREFIX)
}

/// What a log source hands the stream.
#[derive(Debug)]
pub enum LogEvent {
    /// A committed change of the reader's table, at its place in the log.
    Change(Logged),
    /// Every change before this place has been handed over: a reader that
    /// took them all may move its cursor here (the log moved on without
    /// touching its table).
    Passed(LogPos),
}

/// A change as the log gave it.
#[derive(Clone, Debug)]
pub struct Logged {
    pub pos: LogPos,
    pub change: Change,
    /// Its transaction's id where the database has one the reader can ask
    /// about (PostgreSQL: the log can give a commit before it is visible to
    /// other sessions), else 0.
    pub txn: u32,
}

/// One replication session on a database's log, for one reader's table.
pub trait LogSource: Send {
    /// Appends what arrived within about `wait` to `out` (nothing when the
    /// log is quiet). An error ends the session; the stream reopens it.
    fn poll(&mut self, wait: std::time::Duration, out: &mut Vec<LogEvent>) -> Result<(), ConnectorError>;

    /// Tells the database that the reader has stored every change before
    /// `pos`: it may drop the log up to there. Called often; cheap when nothing moved.
    fn confirm(&mut self, _pos: LogPos) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// A short, stable name for a reader's log objects (replication slots and
/// publications are names of at most 63 characters, in lower case).
pub fn stream_id(reader: &str, table: &str) -> String {
    let hash = xxhash_rust::xxh3::xxh3_64(format!("{reader}\u{0}{table}").as_bytes());
    format!("dualsync_{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_cursor_round_trips_and_trigger_cursors_are_not_log_cursors() {
        let c = LogCursor { stream: "dualsync_00ff".into(), pos: LogPos::new(123, 4) };
        assert_eq!(LogCursor::parse(&c.to_cursor()).unwrap(), Some(c));
        assert_eq!(LogCursor::parse(&Cursor("17:42".into())).unwrap(), None);
        assert!(LogCursor::parse(&Cursor("log:x:1".into())).is_err());
        assert!(LogPos::new(5, 9) < LogPos::new(6, 0));
        assert_ne!(stream_id("a", "t"), stream_id("b", "t"));
        assert!(stream_id("a", "t").len() <= 63);
    }
}
