//! The configured apps, opened: one connector per app, passwords read from
//! the environment or a file at start and never logged.

use crate::EngineError;
use dualsync_connectors::{Connection, Connector};
use dualsync_model::config::AppConfig;
use dualsync_model::Config;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone)]
pub struct Apps {
    connectors: HashMap<String, Arc<dyn Connector>>,
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
        Ok(Apps { connectors })
    }

    pub fn connector(&self, app: &str) -> &Arc<dyn Connector> {
        &self.connectors[app]
    }

    pub fn connect(&self, app: &str) -> Result<Box<dyn Connection>, EngineError> {
        let c = self.connector(app);
        c.connect().map_err(|source| EngineError::App { app: app.to_string(), location: c.location(), source })
    }
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
                "app {}: environment variable {var} (password_env) is not set; export it before running dualsync",
                app.name
            ))),
        };
    }
    if let Some(file) = &app.password_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| EngineError::Usage(format!("app {}: cannot read password_file {}: {e}", app.name, file.display())))?;
        return Ok(Some(text.lines().next().unwrap_or("").to_string()));
    }
    Ok(None)
}
