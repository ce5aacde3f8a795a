//! How long the error log and the conflict queue keep what they hold: the
//! values of refused rows are business data, kept no longer than needed.
//! `dualsync errors purge` deletes on demand; `[state] retention_days` makes
//! `run` and `serve` delete settled records on their own.

use crate::db::P;
use crate::time::minutes_ago;
use crate::{StateError, StateStore};

/// Rows deleted per statement: a purge of millions never holds the store long.
const PURGE_BATCH: i64 = 10_000;

/// What a purge deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// Errors by status.
    pub open: u64,
    pub resolved: u64,
    pub skipped: u64,
    /// Settled conflicts.
    pub conflicts: u64,
    /// The cut-off: records last seen (or settled) before it were deleted.
    pub before: String,
}

impl Purged {
    pub fn errors(&self) -> u64 {
        self.open + self.resolved + self.skipped
    }
}

impl StateStore {
    /// Deletes the errors last seen more than `days` ago: every one of them,
    /// or with `settled_only` the resolved and skipped ones (open errors are
    /// work still to do). `map` narrows it to one map.
    pub fn purge_errors(&self, days: u32, settled_only: bool, map: Option<&str>) -> Result<Purged, StateError> {
        let before = minutes_ago(u64::from(days) * 1440);
        let mut conditions = vec!["last_seen < ?1"];
        if settled_only {
            conditions.push("status <> 'open'");
        }
        let mut params = vec![P::Text(&before), P::Int(PURGE_BATCH)];
        if let Some(map) = map {
            conditions.push("map = ?3");
            params.push(P::Text(map));
        }
        let sql = format!(
            "DELETE FROM errors WHERE id IN (SELECT id FROM errors WHERE {} ORDER BY id LIMIT ?2) RETURNING status",
            conditions.join(" AND ")
        );
        let mut purged = Purged { before: before.clone(), ..Default::default() };
        loop {
            let deleted = self.db().query(&sql, &params)?;
            for row in &deleted {
                match row[0].text().as_str() {
                    "open" => purged.open += 1,
                    "skipped" => purged.skipped += 1,
                    _ => purged.resolved += 1,
                }
            }
            if (deleted.len() as i64) < PURGE_BATCH {
                return Ok(purged);
            }
        }
    }

    /// `[state] retention_days`: settled errors and settled conflicts older
    /// than that are deleted. Open ones stay, whatever their age.
    pub fn apply_retention(&self, days: u32) -> Result<Purged, StateError> {
        let mut purged = self.purge_errors(days, true, None)?;
        purged.conflicts =
            self.db().execute("DELETE FROM conflicts WHERE status = 'resolved' AND resolved_at < ?1", &[P::Text(&purged.before)])?;
        Ok(purged)
    }
}
