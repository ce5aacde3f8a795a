//! `/metrics` in Prometheus' text format: counters the live loop feeds as it
//! applies (it is their `LiveObserver`), gauges read from the state store and
//! the apps when scraped (at most every few seconds), and the service's own.

use dualsync_engine::live::LiveObserver;
use dualsync_model::Config;
use dualsync_state::Counts;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

#[derive(Default)]
pub struct Metrics {
    /// (map, app, operation) → changes applied into that app.
    applied: Mutex<BTreeMap<(String, String, &'static str), u64>>,
    /// (map, app) → rows that app refused.
    failed: Mutex<BTreeMap<(String, String), u64>>,
    conflicts: Mutex<BTreeMap<String, u64>>,
    /// map → captured changes read.
    changes_read: Mutex<BTreeMap<String, u64>>,
    /// map → rounds that failed on a server (down, busy, refused), tried again later.
    problems: Mutex<BTreeMap<String, u64>>,
    /// map → pauses by the alert rule or a problem that needs a person.
    pauses: Mutex<BTreeMap<String, u64>>,
    /// map → seconds from the oldest change of its last applied batch being committed to the batch applied.
    lag: Mutex<BTreeMap<String, f64>>,
    /// (app, table) → captured changes trimmed from the change table.
    trims: Mutex<BTreeMap<(String, String), u64>>,
    /// (map, app, what) → rows read, inserted, updated, deleted or failed by the service's syncs.
    sync_rows: Mutex<BTreeMap<(String, String, &'static str), u64>>,
    /// Syncs the service ran (starts, sync jobs) that ended, and their seconds in all.
    sync_seconds: Mutex<(u64, f64)>,
    /// (method, status) → requests answered.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    auth_failures: AtomicU64,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K, by: u64) {
    *map.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_default() += by;
}

impl Metrics {
    pub fn auth_failed(&self) {
        self.auth_failures.fetch_add(1, Relaxed);
    }

    /// What a sync of the service (a start's, a sync job's) did, by map, app and what, and how long it took.
    pub fn synced(&self, report: &dualsync_engine::sync::SyncReport, seconds: f64) {
        for p in &report.partitions {
            let c = &p.counts;
            for (i, app) in p.apps.iter().enumerate() {
                for (what, n) in [
                    ("read", c.read[i]),
                    ("inserted", c.inserted[i]),
                    ("updated", c.updated[i]),
                    ("deleted", c.deleted[i]),
                    ("failed", c.failed[i]),
                ] {
                    bump(&self.sync_rows, (p.map.clone(), app.clone(), what), n);
                }
            }
        }
        let mut t = self.sync_seconds.lock().unwrap_or_else(|p| p.into_inner());
        t.0 += 1;
        t.1 += seconds;
    }

    /// Changes applied so far into either app of a map.
    pub fn applied_total(&self, map: &str) -> u64 {
        self.applied.lock().unwrap_or_else(|p| p.into_inner()).iter().filter(|((m, _, _), _)| m == map).map(|(_, n)| n).sum()
    }

    pub fn answered(&self, method: &str, status: u16) {
        // Methods a client makes up count as one: the labels stay few whatever is sent.
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
            _ => "other",
        };
        bump(&self.requests, (method.to_string(), status), 1);
    }

    /// The text of a scrape: the counters, and gauges from the maps' figures (None: the store did not answer).
    pub fn render(&self, figures: Result<&[serde_json::Value], &crate::api::ApiError>) -> String {
        let mut out = String::new();
        counter(
            &mut out,
            "dualsync_changes_applied_total",
            "Captured changes applied, by map, the app written and operation.",
            &self.applied,
            |(m, a, op)| format!("map=\"{}\",app=\"{}\",operation=\"{op}\"", esc(m), esc(a)),
        );
        counter(
            &mut out,
            "dualsync_rows_failed_total",
            "Rows an app refused (each is in the error log), by map and app.",
            &self.failed,
            |(m, a)| format!("map=\"{}\",app=\"{}\"", esc(m), esc(a)),
        );
        counter(&mut out, "dualsync_conflicts_total", "Keys changed on both apps since their merge base.", &self.conflicts, |m| {
            format!("map=\"{}\"", esc(m))
        });
        counter(&mut out, "dualsync_changes_read_total", "Captured changes read, by map.", &self.changes_read, |m| {
            format!("map=\"{}\"", esc(m))
        });
        counter(
            &mut out,
            "dualsync_round_failures_total",
            "Live rounds that failed on a server (down, busy, refused connection); each is tried again.",
            &self.problems,
            |m| format!("map=\"{}\"", esc(m)),
        );
        counter(
            &mut out,
            "dualsync_map_pauses_total",
            "Maps paused by dualsync (alert rule, or a problem that needs a person).",
            &self.pauses,
            |m| format!("map=\"{}\"", esc(m)),
        );
        let _ = writeln!(
            out,
            "# HELP dualsync_apply_lag_seconds From the commit of the oldest change of a map's last applied batch to that batch applied (the database's clock, then this machine's)."
        );
        let _ = writeln!(out, "# TYPE dualsync_apply_lag_seconds gauge");
        for (map, seconds) in self.lag.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "dualsync_apply_lag_seconds{{map=\"{}\"}} {seconds}", esc(map));
        }
        counter(
            &mut out,
            "dualsync_capture_trimmed_total",
            "Captured changes trimmed from an app's change table, by app and table.",
            &self.trims,
            |(a, t)| format!("app=\"{}\",table=\"{}\"", esc(a), esc(t)),
        );
        counter(
            &mut out,
            "dualsync_sync_rows_total",
            "Rows of the service's syncs (starts, sync jobs), by map, app and what: read, inserted, updated, deleted, failed.",
            &self.sync_rows,
            |(m, a, what)| format!("map=\"{}\",app=\"{}\",what=\"{what}\"", esc(m), esc(a)),
        );
        let (count, seconds) = *self.sync_seconds.lock().unwrap_or_else(|p| p.into_inner());
        let _ =
            writeln!(out, "# HELP dualsync_sync_duration_seconds The service's syncs (starts, sync jobs) that ended, and their seconds.");
        let _ = writeln!(out, "# TYPE dualsync_sync_duration_seconds summary");
        let _ = writeln!(out, "dualsync_sync_duration_seconds_sum {seconds}\ndualsync_sync_duration_seconds_count {count}");
        counter(
            &mut out,
            "dualsync_http_requests_total",
            "Requests answered, by method and status.",
            &self.requests,
            |(method, status)| format!("method=\"{}\",status=\"{status}\"", esc(method)),
        );
        let _ = writeln!(out, "# HELP dualsync_auth_failures_total Requests refused for a missing, unknown, expired or revoked token.");
        let _ = writeln!(out, "# TYPE dualsync_auth_failures_total counter");
        let _ = writeln!(out, "dualsync_auth_failures_total {}", self.auth_failures.load(Relaxed));
        out.push_str(&gauges(figures));
        out
    }
}

fn gauges(figures: Result<&[serde_json::Value], &crate::api::ApiError>) -> String {
    let mut out = String::new();
    let rows = match figures {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e.message, "metrics: the state store could not be read");
            let _ = writeln!(out, "# HELP dualsync_state_store_up Whether the state store answered the last scrape.");
            let _ = writeln!(out, "# TYPE dualsync_state_store_up gauge\ndualsync_state_store_up 0");
            return out;
        }
    };
    let _ = writeln!(out, "# HELP dualsync_state_store_up Whether the state store answered the last scrape.");
    let _ = writeln!(out, "# TYPE dualsync_state_store_up gauge\ndualsync_state_store_up 1");
    let _ = writeln!(out, "# HELP dualsync_backlog_rows Captured changes not yet applied, by map and the app they were captured in.");
    let _ = writeln!(out, "# TYPE dualsync_backlog_rows gauge");
    for r in rows {
        if let Some(lag) = r["lag"].as_array() {
            for (i, n) in lag.iter().enumerate() {
                let app = r["apps"][i].as_str().unwrap_or("");
                let _ =
                    writeln!(out, "dualsync_backlog_rows{{map=\"{}\",app=\"{}\"}} {}", esc(r["map"].as_str().unwrap_or("")), esc(app), n);
            }
        }
    }
    for (name, help, field) in [
        ("dualsync_open_errors", "Open rows in the error log, by map.", "open_errors"),
        ("dualsync_open_conflicts", "Conflicts waiting for a person, by map.", "open_conflicts"),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for r in rows {
            let _ = writeln!(out, "{name}{{map=\"{}\"}} {}", esc(r["map"].as_str().unwrap_or("")), r[field].as_i64().unwrap_or(0));
        }
    }
    let _ = writeln!(out, "# HELP dualsync_map_state 1 for the state each map is in.\n# TYPE dualsync_map_state gauge");
    for r in rows {
        for state in ["running", "paused", "stopped"] {
            let on = u8::from(r["state"].as_str() == Some(state));
            let _ = writeln!(out, "dualsync_map_state{{map=\"{}\",state=\"{state}\"}} {on}", esc(r["map"].as_str().unwrap_or("")));
        }
    }
    out
}

fn counter<K>(out: &mut String, name: &str, help: &str, values: &Mutex<BTreeMap<K, u64>>, labels: impl Fn(&K) -> String) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (k, v) in values.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        let _ = writeln!(out, "{name}{{{}}} {v}", labels(k));
    }
}

/// A label value as the text format wants it.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Feeds the counters and the logs from the live loop.
pub struct Observer<'a> {
    pub metrics: &'a Metrics,
    pub config: &'a Config,
}

impl LiveObserver for Observer<'_> {
    fn applied(&self, map: &str, changes: usize, c: &Counts) {
        let apps = self.config.map(map).map_or(["0".to_string(), "1".to_string()], |m| [m.app(0).to_string(), m.app(1).to_string()]);
        for (i, app) in apps.iter().enumerate() {
            for (op, n) in [("insert", c.inserted[i]), ("update", c.updated[i]), ("delete", c.deleted[i])] {
                if n > 0 {
                    bump(&self.metrics.applied, (map.to_string(), app.clone(), op), n);
                }
            }
            if c.failed[i] > 0 {
                bump(&self.metrics.failed, (map.to_string(), app.clone()), c.failed[i]);
            }
        }
        if c.conflicts > 0 {
            bump(&self.metrics.conflicts, map.to_string(), c.conflicts);
        }
        bump(&self.metrics.changes_read, map.to_string(), changes as u64);
        tracing::info!(
            map,
            changes,
            inserted = ?c.inserted,
            updated = ?c.updated,
            deleted = ?c.deleted,
            failed = ?c.failed,
            conflicts = c.conflicts,
            "applied"
        );
    }

    fn problem(&self, map: &str, message: &str) {
        bump(&self.metrics.problems, map.to_string(), 1);
        tracing::warn!(map, message, "live round failed");
    }

    fn paused(&self, map: &str, reason: &str) {
        bump(&self.metrics.pauses, map.to_string(), 1);
        tracing::error!(map, reason, "map paused");
    }

    fn lag(&self, map: &str, lag: std::time::Duration) {
        self.metrics.lag.lock().unwrap_or_else(|p| p.into_inner()).insert(map.to_string(), lag.as_secs_f64());
    }

    fn trimmed(&self, app: &str, table: &str, changes: u64) {
        bump(&self.metrics.trims, (app.to_string(), table.to_string()), changes);
        tracing::debug!(app, table, changes, "change table trimmed");
    }

    fn purged(&self, p: &dualsync_state::Purged) {
        tracing::info!(errors = p.errors(), conflicts = p.conflicts, before = %p.before, "retention: settled records deleted");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_methods_do_not_grow_the_labels() {
        let m = Metrics::default();
        for i in 0..100 {
            m.answered(&format!("X{i}"), 405);
        }
        m.answered("GET", 200);
        assert_eq!(m.requests.lock().unwrap().len(), 2);
        let text = m.render(Ok(&[]));
        assert!(text.contains(r#"dualsync_http_requests_total{method="other",status="405"} 100"#), "{text}");
    }
}
