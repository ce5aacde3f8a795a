//! SQL text shared by the SQL connectors. A [`Dialect`] says how one database
//! quotes names, writes parameters and sorts in byte order; the statements
//! themselves are built here once. Values are always bound parameters, never
//! written into the text.

use crate::Selection;
use dualsync_model::filter::Filter;
use dualsync_model::Value;

pub trait Dialect {
    /// `name` as an identifier of this database.
    fn quote(&self, name: &str) -> String;

    /// The placeholder of parameter number `index` (1-based), which is
    /// compared with or assigned to `column`.
    fn placeholder(&self, index: usize, column: &str) -> String;

    /// `column` in an ORDER BY that sorts like `Value::key_cmp` (byte order for text).
    fn order_by(&self, column: &str) -> String;

    /// Where the database takes a list of values as one array parameter per
    /// key column: a subquery of the arrays' elements (`SELECT * FROM
    /// unnest(…)`) for `(columns) IN (…)`, its placeholders numbered from
    /// `index`, and the arrays to bind (one per column, `values[column][key]`).
    /// A parameter per column instead of one per key value keeps key lookups
    /// cheap to plan. None: a parameter per value.
    fn key_arrays(&self, _index: usize, _columns: &[String], _values: &[Vec<&Value>]) -> Option<(String, Vec<Value>)> {
        None
    }
}

/// A built statement: its text and its parameters, in order.
pub struct Statement {
    pub text: String,
    pub params: Vec<Value>,
}

/// Builds a statement and collects its parameters in order.
pub struct Sql<'a> {
    dialect: &'a dyn Dialect,
    pub text: String,
    pub params: Vec<Value>,
}

impl<'a> Sql<'a> {
    pub fn new(dialect: &'a dyn Dialect) -> Self {
        Sql { dialect, text: String::new(), params: Vec::new() }
    }

    pub fn finish(self) -> Statement {
        Statement { text: self.text, params: self.params }
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder for `value`, which meets `column`.
    pub fn param(&mut self, column: &str, value: Value) -> &mut Self {
        self.params.push(value);
        let p = self.dialect.placeholder(self.params.len(), column);
        self.text.push_str(&p);
        self
    }

    pub fn quote(&self, name: &str) -> String {
        self.dialect.quote(name)
    }

    pub fn filter(&mut self, filter: &Filter) {
        match filter {
            Filter::And(a, b) | Filter::Or(a, b) => {
                self.push("(");
                self.filter(a);
                self.push(if matches!(filter, Filter::And(..)) { " AND " } else { " OR " });
                self.filter(b);
                self.push(")");
            }
            Filter::Not(a) => {
                self.push("NOT (");
                self.filter(a);
                self.push(")");
            }
            Filter::Compare { column, op, value } => {
                let c = self.quote(column);
                self.push(&format!("{c} {} ", op.sql())).param(column, value.clone());
            }
            Filter::IsNull { column, negated } => {
                let c = self.quote(column);
                self.push(&format!("{c} IS {}NULL", if *negated { "NOT " } else { "" }));
            }
            Filter::In { column, values, negated } => {
                let c = self.quote(column);
                self.push(&format!("{c} {}IN (", if *negated { "NOT " } else { "" }));
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        self.push(", ");
                    }
                    self.param(column, v.clone());
                }
                self.push(")");
            }
        }
    }

    /// ` WHERE …` for a selection (filter and column equalities), plus `extra`
    /// conditions already in the text, or nothing when there is no condition.
    pub fn where_selection(&mut self, selection: &Selection) -> bool {
        let mut first = true;
        let mut and = |s: &mut Self| {
            s.push(if first { " WHERE " } else { " AND " });
            first = false;
        };
        if let Some(f) = &selection.filter {
            and(self);
            self.push("(");
            self.filter(f);
            self.push(")");
        }
        for (column, value) in &selection.equals {
            and(self);
            let c = self.quote(column);
            if value.is_null() {
                self.push(&format!("{c} IS NULL"));
            } else {
                self.push(&format!("{c} = ")).param(column, value.clone());
            }
        }
        if let Some(range) = &selection.range {
            for (bound, after) in [(&range.after, true), (&range.upto, false)] {
                if let Some(key) = bound {
                    and(self);
                    self.key_beyond(&range.columns, key, after);
                }
            }
        }
        !first
    }

    /// Keys after `key` (`after`), or up to it, compared column by column as
    /// ORDER BY sorts them: `a > x OR (a = x AND b > y)`, or
    /// `a < x OR (a = x AND b <= y)` (the last column takes the bound itself).
    fn key_beyond(&mut self, columns: &[String], key: &[Value], after: bool) {
        self.push("(");
        for (j, (column, value)) in columns.iter().zip(key).enumerate() {
            let c = self.dialect.order_by(column);
            let last = j + 1 == columns.len();
            let op = match (after, last) {
                (true, _) => ">",
                (false, false) => "<",
                (false, true) => "<=",
            };
            if j > 0 {
                self.push(" OR (");
                for (earlier, v) in columns.iter().zip(key).take(j) {
                    let e = self.dialect.order_by(earlier);
                    self.push(&format!("{e} = ")).param(earlier, v.clone()).push(" AND ");
                }
            }
            self.push(&format!("{c} {op} ")).param(column, value.clone());
            if j > 0 {
                self.push(")");
            }
        }
        self.push(")");
    }

    /// Rows whose `columns` equal one of `keys`: `c IN (…)` for one column,
    /// `(a = … AND b = …) OR …` for several.
    pub fn key_match(&mut self, columns: &[String], keys: &[Vec<Value>]) {
        let by_column: Vec<Vec<&Value>> = (0..columns.len()).map(|j| keys.iter().map(|k| &k[j]).collect()).collect();
        if let Some((subquery, arrays)) = self.dialect.key_arrays(self.params.len() + 1, columns, &by_column) {
            let list = columns.iter().map(|c| self.quote(c)).collect::<Vec<_>>().join(", ");
            self.params.extend(arrays);
            self.push(&format!("({list}) IN ({subquery})"));
            return;
        }
        if columns.len() == 1 {
            let c = self.quote(&columns[0]);
            self.push(&format!("{c} IN ("));
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    self.push(", ");
                }
                self.param(&columns[0], k[0].clone());
            }
            self.push(")");
            return;
        }
        self.push("(");
        for (i, k) in keys.iter().enumerate() {
            self.push(if i > 0 { " OR (" } else { "(" });
            for (j, (c, v)) in columns.iter().zip(k).enumerate() {
                let q = self.quote(c);
                self.push(if j > 0 { " AND " } else { "" }).push(&format!("{q} = ")).param(c, v.clone());
            }
            self.push(")");
        }
        self.push(")");
    }

    pub fn order_by(&mut self, columns: &[String]) {
        let order = columns.iter().map(|c| self.dialect.order_by(c)).collect::<Vec<_>>().join(", ");
        self.push(" ORDER BY ").push(&order);
    }
}

/// `SELECT columns FROM table WHERE selection [ORDER BY …]`.
pub fn select<'a>(dialect: &'a dyn Dialect, selection: &Selection, columns: &str, order_by: &[String]) -> Sql<'a> {
    let mut sql = Sql::new(dialect);
    let table = sql.quote(&selection.table);
    sql.push(&format!("SELECT {columns} FROM {table}"));
    sql.where_selection(selection);
    if !order_by.is_empty() {
        sql.order_by(order_by);
    }
    sql
}

/// `SELECT columns FROM table WHERE selection AND key IN (…)`.
pub fn select_keys<'a>(
    dialect: &'a dyn Dialect,
    selection: &Selection,
    columns: &str,
    key_columns: &[String],
    keys: &[Vec<Value>],
) -> Sql<'a> {
    let mut sql = select(dialect, selection, columns, &[]);
    let has_where = selection.filter.is_some() || !selection.equals.is_empty() || selection.range.is_some();
    sql.push(if has_where { " AND " } else { " WHERE " });
    sql.key_match(key_columns, keys);
    sql
}

/// Double-quoted identifiers, as SQLite and PostgreSQL write them.
pub fn double_quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyRange;

    struct Test;
    impl Dialect for Test {
        fn quote(&self, name: &str) -> String {
            double_quote(name)
        }
        fn placeholder(&self, i: usize, column: &str) -> String {
            format!("${i}:{column}")
        }
        fn order_by(&self, column: &str) -> String {
            format!("{} COLLATE BINARY", double_quote(column))
        }
    }

    #[test]
    fn identifiers_are_quoted_and_values_bound() {
        let f = Filter::parse("\"x\"\"y\" = 'a''b' AND z IN (1, 2)").unwrap();
        let selection = Selection {
            table: "t".into(),
            filter: Some(f),
            equals: vec![("co".into(), Value::Null), ("d".into(), Value::Int(3))],
            range: None,
        };
        let sql = select(&Test, &selection, "*", &["k".to_string()]);
        assert_eq!(
            sql.text,
            r#"SELECT * FROM "t" WHERE (("x""y" = $1:x"y AND "z" IN ($2:z, $3:z))) AND "co" IS NULL AND "d" = $4:d ORDER BY "k" COLLATE BINARY"#
        );
        assert_eq!(sql.params, vec![Value::Text("a'b".into()), Value::Int(1), Value::Int(2), Value::Int(3)]);
    }

    #[test]
    fn keys_of_several_columns() {
        let selection = Selection { table: "t".into(), ..Default::default() };
        let keys = vec![vec![Value::Int(1), Value::Text("a".into())], vec![Value::Int(2), Value::Text("b".into())]];
        let sql = select_keys(&Test, &selection, "*", &["n".into(), "s".into()], &keys);
        assert_eq!(sql.text, r#"SELECT * FROM "t" WHERE (("n" = $1:n AND "s" = $2:s) OR ("n" = $3:n AND "s" = $4:s))"#);
    }

    #[test]
    fn a_key_range_compares_column_by_column_in_sort_order() {
        let range = KeyRange {
            columns: vec!["n".into(), "s".into()],
            after: Some(vec![Value::Int(1), Value::Text("a".into())]),
            upto: Some(vec![Value::Int(2), Value::Text("b".into())]),
        };
        let selection = Selection { table: "t".into(), range: Some(range), ..Default::default() };
        let sql = select(&Test, &selection, "*", &["n".to_string(), "s".to_string()]);
        assert_eq!(
            sql.text,
            r#"SELECT * FROM "t" WHERE ("n" COLLATE BINARY > $1:n OR ("n" COLLATE BINARY = $2:n AND "s" COLLATE BINARY > $3:s)) AND ("n" COLLATE BINARY < $4:n OR ("n" COLLATE BINARY = $5:n AND "s" COLLATE BINARY <= $6:s)) ORDER BY "n" COLLATE BINARY, "s" COLLATE BINARY"#
        );
        assert_eq!(sql.params.len(), 6);
    }
}
