//! Lookup resolution on one side of a map, within one company.
//!
//! An app stores a lookup either as the referenced row's key, or as its own
//! internal id (when the referenced map declares `id` for that app). Reading
//! turns ids into keys (the common form); writing turns keys back into that
//! app's ids and checks that the referenced row exists. Both are batched: one
//! query per batch and lookup column, with a bounded cache.

use crate::pipeline::company::Company;
use crate::shape::{LookupTarget, MapShape};
use crate::side::Side;
use dualsync_connectors::{Connection, ConnectorError, FetchRequest, Selection};
use dualsync_model::Value;
use std::collections::HashMap;

/// Entries kept per referenced map before its cache starts over (bounds memory).
const CACHE_LIMIT: usize = 100_000;

pub struct Resolver {
    side: Side,
    company: Option<Company>,
    /// Per lookup column: stored value → key (reading) and key → stored value (writing).
    /// Per referenced map: columns that refer to the same map share its rows
    /// (ten lookups into one map load each referenced row once, not ten times).
    to_key: HashMap<String, Cache>,
    to_stored: HashMap<String, Cache>,
}

/// The identity of a value for lookups: equal amounts and equal text match
/// (the canonical form, tagged by kind). Runs for every lookup value of every row.
fn ident(v: &Value) -> String {
    use dualsync_model::value::Canonical;
    let (tag, body): (char, std::borrow::Cow<'_, str>) = match v {
        Value::Text(s) => ('s', s.as_str().into()),
        Value::Int(i) => ('n', i.to_string().into()),
        other => match other.canonical() {
            Canonical::Null => ('z', "".into()),
            Canonical::Number(n) => ('n', n),
            Canonical::Text(s) => ('s', s.into()),
            Canonical::Temporal(t) => ('t', t),
            Canonical::Bytes(b) => ('b', dualsync_model::value::hex(b).into()),
        },
    };
    let mut out = String::with_capacity(body.len() + 1);
    out.push(tag);
    out.push_str(&body);
    out
}

/// Resolved values by identity. Text (the usual key) is found by its `&str`
/// without building an identity; everything else by `ident`.
#[derive(Default)]
struct Cache {
    text: HashMap<String, Value, Fx>,
    other: HashMap<String, Value, Fx>,
}

impl Cache {
    fn get(&self, v: &Value) -> Option<&Value> {
        match v {
            Value::Text(s) => self.text.get(s.as_str()),
            other => self.other.get(&ident(other)),
        }
    }

    fn contains(&self, v: &Value) -> bool {
        self.get(v).is_some()
    }

    fn insert(&mut self, v: Value, resolved: Value) {
        match v {
            Value::Text(s) => self.text.insert(s, resolved),
            other => self.other.insert(ident(&other), resolved),
        };
    }

    fn len(&self) -> usize {
        self.text.len() + self.other.len()
    }

    fn clear(&mut self) {
        self.text.clear();
        self.other.clear();
    }
}

/// A fast hasher for cache keys (they come from the apps' own tables, not from
/// an adversary, so SipHash's flooding protection buys nothing here).
#[derive(Default, Clone, Copy)]
struct Fx;

impl std::hash::BuildHasher for Fx {
    type Hasher = FxHasher;
    fn build_hasher(&self) -> FxHasher {
        FxHasher(0)
    }
}

struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

enum Way {
    ToKey,
    ToStored,
}

impl Resolver {
    pub fn new(side: Side, company: Option<Company>) -> Self {
        Resolver { side, company, to_key: HashMap::new(), to_stored: HashMap::new() }
    }

    /// Empties the caches that grew past their limit. Called before a batch's
    /// loads, never between them: columns that refer to the same map share a
    /// cache, so a clear between two columns' loads would drop the first's rows.
    pub fn trim(&mut self) {
        for cache in self.to_key.values_mut().chain(self.to_stored.values_mut()) {
            if cache.len() > CACHE_LIMIT {
                cache.clear();
            }
        }
    }

    /// Loads the keys of these stored values of `column` (ids or keys) that the cache lacks.
    pub fn load_keys(
        &mut self,
        conn: &mut dyn Connection,
        shape: &MapShape,
        column: usize,
        stored: &[&Value],
    ) -> Result<(), ConnectorError> {
        let target = shape.lookups[column].as_ref().expect("a lookup column");
        if target.id_column[self.side].is_none() {
            return Ok(()); // this side stores keys already
        }
        self.load(conn, target, stored, Way::ToKey)
    }

    /// The referenced key of a stored value, once loaded; None where no row matches.
    pub fn key_of(&self, shape: &MapShape, column: usize, stored: &Value) -> Option<Value> {
        let target = shape.lookups[column].as_ref().expect("a lookup column");
        if target.id_column[self.side].is_none() {
            return Some(stored.clone());
        }
        self.to_key.get(&target.map)?.get(stored).cloned()
    }

    /// Loads what `column` must store on this side for these referenced keys.
    pub fn load_stored(
        &mut self,
        conn: &mut dyn Connection,
        shape: &MapShape,
        column: usize,
        keys: &[&Value],
    ) -> Result<(), ConnectorError> {
        let target = shape.lookups[column].as_ref().expect("a lookup column");
        self.load(conn, target, keys, Way::ToStored)
    }

    /// What `column` stores on this side for a referenced key, once loaded;
    /// None where the referenced row does not exist here.
    pub fn stored_of(&self, shape: &MapShape, column: usize, key: &Value) -> Option<&Value> {
        let target = shape.lookups[column].as_ref().expect("a lookup column");
        self.to_stored.get(&target.map)?.get(key)
    }

    fn load(&mut self, conn: &mut dyn Connection, target: &LookupTarget, values: &[&Value], way: Way) -> Result<(), ConnectorError> {
        let s = self.side;
        let key_col = target.key_column[s].clone();
        let stored_col = target.id_column[s].clone().unwrap_or_else(|| key_col.clone());
        let (match_col, result_col, cache) = match way {
            Way::ToKey => (stored_col, key_col, self.to_key.entry(target.map.clone()).or_default()),
            Way::ToStored => (key_col, stored_col, self.to_stored.entry(target.map.clone()).or_default()),
        };
        let mut missing: Vec<Vec<Value>> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for v in values {
            if v.is_null() {
                continue;
            }
            if !cache.contains(v) && seen.insert(ident(v)) {
                missing.push(vec![(*v).clone()]);
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let mut equals = Vec::new();
        if let (Some(col), Some(company)) = (&target.company[s], &self.company) {
            // The referenced table stores the company as its code, or as its row's id there.
            let scope = if target.company_is_id[s] { company.stored[s].clone() } else { Some(company.code.clone()) };
            match scope {
                Some(v) => equals.push((col.clone(), v)),
                None => return Ok(()), // the company does not exist on this side: nothing resolves
            }
        }
        let rows = conn.fetch(&FetchRequest {
            selection: Selection { table: target.tables[s].clone(), filter: None, equals, range: None },
            columns: vec![match_col.clone(), result_col],
            match_columns: vec![match_col],
            keys: missing,
        })?;
        for mut r in rows {
            let result = r.pop().unwrap_or(Value::Null);
            let matched = r.pop().unwrap_or(Value::Null);
            cache.insert(matched, result);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::ident;
    use dualsync_model::Value;

    #[test]
    fn equal_values_have_one_identity_whatever_their_type() {
        assert_eq!(ident(&Value::Int(5)), ident(&Value::Float(5.0)));
        assert_eq!(ident(&Value::Int(5)), ident(&Value::Decimal("5.00".into())));
        assert_eq!(ident(&Value::Text("R1".into())), ident(&Value::Text("R1".into())));
        assert_ne!(ident(&Value::Int(5)), ident(&Value::Text("5".into())));
        assert_ne!(ident(&Value::Text("".into())), ident(&Value::Null));
    }
}
