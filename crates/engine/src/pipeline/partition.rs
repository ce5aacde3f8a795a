//! One (map, company) partition of an initial sync: both sides streamed in key
//! order, merge-joined, decided, and written in batches. Memory is bounded by
//! the channel capacities, whatever the table size.

use super::deletes;
use super::join::{Join, Pair};
use super::read::SideReader;
use super::record::Record;
use super::write::PendingOp;
use super::Context;
use crate::apps::in_app;
use crate::decide::CommonRow;
use crate::pipeline::company::Company;
use crate::shape::MapShape;
use crate::side::Side;
use crate::EngineError;
use dualsync_model::row::key_to_json;
use dualsync_model::{Key, Value};
use dualsync_state::{Counts, NewError};
use std::cmp::Ordering;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

/// Batches in flight between a reader and the merge, and the merge and a writer.
/// With the batch each stage holds, a partition holds at most about
/// 2 × (READ_AHEAD + 2) read batches and (WRITE_AHEAD + 1 + writers) write
/// batches: the memory bound of docs/architecture.md.
const READ_AHEAD: usize = 2;
const WRITE_AHEAD: usize = 1;

/// Syncs one (map, company). `complete`: this pass covers every column, so
/// afterwards keys it did not see are forgotten and errors it did not hit resolved.
/// `writers`: connections that apply batches into each side at once (more than
/// one only for `threading = "multi"` maps into databases with concurrent writers).
pub fn sync_partition(
    ctx: &Context,
    shape: &MapShape,
    company: Option<Company>,
    range: Option<KeySpan>,
    complete: bool,
    writers: [usize; 2],
) -> (Counts, Option<EngineError>) {
    let company_shown = Company::shown(&company);
    let mut counts = Counts::default();
    let result = std::thread::scope(|scope| {
        let mut streams = Vec::new();
        for side in Side::BOTH {
            let (tx, rx) = sync_channel(READ_AHEAD);
            let (company, range) = (company.clone(), range.clone());
            // Named threads: profiles and stack dumps show which stage is busy.
            let name = format!("read-{}", shape.apps[side]);
            std::thread::Builder::new()
                .name(name)
                .spawn_scoped(scope, move || read_side(ctx, shape, side, company, range, tx))
                .expect("spawn a reader thread");
            streams.push(Stream::new(rx));
        }
        let mut handles = Vec::new();
        let mut senders = Vec::new();
        for side in Side::BOTH {
            let (tx, rx) = sync_channel::<Vec<PendingOp>>(WRITE_AHEAD.max(writers[side]));
            let rx = Arc::new(Mutex::new(rx));
            for _ in 0..writers[side] {
                let (company, rx) = (company.clone(), rx.clone());
                let thread = std::thread::Builder::new().name(format!("write-{}", shape.apps[side]));
                let handle =
                    thread.spawn_scoped(scope, move || ctx.sink.drain(ctx, shape, side, company, &rx)).expect("spawn a writer thread");
                handles.push((side, handle));
            }
            senders.push(tx);
        }
        let streams: [Stream; 2] = streams.try_into().ok().expect("two streams");
        let joined = Join::new(ctx, shape, &company, &company_shown, senders).and_then(|join| merge_join(join, streams, &mut counts));
        let mut first_error = joined.err();
        for (side, w) in handles {
            match w.join().unwrap_or_else(|_| Err(EngineError::Data("a writer thread panicked".into()))) {
                Ok(written) => {
                    counts.inserted[side] += written.inserted[side];
                    counts.updated[side] += written.updated[side];
                    counts.deleted[side] += written.deleted[side];
                    counts.failed[side] += written.failed[side];
                }
                // The writer's own error explains why the merge could not send to it.
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        first_error
    });
    if result.is_none() && complete {
        ctx.send(Record::PartitionComplete { map: shape.name.clone(), company: company_shown });
    }
    (counts, result)
}

/// The keys of one chunk of a partition: after the first, up to the second (None: open).
pub type KeySpan = (Option<Key>, Option<Key>);

/// Rows of one side in strictly increasing key order, and the rows that
/// repeated a key already seen (they take no part).
struct ReadBatch {
    rows: Vec<CommonRow>,
    duplicates: Vec<CommonRow>,
}

type Batch = Result<ReadBatch, EngineError>;

fn read_side(ctx: &Context, shape: &MapShape, side: Side, company: Option<Company>, range: Option<KeySpan>, tx: SyncSender<Batch>) {
    let app = &shape.apps[side];
    let run = || -> Result<(), EngineError> {
        let mut reader = SideReader::new(side, company).within(range);
        if !reader.has_company(shape) {
            return Ok(()); // this app has no such company, so no rows of it
        }
        let mut scan_conn = ctx.apps.connect(app)?;
        // Lookups are resolved on a second connection while the scan holds the first.
        let mut lookup_conn = if shape.lookups.iter().any(Option::is_some) { Some(ctx.apps.connect(app)?) } else { None };
        let request = reader.scan_request(shape);
        let mut last_key: Option<Vec<Value>> = None;
        let mut failure = None;
        scan_conn
            .scan(&request, &mut |rows| {
                let lookups: Option<&mut dyn dualsync_connectors::Connection> = match &mut lookup_conn {
                    Some(c) => Some(&mut **c),
                    None => None,
                };
                let checked = reader
                    .to_common(lookups, shape, rows)
                    .map_err(in_app(&ctx.apps, app))
                    .and_then(|rows| in_key_order(shape, side, rows, &mut last_key));
                match checked {
                    Ok(batch) => tx.send(Ok(batch)).is_ok(),
                    Err(e) => {
                        failure = Some(e);
                        false
                    }
                }
            })
            .map_err(in_app(&ctx.apps, app))?;
        failure.map_or(Ok(()), Err)
    };
    if let Err(e) = run() {
        let _ = tx.send(Err(e));
    }
}

/// Checks that keys only go up. A key that goes down means the database does
/// not sort as the merge expects, which would corrupt the diff: stop. A key
/// seen twice is a duplicate in the app: set it aside for the error log.
fn in_key_order(shape: &MapShape, side: Side, rows: Vec<CommonRow>, last_key: &mut Option<Vec<Value>>) -> Result<ReadBatch, EngineError> {
    let mut batch = ReadBatch { rows: Vec::with_capacity(rows.len()), duplicates: Vec::new() };
    for row in rows {
        let previous = batch
            .rows
            .last()
            .map(|r| shape.key_order(&r.values, &row.values))
            .or_else(|| last_key.as_ref().map(|k| key_cmp_to(shape, k, &row.values)));
        match previous {
            None | Some(Ordering::Less) => batch.rows.push(row),
            Some(Ordering::Equal) => batch.duplicates.push(row),
            Some(Ordering::Greater) => {
                let key = shape.key_values(&row.values);
                return Err(EngineError::Data(format!(
                    "map {}: app {} returned key {} after {}: the table does not sort keys in binary order, so the diff cannot run",
                    shape.name,
                    shape.apps[side],
                    key_to_json(&key),
                    last_key.as_ref().map(|k| key_to_json(k)).unwrap_or_default()
                )));
            }
        }
    }
    if let Some(r) = batch.rows.last() {
        *last_key = Some(shape.key_values(&r.values));
    }
    Ok(batch)
}

fn key_cmp_to(shape: &MapShape, key: &[Value], values: &[Value]) -> Ordering {
    for (k, &p) in key.iter().zip(&shape.key_positions) {
        let o = k.key_cmp(&values[p]);
        if o.is_ne() {
            return o;
        }
    }
    Ordering::Equal
}

/// One side's checked batches, one row at a time.
struct Stream {
    rx: Receiver<Batch>,
    rows: std::vec::IntoIter<CommonRow>,
    duplicates: Vec<CommonRow>,
    next: Option<CommonRow>,
    done: bool,
}

impl Stream {
    fn new(rx: Receiver<Batch>) -> Self {
        Stream { rx, rows: Vec::new().into_iter(), duplicates: Vec::new(), next: None, done: false }
    }

    fn peek(&mut self) -> Result<Option<&CommonRow>, EngineError> {
        while self.next.is_none() && !self.done {
            match self.rows.next() {
                Some(r) => self.next = Some(r),
                None => match self.rx.recv() {
                    Ok(Ok(batch)) => {
                        self.rows = batch.rows.into_iter();
                        self.duplicates.extend(batch.duplicates);
                    }
                    Ok(Err(e)) => return Err(e),
                    Err(_) => self.done = true,
                },
            }
        }
        Ok(self.next.as_ref())
    }
}

/// Pairs both apps' rows by key and hands each pair to the join.
fn merge_join(mut join: Join<'_>, mut streams: [Stream; 2], counts: &mut Counts) -> Result<(), EngineError> {
    deletes::precheck(&join)?;
    let (ctx, shape) = (join.ctx, join.shape);
    loop {
        let order = match (streams[0].peek()?.is_some(), streams[1].peek()?.is_some()) {
            (false, false) => break,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (true, true) => shape.key_order(&streams[0].next.as_ref().unwrap().values, &streams[1].next.as_ref().unwrap().values),
        };
        let mut rows: Pair = [None, None];
        for (side, stream) in Side::BOTH.into_iter().zip(streams.iter_mut()) {
            if order != [Ordering::Greater, Ordering::Less][side] {
                rows[side] = stream.next.take();
                counts.read[side] += 1;
            }
            for dup in stream.duplicates.drain(..) {
                counts.read[side] += 1;
                counts.failed[side.other()] += 1;
                join.refuse(duplicate_error(shape, join.company_shown, side, &dup));
            }
        }
        ctx.rows_done.fetch_add(rows.iter().flatten().count() as u64, Relaxed);
        join.pair(rows, counts)?;
    }
    join.finish(counts)
}

fn duplicate_error(shape: &MapShape, company: &str, side: Side, dup: &CommonRow) -> NewError {
    NewError {
        map: shape.name.clone(),
        company: company.to_string(),
        source_app: shape.apps[side].clone(),
        target_app: shape.apps[side.other()].clone(),
        key: key_to_json(&shape.key_values(&dup.values)),
        column: None,
        value: None,
        message: format!(
            "duplicate key: {}.{} holds more than one row with this key; only the first takes part. Remove the duplicates or make the key unique",
            shape.apps[side], shape.tables[side]
        ),
    }
}
