//! Checks of the config against the real apps, before anything is written:
//! connectivity, tables, columns, key order, and whether types fit.

use crate::shape::MapShape;
use crate::side::Side;
use crate::{Apps, EngineError};
use dualsync_connectors::CaptureWay;
use dualsync_model::config::Direction;
use dualsync_model::{Config, TableSchema};
use std::collections::HashMap;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The sync cannot run.
    Error,
    /// The sync runs, but some rows may fail or lose meaning.
    Warning,
}

/// Whether a finding is about the apps' environment (a server down, a table
/// missing: exit 1) or about the config not fitting the tables (exit 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    Environment,
    Config,
}

#[derive(Clone, Debug)]
pub struct Finding {
    pub severity: Severity,
    pub cause: Cause,
    pub map: Option<String>,
    pub app: String,
    pub message: String,
    pub hint: String,
}

impl Finding {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "severity": if self.is_error() { "error" } else { "warning" },
            "map": self.map, "app": self.app, "message": self.message, "hint": self.hint,
        })
    }
}

/// What `dualsync check` finds: the config against the real apps, each
/// app's capture, and the state store (opened when it exists). Writes nothing.
pub struct CheckReport {
    pub maps: Vec<String>,
    pub findings: Vec<Finding>,
    /// Per app: how its changes are captured (`trigger`, `log`, `poll`, `track`),
    /// where known (a server that could not be asked is missing).
    pub capture: Vec<(String, &'static str)>,
    pub state_exists: bool,
    /// Why an existing state store could not be opened.
    pub state_error: Option<String>,
    pub live_states: Vec<dualsync_state::MapStateRecord>,
    /// Per server app that answered: how its connection travels (TLS version, cipher, what was verified).
    pub transports: Vec<(String, String)>,
    /// The same for a server state store.
    pub state_transport: Option<String>,
}

impl CheckReport {
    pub fn errors(&self) -> usize {
        self.findings.iter().filter(|f| f.is_error()).count() + self.state_error.is_some() as usize
    }

    /// An app or the store cannot be reached (rather than the config not fitting).
    pub fn unreachable(&self) -> bool {
        self.findings.iter().any(|f| f.is_error() && f.cause == Cause::Environment) || self.state_error.is_some()
    }

    /// How an app's changes are captured: trigger, log, poll (an OData
    /// service) or track (a service's change tracking) (None: the server
    /// could not be asked).
    pub fn capture_of(&self, app: &str) -> Option<&'static str> {
        self.capture.iter().find(|(a, _)| a == app).map(|(_, way)| *way)
    }

    /// How the app's connection travels (None: a file, or the app did not answer).
    pub fn transport_of(&self, app: &str) -> Option<&str> {
        self.transports.iter().find(|(a, _)| a == app).map(|(_, t)| t.as_str())
    }

    pub fn to_json(&self, config: &Config) -> serde_json::Value {
        serde_json::json!({
            "config": config.file.display().to_string(),
            "apps": config.apps.iter().map(|a| serde_json::json!({
                "name": a.name, "url": a.url.to_string(), "capture": self.capture_of(&a.name),
                "transport": self.transport_of(&a.name),
            })).collect::<Vec<_>>(),
            "state_transport": self.state_transport,
            "maps": self.maps,
            "state_error": self.state_error,
            "findings": self.findings.iter().map(Finding::to_json).collect::<Vec<_>>(),
        })
    }
}

pub fn check(config: &Config, apps: &Apps) -> Result<CheckReport, EngineError> {
    let maps = crate::sync::selected_maps(config, &[])?;
    let mut findings = preflight(config, apps, &maps);
    let (capture, capture_findings) = crate::live::capture_choices(config, apps);
    findings.extend(capture_findings);
    let state_exists = dualsync_state::StateStore::exists(&config.state);
    let mut state_error = None;
    let mut live_states = Vec::new();
    let mut state_transport = None;
    if state_exists {
        match dualsync_state::StateStore::open(&config.state) {
            Ok(store) => {
                state_transport = store.transport()?;
                findings.extend(crate::link::findings(config, apps, Some(&store)));
                findings.extend(crate::live::capture_findings(config, apps, &store)?);
                live_states = store.map_states()?;
            }
            Err(e) => state_error = Some(e.to_string()),
        }
    } else {
        findings.extend(crate::link::findings(config, apps, None));
    }
    findings.extend(private_files(config));
    let mut capture: Vec<(String, &'static str)> =
        capture.into_iter().map(|(app, choice)| (app, if choice.log { "log" } else { CaptureWay::Triggers.name() })).collect();
    // Apps that cannot read a log: SQLite keeps triggers, a service says its way.
    for a in config.apps.iter().filter(|a| matches!(a.url.kind(), "sqlite" | "odata")) {
        capture.push((a.name.clone(), apps.connector(&a.name).capture_way().name()));
    }
    let (transports, exposed) = transports(config, apps);
    findings.extend(exposed);
    Ok(CheckReport { maps, findings, capture, state_exists, state_error, live_states, transports, state_transport })
}

/// Each server app's transport, as its server reports it on a new connection,
/// and a warning for each server beyond loopback that is not fully verified.
fn transports(config: &Config, apps: &Apps) -> (Vec<(String, String)>, Vec<Finding>) {
    let (mut transports, mut exposed) = (Vec::new(), Vec::new());
    for app in config.apps.iter().filter(|a| a.url.kind() != "sqlite") {
        let Ok(mut conn) = apps.connect(&app.name) else { continue }; // preflight reports it
        match conn.transport() {
            Ok(t) => {
                if let Some(e) = t.exposure() {
                    exposed.push(Finding {
                        severity: Severity::Warning,
                        cause: Cause::Config,
                        map: None,
                        app: app.name.clone(),
                        message: e.message.clone(),
                        hint: e.hint.clone(),
                    });
                }
                transports.push((app.name.clone(), t.to_string()));
            }
            Err(e) => transports.push((app.name.clone(), format!("unknown: {e}"))),
        }
    }
    (transports, exposed)
}

/// Files others may read that they should not: a SQLite state store (it holds
/// the values of refused rows) and password files, as ssh warns of keys.
fn private_files(config: &Config) -> Vec<Finding> {
    let mut files: Vec<(String, std::path::PathBuf, &str)> = Vec::new();
    if let dualsync_model::config::DatabaseUrl::Sqlite(path) = &config.state.url {
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            files.push((String::new(), name.into(), "the state store, which holds the values of refused rows,"));
        }
    }
    for app in &config.apps {
        if let Some(file) = &app.password_file {
            files.push((app.name.clone(), file.clone(), "the password_file"));
        }
    }
    files
        .into_iter()
        .filter_map(|(app, path, what)| {
            let mode = readable_by_others(&path)?;
            Some(Finding {
                severity: Severity::Warning,
                cause: Cause::Config,
                map: None,
                app,
                message: format!("{what} {} can be read by other users (mode {mode:o})", path.display()),
                hint: format!("chmod 600 {}", path.display()),
            })
        })
        .collect()
}

/// The file's permission bits, when its group or others may read or write it.
fn readable_by_others(path: &std::path::Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o066 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(m) = &self.map {
            write!(f, "map {m}, ")?;
        }
        write!(f, "app {}: {}", self.app, self.message)?;
        if !self.hint.is_empty() {
            write!(f, " — {}", self.hint)?;
        }
        Ok(())
    }
}

/// Opens every app once and checks the given maps against their tables.
pub fn preflight(config: &Config, apps: &Apps, maps: &[String]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut conns: HashMap<String, crate::Pooled> = HashMap::new();
    for app in &config.apps {
        match apps.connect(&app.name) {
            Ok(c) => {
                conns.insert(app.name.clone(), c);
            }
            Err(e) => findings.push(Finding {
                severity: Severity::Error,
                cause: Cause::Environment,
                map: None,
                app: app.name.clone(),
                message: match e {
                    crate::EngineError::App { source, .. } => source.to_string(),
                    other => other.to_string(),
                },
                hint: String::new(),
            }),
        }
    }
    let mut schemas: HashMap<(String, String), Option<TableSchema>> = HashMap::new();
    for name in maps {
        let shape = MapShape::new(config.map(name).expect("selected map exists"), config);
        let mut described: [Option<TableSchema>; 2] = [None, None];
        for side in Side::BOTH {
            let app = &shape.apps[side];
            let Some(conn) = conns.get_mut(app) else {
                continue;
            };
            let table = &shape.tables[side];
            let schema = schemas
                .entry((app.clone(), table.clone()))
                .or_insert_with(|| match conn.describe(table) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        findings.push(Finding {
                            severity: Severity::Error,
                            cause: Cause::Environment,
                            map: Some(shape.name.clone()),
                            app: app.clone(),
                            message: format!("table {table}: {e}"),
                            hint: format!("fix table = in [maps.{app}] or create the table"),
                        });
                        None
                    }
                })
                .clone();
            if let Some(s) = &schema {
                check_side(&shape, side, s, &mut findings);
                check_privileges(&shape, side, conn.as_mut(), &mut findings);
            }
            described[side] = schema;
        }
        if let [Some(a), Some(b)] = &described {
            check_pair(&shape, [a, b], &mut findings);
        }
    }
    findings
}

fn check_side(shape: &MapShape, side: Side, schema: &TableSchema, findings: &mut Vec<Finding>) {
    let app = &shape.apps[side];
    let mut missing = |what: &str, column: &str| {
        findings.push(Finding {
            severity: Severity::Error,
            cause: Cause::Config,
            map: Some(shape.name.clone()),
            app: app.clone(),
            message: format!("{what} column {column:?} does not exist in table {} (its columns: {})", schema.name, schema.column_names()),
            hint: format!("fix the name in the map's config, or add the column to {}", schema.name),
        });
    };
    for c in &shape.columns[side] {
        if schema.column(c).is_none() {
            missing("mapped", c);
        }
    }
    if let Some(c) = &shape.company[side] {
        if schema.column(c).is_none() {
            missing("company", c);
        }
    }
    if let Some((c, _)) = &shape.id[side] {
        if schema.column(c).is_none() {
            missing("id", c);
        }
    }
    if let Some(f) = &shape.filter[side] {
        for c in f.columns() {
            if schema.column(c).is_none() {
                missing("filter", c);
            }
        }
    }
    let mut key: Vec<String> = shape.key_columns[side].clone();
    if !schema.is_unique(&key) {
        key.extend(shape.company[side].iter().cloned());
        if !schema.is_unique(&key) {
            findings.push(Finding {
                severity: Severity::Warning,
                cause: Cause::Config,
                map: Some(shape.name.clone()),
                app: app.clone(),
                message: format!("the key ({}) is not declared unique in table {}", key.join(", "), schema.name),
                hint: "duplicate keys are logged as failed rows; a unique index on the key also makes reads by key fast".into(),
            });
        }
    }
    if let Some((id, None)) = &shape.id[side] {
        if let Some(col) = schema.column(id) {
            let generated = col.has_default || (schema.primary_key == [id.clone()] && col.class == dualsync_model::TypeClass::Integer);
            if !generated && !col.nullable {
                findings.push(Finding {
                    severity: Severity::Warning,
                    cause: Cause::Config,
                    map: Some(shape.name.clone()),
                    app: app.clone(),
                    message: format!("id column {id} has no default, so inserts into {} will fail", schema.name),
                    hint: "add id_default = \"uuid\" to let dualsync generate ids".into(),
                });
            }
        }
    }
}

/// Key columns must sort alike on both sides; values must fit where they flow.
fn check_pair(shape: &MapShape, schemas: [&TableSchema; 2], findings: &mut Vec<Finding>) {
    let class = |side: Side, c: usize| schemas[side].column(&shape.columns[side][c]).map(|i| (i.class, i.declared_type.clone()));
    for c in 0..shape.columns[0].len() {
        let (Some((a, da)), Some((b, db))) = (class(Side::A, c), class(Side::B, c)) else {
            continue;
        };
        if shape.key_positions.contains(&c) && !a.sorts_like(b) {
            findings.push(Finding {
                severity: Severity::Error,
                cause: Cause::Config,
                map: Some(shape.name.clone()),
                app: format!("{}/{}", shape.apps[0], shape.apps[1]),
                message: format!(
                    "key column {} ({da}) and {} ({db}) do not sort alike, so the two sides cannot be merged in key order",
                    shape.columns[0][c], shape.columns[1][c]
                ),
                hint: "map key columns of the same kind (text with text, numbers with numbers)".into(),
            });
        }
        if shape.lookups[c].is_some() || shape.translations[c].is_some() {
            continue; // values change on the way; checked row by row
        }
        for from in 0..2 {
            let to = 1 - from;
            let (src, dst) = if from == 0 { ((a, &da), (b, &db)) } else { ((b, &db), (a, &da)) };
            let flows =
                shape.key_positions.contains(&c) || shape.directions[c] == Direction::Both || shape.directions[c] == Direction::From(from);
            if flows && !src.0.fits_into(dst.0) {
                findings.push(Finding {
                    severity: Severity::Warning,
                    cause: Cause::Config,
                    map: Some(shape.name.clone()),
                    app: shape.apps[to].clone(),
                    message: format!(
                        "column {} is {} in {} but {} in {}: some values may be refused",
                        shape.columns[to][c], dst.1, shape.apps[to], src.1, shape.apps[from]
                    ),
                    hint: "refused rows go to the error log; change the column type or the direction if this is not intended".into(),
                });
            }
        }
    }
}

/// The user must read the table and write it (rows only the other app holds
/// are inserted, differing rows updated); each missing privilege is named with
/// the statement that grants it.
fn check_privileges(shape: &MapShape, side: Side, conn: &mut dyn dualsync_connectors::Connection, findings: &mut Vec<Finding>) {
    let (app, table) = (&shape.apps[side], &shape.tables[side]);
    let finding = |severity, cause, message: String, hint: String| Finding {
        severity,
        cause,
        map: Some(shape.name.clone()),
        app: app.clone(),
        message,
        hint,
    };
    let p = match conn.privileges(table) {
        Ok(p) => p,
        Err(e) => {
            findings.push(finding(
                Severity::Warning,
                Cause::Environment,
                format!("cannot read the privileges on {table}: {e}"),
                String::new(),
            ));
            return;
        }
    };
    if p.select.is_none() {
        findings.push(finding(
            Severity::Warning,
            Cause::Config,
            format!("privileges on {table} are not checked on this kind of database"),
            "a missing privilege shows as a failed run".into(),
        ));
        return;
    }
    let missing: Vec<&str> = [("SELECT", p.select), ("INSERT", p.insert), ("UPDATE", p.update)]
        .iter()
        .filter(|(_, granted)| *granted == Some(false))
        .map(|(name, _)| *name)
        .collect();
    let user = if p.user.is_empty() { "the user".to_string() } else { format!("user {}", p.user) };
    // Live sync's needs warn only: an initial sync runs without them.
    let live: Vec<&str> = p.live.iter().filter(|(_, granted)| *granted == Some(false)).map(|(name, _)| name.as_str()).collect();
    if !live.is_empty() {
        let (on_table, elsewhere): (Vec<&str>, Vec<&str>) = live.iter().partition(|l| !l.contains(' '));
        let mut what = Vec::new();
        let mut grants = Vec::new();
        if !on_table.is_empty() {
            what.push(format!("{} on table {table}", on_table.join(", ")));
            grants.extend(p.grant.as_ref().map(|g| g.replace("{privileges}", &on_table.join(", "))));
        }
        for other in elsewhere {
            what.push(other.to_string());
            grants.push(format!("GRANT {other} TO {};", p.grantee));
        }
        findings.push(finding(
            Severity::Warning,
            Cause::Environment,
            format!("{user} lacks {}: live sync (`dualsync start`) needs it to capture changes and apply deletes", what.join(" and ")),
            grants.join(" "),
        ));
    }
    if missing.is_empty() {
        return;
    }
    let hint = match &p.grant {
        Some(grant) => grant.replace("{privileges}", &missing.join(", ")),
        None => "make the database file writable by the user running dualsync".to_string(),
    };
    if p.certain {
        findings.push(finding(
            Severity::Error,
            Cause::Environment,
            format!("{user} lacks {} on table {table} (the sync reads and writes it)", missing.join(", ")),
            hint,
        ));
    } else {
        // Grants may come by ways the database does not list (roles): say so, do not stop the run.
        findings.push(finding(
            Severity::Warning,
            Cause::Environment,
            format!("{user} seems to lack {} on table {table} (the sync reads and writes it)", missing.join(", ")),
            hint,
        ));
    }
}
