use crate::cli::{Cli, ErrorsArgs, ErrorsCommand, Format, ResyncArgs, RetryArgs};
use crate::exit::{CliResult, OK, ROWS_FAILED};
use crate::output::{cell, is_json, print_json, Table};
use dualsync_engine::sync::{reconcile_key, retry_errors, KeyOutcome};
use dualsync_model::row::key_from_text;
use dualsync_model::{Config, Value};
use dualsync_state::{ErrorQuery, ErrorRecord, RunStatus, StateStore};
use serde_json::json;

/// The error log, all of it.
pub fn errors(cli: &Cli, config: &Config, args: &ErrorsArgs) -> CliResult {
    if let Some(ErrorsCommand::Purge { older_than, resolved, map }) = &args.action {
        return purge(cli, config, older_than, *resolved, map.as_deref());
    }
    let store = StateStore::open(&config.state)?;
    let errors = store.errors(&ErrorQuery { map: args.map.clone(), run: args.run, include_resolved: args.all, ..Default::default() })?;
    match cli.format {
        Format::Json => print_json(&json!(errors.iter().map(|e| e.to_json()).collect::<Vec<_>>())),
        Format::Csv => {
            let mut w = csv::Writer::from_writer(std::io::stdout());
            w.write_record(ErrorRecord::CSV_COLUMNS).map_err(anyhow::Error::from)?;
            for e in &errors {
                w.write_record(e.csv_fields()).map_err(anyhow::Error::from)?;
            }
            w.flush()?;
        }
        Format::Table => {
            let mut t = Table::new(&["id", "run", "map", "company", "key", "from → into", "column", "value", "error", "tries", "status"]);
            for e in &errors {
                t.row(vec![
                    e.id.to_string(),
                    e.run_id.to_string(),
                    e.map.clone(),
                    e.company.clone(),
                    cell(&e.key, 30),
                    format!("{} → {}", e.source_app, e.target_app),
                    e.column.clone().unwrap_or_default(),
                    cell(e.value.as_deref().unwrap_or(""), 24),
                    cell(&e.message, if cli.verbose { 10_000 } else { 90 }),
                    e.attempts.to_string(),
                    e.status.clone(),
                ]);
            }
            if t.is_empty() {
                println!(
                    "no {}errors{}",
                    if args.all { "" } else { "open " },
                    args.map.as_ref().map(|m| format!(" for map {m}")).unwrap_or_default()
                );
            } else {
                print!("{}", t.render());
                println!("{} error{} (full messages: -v or --format json)", errors.len(), if errors.len() == 1 { "" } else { "s" });
            }
        }
    }
    Ok(OK)
}

/// `errors purge`: deletes what it says, and says what it deleted.
fn purge(cli: &Cli, config: &Config, older_than: &str, resolved: bool, map: Option<&str>) -> CliResult {
    let days = super::days_in("--older-than", older_than)?;
    if let Some(map) = map.filter(|m| config.map(m).is_none()) {
        return Err(crate::exit::usage(format!("--map {map}: no such map in {}", config.file.display())));
    }
    let store = StateStore::open(&config.state)?;
    let p = store.purge_errors(days, resolved, map)?;
    if is_json(cli.format) {
        print_json(&json!({
            "before": p.before, "deleted": p.errors(),
            "open": p.open, "resolved": p.resolved, "skipped": p.skipped,
        }));
    } else if !cli.quiet {
        println!(
            "deleted {} error{} last seen before {}{}: {} open, {} resolved, {} skipped",
            p.errors(),
            if p.errors() == 1 { "" } else { "s" },
            p.before,
            map.map(|m| format!(" of map {m}")).unwrap_or_default(),
            p.open,
            p.resolved,
            p.skipped
        );
    }
    Ok(OK)
}

pub fn retry(cli: &Cli, config: &Config, args: &RetryArgs) -> CliResult {
    let (apps, store, _claim) = super::open(config, "retry")?;
    let (run_id, outcomes) = retry_errors(config, &apps, &store, args.map.clone(), args.errors.clone())?;
    report(cli, run_id, &outcomes, "retried")
}

pub fn resync(cli: &Cli, config: &Config, args: &ResyncArgs) -> CliResult {
    let (apps, store, _claim) = super::open(config, "resync")?;
    let run_id = store.begin_run("resync")?;
    let result =
        reconcile_key(config, &apps, &store, run_id, &args.map, args.company.clone().map(Value::Text), key_from_text(&args.key), None);
    let status = match &result {
        Ok(o) if o.ok() => RunStatus::Ok,
        Ok(_) => RunStatus::RowsFailed,
        Err(_) => RunStatus::Failed,
    };
    store.finish_run(run_id, status, result.as_ref().err().map(|e| e.to_string()).as_deref())?;
    report(cli, run_id, &[result?], "resynced")
}

fn report(cli: &Cli, run_id: i64, outcomes: &[KeyOutcome], verb: &str) -> CliResult {
    let failed = outcomes.iter().filter(|o| !o.ok()).count();
    if is_json(cli.format) {
        print_json(&json!({
            "run": run_id,
            "rows": outcomes.iter().map(|o| json!({
                "map": o.map, "company": o.company, "key": o.key, "ok": o.ok(), "actions": o.actions,
                "errors": o.errors.iter().map(|e| json!({"target_app": e.target_app, "column": e.column, "value": e.value, "message": e.message})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }));
    } else if outcomes.is_empty() {
        println!("no open errors to retry");
    } else {
        let mut t = Table::new(&["map", "company", "key", "result"]);
        for o in outcomes {
            let result = if o.ok() {
                o.actions.join(", ")
            } else {
                format!("FAILED: {}", o.errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; "))
            };
            t.row(vec![o.map.clone(), o.company.clone(), cell(&o.key, 30), cell(&result, 120)]);
        }
        print!("{}", t.render());
        println!(
            "run {run_id}: {} row{} {verb}, {} synced, {failed} still failing",
            outcomes.len(),
            if outcomes.len() == 1 { "" } else { "s" },
            outcomes.len() - failed
        );
    }
    Ok(if failed > 0 { ROWS_FAILED } else { OK })
}
