//! Bulk migration through CSV, outside the sync: `export` writes one app's
//! rows of a map, `import` writes a file's rows into one app (inserting new
//! keys and updating existing ones), both streaming in batches.

pub mod csv;

use crate::apps::in_app;
use crate::{Apps, EngineError};
use dualsync_connectors::{FetchRequest, ScanRequest, Selection, WriteBatch, WriteOp};
use dualsync_model::config::{IdDefault, MapConfig, SideConfig, DEFAULT_BATCH_SIZE};
use dualsync_model::row::key_to_json;
use dualsync_model::{Config, TableSchema, Value};
use dualsync_state::NewError;
use std::collections::HashSet;
use std::io::{BufReader, Write};
use std::path::Path;

fn side_of<'a>(config: &'a Config, map: &str, app: &str) -> Result<(&'a MapConfig, &'a SideConfig), EngineError> {
    let m = config.map(map).ok_or_else(|| EngineError::Usage(format!("there is no map named {map:?}")))?;
    let side =
        m.side_of_app(app).ok_or_else(|| EngineError::Usage(format!("map {map} joins apps {} and {}, not {app:?}", m.app(0), m.app(1))))?;
    Ok((m, &m.sides[side]))
}

/// The columns a map's file holds for one app: its mapped columns, then its company and id columns.
fn file_columns(map: &MapConfig, side: &SideConfig) -> Vec<String> {
    let s = map.side_of_app(&side.app).expect("side of the map");
    let mut columns: Vec<String> = map.columns.iter().map(|c| c.names[s].clone()).collect();
    for extra in [&side.company, &side.id].into_iter().flatten() {
        if !columns.contains(extra) {
            columns.push(extra.clone());
        }
    }
    columns
}

/// Writes the app's rows of the map as CSV, in key order; returns the number of rows.
pub fn export(config: &Config, apps: &Apps, map: &str, app: &str, out: &mut dyn Write) -> Result<u64, EngineError> {
    let (m, side) = side_of(config, map, app)?;
    let columns = file_columns(m, side);
    let io = |e: std::io::Error| EngineError::Usage(format!("writing the CSV file: {e}"));
    csv::write_record(out, &columns.iter().map(|c| Some(c.clone())).collect::<Vec<_>>()).map_err(io)?;
    let mut order: Vec<String> = side.company.iter().cloned().collect();
    order.extend(side.key.iter().cloned());
    let request = ScanRequest {
        selection: Selection { table: side.table.clone(), filter: side.filter.clone(), equals: Vec::new(), range: None },
        columns,
        order_by: order,
        batch_size: DEFAULT_BATCH_SIZE,
    };
    let mut conn = apps.connect(app)?;
    let (mut rows, mut failure) = (0u64, None);
    conn.scan(&request, &mut |batch| {
        for row in &batch {
            if let Err(e) = csv::write_record(out, &row.iter().map(csv::field).collect::<Vec<_>>()) {
                failure = Some(e);
                return false;
            }
        }
        rows += batch.len() as u64;
        true
    })
    .map_err(in_app(apps, app))?;
    failure.map_or(Ok(rows), |e| Err(io(e)))
}

#[derive(Debug, Default)]
pub struct ImportReport {
    pub records: u64,
    pub inserted: u64,
    pub updated: u64,
    /// Rows not imported (malformed lines, values the column cannot hold, rows the database refused).
    pub failed: Vec<NewError>,
    /// For a started map: what reconciling the imported rows did to the other app.
    pub propagated: dualsync_state::Counts,
}

/// Keys an import wrote into one app, each as `[company value, key values…]`
/// (the company first where the map has one), handed over after every batch.
pub type Written<'a> = &'a mut dyn FnMut(Vec<Vec<Value>>) -> Result<dualsync_state::Counts, EngineError>;

/// Imports a CSV file into the app's table of the map. With `strict`, a file
/// with any malformed line is refused whole before anything is written.
/// `written` receives the keys of each batch once it is committed (the
/// import writes as dualsync, so capture does not see it; a started map
/// reconciles them to the other app from there).
pub fn import(
    config: &Config,
    apps: &Apps,
    map: &str,
    app: &str,
    path: &Path,
    strict: bool,
    written: Written<'_>,
) -> Result<ImportReport, EngineError> {
    let (m, side) = side_of(config, map, app)?;
    let open =
        || std::fs::File::open(path).map(BufReader::new).map_err(|e| EngineError::Usage(format!("cannot read {}: {e}", path.display())));
    if strict {
        let mut reader = csv::Reader::new(open()?);
        let bad: Vec<String> =
            std::iter::from_fn(|| reader.next_record()).filter_map(|r| r.err()).map(|(line, why)| format!("line {line}: {why}")).collect();
        if !bad.is_empty() {
            return Err(EngineError::Usage(format!(
                "nothing was imported (--strict): {} malformed line(s):\n  {}",
                bad.len(),
                bad.join("\n  ")
            )));
        }
    }
    let mut reader = csv::Reader::new(open()?);
    let header: Vec<String> = match reader.next_record() {
        Some(Ok((_, fields))) => fields.into_iter().map(|f| f.unwrap_or_default()).collect(),
        Some(Err((line, why))) => return Err(EngineError::Usage(format!("{}: line {line}: {why}", path.display()))),
        None => return Err(EngineError::Usage(format!("{} is empty: it needs a header line", path.display()))),
    };
    let mut conn = apps.connect(app)?;
    let schema = conn.describe(&side.table).map_err(in_app(apps, app))?;
    let mut key_columns: Vec<String> = side.company.iter().cloned().collect();
    key_columns.extend(side.key.iter().cloned());
    for c in &header {
        if schema.column(c).is_none() {
            return Err(EngineError::Usage(format!(
                "{}: column {c:?} of the header does not exist in {app}.{} (its columns: {})",
                path.display(),
                side.table,
                schema.column_names()
            )));
        }
    }
    if let Some(missing) = key_columns.iter().find(|k| !header.contains(k)) {
        return Err(EngineError::Usage(format!(
            "{}: the header lacks key column {missing:?}; the file needs {}",
            path.display(),
            key_columns.join(", ")
        )));
    }
    // Header positions of the map's redacted columns: a refused row's message never quotes them.
    let at = m.side_of_app(app).expect("side_of found it");
    let hidden =
        header.iter().enumerate().filter(|(_, h)| m.columns.iter().any(|c| c.redact && &c.names[at] == *h)).map(|(i, _)| i).collect();
    let mut importer = Importer {
        map: m,
        side,
        hidden,
        schema: &schema,
        header: &header,
        key_columns,
        file: path.display().to_string(),
        report: ImportReport::default(),
        written: Vec::new(),
    };
    let mut batch: Vec<(usize, Vec<Option<String>>)> = Vec::new();
    while let Some(record) = reader.next_record() {
        importer.report.records += 1;
        match record {
            Ok(r) => batch.push(r),
            Err((line, why)) => importer.fail(line, &[], None, why, &|_| None),
        }
        if batch.len() >= DEFAULT_BATCH_SIZE {
            importer.write(conn.as_mut(), std::mem::take(&mut batch)).map_err(in_app(apps, app))?;
            let counts = written(std::mem::take(&mut importer.written))?;
            importer.report.propagated.add(&counts);
        }
    }
    importer.write(conn.as_mut(), batch).map_err(in_app(apps, app))?;
    let counts = written(std::mem::take(&mut importer.written))?;
    importer.report.propagated.add(&counts);
    Ok(importer.report)
}

struct Importer<'a> {
    map: &'a MapConfig,
    side: &'a SideConfig,
    schema: &'a TableSchema,
    header: &'a [String],
    /// Positions in `header` of redacted columns.
    hidden: Vec<usize>,
    key_columns: Vec<String>,
    file: String,
    report: ImportReport,
    /// Keys of the last batch that were written.
    written: Vec<Vec<Value>>,
}

impl Importer<'_> {
    /// Records a refused line; `field(i)` gives its value of header column `i`,
    /// so that the values of redacted columns are hashed where `why` quotes them.
    fn fail(&mut self, line: usize, key: &[Value], column: Option<&str>, why: String, field: &dyn Fn(usize) -> Option<String>) {
        let why = self.hidden.iter().filter_map(|&i| field(i)).fold(why, |why, value| dualsync_model::redact::redact_in(&why, &value));
        let company = self.side.company.as_ref().and_then(|_| key.first()).map(|c| c.display().into_owned()).unwrap_or_default();
        self.report.failed.push(NewError {
            map: self.map.name.clone(),
            company,
            source_app: format!("csv:{}", self.file),
            target_app: self.side.app.clone(),
            // A row without a readable key is known by its line.
            key: if key.is_empty() { format!("[\"line {line}\"]") } else { key_to_json(key) },
            column: column.map(str::to_string),
            value: None,
            message: format!("line {line}: {why}"),
        });
    }

    fn write(
        &mut self,
        conn: &mut dyn dualsync_connectors::Connection,
        records: Vec<(usize, Vec<Option<String>>)>,
    ) -> Result<(), dualsync_connectors::ConnectorError> {
        let key_at: Vec<usize> = self.key_columns.iter().map(|k| self.header.iter().position(|h| h == k).expect("checked")).collect();
        let generate_id = match (&self.side.id, self.side.id_default) {
            (Some(id), Some(IdDefault::Uuid)) if !self.header.contains(id) => Some(id.clone()),
            _ => None,
        };
        let mut rows: Vec<(usize, Vec<Value>, Vec<Value>)> = Vec::new(); // line, key, values
        for (line, fields) in records {
            if fields.len() != self.header.len() {
                let field = |i: usize| fields.get(i).cloned().flatten();
                self.fail(line, &[], None, format!("{} fields, the header has {}", fields.len(), self.header.len()), &field);
                continue;
            }
            let mut values = Vec::with_capacity(fields.len());
            let mut bad = None;
            for (c, f) in self.header.iter().zip(&fields) {
                let class = self.schema.column(c).expect("checked").class;
                match csv::value(f.as_deref(), class) {
                    Ok(v) => values.push(v),
                    Err(why) => {
                        bad = Some((c.clone(), why));
                        break;
                    }
                }
            }
            let key: Vec<Value> =
                key_at.iter().map(|&i| fields[i].as_deref().map_or(Value::Null, |s| Value::Text(s.to_string()))).collect();
            match bad {
                Some((column, why)) => self.fail(line, &key, Some(&column), why, &|i| fields.get(i).cloned().flatten()),
                None => rows.push((line, key_at.iter().map(|&i| values[i].clone()).collect(), values)),
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        // Which keys exist already: those rows are updated, the others inserted.
        let existing: HashSet<String> = conn
            .fetch(&FetchRequest {
                selection: Selection { table: self.side.table.clone(), ..Default::default() },
                columns: self.key_columns.clone(),
                match_columns: self.key_columns.clone(),
                keys: rows.iter().map(|r| r.1.clone()).collect(),
            })?
            .iter()
            .map(|k| key_to_json(k))
            .collect();
        let mut columns = self.header.to_vec();
        columns.extend(generate_id.iter().cloned());
        let mut batch = WriteBatch {
            table: self.side.table.clone(),
            columns,
            key_columns: self.key_columns.clone(),
            scope: Vec::new(),
            ops: Vec::new(),
        };
        for (_, key, values) in &rows {
            if existing.contains(&key_to_json(key)) {
                let set = self
                    .header
                    .iter()
                    .zip(values)
                    .filter(|(c, _)| !self.key_columns.contains(c))
                    .map(|(c, v)| (c.clone(), v.clone()))
                    .collect();
                batch.ops.push(WriteOp::Update { key: key.clone(), set });
            } else {
                let mut row = values.clone();
                if generate_id.is_some() {
                    row.push(Value::Text(uuid::Uuid::now_v7().to_string()));
                }
                batch.ops.push(WriteOp::Insert(row));
            }
        }
        let outcome = conn.write(&batch)?;
        let mut failed = vec![false; rows.len()];
        for f in outcome.failures {
            failed[f.index] = true;
            let (line, key, values) = &rows[f.index];
            let field = |i: usize| values.get(i).filter(|v| !v.is_null()).map(|v| v.display().into_owned());
            self.fail(*line, key, f.column.as_deref(), f.message, &field);
        }
        for (i, op) in batch.ops.iter().enumerate() {
            if !failed[i] {
                self.written.push(rows[i].1.clone());
                match op {
                    WriteOp::Insert(_) => self.report.inserted += 1,
                    WriteOp::Update { .. } => self.report.updated += 1,
                    WriteOp::Delete { .. } => {} // an import never deletes
                }
            }
        }
        Ok(())
    }
}
