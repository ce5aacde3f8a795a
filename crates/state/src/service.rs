//! What the operators' service keeps: API tokens (only their SHA-256, made by
//! the caller) and the activity log; and the error-log actions it offers
//! beside retry (skip with a reason, counts over a time window).

use crate::db::{Cell, P};
use crate::time::{minutes_ago, now};
use crate::{StateError, StateStore};

/// A token to store: its name, role, the hex SHA-256 of its secret, and when it expires.
#[derive(Clone, Debug)]
pub struct NewToken {
    pub name: String,
    pub role: String,
    pub sha256: String,
    pub expires_at: Option<String>,
}

/// A stored token, without anything that would let one use it.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used: Option<String>,
}

impl ApiToken {
    /// Whether the token lets anyone in now.
    pub fn usable(&self) -> bool {
        self.revoked_at.is_none() && self.expires_at.as_deref().is_none_or(|at| at > now().as_str())
    }
}

/// A run of any kind (sync, live, retry, resolve…), as the store keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRecord {
    pub id: i64,
    pub kind: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub status: String,
    pub message: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Activity {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub result: String,
}

const TOKEN_COLUMNS: &str = "id, name, role, created_at, expires_at, revoked_at, last_used";

fn token_of(r: &[Cell]) -> ApiToken {
    ApiToken {
        id: r[0].int(),
        name: r[1].text(),
        role: r[2].text(),
        created_at: r[3].text(),
        expires_at: r[4].opt_text(),
        revoked_at: r[5].opt_text(),
        last_used: r[6].opt_text(),
    }
}

impl StateStore {
    /// Stores a new token; a name in use (even by a revoked token) is refused.
    pub fn create_token(&self, token: &NewToken) -> Result<ApiToken, StateError> {
        if self.tokens()?.iter().any(|t| t.name == token.name) {
            return Err(StateError::Refused(format!(
                "a token named {:?} exists already; pick another name, or `dualsync token revoke {}` and use a new name",
                token.name, token.name
            )));
        }
        let id = self.insert_returning_id(
            "INSERT INTO api_tokens (name, role, sha256, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            &[P::Text(&token.name), P::Text(&token.role), P::Text(&token.sha256), P::Text(&now()), P::OptText(token.expires_at.as_deref())],
        )?;
        Ok(self.tokens()?.into_iter().find(|t| t.id == id).expect("just stored"))
    }

    pub fn tokens(&self) -> Result<Vec<ApiToken>, StateError> {
        let rows = self.db().query(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY id"), &[])?;
        Ok(rows.iter().map(|r| token_of(r)).collect())
    }

    /// The token whose secret hashes to `sha256`, usable or not; its last use
    /// is noted, to the minute (a write per request would cost every request).
    pub fn token_by_hash(&self, sha256: &str) -> Result<Option<ApiToken>, StateError> {
        let rows = self.db().query(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE sha256 = ?1"), &[P::Text(sha256)])?;
        let token = rows.first().map(|r| token_of(r));
        if let Some(t) = token.as_ref().filter(|t| t.usable()) {
            if t.last_used.as_deref().is_none_or(|at| at < minutes_ago(1).as_str()) {
                self.db().execute("UPDATE api_tokens SET last_used = ?2 WHERE id = ?1", &[P::Int(t.id), P::Text(&now())])?;
            }
        }
        Ok(token)
    }

    /// Revokes a token by name; false when no usable token has that name.
    pub fn revoke_token(&self, name: &str) -> Result<bool, StateError> {
        let n = self
            .db()
            .execute("UPDATE api_tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL", &[P::Text(name), P::Text(&now())])?;
        Ok(n > 0)
    }

    pub fn record_activity(&self, actor: &str, action: &str, target: &str, result: &str) -> Result<(), StateError> {
        self.db().execute(
            "INSERT INTO activity (at, actor, action, target, result) VALUES (?1, ?2, ?3, ?4, ?5)",
            &[P::Text(&now()), P::Text(actor), P::Text(action), P::Text(target), P::Text(result)],
        )?;
        Ok(())
    }

    /// The activity log, newest first: at most `limit` entries numbered below `before`.
    pub fn activity(&self, actor: Option<&str>, before: Option<i64>, limit: usize) -> Result<Vec<Activity>, StateError> {
        let rows = self.db().query(
            &format!(
                "SELECT id, at, actor, action, target, result FROM activity
                 WHERE (CAST(?1 AS TEXT) IS NULL OR actor = ?1) AND (CAST(?2 AS BIGINT) IS NULL OR id < ?2)
                 ORDER BY id DESC LIMIT {limit}"
            ),
            &[P::OptText(actor), P::OptInt(before)],
        )?;
        Ok(rows
            .iter()
            .map(|r| Activity {
                id: r[0].int(),
                at: r[1].text(),
                actor: r[2].text(),
                action: r[3].text(),
                target: r[4].text(),
                result: r[5].text(),
            })
            .collect())
    }

    /// Runs, newest first: at most `limit` numbered below `before`, of one kind if given.
    pub fn runs(&self, kind: Option<&str>, before: Option<i64>, limit: usize) -> Result<Vec<RunRecord>, StateError> {
        let rows = self.db().query(
            &format!(
                "SELECT id, kind, started_at, ended_at, status, message FROM runs
                 WHERE (CAST(?1 AS TEXT) IS NULL OR kind = ?1) AND (CAST(?2 AS BIGINT) IS NULL OR id < ?2)
                 ORDER BY id DESC LIMIT {limit}"
            ),
            &[P::OptText(kind), P::OptInt(before)],
        )?;
        Ok(rows
            .iter()
            .map(|r| RunRecord {
                id: r[0].int(),
                kind: r[1].text(),
                started_at: r[2].text(),
                ended_at: r[3].opt_text(),
                status: r[4].text(),
                message: r[5].opt_text(),
            })
            .collect())
    }

    /// Marks an open error skipped, with why; false when it is not open.
    pub fn skip_error(&self, id: i64, reason: &str) -> Result<bool, StateError> {
        let n = self.db().execute(
            "UPDATE errors SET status = 'skipped', note = ?2, last_seen = ?3 WHERE id = ?1 AND status = 'open'",
            &[P::Int(id), P::Text(reason), P::Text(&now())],
        )?;
        Ok(n > 0)
    }

    /// Errors of a map seen in the last `minutes` (open or not).
    pub fn errors_since(&self, map: &str, minutes: u64) -> Result<i64, StateError> {
        let rows = self
            .db()
            .query("SELECT count(*) FROM errors WHERE map = ?1 AND last_seen >= ?2", &[P::Text(map), P::Text(&minutes_ago(minutes))])?;
        Ok(rows.first().and_then(|r| r.first()).map_or(0, Cell::int))
    }
}
