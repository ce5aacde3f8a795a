use crate::cli::{Cli, SyncArgs};
use crate::exit::{CliError, CliResult, FAILURE, OK, ROWS_FAILED};
use crate::output::{cell, collect_json, is_json, print_json, Table};
use crate::progress::Progress;
use dualsync_engine::sync::{run_sync, sync_modes, SyncOptions, SyncReport};
use dualsync_model::Config;
use dualsync_state::{Counts, ErrorQuery, RunStatus, StateStore};
use serde_json::json;
use std::time::Instant;

/// Stopped maps are diffed whole; started maps (with capture) reconcile only
/// their captured changes, unless `--full` (the engine's `sync_modes` decides).
///
/// With `--format json`, one document: the report of the run made (as `sync`
/// prints it for started maps alone, or for stopped maps alone), or, when it
/// made both, `{"status", "incremental", "full"}` holding both reports and the
/// status of the whole (`full` is null when the full diff stopped with an error).
pub fn sync(cli: &Cli, config: &Config, args: &SyncArgs) -> CliResult {
    let apps = dualsync_engine::Apps::open(config)?;
    // SIGTERM (or Ctrl-C) lets the companies under way finish and hands the rest back.
    super::live::stop_on_signals();
    let modes = sync_modes(config, &args.maps, args.full)?;
    let (started, full) = (modes.incremental, modes.full);
    // Both kinds of run in JSON: their reports are collected and printed as one document.
    let both = is_json(cli.format) && !started.is_empty() && modes.any_full;
    let mut status = RunStatus::Ok;
    let mut incremental = None;
    if !started.is_empty() {
        let report = super::live::catch_up(cli, config, &apps, started.clone())?;
        if both {
            incremental = collect_json(|| super::live::print_live_report(cli, &report)).1.pop();
        } else {
            super::live::print_live_report(cli, &report);
        }
        status = report.status();
    }
    if modes.any_full {
        let options = SyncOptions {
            maps: full,
            companies: args.companies.clone(),
            allow_deletes: args.allow_deletes,
            stop: Some(&super::live::STOP),
        };
        let progress = Progress::new(cli.quiet || is_json(cli.format));
        let began = Instant::now();
        let result = run_sync(config, &apps, &options, &progress, progress.rows.clone()).map_err(CliError::from);
        progress.finish();
        let printed = result.and_then(|report| {
            let store = StateStore::open(&config.state)?;
            let seconds = began.elapsed().as_secs_f64();
            if both {
                let (printed, mut docs) = collect_json(|| print_sync_report(cli, &store, &report, seconds));
                printed.map(|()| (report, docs.pop()))
            } else {
                print_sync_report(cli, &store, &report, seconds).map(|()| (report, None))
            }
        });
        match printed {
            Ok((report, full_json)) => {
                if report.status() != RunStatus::Ok {
                    status = report.status();
                }
                if both {
                    print_json(&json!({ "status": status.as_str(), "incremental": incremental, "full": full_json }));
                }
            }
            Err(e) => {
                if both {
                    print_json(&json!({ "status": RunStatus::Failed.as_str(), "incremental": incremental, "full": null }));
                }
                return Err(e);
            }
        }
    }
    Ok(match status {
        RunStatus::Ok | RunStatus::Running => OK,
        RunStatus::RowsFailed => ROWS_FAILED,
        RunStatus::Failed => FAILURE,
    })
}

/// Errors shown under the summary; `dualsync errors` lists all of them.
const ERRORS_SHOWN: usize = 10;

pub fn print_sync_report(cli: &Cli, store: &StateStore, report: &SyncReport, seconds: f64) -> Result<(), crate::exit::CliError> {
    let totals = report.totals();
    let of_run = ErrorQuery { run: Some(report.run_id), ..Default::default() };
    if is_json(cli.format) {
        print_json(&json!({
            "run": report.run_id,
            "status": report.status().as_str(),
            "seconds": seconds,
            "totals": counts_json(&totals),
            "partitions": report.partitions.iter().map(|p| json!({
                "map": p.map, "company": p.company, "apps": p.apps, "counts": counts_json(&p.counts), "error": p.error,
            })).collect::<Vec<_>>(),
            "warnings": report.warnings,
            "job": report.job.as_ref().map(|j| json!({ "id": j.id, "done_before": j.done, "items_before": j.total })),
            "errors": store.errors(&of_run)?.iter().map(|e| e.to_json()).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    // One line per map (per company with -v).
    let mut t =
        Table::new(&["map", "company", "read", "→ inserted", "→ updated", "← inserted", "← updated", "unchanged", "failed", "status"])
            .right_align(&[2, 3, 4, 5, 6, 7, 8]);
    let mut maps: Vec<(&str, [&str; 2], Counts, usize, Vec<&str>)> = Vec::new();
    for p in &report.partitions {
        if cli.verbose {
            t.row(row(&p.map, &p.company, &p.counts, p.error.as_deref().map(|_| "STOPPED").unwrap_or(status_of(&p.counts))));
        }
        match maps.iter_mut().find(|m| m.0 == p.map) {
            Some(m) => {
                m.2.add(&p.counts);
                m.3 += 1;
                m.4.extend(p.error.as_deref());
            }
            None => maps.push((&p.map, [&p.apps[0], &p.apps[1]], p.counts.clone(), 1, p.error.as_deref().into_iter().collect())),
        }
    }
    if !cli.verbose {
        for (map, _, counts, companies, stopped) in &maps {
            let label = if *companies == 1 { "1 company".to_string() } else { format!("{companies} companies") };
            let status = if stopped.is_empty() { status_of(counts) } else { "STOPPED" };
            t.row(row(map, &label, counts, status));
        }
    }
    if let Some(job) = report.job.as_ref().filter(|j| j.done > 0) {
        println!(
            "sync job {}: {} of its {} items were done by earlier processes (one that stopped, or others still at work); \
             only the rest ran here",
            job.id, job.done, job.total
        );
    }
    if let Some((_, apps, ..)) = maps.first() {
        println!("\nrun {} — → is {} to {}, ← is {} to {}", report.run_id, apps[0], apps[1], apps[1], apps[0]);
    }
    print!("{}", t.render());
    let rate = (totals.read[0] + totals.read[1]) as f64 / seconds.max(0.001);
    println!(
        "{} rows read, {} written, {} unchanged, {} failed in {seconds:.1}s ({rate:.0} rows/s)",
        totals.read[0] + totals.read[1],
        totals.written(),
        totals.unchanged,
        totals.failed_total()
    );
    for w in &report.warnings {
        println!("warning: {w}");
    }
    for p in report.partitions.iter().filter(|p| p.error.is_some()) {
        println!("STOPPED: map {} company {}: {}", p.map, p.company, p.error.as_deref().unwrap_or(""));
    }
    // Only the first few are read: a run can log millions.
    let failed = store.error_count(&of_run)? as usize;
    let errors = store.errors(&ErrorQuery { limit: Some(ERRORS_SHOWN), ..of_run })?;
    if failed > 0 {
        println!("\n{failed} row{} failed (all in the error log):", if failed == 1 { "" } else { "s" });
        let mut t = Table::new(&["id", "map", "company", "key", "into", "column", "error"]);
        for e in errors.iter().take(ERRORS_SHOWN) {
            t.row(vec![
                e.id.to_string(),
                e.map.clone(),
                e.company.clone(),
                cell(&e.key, 24),
                e.target_app.clone(),
                e.column.clone().unwrap_or_default(),
                cell(&e.message, 110),
            ]);
        }
        print!("{}", t.render());
        if failed > ERRORS_SHOWN {
            println!("… and {} more.", failed - ERRORS_SHOWN);
        }
        println!("`dualsync errors` lists them all; fix the rows in their source app, then `dualsync retry`.");
    }
    Ok(())
}

fn status_of(c: &Counts) -> &'static str {
    if c.failed_total() > 0 {
        "rows failed"
    } else {
        "ok"
    }
}

fn row(map: &str, company: &str, c: &Counts, status: &str) -> Vec<String> {
    vec![
        map.to_string(),
        company.to_string(),
        format!("{}/{}", c.read[0], c.read[1]),
        c.inserted[1].to_string(),
        c.updated[1].to_string(),
        c.inserted[0].to_string(),
        c.updated[0].to_string(),
        c.unchanged.to_string(),
        c.failed_total().to_string(),
        status.to_string(),
    ]
}

fn counts_json(c: &Counts) -> serde_json::Value {
    json!({
        "read": c.read, "inserted": c.inserted, "updated": c.updated, "failed": c.failed,
        "unchanged": c.unchanged, "deleted": c.deleted, "conflicts": c.conflicts,
    })
}
