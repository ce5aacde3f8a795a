//! The recorder: one thread per run that writes what partitions report into
//! the state store, in order, so the apply path never waits on it row by row.

use dualsync_state::{NewConflict, NewError, StateError, StateStore};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Records queued for the state store (docs/architecture.md, "Memory").
const RECORDS_IN_FLIGHT: usize = 16;

pub enum Record {
    /// Keys whose content both apps now hold, with its merge base.
    Synced {
        map: String,
        company: String,
        keys: Vec<(String, Vec<u8>)>,
    },
    /// Keys gone from both apps: their merge base is dropped.
    Forget {
        map: String,
        company: String,
        keys: Vec<String>,
    },
    Errors(Vec<NewError>),
    Conflicts(Vec<NewConflict>),
    /// Answers once everything sent before is stored (a stage's bases before
    /// the next stage reads them): true if all of it was.
    Barrier(std::sync::mpsc::Sender<bool>),
    /// Runs once everything sent before is stored, told whether all of it was
    /// (a company of a shared sync is marked done then); its error fails the run.
    After(Box<dyn FnOnce(bool) -> Result<(), StateError> + Send>),
    /// Bases or errors of a chunk of a shared sync, noted as that chunk's (`Context::send`).
    InChunk(i64, Box<Record>),
    /// A partition finished a full pass: forget keys and resolve errors it did not see.
    PartitionComplete {
        map: String,
        company: String,
    },
}

pub struct Recorder {
    pub sender: SyncSender<Record>,
    handle: JoinHandle<Result<(), StateError>>,
}

impl Recorder {
    pub fn start(store: Arc<StateStore>, run_id: i64) -> Recorder {
        Recorder::spawn(move |receiver| record_all(&store, run_id, receiver))
    }

    fn spawn(record: impl FnOnce(Receiver<Record>) -> Result<(), StateError> + Send + 'static) -> Recorder {
        // Each record holds up to a write batch of keys: a few in flight keep the recorder busy.
        let (sender, receiver) = sync_channel(RECORDS_IN_FLIGHT);
        let handle =
            std::thread::Builder::new().name("recorder".into()).spawn(move || record(receiver)).expect("spawn the recorder thread");
        Recorder { sender, handle }
    }

    /// Waits until everything sent is stored. A recorder that panicked stored
    /// nothing reliable: that fails the run.
    pub fn finish(self) -> Result<(), StateError> {
        drop(self.sender);
        self.handle.join().unwrap_or_else(|panic| {
            let why = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
            Err(StateError::Panicked(why.unwrap_or_else(|| "no message".into())))
        })
    }
}

/// Keys of one partition written in one state-store transaction at most: the
/// queued records of a partition are joined up to this many (a commit per
/// write batch cost a fifth of a bulk sync's base recording).
const KEYS_PER_TRANSACTION: usize = 20_000;

fn record_all(store: &StateStore, run_id: i64, receiver: Receiver<Record>) -> Result<(), StateError> {
    let mut first_error = None;
    let mut next: Option<Record> = None;
    // Keep draining after a failure so that senders never block forever.
    while let Some(mut record) = next.take().or_else(|| receiver.recv().ok()) {
        // In order: only records already queued right behind, of the same partition, join.
        if let Record::Synced { map, company, keys } = &mut record {
            while keys.len() < KEYS_PER_TRANSACTION {
                match receiver.try_recv() {
                    Ok(Record::Synced { map: m, company: c, keys: more }) if m == *map && c == *company => keys.extend(more),
                    Ok(other) => {
                        next = Some(other);
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        if let Record::Barrier(done) = record {
            let _ = done.send(first_error.is_none());
            continue;
        }
        if let Record::After(then) = record {
            if let Err(e) = then(first_error.is_none()) {
                first_error.get_or_insert(e);
            }
            continue;
        }
        if first_error.is_some() {
            continue;
        }
        let (chunk, record) = match record {
            Record::InChunk(chunk, inner) => (Some(chunk), *inner),
            other => (None, other),
        };
        let result = match record {
            Record::Synced { map, company, keys } => store.record_key_bases_of(&map, &company, run_id, chunk, &keys),
            Record::Forget { map, company, keys } => store.forget_keys(&map, &company, &keys),
            Record::Errors(errors) => store.record_errors_of(run_id, chunk, &errors),
            Record::Conflicts(conflicts) => conflicts.iter().try_for_each(|c| store.record_conflict(c).map(|_| ())),
            Record::Barrier(_) | Record::After(_) | Record::InChunk(..) => unreachable!("answered above"),
            Record::PartitionComplete { map, company } => store
                .forget_keys_not_in_run(&map, &company, run_id)
                .and_then(|_| store.resolve_errors_not_in_run(&map, &company, run_id))
                .map(|_| ()),
        };
        if let Err(e) = result {
            first_error = Some(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 10, item 7: a recorder that panicked stored nothing reliable; the run must not count as done.
    #[test]
    fn a_panicking_recorder_fails_the_run() {
        let recorder = Recorder::spawn(|receiver| {
            let _first = receiver.recv();
            panic!("the store broke");
        });
        let _ = recorder.sender.send(Record::Errors(Vec::new()));
        match recorder.finish() {
            Err(StateError::Panicked(why)) => assert!(why.contains("the store broke"), "{why}"),
            other => panic!("a panic must fail the run, got {other:?}"),
        }
    }
}
