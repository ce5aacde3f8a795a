//! `dualsync bench --live`: what live sync costs and how fast it is.
//!
//! 1. Capture's cost to the application: the same `UPDATE` of every row of
//!    the source app (and 2,000 one-row transactions), timed without and
//!    with capture on.
//! 2. Sustained rate: those captured updates, applied by `dualsync run` in
//!    batches (changes per second until the target holds them all).
//! 3. Latency: a writer commits one insert at a time at `--rate` per second
//!    for `--seconds`; an observer polls the target every millisecond. Each
//!    change's latency is commit on the source → visible on the target.
//!
//! Each capture `--capture` names (trigger, log, or both; log where the
//! source is a server) runs the three phases on databases of its own.
//! For PostgreSQL → PostgreSQL, PostgreSQL's own logical replication
//! (publication and subscription between two databases) runs the same
//! phases 2 and 3 in the same run as the baseline; it needs `wal_level = logical`.

use super::app::{BenchApp, Kind, Servers};
use super::{source_app, wait_with_peak_rss};
use crate::cli::{BenchArgs, BenchProfile};
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MAP: &str = r#"
[[maps]]
name = "items"
master = "a"
[maps.a]
table = "items"
key = "code"
company = "company"
[maps.b]
table = "items"
key = "code"
company = "company"
[[maps.columns]]
a = "code"
b = "code"
[[maps.columns]]
a = "name"
b = "name"
[[maps.columns]]
a = "qty"
b = "qty"
"#;

/// One-row transactions timed for capture's cost to an application.
const SMALL_TRANSACTIONS: usize = 2000;

/// A connection the writer and the observer keep open.
enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(postgres::Client),
    Mysql(mysql::Conn),
}

impl Conn {
    fn open(app: &BenchApp) -> Result<Conn> {
        Ok(match app.kind {
            Kind::Sqlite => {
                let c = rusqlite::Connection::open(app.sqlite_path())?;
                c.busy_timeout(Duration::from_secs(30))?;
                Conn::Sqlite(c)
            }
            Kind::Postgres => Conn::Postgres(postgres::Client::connect(&app.url, postgres::NoTls)?),
            Kind::Mariadb => Conn::Mysql(mysql::Conn::new(mysql::Opts::from_url(&app.url)?)?),
        })
    }

    fn exec(&mut self, sql: &str) -> Result<()> {
        match self {
            Conn::Sqlite(c) => c.execute_batch(sql)?,
            Conn::Postgres(c) => c.batch_execute(sql)?,
            Conn::Mysql(c) => mysql::prelude::Queryable::query_drop(c, sql)?,
        }
        Ok(())
    }

    fn count(&mut self, sql: &str) -> Result<i64> {
        Ok(match self {
            Conn::Sqlite(c) => c.query_row(sql, [], |r| r.get(0))?,
            Conn::Postgres(c) => c.query_one(sql, &[])?.get(0),
            Conn::Mysql(c) => mysql::prelude::Queryable::query_first(c, sql)?.unwrap_or(0),
        })
    }

    /// The numbers of the live rows with a number above `after`.
    fn live_rows_after(&mut self, after: i64) -> Result<Vec<i64>> {
        let sql = "SELECT qty FROM items WHERE company = 'LIVE' AND qty > $1 ORDER BY qty";
        Ok(match self {
            Conn::Sqlite(c) => {
                let mut s = c.prepare_cached(&sql.replace("$1", "?1"))?;
                let rows = s.query_map([after], |r| r.get(0))?.collect::<Result<Vec<i64>, _>>()?;
                rows
            }
            Conn::Postgres(c) => c.query(sql, &[&after])?.iter().map(|r| r.get(0)).collect(),
            Conn::Mysql(c) => mysql::prelude::Queryable::exec(c, sql.replace("$1", "?"), (after,))?,
        })
    }
}

pub struct LiveResult {
    /// What applied the changes (and how they were captured).
    pub label: String,
    pub changes_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub seen: usize,
    pub sent: usize,
}

impl LiveResult {
    fn json(&self) -> serde_json::Value {
        json!({
            "label": self.label, "sustained_changes_per_second": self.changes_per_second,
            "latency_p50_ms": self.p50_ms, "latency_p99_ms": self.p99_ms, "latency_max_ms": self.max_ms,
            "changes_sent": self.sent, "changes_seen": self.seen,
        })
    }
}

pub fn bench_live(args: &BenchArgs, dir: &Path, servers: &Servers, say: &dyn Fn(String)) -> Result<serde_json::Value> {
    let n = args.rows;
    say(format!(
        "dualsync bench --live: {:?} → {:?}, {n} rows for the sustained rate, {} changes/s for {} s for latency, in {}",
        args.source,
        args.target,
        args.rate,
        args.seconds,
        dir.display()
    ));
    let generated = dir.join("generated.db");
    super::baseline::generate(&generated, n, 1)?;
    let csv = dir.join("rows.csv");
    super::baseline::export_csv(&generated, &csv)?;
    let mut report = json!({"source": format!("{:?}", args.source).to_lowercase(), "target": format!("{:?}", args.target).to_lowercase(),
                            "rows": n, "rate": args.rate, "seconds": args.seconds});
    let captures: Vec<&str> = match (args.capture.as_str(), args.source) {
        (_, Kind::Sqlite) => vec!["trigger"],
        ("both", _) => vec!["trigger", "log"],
        (one, _) => vec![one],
    };
    let mut measured = Vec::new();
    for capture in captures {
        let (result, json) = live_with(args, dir, servers, &generated, &csv, capture, say)?;
        report[capture] = json;
        measured.push(result);
    }
    if args.source == Kind::Postgres && args.target == Kind::Postgres {
        match logical_replication(args, dir, servers, &generated, &csv) {
            Ok(baseline) => {
                say(line(&baseline));
                for m in &measured {
                    say(format!(
                        "  ratio {} / logical replication: p99 {:.2}×, sustained rate {:.2}×",
                        m.label,
                        m.p99_ms / baseline.p99_ms,
                        m.changes_per_second / baseline.changes_per_second
                    ));
                }
                report["logical_replication"] = baseline.json();
            }
            Err(e) => {
                say(format!("  baseline logical replication: not measured: {e:#}"));
                report["logical_replication_error"] = json!(format!("{e:#}"));
            }
        }
    }
    report["ok"] = json!(true);
    Ok(report)
}

/// The three phases with the source app's changes captured by `capture`, on databases of their own.
fn live_with(
    args: &BenchArgs,
    dir: &Path,
    servers: &Servers,
    generated: &Path,
    csv: &Path,
    capture: &str,
    say: &dyn Fn(String),
) -> Result<(LiveResult, serde_json::Value)> {
    let n = args.rows;
    let a = source_app(BenchProfile::Plain, args.source, "dualsync_live_a", dir, servers, generated, csv)?;
    let b = BenchApp::create(args.target, "dualsync_live_b", dir, servers)?;
    let mut report = json!({});
    let config = dir.join("dualsync.toml");
    let result = (|| -> Result<LiveResult> {
        let _ = std::fs::remove_file(dir.join("state.db"));
        let setting = |app: &BenchApp| if app.kind == Kind::Sqlite { String::new() } else { format!("capture = \"{capture}\"\n") };
        std::fs::write(
            &config,
            format!(
                "[state]\nurl = \"sqlite://state.db\"\n[apps.a]\nurl = \"{}\"\n{}[apps.b]\nurl = \"{}\"\n{}{MAP}",
                a.config_url(),
                setting(&a),
                b.config_url(),
                setting(&b)
            ),
        )?;
        let mut source = Conn::open(&a)?;
        // What an application's transactions of one row each pay, and a bulk update.
        let one_row_updates = |source: &mut Conn| {
            timed(|| {
                (0..SMALL_TRANSACTIONS)
                    .try_for_each(|i| source.exec(&format!("UPDATE items SET name = 'small {i}' WHERE code = 'K{i:010}'")))
            })
        };
        // Both timings of one-row transactions follow a VACUUM, so that both find the table in the same state.
        let vacuum = |source: &mut Conn| if a.kind == Kind::Postgres { source.exec("VACUUM items") } else { Ok(()) };
        let without = timed(|| source.exec("UPDATE items SET qty = qty + 1"))?;
        vacuum(&mut source)?;
        let small_without = one_row_updates(&mut source)?;
        dualsync(&config, &["start", "items"])?;
        vacuum(&mut source)?;
        let small_with = one_row_updates(&mut source)?;
        let with = timed(|| source.exec("UPDATE items SET qty = -7"))?;
        say(format!(
            "  {capture} capture cost: one UPDATE of {n} rows on the app {without:.2}s without capture, {with:.2}s with: ratio {:.2}×",
            with / without
        ));
        say(format!(
            "  {capture} capture cost: {SMALL_TRANSACTIONS} one-row UPDATE transactions {small_without:.2}s without capture, {small_with:.2}s with: ratio {:.2}×",
            small_with / small_without
        ));
        report["capture_small_transactions_ratio"] = json!(small_with / small_without);
        report["capture_update_seconds_without"] = json!(without);
        report["capture_update_seconds_with"] = json!(with);
        report["capture_cost_ratio"] = json!(with / without);

        // The captured UPDATE reaches b first (untimed): the sustained rate is then
        // timed as logical replication's is, from the commit of an UPDATE made
        // while the changes flow, so that both read the log as it is written.
        let run = spawn_run(&config, dir)?;
        let measured = arrived(&b, -7, n)
            .and_then(|_| source.exec("UPDATE items SET qty = -8"))
            .and_then(|_| measure(&a, &b, args, &format!("dualsync run ({capture})"), n));
        let peak = stop_run(run)?;
        let measured = measured?;
        say(line(&measured));
        say(format!("  dualsync run peak RSS {:.0} MB", peak as f64 / 1024.0));
        report["run"] = measured.json();
        report["run"]["peak_rss_mb"] = json!(peak as f64 / 1024.0);
        if args.serve {
            let mut again = |serve: bool| {
                super::serve::measure_again(
                    serve,
                    &config,
                    dir,
                    &mut |sql| source.exec(sql),
                    &|| {
                        arrived(&b, -7, n)?;
                        gone_live(&b)
                    },
                    &|label| measure(&a, &b, args, &format!("{label} ({capture})"), n),
                )
            };
            let served = again(true)?;
            say(line(&served.result));
            let rerun = again(false)?;
            say(line(&rerun.result));
            let mean = |f: fn(&LiveResult) -> f64| (f(&measured) + f(&rerun.result)) / 2.0;
            say(format!(
                "  ratio serve / run (the mean of the runs before and after, {capture}): sustained rate {:.2}×, p50 {:.2}×, p99 {:.2}× \
                 ({} API and metrics reads meanwhile, peak RSS {:.0} MB)",
                served.result.changes_per_second / mean(|r| r.changes_per_second),
                served.result.p50_ms / mean(|r| r.p50_ms),
                served.result.p99_ms / mean(|r| r.p99_ms),
                served.reads,
                served.peak_kib as f64 / 1024.0
            ));
            report["serve"] = served.result.json();
            report["serve"]["api_reads"] = json!(served.reads);
            report["serve"]["peak_rss_mb"] = json!(served.peak_kib as f64 / 1024.0);
            report["run_after_serve"] = rerun.result.json();
        }
        Ok(measured)
    })();
    // Stopping the map drops its replication slots, which would keep the databases from being dropped.
    let _ = dualsync(&config, &["stop", "items"]);
    a.drop_database();
    b.drop_database();
    Ok((result?, report))
}

fn line(r: &LiveResult) -> String {
    format!(
        "  {:<22} sustained {:>9.0} changes/s   latency at the fixed rate: p50 {:>6.1} ms  p99 {:>6.1} ms  max {:>6.1} ms  ({}/{} seen)",
        r.label, r.changes_per_second, r.p50_ms, r.p99_ms, r.max_ms, r.seen, r.sent
    )
}

fn timed(mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed().as_secs_f64())
}

fn dualsync(config: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new(std::env::current_exe()?).arg("--config").arg(config).arg("--quiet").args(args).output()?;
    if !out.status.success() {
        bail!("dualsync {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

pub(super) fn spawn_run(config: &Path, dir: &Path) -> Result<Child> {
    Command::new(std::env::current_exe()?)
        .arg("--config")
        .arg(config)
        .args(["--quiet", "run", "--poll-ms", "2", "--batch", "20000"])
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(dir.join("run.err"))?))
        .spawn()
        .context("starting dualsync run")
}

/// SIGTERM, then the exit status and the peak RSS (KiB).
pub(super) fn stop_run(run: Child) -> Result<i64> {
    // SAFETY: a signal to our own child.
    unsafe {
        libc::kill(run.id() as i32, libc::SIGTERM);
    }
    let (status, peak) = wait_with_peak_rss(run.id())?;
    if status != 0 {
        bail!("dualsync run exited with {status} on SIGTERM");
    }
    Ok(peak)
}

/// Phases 2 and 3 against whatever carries `a`'s changes to `b`: the captured
/// `qty = -8` updates (just committed) must arrive, then the fixed-rate inserts.
pub(super) fn measure(a: &BenchApp, b: &BenchApp, args: &BenchArgs, label: &str, n: u64) -> Result<LiveResult> {
    let t = Instant::now();
    arrived(b, -8, n).with_context(|| label.to_string())?;
    let changes_per_second = n as f64 / t.elapsed().as_secs_f64();
    let (sent, latencies) = fixed_rate(a, b, args.rate, args.seconds)?;
    let mut sorted = latencies.clone();
    sorted.sort_by(f64::total_cmp);
    let pct = |p: f64| sorted.get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1))).copied().unwrap_or(f64::NAN);
    Ok(LiveResult {
        label: label.into(),
        changes_per_second,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: sorted.last().copied().unwrap_or(f64::NAN),
        seen: latencies.len(),
        sent,
    })
}

/// Waits until the fixed-rate rows of an earlier measurement are gone from `b`.
fn gone_live(b: &BenchApp) -> Result<()> {
    let mut target = Conn::open(b)?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while target.count("SELECT count(*) FROM items WHERE company = 'LIVE'")? > 0 {
        if Instant::now() > deadline {
            bail!("the delete of the live rows did not arrive on the target within 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Waits until `n` rows of `b` have `qty`.
fn arrived(b: &BenchApp, qty: i64, n: u64) -> Result<()> {
    let mut target = Conn::open(b)?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while target.count(&format!("SELECT count(*) FROM items WHERE qty = {qty}"))? < n as i64 {
        if Instant::now() > deadline {
            bail!("the UPDATE to qty = {qty} did not arrive on the target within 10 minutes");
        }
        // Each look scans the table on the target's server, on the cores the apply
        // needs: looking every 5 ms slowed the very thing it timed. Every 20 ms is
        // within 1% of a run of 2 s or more.
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// One insert per transaction at `rate` per second on `a`; each one's delay until it is visible on `b` (ms).
fn fixed_rate(a: &BenchApp, b: &BenchApp, rate: u64, seconds: u64) -> Result<(usize, Vec<f64>)> {
    let total = (rate * seconds) as usize;
    let committed: Vec<std::sync::OnceLock<Instant>> = (0..total).map(|_| std::sync::OnceLock::new()).collect();
    let mut seen: Vec<Option<Instant>> = vec![None; total];
    let mut writer = Conn::open(a)?;
    let mut observer = Conn::open(b)?;
    let writing_done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| -> Result<()> {
        let w = s.spawn(|| -> Result<()> {
            let start = Instant::now();
            for (i, slot) in committed.iter().enumerate() {
                let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                writer.exec(&format!("INSERT INTO items (company, code, name, qty) VALUES ('LIVE', 'L{i:09}', 'live', {})", i + 1))?;
                let _ = slot.set(Instant::now());
            }
            writing_done.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        });
        let mut last = 0;
        let mut quiet_since = None;
        loop {
            let now = Instant::now();
            for qty in observer.live_rows_after(last)? {
                let i = (qty - 1) as usize;
                if i < total && seen[i].is_none() {
                    seen[i] = Some(now);
                }
                last = last.max(qty);
            }
            if seen.iter().all(Option::is_some) {
                break;
            }
            if writing_done.load(std::sync::atomic::Ordering::SeqCst) {
                // Give the last changes 30 s to arrive.
                let since = *quiet_since.get_or_insert(now);
                if now.duration_since(since) > Duration::from_secs(30) {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        w.join().expect("writer thread")?;
        Ok(())
    })?;
    let latencies =
        seen.iter().zip(&committed).filter_map(|(s, c)| Some(s.as_ref()?.duration_since(*c.get()?).as_secs_f64() * 1000.0)).collect();
    Ok((total, latencies))
}

/// PostgreSQL's own logical replication between two databases of the same server, as the baseline.
fn logical_replication(args: &BenchArgs, dir: &Path, servers: &Servers, generated: &Path, csv: &Path) -> Result<LiveResult> {
    let mut admin = postgres::Client::connect(super::app::split_query(&servers.postgres).0, postgres::NoTls)?;
    let level: String = admin.query_one("SHOW wal_level", &[])?.get(0);
    if level != "logical" {
        bail!("wal_level is {level}; set wal_level = logical on the server and restart it to measure this baseline");
    }
    let a = source_app(BenchProfile::Plain, Kind::Postgres, "dualsync_lr_a", dir, servers, generated, csv)?;
    let b = BenchApp::create(Kind::Postgres, "dualsync_lr_b", dir, servers)?;
    let slot = "dualsync_bench_slot";
    let result = (|| -> Result<LiveResult> {
        let mut publisher = Conn::open(&a)?;
        publisher.exec("CREATE PUBLICATION dualsync_bench FOR TABLE items")?;
        publisher.exec(&format!("SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')"))?;
        let a_conninfo = libpq_conninfo(&a.url);
        // The slot is made above: creating it from the subscription would wait on itself (same server).
        b.exec(&format!(
            "CREATE SUBSCRIPTION dualsync_bench CONNECTION '{a_conninfo}' PUBLICATION dualsync_bench WITH (create_slot = false, slot_name = '{slot}')"
        ))?;
        let mut target = Conn::open(&b)?;
        let t = Instant::now();
        while target.count("SELECT count(*) FROM items")? < args.rows as i64 {
            if t.elapsed() > Duration::from_secs(600) {
                bail!("the subscription did not copy the table");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        publisher.exec("UPDATE items SET qty = -8")?;
        measure(&a, &b, args, "logical replication", args.rows)
    })();
    let _ = b.exec("ALTER SUBSCRIPTION dualsync_bench DISABLE; ALTER SUBSCRIPTION dualsync_bench SET (slot_name = NONE)");
    let _ = b.exec("DROP SUBSCRIPTION IF EXISTS dualsync_bench");
    let _ = admin.batch_execute(&format!("SELECT pg_drop_replication_slot('{slot}') FROM pg_replication_slots WHERE slot_name = '{slot}'"));
    a.drop_database();
    b.drop_database();
    result
}

/// `postgres://user@host:port/db` as a libpq connection string for CREATE SUBSCRIPTION.
fn libpq_conninfo(url: &str) -> String {
    let config: postgres::Config = url.parse().expect("a PostgreSQL URL");
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    format!(
        "host={host} port={} user={} dbname={}",
        config.get_ports().first().copied().unwrap_or(5432),
        config.get_user().unwrap_or("postgres"),
        config.get_dbname().unwrap_or("postgres")
    )
}

/// `bench --import`: a CSV import of `--rows` rows into app a whose map is
/// stopped (then a sync brings b in step, as a user would), against the same
/// import into a started map, which writes as dualsync (the triggers skip it)
/// and takes each batch on to b itself.
pub fn bench_import(args: &BenchArgs, dir: &Path, servers: &Servers, say: &dyn Fn(String)) -> Result<serde_json::Value> {
    let n = args.rows;
    say(format!(
        "dualsync bench --import: {n} rows from CSV into {:?}, the other app {:?}, in {}",
        args.source,
        args.target,
        dir.display()
    ));
    let generated = dir.join("generated.db");
    super::baseline::generate(&generated, n, super::companies(args).max(1))?;
    // The file, as `dualsync export` writes it.
    let source = BenchApp::create(Kind::Sqlite, "dualsync_import_src", dir, servers)?;
    std::fs::copy(&generated, source.sqlite_path())?;
    let file = dir.join("import.csv");
    let config = dir.join("dualsync.toml");
    let write_config = |a: &BenchApp, b: &BenchApp| {
        let _ = std::fs::remove_file(dir.join("state.db"));
        std::fs::write(
            &config,
            format!(
                "[state]\nurl = \"sqlite://state.db\"\n[apps.a]\nurl = \"{}\"\n[apps.b]\nurl = \"{}\"\n{MAP}",
                a.config_url(),
                b.config_url()
            ),
        )
    };
    let empty_b = BenchApp::create(args.target, "dualsync_import_b", dir, servers)?;
    write_config(&source, &empty_b)?;
    dualsync(&config, &["export", "--map", "items", "--app", "a", "--out", &file.to_string_lossy()])?;
    let import = ["import", "--map", "items", "--app", "a", "--in", &file.to_string_lossy()].map(str::to_string);
    let import: Vec<&str> = import.iter().map(String::as_str).collect();

    let mut apps = vec![source];
    let result = (|| -> Result<serde_json::Value> {
        // Stopped: the import, then a sync for b.
        let a = BenchApp::create(args.source, "dualsync_import_a", dir, servers)?;
        let b = BenchApp::create(args.target, "dualsync_import_b", dir, servers)?;
        write_config(&a, &b)?;
        let stopped = timed(|| dualsync(&config, &import))?;
        let then_sync = timed(|| dualsync(&config, &["sync"]))?;
        let stopped_ok = a.count()? == n && b.count()? == n;
        apps.extend([a, b]);
        say(format!("  map stopped: import {stopped:.2}s, then sync to b {then_sync:.2}s: {:.2}s in all", stopped + then_sync));
        // Triggers installed, map unknown to this state store: what capture alone costs the import.
        let a = BenchApp::create(args.source, "dualsync_import_a", dir, servers)?;
        let b = BenchApp::create(args.target, "dualsync_import_b", dir, servers)?;
        write_config(&a, &b)?;
        dualsync(&config, &["start", "items", "--skip-initial"])?;
        let _ = std::fs::remove_file(dir.join("state.db"));
        let triggers_only = timed(|| dualsync(&config, &import))?;
        let skipped = changes_in(&a)? == 0;
        apps.extend([a, b]);
        say(format!(
            "  capture installed, nothing taken on: import {triggers_only:.2}s: {:.2}× the stopped import ({})",
            triggers_only / stopped,
            if skipped { "the triggers skipped every row" } else { "ROWS WERE CAPTURED" }
        ));
        // Running: capture on in both apps, the import takes the rows on to b.
        let a = BenchApp::create(args.source, "dualsync_import_a", dir, servers)?;
        let b = BenchApp::create(args.target, "dualsync_import_b", dir, servers)?;
        write_config(&a, &b)?;
        dualsync(&config, &["start", "items", "--skip-initial"])?;
        let running = timed(|| dualsync(&config, &import))?;
        let captured = changes_in(&a)? + changes_in(&b)?;
        let running_ok = a.count()? == n && b.count()? == n && captured == 0 && skipped;
        apps.extend([a, b]);
        say(format!(
            "  map running: import with the rows taken on to b {running:.2}s: {:.2}× the stopped import, {:.2}× import + sync; {captured} changes captured  {}",
            running / stopped,
            running / (stopped + then_sync),
            super::verdict(stopped_ok && running_ok)
        ));
        Ok(json!({
            "rows": n, "source": format!("{:?}", args.source).to_lowercase(), "target": format!("{:?}", args.target).to_lowercase(),
            "stopped_import_seconds": stopped, "stopped_sync_seconds": then_sync, "running_import_seconds": running,
            "capture_only_import_seconds": triggers_only, "capture_only_to_stopped_import": triggers_only / stopped,
            "running_to_stopped_import": running / stopped, "running_to_import_and_sync": running / (stopped + then_sync),
            "captured_changes": captured, "ok": stopped_ok && running_ok,
        }))
    })();
    empty_b.drop_database();
    for app in &apps {
        app.drop_database();
    }
    result
}

/// Rows in an app's change table.
fn changes_in(app: &BenchApp) -> Result<i64> {
    Conn::open(app)?.count("SELECT count(*) FROM dualsync_changes")
}
