use crate::cli::Cli;
use crate::exit::{CliResult, OK};
use crate::output::{is_json, print_json, Table};
use dualsync_engine::Apps;
use dualsync_model::Config;
use dualsync_state::StateStore;
use serde_json::json;

/// Maps, their live state and lag, the last run of each, and open error and
/// conflict counts. Opens the apps of started maps only (for their lag).
pub fn status(cli: &Cli, config: &Config) -> CliResult {
    let store = StateStore::open(&config.state)?;
    let held_by = store.held_by(&config.state);
    let apps = Apps::open(config).ok();
    let rows = dualsync_engine::status::map_statuses(config, &store, apps.as_ref())?;
    let order = dualsync_engine::order::run_order(config, &[]);
    let stages: Vec<Vec<String>> = order.stages.iter().map(|s| s.iter().map(|step| step.label()).collect()).collect();
    if is_json(cli.format) {
        print_json(&json!({ "state": config.state.url.to_string(), "held_by": held_by, "maps": rows, "run_order": stages }));
        return Ok(OK);
    }
    if let Some(holder) = &held_by {
        println!("state store in use by {holder}");
    }
    let mut t =
        Table::new(&["map", "apps", "threading", "state", "lag", "last run", "at", "companies", "keys synced", "open errors", "conflicts"])
            .right_align(&[4, 7, 8, 9, 10]);
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
            r["lag"].as_array().map_or("—".into(), |l| format!("{}/{}", l[0], l[1])),
            s("last_run"),
            s("last_run_at"),
            companies,
            s("keys_synced"),
            s("open_errors"),
            s("open_conflicts"),
        ]);
    }
    print!("{}", t.render());
    for r in &rows {
        for c in r["capture"].as_array().into_iter().flatten().filter(|c| c["capture"] == "log") {
            let mb = c["retained_bytes"].as_u64().unwrap_or(0) as f64 / 1e6;
            let state = c["wal_status"].as_str().filter(|s| !s.is_empty()).map(|s| format!(" ({s})")).unwrap_or_default();
            println!(
                "{}: {} reads its log; its slot keeps {mb:.1} MB of WAL{state}",
                r["map"].as_str().unwrap_or(""),
                c["app"].as_str().unwrap_or("")
            );
        }
    }
    for r in rows.iter().filter(|r| !r["paused_because"].is_null()) {
        println!("{} is paused: {}", r["map"].as_str().unwrap_or(""), r["paused_because"].as_str().unwrap_or(""));
    }
    println!("run order (a stage's maps run side by side): {}", stages.iter().map(|s| s.join(", ")).collect::<Vec<_>>().join(" → "));
    println!("state store: {}  (lag: captured changes not yet reconciled, per app)", config.state.url);
    Ok(OK)
}

/// `dualsync workers`: who holds the state store, and how its lease stands.
pub fn workers(cli: &Cli, config: &Config) -> CliResult {
    let store = StateStore::open(&config.state)?;
    let holders = store.holders(&config.state)?;
    let units = store.work_units()?;
    if is_json(cli.format) {
        let rows: Vec<_> = holders
            .iter()
            .map(|h| {
                json!({
                    "unit": h.unit, "holding": h.holding, "pid": h.pid, "host": h.host, "command": h.command,
                    "since": h.since, "heartbeat": h.heartbeat, "expires": h.expires, "epoch": h.epoch, "takeovers": h.takeovers,
                })
            })
            .collect();
        let units: Vec<_> = units
            .iter()
            .map(|u| {
                json!({
                    "job": u.job, "step": u.step, "company": u.company, "chunk": u.chunk, "holder": u.holder, "epoch": u.epoch,
                    "claims": u.claims, "takeovers": u.takeovers, "done": u.done,
                })
            })
            .collect();
        print_json(&json!({ "state": config.state.url.to_string(), "workers": rows, "units": units }));
        return Ok(OK);
    }
    if holders.is_empty() {
        println!("no process holds the state store {}", config.state.url);
        return Ok(OK);
    }
    let mut t = Table::new(&["unit", "held", "pid", "host", "command", "since", "heartbeat", "expires", "epoch", "takeovers"])
        .right_align(&[2, 8, 9]);
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
    let n = |v: Option<i64>| v.map_or("—".into(), |n| n.to_string());
    for h in &holders {
        t.row(vec![
            h.unit.clone(),
            if h.holding { "yes".into() } else { "no (free or run out)".into() },
            n(h.pid),
            or_dash(&h.host),
            or_dash(&h.command),
            or_dash(&h.since),
            or_dash(&h.heartbeat),
            or_dash(&h.expires),
            n(h.epoch),
            n(h.takeovers),
        ]);
    }
    print!("{}", t.render());
    print_units(&units);
    println!("state store: {}", config.state.url);
    Ok(OK)
}

/// The units of work of a shared store: live groups of maps one per line,
/// sync jobs as their progress and the items being worked on.
fn print_units(units: &[dualsync_state::WorkUnit]) {
    let mut t = Table::new(&["work", "company", "held by", "epoch", "claims", "takeovers"]).right_align(&[3, 4, 5]);
    let mut jobs: Vec<(i64, usize, usize)> = Vec::new();
    for u in units {
        if let Some(job) = u.job {
            match jobs.iter_mut().find(|j| j.0 == job) {
                Some(j) => {
                    j.1 += u.done as usize;
                    j.2 += 1;
                }
                None => jobs.push((job, u.done as usize, 1)),
            }
            if u.done || u.holder.is_none() {
                continue;
            }
        }
        let work = match u.job {
            Some(job) => format!("sync job {job}: {}", u.step),
            None => format!("live: {}", u.step),
        };
        let holder = u.holder.clone().unwrap_or_else(|| "— (free)".into());
        let company = match u.chunk {
            Some(n) => format!("{} (chunk {n})", u.company),
            None => u.company.clone(),
        };
        t.row(vec![work, company, holder, u.epoch.to_string(), u.claims.to_string(), u.takeovers.to_string()]);
    }
    if !units.is_empty() {
        println!();
        print!("{}", t.render());
    }
    for (job, done, total) in jobs {
        println!("sync job {job}: {done} of {total} items done");
    }
}
