//! App connectors: one trait, one implementation per kind of database (and
//! OData v4 services).
//!
//! A connector knows tables, columns and rows; it never knows about maps,
//! companies or lookups: the engine expresses all of those as [`Selection`]s,
//! key orders and batches.

mod contract;
mod error;
pub mod failure;
mod fence;
pub mod link;
pub mod log;
pub mod mysql;
pub mod odata;
pub mod postgres;
mod select;
pub mod sql;
pub mod sqlite;

pub use contract::*;
pub use error::{ConnectorError, ErrorKind};

use dualsync_model::config::DatabaseUrl;
use std::sync::Arc;

/// Opens the connector for a database URL. Secrets come from the caller
/// (read from the environment or a file), never from the URL.
pub fn open(url: &DatabaseUrl, password: Option<&str>) -> Result<Arc<dyn Connector>, ConnectorError> {
    match url {
        DatabaseUrl::Sqlite(path) => Ok(Arc::new(sqlite::SqliteConnector::new(path.clone()))),
        DatabaseUrl::Postgres(raw) => Ok(Arc::new(postgres::PostgresConnector::new(raw, url.to_string(), password)?)),
        DatabaseUrl::Mysql(raw) => Ok(Arc::new(mysql::MysqlConnector::new(raw, url.to_string(), password)?)),
        DatabaseUrl::OData(app) => Ok(Arc::new(odata::ODataConnector::new(app, password)?)),
    }
}
