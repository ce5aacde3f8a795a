//! `dualsync sync`: every selected map, in lookup order; within a map, its
//! companies in parallel up to `workers` (one at a time for `threading = "single"`).
//! On a PostgreSQL store, every process running the same sync shares its
//! companies (queue.rs), and a stage ends when all of them are done.

mod one;
mod queue;

pub use one::{reconcile_key, retry_errors, KeyOutcome};

use crate::check::{preflight, Cause, Finding, Severity};
use crate::order::{run_order, Step};
use crate::pipeline::company::Company;
use crate::pipeline::record::Recorder;
use crate::pipeline::{chunks, companies_of, partition, AppWriter, Context};
use crate::shape::MapShape;
use crate::side::Side;
use crate::{Apps, EngineError};
use dualsync_model::config::Threading;
use dualsync_model::Config;
use dualsync_state::{Counts, RunStatus, StateStore};
use queue::{Queue, SharedJob};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Default)]
pub struct SyncOptions {
    /// Only these maps (and nothing else); all maps when empty.
    pub maps: Vec<String>,
    /// Only these companies; all when empty.
    pub companies: Vec<String>,
    /// Deletes past the mass-delete guard (`max_delete_percent`) are confirmed.
    pub allow_deletes: bool,
    /// Set to stop (SIGTERM): the companies under way finish, no other starts.
    pub stop: Option<&'static AtomicBool>,
}

impl SyncOptions {
    fn stopping(&self) -> bool {
        self.stop.is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst))
    }
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
    /// The job shared with the other processes of this sync (PostgreSQL store).
    pub job: Option<dualsync_state::SyncJob>,
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
    crate::link::verify(config, apps, written.iter().copied())?;
    apps.prepare_for_writing(written.iter().copied())?;
    // Held until the run ends: a second syncing process on a SQLite store is refused; on a
    // PostgreSQL store, the processes of the same sync share its companies.
    let claim = StateStore::join(&config.state, "sync")?;
    apps.fence_writes(&claim, written.iter().copied())?;
    let store = Arc::new(StateStore::open(&config.state)?);
    let store = &store;
    let shared = claim.worker().map(|w| SharedJob::join(store, w, &maps, &options.companies, config.state.chunk_rows)).transpose()?;
    let run_id = store.begin_run("sync")?;
    let recorder = Recorder::start(store.clone(), run_id);
    let ctx = Context {
        apps: apps.clone(),
        recorder: recorder.sender.clone(),
        rows_done,
        sink: Arc::new(AppWriter),
        store: Some(store.clone()),
        allow_deletes: options.allow_deletes,
        chunk: None,
        without_bases: false,
    };
    let mut report = SyncReport { run_id, job: shared.as_ref().map(|s| s.job.clone()), partitions: Vec::new(), warnings: Vec::new() };
    let run = Run { ctx: &ctx, store: store.clone(), run_id, options, observer, shared: shared.as_ref() };
    let outcome = (|| -> Result<(), EngineError> {
        // Stages one after the other; the maps of a stage side by side.
        for (index, stage) in run_order(config, &options.maps).stages.into_iter().enumerate() {
            let results: Vec<Result<(Vec<PartitionReport>, Vec<String>), EngineError>> = std::thread::scope(|scope| {
                let handles: Vec<_> = stage.iter().map(|step| scope.spawn(|| run_step(&run, config, index, step))).collect();
                handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(EngineError::Data("a map's thread panicked".into())))).collect()
            });
            for result in results {
                let (partitions, warnings) = result?;
                report.partitions.extend(partitions);
                report.warnings.extend(warnings);
            }
            let _ = ctx.wait_for_records(); // a refused record fails the run when the recorder finishes
            if options.stopping() {
                return Err(EngineError::Stopped(match &shared {
                    Some(s) => format!(
                        "stopped by a signal: the companies under way were finished and recorded, the others handed back; \
                         the other processes of sync job {} go on with them, or the next `dualsync sync` of the same maps \
                         resumes the job where it stopped",
                        s.job.id
                    ),
                    None => "stopped by a signal: the companies under way were finished and recorded; run `dualsync sync` \
                             again to sync the rest (what is already in both apps is found unchanged)"
                        .into(),
                }));
            }
        }
        if let Some(shared) = &shared {
            store.end_sync_job(shared.job.id)?;
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

/// What the steps of one sync run share.
struct Run<'a> {
    ctx: &'a Context,
    store: Arc<StateStore>,
    run_id: i64,
    options: &'a SyncOptions,
    observer: &'a dyn Observer,
    shared: Option<&'a SharedJob>,
}

/// One map of a stage: its companies, then its partitions.
fn run_step(run: &Run, config: &Config, stage: usize, step: &Step) -> Result<(Vec<PartitionReport>, Vec<String>), EngineError> {
    let (map, shape) = MapShape::of_step(step, config);
    let shape = shape.with_write_batches(&map, &run.ctx.apps);
    let mut warnings = Vec::new();
    let companies = companies_of(run.ctx, &shape, &run.options.companies, &mut warnings)?;
    let warnings = if step.deferred.is_empty() { warnings } else { Vec::new() }; // said once, by the full pass
    run.observer.map_started(&step.label(), companies.len());
    let queue = Queue::new(run.shared.map(|s| (run.store.clone(), s)), stage, step.label(), companies)?;
    // A first pass is not complete: its cleanup (forget unseen keys, resolve errors) waits for the second.
    let partitions = run_partitions(run, &shape, queue, step.deferred.is_empty())?;
    Ok((partitions, warnings))
}

/// How `dualsync sync` treats the selected maps.
#[derive(Debug, Default, PartialEq)]
pub struct SyncModes {
    /// Started maps (capture installed): only their captured changes are reconciled.
    pub incremental: Vec<String>,
    /// The maps to diff whole, as `SyncOptions::maps` takes them (empty: every map).
    pub full: Vec<String>,
    /// Whether there is anything to diff whole.
    pub any_full: bool,
}

/// Which selected maps (all when `only` is empty) a sync diffs whole and which
/// it reconciles from their captured changes: a started map takes the
/// incremental path unless `full` is asked for.
pub fn sync_modes(config: &Config, only: &[String], full: bool) -> Result<SyncModes, EngineError> {
    let selected = selected_maps(config, only)?;
    let incremental: Vec<String> = if full || !StateStore::exists(&config.state) {
        Vec::new()
    } else {
        let states = StateStore::open(&config.state)?.map_states()?;
        selected.iter().filter(|m| states.iter().any(|s| &s.map == *m)).cloned().collect()
    };
    let rest: Vec<String> = selected.into_iter().filter(|m| !incremental.contains(m)).collect();
    let any_full = !rest.is_empty();
    // With no started map, the run covers `only` as given (empty: every map).
    let full = if incremental.is_empty() { only.to_vec() } else { rest };
    Ok(SyncModes { incremental, full, any_full })
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

fn run_partitions(run: &Run, shape: &MapShape, queue: Queue, complete: bool) -> Result<Vec<PartitionReport>, EngineError> {
    let (ctx, store) = (run.ctx, &*run.store);
    let results = Mutex::new(Vec::new());
    let concurrent = Side::BOTH.map(|s| shape.threading == Threading::Multi && ctx.apps.connector(&shape.apps[s]).concurrent_writes());
    let workers = shape.workers.min(queue.len()).max(1);
    // Workers left over once every company has one write batches of a company in parallel.
    let writers = Side::BOTH.map(|s| if concurrent[s] { (shape.workers / workers).max(1) } else { 1 });
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<(), EngineError> {
                    while let Some((company, unit)) = queue.next(run.options.stop)? {
                        let shown = company.as_ref().map(|c| c.display().into_owned()).unwrap_or_default();
                        // A shared company's writes are fenced by its item's epoch.
                        let fenced = unit.as_ref().map(|u| ctx.for_unit(u));
                        let ctx = fenced.as_ref().unwrap_or(ctx);
                        let resolved = company.map(|code| Company::resolve(&ctx.apps, shape, code)).transpose();
                        // A big company of a shared sync is cut into chunks of keys, which any worker takes.
                        if let (Ok(company), Some(unit), Some(rows)) = (&resolved, &unit, queue.chunk_rows()) {
                            if unit.chunk.is_none() {
                                let bounds = chunks::chunk_bounds(ctx, shape, company, rows)?;
                                if !bounds.is_empty() {
                                    queue.split(unit, &shape.name, &bounds)?;
                                    continue;
                                }
                            }
                        }
                        let id = store.begin_partition(run.run_id, &shape.name, &shown, [&shape.apps[0], &shape.apps[1]])?;
                        let span = unit.as_ref().and_then(queue::span_of);
                        // A chunk's cleanup waits for its company's last chunk (`queue.finish`).
                        let whole = complete && span.is_none();
                        let (counts, error) = match resolved {
                            Ok(company) => partition::sync_partition(ctx, shape, company, span, whole, writers),
                            Err(e) => (Counts::default(), Some(e)),
                        };
                        if let Some(unit) = unit {
                            queue.finish(ctx, unit, error.as_ref().map(|e| e.to_string()), run.run_id, &shape.name, complete);
                        }
                        let status = match (&error, counts.failed_total()) {
                            (Some(_), _) => RunStatus::Failed,
                            (None, 0) => RunStatus::Ok,
                            (None, _) => RunStatus::RowsFailed,
                        };
                        let error = error.map(|e| e.to_string());
                        store.finish_partition(id, &counts, status, error.as_deref())?;
                        let report = PartitionReport { map: shape.name.clone(), apps: shape.apps.clone(), company: shown, counts, error };
                        run.observer.partition_done(&report);
                        results.lock().unwrap().push(report);
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().unwrap_or_else(|_| Err(EngineError::Data("a partition worker panicked".into()))))
    })?;
    let mut out = results.into_inner().unwrap();
    out.sort_by(|a, b| a.company.cmp(&b.company));
    Ok(out)
}
