//! `dualsync sync`: every selected map, in lookup order; within a map, its
//! companies in parallel up to `workers` (one at a time for `threading = "single"`).

pub mod company;
pub(crate) mod deletes;
mod join;
mod one;
pub(crate) mod partition;
pub(crate) mod read;
pub(crate) mod record;
mod spool;
pub(crate) mod write;

pub use one::{reconcile_key, retry_errors, KeyOutcome};

use crate::apps::in_app;
use crate::check::{preflight, Cause, Finding, Severity};
use crate::order::{run_order, Step};
use crate::shape::MapShape;
use crate::side::Side;
use crate::{Apps, EngineError};
use company::Company;
use dualsync_connectors::Selection;
use dualsync_model::config::Threading;
use dualsync_model::{Config, Value};
use dualsync_state::{Counts, RunStatus, StateStore};
use record::{Record, Recorder};
use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Default)]
pub struct SyncOptions {
    /// Only these maps (and nothing else); all maps when empty.
    pub maps: Vec<String>,
    /// Only these companies; all when empty.
    pub companies: Vec<String>,
    /// Deletes past the mass-delete guard (`max_delete_percent`) are confirmed.
    pub allow_deletes: bool,
}

/// What a sync reports as it goes (the CLI draws progress from it).
pub trait Observer: Sync {
    fn map_started(&self, _map: &str, _partitions: usize) {}
    fn partition_done(&self, _report: &PartitionReport) {}
}

pub struct NoObserver;
impl Observer for NoObserver {}

#[derive(Clone, Debug)]
pub struct PartitionReport {
    pub map: String,
    pub apps: [String; 2],
    /// The company value, or '' for a map without company.
    pub company: String,
    pub counts: Counts,
    /// Why the partition stopped early, if it did.
    pub error: Option<String>,
}

#[derive(Debug)]
pub struct SyncReport {
    pub run_id: i64,
    pub partitions: Vec<PartitionReport>,
    /// Things the user should know that did not fail any row (rows without company).
    pub warnings: Vec<String>,
}

impl SyncReport {
    pub fn status(&self) -> RunStatus {
        if self.partitions.iter().any(|p| p.error.is_some()) {
            RunStatus::Failed
        } else if self.partitions.iter().any(|p| p.counts.failed_total() > 0) {
            RunStatus::RowsFailed
        } else {
            RunStatus::Ok
        }
    }

    pub fn totals(&self) -> Counts {
        let mut t = Counts::default();
        self.partitions.iter().for_each(|p| t.add(&p.counts));
        t
    }
}

/// What every partition of a run shares.
pub(crate) struct Context {
    pub apps: Apps,
    pub recorder: SyncSender<Record>,
    pub rows_done: Arc<AtomicU64>,
    /// Set for `plan`: writers check and probe instead of writing.
    pub plan: Option<Arc<crate::plan::Probes>>,
    /// Where the merge bases are read (None: there are none yet).
    pub store: Option<Arc<StateStore>>,
    /// The run confirmed deletes past the mass-delete guard.
    pub allow_deletes: bool,
}

impl Context {
    pub(crate) fn send(&self, record: Record) {
        // The recorder only stops when the run ends; a failed store is reported by finish().
        let _ = self.recorder.send(record);
    }

    /// Waits until the recorder has stored everything sent so far: the next
    /// stage (a cycle's second pass) reads the merge bases this one recorded.
    pub(crate) fn wait_for_records(&self) {
        let (done, stored) = std::sync::mpsc::channel();
        if self.recorder.send(Record::Barrier(done)).is_ok() {
            let _ = stored.recv();
        }
    }
}

/// Runs a sync. The state store is opened only once the preflight has passed,
/// so a config that does not fit the apps writes nothing anywhere.
pub fn run_sync(
    config: &Config,
    apps: &Apps,
    options: &SyncOptions,
    observer: &dyn Observer,
    rows_done: Arc<AtomicU64>,
) -> Result<SyncReport, EngineError> {
    let maps = selected_maps(config, &options.maps)?;
    let findings = preflight(config, apps, &maps);
    let errors: Vec<&Finding> = findings.iter().filter(|f| f.severity == Severity::Error).collect();
    if !errors.is_empty() {
        let list = errors.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("\n  ");
        return Err(EngineError::Preflight {
            message: format!("nothing was written: the checks before the run failed:\n  {list}"),
            environment: errors.iter().any(|f| f.cause == Cause::Environment),
        });
    }
    let written: std::collections::BTreeSet<&str> = maps.iter().filter_map(|m| config.map(m)).flat_map(|m| [m.app(0), m.app(1)]).collect();
    apps.prepare_for_writing(written)?;
    let store = Arc::new(StateStore::open(&config.state)?);
    let store = &store;
    let run_id = store.begin_run("sync")?;
    let recorder = Recorder::start(store.clone(), run_id);
    let ctx = Context {
        apps: apps.clone(),
        recorder: recorder.sender.clone(),
        rows_done,
        plan: None,
        store: Some(store.clone()),
        allow_deletes: options.allow_deletes,
    };
    let mut report = SyncReport { run_id, partitions: Vec::new(), warnings: Vec::new() };
    let outcome = (|| -> Result<(), EngineError> {
        // Stages one after the other; the maps of a stage side by side.
        for stage in run_order(config, &options.maps).stages {
            let results: Vec<Result<(Vec<PartitionReport>, Vec<String>), EngineError>> = std::thread::scope(|scope| {
                let handles: Vec<_> =
                    stage.iter().map(|step| scope.spawn(|| run_step(&ctx, config, store, run_id, step, options, observer))).collect();
                handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(EngineError::Data("a map's thread panicked".into())))).collect()
            });
            for result in results {
                let (partitions, warnings) = result?;
                report.partitions.extend(partitions);
                report.warnings.extend(warnings);
            }
            ctx.wait_for_records();
        }
        Ok(())
    })();
    drop(ctx);
    let recorded = recorder.finish();
    let status = match (&outcome, &recorded) {
        (Ok(()), Ok(())) => report.status(),
        _ => RunStatus::Failed,
    };
    let message = outcome.as_ref().err().map(|e| e.to_string()).or_else(|| recorded.as_ref().err().map(|e| e.to_string()));
    store.finish_run(run_id, status, message.as_deref())?;
    outcome?;
    recorded?;
    Ok(report)
}

/// One map of a stage: its companies, then its partitions.
fn run_step(
    ctx: &Context,
    config: &Config,
    store: &Arc<StateStore>,
    run_id: i64,
    step: &Step,
    options: &SyncOptions,
    observer: &dyn Observer,
) -> Result<(Vec<PartitionReport>, Vec<String>), EngineError> {
    let (map, shape) = MapShape::of_step(step, config);
    let shape = shape.with_write_batches(&map, &ctx.apps);
    let mut warnings = Vec::new();
    let companies = companies_of(ctx, &shape, &options.companies, &mut warnings)?;
    let warnings = if step.deferred.is_empty() { warnings } else { Vec::new() }; // said once, by the full pass
    observer.map_started(&step.label(), companies.len());
    // A first pass is not complete: its cleanup (forget unseen keys, resolve errors) waits for the second.
    let partitions = run_partitions(ctx, store, run_id, &shape, companies, observer, step.deferred.is_empty())?;
    Ok((partitions, warnings))
}

/// The maps a run covers (all when `only` is empty), after checking that each named map exists.
/// The order they run in is `order::run_order`'s.
pub fn selected_maps(config: &Config, only: &[String]) -> Result<Vec<String>, EngineError> {
    for m in only {
        if config.map(m).is_none() {
            let names: Vec<&str> = config.maps.iter().map(|m| m.name.as_str()).collect();
            return Err(EngineError::Usage(format!("there is no map named {m:?}; maps in the config: {}", names.join(", "))));
        }
    }
    Ok(config.maps.iter().filter(|m| only.is_empty() || only.contains(&m.name)).map(|m| m.name.clone()).collect())
}

/// The companies present on either side (all of them, in key order), or one
/// partition for a global map. Rows without a company are counted and reported.
pub(crate) fn companies_of(
    ctx: &Context,
    shape: &MapShape,
    only: &[String],
    warnings: &mut Vec<String>,
) -> Result<Vec<Option<Value>>, EngineError> {
    if shape.company[0].is_none() {
        return Ok(vec![None]);
    }
    let mut all: Vec<Value> = Vec::new();
    for side in Side::BOTH {
        let app = &shape.apps[side];
        let column = shape.company[side].as_ref().expect("company map");
        let mut conn = ctx.apps.connect(app)?;
        let selection = Selection { table: shape.tables[side].clone(), filter: shape.filter[side].clone(), equals: Vec::new() };
        let values = conn.distinct(&selection, column).map_err(in_app(&ctx.apps, app))?;
        if values.iter().any(Value::is_null) {
            let mut no_company = selection.clone();
            no_company.equals.push((column.clone(), Value::Null));
            let n = conn.count(&no_company).map_err(in_app(&ctx.apps, app))?;
            warnings.push(format!(
                "map {}: {n} row{} of {app}.{} {} no company ({column} is NULL) and take no part; give them a company to sync them",
                shape.name,
                if n == 1 { "" } else { "s" },
                shape.tables[side],
                if n == 1 { "has" } else { "have" },
            ));
        }
        let (codes, unknown) = company::codes_of(&ctx.apps, shape, side, values.into_iter().filter(|v| !v.is_null()).collect())?;
        if unknown > 0 {
            let lookup = shape.company_lookup[side].as_ref().expect("ids only with a company lookup");
            warnings.push(format!(
                "map {}: {unknown} company value{} of {app}.{}.{column} refer to no row of {app}.{} (map {}); their rows take no part",
                shape.name,
                if unknown == 1 { "" } else { "s" },
                shape.tables[side],
                lookup.table,
                lookup.map
            ));
        }
        all.extend(codes);
    }
    all.sort_by(|a, b| a.key_cmp(b));
    all.dedup_by(|a, b| a.same_as(b));
    if !only.is_empty() {
        all.retain(|v| only.iter().any(|c| c.as_str() == v.display()));
    }
    Ok(all.into_iter().map(Some).collect())
}

fn run_partitions(
    ctx: &Context,
    store: &StateStore,
    run_id: i64,
    shape: &MapShape,
    companies: Vec<Option<Value>>,
    observer: &dyn Observer,
    complete: bool,
) -> Result<Vec<PartitionReport>, EngineError> {
    let queue = Mutex::new(companies.into_iter().collect::<VecDeque<_>>());
    let results = Mutex::new(Vec::new());
    let workers = shape.workers.min(queue.lock().unwrap().len()).max(1);
    // Workers left over once every company has one write batches of a company in parallel.
    let writers = Side::BOTH.map(|s| {
        let concurrent = shape.threading == Threading::Multi && ctx.apps.connector(&shape.apps[s]).concurrent_writes();
        if concurrent {
            (shape.workers / workers).max(1)
        } else {
            1
        }
    });
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<(), EngineError> {
                    loop {
                        let Some(company) = queue.lock().unwrap().pop_front() else {
                            return Ok(());
                        };
                        let shown = company.as_ref().map(|c| c.display().into_owned()).unwrap_or_default();
                        let id = store.begin_partition(run_id, &shape.name, &shown, [&shape.apps[0], &shape.apps[1]])?;
                        let resolved = company.map(|code| Company::resolve(&ctx.apps, shape, code)).transpose();
                        let (counts, error) = match resolved {
                            Ok(company) => partition::sync_partition(ctx, shape, company, complete, writers),
                            Err(e) => (Counts::default(), Some(e)),
                        };
                        let status = match (&error, counts.failed_total()) {
                            (Some(_), _) => RunStatus::Failed,
                            (None, 0) => RunStatus::Ok,
                            (None, _) => RunStatus::RowsFailed,
                        };
                        let error = error.map(|e| e.to_string());
                        store.finish_partition(id, &counts, status, error.as_deref())?;
                        let report = PartitionReport { map: shape.name.clone(), apps: shape.apps.clone(), company: shown, counts, error };
                        observer.partition_done(&report);
                        results.lock().unwrap().push(report);
                    }
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().unwrap_or_else(|_| Err(EngineError::Data("a partition worker panicked".into()))))
    })?;
    let mut out = results.into_inner().unwrap();
    out.sort_by(|a, b| a.company.cmp(&b.company));
    Ok(out)
}
