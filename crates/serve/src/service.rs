//! What every request handler shares: the config, the API's own state-store
//! connection and apps, the lock that keeps its actions between the live
//! loop's rounds, metrics, and the failed-login limiter.

use crate::api::ApiError;
use crate::auth::Limiter;
use crate::metrics::Metrics;
use dualsync_engine::Apps;
use dualsync_model::Config;
use dualsync_state::StateStore;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

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
    pub figures: MapFigures,
    pub jobs: crate::jobs::Jobs,
    pub history: crate::history::History,
}

/// Every map's figures (`engine::status`): counting a million errors takes
/// a while, so a reading is kept and served for `FRESH_FOR`; an older one is
/// still served while one new reading (never two) is made in the background.
/// An action through the service drops it, so that its effect shows at once.
pub struct MapFigures {
    /// A connection of its own: a reading must not hold up the token checks on `Service::store`.
    store: StateStore,
    last: Mutex<Option<(Instant, Arc<Vec<Value>>)>>,
    reading: AtomicBool,
}

const FRESH_FOR: Duration = Duration::from_secs(2);

impl MapFigures {
    pub fn new(store: StateStore) -> MapFigures {
        MapFigures { store, last: Mutex::default(), reading: AtomicBool::new(false) }
    }

    fn last(&self) -> MutexGuard<'_, Option<(Instant, Arc<Vec<Value>>)>> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn forget(&self) {
        *self.last() = None;
    }
}

impl Service {
    /// Waits for the live loop's round in flight, then keeps it out while held.
    pub fn between_rounds(&self) -> MutexGuard<'_, ()> {
        self.exclusive.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads every map's figures now and keeps them.
    pub fn read_figures(&self) -> Result<Arc<Vec<Value>>, ApiError> {
        let rows = dualsync_engine::status::map_statuses(&self.config, &self.figures.store, Some(&self.apps));
        self.figures.reading.store(false, SeqCst);
        let rows = Arc::new(rows?);
        *self.figures.last() = Some((Instant::now(), rows.clone()));
        Ok(rows)
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

/// Every map's figures: the last reading, read again in the background once it is older than `FRESH_FOR`.
pub async fn map_figures(service: &Arc<Service>) -> Result<Arc<Vec<Value>>, ApiError> {
    let last = service.figures.last().clone();
    match last {
        Some((at, rows)) => {
            if at.elapsed() >= FRESH_FOR && !service.figures.reading.swap(true, SeqCst) {
                let again = service.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = again.read_figures() {
                        tracing::warn!(error = %e.message, "the maps' figures could not be read");
                    }
                });
            }
            Ok(rows)
        }
        None => blocking(service, |s| s.read_figures()).await,
    }
}
