//! Row filters from the config (`filter = "statecode = 0 AND country IN ('DE','FR')"`).
//!
//! A filter is parsed into this small expression tree so that connectors can
//! render it with quoted identifiers and bound values: text from a config file
//! is never spliced into SQL.

use crate::value::Value;
use std::fmt;

#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Compare { column: String, op: CompareOp, value: Value },
    IsNull { column: String, negated: bool },
    In { column: String, values: Vec<Value>, negated: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CompareOp {
    pub fn sql(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "<>",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("filter {text:?}, at character {position}: {message}")]
pub struct FilterError {
    pub text: String,
    pub position: usize,
    pub message: String,
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let tokens = tokenize(text)?;
        let mut p = Parser { text, tokens, pos: 0 };
        let f = p.or()?;
        match p.peek() {
            None => Ok(f),
            Some((at, t)) => Err(p.error(at, format!("unexpected {t} after a complete condition"))),
        }
    }

    /// Every column the filter names, for checking against the table.
    pub fn columns(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_columns(&mut out);
        out
    }

    fn collect_columns<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Filter::And(a, b) | Filter::Or(a, b) => {
                a.collect_columns(out);
                b.collect_columns(out);
            }
            Filter::Not(a) => a.collect_columns(out),
            Filter::Compare { column, .. } | Filter::IsNull { column, .. } | Filter::In { column, .. } => out.push(column),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    Literal(Value),
    Op(CompareOp),
    Word(&'static str),
    Open,
    Close,
    Comma,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Ident(s) => write!(f, "column {s:?}"),
            Token::Literal(v) => write!(f, "value {}", v.display()),
            Token::Op(o) => write!(f, "'{}'", o.sql()),
            Token::Word(w) => write!(f, "{w}"),
            Token::Open => f.write_str("'('"),
            Token::Close => f.write_str("')'"),
            Token::Comma => f.write_str("','"),
        }
    }
}

const KEYWORDS: [&str; 8] = ["AND", "OR", "NOT", "IS", "NULL", "IN", "TRUE", "FALSE"];

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, FilterError> {
    let err = |position: usize, message: &str| FilterError { text: text.to_string(), position, message: message.to_string() };
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => (out.push((at, Token::Open)), i += 1).1,
            ')' => (out.push((at, Token::Close)), i += 1).1,
            ',' => (out.push((at, Token::Comma)), i += 1).1,
            '=' => (out.push((at, Token::Op(CompareOp::Eq))), i += 1).1,
            '<' | '>' | '!' => {
                let next = chars.get(i + 1).map(|c| c.1);
                let (op, len) = match (c, next) {
                    ('<', Some('=')) => (CompareOp::Le, 2),
                    ('<', Some('>')) => (CompareOp::Ne, 2),
                    ('<', _) => (CompareOp::Lt, 1),
                    ('>', Some('=')) => (CompareOp::Ge, 2),
                    ('>', _) => (CompareOp::Gt, 1),
                    ('!', Some('=')) => (CompareOp::Ne, 2),
                    _ => return Err(err(at, "'!' must be followed by '='")),
                };
                out.push((at, Token::Op(op)));
                i += len;
            }
            '\'' | '"' | '`' => {
                // 'text' is a value; "name" and `name` are quoted column names. A doubled quote escapes itself.
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err(at, "quote is never closed")),
                        Some(&(_, q)) if q == c => {
                            if chars.get(i + 1).map(|x| x.1) == Some(c) {
                                s.push(c);
                                i += 2;
                            } else {
                                i += 1;
                                break;
                            }
                        }
                        Some(&(_, ch)) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push((at, if c == '\'' { Token::Literal(Value::Text(s)) } else { Token::Ident(s) }));
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+' || c == '.') && chars.get(i + 1).is_some_and(|n| n.1.is_ascii_digit() || n.1 == '.')) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].1.is_ascii_digit() || chars[i].1 == '.') {
                    i += 1;
                }
                let end = chars.get(i).map_or(text.len(), |c| c.0);
                let lit = &text[chars[start].0..end];
                let value = if let Ok(n) = lit.parse::<i64>() {
                    Value::Int(n)
                } else if lit.matches('.').count() == 1 && lit.trim_start_matches(['-', '+']) != "." {
                    Value::Decimal(lit.to_string())
                } else {
                    return Err(err(at, &format!("{lit:?} is not a number")));
                };
                out.push((at, Token::Literal(value)));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].1.is_alphanumeric() || chars[i].1 == '_' || chars[i].1 == '$') {
                    i += 1;
                }
                let end = chars.get(i).map_or(text.len(), |c| c.0);
                let word = &text[chars[start].0..end];
                let upper = word.to_ascii_uppercase();
                match KEYWORDS.iter().find(|k| **k == upper) {
                    Some(&"TRUE") => out.push((at, Token::Literal(Value::Bool(true)))),
                    Some(&"FALSE") => out.push((at, Token::Literal(Value::Bool(false)))),
                    Some(k) => out.push((at, Token::Word(k))),
                    None => out.push((at, Token::Ident(word.to_string()))),
                }
            }
            other => return Err(err(at, &format!("unexpected character {other:?}; a filter is column op value, joined by AND/OR"))),
        }
    }
    Ok(out)
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<(usize, Token)>,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<(usize, &Token)> {
        self.tokens.get(self.pos).map(|(a, t)| (*a, t))
    }

    fn end(&self) -> usize {
        self.text.len()
    }

    fn error(&self, position: usize, message: String) -> FilterError {
        FilterError { text: self.text.to_string(), position, message }
    }

    fn eat_word(&mut self, w: &str) -> bool {
        if matches!(self.peek(), Some((_, Token::Word(x))) if *x == w) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.and()?;
        while self.eat_word("OR") {
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.not()?;
        while self.eat_word("AND") {
            left = Filter::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Filter, FilterError> {
        if self.eat_word("NOT") {
            return Ok(Filter::Not(Box::new(self.not()?)));
        }
        self.condition()
    }

    fn condition(&mut self) -> Result<Filter, FilterError> {
        let (at, token) = match self.peek() {
            Some((a, t)) => (a, t.clone()),
            None => return Err(self.error(self.end(), "expected a condition such as statecode = 0".into())),
        };
        self.pos += 1;
        let column = match token {
            Token::Open => {
                let inner = self.or()?;
                return match self.peek() {
                    Some((_, Token::Close)) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    _ => Err(self.error(at, "'(' is never closed".into())),
                };
            }
            Token::Ident(c) => c,
            other => return Err(self.error(at, format!("expected a column name, found {other}"))),
        };
        match self.peek().map(|(a, t)| (a, t.clone())) {
            Some((_, Token::Op(op))) => {
                self.pos += 1;
                let value = self.literal()?;
                Ok(Filter::Compare { column, op, value })
            }
            Some((_, Token::Word("IS"))) => {
                self.pos += 1;
                let negated = self.eat_word("NOT");
                if !self.eat_word("NULL") {
                    return Err(self.error(at, format!("expected NULL after {column} IS")));
                }
                Ok(Filter::IsNull { column, negated })
            }
            Some((_, Token::Word(w))) if w == "IN" || w == "NOT" => {
                self.pos += 1;
                let negated = w == "NOT";
                if negated && !self.eat_word("IN") {
                    return Err(self.error(at, format!("expected IN after {column} NOT")));
                }
                if !matches!(self.peek(), Some((_, Token::Open))) {
                    return Err(self.error(at, "expected '(' after IN".into()));
                }
                self.pos += 1;
                let mut values = vec![self.literal()?];
                loop {
                    match self.peek() {
                        Some((_, Token::Comma)) => {
                            self.pos += 1;
                            values.push(self.literal()?);
                        }
                        Some((_, Token::Close)) => {
                            self.pos += 1;
                            break;
                        }
                        _ => return Err(self.error(at, "IN list is never closed with ')'".into())),
                    }
                }
                Ok(Filter::In { column, values, negated })
            }
            _ => Err(self.error(at, format!("expected =, <>, <, <=, >, >=, IS or IN after column {column:?}"))),
        }
    }

    fn literal(&mut self) -> Result<Value, FilterError> {
        match self.peek().map(|(a, t)| (a, t.clone())) {
            Some((_, Token::Literal(v))) => {
                self.pos += 1;
                Ok(v)
            }
            Some((_, Token::Word("NULL"))) => Err(self.error(self.end(), "compare with NULL using IS NULL or IS NOT NULL".into())),
            Some((at, t)) => Err(self.error(at, format!("expected a value ('text' or a number), found {t}"))),
            None => Err(self.error(self.end(), "expected a value at the end".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_design_example() {
        assert_eq!(
            Filter::parse("statecode = 0").unwrap(),
            Filter::Compare { column: "statecode".into(), op: CompareOp::Eq, value: Value::Int(0) }
        );
    }

    #[test]
    fn precedence_and_lists() {
        let f = Filter::parse("a = 'x''y' OR NOT b IS NULL AND \"weird col\" NOT IN (1, 2.50, 'z')").unwrap();
        let Filter::Or(left, right) = f else { panic!("OR binds loosest") };
        assert_eq!(*left, Filter::Compare { column: "a".into(), op: CompareOp::Eq, value: Value::Text("x'y".into()) });
        let Filter::And(_, list) = *right else { panic!("AND inside OR") };
        assert_eq!(
            *list,
            Filter::In {
                column: "weird col".into(),
                values: vec![Value::Int(1), Value::Decimal("2.50".into()), Value::Text("z".into())],
                negated: true
            }
        );
    }

    #[test]
    fn sql_injection_is_a_parse_error_not_sql() {
        for bad in ["a = 1; DROP TABLE x", "a = 1 --", "a = (SELECT 1)", "a = ", "a = 'open", "= 1"] {
            assert!(Filter::parse(bad).is_err(), "{bad} must be refused");
        }
    }
}
