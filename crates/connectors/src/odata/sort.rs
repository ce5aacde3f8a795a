//! A bounded external sort, for services that do not sort keys in byte order
//! (Dataverse and finance and operations sort text case-insensitively): the
//! scan's rows are sorted in runs of at most `run_rows` in memory, each run
//! spilled to a temporary file, and the runs merged back in key order. Memory
//! holds one run while reading, and one row per run while merging.

use crate::{ConnectorError, ErrorKind};
use dualsync_model::row::key_cmp;
use dualsync_model::value::unhex;
use dualsync_model::{Row, Value};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

static RUNS: AtomicUsize = AtomicUsize::new(0);

/// A row and its position in key order.
type Entry = (Vec<Value>, Row);

pub struct ExternalSort {
    run_rows: usize,
    current: Vec<Entry>,
    runs: Vec<Spill>,
}

/// A run on disk, removed when dropped.
struct Spill {
    path: PathBuf,
}

impl Drop for Spill {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn io(what: &str, e: std::io::Error) -> ConnectorError {
    ConnectorError::new(
        ErrorKind::Unavailable,
        format!("sorting the service's rows on disk ({}): {what}: {e}", std::env::temp_dir().display()),
    )
}

impl ExternalSort {
    pub fn new(run_rows: usize) -> ExternalSort {
        ExternalSort { run_rows: run_rows.max(1), current: Vec::new(), runs: Vec::new() }
    }

    pub fn push(&mut self, position: Vec<Value>, row: Row) -> Result<(), ConnectorError> {
        self.current.push((position, row));
        if self.current.len() >= self.run_rows {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> Result<(), ConnectorError> {
        self.current.sort_by(|a, b| key_cmp(&a.0, &b.0));
        let path = std::env::temp_dir().join(format!("dualsync-sort-{}-{}.run", std::process::id(), RUNS.fetch_add(1, Relaxed)));
        let spill = Spill { path };
        let mut out = BufWriter::new(File::create(&spill.path).map_err(|e| io("creating a run", e))?);
        for (position, row) in self.current.drain(..) {
            let line = serde_json::to_string(&[encode(&position), encode(&row)]).unwrap_or_default();
            writeln!(out, "{line}").map_err(|e| io("writing a run", e))?;
        }
        out.flush().map_err(|e| io("writing a run", e))?;
        self.runs.push(spill);
        Ok(())
    }

    /// Hands every row over in key order, `batch` at a time, until `on_batch` says stop.
    pub fn finish(mut self, batch: usize, on_batch: &mut dyn FnMut(Vec<Row>) -> bool) -> Result<(), ConnectorError> {
        let mut out = Vec::with_capacity(batch);
        let mut emit = |row: Row, out: &mut Vec<Row>| -> bool {
            out.push(row);
            out.len() < batch || on_batch(std::mem::replace(out, Vec::with_capacity(batch)))
        };
        if self.runs.is_empty() {
            self.current.sort_by(|a, b| key_cmp(&a.0, &b.0));
            for (_, row) in std::mem::take(&mut self.current) {
                if !emit(row, &mut out) {
                    return Ok(());
                }
            }
        } else {
            if !self.current.is_empty() {
                self.spill()?;
            }
            let mut readers = Vec::with_capacity(self.runs.len());
            for run in &self.runs {
                readers.push(BufReader::new(File::open(&run.path).map_err(|e| io("reading a run", e))?).lines());
            }
            let mut heap = BinaryHeap::new();
            for (i, r) in readers.iter_mut().enumerate() {
                if let Some(entry) = next(r)? {
                    heap.push(Head(entry, i));
                }
            }
            while let Some(Head((_, row), i)) = heap.pop() {
                if let Some(entry) = next(&mut readers[i])? {
                    heap.push(Head(entry, i));
                }
                if !emit(row, &mut out) {
                    return Ok(());
                }
            }
        }
        if !out.is_empty() {
            on_batch(out);
        }
        Ok(())
    }
}

fn next(lines: &mut std::io::Lines<BufReader<File>>) -> Result<Option<Entry>, ConnectorError> {
    let Some(line) = lines.next() else { return Ok(None) };
    let line = line.map_err(|e| io("reading a run", e))?;
    let json: serde_json::Value = serde_json::from_str(&line).map_err(|e| io("reading a run", std::io::Error::other(e)))?;
    Ok(Some((decode(&json[0]), decode(&json[1]))))
}

/// The smallest position first (BinaryHeap is a max-heap); ties by run, so the merge is stable.
struct Head(Entry, usize);

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        key_cmp(&other.0 .0, &self.0 .0).then(other.1.cmp(&self.1))
    }
}

/// Values with their kind, so that a run reads back exactly what was written.
fn encode(values: &[Value]) -> serde_json::Value {
    use serde_json::json;
    serde_json::Value::Array(
        values
            .iter()
            .map(|v| match v {
                Value::Null => json!(["n"]),
                Value::Bool(b) => json!(["b", b]),
                Value::Int(i) => json!(["i", i.to_string()]),
                Value::Float(f) => json!(["f", f.to_bits().to_string()]),
                Value::Decimal(d) => json!(["d", d]),
                Value::Text(t) => json!(["t", t]),
                Value::Bytes(b) => json!(["y", dualsync_model::value::hex(b)]),
                Value::Date(d) => json!(["D", d]),
                Value::Time(t) => json!(["T", t]),
                Value::Timestamp(t) => json!(["S", t]),
            })
            .collect(),
    )
}

fn decode(json: &serde_json::Value) -> Vec<Value> {
    let Some(items) = json.as_array() else { return Vec::new() };
    items
        .iter()
        .map(|item| {
            let text = || item[1].as_str().unwrap_or("").to_string();
            match item[0].as_str().unwrap_or("n") {
                "b" => Value::Bool(item[1].as_bool().unwrap_or(false)),
                "i" => Value::Int(text().parse().unwrap_or(0)),
                "f" => Value::Float(f64::from_bits(text().parse().unwrap_or(0))),
                "d" => Value::Decimal(text()),
                "t" => Value::Text(text()),
                "y" => Value::Bytes(unhex(&text())),
                "D" => Value::Date(text()),
                "T" => Value::Time(text()),
                "S" => Value::Timestamp(text()),
                _ => Value::Null,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_come_back_in_byte_order_through_runs_on_disk_with_every_value_exact() {
        // A case-insensitive service's order: a, B, c, D, …; byte order puts capitals first.
        let keys: Vec<String> = (0..500).map(|i| if i % 2 == 0 { format!("k{i:04}") } else { format!("K{i:04}") }).collect();
        let mut sort = ExternalSort::new(64);
        for (i, k) in keys.iter().enumerate().rev() {
            let row = vec![
                Value::Text(k.clone()),
                Value::Decimal("12345678901234567890.5".into()),
                Value::Float(0.1 + i as f64),
                Value::Null,
                Value::Bytes(vec![0, 255]),
            ];
            sort.push(vec![Value::Text(k.clone())], row).unwrap();
        }
        assert!(sort.runs.len() >= 7, "spilled to disk");
        let paths: Vec<PathBuf> = sort.runs.iter().map(|r| r.path.clone()).collect();
        let mut got = Vec::new();
        sort.finish(100, &mut |batch| {
            assert!(batch.len() <= 100);
            got.extend(batch);
            true
        })
        .unwrap();
        let mut expected = keys.clone();
        expected.sort();
        assert_eq!(got.iter().map(|r| r[0].display().into_owned()).collect::<Vec<_>>(), expected);
        assert_eq!(got[0][1], Value::Decimal("12345678901234567890.5".into()));
        assert_eq!(got[0][3], Value::Null);
        assert_eq!(got[0][4], Value::Bytes(vec![0, 255]));
        assert!(paths.iter().all(|p| !p.exists()), "runs removed");
    }
}
