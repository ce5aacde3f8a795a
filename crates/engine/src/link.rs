//! Environment fencing, the seed's "linking" of two environments.
//!
//! At its first write to an app, a state store stamps the app's database
//! (`dualsync_link`: the store's id, the app's name, what identified the
//! database) and remembers the database it linked. Before any later write,
//! both are checked against what the database says it is now:
//!
//! - the store linked another database than the url reaches now: the url or
//!   the store points at another environment, or the database was replaced;
//! - the database carries a stamp made in another database: it is a copy or
//!   a restore (a production copy refreshed into a test environment).
//!
//! Either is refused before anything is written; `dualsync relink --app A`
//! confirms a deliberate move. Connectors give the identity and the table;
//! the stamps are read and written through the generic scan and write.

use crate::check::{Cause, Finding, Severity};
use crate::{Apps, EngineError};
use dualsync_connectors::{link, Connection, ConnectorError, ScanRequest, Selection, WriteBatch, WriteOp};
use dualsync_model::{Config, Value};
use dualsync_state::{AppLink, StateStore};

/// One row of an app's `dualsync_link`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub store_id: String,
    pub app: String,
    pub database_id: String,
    pub linked_at: String,
}

const COLUMNS: [&str; 4] = ["store_id", "app", "database_id", "linked_at"];

/// What `relink` did.
#[derive(Debug)]
pub struct Relinked {
    pub database_id: String,
    /// The database the store had linked before, if another.
    pub was: Option<String>,
    /// Stamps of other databases (a copy's) removed from this one.
    pub stale_stamps: usize,
}

/// Checks each of `names` against the store's links and stamps it on first
/// contact; refuses an app whose database moved (see the module's comment).
pub fn verify<'a>(config: &Config, apps: &Apps, names: impl IntoIterator<Item = &'a str>) -> Result<(), EngineError> {
    let store = StateStore::open(&config.state)?;
    let store_id = store.store_id()?;
    let mut names: Vec<&str> = names.into_iter().collect();
    names.sort_unstable();
    names.dedup();
    for app in names {
        let mut conn = apps.connect(app)?;
        let in_app = crate::apps::in_app(apps, app);
        let actual = conn.database_identity().map_err(&in_app)?;
        let stamps = read_stamps(&mut *conn).map_err(&in_app)?;
        let ours = store.app_link(app)?;
        if let Some(problem) = judge(app, &actual, ours.as_ref(), &stamps, &store_id) {
            return Err(EngineError::Unlinked(problem));
        }
        let stamped = |stamps: &[Stamp]| stamps.iter().any(|s| s.store_id == store_id && s.app == app);
        if !stamped(&stamps) {
            let stamp =
                Stamp { store_id: store_id.clone(), app: app.to_string(), database_id: actual.clone(), linked_at: dualsync_state::now() };
            if let Err(e) = write_stamps(&mut *conn, &[stamp], &[]) {
                // A service (OData) keeps no tables of dualsync's: the store's link alone checks it.
                if e.kind == dualsync_connectors::ErrorKind::Unsupported {
                    if ours.is_none() {
                        store.set_app_link(app, &actual)?;
                    }
                    continue;
                }
                // Another process of this store stamped it at the same moment: then it is there.
                if !stamped(&read_stamps(&mut *conn).map_err(&in_app)?) {
                    return Err(in_app(e));
                }
            }
        }
        if ours.is_none() {
            store.set_app_link(app, &actual)?;
        }
    }
    Ok(())
}

/// `dualsync relink --app A`: the database the url reaches now is the app's,
/// for this store; stamps a copy carried of other databases are removed.
pub fn relink(config: &Config, apps: &Apps, app: &str) -> Result<Relinked, EngineError> {
    if config.app(app).is_none() {
        return Err(EngineError::Usage(format!("there is no app named {app:?} in {}", config.file.display())));
    }
    let store = StateStore::open(&config.state)?;
    let store_id = store.store_id()?;
    let mut conn = apps.connect(app)?;
    let in_app = crate::apps::in_app(apps, app);
    let actual = conn.database_identity().map_err(&in_app)?;
    let stamps = read_stamps(&mut *conn).map_err(&in_app)?;
    let stale: Vec<Stamp> =
        stamps.iter().filter(|s| s.database_id != actual || (s.store_id == store_id && s.app == app)).cloned().collect();
    let stamp = Stamp { store_id, app: app.to_string(), database_id: actual.clone(), linked_at: dualsync_state::now() };
    write_stamps(&mut *conn, &[stamp], &stale).map_err(&in_app)?;
    let was = store.app_link(app)?.map(|l| l.database_id).filter(|d| *d != actual);
    store.set_app_link(app, &actual)?;
    let stale_stamps = stale.iter().filter(|s| s.database_id != actual).count();
    Ok(Relinked { database_id: actual, was, stale_stamps })
}

/// `check`'s view: every app whose database moved, as an error; writes nothing.
pub fn findings(config: &Config, apps: &Apps, store: Option<&StateStore>) -> Vec<Finding> {
    let store_id = store.and_then(|s| s.store_id().ok()).unwrap_or_default();
    let mut found = Vec::new();
    for app in &config.apps {
        let Ok(mut conn) = apps.connect(&app.name) else { continue }; // preflight reports it
        let Ok(actual) = conn.database_identity() else { continue };
        let stamps = read_stamps(&mut *conn).unwrap_or_default();
        let ours = store.and_then(|s| s.app_link(&app.name).ok().flatten());
        if let Some(message) = judge(&app.name, &actual, ours.as_ref(), &stamps, &store_id) {
            let hint = format!("dualsync relink --app {} once you are sure", app.name);
            found.push(Finding { severity: Severity::Error, cause: Cause::Environment, map: None, app: app.name.clone(), message, hint });
        }
    }
    found
}

/// Why the app's database must not be written, if it must not.
fn judge(app: &str, actual: &str, ours: Option<&AppLink>, stamps: &[Stamp], store_id: &str) -> Option<String> {
    let confirm =
        format!("nothing was written. If this is the database to sync from now on, confirm it with `dualsync relink --app {app}`");
    if let Some(link) = ours.filter(|l| l.database_id != actual) {
        return Some(format!(
            "app {app}: this state store synced {} (linked {}), and the url now reaches {actual}: the url or the state store points at \
             another environment's database, or the database was replaced by a restore or a copy; {confirm}",
            link.database_id, link.linked_at
        ));
    }
    let copied = stamps.iter().find(|s| s.database_id != actual)?;
    let whose = if copied.store_id == store_id { "this state store".to_string() } else { format!("state store {}", copied.store_id) };
    Some(format!(
        "app {app}: this database is a copy or a restore of {}, which {whose} linked as app {} on {}: its link table came with it \
         (a production copy refreshed into a test environment?). Syncing it would carry that environment's link into this one; {confirm}",
        copied.database_id, copied.app, copied.linked_at
    ))
}

fn read_stamps(conn: &mut dyn Connection) -> Result<Vec<Stamp>, ConnectorError> {
    if conn.describe(link::TABLE).is_err() {
        return Ok(Vec::new()); // never stamped
    }
    let request = ScanRequest {
        selection: Selection { table: link::TABLE.into(), ..Default::default() },
        columns: COLUMNS.map(String::from).to_vec(),
        order_by: vec!["store_id".into(), "app".into()],
        batch_size: 1000,
    };
    let mut stamps = Vec::new();
    conn.scan(&request, &mut |rows| {
        stamps.extend(rows.into_iter().map(|r| {
            let text = |i: usize| r[i].display().into_owned();
            Stamp { store_id: text(0), app: text(1), database_id: text(2), linked_at: text(3) }
        }));
        true
    })?;
    Ok(stamps)
}

/// Removes `remove`, then adds `add` (two writes: a connector groups a
/// batch's ops by kind, and the same key may be in both).
fn write_stamps(conn: &mut dyn Connection, add: &[Stamp], remove: &[Stamp]) -> Result<(), ConnectorError> {
    conn.create_link_table().map_err(|e| {
        ConnectorError::new(
            e.kind,
            format!(
                "cannot create the table {} for environment fencing: {}; grant the user CREATE on the schema, or create the \
                 table ahead (docs/operations.md, Database users)",
                link::TABLE,
                e.message
            ),
        )
    })?;
    let key = |s: &Stamp| vec![Value::Text(s.store_id.clone()), Value::Text(s.app.clone())];
    let removes = remove.iter().map(|s| WriteOp::Delete { key: key(s) }).collect();
    let adds =
        add.iter().map(|s| WriteOp::Insert([&s.store_id, &s.app, &s.database_id, &s.linked_at].map(|v| Value::Text(v.clone())).to_vec()));
    for ops in [removes, adds.collect::<Vec<_>>()] {
        if ops.is_empty() {
            continue;
        }
        let batch = WriteBatch {
            table: link::TABLE.into(),
            columns: COLUMNS.map(String::from).to_vec(),
            key_columns: vec!["store_id".into(), "app".into()],
            scope: Vec::new(),
            ops,
        };
        if let Some(f) = conn.write(&batch)?.failures.first() {
            return Err(ConnectorError::new(
                dualsync_connectors::ErrorKind::Database,
                format!("cannot write the link table: {}", f.message),
            ));
        }
    }
    Ok(())
}
