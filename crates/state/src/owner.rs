//! One process at a time on a SQLite state store.
//!
//! Two `run`s (or a `run` and a `sync`) on one SQLite store would apply the
//! same changes twice and overwrite each other's merge bases. A command that
//! syncs first takes an exclusive lock on a file beside the store
//! (`state.db.lock`). The operating system releases it when the process
//! ends, even under `kill -9`, so a crashed holder never blocks the next
//! one. The holder is also named in the store's `store_owner` row, so that
//! the refused process can say who holds the store and since when.
//!
//! A PostgreSQL store is not held this way: sharing it between several
//! processes needs leases, which are not built yet (docs/operations.md).

use crate::db::{Cell, P};
use crate::time::now;
use crate::{StateError, StateStore};
use dualsync_model::config::{DatabaseUrl, StateConfig};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Held while a command syncs: the lock, and the owner row to remove at the
/// end. A claim taken while this process already holds the store (`start`'s
/// initial sync, `sync`'s catch-up) holds nothing of its own.
#[must_use = "the store is held only while the claim lives"]
pub struct StoreClaim {
    held: Option<(File, PathBuf)>,
}

/// The stores this process holds. An exclusive lock taken twice by one process
/// through two files conflicts with itself, so a nested claim must not take it again.
static HELD: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn held() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    HELD.lock().unwrap_or_else(|p| p.into_inner())
}

impl StoreClaim {
    /// Whether this claim holds a lock (false on a PostgreSQL store).
    pub fn is_exclusive(&self) -> bool {
        self.held.is_some()
    }
}

impl Drop for StoreClaim {
    fn drop(&mut self) {
        if let Some((_lock, path)) = &self.held {
            held().retain(|p| p != path);
            // Best effort: a row left behind is overwritten by the next holder.
            if let Ok(conn) = rusqlite::Connection::open(path) {
                let _ = conn.busy_timeout(std::time::Duration::from_secs(5));
                let _ = conn.execute("DELETE FROM store_owner WHERE pid = ?1", [std::process::id()]);
            }
        }
        // The lock goes with the file, after the row.
    }
}

impl StateStore {
    /// Takes a SQLite store for this process, for `command` (`run`, `sync`…),
    /// or says which process holds it. Hold the claim until the command ends.
    pub fn claim(state: &StateConfig, command: &str) -> Result<StoreClaim, StateError> {
        let DatabaseUrl::Sqlite(path) = &state.url else {
            return Ok(StoreClaim { held: None });
        };
        if held().contains(path) {
            return Ok(StoreClaim { held: None });
        }
        // Opening creates or upgrades the store, so the owner table exists.
        let store = StateStore::open(state)?;
        let lock_path = lock_file(path);
        let lock = open_private(&lock_path).map_err(|e| StateError::Open {
            location: state.url.to_string(),
            message: format!("cannot open the lock file {}: {e}", lock_path.display()),
        })?;
        // A few tries: `status` takes the lock for a moment to see whether it is held.
        let mut tries = 0;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if tries < 10 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(StateError::InUse { location: state.url.to_string(), holder: store.holder() });
                }
                Err(TryLockError::Error(e)) => {
                    return Err(StateError::Open {
                        location: state.url.to_string(),
                        message: format!("cannot lock {}: {e}", lock_path.display()),
                    })
                }
            }
        }
        store.db().execute(
            "INSERT OR REPLACE INTO store_owner (id, pid, host, command, since) VALUES (1, ?1, ?2, ?3, ?4)",
            &[P::Int(std::process::id() as i64), P::Text(&host_name()), P::Text(command), P::Text(&now())],
        )?;
        held().push(path.clone());
        Ok(StoreClaim { held: Some((lock, path.clone())) })
    }

    /// The process that holds a SQLite store now, if one does (for `status`).
    pub fn held_by(&self, state: &StateConfig) -> Option<String> {
        let DatabaseUrl::Sqlite(path) = &state.url else { return None };
        let lock = File::open(lock_file(path)).ok()?;
        match lock.try_lock() {
            Ok(()) => None, // nobody holds it; the lock goes with the file at once
            Err(TryLockError::WouldBlock) => Some(self.holder()),
            Err(TryLockError::Error(_)) => None,
        }
    }

    /// Who holds the store, as its owner row says.
    fn holder(&self) -> String {
        let rows = self.db().query("SELECT pid, host, command, since FROM store_owner WHERE id = 1", &[]);
        match rows.as_deref() {
            Ok([row, ..]) => match &row[..] {
                [Cell::Int(pid), Cell::Text(host), Cell::Text(command), Cell::Text(since)] => {
                    format!("`dualsync {command}` (PID {pid} on host {host}, since {since})")
                }
                _ => "another dualsync process".into(),
            },
            _ => "another dualsync process (it has not recorded itself yet)".into(),
        }
    }
}

fn lock_file(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// The lock file, readable by its owner only, like the store.
fn open_private(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_inside_a_claim_holds_nothing_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateConfig { url: DatabaseUrl::Sqlite(dir.path().join("state.db")), password_env: None };
        let outer = StateStore::claim(&state, "start").unwrap();
        assert!(outer.is_exclusive());
        let inner = StateStore::claim(&state, "sync").unwrap();
        assert!(!inner.is_exclusive(), "the process already holds the store");
        drop(inner);
        let store = StateStore::open(&state).unwrap();
        let holder = store.held_by(&state).expect("held");
        assert!(holder.contains(&format!("`dualsync start` (PID {}", std::process::id())), "{holder}");
        assert_eq!(store.db().query("SELECT command FROM store_owner", &[]).unwrap().len(), 1, "the outer claim's row stays");
        drop(outer);
        assert!(store.db().query("SELECT command FROM store_owner", &[]).unwrap().is_empty(), "the row goes with the claim");
        assert!(StateStore::claim(&state, "run").unwrap().is_exclusive(), "free again");
    }
}
