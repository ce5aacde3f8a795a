//! `$filter` and `$orderby` text for a selection, with every value written
//! as a literal of its property's type and percent-encoded: config text and
//! row values never change the shape of a request.

use super::metadata::EntitySet;
use super::values::literal;
use crate::{ConnectorError, ErrorKind, Selection};
use dualsync_model::filter::{CompareOp, Filter};
use dualsync_model::Value;

pub struct Query<'a> {
    pub set: &'a EntitySet,
}

impl Query<'_> {
    fn lit(&self, column: &str, v: &Value) -> Result<String, ConnectorError> {
        let p = self.set.property(column).ok_or_else(|| missing(self.set, column))?;
        Ok(literal(p, v))
    }

    fn name(&self, column: &str) -> Result<String, ConnectorError> {
        self.set.property(column).map(|p| p.name.clone()).ok_or_else(|| missing(self.set, column))
    }

    /// The selection's conditions (filter, equalities, key range), or None for all rows.
    pub fn selection(&self, s: &Selection) -> Result<Option<String>, ConnectorError> {
        let mut parts = Vec::new();
        if let Some(f) = &s.filter {
            parts.push(format!("({})", self.filter(f)?));
        }
        for (column, v) in &s.equals {
            parts.push(format!("{} eq {}", self.name(column)?, self.lit(column, v)?));
        }
        if let Some(r) = &s.range {
            if let Some(after) = &r.after {
                parts.push(format!("({})", self.beyond(&r.columns, after, "gt")?));
            }
            if let Some(upto) = &r.upto {
                parts.push(format!("({})", self.beyond(&r.columns, upto, "le")?));
            }
        }
        Ok((!parts.is_empty()).then(|| parts.join(" and ")))
    }

    /// Rows whose `columns` come after (`gt`) or up to (`le`) `values` in key order:
    /// `(a gt 1) or (a eq 1 and b gt 2)`. NULL sorts first, as in `Value::key_cmp`
    /// (and as SQL Server and SQLite behind a service sort it); OData's `gt null`
    /// is never true, so each comparison with NULL is spelled out.
    pub fn beyond(&self, columns: &[String], values: &[Value], op: &str) -> Result<String, ConnectorError> {
        let (strict, last) = if op == "gt" { ("gt", "gt") } else { ("lt", "le") };
        let mut alternatives = Vec::new();
        for i in 0..columns.len().min(values.len()) {
            let op = if i + 1 == columns.len() { last } else { strict };
            // Nothing sorts before NULL: this alternative never holds.
            let Some(last_term) = self.compare_null_first(&columns[i], op, &values[i])? else { continue };
            let mut terms = Vec::new();
            for j in 0..i {
                terms.push(format!("{} eq {}", self.name(&columns[j])?, self.lit(&columns[j], &values[j])?));
            }
            terms.push(last_term);
            alternatives.push(format!("({})", terms.join(" and ")));
        }
        Ok(alternatives.join(" or "))
    }

    /// `column op value` with NULL sorting before every value, or None when no row can match.
    fn compare_null_first(&self, column: &str, op: &str, value: &Value) -> Result<Option<String>, ConnectorError> {
        let name = self.name(column)?;
        let nullable = self.set.property(column).is_some_and(|p| p.nullable);
        Ok(match (op, value.is_null()) {
            ("gt", true) => Some(format!("{name} ne null")),
            ("lt", true) => None,
            ("le", true) => Some(format!("{name} eq null")),
            ("gt", false) => Some(format!("{name} gt {}", self.lit(column, value)?)),
            (_, false) if nullable => Some(format!("({name} {op} {} or {name} eq null)", self.lit(column, value)?)),
            (_, false) => Some(format!("{name} {op} {}", self.lit(column, value)?)),
            _ => unreachable!("beyond uses gt, lt and le"),
        })
    }

    /// Rows whose `columns` equal one of `keys`.
    pub fn one_of(&self, columns: &[String], keys: &[Vec<Value>]) -> Result<String, ConnectorError> {
        let mut alternatives = Vec::with_capacity(keys.len());
        for key in keys {
            let mut terms = Vec::with_capacity(columns.len());
            for (c, v) in columns.iter().zip(key) {
                terms.push(format!("{} eq {}", self.name(c)?, self.lit(c, v)?));
            }
            alternatives.push(format!("({})", terms.join(" and ")));
        }
        Ok(alternatives.join(" or "))
    }

    pub fn filter(&self, f: &Filter) -> Result<String, ConnectorError> {
        Ok(match f {
            Filter::And(a, b) => format!("({} and {})", self.filter(a)?, self.filter(b)?),
            Filter::Or(a, b) => format!("({} or {})", self.filter(a)?, self.filter(b)?),
            Filter::Not(a) => format!("not ({})", self.filter(a)?),
            Filter::Compare { column, op, value } => {
                let op = match op {
                    CompareOp::Eq => "eq",
                    CompareOp::Ne => "ne",
                    CompareOp::Lt => "lt",
                    CompareOp::Le => "le",
                    CompareOp::Gt => "gt",
                    CompareOp::Ge => "ge",
                };
                format!("{} {op} {}", self.name(column)?, self.lit(column, value)?)
            }
            Filter::IsNull { column, negated } => format!("{} {} null", self.name(column)?, if *negated { "ne" } else { "eq" }),
            Filter::In { column, values, negated } => {
                let any: Vec<String> = values
                    .iter()
                    .map(|v| Ok(format!("{} eq {}", self.name(column)?, self.lit(column, v)?)))
                    .collect::<Result<_, ConnectorError>>()?;
                let any = if any.is_empty() { "false".to_string() } else { format!("({})", any.join(" or ")) };
                if *negated {
                    format!("not {any}")
                } else {
                    any
                }
            }
        })
    }

    /// The entity's address: `Item(k='a')`, `Line(order='x',no=1)`.
    pub fn entity(&self, key: &[Value]) -> Result<String, ConnectorError> {
        self.address(&self.set.key, key)
    }

    /// An address by named key columns: the entity key, or a declared
    /// alternate key (`accounts(accountnumber='A-1')`).
    pub fn address(&self, columns: &[String], values: &[Value]) -> Result<String, ConnectorError> {
        let parts: Vec<String> = columns
            .iter()
            .zip(values)
            .map(|(c, v)| Ok(format!("{c}={}", super::http::encode(&self.lit(c, v)?))))
            .collect::<Result<_, ConnectorError>>()?;
        Ok(format!("{}({})", super::http::encode(&self.set.name), parts.join(",")))
    }
}

pub fn missing(set: &EntitySet, column: &str) -> ConnectorError {
    let names: Vec<&str> = set.properties.iter().map(|p| p.name.as_str()).collect();
    let near = names
        .iter()
        .find(|n| n.eq_ignore_ascii_case(column))
        .map(|n| format!(" (did you mean {n}? names are case-sensitive)"))
        .unwrap_or_default();
    ConnectorError::new(ErrorKind::Schema, format!("entity set {} has no property {column:?}{near}; it has {}", set.name, names.join(", ")))
}
