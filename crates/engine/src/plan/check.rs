//! The writer's dry run for `plan`: the ops of a batch converted exactly as a
//! sync would (lookups, value translations, ids), then checked against the
//! target table and written in a transaction that is rolled back, which also
//! measures what writing costs there.

use crate::lookup::Resolver;
use crate::pipeline::write::{values_of, DeferredLookup, OpKind, PendingOp, TargetWriter};
use crate::shape::MapShape;
use crate::side::Side;
use dualsync_connectors::{failure, Connection, ConnectorError, WriteOp};
use dualsync_model::{content_hash, TableSchema, TypeClass, Value};
use dualsync_state::NewError;
use std::collections::HashMap;
use std::time::Instant;

#[derive(Default)]
pub struct Checked {
    pub would_insert: u64,
    pub would_update: u64,
    pub would_delete: u64,
    pub problems: Vec<NewError>,
    /// Rows written and rolled back, and the seconds it took.
    pub probe: Option<(usize, f64)>,
}

/// What the dry run of one target side needs besides the writer.
pub struct Target<'a> {
    pub conn: &'a mut dyn Connection,
    /// The other app, where a lookup's missing row may still be (the referenced map creates it first).
    pub other: &'a mut dyn Connection,
    pub other_resolver: &'a mut Resolver,
    pub schema: &'a TableSchema,
}

/// Converts a batch of ops as a sync would, then checks every row against the
/// target table (`unfit`) and writes it in a transaction that is rolled back
/// (`Connection::probe`), so the database's own checks (CHECK constraints,
/// triggers, keys) find what a sync would be refused. `probe = false` skips
/// the database's part. A lookup whose row the target lacks is written as
/// NULL for this: if the other app holds the row, the referenced map creates
/// it first and the row will be written; if not, it is an orphan.
pub fn check(
    writer: &mut TargetWriter,
    target: Target<'_>,
    shape: &MapShape,
    side: Side,
    ops: Vec<PendingOp>,
    probe: bool,
) -> Result<Checked, ConnectorError> {
    writer.defer_missing_lookups();
    let (batch, written, applied) = writer.prepare(target.conn, shape, ops)?;
    let mut checked = Checked { problems: applied.errors, ..Checked::default() };
    let index: HashMap<[u8; 16], usize> = written.iter().enumerate().map(|(i, w)| (content_hash(&w.0), i)).collect();
    let mut refused = vec![false; batch.ops.len()];
    // Per op, the columns written as NULL in place of a lookup the referenced map will create.
    let mut pending: Vec<Vec<String>> = vec![Vec::new(); batch.ops.len()];
    for DeferredLookup { key, column: c, value, why } in writer.take_deferred_lookups() {
        let Some(&i) = index.get(&content_hash(&key)) else { continue };
        target.other_resolver.trim();
        target.other_resolver.load_stored(target.other, shape, c, &[&value])?;
        if target.other_resolver.stored_of(shape, c, &value).is_some() {
            pending[i].push(shape.columns[side][c].clone());
        } else if !refused[i] {
            refused[i] = true;
            let shown = (!value.is_null()).then(|| value.clone());
            checked.problems.push(writer.error(shape, &key, Some(shape.columns[side][c].clone()), shown, why));
        }
    }
    for (i, op) in batch.ops.iter().enumerate() {
        let pairs: Vec<(&String, &Value)> = match op {
            WriteOp::Insert(row) => batch.columns.iter().zip(row).collect(),
            WriteOp::Update { set, .. } => set.iter().map(|(c, v)| (c, v)).collect(),
            WriteOp::Delete { .. } => Vec::new(),
        };
        let unfit_value =
            pairs.into_iter().filter(|(c, _)| !pending[i].contains(c)).find_map(|(c, v)| unfit(target.schema, c, v).map(|why| (c, v, why)));
        if let (Some((column, value, why)), false) = (unfit_value, refused[i]) {
            refused[i] = true;
            let value = (!value.is_null()).then(|| value.clone());
            checked.problems.push(writer.error(shape, &written[i].0, Some(column.clone()), value, why));
        }
    }
    if probe && !batch.ops.is_empty() {
        let started = Instant::now();
        // A service cannot undo a write: its writes are not measured (`plan` says the rest).
        let outcome = match target.conn.probe(&batch) {
            Err(e) if e.kind == dualsync_connectors::ErrorKind::Unsupported => Default::default(),
            other => {
                let outcome = other?;
                checked.probe = Some((batch.ops.len(), started.elapsed().as_secs_f64()));
                outcome
            }
        };
        for f in outcome.failures {
            // NULL in place of a pending lookup is this check's own doing, not the row's.
            let own_doing = f.column.as_ref().is_some_and(|c| pending[f.index].contains(c));
            if !refused[f.index] && !own_doing {
                refused[f.index] = true;
                let message = format!("{} would refuse the row: {}", shape.apps[side], f.message);
                let mut error = writer.error(shape, &written[f.index].0, f.column, None, message);
                error.message = shape.redact_quoted(side, error.message, &values_of(&batch, f.index));
                checked.problems.push(error);
            }
        }
    }
    for ((_, _, kind), refused) in written.iter().zip(refused) {
        match (refused, kind) {
            (false, OpKind::Insert) => checked.would_insert += 1,
            (false, OpKind::Update) => checked.would_update += 1,
            (false, OpKind::Delete) => checked.would_delete += 1,
            _ => {}
        }
    }
    Ok(checked)
}

/// Why a value does not fit the target column: NULL where it is NOT NULL, too
/// long for its declared length, not a number for a numeric column, or a
/// number the column would round.
fn unfit(schema: &TableSchema, column: &str, value: &Value) -> Option<String> {
    let info = schema.column(column)?;
    if value.is_null() {
        return (!info.nullable && !info.has_default).then(|| format!("NULL, but {}.{column} is NOT NULL", schema.name));
    }
    if let (Some(max), Value::Text(s)) = (declared_length(&info.declared_type), value) {
        let n = s.chars().count();
        if n > max {
            return Some(format!("a value of {n} characters, longer than {}.{column} ({}) holds", schema.name, info.declared_type));
        }
    }
    if matches!(info.class, TypeClass::Integer | TypeClass::Real | TypeClass::Decimal) {
        if let Value::Text(s) = value {
            if s.trim().parse::<f64>().is_err() {
                return Some(format!("text {s:?} is not a number, but {}.{column} is {}", schema.name, info.declared_type));
            }
        }
    }
    failure::silently_changed(value, info.class, numeric_of(&info.declared_type))
}

/// `VARCHAR(20)`, `character varying(20)`, `CHAR(10)` → the length.
fn declared_length(declared: &str) -> Option<usize> {
    let t = declared.to_ascii_lowercase();
    if !(t.contains("char") || t.contains("varying")) {
        return None;
    }
    t.split_once('(')?.1.split(')').next()?.trim().parse().ok()
}

/// `NUMERIC(10,2)` / `decimal(10,2)` → (10, 2).
fn numeric_of(declared: &str) -> Option<(u32, u32)> {
    let t = declared.to_ascii_lowercase();
    if !(t.contains("numeric") || t.contains("decimal")) {
        return None;
    }
    let inner = t.split_once('(')?.1.split(')').next()?;
    let (p, s) = inner.split_once(',').unwrap_or((inner, "0"));
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_sizes() {
        assert_eq!(declared_length("VARCHAR(20)"), Some(20));
        assert_eq!(declared_length("character varying(160)"), Some(160));
        assert_eq!(declared_length("TEXT"), None);
        assert_eq!(numeric_of("numeric(10,2)"), Some((10, 2)));
        assert_eq!(numeric_of("DECIMAL(14, 2)"), Some((14, 2)));
    }
}
