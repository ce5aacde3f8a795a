//! Which capture each side of a map uses, and switching between them.
//!
//! An app's `capture` setting asks for the database's log (`log`), triggers
//! (`trigger`), or the log where the server allows it (`auto`). A started
//! side's saved cursor says which it uses now (log cursors start `log:`).
//! When the two differ, the unit's holder switches the side before it reads
//! its changes, without losing one:
//!
//! 1. set up the new capture and take its start cursor: from here on it
//!    records every change;
//! 2. read the old capture to its end (a catch-up of the map);
//! 3. remove the old capture;
//! 4. continue from the new start cursor.
//!
//! Changes between 1 and 3 are read by both: reconciling a key twice is
//! harmless (reconcile.rs), so the overlap costs a second look, no write.

use super::changes::capture_spec;
use crate::apps::in_app;
use crate::shape::MapShape;
use crate::side::Side;
use crate::{Apps, EngineError};
use dualsync_connectors::{Connection, Cursor, ErrorKind};
use dualsync_model::config::{Capture, MapConfig};
use dualsync_model::Config;
use dualsync_state::StateStore;
use std::collections::{HashMap, HashSet};

/// What an app uses, and why where it is not what was asked.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    pub log: bool,
    /// Why `auto` fell back to triggers (the server settings to change).
    pub why_not_log: Vec<String>,
    /// Advice on the log that does not stop it.
    pub advice: Vec<String>,
}

/// Decides per app, once per process (asking the server is a query).
#[derive(Default)]
pub struct Choices {
    decided: HashMap<String, Choice>,
    /// Tables of `auto` apps whose log capture the table itself refused
    /// (its replica identity): they keep triggers.
    on_triggers: HashSet<(String, String)>,
}

impl Choices {
    pub fn of(&mut self, config: &Config, apps: &Apps, app: &str) -> Result<Choice, EngineError> {
        if let Some(c) = self.decided.get(app) {
            return Ok(c.clone());
        }
        let setting = config.apps.iter().find(|a| a.name == app).map(|a| a.capture).unwrap_or_default();
        let choice = if setting == Capture::Trigger {
            Choice { log: false, why_not_log: Vec::new(), advice: Vec::new() }
        } else {
            let mut conn = apps.connect(app)?;
            let missing = conn.log_capture_missing().map_err(in_app(apps, app))?;
            let advice = if missing.is_empty() { conn.log_capture_advice().map_err(in_app(apps, app))? } else { Vec::new() };
            if setting == Capture::Log && !missing.is_empty() {
                return Err(EngineError::Usage(format!(
                    "app {app} has capture = \"log\", but log capture is not possible there: {}; fix that, or set capture = \"auto\" or \"trigger\"",
                    missing.join("; ")
                )));
            }
            Choice { log: missing.is_empty(), why_not_log: missing, advice }
        };
        self.decided.insert(app.to_string(), choice.clone());
        Ok(choice)
    }

    /// Whether a table of an app is read from the log.
    fn wants_log(&mut self, config: &Config, apps: &Apps, app: &str, table: &str) -> Result<bool, EngineError> {
        Ok(self.of(config, apps, app)?.log && !self.on_triggers.contains(&(app.to_string(), table.to_string())))
    }

    /// Sets up capture of a map's side as the app asks. Under `auto`, a table
    /// whose log capture the table itself refuses (deletes would not name the
    /// captured columns) keeps triggers; the reason comes back as a note.
    pub fn install(&mut self, config: &Config, apps: &Apps, shape: &MapShape, side: Side) -> Result<(Cursor, Option<String>), EngineError> {
        let (app, table) = (&shape.apps[side], &shape.tables[side]);
        let log = self.wants_log(config, apps, app, table)?;
        let mut conn = apps.connect(app)?;
        match install(conn.as_mut(), shape, side, log) {
            Err(e) if log && e.kind == ErrorKind::Schema && self.is_auto(config, app) => {
                self.on_triggers.insert((app.clone(), table.clone()));
                let cursor = install(conn.as_mut(), shape, side, false).map_err(in_app(apps, app))?;
                Ok((cursor, Some(format!("{app}.{table} keeps trigger capture: {}", e.message))))
            }
            other => Ok((other.map_err(in_app(apps, app))?, None)),
        }
    }

    fn is_auto(&self, config: &Config, app: &str) -> bool {
        config.apps.iter().any(|a| a.name == app && a.capture == Capture::Auto)
    }
}

/// Sets up capture of a map's side, of the kind asked, and returns where reading starts.
pub fn install(conn: &mut dyn Connection, shape: &MapShape, side: Side, log: bool) -> Result<Cursor, dualsync_connectors::ConnectorError> {
    let spec = capture_spec(shape, side);
    if log {
        conn.install_log_capture(&spec, &shape.name)
    } else {
        conn.install_capture(&spec)?;
        conn.change_cursor()
    }
}

/// The columns the side's capture of this kind records, where it is in place.
pub fn installed(
    conn: &mut dyn Connection,
    shape: &MapShape,
    side: Side,
    log: bool,
) -> Result<Option<Vec<String>>, dualsync_connectors::ConnectorError> {
    let table = &shape.tables[side];
    if log {
        conn.log_capture_of(table, &shape.name)
    } else {
        conn.capture_of(table)
    }
}

/// Removes a map's capture of one kind from a side; triggers stay while
/// another started map's trigger capture reads the same table.
pub fn remove(config: &Config, store: &StateStore, map: &MapConfig, side: Side, log: bool, apps: &Apps) -> Result<(), EngineError> {
    let (app, table) = (&map.sides[side].app, &map.sides[side].table);
    let mut conn = apps.connect(app)?;
    if log {
        return conn.remove_log_capture(table, &map.name).map_err(in_app(apps, app));
    }
    if triggers_shared(config, store, &map.name, app, table)? {
        return Ok(());
    }
    conn.remove_capture(table).map_err(in_app(apps, app))
}

/// Whether a started map's side on `app` reads the log, by its saved cursor.
pub fn side_reads_log(cursors: &HashMap<String, String>, app: &str) -> bool {
    cursors.get(app).is_some_and(|c| dualsync_connectors::log::is_log_position(c))
}

/// Whether another started map reads this app's table through triggers.
pub fn triggers_shared(config: &Config, store: &StateStore, map: &str, app: &str, table: &str) -> Result<bool, EngineError> {
    for state in store.map_states()?.iter().filter(|s| s.map != map) {
        let Some(other) = config.map(&state.map) else { continue };
        let cursors = store.cursors(&other.name)?;
        let reads =
            other.sides.iter().any(|s| s.app == app && s.table == table && cursors.contains_key(app) && !side_reads_log(&cursors, app));
        if reads {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The sides of a started map whose capture is not the one asked for now.
pub fn to_switch(
    config: &Config,
    apps: &Apps,
    store: &StateStore,
    map: &MapConfig,
    choices: &mut Choices,
) -> Result<Vec<(Side, bool)>, EngineError> {
    let cursors = store.cursors(&map.name)?;
    let mut out = Vec::new();
    for side in Side::BOTH {
        let app = &map.sides[side].app;
        if !cursors.contains_key(app) {
            continue;
        }
        let wanted = choices.wants_log(config, apps, app, &map.sides[side].table)?;
        if side_reads_log(&cursors, app) != wanted {
            out.push((side, wanted));
        }
    }
    Ok(out)
}

/// Step 1 of a switch: the new capture's start cursor (see the module's
/// comment), or None where `auto` finds the table cannot be read from the
/// log after all (it keeps triggers: the note says why).
pub fn begin_switch(
    config: &Config,
    apps: &Apps,
    map: &MapConfig,
    side: Side,
    to_log: bool,
    choices: &mut Choices,
) -> Result<(Option<Cursor>, Option<String>), EngineError> {
    let shape = MapShape::new(map, config);
    let (cursor, note) = choices.install(config, apps, &shape, side)?;
    let used_log = cursor.reads_log();
    if used_log != to_log {
        return Ok((None, note));
    }
    Ok((Some(cursor), note))
}
