//! Reconciling one key on demand: `dualsync retry` (rows in the error log) and
//! `dualsync resync` (any key). Both re-read the rows as they are now, so a row
//! fixed in its source app syncs, and apply the same decision as a full sync.

use crate::apps::in_app;
use crate::decide::decide;
use crate::merge::{merge, Merge, SideNow};
use crate::pipeline::company::Company;
use crate::pipeline::read::SideReader;
use crate::pipeline::write::{BaseUpdate, PendingOp, TargetWriter};
use crate::shape::MapShape;
use crate::side::Side;
use crate::{Apps, EngineError};
use dualsync_model::row::{key_from_text, key_to_json};
use dualsync_model::{Config, Key, Value};
use dualsync_state::{ErrorQuery, ErrorRecord, NewError, RunStatus, StateStore};

#[derive(Debug)]
pub struct KeyOutcome {
    pub map: String,
    pub company: String,
    pub key: String,
    /// What was done, for people: "inserted into crm", "already in sync", "not found in either app".
    pub actions: Vec<String>,
    pub errors: Vec<NewError>,
}

impl KeyOutcome {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Reads the key on both sides now, decides, writes, and records the result.
/// With `take`, that side's row wins whole (`dualsync resolve`): its values,
/// or its absence, which deletes the other app's row.
#[allow(clippy::too_many_arguments)]
pub fn reconcile_key(
    config: &Config,
    apps: &Apps,
    store: &StateStore,
    run_id: i64,
    map: &str,
    company: Option<Value>,
    key: Key,
    take: Option<Side>,
) -> Result<KeyOutcome, EngineError> {
    let m = config.map(map).ok_or_else(|| EngineError::Usage(format!("there is no map named {map:?}")))?;
    let shape = MapShape::new(m, config);
    if shape.company[0].is_some() && company.is_none() {
        return Err(EngineError::Usage(format!("map {map} is partitioned by company: say which with --company")));
    }
    if key.len() != shape.key_positions.len() {
        return Err(EngineError::Usage(format!(
            "map {map} has a key of {} column(s) ({}); give it as a JSON array such as '[\"A\",\"B\"]'",
            shape.key_positions.len(),
            shape.key_columns[0].join(", ")
        )));
    }
    let company = match company {
        Some(code) if shape.company[0].is_some() => Some(Company::resolve(apps, &shape, code)?),
        _ => None,
    };
    let company_shown = Company::shown(&company);
    let key_json = key_to_json(&key);
    let mut conns = [apps.connect(&shape.apps[0])?, apps.connect(&shape.apps[1])?];
    let mut rows = [None, None];
    for side in Side::BOTH {
        let mut reader = SideReader::new(side, company.clone());
        if !reader.has_company(&shape) {
            continue;
        }
        let found = reader.fetch(conns[side].as_mut(), &shape, vec![key.clone()]).map_err(in_app(apps, &shape.apps[side]))?;
        rows[side] = found.into_iter().next();
    }
    let mut outcome =
        KeyOutcome { map: map.to_string(), company: company_shown.clone(), key: key_json.clone(), actions: Vec::new(), errors: Vec::new() };
    if rows.iter().all(Option::is_none) {
        outcome.actions.push(format!("not found in {} or {} (with the map's filter and company)", shape.apps[0], shape.apps[1]));
        store.resolve_row(map, &company_shown, &key_json)?;
        return Ok(outcome);
    }
    let old = store.key_base(map, &company_shown, &key_json)?;
    let m = match take {
        // `resolve --take`: that app's row wins whole, or its absence deletes the other's.
        Some(side) if rows[side].is_none() => {
            let mut writes = [None, None];
            writes[side.other()] = Some(crate::Write::Delete);
            Merge {
                decision: crate::Decision { writes, key: key.clone(), base: Vec::new(), refused: Vec::new() },
                base: None,
                conflict: None,
            }
        }
        Some(side) => {
            let mut rules = shape.rules();
            rules.master = side;
            let decision = decide(&rules, rows);
            Merge { base: Some(decision.base.clone()), decision, conflict: None }
        }
        // Otherwise the rule of every sync: three ways against the key's merge base.
        None => {
            let mut sides = rows.map(|row| SideNow { row, ..SideNow::default() });
            if old.is_some() {
                for side in Side::BOTH {
                    if sides[side].row.is_none() && sides[side.other()].row.is_some() {
                        let reader = SideReader::new(side, company.clone()).regardless_of_filter();
                        let found =
                            reader_fetch(reader, conns[side].as_mut(), &shape, key.clone()).map_err(in_app(apps, &shape.apps[side]))?;
                        sides[side].deleted = !found;
                    }
                }
            }
            merge(&shape.merge_rules(), sides, old.as_deref())
        }
    };
    if let Some(c) = &m.conflict {
        store.record_conflict(&shape.conflict_record(&company_shown, key_json.clone(), c))?;
    }
    let decision = m.decision;
    for refused in &decision.refused {
        outcome.errors.push(shape.refused_error(&company_shown, key_json.clone(), refused));
    }
    for (side, write) in Side::BOTH.into_iter().zip(decision.writes) {
        let Some(write) = write else { continue };
        let verb = match write {
            crate::Write::Insert(_) => "inserted into",
            crate::Write::Update(_) => "updated in",
            crate::Write::Delete => "deleted from",
        };
        let mut writer = TargetWriter::new(&shape, side, company.clone());
        let applied = writer
            .apply(conns[side].as_mut(), &shape, vec![PendingOp { key: key.clone(), write, base: BaseUpdate::Untracked }])
            .map_err(in_app(apps, &shape.apps[side]))?;
        if applied.errors.is_empty() {
            outcome.actions.push(format!("{verb} {}", shape.apps[side]));
        }
        outcome.errors.extend(applied.errors);
    }
    if outcome.actions.is_empty() && outcome.errors.is_empty() {
        outcome.actions.push("already in sync".into());
    }
    if let Some(c) = m.conflict.as_ref().filter(|c| c.resolution.is_none()) {
        outcome.actions.push(format!("changed in both apps: parked as a conflict ({} columns) for `dualsync resolve`", c.columns.len()));
    }
    if outcome.ok() {
        // A key that failed keeps its old base, so the app that missed the write still looks behind.
        match m.base {
            Some(base) => store.record_key_bases(map, &company_shown, run_id, &[(key_json.clone(), base)])?,
            None => store.forget_keys(map, &company_shown, std::slice::from_ref(&key_json))?,
        }
        store.resolve_row(map, &company_shown, &key_json)?;
    } else {
        store.record_errors(run_id, &outcome.errors)?;
    }
    Ok(outcome)
}

/// Whether the app holds the key (however the reader selects).
fn reader_fetch(
    mut reader: SideReader,
    conn: &mut dyn dualsync_connectors::Connection,
    shape: &MapShape,
    key: Key,
) -> Result<bool, dualsync_connectors::ConnectorError> {
    Ok(!reader.fetch(conn, shape, vec![key])?.is_empty())
}

/// Retries open errors (all, one map's, or the given ids), each row once even
/// if it failed towards both apps.
pub fn retry_errors(
    config: &Config,
    apps: &Apps,
    store: &StateStore,
    map: Option<String>,
    ids: Vec<i64>,
) -> Result<(i64, Vec<KeyOutcome>), EngineError> {
    let errors = store.errors(&ErrorQuery { map, ids, ..Default::default() })?;
    let run_id = store.begin_run("retry")?;
    let mut done: Vec<(String, String, String)> = Vec::new();
    let mut outcomes = Vec::new();
    let result = (|| {
        for e in &errors {
            let row = (e.map.clone(), e.company.clone(), e.key.clone());
            if done.contains(&row) {
                continue;
            }
            done.push(row);
            if config.map(&e.map).is_none() {
                outcomes.push(not_retried(e, format!("map {} is no longer in the config; nothing to retry", e.map)));
                continue;
            }
            // Rows an import or a bootstrap could not write are fixed by running those again.
            if let Some(how) = rerun_instead(e) {
                outcomes.push(not_retried(e, how));
                continue;
            }
            let company = (!e.company.is_empty()).then(|| Value::Text(e.company.clone()));
            outcomes.push(reconcile_key(config, apps, store, run_id, &e.map, company, key_from_text(&e.key), None)?);
        }
        Ok(())
    })();
    let status = match &result {
        Err(_) => RunStatus::Failed,
        Ok(()) if outcomes.iter().all(KeyOutcome::ok) => RunStatus::Ok,
        Ok(()) => RunStatus::RowsFailed,
    };
    store.finish_run(run_id, status, result.as_ref().err().map(|e: &EngineError| e.to_string()).as_deref())?;
    result.map(|()| (run_id, outcomes))
}

/// How to retry an error that a sync's reconciliation cannot: one from `import` or `bootstrap-company`.
fn rerun_instead(e: &ErrorRecord) -> Option<String> {
    if e.source_app.starts_with("csv:") {
        Some(format!("logged by `dualsync import` of {}: fix the file and import it again", e.source_app.trim_start_matches("csv:")))
    } else if e.message.starts_with("bootstrap-company:") {
        Some("logged by `dualsync bootstrap-company`: fix the row and run it again".to_string())
    } else {
        None
    }
}

/// An error left open, with why.
fn not_retried(e: &ErrorRecord, why: String) -> KeyOutcome {
    KeyOutcome {
        map: e.map.clone(),
        company: e.company.clone(),
        key: e.key.clone(),
        actions: vec![],
        errors: vec![NewError { message: why, ..e.error.clone() }],
    }
}
