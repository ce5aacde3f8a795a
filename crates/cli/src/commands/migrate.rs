use crate::cli::{Cli, ExportArgs, ImportArgs};
use crate::exit::{CliResult, OK, ROWS_FAILED};
use crate::output::{cell, is_json, print_json};
use dualsync_engine::{migrate, Apps};
use dualsync_model::Config;
use dualsync_state::{RunStatus, StateStore};
use serde_json::json;
use std::io::Write;

pub fn export(cli: &Cli, config: &Config, args: &ExportArgs) -> CliResult {
    let apps = Apps::open(config)?;
    let file = std::fs::File::create(&args.out).map_err(|e| crate::exit::usage(format!("cannot write {}: {e}", args.out.display())))?;
    let mut out = std::io::BufWriter::new(file);
    let rows = migrate::export(config, &apps, &args.map, &args.app, &mut out)?;
    out.flush()?;
    if is_json(cli.format) {
        print_json(&json!({ "map": args.map, "app": args.app, "file": args.out.display().to_string(), "rows": rows }));
    } else {
        println!("wrote {rows} rows of {}'s side of map {} to {}", args.app, args.map, args.out.display());
    }
    Ok(OK)
}

pub fn import(cli: &Cli, config: &Config, args: &ImportArgs) -> CliResult {
    let apps = Apps::open(config)?;
    // A started map takes the imported rows to the other app as they are written.
    let started = StateStore::exists(&config.state) && StateStore::open(&config.state)?.map_state(&args.map)?.is_some();
    let store = if started { Some(StateStore::open(&config.state)?) } else { None };
    let run = store.as_ref().map(|s| s.begin_run("import")).transpose()?;
    let mut propagate = |keys: Vec<Vec<dualsync_model::Value>>| -> Result<dualsync_state::Counts, dualsync_engine::EngineError> {
        match (&store, config.map(&args.map)) {
            (Some(store), Some(map)) if !keys.is_empty() => {
                dualsync_engine::live::propagate_written(config, &apps, store, run.unwrap_or(0), map, &args.app, keys)
            }
            _ => Ok(Default::default()),
        }
    };
    let report = migrate::import(config, &apps, &args.map, &args.app, &args.input, args.strict, &mut propagate)?;
    let failed_status =
        if report.failed.is_empty() && report.propagated.failed_total() == 0 { RunStatus::Ok } else { RunStatus::RowsFailed };
    if !report.failed.is_empty() || run.is_some() {
        let store = StateStore::open(&config.state)?;
        let run = match run {
            Some(id) => id,
            None => store.begin_run("import")?,
        };
        store.record_errors(run, &report.failed)?;
        store.finish_run(run, failed_status, None)?;
    }
    if is_json(cli.format) {
        print_json(&json!({
            "map": args.map, "app": args.app, "file": args.input.display().to_string(),
            "records": report.records, "inserted": report.inserted, "updated": report.updated,
            "propagated": { "inserted": report.propagated.inserted, "updated": report.propagated.updated,
                            "failed": report.propagated.failed, "conflicts": report.propagated.conflicts },
            "failed": report.failed.iter().map(|e| json!({"key": e.key, "column": e.column, "message": e.message})).collect::<Vec<_>>(),
        }));
    } else {
        println!(
            "{}: {} records, {} inserted, {} updated, {} failed",
            args.input.display(),
            report.records,
            report.inserted,
            report.updated,
            report.failed.len()
        );
        if started {
            let p = &report.propagated;
            let other = config.map(&args.map).and_then(|m| m.side_of_app(&args.app)).map(|s| 1 - s).unwrap_or(1);
            println!(
                "map {} is started: the imported rows went on to the other app: {} inserted, {} updated, {} failed, {} conflicts",
                args.map,
                p.inserted[other],
                p.updated[other],
                p.failed_total(),
                p.conflicts
            );
        }
        for e in report.failed.iter().take(10) {
            println!("  {}", cell(&e.message, 140));
        }
        if report.failed.len() > 10 {
            println!("  … and {} more", report.failed.len() - 10);
        }
        if !report.failed.is_empty() {
            println!("every failed row is in the error log (`dualsync errors --map {}`)", args.map);
        }
    }
    Ok(if failed_status == RunStatus::Ok { OK } else { ROWS_FAILED })
}
