//! Values between dualsync and an OData service, by the property's Edm type:
//! JSON in answers and request bodies, and literals in `$filter` and key
//! segments. Requests say `IEEE754Compatible=true`, so that Int64 and
//! Decimal travel as strings and keep every digit.

use super::metadata::Property;
use base64::Engine;
use dualsync_model::Value;
use serde_json::Value as Json;

/// A JSON value of a property, as dualsync keeps it.
pub fn from_json(p: &Property, json: &Json) -> Value {
    from_json_value(p, json.clone())
}

/// The same, taking the JSON value: its text moves into the value, uncopied.
pub fn from_json_value(p: &Property, json: Json) -> Value {
    let text = |json: Json| match json {
        Json::String(s) => s,
        other => other.to_string(),
    };
    if json.is_null() {
        return Value::Null;
    }
    match p.edm.as_str() {
        "Edm.Boolean" => match json {
            Json::Bool(b) => Value::Bool(b),
            other => Value::Text(text(other)),
        },
        "Edm.Int16" | "Edm.Int32" | "Edm.Int64" | "Edm.Byte" | "Edm.SByte" => {
            match json.as_i64().or_else(|| json.as_str().and_then(|s| s.parse().ok())) {
                Some(i) => Value::Int(i),
                None => Value::Decimal(text(json)),
            }
        }
        // The number's own digits (serde_json keeps them: `arbitrary_precision`).
        "Edm.Decimal" => Value::Decimal(text(json)),
        "Edm.Double" | "Edm.Single" => match json {
            Json::Number(n) => Value::Float(n.to_string().parse().unwrap_or(f64::NAN)),
            Json::String(s) => Value::Float(match s.as_str() {
                "INF" => f64::INFINITY,
                "-INF" => f64::NEG_INFINITY,
                other => other.parse().unwrap_or(f64::NAN),
            }),
            other => Value::Text(text(other)),
        },
        "Edm.Date" => Value::Date(text(json)),
        "Edm.TimeOfDay" => Value::Time(text(json)),
        "Edm.DateTimeOffset" => Value::Timestamp(text(json)),
        "Edm.Binary" => match json.as_str().and_then(decode_base64) {
            Some(bytes) => Value::Bytes(bytes),
            None => Value::Text(text(json)),
        },
        _ => Value::Text(text(json)),
    }
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let e = &base64::engine::general_purpose::STANDARD;
    e.decode(s).ok().or_else(|| base64::engine::general_purpose::URL_SAFE.decode(s).ok())
}

/// A value as the JSON a request body carries for the property.
pub fn to_json(p: &Property, v: &Value) -> Json {
    match (p.edm.as_str(), v) {
        (_, Value::Null) => Json::Null,
        ("Edm.String" | "Edm.Guid", v) => Json::String(v.display().into_owned()),
        ("Edm.Boolean", Value::Bool(b)) => Json::Bool(*b),
        ("Edm.Boolean", Value::Int(i)) => Json::Bool(*i != 0),
        ("Edm.Int64" | "Edm.Decimal", v) => Json::String(v.display().into_owned()),
        ("Edm.Int16" | "Edm.Int32" | "Edm.Byte" | "Edm.SByte", Value::Int(i)) => Json::from(*i),
        ("Edm.Double" | "Edm.Single", Value::Float(f)) if !f.is_finite() => Json::String(
            if f.is_nan() {
                "NaN"
            } else if *f > 0.0 {
                "INF"
            } else {
                "-INF"
            }
            .into(),
        ),
        ("Edm.Double" | "Edm.Single", Value::Float(f)) => serde_json::Number::from_f64(*f).map(Json::Number).unwrap_or(Json::Null),
        ("Edm.DateTimeOffset", Value::Timestamp(t) | Value::Text(t)) => Json::String(offset_timestamp(t)),
        ("Edm.Binary", Value::Bytes(b)) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
        (_, Value::Int(i)) => Json::from(*i),
        (_, Value::Bool(b)) => Json::Bool(*b),
        (_, Value::Float(f)) => serde_json::Number::from_f64(*f).map(Json::Number).unwrap_or(Json::Null),
        (_, v) => {
            // A number's digits as a JSON number (exact: `arbitrary_precision`), anything else as text.
            let text = v.display().into_owned();
            match (p.edm.starts_with("Edm.Int") || p.edm == "Edm.Double" || p.edm == "Edm.Single", text.parse::<serde_json::Number>()) {
                (true, Ok(n)) => Json::Number(n),
                _ => Json::String(text),
            }
        }
    }
}

/// An Edm.DateTimeOffset needs an offset: a database's naive timestamp is UTC
/// (as dualsync reads and writes them everywhere), `2024-01-02 03:04:05` →
/// `2024-01-02T03:04:05Z`.
pub fn offset_timestamp(t: &str) -> String {
    let t = t.trim().replacen(' ', "T", 1);
    let time = t.split_once('T').map(|(_, time)| time).unwrap_or("");
    if time.ends_with('Z') || time.contains('+') || time.contains('-') {
        t
    } else {
        format!("{t}Z")
    }
}

/// A value as a literal in `$filter` or a key segment (before percent-encoding).
pub fn literal(p: &Property, v: &Value) -> String {
    match (p.edm.as_str(), v) {
        (_, Value::Null) => "null".into(),
        ("Edm.String", v) => format!("'{}'", v.display().replace('\'', "''")),
        ("Edm.Boolean", Value::Bool(b)) => b.to_string(),
        ("Edm.Boolean", Value::Int(i)) => (*i != 0).to_string(),
        ("Edm.DateTimeOffset", v) => offset_timestamp(&v.display()),
        ("Edm.Binary", Value::Bytes(b)) => format!("binary'{}'", base64::engine::general_purpose::URL_SAFE.encode(b)),
        ("Edm.Double" | "Edm.Single", Value::Float(f)) if !f.is_finite() => if f.is_nan() {
            "NaN"
        } else if *f > 0.0 {
            "INF"
        } else {
            "-INF"
        }
        .into(),
        // Numbers, dates, times and GUIDs are written bare in OData 4.
        (_, v) => v.display().into_owned(),
    }
}

/// Text length as the service counts it for `MaxLength`: UTF-16 code units
/// (a JavaScript or .NET string's length), so an emoji counts 2.
pub fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// `Thu, 04 Dec 2026 03:04:05 GMT` (an HTTP date) in microseconds since 1970.
pub fn http_date_micros(date: &str) -> Option<i64> {
    let parts: Vec<&str> = date.split_whitespace().collect();
    let [_, day, month, year, time, _] = parts.as_slice() else { return None };
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = MONTHS.iter().position(|m| m == month)? + 1;
    dualsync_model::value::epoch_micros(&format!("{year}-{month:02}-{:02}T{time}Z", day.parse::<u32>().ok()?)).map(|(m, _)| m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prop(edm: &str) -> Property {
        Property { name: "c".into(), edm: edm.into(), nullable: true, max_length: None, precision: None, scale: None, computed: false }
    }

    #[test]
    fn decimals_and_int64_keep_every_digit_both_ways() {
        let d = prop("Edm.Decimal");
        let json: Json = serde_json::from_str("12345678901234567890.123456789012345678").unwrap();
        assert_eq!(from_json(&d, &json), Value::Decimal("12345678901234567890.123456789012345678".into()));
        assert_eq!(from_json(&d, &Json::String("2.50".into())), Value::Decimal("2.50".into()));
        assert_eq!(to_json(&d, &Value::Decimal("99999999999999999999.01".into())), Json::String("99999999999999999999.01".into()));
        let i = prop("Edm.Int64");
        assert_eq!(from_json(&i, &Json::String("9007199254740993".into())), Value::Int(9007199254740993));
    }

    #[test]
    fn literals_escape_quotes_and_timestamps_get_an_offset() {
        assert_eq!(literal(&prop("Edm.String"), &Value::Text("O'Brien".into())), "'O''Brien'");
        assert_eq!(literal(&prop("Edm.DateTimeOffset"), &Value::Timestamp("2024-01-02 03:04:05".into())), "2024-01-02T03:04:05Z");
        assert_eq!(offset_timestamp("2024-01-02T03:04:05.123+02:00"), "2024-01-02T03:04:05.123+02:00");
        assert_eq!(literal(&prop("Edm.Int32"), &Value::Int(-5)), "-5");
    }

    #[test]
    fn lengths_count_utf16_units_and_http_dates_read() {
        assert_eq!(utf16_len(&"😀".repeat(51)), 102);
        assert_eq!(utf16_len("é"), 1);
        assert_eq!(
            http_date_micros("Fri, 04 Dec 2026 03:04:05 GMT"),
            dualsync_model::value::epoch_micros("2026-12-04T03:04:05Z").map(|m| m.0)
        );
    }
}
