use crate::cli::Cli;
use crate::exit::{CliResult, OK};
use crate::output::{is_json, print_json, Table};
use dualsync_model::Config;
use dualsync_state::{Counts, StateStore};
use serde_json::json;

/// Maps, the last run of each, and open error counts. Opens no app.
pub fn status(cli: &Cli, config: &Config) -> CliResult {
    let store = StateStore::open(&config.state)?;
    let partitions = store.last_partitions()?;
    let mut rows = Vec::new();
    for m in &config.maps {
        let mine: Vec<_> = partitions.iter().filter(|p| p.map == m.name).collect();
        let mut counts = Counts::default();
        mine.iter().for_each(|p| counts.add(&p.counts));
        let last = mine.iter().map(|p| p.ended_at.clone().unwrap_or_else(|| p.started_at.clone())).max();
        let stopped = mine.iter().filter(|p| p.status == "failed" || p.status == "running").count();
        rows.push(json!({
            "map": m.name,
            "apps": [m.app(0), m.app(1)],
            "tables": [m.sides[0].table, m.sides[1].table],
            "threading": format!("{:?}", m.threading).to_lowercase(),
            "state": "stopped",
            "last_run": mine.first().map(|p| p.run_id),
            "last_run_at": last,
            "companies": mine.len(),
            "companies_stopped": stopped,
            "keys_synced": store.key_count(&m.name)?,
            "written": counts.written(),
            "open_errors": store.open_error_count(&m.name)?,
        }));
    }
    let order = dualsync_engine::order::run_order(config, &[]);
    let stages: Vec<Vec<String>> = order.stages.iter().map(|s| s.iter().map(|step| step.label()).collect()).collect();
    if is_json(cli.format) {
        print_json(&json!({ "state": config.state.url.to_string(), "maps": rows, "run_order": stages }));
        return Ok(OK);
    }
    let mut t = Table::new(&["map", "apps", "threading", "state", "last run", "at", "companies", "keys synced", "open errors"])
        .right_align(&[6, 7, 8]);
    for r in &rows {
        let s = |k: &str| r[k].as_str().map(str::to_string).unwrap_or_else(|| if r[k].is_null() { "—".into() } else { r[k].to_string() });
        let companies = match (r["companies"].as_u64(), r["companies_stopped"].as_u64()) {
            (Some(n), Some(0)) => n.to_string(),
            (Some(n), Some(x)) => format!("{n} ({x} stopped)"),
            _ => "—".into(),
        };
        t.row(vec![
            s("map"),
            format!(
                "{}.{} ↔ {}.{}",
                r["apps"][0].as_str().unwrap_or(""),
                r["tables"][0].as_str().unwrap_or(""),
                r["apps"][1].as_str().unwrap_or(""),
                r["tables"][1].as_str().unwrap_or("")
            ),
            s("threading"),
            s("state"),
            s("last_run"),
            s("last_run_at"),
            companies,
            s("keys_synced"),
            s("open_errors"),
        ]);
    }
    print!("{}", t.render());
    println!("run order (a stage's maps run side by side): {}", stages.iter().map(|s| s.join(", ")).collect::<Vec<_>>().join(" → "));
    println!("state store: {}  (live sync is not built yet: every map is stopped between runs)", config.state.url);
    Ok(OK)
}
