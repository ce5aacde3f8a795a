//! `dualsync bench`: synthetic rows in one SQLite app, synced into another,
//! against SQLite's own `INSERT INTO … SELECT` copy of the same rows measured
//! in the same run. The sync runs as a child process so that its peak memory
//! is measured alone. Every result is checked against the source.

use crate::cli::{BenchArgs, BenchMode, Cli};
use crate::exit::{CliResult, FAILURE, OK};
use crate::output::{is_json, print_json};
use anyhow::{anyhow, bail, Context};
use rusqlite::Connection;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const SCHEMA: &str = "CREATE TABLE items (
    id INTEGER PRIMARY KEY, company TEXT NOT NULL, code TEXT NOT NULL, name TEXT,
    amount REAL, qty INTEGER, note TEXT, updated TEXT, UNIQUE (company, code))";
const COLUMNS: &str = "company, code, name, amount, qty, note, updated";

const CONFIG: &str = r#"[state]
url = "sqlite://state.db"
[apps.a]
url = "sqlite://a.db"
[apps.b]
url = "sqlite://b.db"
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
a = "amount"
b = "amount"
[[maps.columns]]
a = "qty"
b = "qty"
[[maps.columns]]
a = "note"
b = "note"
[[maps.columns]]
a = "updated"
b = "updated"
"#;

struct Measure {
    seconds: f64,
    peak_rss_mb: f64,
}

pub fn bench(cli: &Cli, args: &BenchArgs) -> CliResult {
    let owned_dir = args.dir.is_none();
    let dir = args.dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("dualsync-bench-{}", std::process::id())));
    std::fs::create_dir_all(&dir)?;
    let result = run(cli, args, &dir);
    if owned_dir {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let report = result?;
    if is_json(cli.format) {
        print_json(&report);
    }
    Ok(if report["ok"].as_bool() == Some(true) { OK } else { FAILURE })
}

fn run(cli: &Cli, args: &BenchArgs, dir: &Path) -> anyhow::Result<serde_json::Value> {
    let say = |s: String| {
        if !is_json(cli.format) {
            println!("{s}");
        }
    };
    let n = args.rows;
    say(format!(
        "dualsync bench: {n} rows over {} compan{}, SQLite → SQLite, in {}",
        args.companies,
        if args.companies == 1 { "y" } else { "ies" },
        dir.display()
    ));
    let source = dir.join("source.db");
    fresh(&source)?;
    let t = Instant::now();
    generate(&source, n, args.companies.max(1))?;
    say(format!("  generated the source in {:.1}s", t.elapsed().as_secs_f64()));

    // Baseline: SQLite's own copy of the same rows into an identical empty table.
    let baseline = {
        let path = dir.join("baseline.db");
        fresh(&path)?;
        let db = open(&path)?;
        db.execute_batch(SCHEMA)?;
        db.execute("ATTACH DATABASE ?1 AS src", [source.to_string_lossy()])?;
        let t = Instant::now();
        db.execute_batch(&format!("BEGIN; INSERT INTO main.items ({COLUMNS}) SELECT {COLUMNS} FROM src.items; COMMIT;"))?;
        t.elapsed().as_secs_f64()
    };
    say(format!("  baseline  INSERT INTO … SELECT   {baseline:>7.2}s  {:>10.0} rows/s", n as f64 / baseline));

    // One-way initial sync: every row in app a, app b empty.
    std::fs::copy(&source, dir.join("a.db"))?;
    fresh(&dir.join("b.db"))?;
    open(&dir.join("b.db"))?.execute_batch(SCHEMA)?;
    let oneway = sync(dir)?;
    let oneway_ok = identical(dir)?;
    say(format!(
        "  dualsync  one-way sync           {:>7.2}s  {:>10.0} rows/s  ratio {:.2}× baseline  peak RSS {:.0} MB  {}",
        oneway.seconds,
        n as f64 / oneway.seconds,
        oneway.seconds / baseline,
        oneway.peak_rss_mb,
        if oneway_ok { "result verified" } else { "RESULT DIFFERS" }
    ));
    let mut report = json!({
        "rows": n, "companies": args.companies,
        "baseline_seconds": baseline, "baseline_rows_per_second": n as f64 / baseline,
        "oneway_seconds": oneway.seconds, "oneway_rows_per_second": n as f64 / oneway.seconds,
        "oneway_ratio_to_baseline": oneway.seconds / baseline, "oneway_peak_rss_mb": oneway.peak_rss_mb,
        "oneway_verified": oneway_ok,
    });
    let mut ok = oneway_ok;

    if args.mode == BenchMode::Both {
        // Both apps hold all rows; 10% differ: 5% changed in b, 2.5% only in a, 2.5% only in b.
        std::fs::copy(&source, dir.join("a.db"))?;
        std::fs::copy(&source, dir.join("b.db"))?;
        let _ = std::fs::remove_file(dir.join("state.db"));
        diverge(&dir.join("a.db"), &dir.join("b.db"), n)?;
        let both = sync(dir)?;
        let both_ok = identical(dir)?;
        ok &= both_ok;
        say(format!(
            "  dualsync  bidirectional sync     {:>7.2}s  {:>10.0} rows/s  ratio {:.2}× one-way  peak RSS {:.0} MB  {}",
            both.seconds,
            (2 * n) as f64 / both.seconds,
            both.seconds / oneway.seconds,
            both.peak_rss_mb,
            if both_ok { "result verified" } else { "RESULT DIFFERS" }
        ));
        report["both_seconds"] = json!(both.seconds);
        report["both_ratio_to_oneway"] = json!(both.seconds / oneway.seconds);
        report["both_peak_rss_mb"] = json!(both.peak_rss_mb);
        report["both_verified"] = json!(both_ok);
    }
    report["ok"] = json!(ok);
    Ok(report)
}

fn open(path: &Path) -> anyhow::Result<Connection> {
    let db = Connection::open(path)?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(db)
}

fn fresh(path: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", path.display()));
        if p.exists() {
            std::fs::remove_file(&p)?;
        }
    }
    Ok(())
}

/// Rows with text that needs quoting, NULLs, decimals and timestamps.
fn generate(path: &Path, rows: u64, companies: u32) -> anyhow::Result<()> {
    let db = open(path)?;
    db.execute_batch(SCHEMA)?;
    db.execute(
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1)
             INSERT INTO items ({COLUMNS})
             SELECT printf('CO%04d', i % ?2), printf('K%010d', i), 'Item ' || i || ' \"quoted\", with a comma',
                    i * 0.25, i % 1000, CASE WHEN i % 10 = 0 THEN NULL ELSE 'note ' || hex(randomblob(8)) END,
                    '2026-01-01T00:00:00Z'
             FROM n"
        ),
        rusqlite::params![rows as i64, companies as i64],
    )?;
    Ok(())
}

fn diverge(a: &Path, b: &Path, rows: u64) -> anyhow::Result<()> {
    let (a, b) = (open(a)?, open(b)?);
    let step = 40; // 2.5% of rows each
    b.execute_batch(&format!("UPDATE items SET name = name || ' (changed in b)' WHERE id % {step} IN (1, 2)"))?;
    b.execute_batch(&format!("DELETE FROM items WHERE id % {step} = 3"))?;
    a.execute_batch(&format!("DELETE FROM items WHERE id % {step} = 4"))?;
    let _ = rows;
    Ok(())
}

/// Runs `dualsync sync` on the bench config in a child process and measures it.
fn sync(dir: &Path) -> anyhow::Result<Measure> {
    let config = dir.join("dualsync.toml");
    std::fs::write(&config, CONFIG)?;
    let exe = std::env::current_exe()?;
    let t = Instant::now();
    let child = Command::new(exe)
        .args(["--config", &config.to_string_lossy(), "--quiet", "sync"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting dualsync sync")?;
    let (status, peak_kb) = wait_with_peak_rss(child.id())?;
    let seconds = t.elapsed().as_secs_f64();
    if status != 0 {
        bail!("dualsync sync exited with {status}");
    }
    Ok(Measure { seconds, peak_rss_mb: peak_kb as f64 / 1024.0 })
}

/// Waits for a child and returns its exit status and peak resident memory (KiB).
fn wait_with_peak_rss(pid: u32) -> anyhow::Result<(i32, i64)> {
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    if r < 0 {
        return Err(anyhow!("waiting for the sync: {}", std::io::Error::last_os_error()));
    }
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
    Ok((code, usage.ru_maxrss))
}

/// Both apps hold exactly the same rows (every mapped column compared).
fn identical(dir: &Path) -> anyhow::Result<bool> {
    let db = Connection::open(dir.join("a.db"))?;
    db.execute("ATTACH DATABASE ?1 AS b", [dir.join("b.db").to_string_lossy()])?;
    let cols = "company, code, name, amount, qty, note, updated";
    let differing: i64 = db.query_row(
        &format!("SELECT (SELECT count(*) FROM (SELECT {cols} FROM main.items EXCEPT SELECT {cols} FROM b.items)) + (SELECT count(*) FROM (SELECT {cols} FROM b.items EXCEPT SELECT {cols} FROM main.items))"),
        [],
        |r| r.get(0),
    )?;
    Ok(differing == 0)
}
