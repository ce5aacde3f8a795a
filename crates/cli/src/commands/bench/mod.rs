//! `dualsync bench`: synthetic rows in one app, synced into an empty app of
//! any kind, against the database's own bulk copy of the same rows measured
//! in the same run (ratios, since absolute times drift on a shared machine).
//! The sync runs as a child process so that its peak memory is measured
//! alone; every result is verified. Two profiles of rows: `plain` (an
//! `items` table) and `customers` (the realistic table, customers.rs).

mod app;
mod baseline;
mod customers;
mod live;
mod odata;
mod processes;
mod serve;

pub use app::Kind;

use crate::cli::{BenchArgs, BenchMode, BenchProfile, Cli};
use crate::exit::{CliResult, FAILURE, OK};
use crate::output::{is_json, print_json};
use anyhow::{anyhow, bail, Context, Result};
use app::{BenchApp, Servers};
use serde_json::json;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The plain profile's map (NAME, TABLE, THREADING and WORKERS replaced).
const MAP: &str = r#"
[[maps]]
name = "NAME"
master = "a"
threading = "THREADING"
workers = WORKERS
[maps.a]
table = "TABLE"
key = "code"
company = "company"
[maps.b]
table = "TABLE"
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

impl BenchProfile {
    fn name(self) -> &'static str {
        match self {
            BenchProfile::Plain => "plain",
            BenchProfile::Customers => "customers",
        }
    }

    /// The table the rows are in (its lookup variant is `l` + this).
    fn table(self) -> &'static str {
        match self {
            BenchProfile::Plain => "items",
            BenchProfile::Customers => customers::TABLE,
        }
    }

    /// The key column, whose value is a letter and a number.
    fn key(self) -> &'static str {
        match self {
            BenchProfile::Plain => "code",
            BenchProfile::Customers => customers::KEY,
        }
    }

    /// The columns of the CSV, in order.
    fn columns(self) -> String {
        match self {
            BenchProfile::Plain => app::COLUMNS.to_string(),
            BenchProfile::Customers => customers::columns(),
        }
    }

    /// Whether the CSV starts with a header line.
    fn csv_header(self) -> bool {
        self == BenchProfile::Customers
    }

    /// The profile's table for `kind`, named `table`, with `extra` columns.
    fn schema(self, kind: Kind, table: &str, extra: &str) -> String {
        match self {
            BenchProfile::Plain => app::plain_schema(kind, table, extra),
            BenchProfile::Customers => customers::schema(kind, table, extra),
        }
    }

    /// The map of the profile's table `table`, named `name`.
    fn map(self, name: &str, table: &str, threading: &str, workers: usize) -> String {
        match self {
            BenchProfile::Plain => {
                MAP.replace("NAME", name).replace("TABLE", table).replace("THREADING", threading).replace("WORKERS", &workers.to_string())
            }
            BenchProfile::Customers => customers::map(name, table, threading, workers),
        }
    }

    /// The codes of `n` companies, as the generated rows hold them.
    fn company_codes(self, n: u32) -> Vec<String> {
        match self {
            BenchProfile::Plain => (0..n).map(|i| format!("CO{i:04}")).collect(),
            BenchProfile::Customers => customers::company_codes(n),
        }
    }

    fn sqlite_copy_label(self) -> &'static str {
        match self {
            BenchProfile::Plain => "SQLite INSERT INTO … SELECT",
            BenchProfile::Customers => "SQLite INSERT INTO … SELECT (decoded, WAL)",
        }
    }

    /// Generates `rows` rows over `companies` companies into a SQLite file and the same rows as CSV.
    fn generate(self, generated: &Path, csv: &Path, rows: u64, companies: u32) -> Result<()> {
        match self {
            BenchProfile::Plain => {
                baseline::generate(generated, rows, companies)?;
                baseline::export_csv(generated, csv)
            }
            BenchProfile::Customers => customers::generate(generated, csv, rows, companies),
        }
    }
}

/// `--companies`, or the profile's default (1 for plain, 8 for customers).
fn companies(args: &BenchArgs) -> u32 {
    args.companies.unwrap_or(match args.profile {
        BenchProfile::Plain => 1,
        BenchProfile::Customers => customers::DEFAULT_COMPANIES,
    })
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

fn run(cli: &Cli, args: &BenchArgs, dir: &Path) -> Result<serde_json::Value> {
    let say = |s: String| {
        if !is_json(cli.format) {
            println!("{s}");
        }
    };
    let servers = Servers { postgres: args.postgres.clone(), mysql: args.mysql.clone() };
    if args.profile != BenchProfile::Plain && (args.live || args.import) {
        bail!("--live and --import use the plain profile: leave out --profile {}", args.profile.name());
    }
    if let Some(url) = &args.odata {
        return odata::bench_odata(args, url, dir, &say);
    }
    if args.live {
        return live::bench_live(args, dir, &servers, &say);
    }
    if args.import {
        return live::bench_import(args, dir, &servers, &say);
    }
    let n = args.rows;
    let profile = args.profile;
    let companies = companies(args);
    say(format!(
        "dualsync bench: {n} {} over {} compan{}, {:?} → {:?}, in {}",
        if profile == BenchProfile::Plain { "rows" } else { "customers" },
        companies,
        if companies == 1 { "y" } else { "ies" },
        args.source,
        args.target,
        dir.display()
    ));
    let t = Instant::now();
    let generated = dir.join("generated.db");
    let csv = dir.join("rows.csv");
    profile.generate(&generated, &csv, n, companies.max(1))?;
    say(format!("  generated the rows and their CSV in {:.1}s", t.elapsed().as_secs_f64()));

    let source = source_app(profile, args.source, "dualsync_bench_a", dir, &servers, &generated, &csv)?;
    let mut apps = vec![source];
    let result = (|| -> Result<serde_json::Value> {
        let baselines = baseline::measure(&apps[0], args.target, dir, &servers, &generated, &csv)?;
        for b in &baselines {
            say(format!("  baseline  {:<44} {:>7.2}s  {:>10.0} rows/s", b.label, b.seconds, n as f64 / b.seconds));
        }
        let reference = baselines.first().map(|b| b.seconds).ok_or_else(|| anyhow!("no baseline for this pair"))?;

        if !args.processes.is_empty() {
            return processes::bench_processes(args, dir, &servers, &apps[0], reference, &say);
        }
        apps.push(BenchApp::create_for(profile, args.target, "dualsync_bench_b", dir, &servers)?);
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
            "profile": profile.name(), "rows": n, "companies": companies, "source": format!("{:?}", args.source).to_lowercase(),
            "target": format!("{:?}", args.target).to_lowercase(),
            "baselines": baselines.iter().map(|b| json!({"label": b.label, "seconds": b.seconds, "rows_per_second": n as f64 / b.seconds})).collect::<Vec<_>>(),
            "oneway_seconds": oneway.seconds, "oneway_rows_per_second": n as f64 / oneway.seconds,
            "oneway_ratio_to_baseline": oneway.seconds / reference, "oneway_peak_rss_mb": oneway.peak_rss_mb,
            "oneway_verified": oneway_ok,
        });
        let mut ok = oneway_ok;
        if args.lookups > 0 {
            let LookupMeasures { same_width: wide, lookups: lookup } = lookup_profile(args, companies.max(1), dir, &servers, &generated)?;
            ok &= wide.1 && lookup.1;
            say(format!(
                "  dualsync  {} more plain columns {:<19} {:>7.2}s  {:>10.0} rows/s  ratio {:.2}× plain  peak RSS {:.0} MB  {}",
                args.lookups,
                "",
                wide.0.seconds,
                n as f64 / wide.0.seconds,
                wide.0.seconds / oneway.seconds,
                wide.0.peak_rss_mb,
                verdict(wide.1)
            ));
            say(format!(
                "  dualsync  {} lookups per row {:<22} {:>7.2}s  {:>10.0} rows/s  ratio {:.2}× same width  peak RSS {:.0} MB  {}",
                args.lookups,
                "",
                lookup.0.seconds,
                n as f64 / lookup.0.seconds,
                lookup.0.seconds / wide.0.seconds,
                lookup.0.peak_rss_mb,
                verdict(lookup.1)
            ));
            report["lookups"] = json!(args.lookups);
            report["same_width_seconds"] = json!(wide.0.seconds);
            report["same_width_verified"] = json!(wide.1);
            report["lookups_seconds"] = json!(lookup.0.seconds);
            report["lookups_ratio_to_plain"] = json!(lookup.0.seconds / oneway.seconds);
            report["lookups_ratio_to_same_width"] = json!(lookup.0.seconds / wide.0.seconds);
            report["lookups_peak_rss_mb"] = json!(lookup.0.peak_rss_mb);
            report["lookups_verified"] = json!(lookup.1);
        }
        if args.mode == BenchMode::Both {
            // Both apps hold the rows; 10% differ: 5% changed in b, 2.5% only in a, 2.5% only in b.
            for (i, app) in apps.iter_mut().enumerate() {
                let name = if i == 0 { "dualsync_bench_a" } else { "dualsync_bench_b" };
                *app = source_app(profile, app.kind, name, dir, &servers, &generated, &csv)?;
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

/// An app of `kind` holding the profile's generated rows.
fn source_app(
    profile: BenchProfile,
    kind: Kind,
    name: &str,
    dir: &Path,
    servers: &Servers,
    generated: &Path,
    csv: &Path,
) -> Result<BenchApp> {
    let app = BenchApp::create_for(profile, kind, name, dir, servers)?;
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

/// Writes the bench config: apps a and b, and `maps`.
fn write_config(dir: &Path, a: &BenchApp, b: &BenchApp, maps: &str) -> Result<std::path::PathBuf> {
    let config = dir.join("dualsync.toml");
    let text = format!(
        "[state]\nurl = \"sqlite://state.db\"\n[apps.a]\nurl = \"{}\"\n[apps.b]\nurl = \"{}\"\n{maps}",
        a.config_url(),
        b.config_url()
    );
    std::fs::write(&config, text)?;
    Ok(config)
}

/// Runs `dualsync sync` on the bench config in a child process and measures it.
fn sync(dir: &Path, a: &BenchApp, b: &BenchApp, args: &BenchArgs) -> Result<Measure> {
    let table = a.profile.table();
    let config = write_config(dir, a, b, &a.profile.map(table, table, &args.threading, args.workers))?;
    a.settle();
    b.settle();
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
fn lookup_profile(args: &BenchArgs, companies: u32, dir: &Path, servers: &Servers, generated: &Path) -> Result<LookupMeasures> {
    if args.source != Kind::Sqlite {
        bail!("--lookups needs --source sqlite");
    }
    let profile = args.profile;
    baseline::generate_lookups(generated, profile, args.lookups, companies)?;
    let source = BenchApp::create_for(profile, Kind::Sqlite, "dualsync_bench_la", dir, servers)?;
    std::fs::copy(generated, source.sqlite_path())?;
    // The same rows and columns twice into a fresh target: first copied as they are (the
    // plain sync of the same width), then with every extra column a lookup.
    let run = |lookup: bool| -> Result<(Measure, bool)> {
        let target = BenchApp::create_for(profile, args.target, "dualsync_bench_lb", dir, servers)?;
        target.exec(&format!("DROP TABLE {}", profile.table()))?;
        target.create_lookup_tables(args.lookups)?;
        let result = (|| {
            let table = format!("l{}", profile.table());
            let mut map = profile.map(&table, &table, &args.threading, args.workers);
            for j in 0..args.lookups {
                map.push_str(&format!("[[maps.columns]]\na = \"l{j}\"\nb = \"l{j}\"\n"));
                if lookup {
                    map.push_str("lookup = \"refs\"\n");
                }
            }
            map.push_str(REFS_MAP);
            let _ = std::fs::remove_file(dir.join("state.db"));
            let config = write_config(dir, &source, &target, &map)?;
            source.settle();
            target.settle();
            let measure = run_child_sync(&config)?;
            let ok = target.count_table(&table)? == args.rows && written_by_second_sync(dir)? == 0;
            Ok((measure, ok))
        })();
        target.drop_database();
        result
    };
    let same_width = run(false)?;
    let lookups = run(true)?;
    Ok(LookupMeasures { same_width, lookups })
}

/// The lookup-heavy profile's two syncs of the same wide rows.
struct LookupMeasures {
    /// The extra columns copied as they are.
    same_width: (Measure, bool),
    /// The extra columns as lookups, whose ids the target stores.
    lookups: (Measure, bool),
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
