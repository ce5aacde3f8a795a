//! `/api/v1/activity`: who did what through the service, when, and with what result.

use super::{page_size, ApiError, Json, Query};
use crate::service::{blocking, Service};
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityFilter {
    /// Only what this token's holder did.
    actor: Option<String>,
    /// Only entries numbered below this one: the `next_before` of the page before.
    before: Option<i64>,
    /// Entries per page (1 to 1000, 100 unless given).
    limit: Option<usize>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ActivityEntry {
    id: i64,
    at: String,
    /// The name of the token used.
    actor: String,
    action: String,
    target: String,
    result: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ActivityPage {
    items: Vec<ActivityEntry>,
    next_before: Option<i64>,
}

/// The activity log, newest first.
#[utoipa::path(get, path = "/api/v1/activity", params(ActivityFilter), responses(
    (status = 200, body = ActivityPage), (status = 400, body = super::ErrorBody)))]
pub async fn list(State(service): State<Arc<Service>>, Query(filter): Query<ActivityFilter>) -> Result<Json<ActivityPage>, ApiError> {
    let limit = page_size(filter.limit)?;
    blocking(&service, move |s| {
        let mut entries = s.store.activity(filter.actor.as_deref(), filter.before, limit + 1)?;
        let more = entries.len() > limit;
        entries.truncate(limit);
        let next_before = if more { entries.last().map(|e| e.id) } else { None };
        let items = entries
            .into_iter()
            .map(|a| ActivityEntry { id: a.id, at: a.at, actor: a.actor, action: a.action, target: a.target, result: a.result })
            .collect();
        Ok(Json(ActivityPage { items, next_before }))
    })
    .await
}
