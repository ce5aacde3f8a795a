//! `/api/v1/jobs` and the actions that start one: a map's start (capture,
//! then its initial sync) and a sync of maps; progress while they run
//! (rows, rows/s), and cancel. A map's stop is quick: done at once.

use super::{actor, audited, ApiError, Json, Path};
use crate::auth::Actor;
use crate::jobs::Job;
use crate::service::Service;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Extension;
use dualsync_engine::sync::{run_sync, sync_modes, SyncOptions};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

/// Jobs of this process, newest first.
#[utoipa::path(get, path = "/api/v1/jobs", responses((status = 200, body = Vec<Object>,
    description = "id, kind (start, sync), target, actor, status (running, cancelling, done, failed, cancelled), started_at, ended_at, rows, seconds, rows_per_second, partitions (of the maps begun so far), partitions_done, eta_seconds (from the time per finished partition; null before the first ends), summary")))]
pub async fn list(State(service): State<Arc<Service>>) -> Json<Vec<Value>> {
    Json(service.jobs.all().iter().map(|j| j.json()).collect())
}

/// One job, with its progress, and the report of a plan or a check.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", params(("id" = i64, Path)), responses(
    (status = 200, body = Object), (status = 404, body = super::ErrorBody)))]
pub async fn one(State(service): State<Arc<Service>>, Path(id): Path<i64>) -> Result<Json<Value>, ApiError> {
    Ok(Json(job_or_404(&service, id)?.json_with_report()))
}

fn job_or_404(service: &Service, id: i64) -> Result<Arc<Job>, ApiError> {
    service.jobs.get(id).ok_or_else(|| ApiError::not_found(format!("there is no job {id} in this process (jobs are kept while it runs)")))
}

/// Asks a running job to stop: the companies under way finish, no other starts.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", params(("id" = i64, Path)), responses(
    (status = 200, body = Object), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn cancel(
    State(service): State<Arc<Service>>,
    who: Option<Extension<Actor>>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    audited(&service, actor(&who), "cancel", format!("job {id}"), move |s| {
        let job = job_or_404(s, id)?;
        if !job.running() {
            return Err(ApiError::conflict(format!("job {id} has ended: nothing to cancel")));
        }
        if ["plan", "check"].contains(&job.kind) {
            return Err(ApiError::conflict(format!("job {id} is a {}: it writes nothing, and runs to its end", job.kind)));
        }
        job.cancel.store(true, SeqCst);
        Ok((job.json(), "cancelling".into()))
    })
    .await
    .map(Json)
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// Install capture and set the map running without an initial sync (both apps already hold the same rows).
    #[serde(default)]
    skip_initial: bool,
}

/// Starts a map: capture on in both apps, its initial sync (a job), then running.
#[utoipa::path(post, path = "/api/v1/maps/{map}/start", params(("map" = String, Path)), request_body = StartRequest, responses(
    (status = 202, body = Object), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn start(
    State(service): State<Arc<Service>>,
    who: Option<Extension<Actor>>,
    Path(map): Path<String>,
    Json(request): Json<StartRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = actor(&who);
    let background = service.clone();
    audited(&service, who.clone(), "start", format!("map {map}"), move |s| {
        s.map_or_404(&map)?;
        if s.store.map_state(&map)?.is_some() {
            return Err(ApiError::conflict(format!("map {map} is already started; pause, resume or stop it")));
        }
        if s.jobs.all().iter().any(|j| j.running() && j.target == format!("map {map}")) {
            return Err(ApiError::conflict(format!("map {map} is being started by a job already")));
        }
        let skip = request.skip_initial;
        let job = s.jobs.spawn("start", format!("map {map}"), who, move |job| {
            let s = &background;
            let outcome = dualsync_engine::live::start_map(&s.config, &s.apps, &map, skip, job, job.rows.clone(), Some(job.cancel));
            s.figures.forget();
            if let Ok(Some(initial)) = outcome.as_ref().map(|r| r.initial.as_ref()) {
                s.metrics.synced(initial, job.seconds());
            }
            match outcome {
                Ok(report) => {
                    let initial =
                        report.initial.map(|r| format!(", initial sync run {} ({})", r.run_id, r.status().as_str())).unwrap_or_default();
                    ("done", format!("map {map} is running{initial}"))
                }
                Err(dualsync_engine::EngineError::Stopped(why)) => ("cancelled", why),
                Err(e) => ("failed", e.to_string()),
            }
        });
        Ok(started(&job))
    })
    .await
    .map(|j| (StatusCode::ACCEPTED, Json(j)))
}

/// Stops a map: capture off in both apps, its state and cursors forgotten (its merge bases stay).
#[utoipa::path(post, path = "/api/v1/maps/{map}/stop", params(("map" = String, Path)), responses(
    (status = 200, body = Object), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn stop(
    State(service): State<Arc<Service>>,
    who: Option<Extension<Actor>>,
    Path(map): Path<String>,
) -> Result<Json<Value>, ApiError> {
    audited(&service, actor(&who), "stop", format!("map {map}"), move |s| {
        s.map_or_404(&map)?;
        if s.store.map_state(&map)?.is_none() {
            return Err(ApiError::conflict(format!("map {map} is not started")));
        }
        let _between = s.between_rounds();
        dualsync_engine::live::stop_map(&s.config, &s.apps, &map)?;
        Ok((json!({ "map": map, "state": "stopped" }), "stopped".into()))
    })
    .await
    .map(Json)
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// Only these maps (all when empty or absent).
    #[serde(default)]
    maps: Vec<String>,
    /// Diff started maps whole too (otherwise the live loop keeps them in step and only stopped maps are synced).
    #[serde(default)]
    full: bool,
}

/// Syncs maps as a job: stopped maps (and, with `full`, started ones) are diffed whole.
#[utoipa::path(post, path = "/api/v1/sync", request_body = SyncRequest, responses(
    (status = 202, body = Object), (status = 400, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn sync(
    State(service): State<Arc<Service>>,
    who: Option<Extension<Actor>>,
    Json(request): Json<SyncRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = actor(&who);
    let background = service.clone();
    let target = maps_target(&request.maps);
    audited(&service, who.clone(), "sync", target.clone(), move |s| {
        for m in &request.maps {
            s.map_or_404(m)?;
        }
        let modes = sync_modes(&s.config, &request.maps, request.full).map_err(|e| ApiError::bad_request(e.to_string()))?;
        if !modes.any_full {
            return Err(ApiError::conflict(
                "every selected map is started: the live loop keeps them in step; ask for full = true to diff them whole",
            ));
        }
        if s.jobs.all().iter().any(|j| j.running() && j.kind == "sync") {
            return Err(ApiError::conflict("a sync job is running already; wait for it or cancel it"));
        }
        let maps = modes.full;
        let diffs_started = request.full;
        let job = s.jobs.spawn("sync", target, who, move |job| {
            let s = &background;
            let options = SyncOptions { maps, stop: Some(job.cancel), ..Default::default() };
            // Diffing a started map whole must not meet the live loop on the same rows.
            let _between = diffs_started.then(|| s.between_rounds());
            let outcome = run_sync(&s.config, &s.apps, &options, job, job.rows.clone());
            s.figures.forget();
            if let Ok(report) = &outcome {
                s.metrics.synced(report, job.seconds());
            }
            match outcome {
                Ok(_) if job.cancel.load(SeqCst) => {
                    ("cancelled", "stopped: the companies under way finished, the others wait for the next sync".into())
                }
                Ok(report) => ("done", format!("run {}: {}", report.run_id, report.status().as_str())),
                Err(e) => ("failed", e.to_string()),
            }
        });
        Ok(started(&job))
    })
    .await
    .map(|j| (StatusCode::ACCEPTED, Json(j)))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    /// Only these maps (all when empty or absent).
    #[serde(default)]
    maps: Vec<String>,
}

/// The guidance matrix from the real data, as a job: per map and company, rows, inserts, updates, deletes, rows
/// that would fail, the approach, problems and the time a sync would take. Writes nothing. The report is in `GET jobs/{id}`.
#[utoipa::path(post, path = "/api/v1/plan", request_body = PlanRequest, responses(
    (status = 202, body = Object), (status = 404, body = super::ErrorBody)))]
pub async fn plan(
    State(service): State<Arc<Service>>,
    who: Option<Extension<Actor>>,
    Json(request): Json<PlanRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = actor(&who);
    let background = service.clone();
    let target = maps_target(&request.maps);
    audited(&service, who.clone(), "plan", target.clone(), move |s| {
        for m in &request.maps {
            s.map_or_404(m)?;
        }
        let job = s.jobs.spawn("plan", target, who, move |job| {
            match dualsync_engine::plan::plan(&background.config, &background.apps, &request.maps) {
                Ok(p) => {
                    let summary = format!(
                        "{} partitions, {} problems, a sync would take about {:.0} s",
                        p.partitions.len(),
                        p.problems.len(),
                        p.estimate_seconds
                    );
                    job.set_report(p.to_json());
                    ("done", summary)
                }
                Err(e) => ("failed", e.to_string()),
            }
        });
        Ok(started(&job))
    })
    .await
    .map(|j| (StatusCode::ACCEPTED, Json(j)))
}

/// `dualsync check` as a job: the config against the real apps, capture, and the state store. The report is in `GET jobs/{id}`.
#[utoipa::path(post, path = "/api/v1/check", responses((status = 202, body = Object)))]
pub async fn check(State(service): State<Arc<Service>>, who: Option<Extension<Actor>>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = actor(&who);
    let background = service.clone();
    audited(&service, who.clone(), "check", "every map".into(), move |s| {
        let job = s.jobs.spawn("check", "every map".into(), who, move |job| {
            match dualsync_engine::check::check(&background.config, &background.apps) {
                Ok(report) => {
                    let summary = format!(
                        "{} errors, {} warnings",
                        report.errors(),
                        report.findings.len() + report.state_error.is_some() as usize - report.errors()
                    );
                    job.set_report(report.to_json(&background.config));
                    ("done", summary)
                }
                Err(e) => ("failed", e.to_string()),
            }
        });
        Ok(started(&job))
    })
    .await
    .map(|j| (StatusCode::ACCEPTED, Json(j)))
}

/// "every map", or the maps named: what a sync or a plan is of.
fn maps_target(maps: &[String]) -> String {
    if maps.is_empty() {
        "every map".to_string()
    } else {
        format!("maps {}", maps.join(", "))
    }
}

/// What an action that starts a job answers (202 with the job), and what the activity log keeps of it.
fn started(job: &Job) -> (Value, String) {
    (job.json(), format!("job {}", job.id))
}
