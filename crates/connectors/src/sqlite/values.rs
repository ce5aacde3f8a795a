//! Values between SQLite's storage classes and [`Value`], guided by the
//! column's declared type (SQLite stores a DATE as text, a BOOLEAN as an integer).

use dualsync_model::{TypeClass, Value};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::ToSql;

/// The class of a declared type, following SQLite's affinity rules where they apply.
pub fn type_class(declared: &str) -> TypeClass {
    let t = declared.to_ascii_uppercase();
    let has = |s: &str| t.contains(s);
    if t.is_empty() {
        TypeClass::Any
    } else if has("BOOL") {
        TypeClass::Bool
    } else if has("INT") {
        TypeClass::Integer
    } else if has("TIMESTAMP") || has("DATETIME") {
        TypeClass::Timestamp
    } else if has("DATE") {
        TypeClass::Date
    } else if has("TIME") {
        TypeClass::Time
    } else if has("CHAR") || has("CLOB") || has("TEXT") || has("UUID") || has("JSON") {
        TypeClass::Text
    } else if has("BLOB") || has("BINARY") || has("BYTEA") {
        TypeClass::Blob
    } else if has("REAL") || has("FLOA") || has("DOUB") {
        TypeClass::Real
    } else if has("DEC") || has("NUMERIC") || has("MONEY") {
        TypeClass::Decimal
    } else {
        TypeClass::Any
    }
}

pub fn read(v: ValueRef<'_>, class: TypeClass) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) if class == TypeClass::Bool => Value::Bool(i != 0),
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Float(f),
        ValueRef::Text(bytes) => match String::from_utf8(bytes.to_vec()) {
            Ok(s) => match class {
                TypeClass::Date => Value::Date(s),
                TypeClass::Time => Value::Time(s),
                TypeClass::Timestamp => Value::Timestamp(s),
                TypeClass::Decimal if is_plain_decimal(&s) => Value::Decimal(s),
                _ => Value::Text(s),
            },
            // SQLite lets TEXT hold bytes that are not UTF-8: keep them exactly.
            Err(e) => Value::Bytes(e.into_bytes()),
        },
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
    }
}

fn is_plain_decimal(s: &str) -> bool {
    let d = s.strip_prefix('-').unwrap_or(s);
    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit() || b == b'.') && d.bytes().filter(|b| *b == b'.').count() <= 1
}

/// A [`Value`] bound as a statement parameter.
pub struct Bind<'a>(pub &'a Value);

impl ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Bool(b) => ToSqlOutput::Borrowed(ValueRef::Integer(*b as i64)),
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Float(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
            Value::Decimal(s) | Value::Text(s) | Value::Date(s) | Value::Time(s) | Value::Timestamp(s) => {
                ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))
            }
            Value::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}
