//! Incremental and live sync: read each running map's captured changes on
//! both apps from its cursors, reconcile the changed keys, then save the
//! cursors. `dualsync run` repeats this until stopped; `dualsync sync` on a
//! started map does it once.
//!
//! ```text
//!  app 0 dualsync_changes ─┐                          ┌─▶ app 0
//!                          ├─▶ group by company ─▶ merge (three-way) ─┤
//!  app 1 dualsync_changes ─┘      (changes.rs)       (reconcile.rs)   └─▶ app 1
//!                                                         │
//!                                      state store: bases, errors, conflicts, cursors
//! ```
//!
//! Cursors are saved only after a batch is applied: a crash re-reads at most
//! that batch, and reconciling a key again is harmless.
//!
//! On a PostgreSQL store, the processes of `run` share the maps: each
//! applies the groups of lookup-linked maps it holds (units.rs).

mod capture;
pub mod changes;
mod control;
mod deletes;
mod reconcile;
mod units;

pub use capture::{side_reads_log, Choice, Choices};
pub use control::{capture_choices, capture_findings, pause_map, resolve_conflict, resume_map, start_map, stop_map, StartReport};

use crate::apps::in_app;
use crate::order::run_order;
use crate::shape::MapShape;
use crate::side::Side;
use crate::{Apps, EngineError};
use dualsync_connectors::{Cursor, ErrorKind};
use dualsync_model::config::MapConfig;
use dualsync_model::Config;
use dualsync_state::{Counts, MapState, RunStatus, StateStore};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// How long to wait between polls when no database wakes us.
    pub poll: Duration,
    /// Changes read per app and round.
    pub batch: usize,
    /// Catch up once and return (`dualsync sync` on started maps).
    pub once: bool,
    /// Only these maps (all running maps when empty).
    pub maps: Vec<String>,
    /// Held while a map's round is applied, so that what else the process
    /// does to the apps (the service's retries, resolutions, starts) runs
    /// between rounds, never beside one.
    pub exclusive: Option<Arc<Mutex<()>>>,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions { poll: Duration::from_millis(10), batch: 5000, once: false, maps: Vec::new(), exclusive: None }
    }
}

/// What live sync reports as it goes.
pub trait LiveObserver: Sync {
    fn applied(&self, _map: &str, _changes: usize, _counts: &Counts) {}
    /// A map could not be reconciled this round (it is tried again, or paused: see `paused`).
    fn problem(&self, _map: &str, _message: &str) {}
    fn paused(&self, _map: &str, _reason: &str) {}
    /// The last batch of a map was applied this long after its oldest change was committed (zero: nothing waited).
    fn lag(&self, _map: &str, _lag: Duration) {}
    /// Changes every started map has passed were deleted from an app's change table.
    fn trimmed(&self, _app: &str, _table: &str, _changes: u64) {}
    /// `[state] retention_days` deleted settled errors and conflicts.
    fn purged(&self, _purged: &dualsync_state::Purged) {}
}

/// How often `[state] retention_days` is applied while live sync runs.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

pub struct Quiet;
impl LiveObserver for Quiet {}

#[derive(Debug, Default)]
pub struct LiveReport {
    pub run_id: i64,
    /// Per map: changes read and what they caused.
    pub maps: BTreeMap<String, (u64, Counts)>,
}

impl LiveReport {
    pub fn status(&self) -> RunStatus {
        if self.maps.values().any(|(_, c)| c.failed_total() > 0) {
            RunStatus::RowsFailed
        } else {
            RunStatus::Ok
        }
    }
}

/// Live sync of every running map until `stop` is set (or once, with `options.once`).
pub fn run_live(
    config: &Config,
    apps: &Apps,
    options: &LiveOptions,
    stop: &AtomicBool,
    observer: &dyn LiveObserver,
) -> Result<LiveReport, EngineError> {
    let claim = StateStore::join(&config.state, if options.once { "sync" } else { "run" })?;
    crate::link::verify(config, apps, config.maps.iter().flat_map(|m| [m.app(0), m.app(1)]))?;
    apps.fence_writes(&claim, config.maps.iter().flat_map(|m| [m.app(0), m.app(1)]))?;
    let store = StateStore::open(&config.state)?;
    let run_id = store.begin_run(if options.once { "incremental" } else { "live" })?;
    let mut report = LiveReport { run_id, ..Default::default() };
    let wake = Wake::default();
    let done = AtomicBool::new(false);
    let order: Vec<String> = map_order(config);
    let mut units = claim.worker().map(|w| units::LiveUnits::new(w, config, &order, options.once));
    let outcome = std::thread::scope(|scope| {
        if !options.once {
            for app in notifying_apps(config, apps) {
                let (wake, done) = (&wake, &done);
                scope.spawn(move || listen(apps, &app, wake, stop, done));
            }
        }
        let result = live_loop(config, apps, &store, options, stop, observer, &order, &wake, &mut units, &mut report);
        done.store(true, SeqCst);
        wake.ring();
        result
    });
    if let (Some(units), true) = (&mut units, options.once) {
        units.release(&store)?;
    }
    let status = match &outcome {
        Ok(()) => report.status(),
        Err(_) => RunStatus::Failed,
    };
    store.finish_run(run_id, status, outcome.as_ref().err().map(|e| e.to_string()).as_deref())?;
    outcome.map(|()| report)
}

#[allow(clippy::too_many_arguments)]
fn live_loop(
    config: &Config,
    apps: &Apps,
    store: &StateStore,
    options: &LiveOptions,
    stop: &AtomicBool,
    observer: &dyn LiveObserver,
    order: &[String],
    wake: &Wake,
    units: &mut Option<units::LiveUnits>,
    report: &mut LiveReport,
) -> Result<(), EngineError> {
    let mut retry_at: HashMap<String, (Instant, Duration)> = HashMap::new();
    let mut partitions: HashMap<String, i64> = HashMap::new();
    let mut last_trim = Instant::now();
    let mut last_retention: Option<Instant> = None;
    let mut delete_scans: HashMap<String, Instant> = HashMap::new();
    let mut choices = Choices::default();
    let mut slot_warnings = HashSet::new();
    let all_notify = notifying_apps(config, apps).len() == config.apps.len();
    loop {
        let states = store.map_states()?;
        if let Some(units) = units.as_mut() {
            let started: Vec<String> = states.iter().map(|s| s.map.clone()).collect();
            let handed_back = units.balance(store, &started)?;
            release_logs(config, apps, &handed_back);
        }
        let mut worked = false;
        for name in order {
            if stop.load(SeqCst) {
                return Ok(());
            }
            let state = states.iter().find(|s| &s.map == name).map(|s| s.state);
            let selected = options.maps.is_empty() || options.maps.contains(name);
            let due = retry_at.get(name).is_none_or(|(at, _)| Instant::now() >= *at);
            if !selected || !due || (state != Some(MapState::Running) && !(options.once && state.is_some())) {
                continue;
            }
            let map = config.map(name).expect("ordered from the config");
            // A worker applies only the maps it holds, with writes fenced by their unit's epoch.
            let fenced = match units.as_ref().map(|u| u.unit_of(name)) {
                None => None,
                Some(Some(unit)) => Some(apps.fenced(crate::apps::fence_of(&unit.fence))),
                Some(None) => {
                    if options.once {
                        observer.problem(name, "another process is applying this map's changes now; it was left to that process");
                    }
                    continue;
                }
            };
            let apps = fenced.as_ref().unwrap_or(apps);
            let round_lock = options.exclusive.as_ref().map(|m| m.lock().unwrap_or_else(|p| p.into_inner()));
            // An action of this process may have paused or stopped the map while the round waited for the lock.
            if round_lock.is_some() && store.map_state(name)?.map(|s| s.state) != state {
                continue;
            }
            let mut lag = None;
            match switch_capture(config, apps, store, report.run_id, map, &mut choices, observer, options.batch, stop)
                .and_then(|switched| Ok(add(switched, catch_up(config, apps, store, report.run_id, map, options.batch, stop, &mut lag)?)))
                .and_then(|done| Ok(add(done, deletes::scan_when_due(config, apps, store, report.run_id, map, &mut delete_scans, stop)?)))
            {
                Ok((changes, counts)) => {
                    retry_at.remove(name);
                    if let Some(lag) = lag {
                        observer.lag(name, lag);
                    }
                    if changes > 0 {
                        worked = true;
                        observer.applied(name, changes, &counts);
                        record_applied(store, report, &mut partitions, map, changes, &counts)?;
                        // Rows fail only when changes are applied: the alert rule is looked at then.
                        if counts.failed_total() > 0 {
                            check_alert(store, map, observer)?;
                        }
                    }
                }
                Err(EngineError::State(e)) => return Err(EngineError::State(e)),
                Err(e) if is_fenced(&e) => {
                    // Another worker holds the map now: its writes carry on from the saved cursors.
                    observer.problem(name, &format!("{e}; this process leaves the map to the worker that took it over"));
                    if let Some(units) = units.as_mut() {
                        let lost = units.lost(name);
                        release_logs(config, apps, &lost);
                    }
                    if options.once {
                        return Err(e);
                    }
                }
                Err(e) if needs_a_person(&e) => {
                    let reason = format!("{e}; fix it, then `dualsync resume {name}`");
                    store.set_map_state(name, MapState::Paused, Some(&reason))?;
                    observer.paused(name, &reason);
                    if options.once {
                        return Err(e);
                    }
                }
                Err(e) => {
                    // A server that is down or busy: try again later, with back-off up to a minute.
                    if options.once {
                        return Err(e);
                    }
                    let backoff = retry_at.get(name).map_or(Duration::from_millis(500), |(_, b)| (*b * 2).min(Duration::from_secs(60)));
                    observer.problem(name, &format!("{e}; trying again in {} s", backoff.as_secs_f32()));
                    retry_at.insert(name.clone(), (Instant::now() + backoff, backoff));
                }
            }
        }
        if options.once {
            return Ok(());
        }
        if last_trim.elapsed() > Duration::from_secs(2) {
            trim(config, apps, store, observer);
            watch_slots(config, apps, store, observer, &mut slot_warnings)?;
            last_trim = Instant::now();
        }
        if let Some(days) = config.state.retention_days.filter(|_| last_retention.is_none_or(|t| t.elapsed() > RETENTION_EVERY)) {
            match store.apply_retention(days) {
                Ok(purged) => observer.purged(&purged),
                Err(e) => observer.problem("", &format!("cannot apply [state] retention_days = {days}: {e}")),
            }
            last_retention = Some(Instant::now());
        }
        if !worked {
            // With every app notifying, polling is only a safety net.
            wake.wait(if all_notify { options.poll.max(Duration::from_millis(500)) } else { options.poll });
        }
    }
}

/// Ends this process's log sessions of maps another worker applies now, so
/// that the new holder's session on the same slot can start at once.
fn release_logs(config: &Config, apps: &Apps, maps: &[String]) {
    for map in maps.iter().filter_map(|m| config.map(m)) {
        for side in &map.sides {
            if let Ok(mut conn) = apps.connect(&side.app) {
                conn.release_log_capture(&side.table, &map.name);
            }
        }
    }
}

fn add(mut a: (usize, Counts), b: (usize, Counts)) -> (usize, Counts) {
    a.0 += b.0;
    a.1.add(&b.1);
    a
}

/// Switches the sides of a map whose capture is not the one asked for now
/// (see capture.rs): the new capture starts, the old one is read to its end
/// and removed, and reading goes on from the new one's start.
#[allow(clippy::too_many_arguments)]
fn switch_capture(
    config: &Config,
    apps: &Apps,
    store: &StateStore,
    run_id: i64,
    map: &MapConfig,
    choices: &mut Choices,
    observer: &dyn LiveObserver,
    batch: usize,
    stop: &AtomicBool,
) -> Result<(usize, Counts), EngineError> {
    let mut drained = (0, Counts::default());
    for (side, to_log) in capture::to_switch(config, apps, store, map, choices)? {
        let app = &map.sides[side].app;
        let (start, note) = capture::begin_switch(config, apps, map, side, to_log, choices)?;
        if let Some(note) = note {
            observer.problem(&map.name, &note);
        }
        let Some(start) = start else { continue };
        drained = add(drained, catch_up(config, apps, store, run_id, map, batch, stop, &mut None)?);
        if stop.load(SeqCst) {
            // Not read to its end: the old capture stays, and the next run switches.
            return Ok(drained);
        }
        capture::remove(config, store, map, side, !to_log, apps)?;
        store.save_cursors(&map.name, &[(app, &start.0)])?;
        let (from, to) = if to_log { ("triggers", "the database's log") } else { ("the database's log", "triggers") };
        observer.problem(&map.name, &format!("{app}: change capture switched from {from} to {to}; nothing was lost on the way"));
    }
    Ok(drained)
}

/// Adds a round's work to the run's report and to its row per map, kept
/// current so that `status` shows live work as it goes.
fn record_applied(
    store: &StateStore,
    report: &mut LiveReport,
    partitions: &mut HashMap<String, i64>,
    map: &MapConfig,
    changes: usize,
    counts: &Counts,
) -> Result<(), EngineError> {
    let entry = report.maps.entry(map.name.clone()).or_default();
    entry.0 += changes as u64;
    entry.1.add(counts);
    let id = match partitions.get(&map.name) {
        Some(id) => *id,
        None => {
            let id = store.begin_partition(report.run_id, &map.name, "", [map.app(0), map.app(1)])?;
            partitions.insert(map.name.clone(), id);
            id
        }
    };
    let status = if entry.1.failed_total() > 0 { RunStatus::RowsFailed } else { RunStatus::Ok };
    store.finish_partition(id, &entry.1, status, None)?;
    Ok(())
}

/// A write refused because another process holds the work now.
fn is_fenced(e: &EngineError) -> bool {
    matches!(e, EngineError::App { source, .. } if source.kind == ErrorKind::Fenced)
}

/// Errors that waiting will not fix: a table, column or capture that is gone.
fn needs_a_person(e: &EngineError) -> bool {
    matches!(e, EngineError::App { source, .. } if matches!(source.kind, ErrorKind::Schema | ErrorKind::Unsupported))
        || matches!(e, EngineError::Usage(_))
}

/// Reads and reconciles a map's changes on both apps until none are left.
fn catch_up(
    config: &Config,
    apps: &Apps,
    store: &StateStore,
    run_id: i64,
    map: &MapConfig,
    batch: usize,
    stop: &AtomicBool,
    lag: &mut Option<Duration>,
) -> Result<(usize, Counts), EngineError> {
    let shape = MapShape::new(map, config).with_write_batches(map, apps);
    let rules = shape.merge_rules();
    let saved = store.cursors(&map.name)?;
    let mut cursors = Side::BOTH.map(|s| saved.get(&shape.apps[s]).cloned().map(Cursor));
    let [Some(_), Some(_)] = &cursors else {
        return Err(EngineError::Usage(format!("map {} has no change cursors; start it with `dualsync start {}`", map.name, map.name)));
    };
    let mut total = (0, Counts::default());
    loop {
        let mut changes = [Vec::new(), Vec::new()];
        let mut next = cursors.clone();
        for side in Side::BOTH {
            let app = &shape.apps[side];
            let mut conn = apps.connect(app)?;
            let from = cursors[side].as_ref().expect("checked above");
            let (read, after) = conn
                .read_changes(&shape.tables[side], from, batch)
                .map_err(|e| capture_broken(e, &map.name, &shape.tables[side]))
                .map_err(in_app(apps, app))?;
            changes[side] = read;
            next[side] = Some(after);
        }
        let read = changes[0].len() + changes[1].len();
        if read == 0 {
            // Nothing was waiting: no lag.
            if total.0 == 0 {
                *lag = Some(Duration::ZERO);
            }
            return Ok(total);
        }
        let more = changes.iter().any(|c| c.len() >= batch);
        let oldest = changes.iter().flatten().map(|c| c.at_micros).min();
        let batch_of = reconcile::Batch { config, apps, store, run_id, shape: &shape, rules: &rules, depth: 0 };
        for group in changes::group(apps, &shape, changes)? {
            let company = changes::company(apps, &shape, &group.code)?;
            total.1.add(&batch_of.reconcile(company, group.keys)?);
        }
        let positions = Side::BOTH.map(|s| next[s].clone().expect("read above").0);
        store.save_cursors(&map.name, &[(&shape.apps[0], &positions[0]), (&shape.apps[1], &positions[1])])?;
        // From the oldest change's commit (the database's clock) to its batch applied (this machine's).
        if let Some(at) = oldest {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_micros() as i64;
            *lag = Some(Duration::from_micros(now.saturating_sub(at).max(0) as u64));
        }
        total.0 += read;
        cursors = next;
        if !more || stop.load(SeqCst) {
            return Ok(total);
        }
    }
}

/// Reconciles rows dualsync itself wrote into one app of a map (a bulk
/// import): they carry dualsync's origin, so capture skips them, and they are
/// merged into the other app here instead, a batch at a time, as if captured.
/// `written` holds each row's `[company value, key values…]` as the app stores
/// them (the company first where the map has one).
pub fn propagate_written(
    config: &Config,
    apps: &Apps,
    store: &StateStore,
    run_id: i64,
    map: &MapConfig,
    app: &str,
    written: Vec<Vec<dualsync_model::Value>>,
) -> Result<Counts, EngineError> {
    let shape = MapShape::new(map, config).with_write_batches(map, apps);
    let rules = shape.merge_rules();
    let side = map.side_of_app(app).ok_or_else(|| EngineError::Usage(format!("map {} has no app {app}", map.name)))?;
    let has_company = shape.company[side].is_some() as usize;
    // The side's key columns as configured, to the order capture records them in.
    let order: Vec<usize> = shape.key_columns[side]
        .iter()
        .map(|c| map.sides[side].key.iter().position(|k| k == c).expect("a key column of the side"))
        .collect();
    let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_micros() as i64;
    let changes = written
        .into_iter()
        .map(|row| {
            let mut values: Vec<_> = order.iter().map(|&i| row[has_company + i].clone()).collect();
            if has_company == 1 {
                values.push(row[0].clone());
            }
            dualsync_connectors::Change { values, kind: dualsync_connectors::ChangeKind::Update, at_micros: at }
        })
        .collect();
    let mut both = [Vec::new(), Vec::new()];
    both[side] = changes;
    let batch = reconcile::Batch { config, apps, store, run_id, shape: &shape, rules: &rules, depth: 0 };
    let mut counts = Counts::default();
    for group in changes::group(apps, &shape, both)? {
        let company = changes::company(apps, &shape, &group.code)?;
        counts.add(&batch.reconcile(company, group.keys)?);
    }
    Ok(counts)
}

/// A change table or trigger that is gone needs capture installed again.
fn capture_broken(mut e: dualsync_connectors::ConnectorError, map: &str, table: &str) -> dualsync_connectors::ConnectorError {
    if e.kind == ErrorKind::Schema {
        e.message = format!(
            "reading the changes of table {table}: {}; change capture is missing or damaged: run `dualsync stop {map}` and `dualsync start {map}` to install it again",
            e.message
        );
    }
    e
}

/// Pauses a map whose failed rows reached its alert rule.
fn check_alert(store: &StateStore, map: &MapConfig, observer: &dyn LiveObserver) -> Result<(), EngineError> {
    let Some(rule) = map.alert else { return Ok(()) };
    let n = store.recent_error_count(&map.name, rule.minutes as u64)?;
    if n >= rule.errors as u64 {
        let reason = format!(
            "alert: {n} failed rows in the last {} minutes (alert_errors = {}); see `dualsync errors --map {}`, fix them, then `dualsync resume {}`",
            rule.minutes, rule.errors, map.name, map.name
        );
        store.set_map_state(&map.name, MapState::Paused, Some(&reason))?;
        observer.paused(&map.name, &reason);
    }
    Ok(())
}

/// Watches the replication slots of running maps. One the server is about
/// to drop (`wal_status` unreserved: its WAL is beyond
/// `max_slot_wal_keep_size`) is warned of once: the map keeps reading, which
/// is what can save it. One whose WAL the server dropped (lost) pauses its
/// map: changes were missed, and a person must start it again.
fn watch_slots(
    config: &Config,
    apps: &Apps,
    store: &StateStore,
    observer: &dyn LiveObserver,
    warned: &mut HashSet<String>,
) -> Result<(), EngineError> {
    for state in store.map_states()?.into_iter().filter(|s| s.state == MapState::Running) {
        let Some(map) = config.map(&state.map) else { continue };
        let cursors = store.cursors(&map.name)?;
        for side in &map.sides {
            if !capture::side_reads_log(&cursors, &side.app) {
                continue;
            }
            let Ok(Some((bytes, status))) =
                apps.connect(&side.app).and_then(|mut c| c.log_retained(&side.table, &map.name).map_err(in_app(apps, &side.app)))
            else {
                continue;
            };
            let reason = match status.as_str() {
                "unreserved" => {
                    if warned.insert(format!("{}\u{0}{}", map.name, side.app)) {
                        observer.problem(
                            &map.name,
                            &format!(
                                "{}'s replication slot keeps {:.0} MB of WAL, beyond max_slot_wal_keep_size: the server drops it at a checkpoint \
                                 unless the map catches up first; find why it fell behind",
                                side.app,
                                bytes as f64 / 1e6
                            ),
                        );
                    }
                    continue;
                }
                "lost" => format!(
                    "{}'s replication slot lost WAL the map had not read: changes were missed; `dualsync stop {}` then `dualsync start {}` reconciles both apps again",
                    side.app, map.name, map.name
                ),
                _ => continue,
            };
            store.set_map_state(&map.name, MapState::Paused, Some(&reason))?;
            observer.paused(&map.name, &reason);
        }
    }
    Ok(())
}

/// Deletes changes that every started map (running or paused) has passed.
fn trim(config: &Config, apps: &Apps, store: &StateStore, observer: &dyn LiveObserver) {
    let mut readers: BTreeMap<(String, String), Vec<Cursor>> = BTreeMap::new();
    let Ok(states) = store.map_states() else { return };
    for state in states {
        let (Some(map), Ok(cursors)) = (config.map(&state.map), store.cursors(&state.map)) else { continue };
        for side in &map.sides {
            if let Some(c) = cursors.get(&side.app) {
                readers.entry((side.app.clone(), side.table.clone())).or_default().push(Cursor(c.clone()));
            }
        }
    }
    for ((app, table), cursors) in readers {
        match apps.connect(&app).and_then(|mut c| c.trim_changes(&table, &cursors).map_err(in_app(apps, &app))) {
            Ok(0) => {}
            Ok(n) => observer.trimmed(&app, &table, n),
            Err(e) => observer.problem("", &format!("cannot trim the change table of {app}.{table}: {e}")),
        }
    }
}

/// Every map in lookup order (a two-pass map once).
fn map_order(config: &Config) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for stage in run_order(config, &[]).stages {
        for step in stage {
            if !out.contains(&step.map) {
                out.push(step.map.clone());
            }
        }
    }
    out
}

fn notifying_apps(config: &Config, apps: &Apps) -> Vec<String> {
    config.apps.iter().filter(|a| apps.connector(&a.name).notifies()).map(|a| a.name.clone()).collect()
}

/// Wakes the loop when a database notifies a change.
#[derive(Default)]
struct Wake {
    rung: Mutex<bool>,
    bell: Condvar,
}

impl Wake {
    fn ring(&self) {
        *self.rung.lock().unwrap() = true;
        self.bell.notify_all();
    }

    fn wait(&self, timeout: Duration) {
        let rung = self.rung.lock().unwrap();
        let (mut rung, _) = self.bell.wait_timeout_while(rung, timeout, |r| !*r).unwrap();
        *rung = false;
    }
}

fn listen(apps: &Apps, app: &str, wake: &Wake, stop: &AtomicBool, done: &AtomicBool) {
    while !stop.load(SeqCst) && !done.load(SeqCst) {
        let Ok(mut conn) = apps.connect(app) else {
            std::thread::sleep(Duration::from_secs(1));
            continue;
        };
        while !stop.load(SeqCst) && !done.load(SeqCst) {
            match conn.wait_for_changes(Duration::from_millis(200)) {
                Ok(true) => wake.ring(),
                Ok(false) => {}
                Err(_) => break, // reconnect
            }
        }
    }
}
