//! One connection to the state store's database, SQLite or PostgreSQL, behind
//! the few operations the store needs. SQL is written once with numbered
//! placeholders (`?1`), which become `$1` for PostgreSQL.

use crate::StateError;

pub enum Db {
    Sqlite(rusqlite::Connection),
    Postgres(postgres::Client),
}

/// A statement parameter.
#[derive(Clone, Copy, Debug)]
pub enum P<'a> {
    Int(i64),
    OptInt(Option<i64>),
    Text(&'a str),
    OptText(Option<&'a str>),
    Bool(bool),
}

/// A value read back.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl Cell {
    pub fn int(&self) -> i64 {
        match self {
            Cell::Int(i) => *i,
            _ => 0,
        }
    }
    pub fn text(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            _ => String::new(),
        }
    }
    pub fn opt_int(&self) -> Option<i64> {
        match self {
            Cell::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub fn opt_text(&self) -> Option<String> {
        match self {
            Cell::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}

impl Db {
    pub fn execute(&mut self, sql: &str, params: &[P<'_>]) -> Result<u64, StateError> {
        match self {
            Db::Sqlite(c) => Ok(c.prepare_cached(sql)?.execute(rusqlite::params_from_iter(params.iter().map(sqlite_param)))? as u64),
            Db::Postgres(c) => {
                let values: Vec<Box<dyn postgres::types::ToSql + Sync>> = params.iter().map(pg_param).collect();
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = values.iter().map(|b| b.as_ref()).collect();
                Ok(c.execute(dollar(sql).as_str(), &refs).map_err(pg)?)
            }
        }
    }

    pub fn query(&mut self, sql: &str, params: &[P<'_>]) -> Result<Vec<Vec<Cell>>, StateError> {
        match self {
            Db::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let n = stmt.column_count();
                let rows = stmt.query_map(rusqlite::params_from_iter(params.iter().map(sqlite_param)), |r| {
                    (0..n)
                        .map(|i| {
                            Ok(match r.get_ref(i)? {
                                rusqlite::types::ValueRef::Null => Cell::Null,
                                rusqlite::types::ValueRef::Integer(i) => Cell::Int(i),
                                rusqlite::types::ValueRef::Real(f) => Cell::Int(f as i64),
                                rusqlite::types::ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                                rusqlite::types::ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
                            })
                        })
                        .collect::<Result<Vec<_>, rusqlite::Error>>()
                })?;
                Ok(rows.collect::<Result<_, _>>()?)
            }
            Db::Postgres(c) => {
                let values: Vec<Box<dyn postgres::types::ToSql + Sync>> = params.iter().map(pg_param).collect();
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = values.iter().map(|b| b.as_ref()).collect();
                let rows = c.query(dollar(sql).as_str(), &refs).map_err(pg)?;
                rows.iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| {
                                use postgres::types::Type;
                                let t = r.columns()[i].type_();
                                Ok(if *t == Type::INT8 {
                                    r.try_get::<_, Option<i64>>(i).map_err(pg)?.map_or(Cell::Null, Cell::Int)
                                } else if *t == Type::INT4 {
                                    r.try_get::<_, Option<i32>>(i).map_err(pg)?.map_or(Cell::Null, |v| Cell::Int(v as i64))
                                } else if *t == Type::BYTEA {
                                    r.try_get::<_, Option<Vec<u8>>>(i).map_err(pg)?.map_or(Cell::Null, Cell::Blob)
                                } else {
                                    r.try_get::<_, Option<String>>(i).map_err(pg)?.map_or(Cell::Null, Cell::Text)
                                })
                            })
                            .collect()
                    })
                    .collect()
            }
        }
    }

    /// Statements without parameters (migrations, transaction control).
    pub fn batch(&mut self, sql: &str) -> Result<(), StateError> {
        match self {
            Db::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Db::Postgres(c) => c.batch_execute(sql).map_err(pg),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }
}

fn sqlite_param<'a>(p: &'a P<'a>) -> rusqlite::types::ToSqlOutput<'a> {
    use rusqlite::types::{ToSqlOutput, Value, ValueRef};
    match *p {
        P::Int(i) => ToSqlOutput::Owned(Value::Integer(i)),
        P::OptInt(i) => i.map_or(ToSqlOutput::Owned(Value::Null), |i| ToSqlOutput::Owned(Value::Integer(i))),
        P::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        P::OptText(s) => s.map_or(ToSqlOutput::Owned(Value::Null), |s| ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))),
        P::Bool(b) => ToSqlOutput::Owned(Value::Integer(b as i64)),
    }
}

fn pg_param(p: &P<'_>) -> Box<dyn postgres::types::ToSql + Sync> {
    match *p {
        P::Int(i) => Box::new(i),
        P::OptInt(i) => Box::new(i),
        P::Text(s) => Box::new(s.to_string()),
        P::OptText(s) => Box::new(s.map(str::to_string)),
        P::Bool(b) => Box::new(b),
    }
}

/// `?1` → `$1`: the SQL of this crate has no other question marks.
fn dollar(sql: &str) -> String {
    sql.replace('?', "$")
}

pub fn pg(e: postgres::Error) -> StateError {
    StateError::Postgres(match e.as_db_error() {
        Some(d) => d.message().to_string(),
        None => e.to_string(),
    })
}
