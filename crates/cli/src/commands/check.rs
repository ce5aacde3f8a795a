use crate::cli::Cli;
use crate::exit::{CliResult, FAILURE, OK, USAGE};
use crate::output::{is_json, print_json, Table};
use dualsync_engine::check::{Cause, Severity};
use dualsync_engine::Apps;
use dualsync_model::Config;

/// Config, connectivity, tables, columns and type compatibility. Writes nothing to the apps.
pub fn check(cli: &Cli, config: &Config) -> CliResult {
    let apps = Apps::open(config)?;
    let report = dualsync_engine::check::check(config, &apps)?;
    let (findings, state) = (&report.findings, &report.state_error);
    let errors = report.errors();
    if is_json(cli.format) {
        print_json(&report.to_json(config));
    } else {
        println!("config {}: {} apps, {} maps", config.file.display(), config.apps.len(), config.maps.len());
        for a in &config.apps {
            let down = findings.iter().any(|f| f.map.is_none() && f.app == a.name && f.cause == Cause::Environment);
            let capture = match (a.url.kind(), report.capture_of(&a.name)) {
                ("sqlite", _) | (_, Some("trigger")) => ", changes captured by triggers",
                (_, Some("poll")) => ", changes polled by their change timestamp",
                (_, Some("track")) => ", changes read through the service's change tracking (delta links)",
                (_, Some(_)) => ", changes read from the database's log",
                _ => "",
            };
            println!("  app {:<8} {}  {}{}", a.name, a.url, if down { "UNREACHABLE" } else { "ok" }, if down { "" } else { capture });
            if let Some(transport) = report.transport_of(&a.name) {
                println!("      connection: {transport}");
            }
        }
        let order = dualsync_engine::order::run_order(config, &[]);
        let stages: Vec<String> = order.stages.iter().map(|s| s.iter().map(|step| step.label()).collect::<Vec<_>>().join(", ")).collect();
        println!("  maps in run order (a stage's maps run side by side): {}", stages.join(" → "));
        for s in &report.live_states {
            println!("  map {} is {} (change capture on)", s.map, s.state.as_str());
        }
        match &state {
            Some(e) => println!("  state store: {e}"),
            None if report.state_exists => {
                println!("  state store {}: ok", config.state.url);
                if let Some(transport) = &report.state_transport {
                    println!("      connection: {transport}");
                }
            }
            None => println!("  state store {}: created by the first sync", config.state.url),
        }
        if !findings.is_empty() {
            let mut t = Table::new(&["level", "map", "app", "finding"]);
            for f in findings {
                let level = if f.severity == Severity::Error { "ERROR" } else { "warning" };
                let text = if f.hint.is_empty() { f.message.clone() } else { format!("{} — {}", f.message, f.hint) };
                t.row(vec![level.into(), f.map.clone().unwrap_or_default(), f.app.clone(), text]);
            }
            print!("{}", t.render());
        }
        let warnings = findings.len() + state.is_some() as usize - errors;
        println!("{} error{}, {} warning{}", errors, if errors == 1 { "" } else { "s" }, warnings, if warnings == 1 { "" } else { "s" });
    }
    Ok(if report.unreachable() {
        FAILURE
    } else if errors > 0 {
        USAGE
    } else {
        OK
    })
}
