//! `/healthz` (the process answers) and `/readyz` (the state store and every
//! app answer). Open to all: they name what failed, never where it lives.

use crate::service::Service;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;
use std::sync::Arc;

pub async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "up" }))
}

pub async fn readyz(State(service): State<Arc<Service>>) -> impl IntoResponse {
    let checks = crate::service::blocking(&service, |s| {
        let mut checks = vec![("state store".to_string(), s.store.map_states().is_ok())];
        for app in &s.config.apps {
            checks.push((format!("app {}", app.name), s.apps.connect(&app.name).is_ok()));
        }
        Ok(checks)
    })
    .await
    .unwrap_or_default();
    let ready = !checks.is_empty() && checks.iter().all(|(_, ok)| *ok);
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let checks: Vec<_> = checks.iter().map(|(what, ok)| json!({ "check": what, "ok": ok })).collect();
    (status, axum::Json(json!({ "ready": ready, "checks": checks })))
}
