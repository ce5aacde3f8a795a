//! SQL text shared by the SQL connectors: quoted identifiers and filters with
//! placeholders. Values are always bound, never written into the text.

use dualsync_model::filter::Filter;
use dualsync_model::Value;

/// `name` as a double-quoted identifier (`a"b` → `"a""b"`).
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub fn quote_list(names: &[String]) -> String {
    names.iter().map(|n| quote(n)).collect::<Vec<_>>().join(", ")
}

/// Appends `filter` as SQL with `?` placeholders; its values go to `params`.
pub fn render_filter(filter: &Filter, sql: &mut String, params: &mut Vec<Value>) {
    match filter {
        Filter::And(a, b) | Filter::Or(a, b) => {
            sql.push('(');
            render_filter(a, sql, params);
            sql.push_str(if matches!(filter, Filter::And(..)) { " AND " } else { " OR " });
            render_filter(b, sql, params);
            sql.push(')');
        }
        Filter::Not(a) => {
            sql.push_str("NOT (");
            render_filter(a, sql, params);
            sql.push(')');
        }
        Filter::Compare { column, op, value } => {
            sql.push_str(&format!("{} {} ?", quote(column), op.sql()));
            params.push(value.clone());
        }
        Filter::IsNull { column, negated } => {
            sql.push_str(&format!("{} IS {}NULL", quote(column), if *negated { "NOT " } else { "" }));
        }
        Filter::In { column, values, negated } => {
            let marks = vec!["?"; values.len()].join(", ");
            sql.push_str(&format!("{} {}IN ({marks})", quote(column), if *negated { "NOT " } else { "" }));
            params.extend(values.iter().cloned());
        }
    }
}

/// ` WHERE …` for a filter and column equalities, or nothing when there is no condition.
pub fn render_where(filter: Option<&Filter>, equals: &[(String, Value)], params: &mut Vec<Value>) -> String {
    let mut parts = Vec::new();
    if let Some(f) = filter {
        let mut s = String::new();
        render_filter(f, &mut s, params);
        parts.push(s);
    }
    for (column, value) in equals {
        if value.is_null() {
            parts.push(format!("{} IS NULL", quote(column)));
        } else {
            parts.push(format!("{} = ?", quote(column)));
            params.push(value.clone());
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", parts.join(" AND "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_and_values_bound() {
        let f = Filter::parse("\"x\"\"y\" = 'a''b' AND z IN (1, 2)").unwrap();
        let mut params = Vec::new();
        let sql = render_where(Some(&f), &[("co".into(), Value::Null)], &mut params);
        assert_eq!(sql, r#" WHERE ("x""y" = ? AND "z" IN (?, ?)) AND "co" IS NULL"#);
        assert_eq!(params, vec![Value::Text("a'b".into()), Value::Int(1), Value::Int(2)]);
    }
}
