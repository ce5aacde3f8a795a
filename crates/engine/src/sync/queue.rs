//! Where a map pass's companies come from: a queue of this process's own, or
//! the items of a sync job shared with the other workers of a PostgreSQL
//! store (dualsync_state's work.rs), taken one at a time.

use crate::pipeline::partition::KeySpan;
use crate::pipeline::record::Record;
use crate::pipeline::Context;
use crate::EngineError;
use dualsync_model::row::{key_from_text, key_to_json};
use dualsync_model::{Key, Value};
use dualsync_state::{ChunkDone, StateError, StateStore, SyncJob, Unit, Worker};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often a worker with nothing to take looks again while others finish a pass.
const WAIT_FOR_OTHERS: Duration = Duration::from_millis(200);

/// This process's place in a sync job shared with other workers.
pub(crate) struct SharedJob {
    pub worker: Worker,
    pub job: SyncJob,
    /// Companies with more rows than this are synced a chunk of keys at a time.
    pub chunk_rows: u64,
}

impl SharedJob {
    /// Joins the open job of this selection of maps and companies (made if there is none).
    pub fn join(
        store: &StateStore,
        worker: Worker,
        maps: &[String],
        companies: &[String],
        chunk_rows: u64,
    ) -> Result<SharedJob, EngineError> {
        let (mut maps, mut companies) = (maps.to_vec(), companies.to_vec());
        maps.sort();
        companies.sort();
        let selection = serde_json::json!({ "maps": maps, "companies": companies }).to_string();
        Ok(SharedJob { job: store.open_sync_job(&selection)?, worker, chunk_rows })
    }
}

pub(crate) enum Queue<'a> {
    Local(Mutex<VecDeque<Option<Value>>>),
    Shared {
        store: Arc<StateStore>,
        shared: &'a SharedJob,
        stage: usize,
        step: String,
        /// The companies as this process found them, by their shown name.
        companies: HashMap<String, Option<Value>>,
    },
}

impl<'a> Queue<'a> {
    /// The companies of one map pass: this process's alone, or added to the shared job's items.
    pub fn new(
        shared: Option<(Arc<StateStore>, &'a SharedJob)>,
        stage: usize,
        step: String,
        companies: Vec<Option<Value>>,
    ) -> Result<Queue<'a>, EngineError> {
        let Some((store, shared)) = shared else {
            return Ok(Queue::Local(Mutex::new(companies.into())));
        };
        let companies: HashMap<String, Option<Value>> = companies.into_iter().map(|c| (shown(&c), c)).collect();
        let names: Vec<String> = companies.keys().cloned().collect();
        store.add_sync_items(shared.job.id, stage, &step, &names)?;
        Ok(Queue::Shared { store, shared, stage, step, companies })
    }

    /// How many companies the pass has, to size the thread pool.
    pub fn len(&self) -> usize {
        match self {
            Queue::Local(queue) => queue.lock().unwrap_or_else(|p| p.into_inner()).len(),
            Queue::Shared { companies, .. } => companies.len(),
        }
    }

    /// The next company to sync, with the unit of work it is (shared), or None
    /// once every company of the pass is done, here or by another worker.
    /// Once `stop` is set, None at once: the companies under way finish, no other starts.
    pub fn next(&self, stop: Option<&AtomicBool>) -> Result<Option<(Option<Value>, Option<Unit>)>, EngineError> {
        let stopping = || stop.is_some_and(|s| s.load(SeqCst));
        match self {
            _ if stopping() => Ok(None),
            Queue::Local(queue) => Ok(queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front().map(|c| (c, None))),
            Queue::Shared { store, shared, stage, step, companies } => loop {
                if stopping() {
                    return Ok(None);
                }
                if let Some(unit) = store.claim_sync_item(&shared.worker, shared.job.id, *stage, step)? {
                    // A company another worker found and this one did not (its rows came meanwhile) is named as text.
                    let company = companies.get(&unit.company).cloned().unwrap_or_else(|| Some(Value::Text(unit.company.clone())));
                    return Ok(Some((company, Some(unit))));
                }
                // The pass ends when its last item is done, by whichever worker: the next stage reads its bases.
                if store.open_sync_items(shared.job.id, *stage, step)? == 0 {
                    return Ok(None);
                }
                std::thread::sleep(WAIT_FOR_OTHERS);
            },
        }
    }

    /// How many rows a company of this shared pass may have before it is
    /// split into chunks (None: this process's own queue never splits).
    pub fn chunk_rows(&self) -> Option<u64> {
        match self {
            Queue::Local(_) => None,
            Queue::Shared { shared, .. } => Some(shared.chunk_rows),
        }
    }

    /// Splits a company item this worker holds into chunks at `bounds`,
    /// which any worker then takes; an error when the item was taken over.
    pub fn split(&self, unit: &Unit, map: &str, bounds: &[Key]) -> Result<(), EngineError> {
        let Queue::Shared { store, shared, .. } = self else { return Ok(()) };
        let bounds: Vec<String> = bounds.iter().map(|k| key_to_json(k)).collect();
        let fresh = store.partition_key_count(map, &unit.company)? == 0;
        if store.split_sync_item(&shared.worker, unit, &bounds, fresh)? {
            Ok(())
        } else {
            Err(EngineError::State(StateError::Lost(lost(unit))))
        }
    }

    /// Marks a shared item done once the recorder has stored everything sent
    /// for it (its merge bases, which the next stage reads in any process),
    /// without waiting for that here. The last chunk of a company also
    /// finishes the company (`complete`: cleans it up as a full pass does).
    /// Losing the item to another worker meanwhile fails the run.
    pub fn finish(&self, ctx: &Context, unit: Unit, stopped: Option<String>, run_id: i64, map: &str, complete: bool) {
        let Queue::Shared { store, shared, .. } = self else { return };
        let (store, worker, map) = (store.clone(), shared.worker.clone(), map.to_string());
        ctx.send(Record::After(Box::new(move |stored| {
            if !stored {
                return Ok(()); // left open: the run fails, and the next run of the job does it again
            }
            let finished = match unit.chunk {
                Some(_) => store.finish_sync_chunk(&worker, &unit, &map, run_id, stopped.as_deref(), complete)? != ChunkDone::Lost,
                None => store.finish_sync_item(&worker, &unit, stopped.as_deref())?,
            };
            if finished {
                Ok(())
            } else {
                Err(StateError::Lost(lost(&unit)))
            }
        })));
    }
}

/// What a worker says when a unit it held was taken over.
fn lost(unit: &Unit) -> String {
    let chunk = unit.chunk.as_ref().map(|c| format!(" (chunk {})", c.number)).unwrap_or_default();
    format!(
        "company {}{chunk} of {} was taken over by another worker before this one finished it (was this process paused?); \
         the taker syncs it again, and nothing of this process's writes landed after the takeover",
        unit.company, unit.step
    )
}

/// A chunk's keys: after the first, up to the second.
pub(crate) fn span_of(unit: &Unit) -> Option<KeySpan> {
    unit.chunk.as_ref().map(|c| (c.after.as_deref().map(key_from_text), c.upto.as_deref().map(key_from_text)))
}

fn shown(company: &Option<Value>) -> String {
    company.as_ref().map(|c| c.display().into_owned()).unwrap_or_default()
}
