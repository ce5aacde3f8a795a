//! Values between SQLite's storage classes and [`Value`], guided by the
//! column's declared type (SQLite stores a DATE as text, a BOOLEAN as an integer).

use dualsync_model::value::normalize_decimal;
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
    } else if has("DEC") || has("NUMERIC") || has("MONEY") {
        // Before the text names: `DECIMAL_TEXT(18,4)` has TEXT affinity (every digit kept) and holds decimals.
        TypeClass::Decimal
    } else if has("CHAR") || has("CLOB") || has("TEXT") || has("UUID") || has("JSON") {
        TypeClass::Text
    } else if has("BLOB") || has("BINARY") || has("BYTEA") {
        TypeClass::Blob
    } else if has("REAL") || has("FLOA") || has("DOUB") {
        TypeClass::Real
    } else {
        TypeClass::Any
    }
}

/// A column's affinity by SQLite's rules (<https://sqlite.org/datatype3.html>, 3.1):
/// what SQLite converts a value into before storing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Affinity {
    Integer,
    Text,
    Blob,
    Real,
    Numeric,
}

pub fn affinity(declared: &str) -> Affinity {
    let t = declared.to_ascii_uppercase();
    let has = |s: &str| t.contains(s);
    if has("INT") {
        Affinity::Integer
    } else if has("CHAR") || has("CLOB") || has("TEXT") {
        Affinity::Text
    } else if has("BLOB") || t.is_empty() {
        Affinity::Blob
    } else if has("REAL") || has("FLOA") || has("DOUB") {
        Affinity::Real
    } else {
        Affinity::Numeric
    }
}

/// Why SQLite would store `value` as a different amount in a column of this
/// affinity, if it would. A column of INTEGER, REAL or NUMERIC affinity turns
/// text that spells a number (a decimal is bound as its text) into a 64-bit
/// integer or float, and a REAL column turns integers into floats: digits
/// beyond what a float holds (15 to 17 significant ones) would be lost.
/// `declared` is the column's declared type, for the message.
pub fn changed_by_affinity(value: &Value, affinity: Affinity, declared: &str) -> Option<String> {
    let (given, stored) = match (value, affinity) {
        (_, Affinity::Text | Affinity::Blob) => return None,
        (Value::Int(i), Affinity::Real) => {
            // Up to 2^53 every integer is a float; beyond, a float is the number its shortest decimal
            // spells (as dualsync compares it): 2^60 is 1152921504606847000, not 1152921504606846976.
            if i.unsigned_abs() <= 1 << 53 {
                return None;
            }
            let stored = float_text(*i as f64);
            if stored == i.to_string() {
                return None;
            }
            (i.to_string(), stored)
        }
        (Value::Decimal(s) | Value::Text(s), _) => {
            let number = SqliteNumber::parse(s)?;
            if number.integer && affinity != Affinity::Real && number.digits.parse::<i64>().is_ok() {
                return None; // stored as that integer
            }
            let f: f64 = s.trim().parse().ok()?;
            let stored = float_text(f);
            if f.is_finite() && normalize_decimal(&stored) == number.digits {
                return None;
            }
            (number.digits, stored)
        }
        _ => return None,
    };
    let name = match affinity {
        Affinity::Integer => "INTEGER",
        Affinity::Real => "REAL",
        _ => "NUMERIC",
    };
    let fix = match value {
        Value::Int(_) => "declare the column INTEGER to keep every integer exactly".to_string(),
        // The declared size goes with the suggestion: NUMERIC(18,4) → DECIMAL_TEXT(18,4).
        _ => format!(
            "declare the column with TEXT affinity to keep every digit, e.g. DECIMAL_TEXT{}, which dualsync reads as a decimal",
            declared.find('(').map_or("", |i| &declared[i..])
        ),
    };
    Some(format!(
        "value {given} would be stored as {stored}: the column is declared {declared}, which SQLite gives {name} affinity, so it \
         stores this value as a 64-bit float (15 to 17 significant digits); {fix}"
    ))
}

/// A float as the shortest decimal that reads back as it (never an exponent).
fn float_text(f: f64) -> String {
    if f.is_finite() {
        format!("{f}")
    } else if f > 0.0 {
        "Inf".into()
    } else {
        "-Inf".into()
    }
}

/// Text SQLite takes for a number under numeric affinity: optional spaces and
/// sign, digits with an optional point, an optional exponent.
struct SqliteNumber {
    /// Without a point or an exponent.
    integer: bool,
    /// The amount as normalized decimal digits (`-12.5`, `0`, `100`).
    digits: String,
}

impl SqliteNumber {
    fn parse(s: &str) -> Option<SqliteNumber> {
        let t = s.trim_matches(|c: char| c.is_ascii_whitespace());
        let (negative, body) = match t.as_bytes().first()? {
            b'-' => (true, &t[1..]),
            b'+' => (false, &t[1..]),
            _ => (false, t),
        };
        let (mantissa, exponent) = match body.find(['e', 'E']) {
            Some(i) => (&body[..i], Some(&body[i + 1..])),
            None => (body, None),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
            return None;
        }
        let integer = exponent.is_none() && !mantissa.contains('.');
        let exponent: i64 = match exponent {
            None => 0,
            Some(e) => {
                let d = e.strip_prefix(['+', '-']).unwrap_or(e);
                if d.is_empty() || !all_digits(d) {
                    return None;
                }
                // Beyond ±1000 a float is infinite or zero either way.
                e.parse().unwrap_or(if e.starts_with('-') { -1000 } else { 1000 }).clamp(-1000, 1000)
            }
        };
        // Move the point by the exponent: digits `int frac`, the point after `int.len() + exponent` of them.
        let all = format!("{int}{frac}");
        let point = int.len() as i64 + exponent;
        let (whole, fraction) = if point <= 0 {
            (String::new(), format!("{}{all}", "0".repeat((-point) as usize)))
        } else if point as usize >= all.len() {
            (format!("{all}{}", "0".repeat(point as usize - all.len())), String::new())
        } else {
            (all[..point as usize].to_string(), all[point as usize..].to_string())
        };
        let spelled = format!("{}{whole}.{fraction}", if negative { "-" } else { "" });
        Some(SqliteNumber { integer, digits: normalize_decimal(&spelled).into_owned() })
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

/// A [`Value`] bound to be stored in a column of this affinity, so that SQLite
/// keeps the amount dualsync compares (a float is the number its shortest
/// decimal spells, see `dualsync_model::value`):
///
/// - a float into TEXT affinity goes as that decimal (SQLite would write
///   `1.0e-300`, which reads back as text, not as the number);
/// - a whole float beyond 2⁵³ into INTEGER or NUMERIC affinity goes as the
///   integer its shortest decimal spells (SQLite would store the float's exact
///   integer: 2⁶⁰ as 1152921504606846976, where the float is 1152921504606847000).
///
/// Everything else binds as [`Bind`] does.
pub struct Stored<'a>(pub &'a Value, pub Affinity);

impl ToSql for Stored<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        use rusqlite::types::Value as Owned;
        const EXACT: f64 = (1u64 << 53) as f64;
        match (self.0, self.1) {
            (Value::Float(f), Affinity::Text) if f.is_finite() => Ok(ToSqlOutput::Owned(Owned::Text(format!("{f}")))),
            (Value::Float(f), Affinity::Integer | Affinity::Numeric) if f.abs() > EXACT && f.fract() == 0.0 => {
                match format!("{f}").parse::<i64>() {
                    Ok(i) => Ok(ToSqlOutput::Owned(Owned::Integer(i))),
                    Err(_) => Ok(bound(self.0)),
                }
            }
            _ => Ok(bound(self.0)),
        }
    }
}

/// A [`Value`] bound as a statement parameter.
pub struct Bind<'a>(pub &'a Value);

impl ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(bound(self.0))
    }
}

fn bound(v: &Value) -> ToSqlOutput<'_> {
    match v {
        Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
        Value::Bool(b) => ToSqlOutput::Borrowed(ValueRef::Integer(*b as i64)),
        Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
        Value::Float(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
        Value::Decimal(s) | Value::Text(s) | Value::Date(s) | Value::Time(s) | Value::Timestamp(s) => {
            ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))
        }
        Value::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_follows_sqlite_s_rules() {
        for (declared, expected) in [
            ("INTEGER", Affinity::Integer),
            ("BIGINT", Affinity::Integer),
            ("POINT", Affinity::Integer), // "INT" wins, as in SQLite
            ("VARCHAR(20)", Affinity::Text),
            ("DECIMAL_TEXT(18,4)", Affinity::Text),
            ("BLOB", Affinity::Blob),
            ("", Affinity::Blob),
            ("DOUBLE PRECISION", Affinity::Real),
            ("NUMERIC(18,4)", Affinity::Numeric),
            ("DECIMAL", Affinity::Numeric),
            ("BOOLEAN", Affinity::Numeric),
            ("TIMESTAMP", Affinity::Numeric),
        ] {
            assert_eq!(affinity(declared), expected, "{declared}");
        }
        assert_eq!(type_class("DECIMAL_TEXT(18,4)"), TypeClass::Decimal);
        assert_eq!(type_class("VARCHAR(20)"), TypeClass::Text);
    }

    /// Against SQLite itself: a value is refused exactly when what SQLite
    /// stores reads back as another amount.
    #[test]
    fn refused_exactly_when_sqlite_would_store_another_amount() {
        let declared = ["NUMERIC(18,4)", "DECIMAL", "MONEY", "INTEGER", "REAL", "DOUBLE", "DECIMAL_TEXT(18,4)"];
        let d = |s: &str| Value::Decimal(s.into());
        let values = [
            d("12345678901234.5678"),
            d("1.00000000000000000001"),
            d("-0.0001"),
            d("0.0000"),
            d("-0"),
            d("99999999999999999999"),
            d("9007199254740993"),
            d("-9223372036854775808"),
            d("9223372036854775808"),
            d("0.30000000000000004"),
            d("0.1"),
            d("5.0"),
            d("123456789012.25"),
            d("12345678901234.5680"),
            d(&format!("1{}", "0".repeat(300))),
            d(&format!("1{}", "0".repeat(400))),
            d("0.000000000000000000000000000001"),
            Value::Int(9007199254740993),
            Value::Int(9007199254740992),
            Value::Int(i64::MAX),
            Value::Int(i64::MIN),
            Value::Int(-5),
            Value::Float(0.1),
            Value::Float(12345678901234.568),
            Value::Float(0.30000000000000004),
            Value::Float(1152921504606846976.0),
            Value::Float(-1e-300),
            Value::Float(1e300),
            Value::Float(9007199254740994.0),
        ];
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let columns: Vec<String> = (0..declared.len()).map(|i| format!("c{i} {}", declared[i])).collect();
        conn.execute_batch(&format!("CREATE TABLE t ({})", columns.join(", "))).unwrap();
        let placeholders = vec!["?"; declared.len()].join(", ");
        for v in &values {
            conn.execute("DELETE FROM t", []).unwrap();
            let params = declared.iter().map(|decl| Stored(v, affinity(decl)));
            conn.execute(&format!("INSERT INTO t VALUES ({placeholders})"), rusqlite::params_from_iter(params)).unwrap();
            for (i, decl) in declared.iter().enumerate() {
                let back = conn.query_row(&format!("SELECT c{i} FROM t"), [], |r| Ok(read(r.get_ref(0)?, type_class(decl)))).unwrap();
                let refused = changed_by_affinity(v, affinity(decl), decl);
                assert_eq!(refused.is_none(), back.same_as(v), "{v:?} into {decl}: read back {back:?}, refusal {refused:?}");
            }
        }
        // Text: only an amount SQLite would change is refused; text that is no number is kept as it is.
        let text = |s: &str| changed_by_affinity(&Value::Text(s.into()), Affinity::Numeric, "NUMERIC");
        assert!(text("1.00000000000000000001").is_some());
        assert!(text(" 1e400 ").is_some());
        assert!(text("007").is_none() && text("1.5").is_none() && text("abc").is_none() && text("1e5x").is_none());
    }

    #[test]
    fn a_refusal_says_what_where_and_what_to_do() {
        let why = changed_by_affinity(&Value::Decimal("12345678901234.5678".into()), Affinity::Numeric, "NUMERIC(18,4)").unwrap();
        assert!(why.starts_with("value 12345678901234.5678 would be stored as 12345678901234.568"), "{why}");
        assert!(why.contains("declared NUMERIC(18,4), which SQLite gives NUMERIC affinity"), "{why}");
        assert!(why.contains("declare the column with TEXT affinity to keep every digit, e.g. DECIMAL_TEXT(18,4)"), "{why}");
        let why = changed_by_affinity(&Value::Int(9007199254740993), Affinity::Real, "REAL").unwrap();
        assert!(why.starts_with("value 9007199254740993 would be stored as 9007199254740992"), "{why}");
        assert!(why.ends_with("declare the column INTEGER to keep every integer exactly"), "{why}");
    }
}
