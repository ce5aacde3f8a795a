//! The REST API under `/api/v1`: every answer is JSON, every list a page,
//! every refusal a 4xx with `{"error": {"status", "message"}}`. The OpenAPI
//! document is made from the handlers' annotations (`/api/v1/openapi.json`).

mod activity;
mod conflicts;
mod errors;
mod export;
mod jobs;
mod maps;
mod runs;
mod tokens;

use crate::auth::Actor;
use crate::service::Service;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::FromRequest;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use serde::Serialize;
use std::sync::Arc;
use utoipa::OpenApi;

/// The API's routes (the token check is layered on by the caller).
pub fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/api/v1/maps", get(maps::list))
        .route("/api/v1/maps/{map}", get(maps::one))
        .route("/api/v1/maps/{map}/history", get(maps::history))
        .route("/api/v1/maps/{map}/pause", post(maps::pause))
        .route("/api/v1/maps/{map}/resume", post(maps::resume))
        .route("/api/v1/maps/{map}/start", post(jobs::start))
        .route("/api/v1/maps/{map}/stop", post(jobs::stop))
        .route("/api/v1/sync", post(jobs::sync))
        .route("/api/v1/plan", post(jobs::plan))
        .route("/api/v1/check", post(jobs::check))
        .route("/api/v1/jobs", get(jobs::list))
        .route("/api/v1/jobs/{id}", get(jobs::one))
        .route("/api/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/api/v1/errors", get(errors::list))
        .route("/api/v1/errors/export", get(export::errors))
        .route("/api/v1/errors/retry", post(errors::retry_matching))
        .route("/api/v1/errors/{id}/retry", post(errors::retry_one))
        .route("/api/v1/errors/{id}/skip", post(errors::skip))
        .route("/api/v1/conflicts", get(conflicts::list))
        .route("/api/v1/conflicts/{id}/resolve", post(conflicts::resolve))
        .route("/api/v1/activity", get(activity::list))
        .route("/api/v1/runs", get(runs::list))
        .route("/api/v1/runs/{id}", get(runs::one))
        .route("/api/v1/apps", get(runs::apps))
        .route("/api/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/api/v1/tokens/{name}", delete(tokens::revoke))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "dualsync",
        description = "The operators' API of dualsync serve: maps, jobs (start, sync, plan, check), runs, apps, the error log, conflicts, activity and tokens."
    ),
    paths(
        maps::list, maps::one, maps::history, maps::pause, maps::resume, jobs::start, jobs::stop, jobs::sync, jobs::plan, jobs::check,
        jobs::list, jobs::one, jobs::cancel,
        errors::list, export::errors, errors::retry_one, errors::retry_matching, errors::skip,
        conflicts::list, conflicts::resolve,
        activity::list, runs::list, runs::one, runs::apps,
        tokens::list, tokens::create, tokens::revoke,
    ),
    components(schemas(ErrorBody, ErrorDetail, crate::auth::Role)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    }
}

/// A refusal or failure, as JSON.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    retry_after: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// The HTTP status, again.
    status: u16,
    /// What went wrong, where, and what to do.
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), retry_after: None }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    pub fn conflict(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::CONFLICT, message)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    pub fn too_many(seconds: u64) -> ApiError {
        ApiError {
            retry_after: Some(seconds),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, format!("too many failed attempts from this address: try again in {seconds} s"))
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { status: self.status.as_u16(), message: self.message } };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<dualsync_state::StateError> for ApiError {
    fn from(e: dualsync_state::StateError) -> ApiError {
        match e {
            dualsync_state::StateError::Refused(m) => ApiError::conflict(m),
            e => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        }
    }
}

impl From<dualsync_engine::EngineError> for ApiError {
    fn from(e: dualsync_engine::EngineError) -> ApiError {
        match e {
            dualsync_engine::EngineError::State(e) => e.into(),
            e => ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()),
        }
    }
}

impl From<crate::auth::TokenError> for ApiError {
    fn from(e: crate::auth::TokenError) -> ApiError {
        match e {
            crate::auth::TokenError::BadName => ApiError::bad_request(e.to_string()),
            crate::auth::TokenError::State(e) => e.into(),
            e => ApiError::internal(e.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> ApiError {
        ApiError::new(e.status(), format!("the request body: {}", e.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> ApiError {
        ApiError::bad_request(format!("the query string: {}", e.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> ApiError {
        ApiError::bad_request(format!("the path: {}", e.body_text()))
    }
}

/// `axum::Json`, refusing with our JSON error body.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query`, refusing with our JSON error body.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// `axum::extract::Path`, refusing with our JSON error body.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// The most a page holds, and what it holds unless asked.
pub const MAX_PAGE: usize = 1000;
pub const DEFAULT_PAGE: usize = 100;

/// A page size from the query: 1 to `MAX_PAGE`.
pub fn page_size(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit.unwrap_or(DEFAULT_PAGE) {
        n @ 1..=MAX_PAGE => Ok(n),
        n => Err(ApiError::bad_request(format!("limit={n}: a page holds 1 to {MAX_PAGE} items"))),
    }
}

/// The actor of a request that passed the token check.
pub fn actor(actor: &Option<axum::Extension<Actor>>) -> String {
    actor.as_ref().map_or_else(|| "unknown".into(), |a| a.name.clone())
}

/// Runs an action, and writes it to the activity log with its actor and result.
pub async fn audited<T: Send + 'static>(
    service: &Arc<Service>,
    actor: String,
    action: &'static str,
    target: String,
    work: impl FnOnce(&Service) -> Result<(T, String), ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    crate::service::blocking(service, move |s| {
        let outcome = work(s);
        let result = match &outcome {
            Ok((_, summary)) => summary.clone(),
            Err(e) => format!("refused ({}): {}", e.status.as_u16(), e.message),
        };
        s.figures.forget();
        s.store.record_activity(&actor, action, &target, &result)?;
        tracing::info!(actor, action, target, result, "activity");
        outcome.map(|(value, _)| value)
    })
    .await
}
