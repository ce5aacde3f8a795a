//! A PostgreSQL table from the catalog: columns, types, keys, and how to read
//! and cast each column.

use super::binary::BinaryType;
use super::db_error;
use super::values::ColumnReader;
use crate::sql::double_quote;
use crate::{ConnectorError, ErrorKind};
use dualsync_model::{ColumnInfo, TableSchema, TypeClass};

#[derive(Clone, Debug)]
pub struct PgColumn {
    pub name: String,
    /// The type without modifiers, for casts (`numeric`, `character varying`):
    /// casting to `varchar(20)` or `numeric(10,2)` would truncate or round
    /// silently, while the assignment to the column refuses what does not fit.
    pub cast: String,
    /// Text-like: sorts with `COLLATE "C"`.
    pub collatable: bool,
    /// `numeric(precision, scale)`, when declared.
    pub numeric: Option<(u32, u32)>,
    /// `timestamp` without time zone: PostgreSQL drops the offset of a value
    /// written into it, so dualsync writes such a value's UTC reading.
    pub wall_clock: bool,
    pub reader: ColumnReader,
    /// How a binary COPY writes it (None: only as text).
    pub binary: Option<BinaryType>,
}

#[derive(Clone, Debug)]
pub struct PgTable {
    pub schema: TableSchema,
    pub columns: Vec<PgColumn>,
}

impl PgTable {
    pub fn column(&self, name: &str) -> Option<&PgColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn reader(&self, name: &str) -> Result<ColumnReader, ConnectorError> {
        self.column(name).map(|c| c.reader).ok_or_else(|| {
            ConnectorError::new(
                ErrorKind::Schema,
                format!("column {name:?} does not exist in table {:?} (columns: {})", self.schema.name, self.schema.column_names()),
            )
        })
    }

    /// The SELECT list for `columns`: read in binary where dualsync decodes the
    /// type exactly, as text otherwise (dates, times, uuid, json): casting
    /// every numeric and timestamp to text cost the server a third of a read.
    pub fn select_list(&self, columns: &[String]) -> String {
        columns
            .iter()
            .map(|c| {
                let q = double_quote(c);
                match self.column(c).map(|c| c.reader) {
                    Some(ColumnReader::AsText(_)) => format!("{q}::text"),
                    _ => q,
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub fn describe(client: &mut postgres::Client, table: &str) -> Result<PgTable, ConnectorError> {
    let quoted = double_quote(table);
    let rows = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, NULL), t.typname::text, t.typcategory::text,
                    format_type(a.atttypid, a.atttypmod), a.atttypmod, NOT a.attnotnull,
                    a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> ''
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum",
            &[&quoted],
        )
        .map_err(db_error)?;
    if rows.is_empty() {
        return Err(ConnectorError::new(ErrorKind::Schema, format!("table {table:?} does not exist")));
    }
    let mut columns = Vec::new();
    let mut infos = Vec::new();
    for r in rows {
        let name: String = r.get(0);
        let cast: String = r.get(1);
        let typname: String = r.get(2);
        let category: String = r.get(3);
        let declared: String = r.get(4);
        let typmod: i32 = r.get(5);
        let (class, reader) = classify(&typname, &category);
        let numeric = (typname == "numeric" && typmod >= 4).then(|| {
            let m = (typmod - 4) as u32;
            ((m >> 16) & 0xffff, m & 0xffff)
        });
        infos.push(ColumnInfo { name: name.clone(), declared_type: declared, class, nullable: r.get(6), has_default: r.get(7) });
        let wall_clock = typname == "timestamp";
        let binary = BinaryType::of(&typname);
        columns.push(PgColumn { name, cast, collatable: category == "S", numeric, wall_clock, reader, binary });
    }
    let keys = client
        .query(
            "SELECT i.indisprimary, array_agg(a.attname::text ORDER BY k.ord)
             FROM pg_index i
             CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indpred IS NULL
             GROUP BY i.indexrelid, i.indisprimary",
            &[&quoted],
        )
        .map_err(db_error)?;
    let mut primary_key = Vec::new();
    let mut unique_keys = Vec::new();
    for k in keys {
        let cols: Vec<String> = k.get(1);
        if k.get::<_, bool>(0) {
            primary_key = cols;
        } else {
            unique_keys.push(cols);
        }
    }
    Ok(PgTable { schema: TableSchema { name: table.to_string(), columns: infos, primary_key, unique_keys }, columns })
}

/// The type class and the way to read a PostgreSQL type (see docs/types.md).
fn classify(typname: &str, category: &str) -> (TypeClass, ColumnReader) {
    match typname {
        "bool" => (TypeClass::Bool, ColumnReader::Bool),
        "int2" => (TypeClass::Integer, ColumnReader::Int2),
        "int4" => (TypeClass::Integer, ColumnReader::Int4),
        "int8" => (TypeClass::Integer, ColumnReader::Int8),
        "float4" => (TypeClass::Real, ColumnReader::Float4),
        "float8" => (TypeClass::Real, ColumnReader::Float8),
        "numeric" => (TypeClass::Decimal, ColumnReader::Numeric),
        "text" | "varchar" | "bpchar" | "name" | "citext" => (TypeClass::Text, ColumnReader::Text),
        "bytea" => (TypeClass::Blob, ColumnReader::Bytea),
        "date" => (TypeClass::Date, ColumnReader::AsText(TypeClass::Date)),
        "time" | "timetz" => (TypeClass::Time, ColumnReader::AsText(TypeClass::Time)),
        "timestamp" => (TypeClass::Timestamp, ColumnReader::Timestamp { instant: false }),
        "timestamptz" => (TypeClass::Timestamp, ColumnReader::Timestamp { instant: true }),
        _ if category == "S" => (TypeClass::Text, ColumnReader::AsText(TypeClass::Text)),
        // uuid, json, jsonb, enums, and anything else: exact as text.
        _ => (TypeClass::Text, ColumnReader::AsText(TypeClass::Text)),
    }
}
