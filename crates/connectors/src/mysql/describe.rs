//! A MySQL/MariaDB table from information_schema.

use super::db_error;
use super::values::Reader;
use crate::{ConnectorError, ErrorKind};
use dualsync_model::{ColumnInfo, TableSchema, TypeClass};
use mysql::prelude::Queryable;

#[derive(Clone, Debug)]
pub struct MyColumn {
    pub name: String,
    /// The character set of a text column (its `_bin` collation sorts by bytes).
    pub charset: Option<String>,
    pub numeric: Option<(u32, u32)>,
    pub reader: Reader,
}

#[derive(Clone, Debug)]
pub struct MyTable {
    pub schema: TableSchema,
    pub columns: Vec<MyColumn>,
}

impl MyTable {
    pub fn column(&self, name: &str) -> Option<&MyColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn reader(&self, name: &str) -> Result<Reader, ConnectorError> {
        self.column(name).map(|c| c.reader).ok_or_else(|| {
            ConnectorError::new(
                ErrorKind::Schema,
                format!("column {name:?} does not exist in table {:?} (columns: {})", self.schema.name, self.schema.column_names()),
            )
        })
    }
}

type ColumnRow = (String, String, String, String, Option<String>, String, Option<String>, Option<u64>, Option<u64>);

pub fn describe(conn: &mut mysql::Conn, table: &str) -> Result<MyTable, ConnectorError> {
    let rows: Vec<ColumnRow> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA, CHARACTER_SET_NAME, NUMERIC_PRECISION, NUMERIC_SCALE
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (table,),
        )
        .map_err(db_error)?;
    if rows.is_empty() {
        return Err(ConnectorError::new(ErrorKind::Schema, format!("table {table:?} does not exist")));
    }
    let mut columns = Vec::new();
    let mut infos = Vec::new();
    for (name, data_type, column_type, nullable, default, extra, charset, precision, scale) in rows {
        let (class, reader) = classify(&data_type, &column_type, charset.as_deref());
        let has_default =
            default.as_deref().is_some_and(|d| d != "NULL") || extra.contains("auto_increment") || extra.contains("GENERATED");
        infos.push(ColumnInfo { name: name.clone(), declared_type: column_type, class, nullable: nullable == "YES", has_default });
        let numeric = (data_type == "decimal").then(|| (precision.unwrap_or(65) as u32, scale.unwrap_or(0) as u32));
        let charset = charset.filter(|c| c != "binary" && matches!(class, TypeClass::Text));
        columns.push(MyColumn { name, charset, numeric, reader });
    }
    let keys: Vec<(String, String)> = conn
        .exec(
            "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND NON_UNIQUE = 0 ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            (table,),
        )
        .map_err(db_error)?;
    let mut primary_key = Vec::new();
    let mut unique: Vec<(String, Vec<String>)> = Vec::new();
    for (index, column) in keys {
        if index == "PRIMARY" {
            primary_key.push(column);
        } else {
            match unique.iter_mut().find(|u| u.0 == index) {
                Some(u) => u.1.push(column),
                None => unique.push((index, vec![column])),
            }
        }
    }
    let schema =
        TableSchema { name: table.to_string(), columns: infos, primary_key, unique_keys: unique.into_iter().map(|u| u.1).collect() };
    Ok(MyTable { schema, columns })
}

/// The type class and the way to read a MySQL type (see docs/types.md).
fn classify(data_type: &str, column_type: &str, charset: Option<&str>) -> (TypeClass, Reader) {
    match data_type {
        "tinyint" if column_type.starts_with("tinyint(1)") => (TypeClass::Bool, Reader::Bool),
        "tinyint" | "smallint" | "mediumint" | "int" | "bigint" | "year" => (TypeClass::Integer, Reader::Integer),
        "decimal" => (TypeClass::Decimal, Reader::Decimal),
        "float" | "double" => (TypeClass::Real, Reader::Real),
        "date" => (TypeClass::Date, Reader::Date),
        "time" => (TypeClass::Time, Reader::Time),
        "datetime" | "timestamp" => (TypeClass::Timestamp, Reader::Timestamp),
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "bit" => (TypeClass::Blob, Reader::Bytes),
        _ if charset == Some("binary") => (TypeClass::Blob, Reader::Bytes),
        _ => (TypeClass::Text, Reader::Text),
    }
}
