//! One (map, company) partition of an initial sync: both sides streamed in key
//! order, merge-joined, decided, and written in batches. Memory is bounded by
//! the channel capacities, whatever the table size.

use super::read::SideReader;
use super::record::Record;
use super::write::{PendingOp, TargetWriter};
use super::Context;
use crate::apps::in_app;
use crate::decide::{decide, CommonRow};
use crate::shape::MapShape;
use crate::EngineError;
use dualsync_model::row::{content_hash, key_cmp, key_to_json};
use dualsync_model::Value;
use dualsync_state::{Counts, NewError};
use std::cmp::Ordering;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Batches in flight between a reader and the merge, and the merge and a writer.
const READ_AHEAD: usize = 4;
const WRITE_AHEAD: usize = 2;

pub fn sync_partition(
    ctx: &Context,
    shape: &MapShape,
    company: Option<Value>,
) -> (Counts, Option<EngineError>) {
    let company_shown = company
        .as_ref()
        .map(|c| c.display().into_owned())
        .unwrap_or_default();
    let mut counts = Counts::default();
    let result = std::thread::scope(|scope| {
        let mut streams = Vec::new();
        for side in 0..2 {
            let (tx, rx) = sync_channel(READ_AHEAD);
            let company = company.clone();
            scope.spawn(move || read_side(ctx, shape, side, company, tx));
            streams.push(Stream::new(rx, shape, side));
        }
        let mut writers = Vec::new();
        let mut senders = Vec::new();
        for side in 0..2 {
            let (tx, rx) = sync_channel::<Vec<PendingOp>>(WRITE_AHEAD);
            let company = company.clone();
            writers.push(scope.spawn(move || write_side(ctx, shape, side, company, rx)));
            senders.push(tx);
        }
        let [a, b]: [Stream; 2] = streams.try_into().ok().expect("two streams");
        let merged = merge(ctx, shape, &company_shown, [a, b], senders, &mut counts);
        let mut first_error = merged.err();
        for (side, w) in writers.into_iter().enumerate() {
            match w
                .join()
                .unwrap_or_else(|_| Err(EngineError::Data("a writer thread panicked".into())))
            {
                Ok((inserted, updated, failed)) => {
                    counts.inserted[side] = inserted;
                    counts.updated[side] = updated;
                    counts.failed[side] += failed;
                }
                // The writer's own error explains why the merge could not send to it.
                Err(e) => first_error = Some(e),
            }
        }
        first_error
    });
    if result.is_none() {
        let _ = ctx.recorder.send(Record::PartitionComplete {
            map: shape.name.clone(),
            company: company_shown,
        });
    }
    (counts, result)
}

type Batch = Result<Vec<CommonRow>, EngineError>;

fn read_side(
    ctx: &Context,
    shape: &MapShape,
    side: usize,
    company: Option<Value>,
    tx: SyncSender<Batch>,
) {
    let app = &shape.apps[side];
    let run = || -> Result<(), EngineError> {
        let mut scan_conn = ctx.apps.connect(app)?;
        // Lookups are resolved on a second connection while the scan holds the first.
        let mut lookup_conn = ctx.apps.connect(app)?;
        let mut reader = SideReader::new(side, company);
        let request = reader.scan_request(shape);
        let mut failure = None;
        scan_conn
            .scan(
                &request,
                &mut |rows| match reader.to_common(lookup_conn.as_mut(), shape, rows) {
                    Ok(common) => tx.send(Ok(common)).is_ok(),
                    Err(e) => {
                        failure = Some(e);
                        false
                    }
                },
            )
            .map_err(in_app(&ctx.apps, app))?;
        failure.map_or(Ok(()), |e| Err(in_app(&ctx.apps, app)(e)))
    };
    if let Err(e) = run() {
        let _ = tx.send(Err(e));
    }
}

fn write_side(
    ctx: &Context,
    shape: &MapShape,
    side: usize,
    company: Option<Value>,
    rx: Receiver<Vec<PendingOp>>,
) -> Result<(u64, u64, u64), EngineError> {
    let app = &shape.apps[side];
    let mut conn: Option<Box<dyn dualsync_connectors::Connection>> = None;
    let mut writer = TargetWriter::new(shape, side, company);
    let (mut inserted, mut updated, mut failed) = (0, 0, 0);
    for ops in rx {
        // Connect on the first batch: a side that receives nothing is never opened for writing.
        let c = match &mut conn {
            Some(c) => c,
            None => conn.insert(ctx.apps.connect(app)?),
        };
        let applied = writer
            .apply(c.as_mut(), shape, ops)
            .map_err(in_app(&ctx.apps, app))?;
        inserted += applied.inserted;
        updated += applied.updated;
        failed += applied.errors.len() as u64;
        if !applied.synced.is_empty() {
            ctx.send(Record::Synced {
                map: shape.name.clone(),
                company: writer.company_shown().to_string(),
                keys: applied.synced,
            });
        }
        if !applied.errors.is_empty() {
            ctx.send(Record::Errors(applied.errors));
        }
    }
    Ok((inserted, updated, failed))
}

/// One side's rows in key order, checked: a key that goes backwards means the
/// database does not sort as the merge expects, which would corrupt the diff.
struct Stream<'a> {
    rx: Receiver<Batch>,
    batch: std::vec::IntoIter<CommonRow>,
    next: Option<CommonRow>,
    last_key: Option<Vec<Value>>,
    shape: &'a MapShape,
    side: usize,
    done: bool,
}

impl<'a> Stream<'a> {
    fn new(rx: Receiver<Batch>, shape: &'a MapShape, side: usize) -> Self {
        Stream {
            rx,
            batch: Vec::new().into_iter(),
            next: None,
            last_key: None,
            shape,
            side,
            done: false,
        }
    }

    fn peek(&mut self) -> Result<Option<&CommonRow>, EngineError> {
        if self.next.is_none() && !self.done {
            loop {
                if let Some(r) = self.batch.next() {
                    self.next = Some(r);
                    break;
                }
                match self.rx.recv() {
                    Ok(Ok(rows)) => self.batch = rows.into_iter(),
                    Ok(Err(e)) => return Err(e),
                    Err(_) => {
                        self.done = true;
                        break;
                    }
                }
            }
        }
        Ok(self.next.as_ref())
    }

    /// Takes the next row; a second row with the same key comes back as `Err(Ok(row))`.
    fn take(&mut self) -> Result<Result<CommonRow, CommonRow>, EngineError> {
        let row = self.next.take().expect("peeked");
        let key: Vec<Value> = self
            .shape
            .key_of(&row.values)
            .into_iter()
            .cloned()
            .collect();
        if let Some(last) = &self.last_key {
            match key_cmp(last, &key) {
                Ordering::Less => {}
                Ordering::Equal => return Ok(Err(row)),
                Ordering::Greater => {
                    return Err(EngineError::Data(format!(
                        "map {}: app {} returned key {} after {}: the table does not sort keys in binary order, so the diff cannot run",
                        self.shape.name,
                        self.shape.apps[self.side],
                        key_to_json(&key),
                        key_to_json(last)
                    )))
                }
            }
        }
        self.last_key = Some(key);
        Ok(Ok(row))
    }
}

fn merge(
    ctx: &Context,
    shape: &MapShape,
    company: &str,
    mut streams: [Stream; 2],
    senders: Vec<SyncSender<Vec<PendingOp>>>,
    counts: &mut Counts,
) -> Result<(), EngineError> {
    let rules = shape.rules();
    let mut pending: [Vec<PendingOp>; 2] = [Vec::new(), Vec::new()];
    let mut unchanged: Vec<(String, [u8; 16])> = Vec::new();
    let mut refused: Vec<NewError> = Vec::new();
    let send_failed = || EngineError::Data("a writer stopped".into());
    loop {
        let order = match (streams[0].peek()?.is_some(), streams[1].peek()?.is_some()) {
            (false, false) => break,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (true, true) => {
                let (a, b) = (
                    streams[0].next.as_ref().unwrap(),
                    streams[1].next.as_ref().unwrap(),
                );
                key_cmp_refs(&shape.key_of(&a.values), &shape.key_of(&b.values))
            }
        };
        let mut rows: [Option<CommonRow>; 2] = [None, None];
        for side in 0..2 {
            let takes = match order {
                Ordering::Less => side == 0,
                Ordering::Greater => side == 1,
                Ordering::Equal => true,
            };
            if !takes {
                continue;
            }
            counts.read[side] += 1;
            match streams[side].take()? {
                Ok(r) => rows[side] = Some(r),
                Err(dup) => {
                    counts.failed[1 - side] += 1;
                    refused.push(NewError {
                        map: shape.name.clone(),
                        company: company.to_string(),
                        source_app: shape.apps[side].clone(),
                        target_app: shape.apps[1 - side].clone(),
                        key: key_to_json(&shape.key_of(&dup.values).into_iter().cloned().collect::<Vec<_>>()),
                        column: None,
                        value: None,
                        message: format!(
                            "duplicate key: {}.{} holds more than one row with this key; only the first takes part. Remove the duplicates or make the key unique",
                            shape.apps[side], shape.tables[side]
                        ),
                    });
                }
            }
        }
        if rows.iter().all(Option::is_none) {
            continue; // only duplicates this round
        }
        ctx.rows_done
            .fetch_add(rows.iter().flatten().count() as u64, Relaxed);
        let decision = decide(&rules, [rows[0].as_ref(), rows[1].as_ref()]);
        let key: Vec<Value> = shape
            .key_of(&decision.merged)
            .into_iter()
            .cloned()
            .collect();
        let hash = content_hash(&decision.merged);
        for (target, column, message) in &decision.refused {
            counts.failed[*target] += 1;
            refused.push(NewError {
                map: shape.name.clone(),
                company: company.to_string(),
                source_app: shape.apps[1 - target].clone(),
                target_app: shape.apps[*target].clone(),
                key: key_to_json(&key),
                column: Some(shape.columns[1 - target][*column].clone()),
                value: None,
                message: message.clone(),
            });
        }
        let mut wrote = false;
        for (side, write) in decision.writes.into_iter().enumerate() {
            let Some(write) = write else { continue };
            wrote = true;
            pending[side].push(PendingOp {
                key: key.clone(),
                write,
                hash,
            });
            if pending[side].len() >= shape.batch_size {
                senders[side]
                    .send(std::mem::take(&mut pending[side]))
                    .map_err(|_| send_failed())?;
            }
        }
        if !wrote && decision.refused.is_empty() {
            counts.unchanged += 1;
            unchanged.push((key_to_json(&key), hash));
            if unchanged.len() >= shape.batch_size * 4 {
                ctx.send(Record::Synced {
                    map: shape.name.clone(),
                    company: company.to_string(),
                    keys: std::mem::take(&mut unchanged),
                });
            }
        }
        if refused.len() >= 1000 {
            ctx.send(Record::Errors(std::mem::take(&mut refused)));
        }
    }
    for side in 0..2 {
        if !pending[side].is_empty() {
            senders[side]
                .send(std::mem::take(&mut pending[side]))
                .map_err(|_| send_failed())?;
        }
    }
    if !unchanged.is_empty() {
        ctx.send(Record::Synced {
            map: shape.name.clone(),
            company: company.to_string(),
            keys: unchanged,
        });
    }
    if !refused.is_empty() {
        ctx.send(Record::Errors(refused));
    }
    Ok(())
}

fn key_cmp_refs(a: &[&Value], b: &[&Value]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = x.key_cmp(y);
        if o.is_ne() {
            return o;
        }
    }
    Ordering::Equal
}
