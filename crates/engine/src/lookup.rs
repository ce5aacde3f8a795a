//! Lookup resolution on one side of a map, within one company.
//!
//! An app stores a lookup either as the referenced row's key, or as its own
//! internal id (when the referenced map declares `id` for that app). Reading
//! turns ids into keys (the common form); writing turns keys back into that
//! app's ids and checks that the referenced row exists. Both are batched: one
//! query per batch and lookup column, with a bounded cache.

use crate::shape::{LookupTarget, MapShape};
use crate::sync::company::Company;
use dualsync_connectors::{Connection, ConnectorError, FetchRequest, Selection};
use dualsync_model::Value;
use std::collections::HashMap;

/// Entries kept per lookup column before the cache starts over (bounds memory).
const CACHE_LIMIT: usize = 100_000;

pub struct Resolver {
    side: usize,
    company: Option<Company>,
    /// Per lookup column: stored value → key (reading) and key → stored value (writing).
    to_key: HashMap<usize, HashMap<String, Value>>,
    to_stored: HashMap<usize, HashMap<String, Value>>,
}

/// The identity of a value for lookups: equal amounts and equal text match.
fn ident(v: &Value) -> String {
    format!("{:?}", v.canonical())
}

enum Way {
    ToKey,
    ToStored,
}

impl Resolver {
    pub fn new(side: usize, company: Option<Company>) -> Self {
        Resolver { side, company, to_key: HashMap::new(), to_stored: HashMap::new() }
    }

    /// Stored values of `column` (ids or keys) → referenced keys; absent where no row matches.
    pub fn keys_for(
        &mut self,
        conn: &mut dyn Connection,
        shape: &MapShape,
        column: usize,
        stored: &[&Value],
    ) -> Result<HashMap<String, Value>, ConnectorError> {
        let target = shape.lookups[column].as_ref().expect("a lookup column");
        if target.id_column[self.side].is_none() {
            // This side stores keys already.
            return Ok(stored.iter().map(|v| (ident(v), (*v).clone())).collect());
        }
        self.resolve(conn, target, column, stored, Way::ToKey)
    }

    /// Referenced keys → what `column` must store on this side; absent where the referenced row does not exist.
    pub fn stored_for(
        &mut self,
        conn: &mut dyn Connection,
        shape: &MapShape,
        column: usize,
        keys: &[&Value],
    ) -> Result<HashMap<String, Value>, ConnectorError> {
        let target = shape.lookups[column].as_ref().expect("a lookup column");
        self.resolve(conn, target, column, keys, Way::ToStored)
    }

    fn resolve(
        &mut self,
        conn: &mut dyn Connection,
        target: &LookupTarget,
        column: usize,
        values: &[&Value],
        way: Way,
    ) -> Result<HashMap<String, Value>, ConnectorError> {
        let s = self.side;
        let key_col = target.key_column[s].clone();
        let stored_col = target.id_column[s].clone().unwrap_or_else(|| key_col.clone());
        let (match_col, result_col, cache) = match way {
            Way::ToKey => (stored_col, key_col, self.to_key.entry(column).or_default()),
            Way::ToStored => (key_col, stored_col, self.to_stored.entry(column).or_default()),
        };
        let mut missing: Vec<Vec<Value>> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for v in values {
            let id = ident(v);
            if !v.is_null() && !cache.contains_key(&id) && seen.insert(id) {
                missing.push(vec![(*v).clone()]);
            }
        }
        if !missing.is_empty() {
            if cache.len() + missing.len() > CACHE_LIMIT {
                cache.clear();
            }
            let mut equals = Vec::new();
            if let (Some(col), Some(company)) = (&target.company[s], &self.company) {
                // The referenced table stores the company as its code, or as its row's id there.
                let scope = if target.company_is_id[s] { company.stored[s].clone() } else { Some(company.code.clone()) };
                match scope {
                    Some(v) => equals.push((col.clone(), v)),
                    None => return Ok(HashMap::new()), // the company does not exist on this side: nothing resolves
                }
            }
            let rows = conn.fetch(&FetchRequest {
                selection: Selection { table: target.tables[s].clone(), filter: None, equals },
                columns: vec![match_col.clone(), result_col],
                match_columns: vec![match_col],
                keys: missing,
            })?;
            for mut r in rows {
                let result = r.pop().unwrap_or(Value::Null);
                let matched = r.pop().unwrap_or(Value::Null);
                cache.insert(ident(&matched), result);
            }
        }
        Ok(values.iter().filter_map(|v| cache.get(&ident(v)).map(|r| (ident(v), r.clone()))).collect())
    }
}

pub fn lookup_ident(v: &Value) -> String {
    ident(v)
}
