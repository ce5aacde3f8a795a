//! One side's rows into the map's common form.

use crate::decide::CommonRow;
use crate::lookup::Resolver;
use crate::pipeline::company::Company;
use crate::shape::MapShape;
use crate::side::Side;
use dualsync_connectors::{Connection, ConnectorError, FetchRequest, KeyRange, ScanRequest, Selection};
use dualsync_model::{Key, Row, Value};

pub struct SideReader {
    pub side: Side,
    pub company: Option<Company>,
    resolver: Resolver,
    /// Reads ignore the map's filter (to tell a row that left it from one deleted).
    unfiltered: bool,
    /// Only the keys of one chunk of the partition, in common key order.
    range: Option<super::partition::KeySpan>,
}

impl SideReader {
    pub fn new(side: Side, company: Option<Company>) -> Self {
        SideReader { side, resolver: Resolver::new(side, company.clone()), company, unfiltered: false, range: None }
    }

    pub fn regardless_of_filter(self) -> Self {
        SideReader { unfiltered: true, ..self }
    }

    /// Reads only the keys after `after` and up to `upto` (a chunk).
    pub fn within(self, range: Option<super::partition::KeySpan>) -> Self {
        SideReader { range, ..self }
    }

    pub fn selection(&self, shape: &MapShape) -> Selection {
        let s = self.side;
        let mut equals = Vec::new();
        if let Some(col) = &shape.company[s] {
            let stored = self.company.as_ref().and_then(|c| c.stored[s].clone());
            equals.push((col.clone(), stored.unwrap_or(Value::Null)));
        }
        let filter = if self.unfiltered { None } else { shape.filter[s].clone() };
        let range = self.range.as_ref().map(|(after, upto)| KeyRange {
            columns: shape.key_columns[s].clone(),
            after: after.clone(),
            upto: upto.clone(),
        });
        Selection { table: shape.tables[s].clone(), filter, equals, range }
    }

    /// A side without the partition's company (no row for it in its companies table) has no rows for it.
    pub fn has_company(&self, shape: &MapShape) -> bool {
        shape.company[self.side].is_none() || self.company.as_ref().is_some_and(|c| c.stored[self.side].is_some())
    }

    pub fn scan_request(&self, shape: &MapShape) -> ScanRequest {
        ScanRequest {
            selection: self.selection(shape),
            columns: shape.columns[self.side].clone(),
            order_by: shape.key_columns[self.side].clone(),
            batch_size: shape.batch_size,
        }
    }

    /// The rows with these keys (common key order), in common form.
    pub fn fetch(&mut self, conn: &mut dyn Connection, shape: &MapShape, keys: Vec<Key>) -> Result<Vec<CommonRow>, ConnectorError> {
        let rows = conn.fetch(&FetchRequest {
            selection: self.selection(shape),
            columns: shape.columns[self.side].clone(),
            match_columns: shape.key_columns[self.side].clone(),
            keys,
        })?;
        self.to_common(Some(conn), shape, rows)
    }

    /// `conn` resolves lookups: needed only when the map has some.
    pub fn to_common(
        &mut self,
        mut conn: Option<&mut dyn Connection>,
        shape: &MapShape,
        rows: Vec<Row>,
    ) -> Result<Vec<CommonRow>, ConnectorError> {
        let mut out: Vec<CommonRow> = rows.into_iter().map(CommonRow::new).collect();
        for (c, translation) in shape.translations.iter().enumerate() {
            if let Some(t) = translation {
                for r in &mut out {
                    let v = std::mem::replace(&mut r.values[c], Value::Null);
                    r.values[c] = t.to_common(self.side, v);
                }
            }
        }
        self.resolver.trim();
        for c in (0..shape.lookups.len()).filter(|c| shape.lookups[*c].is_some()) {
            let stored: Vec<&Value> = out.iter().map(|r| &r.values[c]).collect();
            let conn = conn.as_deref_mut().expect("a connection for the map's lookups");
            self.resolver.load_keys(conn, shape, c, &stored)?;
            for r in &mut out {
                if r.values[c].is_null() {
                    continue;
                }
                match self.resolver.key_of(shape, c, &r.values[c]) {
                    Some(k) => r.values[c] = k,
                    None => {
                        let raw = std::mem::replace(&mut r.values[c], Value::Null);
                        r.unresolved.push((c, raw));
                    }
                }
            }
        }
        Ok(out)
    }
}
