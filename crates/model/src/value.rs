//! One cell of a row, keeping every distinction the databases make:
//! NULL is not '', 1 is not '1', and text is kept byte for byte.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

/// A single value read from or written to an app.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// An exact decimal kept as its digits (NUMERIC(65,30) exceeds every binary type).
    Decimal(String),
    Text(String),
    Bytes(Vec<u8>),
    /// ISO 8601 date `YYYY-MM-DD`.
    Date(String),
    /// ISO 8601 time `HH:MM:SS[.fff]`.
    Time(String),
    /// ISO 8601 timestamp, with offset where the database keeps one.
    Timestamp(String),
}

/// The canonical form used for comparison and hashing: numbers compare by
/// value whatever their storage type, text-like values by their exact bytes.
#[derive(Debug, PartialEq, Eq, Hash)]
pub enum Canonical<'a> {
    Null,
    Number(Cow<'a, str>),
    Text(&'a str),
    /// A time or timestamp in one spelling (see [`canonical_temporal`]).
    Temporal(Cow<'a, str>),
    Bytes(&'a [u8]),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn canonical(&self) -> Canonical<'_> {
        match self {
            Value::Null => Canonical::Null,
            Value::Bool(b) => Canonical::Number(Cow::Borrowed(if *b { "1" } else { "0" })),
            Value::Int(i) => Canonical::Number(Cow::Owned(i.to_string())),
            Value::Float(f) => Canonical::Number(Cow::Owned(canonical_float(*f))),
            Value::Decimal(d) => Canonical::Number(normalize_decimal(d)),
            Value::Text(s) | Value::Date(s) => Canonical::Text(s),
            Value::Time(s) | Value::Timestamp(s) => Canonical::Temporal(canonical_temporal(s)),
            Value::Bytes(b) => Canonical::Bytes(b),
        }
    }

    /// Equal for synchronization purposes: the same content, whatever the
    /// storage type (an INTEGER 5 and a REAL 5.0 are the same amount).
    pub fn same_as(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Text(a), Value::Text(b)) => a == b,
            _ => self.canonical() == other.canonical(),
        }
    }

    /// The order in which databases sort keys with a binary collation:
    /// NULL, then numbers by value, then text by bytes, then blobs by bytes.
    pub fn key_cmp(&self, other: &Value) -> Ordering {
        fn rank(v: &Value) -> u8 {
            match v {
                Value::Null => 0,
                Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::Decimal(_) => 1,
                Value::Text(_) | Value::Date(_) | Value::Time(_) | Value::Timestamp(_) => 2,
                Value::Bytes(_) => 3,
            }
        }
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Text(a), Value::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            _ => match rank(self).cmp(&rank(other)) {
                Ordering::Equal => match (self.canonical(), other.canonical()) {
                    (Canonical::Text(a), Canonical::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
                    (Canonical::Temporal(a), Canonical::Temporal(b)) => a.as_bytes().cmp(b.as_bytes()),
                    (Canonical::Text(a), Canonical::Temporal(b)) => a.as_bytes().cmp(b.as_bytes()),
                    (Canonical::Temporal(a), Canonical::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
                    (Canonical::Bytes(a), Canonical::Bytes(b)) => a.cmp(b),
                    (Canonical::Number(a), Canonical::Number(b)) => {
                        let (x, y) = (a.parse::<f64>(), b.parse::<f64>());
                        match (x, y) {
                            (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
                            _ => a.cmp(&b),
                        }
                    }
                    _ => Ordering::Equal,
                },
                other => other,
            },
        }
    }

    /// The text a person reads in a report or the error log (`NULL` for NULL).
    pub fn display(&self) -> Cow<'_, str> {
        match self {
            Value::Null => Cow::Borrowed("NULL"),
            Value::Bytes(b) => Cow::Owned(format!("0x{}", hex(b))),
            Value::Text(s) | Value::Date(s) | Value::Time(s) | Value::Timestamp(s) => Cow::Borrowed(s),
            _ => match self.canonical() {
                Canonical::Number(n) => n,
                _ => Cow::Borrowed(""),
            },
        }
    }

    /// The value as JSON, as the error log and `--format json` show it.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            Value::Float(f) => {
                serde_json::Number::from_f64(*f).map(serde_json::Value::Number).unwrap_or_else(|| canonical_float(*f).into())
            }
            Value::Bytes(b) => serde_json::json!({ "hex": hex(b) }),
            other => other.display().into_owned().into(),
        }
    }

    /// Reads back what [`Value::to_json`] wrote (decimals and temporals come back as text).
    pub fn from_json(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::Text(s.clone()),
            serde_json::Value::Object(o) => match o.get("hex").and_then(|h| h.as_str()) {
                Some(h) => Value::Bytes(unhex(h)),
                None => Value::Text(json.to_string()),
            },
            serde_json::Value::Array(_) => Value::Text(json.to_string()),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

fn canonical_float(f: f64) -> String {
    if f.is_finite() {
        // Rust prints the shortest text that reads back as the same f64, without exponent.
        normalize_decimal(&format!("{f}")).into_owned()
    } else {
        format!("{f}")
    }
}

/// `+001.500` → `1.5`, `-0.0` → `0`; text that is not a plain decimal is kept as it is.
pub fn normalize_decimal(s: &str) -> Cow<'_, str> {
    let t = s.trim();
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let plain = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !plain(int) || !plain(frac) {
        return Cow::Borrowed(s);
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let mut out = String::with_capacity(t.len());
    if negative && !(int.is_empty() && frac.is_empty()) {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    if out == s {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(out)
    }
}

/// One spelling for times and timestamps, as the databases write them:
/// `2026-01-31 12:00:00.500+00` and `2026-01-31T12:00:00.5Z` are the same instant.
/// A 'T' between date and time, no trailing zeros in the fraction, `Z` for UTC.
pub fn canonical_temporal(s: &str) -> Cow<'_, str> {
    let t = s.trim();
    let (body, zone) = match t.rfind(['+', 'Z']).or_else(|| t.rfind('-').filter(|&i| i > 10)) {
        Some(i) if i >= 8 => (&t[..i], &t[i..]),
        _ => (t, ""),
    };
    let zone = match zone {
        "Z" | "+00" | "+00:00" | "+0000" | "-00:00" => "Z",
        z => z,
    };
    let mut out = body.replacen(' ', "T", 1);
    if let Some(dot) = out.rfind('.') {
        if out[dot + 1..].bytes().all(|b| b.is_ascii_digit()) {
            let keep = out[..].trim_end_matches('0').len();
            out.truncate(if keep == dot + 1 { dot } else { keep });
        }
    }
    out.push_str(zone);
    if out == s {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(out)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_is_not_empty_text() {
        assert!(!Value::Null.same_as(&Value::Text(String::new())));
        assert!(Value::Null.same_as(&Value::Null));
    }

    #[test]
    fn numbers_compare_by_amount_not_storage() {
        assert!(Value::Int(5).same_as(&Value::Float(5.0)));
        assert!(Value::Decimal("1000.50".into()).same_as(&Value::Float(1000.5)));
        assert!(Value::Decimal("-0.00".into()).same_as(&Value::Int(0)));
        assert!(!Value::Int(1).same_as(&Value::Text("1".into())));
        assert!(!Value::Decimal("0.1".into()).same_as(&Value::Decimal("0.10000000000000000001".into())));
    }

    #[test]
    fn timestamps_compare_by_instant_spelling() {
        let ts = |s: &str| Value::Timestamp(s.into());
        assert!(ts("2026-01-31 12:00:00").same_as(&ts("2026-01-31T12:00:00")));
        assert!(ts("2026-01-31T12:00:00.500Z").same_as(&ts("2026-01-31 12:00:00.5+00")));
        assert!(ts("2026-01-31T12:00:00.000").same_as(&ts("2026-01-31T12:00:00")));
        assert!(!ts("2026-01-31T12:00:00+02:00").same_as(&ts("2026-01-31T12:00:00Z")));
        assert!(Value::Time("12:00:00.10".into()).same_as(&Value::Time("12:00:00.1".into())));
        assert!(!ts("2026-01-31T12:00:01").same_as(&ts("2026-01-31T12:00:00")));
    }

    #[test]
    fn text_is_compared_byte_for_byte() {
        assert!(!Value::Text("a".into()).same_as(&Value::Text("a ".into())));
        assert!(!Value::Text("é".into()).same_as(&Value::Text("e\u{301}".into())));
    }

    #[test]
    fn key_order_matches_binary_collation() {
        let mut v = vec![
            Value::Text("b".into()),
            Value::Text("B".into()),
            Value::Int(10),
            Value::Null,
            Value::Float(2.5),
            Value::Text("ä".into()),
            Value::Bytes(vec![0]),
        ];
        v.sort_by(|a, b| a.key_cmp(b));
        assert_eq!(
            v,
            vec![
                Value::Null,
                Value::Float(2.5),
                Value::Int(10),
                Value::Text("B".into()),
                Value::Text("b".into()),
                Value::Text("ä".into()),
                Value::Bytes(vec![0]),
            ]
        );
    }

    #[test]
    fn json_round_trip_of_keys() {
        for v in [Value::Int(-3), Value::Text("A\"b,\n".into()), Value::Null, Value::Bytes(vec![1, 255])] {
            assert_eq!(Value::from_json(&v.to_json()), v);
        }
    }
}
