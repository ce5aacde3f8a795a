use crate::cli::{BootstrapArgs, Cli};
use crate::exit::{usage, CliResult, OK, ROWS_FAILED};
use crate::output::{cell, is_json, print_json};
use dualsync_engine::bootstrap::{bootstrap_company, Bootstrap};
use dualsync_engine::Apps;
use dualsync_model::{Config, Filter};
use dualsync_state::StateStore;
use serde_json::json;

pub fn bootstrap(cli: &Cli, config: &Config, args: &BootstrapArgs) -> CliResult {
    let filter = match &args.where_ {
        Some(text) => Some(Filter::parse(text).map_err(|e| usage(format!("--where: {e}")))?),
        None => None,
    };
    let apps = Apps::open(config)?;
    let store = if args.dry_run { None } else { Some(StateStore::open(&config.state)?) };
    let request = Bootstrap { map: &args.map, app: &args.app, company: &args.company, filter, dry_run: args.dry_run };
    let report = bootstrap_company(config, &apps, store.as_ref(), &request)?;
    if is_json(cli.format) {
        print_json(&json!({
            "map": args.map, "app": args.app, "table": report.table, "column": report.column, "company": args.company,
            "dry_run": args.dry_run, "rows_without_company": report.candidates, "updated": report.updated,
            "propagated": { "inserted": report.propagated.inserted, "updated": report.propagated.updated, "failed": report.propagated.failed },
            "failed": report.failed.iter().map(|e| json!({"key": e.key, "message": e.message})).collect::<Vec<_>>(),
        }));
    } else if args.dry_run {
        println!(
            "{} row{} of {}.{} {} no company ({} IS NULL); without --dry-run they get company {}",
            report.candidates,
            if report.candidates == 1 { "" } else { "s" },
            args.app,
            report.table,
            if report.candidates == 1 { "has" } else { "have" },
            report.column,
            args.company
        );
    } else {
        println!("{} of {} rows of {}.{} now have company {}", report.updated, report.candidates, args.app, report.table, args.company);
        for e in &report.failed {
            println!("  refused {}: {}", e.key, cell(&e.message, 120));
        }
        if !report.failed.is_empty() {
            println!("the refused rows are in the error log (`dualsync errors --map {}`)", args.map);
        }
    }
    Ok(if report.failed.is_empty() { OK } else { ROWS_FAILED })
}
