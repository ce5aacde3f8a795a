//! What each page shows, read with the same queries as the API and `status`.
//! Actions are buttons that call the API (see `layout::action`).

use super::layout::{action, cell, confirmed_action, esc, state_badge, table, url_part};
use crate::api::ApiError;
use crate::service::Service;
use dualsync_state::ErrorQuery;
use serde::Deserialize;
use serde_json::Value;

/// Rows per page of the error and activity pages.
const PAGE: usize = 50;

fn text(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn overview(rows: &[Value]) -> Result<String, ApiError> {
    let body: Vec<String> = rows
        .iter()
        .map(|r| {
            let map = r["map"].as_str().unwrap_or("");
            let state = r["state"].as_str().unwrap_or("stopped");
            let lag = r["lag"].as_array().map_or("—".into(), |l| format!("{} / {}", l[0], l[1]));
            let button = match state {
                "running" => action(&format!("/api/v1/maps/{}/pause", url_part(map)), "Pause", &format!("Map {map} is paused."), ""),
                "paused" => action(&format!("/api/v1/maps/{}/resume", url_part(map)), "Resume", &format!("Map {map} is running."), ""),
                _ => String::new(),
            };
            let why = r["paused_because"].as_str().map(|w| format!(r#"<div class="why">{}</div>"#, esc(w))).unwrap_or_default();
            format!(
                r#"<tr><td><a href="/maps/{link}">{map}</a></td><td>{a}.{ta} ↔ {b}.{tb}</td><td>{state}{why}</td><td class="n">{lag}</td><td class="n"><a href="/errors?map={link}">{open}</a></td><td class="n">{h} / {d}</td><td class="n"><a href="/conflicts?map={link}">{conflicts}</a></td><td class="n">{keys}</td><td>{last}</td><td>{button}</td></tr>"#,
                link = url_part(map),
                map = esc(map),
                a = esc(&text(&r["apps"][0])),
                ta = esc(&text(&r["tables"][0])),
                b = esc(&text(&r["apps"][1])),
                tb = esc(&text(&r["tables"][1])),
                state = state_badge(state),
                open = r["open_errors"],
                h = r["errors_last_hour"],
                d = r["errors_last_day"],
                conflicts = r["open_conflicts"],
                keys = r["keys_synced"],
                last = esc(&text(&r["last_run_at"])),
            )
        })
        .collect();
    Ok(table(
        &[
            "Map",
            "Apps and tables",
            "State",
            "Waiting (per app)",
            "Open errors",
            "Errors 1 h / 24 h",
            "Conflicts",
            "Keys synced",
            "Last run",
            "",
        ],
        &body,
        "No maps in the config.",
    ))
}

pub fn map(s: &Service, name: &str) -> Result<String, ApiError> {
    let m = s.map_or_404(name)?;
    let r = dualsync_engine::status::map_status(&s.config, &s.store, Some(&s.apps), name)?.unwrap_or_default();
    let capture: String = r["capture"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let kept =
                c["retained_bytes"].as_u64().map(|b| format!(", its slot keeps {:.1} MB of WAL", b as f64 / 1e6)).unwrap_or_default();
            format!("<li>{}: {}{}</li>", esc(&text(&c["app"])), esc(&text(&c["capture"])), esc(&kept))
        })
        .collect();
    let summary = format!(
        r#"<dl class="facts"><dt>State</dt><dd>{}</dd><dt>Apps</dt><dd>{}.{} ↔ {}.{}</dd><dt>Changes waiting</dt><dd>{}</dd><dt>Open errors</dt><dd><a href="/errors?map={link}">{}</a></dd><dt>Open conflicts</dt><dd><a href="/conflicts?map={link}">{}</a></dd><dt>Keys synced</dt><dd>{}</dd><dt>Capture</dt><dd><ul>{}</ul></dd></dl>"#,
        state_badge(r["state"].as_str().unwrap_or("stopped")),
        esc(m.app(0)),
        esc(&m.sides[0].table),
        esc(m.app(1)),
        esc(&m.sides[1].table),
        r["lag"].as_array().map_or("—".into(), |l| format!("{} in {}, {} in {}", l[0], esc(m.app(0)), l[1], esc(m.app(1)))),
        r["open_errors"],
        r["open_conflicts"],
        r["keys_synced"],
        if capture.is_empty() { "<li>off (the map is not started)</li>".to_string() } else { capture },
        link = url_part(name),
    );
    let partitions: Vec<String> = s
        .store
        .last_partitions()?
        .iter()
        .filter(|p| p.map == name)
        .map(|p| {
            let c = &p.counts;
            let pair = |v: [u64; 2]| format!(r#"<td class="n">{} / {}</td>"#, v[0], v[1]);
            format!(
                r#"<tr>{}<td class="n">{}</td><td>{}</td>{}{}{}{}{}{}</tr>"#,
                cell(if p.company.is_empty() { "(no company)" } else { &p.company }, 40),
                p.run_id,
                esc(&p.status),
                cell(&p.started_at, 30),
                pair(c.read),
                pair(c.inserted),
                pair(c.updated),
                pair(c.deleted),
                pair(c.failed),
            )
        })
        .collect();
    let heads = ["Company", "Run", "Status", "Started", "Read", "Inserted", "Updated", "Deleted", "Failed"];
    let link = url_part(name);
    let buttons = if r["state"] == "stopped" {
        action(
            &format!("/api/v1/maps/{link}/start"),
            "Start",
            &format!("Map {name} is starting: its initial sync runs as a job."),
            r#"<label><input type="checkbox" name="skip_initial" value="true"> skip the initial sync</label>"#,
        )
    } else {
        confirmed_action(
            &format!("/api/v1/maps/{link}/stop"),
            "Stop",
            &format!("Map {name} is stopped."),
            "",
            Some(&format!("Stop map {name}? Capture is removed from both apps; a later start syncs it whole again.")),
        )
    };
    let target = format!("map {name}");
    let jobs: Vec<String> = s
        .jobs
        .all()
        .iter()
        .filter(|j| j.target == target || j.kind == "sync")
        .map(|j| {
            let v = j.json();
            let cancel = if ["running", "cancelling"].contains(&v["status"].as_str().unwrap_or("")) {
                action(&format!("/api/v1/jobs/{}/cancel", j.id), "Cancel", &format!("Job {} is stopping.", j.id), "")
            } else {
                String::new()
            };
            let eta = v["eta_seconds"].as_f64().map_or("—".into(), |s| format!("{s:.0} s"));
            format!(
                r#"<tr class="job"><td class="n">{}</td><td>{}</td><td>{}</td><td class="n">{}</td><td class="n">{:.0}</td><td class="n">{} / {}</td><td class="n">{:.1} s</td><td class="n">{eta}</td>{}<td>{cancel}</td></tr>"#,
                j.id,
                esc(j.kind),
                esc(v["status"].as_str().unwrap_or("")),
                v["rows"],
                v["rows_per_second"].as_f64().unwrap_or(0.0),
                v["partitions_done"],
                v["partitions"],
                v["seconds"].as_f64().unwrap_or(0.0),
                cell(v["summary"].as_str().unwrap_or(""), 100),
            )
        })
        .collect();
    Ok(format!(
        "{summary}<div class=\"buttons\">{buttons}</div><h2>Lag and throughput</h2>{}<h2>Jobs</h2>{}<h2>Last run per company</h2><p class=\"hint\">Figures are per app: {} / {}.</p>{}",
        crate::history::svg(&s.history.of(name)),
        table(
            &["Job", "Kind", "Status", "Rows read", "Rows/s", "Companies done", "Time", "Time left", "Result", ""],
            &jobs,
            "No job of this process touched this map."
        ),
        esc(m.app(0)),
        esc(m.app(1)),
        table(&heads, &partitions, "No run yet.")
    ))
}

#[derive(Deserialize, Default)]
pub struct ErrorFilter {
    map: Option<String>,
    company: Option<String>,
    app: Option<String>,
    column: Option<String>,
    status: Option<String>,
    after: Option<i64>,
}

pub fn errors(s: &Service, f: &ErrorFilter) -> Result<String, ApiError> {
    let some = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
    let all = f.status.as_deref() == Some("all");
    let query = ErrorQuery {
        map: some(&f.map),
        company: some(&f.company),
        app: some(&f.app),
        column: some(&f.column),
        include_resolved: all,
        after_id: f.after,
        limit: Some(PAGE + 1),
        ..Default::default()
    };
    let mut found = s.store.errors(&query)?;
    let more = found.len() > PAGE;
    found.truncate(PAGE);
    let input = |name: &str, value: &Option<String>| {
        format!(r#"<label>{name} <input name="{name}" value="{}" size="12"></label>"#, esc(value.as_deref().unwrap_or("")))
    };
    let filter = format!(
        r#"<form method="get" action="/errors" class="filter">{}{}{}{}<label>status <select name="status"><option value="open">open</option><option value="all"{}>all</option></select></label> <button type="submit">Filter</button></form>"#,
        input("map", &f.map),
        input("company", &f.company),
        input("app", &f.app),
        input("column", &f.column),
        if all { " selected" } else { "" },
    );
    let rows: Vec<String> = found
        .iter()
        .map(|e| {
            let buttons = if e.status == "open" {
                let retry = action(&format!("/api/v1/errors/{}/retry", e.id), "Retry", &format!("Error {} retried.", e.id), "");
                let skip = action(
                    &format!("/api/v1/errors/{}/skip", e.id),
                    "Skip",
                    &format!("Error {} skipped.", e.id),
                    r#"<input name="reason" required placeholder="why" aria-label="why skip" size="10">"#,
                );
                format!("{retry}{skip}")
            } else {
                e.note.as_deref().map(|n| format!("skipped: {}", esc(n))).unwrap_or_default()
            };
            format!(
                r#"<tr id="error-{id}"><td class="n">{id}</td><td>{map}</td>{company}{key}<td>{from} → {into}</td>{column}{value}{message}<td class="n">{tries}</td><td>{status}</td><td>{buttons}</td></tr>"#,
                id = e.id,
                map = esc(&e.map),
                company = cell(&e.company, 20),
                key = cell(&e.key, 30),
                from = esc(&e.source_app),
                into = esc(&e.target_app),
                column = cell(e.column.as_deref().unwrap_or(""), 24),
                value = cell(e.value.as_deref().unwrap_or(""), 30),
                message = cell(&e.message, 120),
                tries = e.attempts,
                status = esc(&e.status),
            )
        })
        .collect();
    let next = if more {
        let last = found.last().map_or(0, |e| e.id);
        format!(r#"<p><a href="/errors?after={last}{}">Next page →</a></p>"#, filter_query(f))
    } else {
        String::new()
    };
    let filters = filter_query(f);
    let export = format!(
        r#"<p>Export what this filter selects: <a href="/api/v1/errors/export?format=csv{filters}" download>CSV</a> · <a href="/api/v1/errors/export?format=json{filters}" download>JSON</a></p>"#
    );
    let heads = ["Id", "Map", "Company", "Key", "From → into", "Column", "Value", "Message", "Tries", "Status", ""];
    Ok(format!(
        "{filter}{}{next}{export}<p class=\"hint\">Retry reads the row from its source app now and writes it; fix the row in that app first.</p>",
        table(&heads, &rows, "No errors match.")
    ))
}

/// The filter as `&key=value` pairs, for links that keep it.
fn filter_query(f: &ErrorFilter) -> String {
    [("map", &f.map), ("company", &f.company), ("app", &f.app), ("column", &f.column), ("status", &f.status)]
        .iter()
        .filter_map(|(k, v)| v.as_deref().filter(|v| !v.is_empty()).map(|v| format!("&{k}={}", url_part(v))))
        .collect()
}

#[derive(Deserialize, Default)]
pub struct ConflictFilter {
    map: Option<String>,
    status: Option<String>,
}

pub fn conflicts(s: &Service, f: &ConflictFilter) -> Result<String, ApiError> {
    let all = f.status.as_deref() == Some("all");
    let map = f.map.as_deref().filter(|m| !m.is_empty());
    let list = s.store.conflicts_page(map, all, 0, PAGE)?;
    if list.is_empty() {
        return Ok(format!(r#"<p class="empty">No {}conflicts.</p>"#, if all { "" } else { "open " }));
    }
    let mut out = String::new();
    for c in &list {
        let m = s.config.map(&c.conflict.map);
        let apps = m.map_or(["app 0".to_string(), "app 1".to_string()], |m| [m.app(0).to_string(), m.app(1).to_string()]);
        let rows: [Option<serde_json::Map<String, Value>>; 2] =
            c.conflict.values.clone().map(|v| v.and_then(|s| serde_json::from_str::<serde_json::Map<String, Value>>(&s).ok()));
        let mut columns: Vec<String> = rows.iter().flatten().flat_map(|r| r.keys().cloned()).collect();
        columns.sort();
        columns.dedup();
        let value = |i: usize, col: &str| match &rows[i] {
            None => "(deleted)".to_string(),
            Some(r) => r.get(col).map_or("—".into(), text),
        };
        let diff: Vec<String> = columns
            .iter()
            .map(|col| {
                let both = c.conflict.columns.contains(col);
                let (a, b) = (value(0, col), value(1, col));
                let mark = if both {
                    r#"<strong>≠ changed in both</strong>"#
                } else if a != b {
                    "≠ differs"
                } else {
                    ""
                };
                format!(
                    r#"<tr{}><th scope="row">{}</th>{}{}<td>{mark}</td></tr>"#,
                    if both { r#" class="both""# } else { "" },
                    esc(col),
                    cell(&a, 60),
                    cell(&b, 60)
                )
            })
            .collect();
        let buttons = if c.status == "open" {
            apps.iter()
                .map(|app| {
                    action(
                        &format!("/api/v1/conflicts/{}/resolve", c.id),
                        &format!("Keep {app}'s row"),
                        &format!("Conflict {} resolved: {app}'s row kept.", c.id),
                        &format!(r#"<input type="hidden" name="take" value="{}">"#, esc(app)),
                    )
                })
                .collect::<String>()
        } else {
            format!("<p>{}</p>", esc(c.conflict.resolution.as_deref().unwrap_or(&c.status)))
        };
        out += &format!(
            r#"<section class="conflict" id="conflict-{id}"><h2>Conflict {id}: {map}, key {key}{company}</h2><p class="hint">Detected {at}; policy {policy}; {status}.</p>{table}<div class="buttons">{buttons}</div></section>"#,
            id = c.id,
            map = esc(&c.conflict.map),
            key = esc(&c.conflict.key),
            company = if c.conflict.company.is_empty() { String::new() } else { format!(", company {}", esc(&c.conflict.company)) },
            at = esc(&c.detected_at),
            policy = esc(&c.conflict.policy),
            status = esc(&c.status),
            table = table(&["Column", &apps[0], &apps[1], ""], &diff, "(no columns)"),
        );
    }
    Ok(out)
}

#[derive(Deserialize, Default)]
pub struct ActivityFilter {
    before: Option<i64>,
}

pub fn activity(s: &Service, f: &ActivityFilter) -> Result<String, ApiError> {
    let mut entries = s.store.activity(None, f.before, PAGE + 1)?;
    let more = entries.len() > PAGE;
    entries.truncate(PAGE);
    let rows: Vec<String> = entries
        .iter()
        .map(|a| {
            format!(
                "<tr>{}{}{}{}{}</tr>",
                cell(&a.at, 30),
                cell(&a.actor, 30),
                cell(&a.action, 30),
                cell(&a.target, 60),
                cell(&a.result, 120)
            )
        })
        .collect();
    let next = match (more, entries.last()) {
        (true, Some(last)) => format!(r#"<p><a href="/activity?before={}">Older →</a></p>"#, last.id),
        _ => String::new(),
    };
    Ok(format!("{}{next}", table(&["At", "Who", "Action", "On", "Result"], &rows, "Nothing done through the service yet.")))
}

/// The plan page: buttons that run a plan or a check as a job, and the last one's report.
pub fn plan(s: &Service) -> Result<String, ApiError> {
    let buttons = format!(
        r#"<div class="buttons">{}{}</div>"#,
        action("/api/v1/plan", "Run plan", "The plan runs as a job: its report shows here when it ends.", ""),
        action("/api/v1/check", "Run check", "The check runs as a job: its report shows here when it ends.", "")
    );
    let jobs = s.jobs.all();
    let mut out = buttons;
    for kind in ["plan", "check"] {
        let Some(job) = jobs.iter().find(|j| j.kind == kind) else { continue };
        let v = job.json_with_report();
        out += &format!(
            "<h2>Last {kind}: job {}, {} ({:.1} s)</h2><p>{}</p>",
            job.id,
            esc(v["status"].as_str().unwrap_or("")),
            v["seconds"].as_f64().unwrap_or(0.0),
            esc(v["summary"].as_str().unwrap_or(""))
        );
        let report = &v["report"];
        if kind == "plan" {
            let rows: Vec<String> = report["partitions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    // Per app (a / b) where the plan gives a pair.
                    let n = |k: &str| match p[k].as_array() {
                        Some(pair) => {
                            format!(r#"<td class="n">{}</td>"#, pair.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(" / "))
                        }
                        None => format!(r#"<td class="n">{}</td>"#, p[k]),
                    };
                    format!(
                        "<tr><td>{}</td>{}{}{}{}{}{}{}</tr>",
                        esc(&text(&p["map"])),
                        cell(&text(&p["company"]), 20),
                        n("rows"),
                        n("inserts"),
                        n("updates"),
                        n("deletes"),
                        n("failing"),
                        cell(&text(&p["approach"]), 60)
                    )
                })
                .collect();
            out +=
                &table(&["Map", "Company", "Rows", "Inserts", "Updates", "Deletes", "Would fail", "Approach"], &rows, "Nothing to plan.");
            let problems: Vec<String> = report["problems"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|x| {
                    format!(
                        "<tr><td>{}</td>{}<td class=\"n\">{}</td>{}</tr>",
                        esc(&text(&x["map"])),
                        cell(&text(&x["kind"]), 40),
                        x["rows"],
                        cell(&text(&x["message"]), 120)
                    )
                })
                .collect();
            out += "<h2>Problems that would fail rows</h2>";
            out += &table(&["Map", "Problem", "Rows", "What"], &problems, "None: every row can be written.");
        }
        let findings: Vec<String> = report["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                format!(
                    "<tr><td>{}</td>{}{}{}</tr>",
                    esc(&text(&f["severity"])),
                    cell(&text(&f["map"]), 30),
                    cell(&text(&f["app"]), 20),
                    cell(&format!("{} {}", text(&f["message"]), text(&f["hint"])), 160)
                )
            })
            .collect();
        out += &table(&["Level", "Map", "App", "Finding"], &findings, "No findings.");
    }
    Ok(out)
}
