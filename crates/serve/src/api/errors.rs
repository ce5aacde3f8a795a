//! `/api/v1/errors`: the error log, filtered and paged by id; retry one
//! error, retry every open error a filter selects, or skip one with a reason.

use super::{actor, audited, page_size, ApiError, Json, Path, Query};
use crate::auth::Actor;
use crate::service::{blocking, Service};
use axum::extract::State;
use axum::Extension;
use dualsync_engine::sync::{retry_errors, KeyOutcome};
use dualsync_state::ErrorQuery;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ErrorFilter {
    map: Option<String>,
    company: Option<String>,
    /// Rows read from or written into this app.
    app: Option<String>,
    /// The run that last hit the row.
    run: Option<i64>,
    column: Option<String>,
    /// open (the default) or all (resolved and skipped ones too).
    status: Option<String>,
    /// Only errors numbered after this one: the `next_after` of the page before.
    after: Option<i64>,
    /// Errors per page (1 to 1000, 100 unless given).
    pub limit: Option<usize>,
}

impl ErrorFilter {
    pub fn query(&self) -> Result<ErrorQuery, ApiError> {
        let include_resolved = match self.status.as_deref() {
            None | Some("open") => false,
            Some("all") => true,
            Some(other) => return Err(ApiError::bad_request(format!("status={other:?}: pick open or all"))),
        };
        Ok(ErrorQuery {
            map: self.map.clone(),
            run: self.run,
            include_resolved,
            company: self.company.clone(),
            app: self.app.clone(),
            column: self.column.clone(),
            after_id: self.after,
            ..Default::default()
        })
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorPage {
    /// id, run, map, company, source_app, target_app, key, column, value, message, attempts,
    /// status (open, resolved, skipped), first_seen, last_seen, note (why it was skipped).
    #[schema(value_type = Vec<Object>)]
    items: Vec<Value>,
    /// Pass as `after` for the next page; absent on the last.
    next_after: Option<i64>,
}

/// The error log, oldest first.
#[utoipa::path(get, path = "/api/v1/errors", params(ErrorFilter), responses(
    (status = 200, body = ErrorPage), (status = 400, body = super::ErrorBody)))]
pub async fn list(State(service): State<Arc<Service>>, Query(filter): Query<ErrorFilter>) -> Result<Json<ErrorPage>, ApiError> {
    let limit = page_size(filter.limit)?;
    let mut query = filter.query()?;
    // One more than the page tells whether another page follows.
    query.limit = Some(limit + 1);
    let mut errors = blocking(&service, move |s| Ok(s.store.errors(&query)?)).await?;
    let more = errors.len() > limit;
    errors.truncate(limit);
    let next_after = if more { errors.last().map(|e| e.id) } else { None };
    Ok(Json(ErrorPage { items: errors.iter().map(|e| e.to_json()).collect(), next_after }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RetryReport {
    /// The run the retry was recorded as.
    run: i64,
    synced: usize,
    still_failing: usize,
    /// Per row: map, company, key, ok, actions, errors.
    #[schema(value_type = Vec<Object>)]
    rows: Vec<Value>,
    /// More open errors matched than one call retries (10,000): call again.
    more: bool,
}

/// At most this many errors are retried by one call.
const RETRY_AT_ONCE: usize = 10_000;

/// Reads the failed row from its source app now and applies it.
#[utoipa::path(post, path = "/api/v1/errors/{id}/retry", params(("id" = i64, Path)), responses(
    (status = 200, body = RetryReport), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn retry_one(
    State(service): State<Arc<Service>>,
    who: Option<Extension<Actor>>,
    Path(id): Path<i64>,
) -> Result<Json<RetryReport>, ApiError> {
    audited(&service, actor(&who), "retry", format!("error {id}"), move |s| {
        let found = s.store.errors(&ErrorQuery { ids: vec![id], include_resolved: true, ..Default::default() })?;
        match found.first() {
            None => return Err(ApiError::not_found(format!("there is no error {id}"))),
            Some(e) if e.status != "open" => return Err(ApiError::conflict(format!("error {id} is {}: nothing to retry", e.status))),
            Some(_) => {}
        }
        retry(s, vec![id], false)
    })
    .await
    .map(Json)
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryFilter {
    map: Option<String>,
    company: Option<String>,
    app: Option<String>,
    run: Option<i64>,
    column: Option<String>,
}

/// Retries every open error the filter selects (an empty filter: all of them).
#[utoipa::path(post, path = "/api/v1/errors/retry", request_body = RetryFilter, responses(
    (status = 200, body = RetryReport), (status = 400, body = super::ErrorBody)))]
pub async fn retry_matching(
    State(service): State<Arc<Service>>,
    who: Option<Extension<Actor>>,
    Json(filter): Json<RetryFilter>,
) -> Result<Json<RetryReport>, ApiError> {
    let target = serde_json::to_string(&json!({
        "map": filter.map, "company": filter.company, "app": filter.app, "run": filter.run, "column": filter.column,
    }))
    .unwrap_or_default();
    audited(&service, actor(&who), "retry", format!("errors matching {target}"), move |s| {
        let query = ErrorQuery {
            map: filter.map,
            company: filter.company,
            app: filter.app,
            run: filter.run,
            column: filter.column,
            limit: Some(RETRY_AT_ONCE + 1),
            ..Default::default()
        };
        let mut ids: Vec<i64> = s.store.errors(&query)?.iter().map(|e| e.id).collect();
        let more = ids.len() > RETRY_AT_ONCE;
        ids.truncate(RETRY_AT_ONCE);
        if ids.is_empty() {
            return Ok((
                RetryReport { run: 0, synced: 0, still_failing: 0, rows: Vec::new(), more: false },
                "no open errors matched".into(),
            ));
        }
        retry(s, ids, more)
    })
    .await
    .map(Json)
}

/// Retries errors between the live loop's rounds.
fn retry(s: &Service, ids: Vec<i64>, more: bool) -> Result<(RetryReport, String), ApiError> {
    let _between = s.between_rounds();
    let (run, outcomes) = retry_errors(&s.config, &s.apps, &s.store, None, ids)?;
    let still_failing = outcomes.iter().filter(|o| !o.ok()).count();
    let synced = outcomes.len() - still_failing;
    let summary = format!("run {run}: {synced} synced, {still_failing} still failing");
    Ok((RetryReport { run, synced, still_failing, rows: outcomes.iter().map(outcome_json).collect(), more }, summary))
}

pub fn outcome_json(o: &KeyOutcome) -> Value {
    json!({
        "map": o.map, "company": o.company,
        "key": serde_json::from_str::<Value>(&o.key).unwrap_or_else(|_| o.key.clone().into()),
        "ok": o.ok(), "actions": o.actions,
        "errors": o.errors.iter().map(|e| json!({"target_app": e.target_app, "column": e.column, "value": e.value, "message": e.message})).collect::<Vec<_>>(),
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkipRequest {
    /// Why the row is left as it is (kept with the error).
    reason: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Skipped {
    id: i64,
    status: String,
    note: String,
}

/// Leaves a failed row as it is: the error is marked skipped, with the reason.
#[utoipa::path(post, path = "/api/v1/errors/{id}/skip", params(("id" = i64, Path)), request_body = SkipRequest, responses(
    (status = 200, body = Skipped), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn skip(
    State(service): State<Arc<Service>>,
    who: Option<Extension<Actor>>,
    Path(id): Path<i64>,
    Json(request): Json<SkipRequest>,
) -> Result<Json<Skipped>, ApiError> {
    let reason = request.reason.trim().to_string();
    if reason.is_empty() || reason.len() > 1000 {
        return Err(ApiError::bad_request("a skip needs a reason of 1 to 1000 characters"));
    }
    audited(&service, actor(&who), "skip", format!("error {id}"), move |s| {
        if !s.store.skip_error(id, &reason)? {
            let found = s.store.errors(&ErrorQuery { ids: vec![id], include_resolved: true, ..Default::default() })?;
            return Err(match found.first() {
                None => ApiError::not_found(format!("there is no error {id}")),
                Some(e) => ApiError::conflict(format!("error {id} is {}: only an open error can be skipped", e.status)),
            });
        }
        Ok((Skipped { id, status: "skipped".into(), note: reason.clone() }, format!("skipped: {reason}")))
    })
    .await
    .map(Json)
}
