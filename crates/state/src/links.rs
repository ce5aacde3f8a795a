//! The store's side of environment fencing (see the engine's `link.rs`):
//! its own id, and the database each app was linked to.

use crate::db::P;
use crate::time::now;
use crate::{StateError, StateStore};

/// The database an app was linked to, as the store remembers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppLink {
    pub database_id: String,
    pub linked_at: String,
}

impl StateStore {
    /// This store's id, made at random when the store was created.
    pub fn store_id(&self) -> Result<String, StateError> {
        Ok(self.db().query("SELECT id FROM store_identity", &[])?.first().map(|r| r[0].text()).unwrap_or_default())
    }

    pub fn app_link(&self, app: &str) -> Result<Option<AppLink>, StateError> {
        let rows = self.db().query("SELECT database_id, linked_at FROM app_links WHERE app = ?1", &[P::Text(app)])?;
        Ok(rows.first().map(|r| AppLink { database_id: r[0].text(), linked_at: r[1].text() }))
    }

    /// Links `app` to the database of this identity (a first sync, or `relink`).
    pub fn set_app_link(&self, app: &str, database_id: &str) -> Result<(), StateError> {
        self.db().execute(
            "INSERT INTO app_links (app, database_id, linked_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (app) DO UPDATE SET database_id = excluded.database_id, linked_at = excluded.linked_at",
            &[P::Text(app), P::Text(database_id), P::Text(&now())],
        )?;
        Ok(())
    }
}
