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
/// whatever the storage types on either side (consistent with `Value::same_as`).
/// Runs once per row of every sync, so numbers are formatted on the stack.
pub fn content_hash<'a>(values: impl IntoIterator<Item = &'a Value>) -> [u8; 16] {
    let mut h = Xxh3::new();
    let mut buf = StackText::default();
    for v in values {
        match v {
            Value::Null => h.update(&[0]),
            Value::Int(i) => feed(&mut h, 1, buf.format(i)),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => feed(&mut h, 1, buf.format(&(*f as i64))),
            Value::Text(s) => feed(&mut h, 2, s.as_bytes()),
            other => match other.canonical() {
                Canonical::Null => h.update(&[0]),
                Canonical::Number(n) => feed(&mut h, 1, n.as_bytes()),
                Canonical::Text(s) => feed(&mut h, 2, s.as_bytes()),
                Canonical::Temporal(s) => feed(&mut h, 4, s.as_bytes()),
                Canonical::Bytes(b) => feed(&mut h, 3, b),
            },
        }
    }
    h.digest128().to_le_bytes()
}

/// The merge base of a row: a 64-bit hash per value, in their canonical form
/// (as [`content_hash`]: equal content, equal hash, whatever the storage
/// types), 8 bytes each. Comparing two slices of it tells which columns
/// changed since the base without keeping the values.
pub fn column_hashes<'a>(values: impl IntoIterator<Item = &'a Value>) -> Vec<u8> {
    use xxhash_rust::xxh3::xxh3_64_with_seed as h;
    let values = values.into_iter();
    let mut out = Vec::with_capacity(values.size_hint().0 * 8);
    let mut buf = StackText::default();
    for v in values {
        let hash = match v {
            Value::Null => h(&[], 0),
            Value::Int(i) => h(buf.format(i), 1),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => h(buf.format(&(*f as i64)), 1),
            Value::Text(s) => h(s.as_bytes(), 2),
            other => match other.canonical() {
                Canonical::Null => h(&[], 0),
                Canonical::Number(n) => h(n.as_bytes(), 1),
                Canonical::Text(s) => h(s.as_bytes(), 2),
                Canonical::Temporal(s) => h(s.as_bytes(), 4),
                Canonical::Bytes(b) => h(b, 3),
            },
        };
        out.extend_from_slice(&hash.to_le_bytes());
    }
    out
}

/// A small buffer to format numbers into without allocating.
#[derive(Default)]
struct StackText {
    bytes: [u8; 24],
    len: usize,
}

impl StackText {
    fn format(&mut self, n: &i64) -> &[u8] {
        use std::fmt::Write;
        self.len = 0;
        let _ = write!(self, "{n}");
        &self.bytes[..self.len]
    }
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
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

/// A key as compact JSON (`["US01","C0001"]`), as the error log and the state
/// store keep it. Written directly: this runs once per synced row.
pub fn key_to_json(key: &[Value]) -> String {
    let mut out = String::with_capacity(2 + key.len() * 16);
    out.push('[');
    for (i, v) in key.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match v {
            Value::Text(s) => push_json_string(&mut out, s),
            Value::Int(n) => out.push_str(&n.to_string()),
            other => out.push_str(&other.to_json().to_string()),
        }
    }
    out.push(']');
    out
}

/// Escapes as serde_json does, so stored keys read back with any JSON parser.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
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
        assert_eq!(content_hash(&[Value::Int(5)]), content_hash(&[Value::Float(5.0)]));
        assert_eq!(content_hash(&[Value::Int(-5)]), content_hash(&[Value::Decimal("-5.000".into())]));
        assert_eq!(content_hash(&[Value::Float(0.25)]), content_hash(&[Value::Decimal("0.250".into())]));
        assert_eq!(content_hash(&[Value::Float(1e300)]), content_hash(&[Value::Decimal(format!("1{}", "0".repeat(300)))]));
        assert_ne!(content_hash(&[Value::Int(1)]), content_hash(&[Value::Text("1".into())]));
    }

    #[test]
    fn column_hashes_follow_canonical_equality_per_column() {
        let a = column_hashes(&[Value::Int(5), Value::Null, Value::Text("x".into())]);
        let b = column_hashes(&[Value::Decimal("5.00".into()), Value::Null, Value::Text("y".into())]);
        assert_eq!(a.len(), 24);
        assert_eq!(a[..16], b[..16], "5 = 5.00 and NULL = NULL");
        assert_ne!(a[16..], b[16..]);
        assert_ne!(column_hashes(&[Value::Null]), column_hashes(&[Value::Text(String::new())]));
        assert_ne!(column_hashes(&[Value::Int(1)]), column_hashes(&[Value::Text("1".into())]));
    }

    #[test]
    fn key_json_matches_serde_json_for_every_character_class() {
        let key = vec![Value::Text("a\"b\\c\n\r\t\u{8}\u{c}\u{1}é🚀".into()), Value::Int(-7), Value::Null, Value::Float(1.5)];
        let expected = serde_json::Value::Array(key.iter().map(Value::to_json).collect()).to_string();
        assert_eq!(key_to_json(&key), expected);
        assert_eq!(key_from_text(&key_to_json(&key)), key);
    }

    #[test]
    fn keys_parse_from_the_command_line() {
        assert_eq!(key_from_text("C0001"), vec![Value::Text("C0001".into())]);
        assert_eq!(key_from_text(r#"["US01",7]"#), vec![Value::Text("US01".into()), Value::Int(7)]);
    }
}
