//! A map's live state: `start` (install capture, initial sync, running),
//! `pause`, `resume`, `stop` (remove capture), and `resolve` for the conflict queue.

use super::capture::{self, Choices};
use super::changes::capture_spec;
use crate::apps::in_app;
use crate::shape::MapShape;
use crate::side::Side;
use crate::sync::{reconcile_key, run_sync, KeyOutcome, Observer, SyncOptions, SyncReport};
use crate::{Apps, EngineError};
use dualsync_model::row::key_from_text;
use dualsync_model::{Config, Value};
use dualsync_state::{MapState, StateStore};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

#[derive(Debug)]
pub struct StartReport {
    /// The initial sync's report (None with `--skip-initial`).
    pub initial: Option<SyncReport>,
    /// Per app of the map: how its changes are captured (and why not from the log, where not).
    pub capture: Vec<(String, capture::Choice)>,
}

/// The named map, or the usage error `sync --map` gives for a name that is not in the config.
fn map_of<'a>(config: &'a Config, map: &str) -> Result<&'a dualsync_model::config::MapConfig, EngineError> {
    crate::sync::selected_maps(config, &[map.to_string()])?;
    Ok(config.map(map).expect("checked by selected_maps"))
}

/// Installs capture on both apps, marks where their change tables stand, runs
/// the initial sync (unless skipped), and sets the map running. Changes made
/// while the initial sync runs are captured after the marks and reconciled by
/// the next `run` (or `sync`): none is lost.
pub fn start_map(
    config: &Config,
    apps: &Apps,
    map: &str,
    skip_initial: bool,
    observer: &dyn Observer,
    rows_done: Arc<AtomicU64>,
    stop: Option<&'static AtomicBool>,
) -> Result<StartReport, EngineError> {
    let m = map_of(config, map)?;
    let claim = StateStore::claim(&config.state, "start")?;
    crate::link::verify(config, apps, [m.app(0), m.app(1)])?;
    apps.fence_writes(&claim, [m.app(0), m.app(1)])?;
    let store = StateStore::open(&config.state)?;
    if let Some(state) = store.map_state(map)? {
        return Err(EngineError::Usage(format!(
            "map {map} is already started ({}); use `dualsync resume {map}` or `dualsync stop {map}` first",
            state.state.as_str()
        )));
    }
    let shape = MapShape::new(m, config);
    let mut marks = Vec::new();
    let mut choices = Choices::default();
    let mut chosen = Vec::new();
    for side in Side::BOTH {
        let app = &shape.apps[side];
        let mut choice = choices.of(config, apps, app)?;
        let spec = capture_spec(&shape, side);
        let mut conn = apps.connect(app)?;
        if !choice.log {
            if let Some(columns) = conn.capture_of(&spec.table).map_err(in_app(apps, app))? {
                let installs = apps.connector(app).capture_way().installs();
                if installs && columns != spec.columns && capture::triggers_shared(config, &store, map, app, &spec.table)? {
                    return Err(EngineError::Usage(format!(
                        "{app}.{} is captured for another started map with columns {columns:?}; this map needs {:?}: one table takes part in started maps with the same key and company columns, or use capture = \"log\"",
                        spec.table, spec.columns
                    )));
                }
            }
        }
        drop(conn);
        let (cursor, note) = choices.install(config, apps, &shape, side)?;
        if let Some(note) = note {
            choice.log = false;
            choice.why_not_log.push(note);
        }
        marks.push((app.clone(), cursor.0));
        chosen.push((app.clone(), choice));
    }
    store.save_cursors(map, &marks.iter().map(|(a, c)| (a.as_str(), c.as_str())).collect::<Vec<_>>())?;
    let initial = if skip_initial {
        None
    } else {
        let options = SyncOptions { maps: vec![map.to_string()], stop, ..Default::default() };
        let report = run_sync(config, apps, &options, observer, rows_done)?;
        // Stopped part way, the map is not set running: a later start syncs it whole again.
        if stop.is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst)) {
            return Err(EngineError::Stopped(format!(
                "the initial sync of map {map} was stopped before it finished; capture stays installed, and `start {map}` again syncs it whole"
            )));
        }
        Some(report)
    };
    store.set_map_state(map, MapState::Running, None)?;
    Ok(StartReport { initial, capture: chosen })
}

/// `dualsync check`: each started map's capture is in place on both apps, recording the columns the map needs.
pub fn capture_findings(config: &Config, apps: &Apps, store: &StateStore) -> Result<Vec<crate::check::Finding>, EngineError> {
    let mut findings = Vec::new();
    for state in store.map_states()? {
        let Some(m) = config.map(&state.map) else { continue };
        let shape = MapShape::new(m, config);
        let cursors = store.cursors(&m.name)?;
        for side in Side::BOTH {
            let spec = capture_spec(&shape, side);
            let app = &shape.apps[side];
            let log = capture::side_reads_log(&cursors, app);
            let what = if log { "log capture" } else { "change capture" };
            let found = apps.connect(app).and_then(|mut c| capture::installed(c.as_mut(), &shape, side, log).map_err(in_app(apps, app)));
            // Capture that installs nothing records no columns of its own (OData reads the rows).
            let installs = log || apps.connector(app).capture_way().installs();
            let problem = match found {
                Ok(Some(columns)) if columns == spec.columns || !installs => continue,
                Ok(Some(columns)) => format!("{what} on {} records {columns:?}, the map needs {:?}", spec.table, spec.columns),
                Ok(None) => format!("map {} is {} but {app}.{} has no {what}", m.name, state.state.as_str(), spec.table),
                Err(e) => format!("cannot read the capture state of {}: {e}", spec.table),
            };
            findings.push(crate::check::Finding {
                severity: crate::check::Severity::Error,
                cause: crate::check::Cause::Environment,
                map: Some(m.name.clone()),
                app: app.clone(),
                message: problem,
                hint: format!("install it again: `dualsync stop {}` then `dualsync start {}`", m.name, m.name),
            });
        }
    }
    Ok(findings)
}

/// `dualsync check`: how each server app's changes are captured, and what
/// stands in the way of the log (an error where `capture = "log"` asks for
/// it, a warning where `auto` falls back to triggers). SQLite keeps triggers.
pub fn capture_choices(config: &Config, apps: &Apps) -> (Vec<(String, capture::Choice)>, Vec<crate::check::Finding>) {
    use crate::check::{Cause, Finding, Severity};
    let mut choices = Choices::default();
    let (mut out, mut findings) = (Vec::new(), Vec::new());
    // SQLite keeps triggers; an OData service is polled (its `changed` column).
    for app in config.apps.iter().filter(|a| !matches!(a.url.kind(), "sqlite" | "odata")) {
        let finding = |severity, message: String, hint: &str| Finding {
            severity,
            cause: Cause::Config,
            map: None,
            app: app.name.clone(),
            message,
            hint: hint.to_string(),
        };
        match choices.of(config, apps, &app.name) {
            Ok(choice) => {
                if !choice.log && app.capture == dualsync_model::config::Capture::Auto {
                    findings.push(finding(
                        Severity::Warning,
                        format!("changes are captured by triggers, since log capture is not possible: {}", choice.why_not_log.join("; ")),
                        "fix that to capture from the log, or set capture = \"trigger\" to keep triggers",
                    ));
                }
                findings.extend(choice.advice.iter().map(|a| finding(Severity::Warning, a.clone(), "")));
                out.push((app.name.clone(), choice));
            }
            Err(EngineError::Usage(message)) => findings.push(finding(Severity::Error, message, "")),
            Err(_) => {} // an app that cannot be reached: preflight reports it
        }
    }
    (out, findings)
}

pub fn pause_map(config: &Config, map: &str) -> Result<(), EngineError> {
    set_state(config, map, MapState::Paused)
}

pub fn resume_map(config: &Config, map: &str) -> Result<(), EngineError> {
    set_state(config, map, MapState::Running)
}

fn set_state(config: &Config, map: &str, state: MapState) -> Result<(), EngineError> {
    map_of(config, map)?;
    let store = StateStore::open(&config.state)?;
    if store.map_state(map)?.is_none() {
        return Err(EngineError::Usage(format!("map {map} is stopped; start it with `dualsync start {map}`")));
    }
    store.set_map_state(map, state, None)?;
    Ok(())
}

/// Removes capture from the map's tables (its log capture, and its triggers
/// unless another started map reads the table through them) and forgets
/// the map's state and cursors. Its merge bases stay.
pub fn stop_map(config: &Config, apps: &Apps, map: &str) -> Result<(), EngineError> {
    let m = map_of(config, map)?;
    // This process's own log sessions of the map (a `serve`'s live loop) end first: a slot in use cannot be dropped.
    super::release_logs(config, apps, &[map.to_string()]);
    let store = StateStore::open(&config.state)?;
    for side in Side::BOTH {
        for log in [true, false] {
            capture::remove(config, &store, m, side, log, apps)?;
        }
    }
    store.clear_map_state(map)?;
    Ok(())
}

/// Settles a queued conflict: the named app's row (or its absence) wins whole.
pub fn resolve_conflict(config: &Config, apps: &Apps, id: i64, take_app: &str) -> Result<KeyOutcome, EngineError> {
    let store = StateStore::open(&config.state)?;
    let conflict =
        store.conflict(id)?.ok_or_else(|| EngineError::Usage(format!("there is no conflict {id}; list them with `dualsync conflicts`")))?;
    if conflict.status != "open" {
        return Err(EngineError::Usage(format!(
            "conflict {id} is already resolved ({})",
            conflict.conflict.resolution.unwrap_or_default()
        )));
    }
    let c = &conflict.conflict;
    let m = map_of(config, &c.map)?;
    let take = m.side_of_app(take_app).map(Side::of).ok_or_else(|| {
        EngineError::Usage(format!("map {} has apps {} and {}; --take names one of them", c.map, m.sides[0].app, m.sides[1].app))
    })?;
    let run_id = store.begin_run("resolve")?;
    let company = (!c.company.is_empty()).then(|| Value::Text(c.company.clone()));
    let outcome = reconcile_key(config, apps, &store, run_id, &c.map, company, key_from_text(&c.key), Some(take));
    let status = match &outcome {
        Ok(o) if o.ok() => dualsync_state::RunStatus::Ok,
        Ok(_) => dualsync_state::RunStatus::RowsFailed,
        Err(_) => dualsync_state::RunStatus::Failed,
    };
    store.finish_run(run_id, status, outcome.as_ref().err().map(|e| e.to_string()).as_deref())?;
    let outcome = outcome?;
    if outcome.ok() {
        store.resolve_conflict(id, &format!("took {take_app}"))?;
    }
    Ok(outcome)
}
