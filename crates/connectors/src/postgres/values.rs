//! Values between PostgreSQL and [`Value`].

use dualsync_model::value::hex;
use dualsync_model::{TypeClass, Value};
use postgres::types::{FromSql, Type};

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
    /// Read in binary, spelled as PostgreSQL's own text would (every digit, the scale kept).
    Numeric,
    /// Read in binary, spelled as PostgreSQL's JSON spells it (`2026-01-31T12:00:00`,
    /// `+00:00` appended for a `timestamptz`).
    Timestamp {
        instant: bool,
    },
    /// Selected as `::text`, kept as this class (dates, times, uuid, json).
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
            ColumnReader::Numeric => opt(row.try_get::<_, Option<WireNumeric>>(i)?, |n| Value::Decimal(n.0)),
            ColumnReader::Timestamp { instant } => {
                opt(row.try_get::<_, Option<WireTimestamp>>(i)?, |t| Value::Timestamp(t.spelled(instant)))
            }
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

/// PostgreSQL's epoch, 2000-01-01, in microseconds after 1970-01-01.
const PG_EPOCH_MICROS: i64 = 10_957 * 86_400 * 1_000_000;

/// A `timestamp` or `timestamptz` as sent in binary: microseconds since 2000-01-01.
struct WireTimestamp(i64);

impl WireTimestamp {
    fn spelled(&self, instant: bool) -> String {
        match self.0 {
            i64::MAX => "infinity".into(),
            i64::MIN => "-infinity".into(),
            micros => dualsync_model::value::iso_from_epoch_micros(micros + PG_EPOCH_MICROS, instant),
        }
    }
}

impl<'a> FromSql<'a> for WireTimestamp {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(WireTimestamp(i64::from_be_bytes(raw.try_into()?)))
    }
    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::TIMESTAMP | Type::TIMESTAMPTZ)
    }
}

/// A `numeric` as sent in binary, spelled as `numeric_out` spells it.
struct WireNumeric(String);

impl<'a> FromSql<'a> for WireNumeric {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        numeric_text(raw).map(WireNumeric).ok_or_else(|| "malformed binary numeric".into())
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

/// Base-10000 digits, the weight of the first, the sign and the display scale
/// in decimal text: the integer part without leading zeros, then exactly
/// `dscale` decimals.
fn numeric_text(raw: &[u8]) -> Option<String> {
    let word = |i: usize| Some(u16::from_be_bytes([*raw.get(i)?, *raw.get(i + 1)?]));
    let (ndigits, weight, sign, dscale) = (word(0)? as usize, word(2)? as i16 as i64, word(4)?, word(6)? as usize);
    let digits = (0..ndigits).map(|k| word(8 + 2 * k).filter(|d| *d < 10_000)).collect::<Option<Vec<u16>>>()?;
    match sign {
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        0x0000 | 0x4000 => {}
        _ => return None,
    }
    // The group worth 10000^e sits at index weight - e.
    let group = |e: i64| usize::try_from(weight - e).ok().and_then(|k| digits.get(k)).copied().unwrap_or(0);
    let mut out = String::with_capacity(8 + 4 * ndigits + dscale);
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for e in (0..=weight).rev() {
            push_group(&mut out, group(e), e == weight);
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut e = -1;
        let end = out.len() + dscale;
        while out.len() < end {
            push_group(&mut out, group(e), false);
            e -= 1;
        }
        out.truncate(end);
    }
    Some(out)
}

/// A base-10000 digit as four decimal digits, or without leading zeros when it leads.
fn push_group(out: &mut String, g: u16, leading: bool) {
    let digits = [g / 1000, g / 100 % 10, g / 10 % 10, g % 10];
    let skip = if leading { digits.iter().take(3).take_while(|d| **d == 0).count() } else { 0 };
    out.extend(digits[skip..].iter().map(|d| char::from(b'0' + *d as u8)));
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

#[cfg(test)]
mod tests {
    use super::numeric_text;

    fn wire(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        [ndigits, weight as u16, sign, dscale].iter().chain(digits).flat_map(|w| w.to_be_bytes()).collect()
    }

    #[test]
    fn binary_numerics_are_spelled_as_postgresql_spells_them() {
        assert_eq!(numeric_text(&wire(0, 0, 0, 0, &[])).as_deref(), Some("0"));
        assert_eq!(numeric_text(&wire(0, 0, 0, 2, &[])).as_deref(), Some("0.00"));
        assert_eq!(numeric_text(&wire(1, -1, 0, 4, &[1])).as_deref(), Some("0.0001"));
        assert_eq!(numeric_text(&wire(3, 1, 0x4000, 4, &[12, 3456, 7890])).as_deref(), Some("-123456.7890"));
        assert_eq!(numeric_text(&wire(1, 7, 0, 0, &[100])).as_deref(), Some("1000000000000000000000000000000"));
        assert_eq!(numeric_text(&wire(2, -5, 0, 21, &[1, 5000])).as_deref(), Some("0.000000000000000000015"));
        assert_eq!(numeric_text(&wire(0, 0, 0xC000, 0, &[])).as_deref(), Some("NaN"));
        assert_eq!(numeric_text(&wire(0, 0, 0xF000, 0, &[])).as_deref(), Some("-Infinity"));
        assert_eq!(numeric_text(&wire(2, 0, 0, 0, &[1])), None, "a digit short");
    }
}
