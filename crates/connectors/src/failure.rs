//! Naming the column a database's refusal is about, when it does not say.

/// Finds the column a message names: `table.column` (SQLite's NOT NULL and
/// UNIQUE), a whole word (a CHECK expression), or a part of a constraint name
/// (`account_name_check`).
pub fn guess_column(message: &str, table: &str, columns: &[String]) -> Option<String> {
    let detail = message.split_once("failed: ").map(|x| x.1).unwrap_or(message);
    if let Some(col) = detail.split(", ").next().and_then(|d| d.strip_prefix(&format!("{table}."))) {
        if columns.iter().any(|c| c == col) {
            return Some(col.to_string());
        }
    }
    let words = |c: &&String| contains_word(detail, c);
    if let Some(c) = columns.iter().filter(words).max_by_key(|c| c.len()) {
        return Some(c.clone());
    }
    let parts: Vec<&str> = detail.split(|c: char| !c.is_alphanumeric()).collect();
    columns.iter().filter(|c| parts.contains(&c.as_str())).max_by_key(|c| c.len()).cloned()
}

fn contains_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().last();
        let after = text[i + word.len()..].chars().next();
        let edge = |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        edge(before) && edge(after)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_are_refused_only_when_their_decimals_exceed_the_scale() {
        use dualsync_model::{TypeClass::Decimal, Value::Float};
        let two = Some((18, 2));
        for fits in [328_688.28, 0.1, -1.5, 1e300, 0.0, 99.99] {
            assert_eq!(silently_changed(&Float(fits), Decimal, two), None, "{fits}");
        }
        for rounds in [1.005, 1e-20, 0.123] {
            assert!(silently_changed(&Float(rounds), Decimal, two).is_some(), "{rounds}");
        }
    }

    #[test]
    fn finds_the_column_in_each_database_s_words() {
        let cols = vec!["name".to_string(), "msdyn_name".to_string(), "code".to_string()];
        assert_eq!(guess_column("NOT NULL constraint failed: account.name", "account", &cols).as_deref(), Some("name"));
        assert_eq!(guess_column("CHECK constraint failed: length(msdyn_name) <= 100", "t", &cols).as_deref(), Some("msdyn_name"));
        assert_eq!(
            guess_column("new row for relation \"account\" violates check constraint \"account_name_check\"", "account", &cols).as_deref(),
            Some("name")
        );
        assert_eq!(guess_column("Data too long for column 'code' at row 1", "t", &cols).as_deref(), Some("code"));
        assert_eq!(guess_column("something else", "t", &cols), None);
    }
}

/// Why `value` cannot go into a column of this class and numeric size
/// without the database changing it silently (rounding), if it cannot.
pub fn silently_changed(value: &dualsync_model::Value, class: dualsync_model::TypeClass, numeric: Option<(u32, u32)>) -> Option<String> {
    use dualsync_model::value::normalize_decimal;
    use dualsync_model::{TypeClass, Value};
    // Only whole-number and decimal columns round; most values skip all the work below.
    if !matches!(class, TypeClass::Integer | TypeClass::Decimal) {
        return None;
    }
    let digits = match value {
        Value::Int(_) | Value::Null | Value::Bool(_) => return None,
        Value::Float(f) if class == TypeClass::Decimal && fits_scale(*f, numeric) => return None,
        Value::Float(f) if f.is_finite() => f.to_string(),
        Value::Float(_) => return None,
        Value::Decimal(s) | Value::Text(s) => s.clone(),
        _ => return None,
    };
    let normalized = normalize_decimal(&digits);
    let Some(decimals) = normalized.split_once('.').map(|(_, f)| f.len() as u32) else { return None };
    if !normalized.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-') {
        return None; // not a number: the database says what is wrong with it
    }
    match (class, numeric) {
        (TypeClass::Integer, _) => Some(format!("value {normalized} has decimals but the column holds whole numbers: it would be rounded")),
        (TypeClass::Decimal, Some((precision, scale))) if decimals > scale => {
            Some(format!("value {normalized} has {decimals} decimals but the column is decimal({precision},{scale}): it would be rounded"))
        }
        _ => None,
    }
}

/// Whether a double is surely written into a `decimal(p, s)` column without
/// rounding, found without printing it: some decimal of at most `s` places
/// reads back as the same double, so its shortest spelling has no more places.
/// False only means "print it and look".
fn fits_scale(f: f64, numeric: Option<(u32, u32)>) -> bool {
    let Some((_, scale @ 0..=15)) = numeric else { return false };
    let unit = 10f64.powi(scale as i32);
    let n = (f * unit).round();
    n.abs() < (1u64 << 53) as f64 && n / unit == f
}
