//! `dualsync bench --processes 1,2,4`: the same rows synced into an empty
//! app by 1, 2, 4… `dualsync sync` processes sharing one PostgreSQL state
//! store, each count measured against one process in the same run; then,
//! with the most processes, one is killed mid-way and the time its companies
//! take to move to the others is measured.
//!
//! A company of more than 250,000 rows is split into chunks of that many
//! keys, so that `--companies 1` measures several processes sharing one
//! company. Where the time goes is measured too: the CPU seconds of the dualsync
//! processes against those of the whole machine over the same wall time
//! (on one machine, the rest is mostly the database servers).

use super::app::{BenchApp, Kind, Servers};
use super::{verdict, wait_with_peak_rss, written_by_second_sync};
use crate::cli::BenchArgs;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The lease of the bench's workers: a killed one is taken over after it.
const LEASE_SECONDS: u64 = 5;

/// Companies with more rows are shared by the processes a chunk at a time
/// (`--companies 1` shows one company's rows split between them).
const CHUNK_ROWS: u64 = 250_000;

struct Shared {
    seconds: f64,
    /// CPU seconds of the dualsync processes, and of the whole machine.
    client_cpu: f64,
    machine_cpu: f64,
    verified: bool,
}

pub fn bench_processes(
    args: &BenchArgs,
    dir: &Path,
    servers: &Servers,
    source: &BenchApp,
    reference: f64,
    say: &dyn Fn(String),
) -> Result<serde_json::Value> {
    let counts = &args.processes;
    if counts.iter().any(|&n| n == 0) {
        bail!("--processes takes counts of 1 or more, such as 1,2,4");
    }
    let n = args.rows;
    let mut runs = Vec::new();
    let mut single = None;
    let mut ok = true;
    for &count in counts {
        let measured = shared_sync(args, dir, servers, source, count, None)?.0;
        ok &= measured.verified;
        let one = *single.get_or_insert(measured.seconds);
        say(format!(
            "  dualsync  {count} process{:<2} sharing the store {:<13} {:>7.2}s  {:>10.0} rows/s  speed-up {:.2}× one process  \
             ratio {:.2}× baseline  CPU: dualsync {:.1}s, machine {:.1}s  {}",
            if count == 1 { "" } else { "es" },
            "",
            measured.seconds,
            n as f64 / measured.seconds,
            one / measured.seconds,
            measured.seconds / reference,
            measured.client_cpu,
            measured.machine_cpu,
            verdict(measured.verified)
        ));
        runs.push(json!({
            "processes": count, "seconds": measured.seconds, "rows_per_second": n as f64 / measured.seconds,
            "speed_up": one / measured.seconds, "ratio_to_baseline": measured.seconds / reference,
            "dualsync_cpu_seconds": measured.client_cpu, "machine_cpu_seconds": measured.machine_cpu, "verified": measured.verified,
        }));
    }
    let most = counts.iter().copied().max().unwrap_or(1);
    let mut report = json!({ "processes": runs, "lease_seconds": LEASE_SECONDS });
    if most >= 2 {
        let (measured, takeover) = shared_sync(args, dir, servers, source, most, Some(()))?;
        ok &= measured.verified;
        let takeover = takeover.context("the killed process held no company")?;
        say(format!(
            "  dualsync  {most} processes, one killed mid-way {:<10} {:>7.2}s  its companies moved {:.2}s after the kill \
             (lease {LEASE_SECONDS}s)  {}",
            "",
            measured.seconds,
            takeover,
            verdict(measured.verified)
        ));
        report["killed"] =
            json!({ "processes": most, "seconds": measured.seconds, "takeover_seconds": takeover, "verified": measured.verified });
    }
    report["verified"] = json!(ok);
    Ok(report)
}

/// One sync of the source into a fresh target by `count` processes on a
/// fresh PostgreSQL store; with `kill`, one of them is killed once a quarter
/// of the companies are done, and the seconds until its companies moved are returned.
fn shared_sync(
    args: &BenchArgs,
    dir: &Path,
    servers: &Servers,
    source: &BenchApp,
    count: usize,
    kill: Option<()>,
) -> Result<(Shared, Option<f64>)> {
    let profile = source.profile;
    let target = BenchApp::create_for(profile, args.target, "dualsync_bench_b", dir, servers)?;
    let state = BenchApp::create_for(profile, Kind::Postgres, "dualsync_bench_state", dir, servers)?;
    let result = (|| {
        let table = profile.table();
        let maps = profile.map(table, table, &args.threading, args.workers);
        let config = dir.join("dualsync.toml");
        let text = format!(
            "[state]\nurl = \"{}\"\nlease_seconds = {LEASE_SECONDS}\nchunk_rows = {CHUNK_ROWS}\n[apps.a]\nurl = \"{}\"\n[apps.b]\nurl = \"{}\"\n{maps}",
            state.url, source.url, target.url
        );
        std::fs::write(&config, text)?;
        source.settle();
        target.settle();
        let (machine_before, client_before) = (machine_cpu_seconds()?, children_cpu_seconds());
        let started = Instant::now();
        let mut children: Vec<Child> = (0..count)
            .map(|_| {
                Command::new(std::env::current_exe()?)
                    .args(["--config", &config.to_string_lossy(), "--quiet", "sync"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .context("starting dualsync sync")
            })
            .collect::<Result<_>>()?;
        let takeover = match kill {
            Some(()) => Some(kill_one_mid_way(&state.url, &mut children)?),
            None => None,
        };
        for child in children {
            let (status, _) = wait_with_peak_rss(child.id())?;
            if status != 0 {
                bail!("a dualsync sync of {count} exited with {status}");
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let (machine_cpu, client_cpu) = (machine_cpu_seconds()? - machine_before, children_cpu_seconds() - client_before);
        let verified = target.count()? == args.rows && written_by_second_sync(dir)? == 0;
        Ok((Shared { seconds, client_cpu, machine_cpu, verified }, takeover))
    })();
    target.drop_database();
    state.drop_database();
    result
}

/// Kills the process holding a company once a quarter of them are done, and
/// returns the seconds until another process held every company it had.
fn kill_one_mid_way(state: &str, children: &mut Vec<Child>) -> Result<f64> {
    let mut db = None;
    let end = Instant::now() + Duration::from_secs(600);
    let (victim, owner) = loop {
        if Instant::now() > end {
            bail!("no process held a company after a quarter of them were done");
        }
        std::thread::sleep(Duration::from_millis(50));
        // The store is made by the processes: connect once it is there.
        if db.is_none() {
            db = postgres::Client::connect(state, postgres::NoTls).ok();
        }
        let Some(client) = db.as_mut() else { continue };
        let holder = client.query(
            "SELECT l.pid, l.owner FROM leases l JOIN work_items i ON i.owner = l.owner AND i.done_at IS NULL
             WHERE l.unit LIKE 'worker:%' AND (SELECT count(*) FILTER (WHERE done_at IS NOT NULL) * 4 >= count(*) FROM work_items)
             LIMIT 1",
            &[],
        );
        if let Some(row) = holder.ok().and_then(|rows| rows.into_iter().next()) {
            break (row.get::<_, i64>(0) as u32, row.get::<_, String>(1));
        }
    };
    let at = children.iter().position(|c| c.id() == victim).context("the holder is not one of the bench's processes")?;
    let mut killed = children.remove(at);
    killed.kill()?;
    let killed_at = Instant::now();
    killed.wait()?;
    let client = db.as_mut().expect("connected above");
    loop {
        let left: i64 = client.query_one("SELECT count(*) FROM work_items WHERE owner = $1 AND done_at IS NULL", &[&owner])?.get(0);
        if left == 0 {
            return Ok(killed_at.elapsed().as_secs_f64());
        }
        if killed_at.elapsed() > Duration::from_secs(120) {
            bail!("the killed process's companies never moved");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// CPU seconds (user + system) of every child of this process waited for so far.
fn children_cpu_seconds() -> f64 {
    // SAFETY: rusage is plain data, filled by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// The whole machine's busy CPU seconds so far (/proc/stat, all cores).
fn machine_cpu_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let cpu = stat.lines().next().context("/proc/stat is empty")?;
    let ticks: Vec<f64> = cpu.split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
    let busy: f64 = ticks.iter().enumerate().filter(|(i, _)| *i != 3 && *i != 4).take(8).map(|(_, t)| t).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(busy / hz)
}
