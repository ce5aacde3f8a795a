//! A map's captured changes on both apps, gathered into the keys to
//! reconcile, per company.

use crate::apps::in_app;
use crate::pipeline::company::Company;
use crate::shape::MapShape;
use crate::side::Side;
use crate::{Apps, EngineError};
use dualsync_connectors::{CaptureSpec, Change, ChangeKind, FetchRequest, Selection};
use dualsync_model::{content_hash, Key, Value};
use std::collections::HashMap;

/// What capture records for a map's side: its key columns, then its company column.
pub fn capture_spec(shape: &MapShape, side: Side) -> CaptureSpec {
    let mut columns = shape.key_columns[side].clone();
    columns.extend(shape.company[side].iter().cloned());
    CaptureSpec { table: shape.tables[side].clone(), columns }
}

/// One key changed on either app since the cursors.
#[derive(Clone, Debug)]
pub struct ChangedKey {
    /// In common form.
    pub key: Key,
    /// Per side: the last change's kind and time, where the side changed it.
    pub last: [Option<(ChangeKind, i64)>; 2],
}

/// The changed keys of one company (None for a map without company).
#[derive(Debug, Default)]
pub struct CompanyChanges {
    pub code: Option<Value>,
    /// In the order first seen.
    pub keys: Vec<ChangedKey>,
    index: HashMap<[u8; 16], usize>,
}

impl CompanyChanges {
    fn note(&mut self, key: Key, side: Side, kind: ChangeKind, at: i64) {
        let h = content_hash(&key);
        let i = *self.index.entry(h).or_insert_with(|| {
            self.keys.push(ChangedKey { key, last: [None, None] });
            self.keys.len() - 1
        });
        self.keys[i].last[side] = Some((kind, at));
    }
}

/// Groups both sides' changes by company code. Changes of rows without a
/// company (or with a company id that names no company) take no part, as in a full sync.
pub fn group(apps: &Apps, shape: &MapShape, changes: [Vec<Change>; 2]) -> Result<Vec<CompanyChanges>, EngineError> {
    let mut groups: Vec<CompanyChanges> = Vec::new();
    let mut by_code: HashMap<[u8; 16], usize> = HashMap::new();
    let width = shape.key_positions.len();
    for (side, changes) in Side::BOTH.into_iter().zip(changes) {
        let codes = company_codes(apps, shape, side, &changes)?;
        for change in changes {
            if change.values.len() < width {
                continue; // captured with other columns: reinstalled capture will say so in check
            }
            let mut values = change.values;
            let stored = values.get(width).cloned();
            values.truncate(width);
            let key = common_key(shape, side, values);
            let code = match (&shape.company[side], stored) {
                (None, _) => None,
                (Some(_), Some(v)) if !v.is_null() => match codes.get(&content_hash([&v])) {
                    Some(code) => Some(code.clone()),
                    None => continue,
                },
                _ => continue,
            };
            let h = content_hash(code.iter());
            let g = *by_code.entry(h).or_insert_with(|| {
                groups.push(CompanyChanges { code: code.clone(), ..Default::default() });
                groups.len() - 1
            });
            groups[g].note(key, side, change.kind, change.at_micros);
        }
    }
    Ok(groups)
}

/// A side's key values in the map's common form (translated key columns).
fn common_key(shape: &MapShape, side: Side, values: Vec<Value>) -> Key {
    values
        .into_iter()
        .zip(&shape.key_positions)
        .map(|(v, &p)| match &shape.translations[p] {
            Some(t) => t.to_common(side, v),
            None => v,
        })
        .collect()
}

/// The company code of each stored company value in the changes (ids, with a company lookup).
fn company_codes(apps: &Apps, shape: &MapShape, side: Side, changes: &[Change]) -> Result<HashMap<[u8; 16], Value>, EngineError> {
    let width = shape.key_positions.len();
    let mut stored: Vec<Value> = changes.iter().filter_map(|c| c.values.get(width)).filter(|v| !v.is_null()).cloned().collect();
    stored.sort_by(|a, b| a.key_cmp(b));
    stored.dedup_by(|a, b| a.same_as(b));
    let Some(lookup) = &shape.company_lookup[side] else {
        return Ok(stored.into_iter().map(|v| (content_hash([&v]), v)).collect());
    };
    if stored.is_empty() {
        return Ok(HashMap::new());
    }
    let app = &shape.apps[side];
    let mut conn = apps.connect(app)?;
    let rows = conn
        .fetch(&FetchRequest {
            selection: Selection { table: lookup.table.clone(), ..Default::default() },
            columns: vec![lookup.id_column.clone(), lookup.key_column.clone()],
            match_columns: vec![lookup.id_column.clone()],
            keys: stored.into_iter().map(|v| vec![v]).collect(),
        })
        .map_err(in_app(apps, app))?;
    Ok(rows.into_iter().map(|mut r| (content_hash([&r[0]]), r.pop().unwrap_or(Value::Null))).collect())
}

/// The partition's company, as the writers need it.
pub fn company(apps: &Apps, shape: &MapShape, code: &Option<Value>) -> Result<Option<Company>, EngineError> {
    code.clone().map(|c| Company::resolve(apps, shape, c)).transpose()
}
