//! Rows, keys and their content hashes.

use crate::value::{Canonical, Value};
use xxhash_rust::xxh3::Xxh3;

/// The values of one row, in the column order of the request that produced it.
pub type Row = Vec<Value>;

/// The values of a row's key columns, in key order.
pub type Key = Vec<Value>;

/// Compares two keys the way the databases sort them (binary collation).
pub fn key_cmp(a: &[Value], b: &[Value]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = x.key_cmp(y);
        if o.is_ne() {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

/// A 128-bit hash of values in their canonical form: equal content, equal hash,
/// whatever the storage types on either side.
pub fn content_hash<'a>(values: impl IntoIterator<Item = &'a Value>) -> [u8; 16] {
    let mut h = Xxh3::new();
    for v in values {
        match v.canonical() {
            Canonical::Null => h.update(&[0]),
            Canonical::Number(n) => feed(&mut h, 1, n.as_bytes()),
            Canonical::Text(s) => feed(&mut h, 2, s.as_bytes()),
            Canonical::Bytes(b) => feed(&mut h, 3, b),
        }
    }
    h.digest128().to_le_bytes()
}

/// The hash that identifies a key within a map and company in the state store.
pub fn key_hash(company: Option<&Value>, key: &[Value]) -> [u8; 16] {
    content_hash(company.into_iter().chain(key))
}

fn feed(h: &mut Xxh3, tag: u8, bytes: &[u8]) {
    h.update(&[tag]);
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// A key as compact JSON (`["US01","C0001"]`), as the error log stores and shows it.
pub fn key_to_json(key: &[Value]) -> String {
    serde_json::Value::Array(key.iter().map(Value::to_json).collect()).to_string()
}

/// Parses a key given on the command line or stored by [`key_to_json`]:
/// a JSON array, or a single plain value for a one-column key.
pub fn key_from_text(text: &str) -> Key {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Array(items)) => items.iter().map(Value::from_json).collect(),
        _ => vec![Value::Text(text.to_string())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_distinguishes_null_empty_and_boundaries() {
        let null = content_hash(&[Value::Null]);
        let empty = content_hash(&[Value::Text(String::new())]);
        assert_ne!(null, empty);
        let ab_c = content_hash(&[Value::Text("ab".into()), Value::Text("c".into())]);
        let a_bc = content_hash(&[Value::Text("a".into()), Value::Text("bc".into())]);
        assert_ne!(ab_c, a_bc);
        assert_eq!(
            content_hash(&[Value::Int(5)]),
            content_hash(&[Value::Float(5.0)])
        );
    }

    #[test]
    fn keys_parse_from_the_command_line() {
        assert_eq!(key_from_text("C0001"), vec![Value::Text("C0001".into())]);
        assert_eq!(
            key_from_text(r#"["US01",7]"#),
            vec![Value::Text("US01".into()), Value::Int(7)]
        );
    }
}
