//! `dualsync serve`: the live loop of `dualsync run` and, in the same
//! process, the operators' HTTP service.
//!
//! ```text
//!  live loop thread ── run_live ──▶ apps          (LiveObserver → metrics, logs)
//!        ▲ exclusive lock: API actions run between its rounds
//!  tokio runtime ── axum ── /healthz /readyz              (open)
//!                        ├─ /api/v1/openapi.json           (open)
//!                        └─ token check ─▶ /api/v1/…, /metrics
//!                                 (auth.rs)     (api/)     (metrics.rs)
//! ```
//!
//! Handlers do their store and app work on blocking threads
//! (`service::blocking`); each change goes to the activity log with its actor.

mod api;
pub mod auth;
mod dashboard;
mod health;
mod history;
mod jobs;
mod metrics;
mod service;
pub mod tls;

pub use api::ApiDoc;

use axum::extract::{Request, State};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use dualsync_engine::live::{run_live, LiveOptions};
use dualsync_engine::{Apps, EngineError};
use dualsync_model::Config;
use dualsync_state::{StateError, StateStore};
use service::Service;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Listen beyond loopback without TLS (behind a proxy that terminates it).
    pub insecure_listen: bool,
    /// Serve HTTPS with this certificate and key.
    pub tls: Option<tls::TlsFiles>,
    /// The live loop's poll interval and batch (as `dualsync run`).
    pub poll: Duration,
    pub batch: usize,
    /// Unknown tokens one client address may present per minute before it is held back.
    pub auth_failures_per_minute: u32,
    /// How often each map's backlog and throughput are sampled for its chart.
    pub history_every: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "--listen {0} is not a loopback address: tokens would cross the network in clear text. Give --tls-cert and \
         --tls-key, or pass --insecure-listen if a proxy in front terminates TLS"
    )]
    NeedsTls(SocketAddr),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {listen}: {source} (is another process on that port? pick another with --listen)")]
    Bind { listen: SocketAddr, source: std::io::Error },
    #[error("the HTTP service stopped: {0}")]
    Http(std::io::Error),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    State(#[from] StateError),
}

/// Runs until `stop` is set (SIGTERM, SIGINT) or the live loop fails: the
/// batch in flight finishes, requests in flight are answered, then it returns.
/// `listening` is told the address once it listens (port 0 picks a free one).
pub fn serve(
    config: Config,
    options: &ServeOptions,
    stop: &'static AtomicBool,
    listening: impl FnOnce(SocketAddr, &str),
) -> Result<(), ServeError> {
    if !options.listen.ip().is_loopback() && !options.insecure_listen && options.tls.is_none() {
        return Err(ServeError::NeedsTls(options.listen));
    }
    let acceptor = options.tls.as_ref().map(tls::acceptor).transpose()?;
    // Held for the whole service: the live loop and the API's actions nest in it.
    let claim = StateStore::join(&config.state, "serve")?;
    let live_apps = Apps::open(&config)?;
    // The same connectors: an action that ends a map's log session (stop) ends the live loop's.
    let api_apps = live_apps.clone();
    dualsync_engine::link::verify(&config, &api_apps, config.apps.iter().map(|a| a.name.as_str()))?;
    api_apps.fence_writes(&claim, config.apps.iter().map(|a| a.name.as_str()))?;
    let exclusive = Arc::new(Mutex::new(()));
    let figures_store = StateStore::open(&config.state)?;
    let service = Arc::new(Service {
        store: StateStore::open(&config.state)?,
        config,
        apps: api_apps,
        exclusive: exclusive.clone(),
        metrics: Default::default(),
        limiter: auth::Limiter::new(options.auth_failures_per_minute),
        https: acceptor.is_some(),
        figures: service::MapFigures::new(figures_store),
        jobs: Default::default(),
        history: Default::default(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(ServeError::Http)?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(options.listen))
        .map_err(|source| ServeError::Bind { listen: options.listen, source })?;
    let listen = listener.local_addr().map_err(ServeError::Http)?;
    // The maps' figures are read once before the first request asks for them.
    let warm = service.clone();
    runtime.spawn_blocking(move || warm.read_figures().map(|_| ()).unwrap_or_else(|e| tracing::warn!(error = %e.message, "maps' figures")));
    runtime.spawn(sample_history(service.clone(), options.history_every));
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    tracing::info!(%listen, "serving: the API at {scheme}://{listen}/api/v1, metrics at /metrics");
    listening(listen, scheme);
    let live_options = LiveOptions { poll: options.poll, batch: options.batch, exclusive: Some(exclusive), ..Default::default() };
    let (http, live) = std::thread::scope(|scope| {
        let service_ref = &service;
        let live = scope.spawn(move || {
            let observer = metrics::Observer { metrics: &service_ref.metrics, config: &service_ref.config };
            let result = run_live(&service_ref.config, &live_apps, &live_options, stop, &observer);
            if let Err(e) = &result {
                tracing::error!(error = %e, "the live loop stopped; the service stops with it");
            }
            // The service ends with its live loop, whatever ended it.
            stop.store(true, SeqCst);
            result
        });
        let app = router(service.clone());
        let http = runtime.block_on(async {
            match acceptor {
                Some(acceptor) => tls::serve(listener, acceptor, app, stop).await,
                None => {
                    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(until(stop)).await
                }
            }
        });
        stop.store(true, SeqCst);
        // Jobs stop as a sync stops on SIGTERM: the companies under way finish.
        service.jobs.cancel_all_and_wait();
        (http, live.join())
    });
    drop(claim);
    match live {
        Ok(Ok(report)) => tracing::info!(run = report.run_id, "live loop finished"),
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => return Err(ServeError::Http(std::io::Error::other("the live loop panicked"))),
    }
    http.map_err(ServeError::Http)
}

/// Every `every`: each map's backlog and applied count, for its chart.
async fn sample_history(service: Arc<Service>, every: Duration) {
    let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
    // A busy runtime delays the samples rather than bunching the missed ones.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Ok(rows) = service::map_figures(&service).await else { continue };
        for r in rows.iter() {
            let map = r["map"].as_str().unwrap_or("");
            let backlog = r["lag"].as_array().map(|l| [l[0].as_u64().unwrap_or(0), l[1].as_u64().unwrap_or(0)]);
            service.history.record(map, backlog, service.metrics.applied_total(map));
        }
    }
}

pub(crate) async fn until(stop: &'static AtomicBool) {
    while !stop.load(SeqCst) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tracing::info!("stopping: answering requests in flight, finishing the batch in flight");
}

fn router(service: Arc<Service>) -> Router {
    let guarded = api::routes().route("/metrics", get(scrape)).route_layer(from_fn_with_state(service.clone(), auth::require_token));
    Router::new()
        .merge(dashboard::routes(service.clone()))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/api/v1/openapi.json", get(openapi))
        .merge(guarded)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(service.clone(), log_requests))
        .with_state(service)
}

async fn openapi() -> impl IntoResponse {
    use utoipa::OpenApi;
    axum::Json(ApiDoc::openapi())
}

async fn scrape(State(service): State<Arc<Service>>) -> Result<Response, api::ApiError> {
    let figures = service::map_figures(&service).await;
    let text = service.metrics.render(figures.as_deref().map(Vec::as_slice));
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response())
}

async fn not_found(request: Request) -> api::ApiError {
    api::ApiError::not_found(format!("nothing at {}: the API is under /api/v1 (see /api/v1/openapi.json)", request.uri().path()))
}

async fn method_not_allowed(request: Request) -> api::ApiError {
    let mut e = api::ApiError::bad_request(format!("{} is not allowed on {}", request.method(), request.uri().path()));
    e.status = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    e
}

/// A log line per request (method, path without its query, status, time),
/// the request counter, and headers that keep answers out of caches and sniffers.
async fn log_requests(State(service): State<Arc<Service>>, request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let started = Instant::now();
    let mut response = next.run(request).await;
    let status = response.status().as_u16();
    service.metrics.answered(method.as_str(), status);
    let headers = response.headers_mut();
    headers.insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    headers.insert(axum::http::header::X_CONTENT_TYPE_OPTIONS, axum::http::HeaderValue::from_static("nosniff"));
    tracing::info!(%method, path, status, ms = started.elapsed().as_secs_f64() * 1000.0, "request");
    response
}

/// Logs to standard error: human-readable lines, or JSON lines for log shippers.
/// `RUST_LOG` filters them (info unless set).
pub fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
