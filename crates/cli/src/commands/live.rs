//! Live sync: `start`, `pause`, `resume`, `stop`, `run`, and the conflict
//! queue (`conflicts`, `resolve`).

use crate::cli::{Cli, ConflictsArgs, ResolveArgs, RunArgs, StartArgs};
use crate::exit::{CliResult, OK, ROWS_FAILED};
use crate::output::{cell, is_json, print_json, Table};
use crate::progress::Progress;
use dualsync_connectors::CaptureWay;
use dualsync_engine::live::{self, LiveObserver, LiveOptions, LiveReport};
use dualsync_engine::Apps;
use dualsync_model::Config;
use dualsync_state::{Counts, RunStatus, StateStore};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

/// Set by SIGINT or SIGTERM: the loop finishes the batch in flight, saves its cursors and returns;
/// a sync finishes the companies under way and hands the others back.
pub static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_signal: libc::c_int) {
    // A second signal does not wait: it ends the process at once (as a kill does, losing nothing).
    if STOP.swap(true, SeqCst) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
}

pub fn stop_on_signals() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, request_stop as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, request_stop as *const () as libc::sighandler_t);
    }
}

pub fn start(cli: &Cli, config: &Config, args: &StartArgs) -> CliResult {
    let apps = Apps::open(config)?;
    let progress = Progress::new(cli.quiet || is_json(cli.format) || args.skip_initial);
    let started = Instant::now();
    let result = live::start_map(config, &apps, &args.map, args.skip_initial, &progress, progress.rows.clone(), None);
    progress.finish();
    let report = result?;
    let mut code = OK;
    if let Some(initial) = &report.initial {
        let store = StateStore::open(&config.state)?;
        super::sync::print_sync_report(cli, &store, initial, started.elapsed().as_secs_f64())?;
        if initial.status() == RunStatus::RowsFailed {
            code = ROWS_FAILED;
        }
    }
    if !is_json(cli.format) {
        for (app, choice) in &report.capture {
            match (apps.connector(app).capture_way(), choice.log, choice.why_not_log.first()) {
                (CaptureWay::Polling, ..) => println!("{app}: changes are polled by their change timestamp, deletes found by a key scan"),
                (CaptureWay::ChangeTracking, ..) => println!("{app}: changes are read through the service's change tracking"),
                (_, true, _) => println!("{app}: changes are read from the database's log"),
                (_, false, Some(_)) => println!("{app}: changes are captured by triggers (log capture: {})", choice.why_not_log.join("; ")),
                (_, false, None) => println!("{app}: changes are captured by triggers"),
            }
        }
        println!(
            "map {} is running: capture is on in both apps{}; `dualsync run` keeps it in step",
            args.map,
            if args.skip_initial { " (initial sync skipped)" } else { "" }
        );
    }
    Ok(code)
}

pub fn pause(config: &Config, map: &str) -> CliResult {
    live::pause_map(config, map)?;
    println!("map {map} is paused: its changes wait in the change tables until `dualsync resume {map}`");
    Ok(OK)
}

pub fn resume(config: &Config, map: &str) -> CliResult {
    live::resume_map(config, map)?;
    println!("map {map} is running; `dualsync run` applies what it queued, in order");
    Ok(OK)
}

pub fn stop(config: &Config, map: &str) -> CliResult {
    let apps = Apps::open(config)?;
    live::stop_map(config, &apps, map)?;
    println!("map {map} is stopped: capture is off; a later `dualsync start {map}` syncs it again first");
    Ok(OK)
}

/// Prints a line per batch of changes applied (plain lines: `run` is a service).
struct Lines {
    quiet: bool,
}

impl LiveObserver for Lines {
    fn applied(&self, map: &str, changes: usize, c: &Counts) {
        if !self.quiet {
            println!("{map}: {changes} change{} → {}", if changes == 1 { "" } else { "s" }, effect(c));
        }
    }
    fn problem(&self, map: &str, message: &str) {
        eprintln!("{}{message}", if map.is_empty() { String::new() } else { format!("{map}: ") });
    }
    fn paused(&self, map: &str, reason: &str) {
        eprintln!("{map}: PAUSED: {reason}");
    }
    fn purged(&self, p: &dualsync_state::Purged) {
        if !self.quiet && p.errors() + p.conflicts > 0 {
            println!("retention: deleted {} settled error(s) and {} settled conflict(s) from before {}", p.errors(), p.conflicts, p.before);
        }
    }
}

fn effect(c: &Counts) -> String {
    let mut parts = Vec::new();
    for (label, n) in [("inserted", c.inserted), ("updated", c.updated), ("deleted", c.deleted), ("failed", c.failed)] {
        if n[0] + n[1] > 0 {
            parts.push(format!("{label} {}/{}", n[0], n[1]));
        }
    }
    if c.conflicts > 0 {
        parts.push(format!("{} conflict{}", c.conflicts, if c.conflicts == 1 { "" } else { "s" }));
    }
    if parts.is_empty() {
        "already in step".into()
    } else {
        parts.join(", ")
    }
}

pub fn run(cli: &Cli, config: &Config, args: &RunArgs) -> CliResult {
    let apps = Apps::open(config)?;
    stop_on_signals();
    let options = LiveOptions { poll: Duration::from_millis(args.poll_ms), batch: args.batch, ..Default::default() };
    if !cli.quiet && !is_json(cli.format) {
        println!("live sync of every running map; stop with Ctrl-C or SIGTERM (the batch in flight finishes first)");
    }
    let report = live::run_live(config, &apps, &options, &STOP, &Lines { quiet: cli.quiet || is_json(cli.format) })?;
    print_live_report(cli, &report);
    Ok(OK)
}

/// `dualsync sync` on started maps: their captured changes, once.
pub fn catch_up(cli: &Cli, config: &Config, apps: &Apps, maps: Vec<String>) -> Result<LiveReport, crate::exit::CliError> {
    let options = LiveOptions { once: true, maps, ..Default::default() };
    Ok(live::run_live(config, apps, &options, &STOP, &Lines { quiet: cli.quiet || is_json(cli.format) })?)
}

pub fn print_live_report(cli: &Cli, report: &LiveReport) {
    if is_json(cli.format) {
        print_json(&json!({
            "run": report.run_id,
            "status": report.status().as_str(),
            "maps": report.maps.iter().map(|(m, (changes, c))| json!({
                "map": m, "changes": changes, "inserted": c.inserted, "updated": c.updated, "deleted": c.deleted,
                "failed": c.failed, "conflicts": c.conflicts,
            })).collect::<Vec<_>>(),
        }));
        return;
    }
    if cli.quiet {
        return;
    }
    for (map, (changes, c)) in &report.maps {
        println!("run {}: {map}: {changes} change{} → {}", report.run_id, if *changes == 1 { "" } else { "s" }, effect(c));
    }
    if report.maps.is_empty() {
        println!("run {}: no changes", report.run_id);
    }
}

pub fn conflicts(cli: &Cli, config: &Config, args: &ConflictsArgs) -> CliResult {
    let store = StateStore::open(&config.state)?;
    let list = store.conflicts(args.map.as_deref(), args.all)?;
    if is_json(cli.format) {
        print_json(&json!(list
            .iter()
            .map(|c| json!({
                "id": c.id, "map": c.conflict.map, "company": c.conflict.company, "key": c.conflict.key,
                "columns": c.conflict.columns, "values": c.conflict.values, "policy": c.conflict.policy,
                "resolution": c.conflict.resolution, "status": c.status, "detected_at": c.detected_at, "resolved_at": c.resolved_at,
            }))
            .collect::<Vec<_>>()));
        return Ok(OK);
    }
    let mut t = Table::new(&["id", "map", "company", "key", "columns", "app 0's row", "app 1's row", "status", "resolution"]);
    for c in &list {
        let row = |v: &Option<String>| v.as_deref().map_or("(deleted)".to_string(), |s| cell(s, 40));
        t.row(vec![
            c.id.to_string(),
            c.conflict.map.clone(),
            c.conflict.company.clone(),
            cell(&c.conflict.key, 24),
            if c.conflict.columns.is_empty() { "(delete)".into() } else { c.conflict.columns.join(", ") },
            row(&c.conflict.values[0]),
            row(&c.conflict.values[1]),
            c.status.clone(),
            c.conflict.resolution.clone().unwrap_or_default(),
        ]);
    }
    if t.is_empty() {
        println!("no {}conflicts", if args.all { "" } else { "open " });
    } else {
        print!("{}", t.render());
        println!("settle an open one with `dualsync resolve ID --take APP` (that app's row wins whole)");
    }
    Ok(OK)
}

pub fn resolve(config: &Config, args: &ResolveArgs) -> CliResult {
    let apps = Apps::open(config)?;
    let outcome = live::resolve_conflict(config, &apps, args.id, &args.take)?;
    for e in &outcome.errors {
        eprintln!("failed: {} → {}: {}", e.source_app, e.target_app, e.message);
    }
    if outcome.ok() {
        println!("conflict {} resolved: {} ({})", args.id, outcome.actions.join(", "), outcome.key);
        Ok(OK)
    } else {
        println!("conflict {} stays open: the write failed (in the error log)", args.id);
        Ok(ROWS_FAILED)
    }
}
