//! Change capture of an entity set by polling its change timestamp (the
//! app's `changed` column), in (timestamp, entity key) order: rows written in
//! one changeset share one timestamp, so the key breaks the ties and a page
//! may end between them.
//!
//! A change is read only once its timestamp is `change_window_seconds`
//! behind the service's clock (its `Date` header): a transaction that commits
//! a little after stamping its rows is still ahead of the cursor, which so
//! never passes a change. The cursor (`odata:{…}`) holds the last change
//! read and the columns to report; nothing is installed in the service.

use super::super::metadata::EntitySet;
use super::super::query::Query;
use super::super::values::literal;
use super::super::{encode, values_of, Shared};
use super::clock;
use crate::{CaptureSpec, Change, ChangeKind, ConnectorError, Cursor, ErrorKind};
use dualsync_model::value::{epoch_micros, iso_from_epoch_micros};
use dualsync_model::Value;
use serde_json::{json, Value as Json};

const PREFIX: &str = "odata:";

/// Where a poll resumes: after the change at `ts` of the entity `key`.
struct Position {
    table: String,
    columns: Vec<String>,
    ts: String,
    key: Option<Vec<Value>>,
}

impl Position {
    fn cursor(&self) -> Cursor {
        let key = self.key.as_ref().map(|k| k.iter().map(Value::to_json).collect::<Vec<_>>());
        Cursor(format!("{PREFIX}{}", json!({ "table": self.table, "columns": self.columns, "ts": self.ts, "key": key })))
    }

    fn parse(cursor: &Cursor) -> Result<Position, ConnectorError> {
        let (json, table, columns) = super::cursor_fields(cursor, PREFIX, "polling")?;
        Ok(Position {
            table,
            columns,
            ts: json["ts"].as_str().ok_or_else(|| super::bad_cursor(cursor, "polling"))?.to_string(),
            key: json["key"].as_array().map(|k| k.iter().map(Value::from_json).collect()),
        })
    }
}

/// The app's change timestamp, where the set has it as an Edm.DateTimeOffset.
pub(super) fn changed_column(shared: &Shared, set: &EntitySet) -> Result<String, ConnectorError> {
    let Some(changed) = &shared.app.changed else {
        return Err(ConnectorError::new(
            ErrorKind::Unsupported,
            "live sync of an OData app polls a change timestamp: set changed = \"COLUMN\" on the app (modifiedAt for SAP CAP, modifiedon for Dataverse)",
        ));
    };
    let p = set.property(changed).ok_or_else(|| super::super::query::missing(set, changed))?;
    if p.edm != "Edm.DateTimeOffset" {
        return Err(ConnectorError::new(
            ErrorKind::Schema,
            format!("{}.{changed} is {}, not the Edm.DateTimeOffset a change timestamp is", set.name, p.edm),
        ));
    }
    Ok(changed.clone())
}

pub fn ready(shared: &Shared, table: &str) -> bool {
    shared.set(table).is_ok_and(|set| changed_column(shared, &set).is_ok())
}

/// A cursor before every change from now on (by the service's clock, less the window).
pub fn start(shared: &Shared, spec: &CaptureSpec) -> Result<Cursor, ConnectorError> {
    let set = shared.set(&spec.table)?;
    let changed = changed_column(shared, &set)?;
    let path = format!("{}?$select={}&$top=1", encode(&set.name), encode(&changed));
    let (_, _, date) = shared.page(&path)?;
    let from = clock(date.as_deref()) - (shared.app.change_window_seconds as i64 + 1) * 1_000_000;
    Ok(Position { table: set.name.clone(), columns: spec.columns.clone(), ts: iso_from_epoch_micros(from, true), key: None }.cursor())
}

fn after_filter(set: &EntitySet, changed: &str, at: &Position) -> Result<String, ConnectorError> {
    let p = set.property(changed).ok_or_else(|| super::super::query::missing(set, changed))?;
    let ts = literal(p, &Value::Timestamp(at.ts.clone()));
    Ok(match &at.key {
        None => format!("{changed} gt {ts}"),
        Some(key) => format!("{changed} gt {ts} or ({changed} eq {ts} and ({}))", Query { set }.beyond(&set.key, key, "gt")?),
    })
}

pub fn read(shared: &Shared, table: &str, after: &Cursor, limit: usize) -> Result<(Vec<Change>, Cursor), ConnectorError> {
    let mut at = Position::parse(after)?;
    let set = shared.set(table)?;
    let changed = changed_column(shared, &set)?;
    let mut select: Vec<String> = vec![changed.clone()];
    for c in set.key.iter().chain(&at.columns) {
        if !select.contains(c) {
            select.push(c.clone());
        }
    }
    let order: Vec<String> = std::iter::once(format!("{changed} asc")).chain(set.key.iter().map(|k| format!("{k} asc"))).collect();
    let path = format!(
        "{}?$select={}&$orderby={}&$top={}&$filter={}",
        encode(&set.name),
        encode(&select.join(",")),
        encode(&order.join(",")),
        limit.max(1),
        encode(&after_filter(&set, &changed, &at)?)
    );
    let (entities, _, date) = shared.page(&path)?;
    let horizon = clock(date.as_deref()) - shared.app.change_window_seconds as i64 * 1_000_000;
    let mut changes = Vec::new();
    for entity in &entities {
        let ts = match entity.get(&changed) {
            Some(Json::String(s)) => s.clone(),
            _ => continue,
        };
        let Some((micros, _)) = epoch_micros(&ts) else { continue };
        if micros > horizon {
            break; // too recent: an earlier stamp may still commit
        }
        changes.push(Change { values: values_of(&set, &at.columns, entity)?, kind: ChangeKind::Update, at_micros: micros });
        at.key = Some(values_of(&set, &set.key, entity)?);
        at.ts = ts;
    }
    Ok((changes, at.cursor()))
}

pub fn pending(shared: &Shared, table: &str, after: &Cursor) -> Result<u64, ConnectorError> {
    let at = Position::parse(after)?;
    let set = shared.set(table)?;
    let changed = changed_column(shared, &set)?;
    shared.count(&set, Some(&after_filter(&set, &changed, &at)?), "counting changes")
}
