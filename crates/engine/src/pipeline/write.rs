//! Decisions for one target side into database writes: values translated,
//! lookups resolved to that app's ids, ids generated, rows refused by the
//! database turned into error-log entries.

use crate::decide::Write;
use crate::lookup::Resolver;
use crate::pipeline::company::Company;
use crate::shape::MapShape;
use crate::side::Side;
use dualsync_connectors::{Connection, ConnectorError, WriteBatch, WriteOp};
use dualsync_model::config::IdDefault;
use dualsync_model::row::key_to_json;
use dualsync_model::Value;
use dualsync_state::NewError;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One decided write for the target side, with what the state store needs once it is done.
pub struct PendingOp {
    /// The key, in common key order.
    pub key: Vec<Value>,
    pub write: Write,
    pub base: BaseUpdate,
}

/// What becomes of a key's merge base once its writes are done. A key keeps
/// its old base unless every write it needs succeeded: a base that one app
/// never reached would make that app's stale value look like an edit.
pub enum BaseUpdate {
    /// The key's only write.
    One(BaseChange),
    /// One of the key's two writes (both apps are written): the base changes only if both succeed.
    Both(Arc<SharedChange>),
    /// The caller records the base itself.
    Untracked,
}

pub struct BaseChange {
    /// The base once written (None: the key is gone from both apps, forget it).
    pub new: Option<Vec<u8>>,
    /// The base before (None: the key had none).
    pub old: Option<Vec<u8>>,
}

pub struct SharedChange {
    change: BaseChange,
    outstanding: AtomicU8,
    failed: AtomicBool,
}

/// A lookup written as NULL because its row is not in the target app yet.
pub struct DeferredLookup {
    /// The key of the row that holds the lookup (common form).
    pub key: Vec<Value>,
    /// The lookup column (by position) and the referenced key it should hold.
    pub column: usize,
    pub value: Value,
    /// Why it could not be written now, for the error log if it never can.
    pub why: String,
}

/// What the state store is told about a key.
pub enum BaseRecord {
    Store(Vec<u8>),
    Forget,
}

impl BaseUpdate {
    /// The updates of a key written into both apps.
    pub fn both(change: BaseChange) -> (BaseUpdate, BaseUpdate) {
        let shared = Arc::new(SharedChange { change, outstanding: AtomicU8::new(2), failed: AtomicBool::new(false) });
        (BaseUpdate::Both(shared.clone()), BaseUpdate::Both(shared))
    }

    /// This write is done (`ok`: the app took it). Says what to record, once
    /// the key's last write is done.
    pub fn finish(self, ok: bool) -> Option<BaseRecord> {
        match self {
            BaseUpdate::One(change) => change.outcome(ok),
            BaseUpdate::Both(shared) => {
                if !ok {
                    shared.failed.store(true, Ordering::SeqCst);
                }
                let last = shared.outstanding.fetch_sub(1, Ordering::SeqCst) == 1;
                let ok = !shared.failed.load(Ordering::SeqCst);
                last.then(|| BaseChange { new: shared.change.new.clone(), old: shared.change.old.clone() }.outcome(ok)).flatten()
            }
            BaseUpdate::Untracked => None,
        }
    }
}

impl BaseChange {
    /// Takes the base by value: this runs once per written row.
    fn outcome(self, ok: bool) -> Option<BaseRecord> {
        match (ok, self.new, self.old) {
            (true, Some(new), _) => Some(BaseRecord::Store(new)),
            (true, None, Some(_)) => Some(BaseRecord::Forget),
            (true, None, None) => None,
            // The old base is stored again so that the run keeps it (a full pass forgets keys it did not record).
            (false, _, Some(old)) => Some(BaseRecord::Store(old)),
            (false, _, None) => None,
        }
    }
}

#[derive(Default)]
pub struct Applied {
    /// Keys written, with their merge base.
    pub synced: Vec<(String, Vec<u8>)>,
    /// Keys written that exist in neither app any more.
    pub forgotten: Vec<String>,
    pub errors: Vec<NewError>,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
}

impl Applied {
    fn record(&mut self, key: &[Value], record: Option<BaseRecord>) {
        match record {
            Some(BaseRecord::Store(base)) => self.synced.push((key_to_json(key), base)),
            Some(BaseRecord::Forget) => self.forgotten.push(key_to_json(key)),
            None => {}
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Insert,
    Update,
    Delete,
}

impl OpKind {
    fn of(write: &Write) -> OpKind {
        match write {
            Write::Insert(_) => OpKind::Insert,
            Write::Update(_) => OpKind::Update,
            Write::Delete => OpKind::Delete,
        }
    }
}

pub struct TargetWriter {
    side: Side,
    /// What this side's company column holds for the partition's company.
    company: Option<Value>,
    /// Why nothing can be written into this side for this company, if so.
    company_missing: Option<String>,
    company_shown: String,
    resolver: Resolver,
    /// Inserts carry every mapped column, then the company and a generated id.
    /// A row new to an app is created whole, so both apps agree from the start;
    /// `direction` decides only whose value wins once both hold the row.
    insert_names: Vec<String>,
    /// Where the company column is also mapped (or part of the key): its
    /// position among the mapped columns. It is written once, with the
    /// partition's company.
    company_mapped: Option<usize>,
    /// When set (`plan`, live batches): lookups whose row this app lacks are
    /// written as NULL and noted here instead of refused: the row may be
    /// created first (by the referenced map, or later in the same batch).
    deferred_lookups: Option<Vec<DeferredLookup>>,
}

impl TargetWriter {
    pub fn new(shape: &MapShape, side: Side, company: Option<Company>) -> Self {
        let mut insert_names = shape.columns[side].clone();
        let company_mapped = shape.company[side].as_ref().and_then(|col| insert_names.iter().position(|n| n == col));
        if let (Some(col), None) = (&shape.company[side], company_mapped) {
            insert_names.push(col.clone());
        }
        if let Some((id, Some(IdDefault::Uuid))) = &shape.id[side] {
            insert_names.push(id.clone());
        }
        TargetWriter {
            side,
            company_shown: Company::shown(&company),
            company_missing: company.as_ref().and_then(|c| c.missing_on(shape, side)),
            resolver: Resolver::new(side, company.clone()),
            company: company.and_then(|c| c.stored[side].clone()),
            insert_names,
            company_mapped,
            deferred_lookups: None,
        }
    }

    pub fn company_shown(&self) -> &str {
        &self.company_shown
    }

    /// See `deferred_lookups`.
    pub(crate) fn defer_missing_lookups(&mut self) {
        self.deferred_lookups = Some(Vec::new());
    }

    /// The lookups written as NULL since the last call.
    pub(crate) fn take_deferred_lookups(&mut self) -> Vec<DeferredLookup> {
        self.deferred_lookups.as_mut().map(std::mem::take).unwrap_or_default()
    }

    pub fn apply(&mut self, conn: &mut dyn Connection, shape: &MapShape, ops: Vec<PendingOp>) -> Result<Applied, ConnectorError> {
        let side = self.side;
        let (batch, written, mut applied) = self.prepare(conn, shape, ops)?;
        if batch.ops.is_empty() {
            return Ok(applied);
        }
        let outcome = write_with_retry(conn, &batch)?;
        let mut failed = vec![false; batch.ops.len()];
        for f in outcome.failures {
            failed[f.index] = true;
            let value = f.column.as_ref().and_then(|c| value_of(&batch, f.index, c));
            let message = format!("{} refused the row: {}", shape.apps[side], f.message);
            let mut error = self.error(shape, &written[f.index].0, f.column, value, message);
            error.message = shape.redact_quoted(side, error.message, &values_of(&batch, f.index));
            applied.errors.push(error);
        }
        for ((key, base, kind), failed) in written.into_iter().zip(failed) {
            if !failed {
                match kind {
                    OpKind::Insert => applied.inserted += 1,
                    OpKind::Update => applied.updated += 1,
                    OpKind::Delete => applied.deleted += 1,
                }
            }
            applied.record(&key, base.finish(!failed));
        }
        Ok(applied)
    }

    /// The batch that writes these ops into this side (values translated,
    /// lookups resolved, ids generated), with each op's key, merge base and kind, and
    /// the ops refused on the way.
    #[allow(clippy::type_complexity)]
    pub fn prepare(
        &mut self,
        conn: &mut dyn Connection,
        shape: &MapShape,
        ops: Vec<PendingOp>,
    ) -> Result<(WriteBatch, Vec<(Vec<Value>, BaseUpdate, OpKind)>, Applied), ConnectorError> {
        let side = self.side;
        let mut applied = Applied::default();
        let mut batch = WriteBatch {
            table: shape.tables[side].clone(),
            columns: self.insert_names.clone(),
            key_columns: shape.key_columns[side].clone(),
            scope: shape.company[side].iter().map(|c| (c.clone(), self.company.clone().unwrap_or(Value::Null))).collect(),
            ops: Vec::with_capacity(ops.len()),
        };
        if let Some(why) = &self.company_missing {
            for op in ops {
                applied.errors.push(self.error(shape, &op.key, shape.company[side].clone(), None, why.clone()));
                applied.record(&op.key, op.base.finish(false));
            }
            return Ok((batch, Vec::new(), applied));
        }
        self.load_lookups(conn, shape, &ops)?;
        // Per batch op: the key and merge base to record once it is written.
        let mut written = Vec::with_capacity(ops.len());
        for op in ops {
            let PendingOp { key, write, base } = op;
            let kind = OpKind::of(&write);
            match self.to_write_op(shape, &key, write) {
                Ok(w) => {
                    batch.ops.push(w);
                    written.push((key, base, kind));
                }
                Err((column, value, message)) => {
                    applied.errors.push(self.error(shape, &key, Some(column), Some(value), message));
                    applied.record(&key, base.finish(false));
                }
            }
        }
        Ok((batch, written, applied))
    }

    /// Loads, for each lookup column, what this side stores for every key the ops write.
    fn load_lookups(&mut self, conn: &mut dyn Connection, shape: &MapShape, ops: &[PendingOp]) -> Result<(), ConnectorError> {
        self.resolver.trim();
        for c in (0..shape.lookups.len()).filter(|c| shape.lookups[*c].is_some()) {
            let mut keys: Vec<&Value> = Vec::new();
            for op in ops {
                match &op.write {
                    Write::Insert(values) => keys.push(&values[c]),
                    Write::Update(set) => keys.extend(set.iter().filter(|s| s.0 == c).map(|s| &s.1)),
                    Write::Delete => {}
                }
            }
            keys.retain(|k| !k.is_null());
            if !keys.is_empty() {
                self.resolver.load_stored(conn, shape, c, &keys)?;
            }
        }
        Ok(())
    }

    /// The common value of column `c` as this side stores it.
    fn convert(&self, shape: &MapShape, c: usize, v: Value) -> Result<Value, (String, Value, String)> {
        let column = || shape.columns[self.side][c].clone();
        if let Some(t) = &shape.translations[c] {
            return t.to_side(self.side, &v).map_err(|m| (column(), v.clone(), m));
        }
        if let Some(target) = &shape.lookups[c] {
            if v.is_null() {
                return Ok(Value::Null);
            }
            return match self.resolver.stored_of(shape, c, &v) {
                Some(stored) => Ok(stored.clone()),
                None => Err((
                    column(),
                    v.clone(),
                    format!(
                        "lookup to map {}: no row with key {} in {}.{}{}; it must exist there first (sync map {} and check its errors)",
                        target.map,
                        v.display(),
                        shape.apps[self.side],
                        target.tables[self.side],
                        if target.company[self.side].is_some() { format!(" for company {}", self.company_shown) } else { String::new() },
                        target.map
                    ),
                )),
            };
        }
        Ok(v)
    }

    /// `convert`, or a missing lookup row as NULL where deferred (see `deferred_lookups`).
    fn convert_or_defer(&mut self, shape: &MapShape, key: &[Value], c: usize, v: Value) -> Result<Value, (String, Value, String)> {
        match self.convert(shape, c, v) {
            Err((_, value, why)) if shape.lookups[c].is_some() && self.deferred_lookups.is_some() => {
                self.deferred_lookups.as_mut().expect("checked").push(DeferredLookup { key: key.to_vec(), column: c, value, why });
                Ok(Value::Null)
            }
            other => other,
        }
    }

    fn to_write_op(&mut self, shape: &MapShape, key: &[Value], write: Write) -> Result<WriteOp, (String, Value, String)> {
        match write {
            Write::Insert(mut row) => {
                // Converted in place: a new row per insert was a fifth of a bulk writer's time,
                // most of it touching freshly allocated memory.
                for c in 0..row.len() {
                    if Some(c) == self.company_mapped {
                        row[c] = self.company.clone().unwrap_or(Value::Null);
                    } else if shape.translations[c].is_some() || shape.lookups[c].is_some() {
                        let v = std::mem::replace(&mut row[c], Value::Null);
                        row[c] = self.convert_or_defer(shape, key, c, v)?;
                    }
                }
                row.reserve_exact(self.insert_names.len() - row.len());
                if shape.company[self.side].is_some() && self.company_mapped.is_none() {
                    row.push(self.company.clone().unwrap_or(Value::Null));
                }
                if let Some((_, Some(IdDefault::Uuid))) = &shape.id[self.side] {
                    row.push(Value::Text(uuid::Uuid::now_v7().to_string()));
                }
                Ok(WriteOp::Insert(row))
            }
            Write::Update(set) => {
                let mut out = Vec::with_capacity(set.len());
                for (c, v) in set {
                    out.push((shape.columns[self.side][c].clone(), self.convert_or_defer(shape, key, c, v)?));
                }
                Ok(WriteOp::Update { key: key.to_vec(), set: out })
            }
            Write::Delete => Ok(WriteOp::Delete { key: key.to_vec() }),
        }
    }

    /// A row this side cannot take, as the error log keeps it.
    pub(crate) fn error(&self, shape: &MapShape, key: &[Value], column: Option<String>, value: Option<Value>, message: String) -> NewError {
        let error = NewError {
            map: shape.name.clone(),
            company: self.company_shown.clone(),
            source_app: shape.apps[self.side.other()].clone(),
            target_app: shape.apps[self.side].clone(),
            key: key_to_json(key),
            column,
            value: value.map(|v| v.display().into_owned()),
            message,
        };
        shape.redact_error(self.side, error)
    }
}

/// The columns and values of one op of a batch (an update's columns set).
pub(crate) fn values_of(batch: &WriteBatch, index: usize) -> Vec<(&str, &Value)> {
    match &batch.ops[index] {
        WriteOp::Insert(row) => batch.columns.iter().map(String::as_str).zip(row).collect(),
        WriteOp::Update { set, .. } => set.iter().map(|(c, v)| (c.as_str(), v)).collect(),
        WriteOp::Delete { .. } => Vec::new(),
    }
}

fn value_of(batch: &WriteBatch, index: usize, column: &str) -> Option<Value> {
    match &batch.ops[index] {
        WriteOp::Insert(row) => batch.columns.iter().position(|c| c == column).map(|i| row[i].clone()),
        WriteOp::Update { set, .. } => set.iter().find(|s| s.0 == column).map(|s| s.1.clone()),
        WriteOp::Delete { .. } => None,
    }
}

/// A locked database (the app is writing) is waited out a few times before the batch fails.
fn write_with_retry(conn: &mut dyn Connection, batch: &WriteBatch) -> Result<dualsync_connectors::WriteOutcome, ConnectorError> {
    let mut attempt = 0;
    loop {
        match conn.write(batch) {
            Err(e) if e.is_retryable() && attempt < 5 => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(200 << attempt));
            }
            other => return other,
        }
    }
}
