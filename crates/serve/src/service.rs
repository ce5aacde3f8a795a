//! What every request handler shares: the config, the API's own state-store
//! connection and apps, the lock that keeps its actions between the live
//! loop's rounds, metrics, and the failed-login limiter.

use crate::api::ApiError;
use crate::auth::Limiter;
use crate::metrics::Metrics;
use dualsync_engine::Apps;
use dualsync_model::Config;
use dualsync_state::StateStore;
use std::sync::{Arc, Mutex, MutexGuard};

pub struct Service {
    pub config: Config,
    pub store: StateStore,
    pub apps: Apps,
    /// Held by the live loop while it applies a map's round (`LiveOptions::exclusive`).
    pub exclusive: Arc<Mutex<()>>,
    pub metrics: Metrics,
    pub limiter: Limiter,
    /// Served over TLS (the dashboard's cookie is then `Secure`).
    pub https: bool,
}

impl Service {
    /// Waits for the live loop's round in flight, then keeps it out while held.
    pub fn between_rounds(&self) -> MutexGuard<'_, ()> {
        self.exclusive.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn map_or_404(&self, map: &str) -> Result<&dualsync_model::config::MapConfig, ApiError> {
        self.config.map(map).ok_or_else(|| {
            ApiError::not_found(format!(
                "no map {map:?} in the config; the maps are: {}",
                self.config.maps.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })
    }
}

/// Runs blocking work (the state store, the apps) off the async threads.
pub async fn blocking<T: Send + 'static>(
    service: &Arc<Service>,
    work: impl FnOnce(&Service) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let service = service.clone();
    tokio::task::spawn_blocking(move || work(&service)).await.map_err(|e| ApiError::internal(format!("a request's work stopped: {e}")))?
}
