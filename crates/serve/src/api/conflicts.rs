//! `/api/v1/conflicts`: keys both apps changed, with each app's row and the
//! policy's decision; resolve one by taking an app's row whole.

use super::errors::outcome_json;
use super::{actor, audited, page_size, ApiError, Json, Path, Query};
use crate::auth::Actor;
use crate::service::{blocking, Service};
use axum::extract::State;
use axum::Extension;
use dualsync_state::ConflictRecord;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConflictFilter {
    map: Option<String>,
    /// open (the default) or all.
    status: Option<String>,
    /// Only conflicts numbered after this one: the `next_after` of the page before.
    after: Option<i64>,
    /// Conflicts per page (1 to 1000, 100 unless given).
    limit: Option<usize>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ConflictPage {
    /// id, map, company, key, columns (both changed; empty for a delete against an edit),
    /// rows (each app's row by app name; null where it was deleted), policy, resolution,
    /// status, detected_at, resolved_at.
    #[schema(value_type = Vec<Object>)]
    items: Vec<Value>,
    next_after: Option<i64>,
}

fn conflict_json(c: &ConflictRecord, apps: [&str; 2]) -> Value {
    let row = |v: &Option<String>| v.as_deref().map_or(Value::Null, |s| serde_json::from_str(s).unwrap_or_else(|_| s.into()));
    json!({
        "id": c.id, "map": c.conflict.map, "company": c.conflict.company,
        "key": serde_json::from_str::<Value>(&c.conflict.key).unwrap_or_else(|_| c.conflict.key.clone().into()),
        "columns": c.conflict.columns,
        "rows": { apps[0]: row(&c.conflict.values[0]), apps[1]: row(&c.conflict.values[1]) },
        "apps": apps,
        "policy": c.conflict.policy, "resolution": c.conflict.resolution,
        "status": c.status, "detected_at": c.detected_at, "resolved_at": c.resolved_at,
    })
}

/// The conflict queue, oldest first.
#[utoipa::path(get, path = "/api/v1/conflicts", params(ConflictFilter), responses(
    (status = 200, body = ConflictPage), (status = 400, body = super::ErrorBody)))]
pub async fn list(State(service): State<Arc<Service>>, Query(filter): Query<ConflictFilter>) -> Result<Json<ConflictPage>, ApiError> {
    let limit = page_size(filter.limit)?;
    let all = match filter.status.as_deref() {
        None | Some("open") => false,
        Some("all") => true,
        Some(other) => return Err(ApiError::bad_request(format!("status={other:?}: pick open or all"))),
    };
    blocking(&service, move |s| {
        let mut page = s.store.conflicts_page(filter.map.as_deref(), all, filter.after.unwrap_or(0), limit + 1)?;
        let more = page.len() > limit;
        page.truncate(limit);
        let items = page
            .iter()
            .map(|c| {
                let apps = s.config.map(&c.conflict.map).map_or(["app 0", "app 1"], |m| [m.app(0), m.app(1)]);
                conflict_json(c, apps)
            })
            .collect();
        Ok(Json(ConflictPage { items, next_after: if more { page.last().map(|c| c.id) } else { None } }))
    })
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// The app whose row (or absence) wins whole.
    take: String,
}

/// Settles an open conflict: the named app's row is written to the other app.
#[utoipa::path(post, path = "/api/v1/conflicts/{id}/resolve", params(("id" = i64, Path)), request_body = ResolveRequest, responses(
    (status = 200, body = Object), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody),
    (status = 400, body = super::ErrorBody)))]
pub async fn resolve(
    State(service): State<Arc<Service>>,
    who: Option<Extension<Actor>>,
    Path(id): Path<i64>,
    Json(request): Json<ResolveRequest>,
) -> Result<Json<Value>, ApiError> {
    audited(&service, actor(&who), "resolve", format!("conflict {id}, taking {}", request.take), move |s| {
        let Some(conflict) = s.store.conflict(id)? else { return Err(ApiError::not_found(format!("there is no conflict {id}"))) };
        if conflict.status != "open" {
            return Err(ApiError::conflict(format!("conflict {id} is already {}", conflict.status)));
        }
        let m = s.map_or_404(&conflict.conflict.map)?;
        if m.side_of_app(&request.take).is_none() {
            return Err(ApiError::bad_request(format!("take={:?}: map {} has apps {} and {}", request.take, m.name, m.app(0), m.app(1))));
        }
        let _between = s.between_rounds();
        let outcome = dualsync_engine::live::resolve_conflict(&s.config, &s.apps, id, &request.take)?;
        let summary =
            if outcome.ok() { format!("resolved: {}", outcome.actions.join(", ")) } else { "the write failed (in the error log)".into() };
        Ok((json!({ "id": id, "resolved": outcome.ok(), "outcome": outcome_json(&outcome) }), summary))
    })
    .await
    .map(Json)
}
