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

/// A value as a statement parameter. Timestamps take a space, as every MySQL
/// version accepts, and no offset: one with an offset is written as its UTC
/// reading (sessions run in UTC, so a `TIMESTAMP` receives that instant and a
/// `DATETIME` its UTC wall clock, as MySQL 8.0.19+ would convert it; MariaDB
/// refuses offsets).
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
    match dualsync_model::value::utc_reading(s) {
        Some(utc) => utc.replacen('T', " ", 1),
        None => s.replacen('T', " ", 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_with_an_offset_are_written_as_their_utc_reading() {
        for (given, written) in [
            ("2024-01-01T10:00:00.123456+05:30", "2024-01-01 04:30:00.123456"),
            ("2024-12-31 18:59:59.5-05:00", "2024-12-31 23:59:59.5"),
            ("2024-01-01T04:30:00Z", "2024-01-01 04:30:00"),
            ("2024-01-01T04:30:00+00:00", "2024-01-01 04:30:00"),
            ("2024-01-01T04:30:00+00", "2024-01-01 04:30:00"),
            ("2024-01-01T10:00:00", "2024-01-01 10:00:00"),
            ("2024-01-01", "2024-01-01"),
        ] {
            assert_eq!(mysql_datetime(given), written, "{given}");
        }
    }
}
