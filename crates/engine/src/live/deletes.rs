//! Deletes that capture cannot see: polling an OData service finds the rows
//! that changed, never the rows that are gone. Every so often (the
//! connector's `delete_scan_every`), the keys of the map's merge base are
//! looked up in such an app a page at a time, by key alone, whatever the
//! map's filter and company (a row that left the filter, or moved to another
//! company, is not a delete). A key the app holds nowhere is reconciled as
//! deleted there, by the rule book's delete rules (a delete against an edit
//! is a conflict; `on_delete = "ignore"` keeps the row).

use super::changes::{self, ChangedKey};
use super::reconcile;
use crate::apps::in_app;
use crate::shape::MapShape;
use crate::side::Side;
use crate::{Apps, EngineError};
use dualsync_connectors::{ChangeKind, FetchRequest, Selection};
use dualsync_model::config::MapConfig;
use dualsync_model::row::key_from_text;
use dualsync_model::{content_hash, Config, Key, Value};
use dualsync_state::{Counts, StateStore};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

/// Base keys looked up per page.
const PAGE: usize = 1000;

/// Scans the map's keys for deletes where an app needs it and its time has
/// come (`next`: when each map's next scan is due). Returns the keys found
/// deleted and what reconciling them wrote.
pub fn scan_when_due(
    config: &Config,
    apps: &Apps,
    store: &StateStore,
    run_id: i64,
    map: &MapConfig,
    next: &mut HashMap<String, Instant>,
    stop: &AtomicBool,
) -> Result<(usize, Counts), EngineError> {
    let mut total = (0, Counts::default());
    let scanned: Vec<(Side, Duration)> =
        Side::BOTH.into_iter().filter_map(|s| apps.connector(&map.sides[s].app).delete_scan_every().map(|d| (s, d))).collect();
    let Some(every) = scanned.iter().map(|(_, d)| *d).min() else { return Ok(total) };
    if next.get(&map.name).is_some_and(|at| Instant::now() < *at) {
        return Ok(total);
    }
    let shape = MapShape::new(map, config).with_write_batches(map, apps);
    let rules = shape.merge_rules();
    let batch_of = reconcile::Batch { config, apps, store, run_id, shape: &shape, rules: &rules, depth: 0 };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64);
    let mut after: Option<(String, String)> = None;
    loop {
        if stop.load(SeqCst) {
            return Ok(total); // not finished: still due, the next round starts over
        }
        let page = store.base_keys_after(&map.name, after.as_ref().map(|(c, k)| (c.as_str(), k.as_str())), PAGE)?;
        let Some(last) = page.last().cloned() else { break };
        for (company_text, keys) in by_company(&page) {
            let code = (!company_text.is_empty()).then(|| Value::Text(company_text.to_string()));
            let mut found: Vec<ChangedKey> = Vec::new();
            let mut index: HashMap<[u8; 16], usize> = HashMap::new();
            for &(side, _) in &scanned {
                for key in gone(apps, &shape, side, &keys)? {
                    let i = *index.entry(content_hash(&key)).or_insert_with(|| {
                        found.push(ChangedKey { key, last: [None, None] });
                        found.len() - 1
                    });
                    found[i].last[side] = Some((ChangeKind::Delete, now));
                }
            }
            if found.is_empty() {
                continue;
            }
            total.0 += found.len();
            let company = changes::company(apps, &shape, &code)?;
            total.1.add(&batch_of.reconcile(company, found)?);
        }
        after = Some(last);
    }
    next.insert(map.name.clone(), Instant::now() + every);
    Ok(total)
}

/// The page's keys, grouped by company (the page is in company order).
fn by_company(page: &[(String, String)]) -> Vec<(&str, Vec<Key>)> {
    let mut out: Vec<(&str, Vec<Key>)> = Vec::new();
    for (company, key) in page {
        match out.last_mut() {
            Some((c, keys)) if *c == company.as_str() => keys.push(key_from_text(key)),
            _ => out.push((company, vec![key_from_text(key)])),
        }
    }
    out
}

/// The keys (common form) that `side` holds no row for, in any company.
fn gone(apps: &Apps, shape: &MapShape, side: Side, keys: &[Key]) -> Result<Vec<Key>, EngineError> {
    let app = &shape.apps[side];
    // The keys as this side spells them; a key it cannot spell is not a key it could hold.
    let mut spelled = Vec::with_capacity(keys.len());
    for key in keys {
        let side_key: Result<Key, String> = key
            .iter()
            .zip(&shape.key_positions)
            .map(|(v, &p)| match &shape.translations[p] {
                Some(t) => t.to_side(side, v),
                None => Ok(v.clone()),
            })
            .collect();
        if let Ok(k) = side_key {
            spelled.push((key, k));
        }
    }
    let columns = shape.key_columns[side].clone();
    let request = FetchRequest {
        selection: Selection { table: shape.tables[side].clone(), ..Default::default() },
        columns: columns.clone(),
        match_columns: columns,
        keys: spelled.iter().map(|(_, k)| k.clone()).collect(),
    };
    let rows = apps.connect(app)?.fetch(&request).map_err(in_app(apps, app))?;
    let held: HashSet<[u8; 16]> = rows.iter().map(|r| content_hash(r)).collect();
    Ok(spelled.into_iter().filter(|(_, k)| !held.contains(&content_hash(k))).map(|(key, _)| key.clone()).collect())
}
