//! `bench --live --serve`: the live phases again with `dualsync serve`
//! applying the changes while a watcher reads its API and metrics every
//! second, as a dashboard and Prometheus would, then with `run` once more:
//! serve is compared with the mean of the `run` before and after it, since
//! each phase leaves the tables a little more bloated for the next.

use super::live::{stop_run, LiveResult};
use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

pub struct Again {
    pub result: LiveResult,
    /// API and metrics reads answered while it applied (`serve` only).
    pub reads: usize,
    pub peak_kib: i64,
}

/// The phases once more, with `serve` (watched) or `run` applying. `source`
/// runs SQL on the source app; `settle` waits until the target holds what was
/// applied before timing; `measure` times the phases.
pub fn measure_again(
    serve: bool,
    config: &Path,
    dir: &Path,
    source: &mut dyn FnMut(&str) -> Result<()>,
    settle: &dyn Fn() -> Result<()>,
    measure: &dyn Fn(&str) -> Result<LiveResult>,
) -> Result<Again> {
    // The fixed-rate rows of the measurement before go, and every row changes once more, untimed.
    source("DELETE FROM items WHERE company = 'LIVE'")?;
    source("UPDATE items SET qty = -7")?;
    let (child, port) = if serve { spawn_serve(config, dir)? } else { (super::live::spawn_run(config, dir)?, 0) };
    let token = if serve { token(config)? } else { String::new() };
    let stop = AtomicBool::new(false);
    let measured = std::thread::scope(|s| {
        let watcher = serve.then(|| s.spawn(|| watch(port, &token, &stop)));
        let label = if serve { "dualsync serve" } else { "dualsync run again" };
        let measured = settle().and_then(|()| source("UPDATE items SET qty = -8")).and_then(|()| measure(label));
        stop.store(true, SeqCst);
        let reads = watcher.map_or(Ok(0), |w| w.join().expect("watcher thread"));
        measured.map(|m| (m, reads))
    });
    let peak_kib = stop_run(child)?;
    let (result, reads) = measured?;
    Ok(Again { result, reads: reads?, peak_kib })
}

fn token(config: &Path) -> Result<String> {
    let out = Command::new(std::env::current_exe()?)
        .arg("--config")
        .arg(config)
        .args(["token", "create", "--name", "bench", "--role", "viewer"])
        .output()?;
    if !out.status.success() {
        bail!("dualsync token create failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

fn spawn_serve(config: &Path, dir: &Path) -> Result<(Child, u16)> {
    let out = dir.join("serve.out");
    let child = Command::new(std::env::current_exe()?)
        .arg("--config")
        .arg(config)
        .args(["serve", "--listen", "127.0.0.1:0", "--poll-ms", "2", "--batch", "20000"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::from(std::fs::File::create(&out)?))
        .stderr(Stdio::from(std::fs::File::create(dir.join("serve.err"))?))
        .spawn()
        .context("starting dualsync serve")?;
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let port = text.lines().find_map(|l| l.strip_prefix("listening on http://127.0.0.1:")?.split(' ').next()?.parse().ok());
        if let Some(port) = port {
            return Ok((child, port));
        }
        if Instant::now() > end {
            bail!("dualsync serve did not listen within a minute: {}", std::fs::read_to_string(dir.join("serve.err")).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads /api/v1/maps and /metrics every second until `stop`; how many were answered.
fn watch(port: u16, token: &str, stop: &AtomicBool) -> Result<usize> {
    let mut reads = 0;
    while !stop.load(SeqCst) {
        for path in ["/api/v1/maps", "/metrics"] {
            let mut stream = TcpStream::connect(("127.0.0.1", port))?;
            write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n")?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer)?;
            if !answer.starts_with("HTTP/1.1 200") {
                bail!("GET {path} under the benchmark: {}", answer.lines().next().unwrap_or(""));
            }
            reads += 1;
        }
        for _ in 0..10 {
            if stop.load(SeqCst) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(reads)
}
