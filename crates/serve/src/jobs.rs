//! Long work the service runs for an operator: a map's start (capture, then
//! its initial sync) and syncs, each on a thread of its own, with progress
//! read while they run (rows, rows/s), and cancel. Jobs live in this process:
//! the last `KEPT` finished ones are remembered, what they did is in the
//! state store's runs and the activity log.

use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

/// Finished jobs remembered (the oldest go first); running ones are all kept.
const KEPT: usize = 100;

pub struct Job {
    pub id: i64,
    pub kind: &'static str,
    pub target: String,
    pub actor: String,
    started: Instant,
    started_at: String,
    /// Rows the sync has read so far (the engine counts them).
    pub rows: Arc<AtomicU64>,
    /// (map, company) partitions of the maps begun so far, and those finished: the ETA's measure.
    partitions: AtomicU64,
    partitions_done: AtomicU64,
    /// Set to cancel: the companies under way finish, no other starts. The
    /// engine takes a `&'static` flag; each job leaks one byte for it.
    pub cancel: &'static AtomicBool,
    state: Mutex<Ended>,
}

#[derive(Default)]
struct Ended {
    /// done, failed or cancelled; None while running.
    status: Option<&'static str>,
    at: Option<(Instant, String)>,
    summary: String,
    /// What a plan or a check found (shown by the job's own page, not in lists).
    report: Option<Value>,
}

impl Job {
    fn ended(&self) -> MutexGuard<'_, Ended> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Seconds since it began.
    pub fn seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    pub fn running(&self) -> bool {
        self.ended().status.is_none()
    }

    /// Records how it ended.
    pub fn finish(&self, status: &'static str, summary: String) {
        let mut ended = self.ended();
        ended.status = Some(status);
        ended.at = Some((Instant::now(), dualsync_state::now()));
        ended.summary = summary;
    }

    pub fn set_report(&self, report: Value) {
        self.ended().report = Some(report);
    }

    /// The job with its report, if it has one.
    pub fn json_with_report(&self) -> Value {
        let mut v = self.json();
        v["report"] = self.ended().report.clone().unwrap_or(Value::Null);
        v
    }

    pub fn json(&self) -> Value {
        let ended = self.ended();
        let rows = self.rows.load(SeqCst);
        let seconds = ended.at.as_ref().map_or_else(|| self.started.elapsed(), |(at, _)| at.duration_since(self.started)).as_secs_f64();
        let status = match (ended.status, self.cancel.load(SeqCst)) {
            (Some(s), _) => s,
            (None, true) => "cancelling",
            (None, false) => "running",
        };
        let (total, done) = (self.partitions.load(SeqCst), self.partitions_done.load(SeqCst));
        // Time per finished partition, times those left: none before the first one ends.
        let eta = (ended.status.is_none() && done > 0 && total > done).then(|| seconds / done as f64 * (total - done) as f64);
        json!({
            "id": self.id, "kind": self.kind, "target": self.target, "actor": self.actor, "status": status,
            "started_at": self.started_at, "ended_at": ended.at.as_ref().map(|(_, at)| at.clone()),
            "rows": rows, "seconds": seconds, "rows_per_second": if seconds > 0.0 { rows as f64 / seconds } else { 0.0 },
            "partitions": total, "partitions_done": done, "eta_seconds": eta,
            "summary": ended.summary,
        })
    }
}

/// The engine tells a job's progress in partitions as it goes.
impl dualsync_engine::sync::Observer for Job {
    fn map_started(&self, _map: &str, partitions: usize) {
        self.partitions.fetch_add(partitions as u64, SeqCst);
    }
    fn partition_done(&self, _report: &dualsync_engine::sync::PartitionReport) {
        self.partitions_done.fetch_add(1, SeqCst);
    }
}

#[derive(Default)]
pub struct Jobs {
    list: Mutex<VecDeque<Arc<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    next: AtomicI64,
}

impl Jobs {
    /// Starts `work` on a thread of its own; it returns how the job ended.
    pub fn spawn(
        &self,
        kind: &'static str,
        target: String,
        actor: String,
        work: impl FnOnce(&Job) -> (&'static str, String) + Send + 'static,
    ) -> Arc<Job> {
        let job = Arc::new(Job {
            id: self.next.fetch_add(1, SeqCst) + 1,
            kind,
            target,
            actor,
            started: Instant::now(),
            started_at: dualsync_state::now(),
            rows: Arc::default(),
            partitions: AtomicU64::new(0),
            partitions_done: AtomicU64::new(0),
            cancel: Box::leak(Box::new(AtomicBool::new(false))),
            state: Mutex::default(),
        });
        let mut list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        list.push_back(job.clone());
        while list.iter().filter(|j| !j.running()).count() > KEPT {
            if let Some(i) = list.iter().position(|j| !j.running()) {
                list.remove(i);
            }
        }
        drop(list);
        let running = job.clone();
        let thread = std::thread::spawn(move || {
            let (status, summary) = work(&running);
            tracing::info!(job = running.id, kind = running.kind, target = running.target, status, summary, "job ended");
            running.finish(status, summary);
        });
        let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        threads.retain(|t| !t.is_finished());
        threads.push(thread);
        job
    }

    pub fn all(&self) -> Vec<Arc<Job>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner()).iter().rev().cloned().collect()
    }

    pub fn get(&self, id: i64) -> Option<Arc<Job>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner()).iter().find(|j| j.id == id).cloned()
    }

    /// Cancels every running job and waits for them (the service is stopping).
    pub fn cancel_all_and_wait(&self) {
        for job in self.all() {
            job.cancel.store(true, SeqCst);
        }
        let threads: Vec<_> = self.threads.lock().unwrap_or_else(|p| p.into_inner()).drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}
