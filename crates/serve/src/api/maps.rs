//! `/api/v1/maps`: each map's state, lag, capture, last run and errors (the
//! same rows as `dualsync status`), and pause/resume.

use super::{actor, audited, page_size, ApiError, Json, Path, Query};
use crate::auth::Actor;
use crate::service::{blocking, Service};
use axum::extract::State;
use axum::Extension;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MapFilter {
    /// Only maps in this state: running, paused or stopped.
    state: Option<String>,
    /// Maps per page (1 to 1000, 100 unless given).
    limit: Option<usize>,
    /// Maps to skip (the config's order).
    offset: Option<usize>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MapPage {
    /// One object per map: map, apps, tables, state, paused_because, lag (changes waiting per app),
    /// capture, open_conflicts, last_run, last_run_at, companies, keys_synced, open_errors,
    /// errors_last_hour, errors_last_day.
    #[schema(value_type = Vec<Object>)]
    items: Vec<Value>,
    /// Maps that match, over all pages.
    total: usize,
    /// The offset of the next page, if there is one.
    next_offset: Option<usize>,
}

/// The maps, with their state and figures (read at most every 2 s; an action through the service shows at once).
#[utoipa::path(get, path = "/api/v1/maps", params(MapFilter), responses(
    (status = 200, body = MapPage), (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody)))]
pub async fn list(State(service): State<Arc<Service>>, Query(filter): Query<MapFilter>) -> Result<Json<MapPage>, ApiError> {
    let limit = page_size(filter.limit)?;
    if let Some(state) = filter.state.as_deref().filter(|s| !["running", "paused", "stopped"].contains(s)) {
        return Err(ApiError::bad_request(format!("state={state:?}: a map's state is running, paused or stopped")));
    }
    let rows = crate::service::map_figures(&service).await?;
    let matching: Vec<&Value> = rows.iter().filter(|r| filter.state.as_deref().is_none_or(|st| r["state"].as_str() == Some(st))).collect();
    let total = matching.len();
    let offset = filter.offset.unwrap_or(0);
    let items: Vec<Value> = matching.into_iter().skip(offset).take(limit).cloned().collect();
    let next_offset = (offset + items.len() < total).then_some(offset + items.len());
    Ok(Json(MapPage { items, total, next_offset }))
}

/// One map, read now, with each company's state (`companies_state`: how its last run ended).
#[utoipa::path(get, path = "/api/v1/maps/{map}", params(("map" = String, Path)), responses(
    (status = 200, body = Object), (status = 404, body = super::ErrorBody)))]
pub async fn one(State(service): State<Arc<Service>>, Path(map): Path<String>) -> Result<Json<Value>, ApiError> {
    blocking(&service, move |s| {
        s.map_or_404(&map)?;
        let mut row = dualsync_engine::status::map_status(&s.config, &s.store, Some(&s.apps), &map)?.expect("a map of the config");
        // Each company's state: how its last run of the map ended.
        row["companies_state"] = s
            .store
            .last_partitions()?
            .iter()
            .filter(|p| p.map == map)
            .map(|p| serde_json::json!({ "company": p.company, "run": p.run_id, "status": p.status, "started_at": p.started_at, "ended_at": p.ended_at, "message": p.message }))
            .collect();
        Ok(Json(row))
    })
    .await
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MapStateChange {
    map: String,
    /// running or paused.
    state: String,
}

/// Stops applying a map's changes; they wait in the change tables.
#[utoipa::path(post, path = "/api/v1/maps/{map}/pause", params(("map" = String, Path)), responses(
    (status = 200, body = MapStateChange), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn pause(
    State(service): State<Arc<Service>>,
    who: Option<Extension<Actor>>,
    Path(map): Path<String>,
) -> Result<Json<MapStateChange>, ApiError> {
    set_state(service, actor(&who), map, "pause").await
}

/// Applies a paused map's changes again, what waited first.
#[utoipa::path(post, path = "/api/v1/maps/{map}/resume", params(("map" = String, Path)), responses(
    (status = 200, body = MapStateChange), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn resume(
    State(service): State<Arc<Service>>,
    who: Option<Extension<Actor>>,
    Path(map): Path<String>,
) -> Result<Json<MapStateChange>, ApiError> {
    set_state(service, actor(&who), map, "resume").await
}

async fn set_state(service: Arc<Service>, actor: String, map: String, action: &'static str) -> Result<Json<MapStateChange>, ApiError> {
    let target = format!("map {map}");
    audited(&service, actor, action, target, move |s| {
        s.map_or_404(&map)?;
        let done = if action == "pause" {
            dualsync_engine::live::pause_map(&s.config, &map)
        } else {
            dualsync_engine::live::resume_map(&s.config, &map)
        };
        done.map_err(|e| ApiError::conflict(e.to_string()))?;
        let state = if action == "pause" { "paused" } else { "running" };
        Ok((Json(MapStateChange { map, state: state.into() }), state.to_string()))
    })
    .await
}

/// A map's changes waiting per app and applied per second: the last 360 samples of this process (one every `--history-every-seconds`, 10).
#[utoipa::path(get, path = "/api/v1/maps/{map}/history", params(("map" = String, Path)), responses(
    (status = 200, body = Vec<Object>, description = "at (seconds since 1970), backlog (per app, or null), applied_per_second"),
    (status = 404, body = super::ErrorBody)))]
pub async fn history(State(service): State<Arc<Service>>, Path(map): Path<String>) -> Result<Json<Value>, ApiError> {
    service.map_or_404(&map)?;
    Ok(Json(service.history.json(&map)))
}
