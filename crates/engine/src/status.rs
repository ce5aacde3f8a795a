//! What `dualsync status` and the service's `/api/v1/maps` report of each
//! map: one query code, so the two never disagree.

use crate::{live, Apps, EngineError};
use dualsync_model::config::MapConfig;
use dualsync_model::Config;
use dualsync_state::{Counts, StateStore};
use serde_json::{json, Value};

/// Per map of the config, in its order: apps and tables, live state (and why
/// paused), lag and capture per app (when `apps` is given and the map is
/// started), open conflicts, the last run over its companies, keys synced,
/// and errors (open; seen in the last hour and day).
pub fn map_statuses(config: &Config, store: &StateStore, apps: Option<&Apps>) -> Result<Vec<Value>, EngineError> {
    statuses_of(config, store, apps, None)
}

/// The same for one map of the config (None if it has none of that name).
pub fn map_status(config: &Config, store: &StateStore, apps: Option<&Apps>, map: &str) -> Result<Option<Value>, EngineError> {
    Ok(statuses_of(config, store, apps, Some(map))?.pop())
}

fn statuses_of(config: &Config, store: &StateStore, apps: Option<&Apps>, only: Option<&str>) -> Result<Vec<Value>, EngineError> {
    let partitions = store.last_partitions()?;
    let states = store.map_states()?;
    let mut rows = Vec::new();
    for m in config.maps.iter().filter(|m| only.is_none_or(|name| m.name == name)) {
        let live = states.iter().find(|s| s.map == m.name);
        let (lag, capture) = match (live, apps) {
            (Some(_), Some(apps)) => (lag_of(apps, store, m), capture_of(apps, store, m)),
            _ => (None, Vec::new()),
        };
        let mine: Vec<_> = partitions.iter().filter(|p| p.map == m.name).collect();
        let mut counts = Counts::default();
        mine.iter().for_each(|p| counts.add(&p.counts));
        let last = mine.iter().map(|p| p.ended_at.clone().unwrap_or_else(|| p.started_at.clone())).max();
        let stopped = mine.iter().filter(|p| p.status == "failed" || p.status == "running").count();
        rows.push(json!({
            "map": m.name,
            "apps": [m.app(0), m.app(1)],
            "tables": [m.sides[0].table, m.sides[1].table],
            "threading": format!("{:?}", m.threading).to_lowercase(),
            "state": live.map_or("stopped", |s| s.state.as_str()),
            "paused_because": live.and_then(|s| s.reason.clone()),
            "lag": lag,
            "capture": capture,
            "open_conflicts": store.open_conflict_count(&m.name)?,
            "last_run": mine.first().map(|p| p.run_id),
            "last_run_at": last,
            "companies": mine.len(),
            "companies_stopped": stopped,
            "keys_synced": store.key_count(&m.name)?,
            "written": counts.written(),
            "open_errors": store.open_error_count(&m.name)?,
            "errors_last_hour": store.errors_since(&m.name, 60)?,
            "errors_last_day": store.errors_since(&m.name, 24 * 60)?,
        }));
    }
    Ok(rows)
}

/// Captured changes each app holds beyond the map's cursor; None when an app cannot be asked.
fn lag_of(apps: &Apps, store: &StateStore, m: &MapConfig) -> Option<[u64; 2]> {
    let cursors = store.cursors(&m.name).ok()?;
    let mut lag = [0; 2];
    for (s, side) in m.sides.iter().enumerate() {
        let cursor = dualsync_connectors::Cursor(cursors.get(&side.app)?.clone());
        lag[s] = apps.connect(&side.app).ok()?.pending_changes(&side.table, &cursor).ok()?;
    }
    Some(lag)
}

/// Per app of a started map: how its changes are captured and, for the log,
/// how much WAL its slot keeps on the server (`lost` there means the slot broke).
fn capture_of(apps: &Apps, store: &StateStore, m: &MapConfig) -> Vec<Value> {
    let Ok(cursors) = store.cursors(&m.name) else { return Vec::new() };
    let mut out = Vec::new();
    for side in &m.sides {
        if !cursors.contains_key(&side.app) {
            continue;
        }
        if !live::side_reads_log(&cursors, &side.app) {
            out.push(json!({ "app": side.app, "capture": apps.connector(&side.app).capture_way().name() }));
            continue;
        }
        let retained = apps.connect(&side.app).ok().and_then(|mut c| c.log_retained(&side.table, &m.name).ok().flatten());
        out.push(json!({
            "app": side.app, "capture": "log",
            "retained_bytes": retained.as_ref().map(|r| r.0), "wal_status": retained.map(|r| r.1),
        }));
    }
    out
}
