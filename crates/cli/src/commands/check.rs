use crate::cli::Cli;
use crate::exit::{CliResult, FAILURE, OK, USAGE};
use crate::output::{is_json, print_json, Table};
use dualsync_engine::check::{preflight, Cause, Severity};
use dualsync_engine::sync::selected_maps;
use dualsync_engine::Apps;
use dualsync_model::Config;
use serde_json::json;

/// Config, connectivity, tables, columns and type compatibility. Writes nothing to the apps.
pub fn check(cli: &Cli, config: &Config) -> CliResult {
    let apps = Apps::open(config)?;
    let maps = selected_maps(config, &[])?;
    let mut findings = preflight(config, &apps, &maps);
    let (capture, capture_findings) = dualsync_engine::live::capture_choices(config, &apps);
    findings.extend(capture_findings);
    let capture_of = |app: &str| capture.iter().find(|(a, _)| a == app).map(|(_, c)| if c.log { "log" } else { "trigger" });
    // An existing state store is opened to prove it is readable; a new one is only announced.
    let state_exists = dualsync_state::StateStore::exists(&config.state);
    let opened = if state_exists { Some(dualsync_state::StateStore::open(&config.state)) } else { None };
    let mut live_states = Vec::new();
    if let Some(Ok(store)) = &opened {
        findings.extend(dualsync_engine::live::capture_findings(config, &apps, store)?);
        live_states = store.map_states()?;
    }
    let state = opened.and_then(Result::err);
    let errors = findings.iter().filter(|f| f.severity == Severity::Error).count() + state.is_some() as usize;
    let unreachable = findings.iter().any(|f| f.severity == Severity::Error && f.cause == Cause::Environment) || state.is_some();
    if is_json(cli.format) {
        print_json(&json!({
            "config": config.file.display().to_string(),
            "apps": config.apps.iter().map(|a| json!({
                "name": a.name, "url": a.url.to_string(),
                "capture": if a.url.kind() == "sqlite" { Some("trigger") } else { capture_of(&a.name) },
            })).collect::<Vec<_>>(),
            "maps": maps,
            "state_error": state.as_ref().map(|e| e.to_string()),
            "findings": findings.iter().map(|f| json!({
                "severity": if f.severity == Severity::Error { "error" } else { "warning" },
                "map": f.map, "app": f.app, "message": f.message, "hint": f.hint,
            })).collect::<Vec<_>>(),
        }));
    } else {
        println!("config {}: {} apps, {} maps", config.file.display(), config.apps.len(), config.maps.len());
        for a in &config.apps {
            let down = findings.iter().any(|f| f.map.is_none() && f.app == a.name && f.cause == Cause::Environment);
            let capture = match (a.url.kind(), capture_of(&a.name)) {
                ("sqlite", _) | (_, Some("trigger")) => ", changes captured by triggers",
                (_, Some(_)) => ", changes read from the database's log",
                _ => "",
            };
            println!("  app {:<8} {}  {}{}", a.name, a.url, if down { "UNREACHABLE" } else { "ok" }, if down { "" } else { capture });
        }
        let order = dualsync_engine::order::run_order(config, &[]);
        let stages: Vec<String> = order.stages.iter().map(|s| s.iter().map(|step| step.label()).collect::<Vec<_>>().join(", ")).collect();
        println!("  maps in run order (a stage's maps run side by side): {}", stages.join(" → "));
        for s in &live_states {
            println!("  map {} is {} (change capture on)", s.map, s.state.as_str());
        }
        match &state {
            Some(e) => println!("  state store: {e}"),
            None if state_exists => println!("  state store {}: ok", config.state.url),
            None => println!("  state store {}: created by the first sync", config.state.url),
        }
        if !findings.is_empty() {
            let mut t = Table::new(&["level", "map", "app", "finding"]);
            for f in &findings {
                let level = if f.severity == Severity::Error { "ERROR" } else { "warning" };
                let text = if f.hint.is_empty() { f.message.clone() } else { format!("{} — {}", f.message, f.hint) };
                t.row(vec![level.into(), f.map.clone().unwrap_or_default(), f.app.clone(), text]);
            }
            print!("{}", t.render());
        }
        let warnings = findings.len() + state.is_some() as usize - errors;
        println!("{} error{}, {} warning{}", errors, if errors == 1 { "" } else { "s" }, warnings, if warnings == 1 { "" } else { "s" });
    }
    Ok(if unreachable {
        FAILURE
    } else if errors > 0 {
        USAGE
    } else {
        OK
    })
}
