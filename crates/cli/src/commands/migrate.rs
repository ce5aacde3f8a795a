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
    let report = migrate::import(config, &apps, &args.map, &args.app, &args.input, args.strict)?;
    if !report.failed.is_empty() {
        let store = StateStore::open(&config.state)?;
        let run = store.begin_run("import")?;
        store.record_errors(run, &report.failed)?;
        store.finish_run(run, RunStatus::RowsFailed, None)?;
    }
    if is_json(cli.format) {
        print_json(&json!({
            "map": args.map, "app": args.app, "file": args.input.display().to_string(),
            "records": report.records, "inserted": report.inserted, "updated": report.updated,
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
    Ok(if report.failed.is_empty() { OK } else { ROWS_FAILED })
}
