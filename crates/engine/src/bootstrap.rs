//! `dualsync bootstrap-company`: give the rows of one app that have no company
//! (the seed's "bootstrap for company code") a company, in batches, so they
//! take part in the next sync. A dry run only counts.

use crate::apps::in_app;
use crate::{Apps, EngineError};
use dualsync_connectors::{ScanRequest, Selection, WriteBatch, WriteOp};
use dualsync_model::config::DEFAULT_BATCH_SIZE;
use dualsync_model::row::key_to_json;
use dualsync_model::{Config, Filter, Value};
use dualsync_state::{NewError, StateStore};

#[derive(Debug, Default)]
pub struct BootstrapReport {
    pub table: String,
    pub column: String,
    /// Rows without a company that match the map's filter and `--where`.
    pub candidates: u64,
    pub updated: u64,
    /// Rows the database refused (a key the company already holds, say); in the error log.
    pub failed: Vec<NewError>,
    /// For a started map: what taking the rows to the other app did.
    pub propagated: dualsync_state::Counts,
}

pub struct Bootstrap<'a> {
    pub map: &'a str,
    pub app: &'a str,
    pub company: &'a str,
    pub filter: Option<Filter>,
    pub dry_run: bool,
}

pub fn bootstrap_company(
    config: &Config,
    apps: &Apps,
    store: Option<&StateStore>,
    b: &Bootstrap<'_>,
) -> Result<BootstrapReport, EngineError> {
    let map = config.map(b.map).ok_or_else(|| EngineError::Usage(format!("there is no map named {:?}", b.map)))?;
    let side = map
        .side_of_app(b.app)
        .ok_or_else(|| EngineError::Usage(format!("map {} joins apps {} and {}, not {:?}", map.name, map.app(0), map.app(1), b.app)))?;
    let s = &map.sides[side];
    let column = s.company.clone().ok_or_else(|| EngineError::Usage(format!("map {} has no company column: it is global", map.name)))?;
    let filter = match (s.filter.clone(), b.filter.clone()) {
        (Some(a), Some(w)) => Some(Filter::And(Box::new(a), Box::new(w))),
        (a, w) => a.or(w),
    };
    let selection = Selection { table: s.table.clone(), filter, equals: vec![(column.clone(), Value::Null)], range: None };
    let on_app = in_app(apps, b.app);
    let mut reader = apps.connect(b.app)?;
    let mut report = BootstrapReport { table: s.table.clone(), column: column.clone(), ..Default::default() };
    report.candidates = reader.count(&selection).map_err(&on_app)?;
    if b.dry_run || report.candidates == 0 {
        return Ok(report);
    }
    // The scan reads the table while the writer updates it.
    apps.prepare_for_writing([b.app])?;
    let mut writer = apps.connect(b.app)?;
    // A started map takes the rows to the other app as they get their company (capture skips dualsync's writes).
    let started = match store {
        Some(store) if store.map_state(b.map)?.is_some() => Some((store, store.begin_run("bootstrap-company")?)),
        _ => None,
    };
    let request = ScanRequest { selection, columns: s.key.clone(), order_by: s.key.clone(), batch_size: DEFAULT_BATCH_SIZE };
    let mut failure = None;
    reader
        .scan(&request, &mut |keys| {
            // Only rows whose company is still NULL are touched (the scope), whatever happened meanwhile.
            let batch = WriteBatch {
                table: s.table.clone(),
                columns: Vec::new(),
                key_columns: s.key.clone(),
                scope: vec![(column.clone(), Value::Null)],
                ops: keys
                    .iter()
                    .map(|k| WriteOp::Update { key: k.clone(), set: vec![(column.clone(), Value::Text(b.company.to_string()))] })
                    .collect(),
            };
            match writer.write(&batch) {
                Ok(outcome) => {
                    report.updated += (keys.len() - outcome.failures.len()) as u64;
                    let refused: Vec<usize> = outcome.failures.iter().map(|f| f.index).collect();
                    if let Some((store, run)) = started {
                        let written = keys
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| !refused.contains(i))
                            .map(|(_, k)| std::iter::once(Value::Text(b.company.to_string())).chain(k.iter().cloned()).collect())
                            .collect();
                        match crate::live::propagate_written(config, apps, store, run, map, b.app, written) {
                            Ok(counts) => report.propagated.add(&counts),
                            Err(e) => {
                                failure = Some(e);
                                return false;
                            }
                        }
                    }
                    for f in outcome.failures {
                        report.failed.push(NewError {
                            map: map.name.clone(),
                            company: b.company.to_string(),
                            source_app: b.app.to_string(),
                            target_app: b.app.to_string(),
                            key: key_to_json(&keys[f.index]),
                            column: Some(column.clone()),
                            value: Some(b.company.to_string()),
                            message: format!("bootstrap-company: {} refused the row: {}", b.app, f.message),
                        });
                    }
                    true
                }
                Err(e) => {
                    failure = Some(on_app(e));
                    false
                }
            }
        })
        .map_err(&on_app)?;
    if let Some(e) = failure {
        return Err(e);
    }
    if let Some(store) = store.filter(|_| !report.failed.is_empty() || started.is_some()) {
        let run = match started {
            Some((_, run)) => run,
            None => store.begin_run("bootstrap-company")?,
        };
        store.record_errors(run, &report.failed)?;
        let failed = !report.failed.is_empty() || report.propagated.failed_total() > 0;
        store.finish_run(run, if failed { dualsync_state::RunStatus::RowsFailed } else { dualsync_state::RunStatus::Ok }, None)?;
    }
    Ok(report)
}
