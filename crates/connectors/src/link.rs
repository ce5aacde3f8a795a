//! The link table each app's database keeps for environment fencing (see
//! the engine's `link.rs`): per state store that syncs it, the app's name and
//! what identified this database when it was linked. A database restored or
//! copied elsewhere keeps its rows but answers with another identity.

/// The app's link table, in SQL every supported database accepts.
pub const CREATE: &str = "CREATE TABLE IF NOT EXISTS dualsync_link (store_id VARCHAR(64) NOT NULL, app VARCHAR(200) NOT NULL, \
     database_id VARCHAR(400) NOT NULL, linked_at VARCHAR(40) NOT NULL, PRIMARY KEY (store_id, app))";

pub const TABLE: &str = "dualsync_link";
