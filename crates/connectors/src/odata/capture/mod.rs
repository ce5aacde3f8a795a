//! Change capture of OData apps, two ways: polling a change timestamp
//! (poll.rs, any service), or the service's own change tracking (delta.rs,
//! where the dialect offers it). The cursor says which way it was taken.

mod delta;
mod poll;

use super::values::http_date_micros;
use super::Shared;
use crate::{CaptureSpec, Change, ConnectorError, Cursor, ErrorKind};
use serde_json::Value as Json;

fn tracks_changes(shared: &Shared) -> bool {
    shared.capabilities().tracks_changes
}

/// Whether capture of the spec can start (its columns exist; polling has its timestamp).
pub fn check(shared: &Shared, spec: &CaptureSpec) -> Result<(), ConnectorError> {
    let set = shared.set(&spec.table)?;
    if !tracks_changes(shared) {
        poll::changed_column(shared, &set)?;
    }
    for c in &spec.columns {
        set.property(c).ok_or_else(|| super::query::missing(&set, c))?;
    }
    Ok(())
}

/// Whether the set can be captured: nothing is installed in a service either way.
pub fn ready(shared: &Shared, table: &str) -> bool {
    match tracks_changes(shared) {
        true => shared.set(table).is_ok(),
        false => poll::ready(shared, table),
    }
}

pub fn start(shared: &Shared, spec: &CaptureSpec) -> Result<Cursor, ConnectorError> {
    match tracks_changes(shared) {
        true => delta::start(shared, spec),
        false => poll::start(shared, spec),
    }
}

pub fn read(shared: &Shared, table: &str, after: &Cursor, limit: usize) -> Result<(Vec<Change>, Cursor), ConnectorError> {
    match delta::owns(after) {
        true => delta::read(shared, table, after, limit),
        false => poll::read(shared, table, after, limit),
    }
}

pub fn pending(shared: &Shared, table: &str, after: &Cursor) -> Result<u64, ConnectorError> {
    match delta::owns(after) {
        true => delta::pending(shared, after),
        false => poll::pending(shared, table, after),
    }
}

/// The service's clock in microseconds (this machine's where it sent no `Date`).
fn clock(date: Option<&str>) -> i64 {
    date.and_then(http_date_micros)
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64))
}

/// A cursor that is not of the kind its reader expects (`way`: polling, change tracking).
fn bad_cursor(cursor: &Cursor, way: &str) -> ConnectorError {
    ConnectorError::new(ErrorKind::Schema, format!("{:?} is not a cursor of OData {way}; `dualsync stop` and `start` the map", cursor.0))
}

/// A cursor's JSON after its prefix, with the table and columns every cursor holds.
fn cursor_fields(cursor: &Cursor, prefix: &str, way: &str) -> Result<(Json, String, Vec<String>), ConnectorError> {
    let bad = || bad_cursor(cursor, way);
    let json: Json = cursor.0.strip_prefix(prefix).and_then(|j| serde_json::from_str(j).ok()).ok_or_else(bad)?;
    let table = json["table"].as_str().ok_or_else(bad)?.to_string();
    let columns = json["columns"].as_array().ok_or_else(bad)?.iter().filter_map(|c| c.as_str().map(str::to_string)).collect();
    Ok((json, table, columns))
}
