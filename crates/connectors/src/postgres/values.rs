//! Values between PostgreSQL and [`Value`].

use dualsync_model::value::hex;
use dualsync_model::{TypeClass, Value};

/// How a column is read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ColumnReader {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Text,
    Bytea,
    /// Selected as ISO 8601 text (timestamps: `2026-01-31T12:00:00`).
    Iso,
    /// Selected as `::text`, kept as this class (exact numeric digits, dates, uuid, json).
    AsText(TypeClass),
}

impl ColumnReader {
    pub fn read(self, row: &postgres::Row, i: usize) -> Result<Value, postgres::Error> {
        fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
            v.map_or(Value::Null, f)
        }
        Ok(match self {
            ColumnReader::Bool => opt(row.try_get::<_, Option<bool>>(i)?, Value::Bool),
            ColumnReader::Int2 => opt(row.try_get::<_, Option<i16>>(i)?, |n| Value::Int(n as i64)),
            ColumnReader::Int4 => opt(row.try_get::<_, Option<i32>>(i)?, |n| Value::Int(n as i64)),
            ColumnReader::Int8 => opt(row.try_get::<_, Option<i64>>(i)?, Value::Int),
            ColumnReader::Float4 => opt(row.try_get::<_, Option<f32>>(i)?, |f| Value::Float(f as f64)),
            ColumnReader::Float8 => opt(row.try_get::<_, Option<f64>>(i)?, Value::Float),
            ColumnReader::Text => opt(row.try_get::<_, Option<String>>(i)?, Value::Text),
            ColumnReader::Bytea => opt(row.try_get::<_, Option<Vec<u8>>>(i)?, Value::Bytes),
            ColumnReader::Iso => opt(row.try_get::<_, Option<String>>(i)?, Value::Timestamp),
            ColumnReader::AsText(class) => opt(row.try_get::<_, Option<String>>(i)?, |s| match class {
                TypeClass::Decimal => Value::Decimal(s),
                TypeClass::Date => Value::Date(s),
                TypeClass::Time => Value::Time(s),
                TypeClass::Timestamp => Value::Timestamp(s),
                _ => Value::Text(s),
            }),
        })
    }
}

/// A value as PostgreSQL's text input accepts it (for parameters and COPY).
/// Values as a PostgreSQL array literal (`{"a","b\"c",NULL}`), each element as [`text`] gives it.
pub fn array_literal(values: &[&Value]) -> String {
    let mut out = String::from("{");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match text(v) {
            None => out.push_str("NULL"),
            Some(s) => {
                out.push('"');
                for ch in s.chars() {
                    if ch == '"' || ch == '\\' {
                        out.push('\\');
                    }
                    out.push(ch);
                }
                out.push('"');
            }
        }
    }
    out.push('}');
    out
}

pub fn text(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => if *b { "t" } else { "f" }.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) if f.is_nan() => "NaN".into(),
        Value::Float(f) if f.is_infinite() => if *f > 0.0 { "Infinity" } else { "-Infinity" }.into(),
        Value::Float(f) => f.to_string(),
        Value::Decimal(s) | Value::Text(s) | Value::Date(s) | Value::Time(s) | Value::Timestamp(s) => s.clone(),
        Value::Bytes(b) => format!("\\x{}", hex(b)),
    })
}
