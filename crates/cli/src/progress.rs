//! Progress of a sync: a line with the map, rows and rows/s on a terminal,
//! plain lines (one per finished partition) otherwise.

use dualsync_engine::sync::{Observer, PartitionReport};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Progress {
    pub rows: Arc<AtomicU64>,
    bar: Option<ProgressBar>,
    /// The map being synced, for the bar.
    label: Arc<Mutex<String>>,
    quiet: bool,
    started: Instant,
    stop: Arc<AtomicBool>,
    ticker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        let rows = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let label = Arc::new(Mutex::new(String::new()));
        let started = Instant::now();
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}").expect("valid template"));
            bar
        });
        // The engine counts rows in an atomic; the bar is redrawn from it ten times a second.
        let ticker = bar.clone().map(|bar| {
            let (rows, stop, label) = (rows.clone(), stop.clone(), label.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let n = rows.load(Ordering::Relaxed);
                    let rate = n as f64 / started.elapsed().as_secs_f64().max(0.001);
                    let map = label.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    bar.set_message(format!("{map}  {n} rows, {rate:.0} rows/s"));
                    bar.tick();
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        });
        Progress { rows, bar, label, quiet, started, stop, ticker: Mutex::new(ticker) }
    }

    pub fn finish(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.lock().unwrap().take() {
            let _ = t.join();
        }
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn plain(&self, line: String) {
        if self.quiet || self.bar.is_some() {
            return;
        }
        eprintln!("[{:>7.1}s] {line}", self.started.elapsed().as_secs_f64());
    }
}

impl Observer for Progress {
    fn map_started(&self, map: &str, partitions: usize) {
        *self.label.lock().unwrap_or_else(|p| p.into_inner()) = format!("map {map}");
        self.plain(format!("map {map}: {partitions} partition{}", if partitions == 1 { "" } else { "s" }));
    }

    fn partition_done(&self, r: &PartitionReport) {
        let c = &r.counts;
        let company = if r.company.is_empty() { String::new() } else { format!(" company {}", r.company) };
        let line = format!(
            "map {}{company}: read {}/{}, into {}: +{} ~{}, into {}: +{} ~{}, unchanged {}, failed {}{}",
            r.map,
            c.read[0],
            c.read[1],
            r.apps[1],
            c.inserted[1],
            c.updated[1],
            r.apps[0],
            c.inserted[0],
            c.updated[0],
            c.unchanged,
            c.failed_total(),
            r.error.as_ref().map(|e| format!(" — STOPPED: {e}")).unwrap_or_default()
        );
        match &self.bar {
            Some(bar) if r.error.is_some() => bar.println(line),
            Some(_) => {}
            None => {
                let rows = self.rows.load(Ordering::Relaxed);
                let rate = rows as f64 / self.started.elapsed().as_secs_f64().max(0.001);
                self.plain(format!("{line} [{rows} rows, {rate:.0} rows/s]"));
            }
        }
    }
}
