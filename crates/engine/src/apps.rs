//! The configured apps, opened: one connector per app, passwords read from
//! the environment or a file at start and never logged, and a small pool of
//! idle connections per app so that partitions reuse sessions instead of
//! opening new ones (a TLS handshake per company adds up).

use crate::EngineError;
use dualsync_connectors::{Connection, Connector, Fence};
use dualsync_model::config::AppConfig;
use dualsync_model::Config;
use dualsync_state::{StoreClaim, Token};
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

/// Idle connections kept per app; more than this are closed when returned.
const MAX_IDLE: usize = 16;

type Idle = Arc<Mutex<Vec<Box<dyn Connection>>>>;

#[derive(Clone)]
pub struct Apps {
    connectors: HashMap<String, Arc<dyn Connector>>,
    idle: HashMap<String, Idle>,
    /// Set while this process holds a PostgreSQL state store: every
    /// connection handed out checks it in each write transaction.
    fence: Arc<Mutex<Option<Fence>>>,
}

/// A connection that goes back to its app's pool when dropped, if it still works.
pub struct Pooled {
    conn: Option<Box<dyn Connection>>,
    idle: Idle,
}

impl Pooled {
    pub fn as_mut(&mut self) -> &mut (dyn Connection + 'static) {
        self.conn.as_mut().expect("present until dropped").as_mut()
    }
}

impl Deref for Pooled {
    type Target = dyn Connection;
    fn deref(&self) -> &Self::Target {
        self.conn.as_ref().expect("present until dropped").as_ref()
    }
}

impl DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.as_mut()
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            if conn.is_healthy() {
                let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                if idle.len() < MAX_IDLE {
                    idle.push(conn);
                }
            }
        }
    }
}

impl Apps {
    pub fn open(config: &Config) -> Result<Apps, EngineError> {
        let mut connectors = HashMap::new();
        for app in &config.apps {
            let password = password_of(app)?;
            let c = dualsync_connectors::open(&app.url, password.as_deref()).map_err(|source| EngineError::App {
                app: app.name.clone(),
                location: app.url.to_string(),
                source,
            })?;
            connectors.insert(app.name.clone(), c);
        }
        let idle = connectors.keys().map(|k| (k.clone(), Idle::default())).collect();
        Ok(Apps { connectors, idle, fence: Arc::default() })
    }

    /// Fences this process's writes with the state store's lease epoch, if it
    /// has one: raised in each of these apps now, so that an earlier holder
    /// still writing is refused from this moment, and checked by every write
    /// transaction of every connection from now on (`Connection::set_fence`).
    /// The units the claim took over from dead workers are fenced in them too.
    pub fn fence_writes<'a>(&self, claim: &StoreClaim, apps: impl IntoIterator<Item = &'a str>) -> Result<(), EngineError> {
        let apps: Vec<&str> = apps.into_iter().collect();
        for stale in claim.taken_over() {
            let raiser = self.fenced(fence_of(stale));
            for app in &apps {
                raiser.connect(app)?;
            }
        }
        let Some(token) = claim.token() else { return Ok(()) };
        *self.fence.lock().unwrap_or_else(|p| p.into_inner()) = Some(fence_of(&token));
        for app in apps {
            // `connect` raises the fence on the connection it hands out.
            self.connect(app)?;
        }
        Ok(())
    }

    /// These apps, with every write fenced by `fence` (a unit of work's token)
    /// instead: the same connectors and pools.
    pub fn fenced(&self, fence: Fence) -> Apps {
        Apps { connectors: self.connectors.clone(), idle: self.idle.clone(), fence: Arc::new(Mutex::new(Some(fence))) }
    }

    /// Readies each of these apps for a run that reads and writes it at once
    /// (`Connector::prepare_for_writing`).
    pub fn prepare_for_writing<'a>(&self, apps: impl IntoIterator<Item = &'a str>) -> Result<(), EngineError> {
        for app in apps {
            self.connector(app).prepare_for_writing().map_err(in_app(self, app))?;
        }
        Ok(())
    }

    pub fn connector(&self, app: &str) -> &Arc<dyn Connector> {
        &self.connectors[app]
    }

    /// A connection to the app: an idle one from the pool, or a new one.
    pub fn connect(&self, app: &str) -> Result<Pooled, EngineError> {
        let idle = self.idle[app].clone();
        let reused = idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let in_app = |source| EngineError::App { app: app.to_string(), location: self.connector(app).location(), source };
        let mut conn = match reused {
            Some(c) => c,
            None => self.connector(app).connect().map_err(in_app)?,
        };
        let fence = self.fence.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(fence) = fence {
            conn.set_fence(fence).map_err(in_app)?;
        }
        Ok(Pooled { conn: Some(conn), idle })
    }
}

/// The apps' fence of a state-store token.
pub fn fence_of(token: &Token) -> Fence {
    Fence { store: token.store.clone(), epoch: token.epoch }
}

/// Adds the app's name and location to a connector error.
pub fn in_app<'a>(apps: &'a Apps, app: &str) -> impl Fn(dualsync_connectors::ConnectorError) -> EngineError + 'a {
    let app = app.to_string();
    move |source| EngineError::App { location: apps.connector(&app).location(), app: app.clone(), source }
}

fn password_of(app: &AppConfig) -> Result<Option<String>, EngineError> {
    if let Some(var) = &app.password_env {
        return match std::env::var(var) {
            Ok(p) => Ok(Some(p)),
            // SQLite needs no password: a missing variable only matters for servers.
            Err(_) if app.url.kind() == "sqlite" => Ok(None),
            Err(_) => Err(EngineError::Usage(format!(
                "app {}: environment variable {var} ({}) is not set; export it before running dualsync",
                app.name, app.secret_key
            ))),
        };
    }
    if let Some(file) = &app.password_file {
        let text = std::fs::read_to_string(file).map_err(|e| {
            EngineError::Usage(format!("app {}: cannot read {} {}: {e}", app.name, app.secret_key.replace("_env", "_file"), file.display()))
        })?;
        return Ok(Some(text.lines().next().unwrap_or("").to_string()));
    }
    Ok(None)
}
