//! Values between MySQL and [`Value`].

use dualsync_model::Value;
use mysql::Value as My;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reader {
    Bool,
    Integer,
    Decimal,
    Real,
    Text,
    Bytes,
    Date,
    Time,
    Timestamp,
}

impl Reader {
    pub fn read(self, v: My) -> Value {
        match (self, v) {
            (_, My::NULL) => Value::Null,
            (Reader::Bool, My::Int(i)) => Value::Bool(i != 0),
            (_, My::Int(i)) => Value::Int(i),
            (_, My::UInt(u)) => i64::try_from(u).map(Value::Int).unwrap_or_else(|_| Value::Decimal(u.to_string())),
            (_, My::Float(f)) => Value::Float(f as f64),
            (_, My::Double(f)) => Value::Float(f),
            (Reader::Date, My::Date(y, m, d, ..)) => Value::Date(format!("{y:04}-{m:02}-{d:02}")),
            (_, My::Date(y, mo, d, h, mi, s, us)) => {
                let fraction = if us > 0 { format!(".{us:06}").trim_end_matches('0').to_string() } else { String::new() };
                Value::Timestamp(format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{fraction}"))
            }
            (_, My::Time(negative, days, h, m, s, us)) => {
                let hours = days * 24 + h as u32;
                let fraction = if us > 0 { format!(".{us:06}").trim_end_matches('0').to_string() } else { String::new() };
                Value::Time(format!("{}{hours:02}:{m:02}:{s:02}{fraction}", if negative { "-" } else { "" }))
            }
            (Reader::Bytes, My::Bytes(b)) => Value::Bytes(b),
            (reader, My::Bytes(b)) => match String::from_utf8(b) {
                Ok(s) => match reader {
                    Reader::Decimal => Value::Decimal(s),
                    Reader::Date => Value::Date(s),
                    Reader::Time => Value::Time(s),
                    Reader::Timestamp => Value::Timestamp(s.replacen(' ', "T", 1)),
                    _ => Value::Text(s),
                },
                Err(e) => Value::Bytes(e.into_bytes()),
            },
        }
    }
}

/// A value as a statement parameter. Timestamps lose a `Z`/`+00:00` suffix
/// (sessions run in UTC) and take a space, as every MySQL version accepts.
pub fn param(v: &Value) -> My {
    match v {
        Value::Null => My::NULL,
        Value::Bool(b) => My::Int(*b as i64),
        Value::Int(i) => My::Int(*i),
        Value::Float(f) => My::Double(*f),
        Value::Timestamp(s) => My::Bytes(mysql_datetime(s).into_bytes()),
        Value::Decimal(s) | Value::Text(s) | Value::Date(s) | Value::Time(s) => My::Bytes(s.clone().into_bytes()),
        Value::Bytes(b) => My::Bytes(b.clone()),
    }
}

fn mysql_datetime(s: &str) -> String {
    let s = s.strip_suffix('Z').or_else(|| s.strip_suffix("+00:00")).or_else(|| s.strip_suffix("+00")).unwrap_or(s);
    s.replacen('T', " ", 1)
}
