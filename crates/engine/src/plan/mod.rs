//! `dualsync plan`: the seed's guidance matrix, computed from the real data.
//! Every map and company goes through the sync's own pipeline in a dry run:
//! both sides read and merged, every write converted, checked against the
//! target table and written in a transaction that is rolled back (so the
//! database's own checks speak, and the write rate is measured). Nothing is
//! left in either app or in the state store.

pub mod check;
mod dry_run;

use crate::check::{preflight, Finding, Severity};
use crate::order::run_order;
use crate::pipeline::company::Company;
use crate::pipeline::deletes::Guard;
use crate::pipeline::record::Record;
use crate::pipeline::{companies_of, partition, Context};
use crate::shape::MapShape;
use crate::side::Side;
use crate::sync::selected_maps;
use crate::{Apps, EngineError};
use dry_run::DryRun;
use dualsync_model::config::Threading;
use dualsync_model::Config;
use dualsync_state::{Counts, NewError, StateStore};
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The seed's volumes above which its product needs another approach; shown to compare.
const SEED_ROW_CAP: u64 = 500_000;
const SEED_SINGLE_THREADED_CAP: u64 = 70_000;
const EXAMPLES: usize = 5;

/// Write probes per (app, table): rows written (and rolled back) and seconds.
#[derive(Default)]
pub struct Probes {
    done: Mutex<HashMap<(String, String), (usize, f64)>>,
}

impl Probes {
    /// Adds a probe of `rows` rows into a table that took `seconds`.
    pub fn record(&self, app: &str, table: &str, rows: usize, seconds: f64) {
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        let entry = done.entry((app.to_string(), table.to_string())).or_default();
        entry.0 += rows;
        entry.1 += seconds;
    }

    /// The app's write rate over every table probed there.
    fn rate(&self, app: &str) -> Option<f64> {
        let done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        let (rows, secs) =
            done.iter().filter(|((a, _), _)| a == app).fold((0usize, 0f64), |(r, s), (_, (rows, secs))| (r + rows, s + secs));
        (rows > 0 && secs > 0.0).then(|| rows as f64 / secs)
    }
}

#[derive(Clone, Debug)]
pub struct PartitionPlan {
    pub map: String,
    pub apps: [String; 2],
    pub company: String,
    /// Rows each app holds (within the map's filter and company).
    pub rows: [u64; 2],
    /// Rows each app would receive: inserted, updated.
    pub inserts: [u64; 2],
    pub updates: [u64; 2],
    /// Rows each app would lose (keys deleted in the other app since the last sync).
    pub deletes: [u64; 2],
    pub unchanged: u64,
    pub failing: u64,
    pub approach: String,
    /// How the seed's product would treat this volume, where it differs.
    pub seed_note: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Problem {
    pub kind: &'static str,
    pub map: String,
    pub count: u64,
    /// Up to five keys, with the company where there is one.
    pub examples: Vec<String>,
    pub message: String,
}

#[derive(Debug)]
pub struct Plan {
    pub findings: Vec<Finding>,
    /// Stages of maps (a stage's maps run side by side).
    pub order: Vec<Vec<String>>,
    pub partitions: Vec<PartitionPlan>,
    pub problems: Vec<Problem>,
    pub warnings: Vec<String>,
    /// Seconds the dry run took to read and compare everything (measured).
    pub read_seconds: f64,
    /// Measured write rate per app (rows/s), from the probe.
    pub write_rates: Vec<(String, f64)>,
    /// The dry run's reading plus the writes at the measured rates.
    pub estimate_seconds: f64,
}

impl Plan {
    /// The plan as `dualsync plan --format json` prints it and the service's plan job reports it.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        json!({
            "order": self.order,
            "partitions": self.partitions.iter().map(|r| json!({
                "map": r.map, "company": r.company, "apps": r.apps, "rows": r.rows, "inserts": r.inserts, "updates": r.updates, "deletes": r.deletes,
                "unchanged": r.unchanged, "failing": r.failing, "approach": r.approach, "seed_note": r.seed_note,
            })).collect::<Vec<_>>(),
            "problems": self.problems.iter().map(|x| json!({"kind": x.kind, "map": x.map, "rows": x.count, "examples": x.examples, "message": x.message})).collect::<Vec<_>>(),
            "findings": self.findings.iter().map(Finding::to_json).collect::<Vec<_>>(),
            "warnings": self.warnings,
            "read_seconds": self.read_seconds,
            "write_rates": self.write_rates.iter().map(|(app, rate)| json!({"app": app, "rows_per_second": rate})).collect::<Vec<_>>(),
            "estimate_seconds": self.estimate_seconds,
        })
    }
}

pub fn plan(config: &Config, apps: &Apps, only: &[String]) -> Result<Plan, EngineError> {
    let maps = selected_maps(config, only)?;
    let findings = preflight(config, apps, &maps);
    let order: Vec<Vec<String>> = run_order(config, only).stages.iter().map(|s| s.iter().map(|step| step.label()).collect()).collect();
    let mut plan = Plan {
        findings,
        order,
        partitions: Vec::new(),
        problems: Vec::new(),
        warnings: Vec::new(),
        read_seconds: 0.0,
        write_rates: Vec::new(),
        estimate_seconds: 0.0,
    };
    if plan.findings.iter().any(|f| f.severity == Severity::Error) {
        return Ok(plan); // the data cannot be read as configured: the findings say why
    }
    // Problems arrive where a sync's recorder would be; nothing reaches the state store.
    let (sender, receiver) = sync_channel::<Record>(64);
    let collector = std::thread::spawn(move || {
        let mut problems: Vec<NewError> = Vec::new();
        for record in receiver {
            if let Record::Errors(e) = record {
                problems.extend(e);
            }
        }
        problems
    });
    let probes = Arc::new(Probes::default());
    // Merge bases are read where a sync keeps them; every delete is counted (the guard is applied below).
    let store = if StateStore::exists(&config.state) { Some(Arc::new(StateStore::open(&config.state)?)) } else { None };
    let ctx = Context {
        apps: apps.clone(),
        recorder: sender,
        rows_done: Arc::new(AtomicU64::new(0)),
        sink: Arc::new(DryRun { probes: probes.clone() }),
        store,
        allow_deletes: true,
        chunk: None,
        without_bases: false,
    };
    let started = Instant::now();
    let mut seen = Vec::new();
    let result = (|| -> Result<(), EngineError> {
        for stage in run_order(config, only).stages {
            for step in stage {
                // A cycle's first pass shows what can be written; its lookups resolve in the second.
                if seen.contains(&step.map) {
                    continue;
                }
                seen.push(step.map.clone());
                let map = step.map_config(config);
                let shape = MapShape::new(&map, config).with_write_batches(&map, apps);
                for company in companies_of(&ctx, &shape, &[], &mut plan.warnings)? {
                    let resolved = company.map(|code| Company::resolve(apps, &shape, code)).transpose()?;
                    let shown = Company::shown(&resolved);
                    let (counts, error) = partition::sync_partition(&ctx, &shape, resolved, None, false, [1, 1]);
                    if let Some(e) = error {
                        return Err(e);
                    }
                    let guard = Guard::new(&shape, false, counts.read);
                    if let Some(s) = Side::BOTH.into_iter().find(|&s| guard.trips(s, counts.deleted[s])) {
                        plan.warnings
                            .push(format!("`dualsync sync` would stop here: {}", guard.stop(&shape, &shown, s, counts.deleted[s])));
                    }
                    plan.partitions.push(partition_plan(&shape, shown, &counts));
                }
            }
        }
        Ok(())
    })();
    drop(ctx);
    let problems = collector.join().unwrap_or_default();
    result?;
    plan.read_seconds = started.elapsed().as_secs_f64();
    plan.problems = summarize(problems);
    // The dry run did a sync's work but for the commits: its time is the estimate.
    let apps_written: std::collections::BTreeSet<&str> = plan
        .partitions
        .iter()
        .flat_map(|p| Side::BOTH.into_iter().filter(|&s| p.inserts[s] + p.updates[s] + p.deletes[s] > 0).map(|s| p.apps[s].as_str()))
        .collect();
    for app in apps_written {
        if let Some(rate) = probes.rate(app) {
            plan.write_rates.push((app.to_string(), rate));
        }
    }
    plan.write_rates.sort_by(|a, b| a.0.cmp(&b.0));
    plan.estimate_seconds = plan.read_seconds;
    Ok(plan)
}

fn partition_plan(shape: &MapShape, company: String, c: &Counts) -> PartitionPlan {
    let rows = c.read;
    let (a, b) = (&shape.apps[0], &shape.apps[1]);
    let approach = match (rows[0], rows[1]) {
        (0, 0) => "nothing to sync: both apps are empty here".to_string(),
        (_, 0) if c.deleted[0] > 0 => format!("{b} holds none of the rows synced before: deletes in {a}; check {b} before syncing"),
        (0, _) if c.deleted[1] > 0 => format!("{a} holds none of the rows synced before: deletes in {b}; check {a} before syncing"),
        (_, 0) => format!("one-way copy {a} → {b} (initial sync; {b} is new here)"),
        (0, _) => format!("one-way copy {b} → {a} (initial sync; {a} is new here)"),
        _ if c.written() == 0 => "already in step: nothing to write".to_string(),
        _ => format!("bidirectional merge ({} wins conflicts)", shape.apps[shape.master]),
    };
    let volume = rows[0].max(rows[1]);
    let seed_note = if volume > SEED_ROW_CAP {
        Some(format!("{volume} rows: the seed caps a run at {SEED_ROW_CAP} and would have you migrate outside it; dualsync has no cap"))
    } else if shape.threading == Threading::Single && volume > SEED_SINGLE_THREADED_CAP {
        Some(format!(
            "{volume} rows in a single-threaded map: the seed times out above {SEED_SINGLE_THREADED_CAP}; dualsync still writes in batches"
        ))
    } else {
        None
    };
    PartitionPlan {
        map: shape.name.clone(),
        apps: shape.apps.clone(),
        company,
        rows,
        inserts: c.inserted,
        updates: c.updated,
        deletes: c.deleted,
        unchanged: c.unchanged,
        failing: c.failed_total(),
        approach,
        seed_note,
    }
}

/// The kind of a problem, from what its message says.
fn kind_of(message: &str) -> &'static str {
    match message {
        m if m.starts_with("duplicate key") => "duplicate keys",
        m if m.starts_with("lookup to map") => "orphan lookups (the referenced row exists in neither app)",
        m if m.contains("refers to no row") => "lookups holding ids of rows that do not exist",
        m if m.contains("has no entry in the column's values") => "values without an entry in the column's values",
        m if m.contains("is NOT NULL") => "NULL where the target forbids it",
        m if m.contains("longer than") => "values too long for the target",
        m if m.contains("is not a number") || m.contains("rounded") => "values the target column's type cannot hold",
        m if m.starts_with("company ") => "companies missing in an app's companies table",
        _ => "rows the target database would refuse",
    }
}

fn summarize(problems: Vec<NewError>) -> Vec<Problem> {
    let mut out: Vec<Problem> = Vec::new();
    for e in problems {
        let kind = kind_of(&e.message);
        let example = if e.company.is_empty() { e.key.clone() } else { format!("{} {}", e.company, e.key) };
        match out.iter_mut().find(|p| p.kind == kind && p.map == e.map) {
            Some(p) => {
                p.count += 1;
                if p.examples.len() < EXAMPLES {
                    p.examples.push(example);
                }
            }
            None => out.push(Problem { kind, map: e.map, count: 1, examples: vec![example], message: e.message }),
        }
    }
    out
}
