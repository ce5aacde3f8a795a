//! `/api/v1/runs` (every run: syncs, live runs, retries, resolutions) with
//! the counts of each (map, company) partition, and `/api/v1/apps`: each
//! app reachable or not, its capture, and its user's privileges on the
//! mapped tables.

use super::{page_size, ApiError, Json, Path, Query};
use crate::service::{blocking, Service};
use axum::extract::State;
use dualsync_state::{PartitionRecord, RunRecord};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunFilter {
    /// sync, incremental, live, retry, resync, resolve, import, bootstrap-company.
    kind: Option<String>,
    /// Only runs numbered below this one: the `next_before` of the page before.
    before: Option<i64>,
    /// Runs per page (1 to 1000, 100 unless given).
    limit: Option<usize>,
}

fn run_json(r: &RunRecord) -> Value {
    json!({ "id": r.id, "kind": r.kind, "started_at": r.started_at, "ended_at": r.ended_at, "status": r.status, "message": r.message })
}

fn partition_json(p: &PartitionRecord) -> Value {
    let c = &p.counts;
    json!({
        "map": p.map, "company": p.company, "apps": p.apps, "status": p.status, "message": p.message,
        "started_at": p.started_at, "ended_at": p.ended_at,
        "read": c.read, "inserted": c.inserted, "updated": c.updated, "deleted": c.deleted, "failed": c.failed,
        "unchanged": c.unchanged, "conflicts": c.conflicts,
    })
}

/// Runs, newest first.
#[utoipa::path(get, path = "/api/v1/runs", params(RunFilter), responses((status = 200, body = Object,
    description = "items (id, kind, started_at, ended_at, status, message) and next_before"), (status = 400, body = super::ErrorBody)))]
pub async fn list(State(service): State<Arc<Service>>, Query(filter): Query<RunFilter>) -> Result<Json<Value>, ApiError> {
    let limit = page_size(filter.limit)?;
    blocking(&service, move |s| {
        let mut runs = s.store.runs(filter.kind.as_deref(), filter.before, limit + 1)?;
        let more = runs.len() > limit;
        runs.truncate(limit);
        let next_before = if more { runs.last().map(|r| r.id) } else { None };
        Ok(Json(json!({ "items": runs.iter().map(run_json).collect::<Vec<_>>(), "next_before": next_before })))
    })
    .await
}

/// One run, with the counts per (map, company) partition (per app: index 0 and 1 are the map's apps).
#[utoipa::path(get, path = "/api/v1/runs/{id}", params(("id" = i64, Path)), responses(
    (status = 200, body = Object), (status = 404, body = super::ErrorBody)))]
pub async fn one(State(service): State<Arc<Service>>, Path(id): Path<i64>) -> Result<Json<Value>, ApiError> {
    blocking(&service, move |s| {
        let run = s.store.runs(None, Some(id.saturating_add(1)), 1)?.into_iter().find(|r| r.id == id);
        let Some(run) = run else { return Err(ApiError::not_found(format!("there is no run {id}"))) };
        let mut body = run_json(&run);
        body["partitions"] = s.store.partitions_of_run(id)?.iter().map(partition_json).collect();
        Ok(Json(body))
    })
    .await
}

/// Each app: reachable, how its changes are captured (and why not from the log), and its user's privileges on the mapped tables.
#[utoipa::path(get, path = "/api/v1/apps", responses((status = 200, body = Vec<Object>)))]
pub async fn apps(State(service): State<Arc<Service>>) -> Result<Json<Vec<Value>>, ApiError> {
    blocking(&service, |s| {
        let (choices, findings) = dualsync_engine::live::capture_choices(&s.config, &s.apps);
        let out = s
            .config
            .apps
            .iter()
            .map(|app| {
                let reached = s.apps.connect(&app.name).map(drop).map_err(|e| e.to_string());
                let choice = choices.iter().find(|(name, _)| name == &app.name).map(|(_, c)| c);
                let tables: Vec<Value> = s
                    .config
                    .maps
                    .iter()
                    .filter_map(|m| m.side_of_app(&app.name).map(|side| (m, side)))
                    .map(|(m, side)| {
                        let table = &m.sides[side].table;
                        let privileges = reached.as_ref().ok().and_then(|_| s.apps.connect(&app.name).ok()?.privileges(table).ok());
                        json!({
                            "map": m.name, "table": table,
                            "privileges": privileges.map(|p| json!({
                                "user": p.user, "select": p.select, "insert": p.insert, "update": p.update,
                                "live": p.live.iter().map(|(what, has)| json!({ "privilege": what, "granted": has })).collect::<Vec<_>>(),
                                "certain": p.certain,
                            })),
                        })
                    })
                    .collect();
                json!({
                    "app": app.name,
                    "kind": app.url.kind(),
                    "location": app.url.to_string(),
                    "reachable": reached.is_ok(),
                    "error": reached.err(),
                    "capture": if choice.is_some_and(|c| c.log) { "log" } else { "trigger" },
                    "why_not_log": choice.map(|c| c.why_not_log.clone()).unwrap_or_default(),
                    "findings": findings.iter().filter(|f| f.app == app.name).map(|f| f.to_string()).collect::<Vec<_>>(),
                    "tables": tables,
                })
            })
            .collect();
        Ok(Json(out))
    })
    .await
}
