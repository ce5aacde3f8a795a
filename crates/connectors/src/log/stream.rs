//! A reader's log session on a thread of its own, with a bounded queue of
//! the changes it decoded: the thread reads ahead while the engine merges
//! and applies, and stops reading (the server keeps the log) when the
//! engine falls behind, so memory stays flat whatever the backlog.
//!
//! The queue keeps a change until a read passes a cursor beyond it: the
//! engine saves its cursor only after applying, and after a failure it reads
//! again from the saved one. A stream nobody read for a while (a paused map,
//! a map another process took over) ends and frees its session.

use super::{LogEvent, LogPos, LogSource, Logged};
use crate::{ConnectorError, ErrorKind};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Changes a stream holds before it stops reading its session: the batch the
/// engine is applying (kept until its cursor is saved) and the next ones,
/// read ahead meanwhile (a few MB).
const QUEUE_LIMIT: usize = 64_000;
/// How long a read waits for the rest of a transaction that is arriving.
const REST_OF_TRANSACTION: Duration = Duration::from_millis(50);
/// A stream nobody read for this long ends.
const IDLE: Duration = Duration::from_secs(20);
/// How long reads wait for the log's end a first read found (a new session
/// may decode much of the log before it reaches the end: `sync` on a
/// started map must get all of it).
const FIRST_CATCH_UP: Duration = Duration::from_secs(120);
/// How often the thread tells the server what the reader has stored.
const CONFIRM_EVERY: Duration = Duration::from_millis(500);

/// The log streams of one connector, by stream id, and a bell that rings
/// when any of them receives a change (live sync waits on it). Dropping it
/// ends them all, freeing their sessions.
#[derive(Default)]
pub struct Streams {
    streams: Mutex<HashMap<String, Arc<Stream>>>,
    bell: Arc<Bell>,
}

impl Drop for Streams {
    /// Ends every stream and waits for its thread, which confirms what the
    /// reader stored before it closes: a short-lived process (`sync`) moves
    /// its slots on too, or they would keep the WAL from their first place.
    fn drop(&mut self) {
        let streams = self.streams.get_mut().unwrap_or_else(|p| p.into_inner());
        for stream in streams.values() {
            stream.stop.store(true, Ordering::SeqCst);
        }
        for stream in streams.values() {
            if let Some(thread) = stream.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
                let _ = thread.join();
            }
        }
    }
}

#[derive(Default)]
struct Bell {
    rung: Mutex<bool>,
    cond: Condvar,
}

impl Bell {
    fn ring(&self) {
        *self.rung.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cond.notify_all();
    }
}

struct Stream {
    state: Mutex<State>,
    cond: Condvar,
    stop: AtomicBool,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Logged>,
    /// Every change before this place is in the queue or was passed by a read.
    passed: LogPos,
    /// What the reader has stored, to confirm to the server.
    stored: LogPos,
    last_read: Option<Instant>,
    /// When a read last asked where the log ends (see `end_due`).
    end_asked: Option<Instant>,
    /// Why the session ended, for the next read to report.
    ended: Option<ConnectorError>,
    /// Where a first read found the log's end: reads wait for the stream to
    /// pass it (`End::must_reach`), so that reading on until a read comes
    /// back short gets every change committed before the first one began.
    must_pass: LogPos,
}

/// Where the log ended when a read began.
#[derive(Clone, Copy, Debug)]
pub struct End {
    /// A place in the log the read knows is committed (the log's end when it began).
    pub pos: LogPos,
    /// Whether reads must get there (a first read: they wait, and fail after
    /// `FIRST_CATCH_UP` rather than give fewer changes than were committed),
    /// or are only told (a later one: the stream passes it in its own time,
    /// which moves an idle slot on, and the read gives what has arrived).
    pub must_reach: bool,
}

/// What a read hands back: changes after the cursor, and the cursor after them.
pub struct Read {
    pub changes: Vec<Logged>,
    pub next: LogPos,
}

impl Streams {
    /// Up to `limit` changes after `after`. Until the stream has passed the
    /// end a first read found (`End::must_reach`), it first waits for that
    /// or for `limit` changes to give; afterwards it gives what has arrived.
    /// `open` starts a session at `after` when the stream is not running.
    pub fn read(
        &self,
        id: &str,
        after: LogPos,
        end: Option<End>,
        limit: usize,
        open: impl FnOnce(LogPos) -> Result<Box<dyn LogSource>, ConnectorError>,
    ) -> Result<Read, ConnectorError> {
        let stream = self.running(id, after, open)?;
        let mut state = stream.state.lock().unwrap_or_else(|p| p.into_inner());
        state.last_read = Some(Instant::now());
        // The engine stored `after`: changes up to there are done with.
        while state.queue.front().is_some_and(|l| l.pos <= after) {
            state.queue.pop_front();
        }
        state.stored = state.stored.max(after);
        stream.cond.notify_all();
        if let Some(end) = end.filter(|e| e.must_reach) {
            state.must_pass = state.must_pass.max(end.pos);
        }
        let deadline = Instant::now() + FIRST_CATCH_UP;
        while state.ended.is_none() && state.passed < state.must_pass && state.queue.len() < limit && Instant::now() < deadline {
            state = stream.cond.wait_timeout(state, Duration::from_millis(50)).unwrap_or_else(|p| p.into_inner()).0;
            // A read waiting for a session still decoding far back is not an idle reader.
            state.last_read = Some(Instant::now());
        }
        if state.ended.is_none() && state.passed < state.must_pass && state.queue.len() < limit {
            return Err(ConnectorError::new(
                ErrorKind::Busy,
                format!(
                    "the log reader has not reached the log's end of {} s ago yet (the server is still decoding up to it); reading goes on",
                    FIRST_CATCH_UP.as_secs()
                ),
            ));
        }
        // A big transaction is arriving (changes past the last end of one): whole batches apply faster.
        let rest = Instant::now() + REST_OF_TRANSACTION;
        while state.ended.is_none()
            && state.queue.len() < limit
            && state.queue.back().is_some_and(|l| l.pos > state.passed)
            && Instant::now() < rest
        {
            state = stream.cond.wait_timeout(state, Duration::from_millis(5)).unwrap_or_else(|p| p.into_inner()).0;
        }
        if let Some(e) = state.ended.take() {
            drop(state);
            self.streams.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
            return Err(e);
        }
        // Popped up to `after` above, and kept in order: the queue holds only changes after it.
        let changes: Vec<Logged> = state.queue.iter().take(limit).cloned().collect();
        let took_all = changes.len() == state.queue.len();
        let last = changes.last().map(|l| l.pos).unwrap_or(after);
        let next = if took_all { last.max(state.passed) } else { last };
        Ok(Read { changes, next })
    }

    /// Waits up to `timeout` for any stream of this connector to receive a change.
    pub fn wait(&self, timeout: Duration) -> bool {
        let rung = self.bell.rung.lock().unwrap_or_else(|p| p.into_inner());
        let (mut rung, _) = self.bell.cond.wait_timeout_while(rung, timeout, |r| !*r).unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *rung)
    }

    pub fn any(&self) -> bool {
        !self.streams.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    /// Whether no stream runs under this id (the next read is a first one).
    pub fn is_new(&self, id: &str) -> bool {
        self.streams.lock().unwrap_or_else(|p| p.into_inner()).get(id).is_none_or(|s| s.stop.load(Ordering::SeqCst))
    }

    /// Whether a read after `after` should first learn where the log ends
    /// (a database that must write to say so asks only now and then): when
    /// the stream is not running yet (a first read catches up to now), or
    /// has nothing after `after` and was last told more than `every` ago.
    pub fn end_due(&self, id: &str, after: LogPos, every: Duration) -> bool {
        let streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        let Some(stream) = streams.get(id) else { return true };
        let mut state = stream.state.lock().unwrap_or_else(|p| p.into_inner());
        let waiting = state.queue.back().is_some_and(|l| l.pos > after);
        let due = !waiting && state.end_asked.is_none_or(|t| t.elapsed() >= every);
        if due {
            state.end_asked = Some(Instant::now());
        }
        due || stream.stop.load(Ordering::SeqCst)
    }

    /// Ends a stream (its reader's log objects are being dropped).
    pub fn close(&self, id: &str) {
        if let Some(stream) = self.streams.lock().unwrap_or_else(|p| p.into_inner()).remove(id) {
            stream.stop.store(true, Ordering::SeqCst);
        }
    }

    fn running(
        &self,
        id: &str,
        after: LogPos,
        open: impl FnOnce(LogPos) -> Result<Box<dyn LogSource>, ConnectorError>,
    ) -> Result<Arc<Stream>, ConnectorError> {
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = streams.get(id) {
            let state = s.state.lock().unwrap_or_else(|p| p.into_inner());
            // A stream that already dropped changes this read wants cannot serve it (a cursor went back).
            let behind = state.queue.front().is_some_and(|l| l.pos > after) && state.stored > after;
            drop(state);
            if !behind && !s.stop.load(Ordering::SeqCst) {
                return Ok(s.clone());
            }
            s.stop.store(true, Ordering::SeqCst);
            streams.remove(id);
        }
        let source = open(after)?;
        let stream = Arc::new(Stream {
            state: Mutex::new(State { passed: after, stored: after, last_read: Some(Instant::now()), ..Default::default() }),
            cond: Condvar::new(),
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        let (s, bell) = (stream.clone(), self.bell.clone());
        let thread = std::thread::Builder::new()
            .name(format!("log {id}"))
            .spawn(move || follow(s, bell, source))
            .map_err(|e| ConnectorError::new(ErrorKind::Unavailable, format!("cannot start the log reader thread: {e}")))?;
        *stream.thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(thread);
        streams.insert(id.to_string(), stream.clone());
        Ok(stream)
    }
}

/// The stream's thread: polls the session into the queue while there is room.
fn follow(stream: Arc<Stream>, bell: Arc<Bell>, mut source: Box<dyn LogSource>) {
    let mut events = Vec::new();
    let mut confirmed = LogPos::default();
    let mut last_confirm = Instant::now();
    let outcome: Result<(), ConnectorError> = loop {
        if stream.stop.load(Ordering::SeqCst) {
            break Ok(());
        }
        let (full, stored, idle) = {
            let state = stream.state.lock().unwrap_or_else(|p| p.into_inner());
            (state.queue.len() >= QUEUE_LIMIT, state.stored, state.last_read.is_none_or(|t| t.elapsed() > IDLE))
        };
        if idle {
            break Ok(());
        }
        // Confirm what the reader stored, at most twice a second, and now and
        // then even when nothing moved: the server ends a silent session.
        let due = last_confirm.elapsed() >= CONFIRM_EVERY && (stored > confirmed || last_confirm.elapsed() >= CONFIRM_EVERY * 20);
        if due {
            if let Err(e) = source.confirm(stored) {
                break Err(e);
            }
            confirmed = stored;
            last_confirm = Instant::now();
        }
        if full {
            let state = stream.state.lock().unwrap_or_else(|p| p.into_inner());
            drop(stream.cond.wait_timeout(state, Duration::from_millis(100)));
            continue;
        }
        if let Err(e) = source.poll(Duration::from_millis(100), &mut events) {
            break Err(e);
        }
        if events.is_empty() {
            continue;
        }
        let mut state = stream.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut changed = false;
        for event in events.drain(..) {
            match event {
                // A session reopened at an older place hands over again what the reader stored: skipped.
                LogEvent::Change(logged) => {
                    if logged.pos > state.stored && state.queue.back().is_none_or(|last| logged.pos > last.pos) {
                        state.queue.push_back(logged);
                        changed = true;
                    }
                }
                LogEvent::Passed(pos) => state.passed = state.passed.max(pos),
            }
        }
        drop(state);
        stream.cond.notify_all();
        if changed {
            bell.ring();
        }
    };
    let stored = stream.state.lock().unwrap_or_else(|p| p.into_inner()).stored;
    if outcome.is_ok() && stored > confirmed {
        // The last word to the server: what the reader stored (a session that already failed cannot take it).
        let _ = source.confirm(stored);
    }
    let mut state = stream.state.lock().unwrap_or_else(|p| p.into_inner());
    state.ended = Some(
        outcome.err().unwrap_or_else(|| ConnectorError::new(ErrorKind::Unavailable, "the log reader stopped; reading again restarts it")),
    );
    stream.stop.store(true, Ordering::SeqCst);
    drop(state);
    stream.cond.notify_all();
}
