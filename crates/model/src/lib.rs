//! The domain model of dualsync: values and rows as the databases hold them,
//! table descriptions, row filters, and the `dualsync.toml` configuration.
//!
//! Nothing here talks to a database; connectors and the engine share these types.

pub mod config;
pub mod filter;
pub mod redact;
pub mod row;
pub mod schema;
pub mod value;

pub use config::{Config, ConfigError, ConfigErrors};
pub use filter::Filter;
pub use row::{column_hashes, content_hash, key_hash, Key, Row};
pub use schema::{ColumnInfo, TableSchema, TypeClass};
pub use value::Value;
