//! `dualsync bench`: synthetic rows in one app, synced into an empty app of
//! any kind, against the database's own bulk copy of the same rows measured
//! in the same run (ratios, since absolute times drift on a shared machine).
//! The sync runs as a child process so that its peak memory is measured
//! alone; every result is verified.

mod app;
mod baseline;
mod live;

pub use app::Kind;

use crate::cli::{BenchArgs, BenchMode, Cli};
use crate::exit::{CliResult, FAILURE, OK};
use crate::output::{is_json, print_json};
use anyhow::{anyhow, bail, Context, Result};
use app::{BenchApp, Servers};
use serde_json::json;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

const MAP: &str = r#"
[[maps]]
name = "items"
master = "a"
threading = "THREADING"
workers = WORKERS
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

fn run(cli: &Cli, args: &BenchArgs, dir: &Path) -> Result<serde_json::Value> {
    let say = |s: String| {
        if !is_json(cli.format) {
            println!("{s}");
        }
    };
    let servers = Servers { postgres: args.postgres.clone(), mysql: args.mysql.clone() };
    if args.live {
        return live::bench_live(args, dir, &servers, &say);
    }
    if args.import {
        return live::bench_import(args, dir, &servers, &say);
    }
    let n = args.rows;
    say(format!(
        "dualsync bench: {n} rows over {} compan{}, {:?} → {:?}, in {}",
        args.companies,
        if args.companies == 1 { "y" } else { "ies" },
        args.source,
        args.target,
        dir.display()
    ));
    let t = Instant::now();
    let generated = dir.join("generated.db");
    baseline::generate(&generated, n, args.companies.max(1))?;
    let csv = dir.join("rows.csv");
    baseline::export_csv(&generated, &csv)?;
    say(format!("  generated the rows and their CSV in {:.1}s", t.elapsed().as_secs_f64()));

    let source = source_app(args.source, "dualsync_bench_a", dir, &servers, &generated, &csv)?;
    let mut apps = vec![source];
    let result = (|| -> Result<serde_json::Value> {
        let baselines = baseline::measure(&apps[0], args.target, dir, &servers, &generated, &csv)?;
        for b in &baselines {
            say(format!("  baseline  {:<44} {:>7.2}s  {:>10.0} rows/s", b.label, b.seconds, n as f64 / b.seconds));
        }
        let reference = baselines.first().map(|b| b.seconds).ok_or_else(|| anyhow!("no baseline for this pair"))?;

        apps.push(BenchApp::create(args.target, "dualsync_bench_b", dir, &servers)?);
        let oneway = sync(dir, &apps[0], &apps[1], args)?;
        let oneway_ok = apps[1].count()? == n && written_by_second_sync(dir)? == 0;
        say(format!(
            "  dualsync  one-way sync {:<31} {:>7.2}s  {:>10.0} rows/s  ratio {:.2}× baseline  peak RSS {:.0} MB  {}",
            "",
            oneway.seconds,
            n as f64 / oneway.seconds,
            oneway.seconds / reference,
            oneway.peak_rss_mb,
            verdict(oneway_ok)
        ));
        let mut report = json!({
            "rows": n, "companies": args.companies, "source": format!("{:?}", args.source).to_lowercase(),
            "target": format!("{:?}", args.target).to_lowercase(),
            "baselines": baselines.iter().map(|b| json!({"label": b.label, "seconds": b.seconds, "rows_per_second": n as f64 / b.seconds})).collect::<Vec<_>>(),
            "oneway_seconds": oneway.seconds, "oneway_rows_per_second": n as f64 / oneway.seconds,
            "oneway_ratio_to_baseline": oneway.seconds / reference, "oneway_peak_rss_mb": oneway.peak_rss_mb,
            "oneway_verified": oneway_ok,
        });
        let mut ok = oneway_ok;
        if args.lookups > 0 {
            let lookup = lookup_profile(args, dir, &servers, &generated)?;
            ok &= lookup.1;
            say(format!(
                "  dualsync  {} lookups per row {:<22} {:>7.2}s  {:>10.0} rows/s  ratio {:.2}× plain  peak RSS {:.0} MB  {}",
                args.lookups,
                "",
                lookup.0.seconds,
                n as f64 / lookup.0.seconds,
                lookup.0.seconds / oneway.seconds,
                lookup.0.peak_rss_mb,
                verdict(lookup.1)
            ));
            report["lookups"] = json!(args.lookups);
            report["lookups_seconds"] = json!(lookup.0.seconds);
            report["lookups_ratio_to_plain"] = json!(lookup.0.seconds / oneway.seconds);
            report["lookups_peak_rss_mb"] = json!(lookup.0.peak_rss_mb);
            report["lookups_verified"] = json!(lookup.1);
        }
        if args.mode == BenchMode::Both {
            // Both apps hold the rows; 10% differ: 5% changed in b, 2.5% only in a, 2.5% only in b.
            for (i, app) in apps.iter_mut().enumerate() {
                let name = if i == 0 { "dualsync_bench_a" } else { "dualsync_bench_b" };
                *app = source_app(app.kind, name, dir, &servers, &generated, &csv)?;
            }
            apps[1].diverge(3, true)?;
            apps[0].diverge(4, false)?;
            let _ = std::fs::remove_file(dir.join("state.db"));
            let both = sync(dir, &apps[0], &apps[1], args)?;
            let expected = n - n / 40;
            let both_ok = apps[0].count()? >= expected && apps[1].count()? == apps[0].count()? && written_by_second_sync(dir)? == 0;
            ok &= both_ok;
            say(format!(
                "  dualsync  bidirectional sync {:<25} {:>7.2}s  {:>10.0} rows/s  ratio {:.2}× one-way  peak RSS {:.0} MB  {}",
                "",
                both.seconds,
                (2 * n) as f64 / both.seconds,
                both.seconds / oneway.seconds,
                both.peak_rss_mb,
                verdict(both_ok)
            ));
            report["both_seconds"] = json!(both.seconds);
            report["both_ratio_to_oneway"] = json!(both.seconds / oneway.seconds);
            report["both_peak_rss_mb"] = json!(both.peak_rss_mb);
            report["both_verified"] = json!(both_ok);
        }
        report["ok"] = json!(ok);
        Ok(report)
    })();
    for app in &apps {
        app.drop_database();
    }
    result
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "verified"
    } else {
        "RESULT DIFFERS"
    }
}

/// An app of `kind` holding the generated rows.
fn source_app(kind: Kind, name: &str, dir: &Path, servers: &Servers, generated: &Path, csv: &Path) -> Result<BenchApp> {
    let app = BenchApp::create(kind, name, dir, servers)?;
    if kind == Kind::Sqlite {
        std::fs::copy(generated, app.sqlite_path())?;
    } else {
        app.load_csv(csv)?;
    }
    Ok(app)
}

struct Measure {
    seconds: f64,
    peak_rss_mb: f64,
}

fn write_config(dir: &Path, a: &BenchApp, b: &BenchApp, threading: &str, workers: usize) -> Result<std::path::PathBuf> {
    let config = dir.join("dualsync.toml");
    let map = MAP.replace("THREADING", threading).replace("WORKERS", &workers.to_string());
    let text = format!("[state]\nurl = \"sqlite://state.db\"\n[apps.a]\nurl = \"{}\"\n[apps.b]\nurl = \"{}\"\n{map}", a.url, b.url);
    std::fs::write(&config, text)?;
    Ok(config)
}

/// Runs `dualsync sync` on the bench config in a child process and measures it.
fn sync(dir: &Path, a: &BenchApp, b: &BenchApp, args: &BenchArgs) -> Result<Measure> {
    let config = write_config(dir, a, b, &args.threading, args.workers)?;
    run_child_sync(&config)
}

fn run_child_sync(config: &Path) -> Result<Measure> {
    let t = Instant::now();
    let child = Command::new(std::env::current_exe()?)
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

/// A second sync must find nothing to write: both apps hold the same rows.
fn written_by_second_sync(dir: &Path) -> Result<u64> {
    let out = Command::new(std::env::current_exe()?)
        .args(["--config", &dir.join("dualsync.toml").to_string_lossy(), "--quiet", "--format", "json", "sync"])
        .output()?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).context("reading the verification sync's report")?;
    let t = &report["totals"];
    Ok(["inserted", "updated"].iter().flat_map(|k| t[k].as_array().into_iter().flatten()).filter_map(|v| v.as_u64()).sum())
}

/// Waits for a child and returns its exit status and peak resident memory (KiB).
fn wait_with_peak_rss(pid: u32) -> Result<(i32, i64)> {
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

/// The lookup-heavy profile: the same rows with `--lookups` columns referring
/// to a map of 1,000 rows per company, whose ids the target stores.
fn lookup_profile(args: &BenchArgs, dir: &Path, servers: &Servers, generated: &Path) -> Result<(Measure, bool)> {
    if args.source != Kind::Sqlite {
        bail!("--lookups needs --source sqlite");
    }
    baseline::generate_lookups(generated, args.lookups, args.companies.max(1))?;
    let source = BenchApp::create(Kind::Sqlite, "dualsync_bench_la", dir, servers)?;
    std::fs::copy(generated, source.sqlite_path())?;
    let target = BenchApp::create(args.target, "dualsync_bench_lb", dir, servers)?;
    target.exec("DROP TABLE items")?;
    target.create_lookup_tables(args.lookups)?;
    let result = (|| {
        let mut map = MAP.replace("name = \"items\"", "name = \"litems\"").replace("table = \"items\"", "table = \"litems\"");
        for j in 0..args.lookups {
            map.push_str(&format!("[[maps.columns]]\na = \"l{j}\"\nb = \"l{j}\"\nlookup = \"refs\"\n"));
        }
        map.push_str(REFS_MAP);
        let map = map.replace("THREADING", &args.threading).replace("WORKERS", &args.workers.to_string());
        let config = dir.join("dualsync.toml");
        let _ = std::fs::remove_file(dir.join("state.db"));
        std::fs::write(
            &config,
            format!("[state]\nurl = \"sqlite://state.db\"\n[apps.a]\nurl = \"{}\"\n[apps.b]\nurl = \"{}\"\n{map}", source.url, target.url),
        )?;
        let measure = run_child_sync(&config)?;
        let ok = target.count_table("litems")? == args.rows && written_by_second_sync(dir)? == 0;
        Ok((measure, ok))
    })();
    target.drop_database();
    result
}

const REFS_MAP: &str = r#"
[[maps]]
name = "refs"
[maps.a]
table = "refs"
key = "code"
company = "company"
[maps.b]
table = "refs"
key = "code"
company = "company"
id = "id"
id_default = "uuid"
[[maps.columns]]
a = "code"
b = "code"
[[maps.columns]]
a = "label"
b = "label"
"#;
