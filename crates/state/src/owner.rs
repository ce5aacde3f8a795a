//! One syncing process at a time on a state store.
//!
//! Two `run`s (or a `run` and a `sync`) on one store would apply the same
//! changes twice and overwrite each other's merge bases. A command that syncs
//! first claims the store:
//!
//! - **SQLite**: an exclusive lock on a file beside the store
//!   (`state.db.lock`). The operating system releases it when the process
//!   ends, even under `kill -9`, so a crashed holder never blocks the next
//!   one. The holder also names itself in the store's `store_owner` row, so
//!   that a refused process can say who holds the store and since when.
//! - **PostgreSQL**: a lease in the `leases` table, decided by the server's
//!   clock. A claim takes a free or expired lease and bumps its epoch; a
//!   thread renews it every third of `lease_seconds`, on the condition that
//!   owner and epoch are still ours. A holder that dies is taken over once
//!   its lease expires. A holder that cannot renew (cut off, or paused past
//!   its lease) is stopped at its own deadline by a watchdog thread, measured
//!   on its monotonic clock from the last renewal it sent, before another
//!   process may take over. The epoch is the fencing token: the apps'
//!   `dualsync_fence` rows and the store's own triggers refuse the writes of
//!   a holder whose epoch has passed.
//!
//! `run` and `sync` on a PostgreSQL store do not take the store whole: they
//! *join* it as workers (`StateStore::join`). Any number of processes of the
//! same command share the store's work, a unit at a time (work.rs); each
//! holds a worker lease, renewed and watched exactly like the store's. The
//! store's lease and the workers exclude each other, and so do workers of
//! different commands: a `sync` never runs beside a `run`.

use crate::db::{Cell, P};
use crate::time::now;
use crate::work::Worker;
use crate::{StateError, StateStore};
use dualsync_model::config::{DatabaseUrl, StateConfig};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Held while a command syncs; dropping it hands the store back. A claim
/// taken while this process already holds the store (`start`'s initial sync,
/// `sync`'s catch-up) holds nothing of its own.
#[must_use = "the store is held only while the claim lives"]
pub struct StoreClaim {
    hold: Hold,
}

enum Hold {
    /// Nested in a claim of this process.
    Nested(Held),
    File {
        _lock: File,
        path: PathBuf,
        url: String,
    },
    Lease(Lease),
}

/// What this process holds on a store.
#[derive(Clone, Debug)]
struct Held {
    url: String,
    /// The apps' fencing token of a store lease (None for a file lock or a worker).
    token: Option<Token>,
    /// The lease this process's store sessions write under: its unit and epoch.
    session: Option<(String, i64)>,
    worker: Option<Worker>,
}

/// The stores this process holds (by URL). An exclusive lock taken twice by one
/// process through two files conflicts with itself, and a lease would be
/// taken twice: a nested claim takes nothing.
static HELD: Mutex<Vec<Held>> = Mutex::new(Vec::new());

fn held() -> std::sync::MutexGuard<'static, Vec<Held>> {
    HELD.lock().unwrap_or_else(|p| p.into_inner())
}

impl StoreClaim {
    /// Whether this claim holds the store itself (false when nested).
    pub fn is_exclusive(&self) -> bool {
        !matches!(self.hold, Hold::Nested(_))
    }

    /// The fencing token of a PostgreSQL store's lease (None on SQLite,
    /// where the file lock keeps every other process out, and for a worker,
    /// whose units have tokens of their own).
    pub fn token(&self) -> Option<Token> {
        self.held().token
    }

    /// The worker this process is, when it joined a PostgreSQL store to share its work.
    pub fn worker(&self) -> Option<Worker> {
        self.held().worker
    }

    /// Tokens of units whose holders died, taken over by this claim: raise
    /// them in the apps before writing, so that a holder that only seemed
    /// dead (paused) lands nothing there.
    pub fn taken_over(&self) -> &[Token] {
        match &self.hold {
            Hold::Lease(lease) => &lease.taken_over,
            _ => &[],
        }
    }

    fn held(&self) -> Held {
        match &self.hold {
            Hold::Nested(held) => held.clone(),
            Hold::File { url, .. } => Held { url: url.clone(), token: None, session: None, worker: None },
            Hold::Lease(lease) => lease.held(),
        }
    }
}

impl Drop for StoreClaim {
    fn drop(&mut self) {
        match &mut self.hold {
            Hold::Nested(_) => {}
            Hold::File { path, url, .. } => {
                held().retain(|h| &h.url != url);
                // Best effort: a row left behind is overwritten by the next holder.
                if let Ok(conn) = rusqlite::Connection::open(&*path) {
                    let _ = conn.busy_timeout(Duration::from_secs(5));
                    let _ = conn.execute("DELETE FROM store_owner WHERE pid = ?1", [std::process::id()]);
                }
                // The lock goes with the file, after the row.
            }
            Hold::Lease(lease) => {
                held().retain(|h| h.url != lease.url);
                lease.release();
            }
        }
    }
}

impl StateStore {
    /// Takes the store for this process, for `command` (`run`, `sync`…), or
    /// says which process holds it. Hold the claim until the command ends.
    pub fn claim(state: &StateConfig, command: &str) -> Result<StoreClaim, StateError> {
        Self::take(state, command, false)
    }

    /// Joins the store as one of the workers that share its work (`run`,
    /// `sync`), on PostgreSQL; on SQLite, the same as `claim`.
    pub fn join(state: &StateConfig, command: &str) -> Result<StoreClaim, StateError> {
        Self::take(state, command, true)
    }

    fn take(state: &StateConfig, command: &str, shared: bool) -> Result<StoreClaim, StateError> {
        let url = state.url.to_string();
        if let Some(held) = held().iter().find(|h| h.url == url) {
            return Ok(StoreClaim { hold: Hold::Nested(held.clone()) });
        }
        let hold = match &state.url {
            DatabaseUrl::Sqlite(path) => claim_file(state, path, command)?,
            DatabaseUrl::Postgres(_) => Hold::Lease(Lease::claim(state, command, shared)?),
            DatabaseUrl::Mysql(_) => return Err(StateError::Unsupported("MySQL")),
            DatabaseUrl::OData(_) => return Err(StateError::Unsupported("OData")),
        };
        let claim = StoreClaim { hold };
        held().push(claim.held());
        Ok(claim)
    }

    /// The process that holds the store now, if one does (for `status`).
    pub fn held_by(&self, state: &StateConfig) -> Option<String> {
        match &state.url {
            DatabaseUrl::Sqlite(path) => {
                let lock = File::open(lock_file(path)).ok()?;
                match lock.try_lock() {
                    Ok(()) => None, // nobody holds it; the lock goes with the file at once
                    Err(TryLockError::WouldBlock) => Some(self.file_holder()),
                    Err(TryLockError::Error(_)) => None,
                }
            }
            DatabaseUrl::Postgres(_) => self.lease_holder().ok().flatten(),
            DatabaseUrl::Mysql(_) | DatabaseUrl::OData(_) => None,
        }
    }

    /// The store's holders, as `dualsync workers` lists them: the lease rows
    /// of a PostgreSQL store (free ones too, with their epoch and takeovers),
    /// or the process that holds a SQLite store's lock.
    pub fn holders(&self, state: &StateConfig) -> Result<Vec<Holder>, StateError> {
        match &state.url {
            DatabaseUrl::Postgres(_) => {
                let sql = format!(
                    "SELECT unit, pid, host, command, {}, {}, {}, epoch, takeovers, (owner IS NOT NULL AND expires_at > now())::text
                     FROM leases ORDER BY unit",
                    utc("since"),
                    utc("renewed_at"),
                    utc("expires_at")
                );
                let rows = self.db().query(&sql, &[])?;
                Ok(rows
                    .into_iter()
                    .map(|r| Holder {
                        unit: r[0].text(),
                        pid: r[1].opt_int(),
                        host: r[2].opt_text(),
                        command: r[3].opt_text(),
                        since: r[4].opt_text(),
                        heartbeat: r[5].opt_text(),
                        expires: r[6].opt_text(),
                        epoch: Some(r[7].int()),
                        takeovers: Some(r[8].int()),
                        holding: r[9].text() == "true",
                    })
                    .collect())
            }
            DatabaseUrl::Sqlite(_) if self.held_by(state).is_some() => {
                let rows = self.db().query("SELECT pid, host, command, since FROM store_owner WHERE id = 1", &[])?;
                Ok(rows
                    .into_iter()
                    .map(|r| Holder {
                        unit: "store".into(),
                        pid: Some(r[0].int()),
                        host: r[1].opt_text(),
                        command: r[2].opt_text(),
                        since: r[3].opt_text(),
                        heartbeat: None,
                        expires: None,
                        epoch: None,
                        takeovers: None,
                        holding: true,
                    })
                    .collect())
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Who holds a SQLite store, as its owner row says.
    fn file_holder(&self) -> String {
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

    /// Who holds a PostgreSQL store's lease (or works on it), while it is live.
    fn lease_holder(&self) -> Result<Option<String>, StateError> {
        let mut db = self.db();
        if let Some(holder) = lease_holder_in(&mut db)? {
            return Ok(Some(holder));
        }
        worker_in_the_way(&mut db, |_| true)
    }
}

/// A timestamp column as UTC ISO 8601 text, in SQL.
fn utc(column: &str) -> String {
    format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
}

/// The first live worker whose command `in_the_way` refuses, described for a refusal.
fn worker_in_the_way(db: &mut crate::db::Db, in_the_way: impl Fn(&str) -> bool) -> Result<Option<String>, StateError> {
    let workers =
        db.query(&format!("SELECT command, pid, host, {} FROM leases WHERE {LIVE_WORKER} ORDER BY since", utc("expires_at")), &[])?;
    Ok(workers.iter().find(|w| in_the_way(&w[0].text())).map(|w| {
        format!(
            "`dualsync {}` (PID {} on host {}, one of {} worker(s) sharing the store; its lease runs until {} unless renewed: \
             if that process died, the store is free then)",
            w[0].text(),
            w[1].int(),
            w[2].text(),
            workers.len(),
            w[3].text()
        )
    }))
}

/// Who holds a PostgreSQL store's own lease, while it is live.
fn lease_holder_in(db: &mut crate::db::Db) -> Result<Option<String>, StateError> {
    let rows = db.query(
        &format!(
            "SELECT pid, host, command, {}, {}, epoch FROM leases WHERE unit = 'store' AND owner IS NOT NULL AND expires_at > now()",
            utc("since"),
            utc("expires_at")
        ),
        &[],
    )?;
    Ok(rows.first().map(|row| match &row[..] {
        [Cell::Int(pid), Cell::Text(host), Cell::Text(command), Cell::Text(since), Cell::Text(until), Cell::Int(epoch)] => format!(
            "`dualsync {command}` (PID {pid} on host {host}, since {since}; lease epoch {epoch} runs until {until} \
             unless renewed: if that process died, a new one takes over then)"
        ),
        _ => "another dualsync process".into(),
    }))
}

fn claim_file(state: &StateConfig, path: &Path, command: &str) -> Result<Hold, StateError> {
    // Opening creates or upgrades the store, so the owner table exists.
    let store = StateStore::open(state)?;
    let lock_path = lock_file(path);
    let failed = |what: &str, e: std::io::Error| StateError::Open {
        location: state.url.to_string(),
        message: format!("cannot {what} the lock file {}: {e}", lock_path.display()),
    };
    let lock = open_private(&lock_path).map_err(|e| failed("open", e))?;
    // A few tries: `status` takes the lock for a moment to see whether it is held.
    let mut tries = 0;
    loop {
        match lock.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) if tries < 10 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(StateError::InUse { location: state.url.to_string(), holder: store.file_holder() })
            }
            Err(TryLockError::Error(e)) => return Err(failed("lock", e)),
        }
    }
    store.db().execute(
        "INSERT OR REPLACE INTO store_owner (id, pid, host, command, since) VALUES (1, ?1, ?2, ?3, ?4)",
        &[P::Int(std::process::id() as i64), P::Text(&host_name()), P::Text(command), P::Text(&now())],
    )?;
    Ok(Hold::File { _lock: lock, path: path.to_path_buf(), url: state.url.to_string() })
}

/// A unit of work and who holds it (`StateStore::holders`).
#[derive(Clone, Debug)]
pub struct Holder {
    pub unit: String,
    pub pid: Option<i64>,
    pub host: Option<String>,
    pub command: Option<String>,
    pub since: Option<String>,
    /// The last renewal of the lease (PostgreSQL).
    pub heartbeat: Option<String>,
    pub expires: Option<String>,
    pub epoch: Option<i64>,
    pub takeovers: Option<i64>,
    /// Whether the process still holds it (a lease not run out, a lock taken).
    pub holding: bool,
}

/// A lease's fencing token: which store (its incarnation), and the epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub store: String,
    pub epoch: i64,
}

/// The lease (unit, epoch) this process's sessions on the store at `url`
/// write under, if it holds one: the store refuses their writes once it has passed.
pub(crate) fn held_session(url: &str) -> Option<(String, i64)> {
    held().iter().find(|h| h.url == url).and_then(|h| h.session.clone())
}

/// A lease on a PostgreSQL store, renewed by a thread of its own: the
/// store's (`unit` 'store'), or a worker's ('worker:<owner>').
struct Lease {
    url: String,
    store: std::sync::Arc<StateStore>,
    unit: String,
    owner: String,
    epoch: i64,
    /// The apps' token of a store lease; a worker's units carry their own.
    token: Option<Token>,
    worker: Option<Worker>,
    taken_over: Vec<Token>,
    /// Dropped to stop the renewals. Their thread is not waited for: a renewal
    /// stuck on a dead network must not hold up the end of the command.
    stop: Option<Sender<()>>,
    watchdog_stop: std::sync::Arc<AtomicBool>,
    watchdog: Option<JoinHandle<()>>,
}

impl Lease {
    fn claim(state: &StateConfig, command: &str, shared: bool) -> Result<Lease, StateError> {
        let store = std::sync::Arc::new(StateStore::open(state)?);
        // The renewals run on a connection of their own, so the command's statements never delay
        // them; it is opened first, because from the claim on nothing may block before the
        // deadline is watched.
        let renewals = StateStore::open(state)?;
        let owner = format!("{}:{}:{}", host_name(), std::process::id(), now());
        let sent = Instant::now();
        let claimed = {
            let mut db = store.db();
            db.execute("INSERT INTO leases (unit) VALUES ('store') ON CONFLICT (unit) DO NOTHING", &[])?;
            db.batch("BEGIN")?;
            // Claims and joins take the store's row first, so they decide one after the other.
            let decided = claim_in(&mut db, state, &owner, command, shared);
            db.batch(if decided.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
            decided?
        };
        let Claimed { unit, epoch, incarnation, taken_over } = match claimed {
            Ok(claimed) => claimed,
            Err(holder) => return Err(StateError::InUse { location: state.url.to_string(), holder }),
        };
        let ttl = Duration::from_secs(state.lease_seconds);
        let token = (!shared).then(|| Token { store: format!("store {incarnation}"), epoch });
        let worker = shared.then(|| Worker { owner: owner.clone(), command: command.to_string(), incarnation: incarnation.clone(), ttl });
        let (stop, stopped) = channel();
        let last: LastRenewal = std::sync::Arc::new(Mutex::new(sent));
        let (who, location, renewed, renewing) = (owner.clone(), state.url.to_string(), last.clone(), unit.clone());
        std::thread::Builder::new()
            .name("lease".into())
            .spawn(move || renew_until_stopped(&renewals, &renewing, &who, epoch, ttl, &renewed, &location, &stopped))
            .expect("spawn the lease thread");
        let watchdog_stop = std::sync::Arc::new(AtomicBool::new(false));
        let (location, stop_watching) = (state.url.to_string(), watchdog_stop.clone());
        let watchdog = std::thread::Builder::new()
            .name("lease-deadline".into())
            .spawn(move || watch_deadline(ttl, &last, &location, &stop_watching))
            .expect("spawn the lease deadline thread");
        Ok(Lease {
            url: state.url.to_string(),
            store,
            unit,
            owner,
            epoch,
            token,
            worker,
            taken_over,
            stop: Some(stop),
            watchdog_stop,
            watchdog: Some(watchdog),
        })
    }

    fn held(&self) -> Held {
        Held {
            url: self.url.clone(),
            token: self.token.clone(),
            session: Some((self.unit.clone(), self.epoch)),
            worker: self.worker.clone(),
        }
    }

    /// Stops renewing and frees the lease, if it is still ours (a worker's
    /// unfinished units with it).
    fn release(&mut self) {
        self.watchdog_stop.store(true, Ordering::Relaxed);
        if let Some(watchdog) = self.watchdog.take() {
            let _ = watchdog.join();
        }
        drop(self.stop.take());
        // Handed back on a thread of its own, waited for a few seconds at most: on a dead
        // network the call would never return, and the lease runs out by itself anyway.
        let (store, owner, epoch, unit) = (self.store.clone(), self.owner.clone(), self.epoch, self.unit.clone());
        let (done, released) = channel();
        let handing_back = std::thread::Builder::new().name("lease-release".into()).spawn(move || {
            if unit != "store" {
                let _ = store.db().execute("UPDATE work_items SET owner = NULL WHERE owner = ?1 AND done_at IS NULL", &[P::Text(&owner)]);
            }
            let _ = store.db().execute(
                "UPDATE leases SET owner = NULL, expires_at = NULL WHERE unit = ?1 AND owner = ?2 AND epoch = ?3",
                &[P::Text(&unit), P::Text(&owner), P::Int(epoch)],
            );
            let _ = done.send(());
        });
        if handing_back.is_ok() {
            let _ = released.recv_timeout(RELEASE_WAIT);
        }
    }
}

/// A lease just claimed.
struct Claimed {
    unit: String,
    epoch: i64,
    incarnation: String,
    taken_over: Vec<Token>,
}

/// Moves the lease of every worker whose lease ran out, so that its store
/// sessions write nothing more. The rows are locked FOR UPDATE first, which
/// waits for the statements those sessions have in flight (004_work.sql).
pub(crate) const FENCE_DEAD_WORKERS: &str = "UPDATE leases SET owner = NULL, epoch = nextval('lease_epochs')
     WHERE unit IN (SELECT unit FROM leases WHERE unit LIKE 'worker:%' AND owner IS NOT NULL AND expires_at <= now() FOR UPDATE)";

/// Live workers, as SQL: a worker lease not run out.
const LIVE_WORKER: &str = "unit LIKE 'worker:%' AND owner IS NOT NULL AND expires_at > now()";

/// Claims the store (or joins it as a worker) inside a transaction; Err
/// names the holder that stands in the way.
fn claim_in(
    db: &mut crate::db::Db,
    state: &StateConfig,
    owner: &str,
    command: &str,
    shared: bool,
) -> Result<Result<Claimed, String>, StateError> {
    let ttl = state.lease_seconds as i64;
    let store = db.query(
        "SELECT incarnation, (owner IS NOT NULL AND expires_at > now())::text, (owner IS NOT NULL)::text FROM leases WHERE unit = 'store' FOR UPDATE",
        &[],
    )?;
    let [Cell::Text(incarnation), Cell::Text(store_live), Cell::Text(store_owned)] = &store[0][..] else {
        return Err(StateError::Postgres("the store's lease row is malformed".into()));
    };
    let incarnation = incarnation.clone();
    if store_live == "true" {
        return Ok(Err(lease_holder_in(db)?.unwrap_or_else(|| "another dualsync process".into())));
    }
    if let Some(holder) = worker_in_the_way(db, |theirs| !shared || theirs != command)? {
        return Ok(Err(holder));
    }
    // Whoever died holding work is fenced now: its store sessions by its lease's new epoch, its
    // app writes by the new epochs of its units (raised in the apps by the caller).
    db.execute(FENCE_DEAD_WORKERS, &[])?;
    let mut taken_over = Vec::new();
    let unit = if shared {
        if store_owned == "true" {
            let bumped = db.query(
                "UPDATE leases SET owner = NULL, expires_at = NULL, epoch = nextval('lease_epochs'), takeovers = takeovers + 1
                 WHERE unit = 'store' RETURNING epoch",
                &[],
            )?;
            taken_over.push(Token { store: format!("store {incarnation}"), epoch: bumped[0][0].int() });
        }
        // Worker rows long handed back are forgotten.
        db.execute("DELETE FROM leases WHERE unit LIKE 'worker:%' AND owner IS NULL AND renewed_at < now() - interval '1 day'", &[])?;
        let unit = format!("worker:{owner}");
        db.execute(
            "INSERT INTO leases (unit, incarnation, owner, epoch, pid, host, command, since, renewed_at, expires_at)
             VALUES (?1, ?2, ?3, nextval('lease_epochs'), ?4, ?5, ?6, now(), now(), now() + ?7::bigint * interval '1 second')",
            &[
                P::Text(&unit),
                P::Text(&incarnation),
                P::Text(owner),
                P::Int(std::process::id() as i64),
                P::Text(&host_name()),
                P::Text(command),
                P::Int(ttl),
            ],
        )?;
        unit
    } else {
        db.execute(
            "UPDATE leases SET owner = ?1, epoch = nextval('lease_epochs'), pid = ?2, host = ?3, command = ?4, since = now(),
                    renewed_at = now(), expires_at = now() + ?5::bigint * interval '1 second',
                    takeovers = takeovers + CASE WHEN owner IS NULL THEN 0 ELSE 1 END
             WHERE unit = 'store'",
            &[P::Text(owner), P::Int(std::process::id() as i64), P::Text(&host_name()), P::Text(command), P::Int(ttl)],
        )?;
        "store".to_string()
    };
    // Units of work whose worker died are the taker's to fence.
    if !shared {
        let units = db.query(
            &format!(
                "UPDATE work_items i SET owner = NULL, epoch = nextval('lease_epochs')
                 WHERE owner IS NOT NULL AND done_at IS NULL
                   AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.unit = 'worker:' || i.owner AND l.owner = i.owner AND l.expires_at > now())
                 RETURNING id, epoch"
            ),
            &[],
        )?;
        taken_over.extend(units.iter().map(|u| Token { store: crate::work::fence_unit(&incarnation, u[0].int()), epoch: u[1].int() }));
    }
    let epoch = db.query("SELECT epoch FROM leases WHERE unit = ?1", &[P::Text(&unit)])?[0][0].int();
    Ok(Ok(Claimed { unit, epoch, incarnation, taken_over }))
}

/// How long the end of a command waits for its lease to be handed back.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// The last renewal that the store accepted, as sent: the deadline counts from it.
type LastRenewal = std::sync::Arc<Mutex<Instant>>;

/// Renews every third of the lease, on a connection of its own. When the
/// lease is no longer ours, the process stops at once: another holds it.
/// A renewal that fails is tried again at the next round; the watchdog
/// decides when it is too late.
#[allow(clippy::too_many_arguments)]
fn renew_until_stopped(
    store: &StateStore,
    unit: &str,
    owner: &str,
    epoch: i64,
    ttl: Duration,
    last: &LastRenewal,
    location: &str,
    stopped: &Receiver<()>,
) {
    loop {
        match stopped.recv_timeout(ttl / 3) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let sent = Instant::now();
        let renewed = store.db().execute(
            "UPDATE leases SET renewed_at = now(), expires_at = now() + ?3::bigint * interval '1 second'
             WHERE unit = ?4 AND owner = ?1 AND epoch = ?2",
            &[P::Text(owner), P::Int(epoch), P::Int(ttl.as_secs() as i64), P::Text(unit)],
        );
        match renewed {
            Ok(1) => *last.lock().unwrap_or_else(|p| p.into_inner()) = sent,
            // Handed back meanwhile (the command ended): nothing is wrong.
            Ok(_) if matches!(stopped.try_recv(), Err(TryRecvError::Disconnected)) => return,
            Ok(_) => lost(location, "another process holds it now"),
            Err(_) => {}
        }
    }
}

/// Stops the process at its deadline: the last renewal sent plus the lease,
/// less a margin, on this machine's monotonic clock. It never waits on the
/// store, so a renewal stuck on a dead network cannot hold it up.
fn watch_deadline(ttl: Duration, last: &LastRenewal, location: &str, stopped: &AtomicBool) {
    let margin = (ttl / 5).min(Duration::from_secs(2));
    let tick = (ttl / 20).clamp(Duration::from_millis(20), Duration::from_millis(250));
    while !stopped.load(Ordering::Relaxed) {
        let deadline = *last.lock().unwrap_or_else(|p| p.into_inner()) + ttl - margin;
        if Instant::now() >= deadline {
            lost(location, "it was not renewed in time (was the process paused, or the store unreachable?)");
        }
        std::thread::sleep(tick);
    }
}

fn lost(location: &str, why: &str) -> ! {
    eprintln!(
        "error: this process lost its lease on the state store {location}: {why}. It stops now, so that it never \
         writes alongside the process that takes over; what it did not finish is done by the next run."
    );
    std::process::exit(1)
}

fn lock_file(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// A file readable by its owner only (the lock file, a new SQLite store).
pub(crate) fn open_private(path: &Path) -> std::io::Result<File> {
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
        let state = StateConfig {
            url: DatabaseUrl::Sqlite(dir.path().join("state.db")),
            password_env: None,
            lease_seconds: 15,
            chunk_rows: 1000,
            retention_days: None,
        };
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

    /// A session of a process whose lease has passed writes no state.
    #[test]
    fn a_postgres_store_refuses_the_writes_of_a_passed_lease() {
        let Some(db) = dualsync_testkit::TestDb::new(dualsync_testkit::Kind::Postgres) else { return };
        let state = StateConfig { url: db.database_url(), password_env: None, lease_seconds: 3600, chunk_rows: 1000, retention_days: None };
        let claim = StateStore::claim(&state, "sync").unwrap();
        let token = claim.token().expect("a lease on PostgreSQL");
        assert!(token.store.starts_with("store ") && token.epoch >= 1, "{token:?}");
        let store = StateStore::open(&state).unwrap();
        let run = store.begin_run("sync").unwrap();
        // Another process claims the store.
        db.exec("UPDATE leases SET epoch = epoch + 1, owner = 'someone else'");
        let refused = store.finish_run(run, crate::RunStatus::Ok, None).expect_err("fenced");
        assert!(refused.to_string().contains("fenced: another dualsync process holds the state store now"), "{refused}");
        // People's commands, in sessions that hold no lease, still work.
        drop(claim);
        let status = StateStore::open(&state).unwrap();
        status.finish_run(run, crate::RunStatus::Ok, None).unwrap();
    }
}
