//! What each kind of OData service does its own way: a table of
//! capabilities the connector consults, not a fork of it.

use dualsync_model::config::odata::Dialect;

#[derive(Clone, Copy, Debug)]
pub struct Capabilities {
    /// Whether `$orderby` on text sorts in byte order (as dualsync merges);
    /// otherwise scans go through the external sort (sort.rs).
    pub sorts_bytes: bool,
    /// Whether the service takes `Prefer: odata.maxpagesize`.
    pub max_page_size_preference: bool,
    /// Whether updates and deletes always carry `If-Match` (`*` where no ETag
    /// was read): Dataverse's PATCH creates a row that is gone without it.
    pub if_match_always: bool,
    /// Whether reads ask for every company's rows (`cross-company=true`):
    /// finance and operations answers for the user's default company otherwise,
    /// and the map's company column (`dataAreaId`) partitions them.
    pub cross_company: bool,
    /// Whether live sync reads changes through delta links (`Prefer:
    /// odata.track-changes`, deletes as `$deletedEntity`) instead of polling
    /// a change timestamp (capture/delta.rs).
    pub tracks_changes: bool,
    /// Whether a PATCH to an entity's address that does not exist creates it
    /// (an upsert): inserts go so, and a re-sent insert cannot make a second row.
    pub upserts_by_patch: bool,
    /// Whether an entity is addressed by a declared alternate key in the URL
    /// (`accounts(accountnumber='A-1')`) instead of being looked up first.
    pub alternate_keys_in_url: bool,
}

pub fn of(dialect: Dialect) -> Capabilities {
    match dialect {
        // SAP CAP and most services on a database with a binary collation.
        Dialect::Standard => Capabilities {
            sorts_bytes: true,
            max_page_size_preference: true,
            if_match_always: false,
            cross_company: false,
            tracks_changes: false,
            upserts_by_patch: false,
            alternate_keys_in_url: false,
        },
        // SQL Server's default collation: case-insensitive.
        Dialect::Dataverse => Capabilities {
            sorts_bytes: false,
            max_page_size_preference: true,
            if_match_always: true,
            cross_company: false,
            tracks_changes: true,
            upserts_by_patch: true,
            alternate_keys_in_url: true,
        },
        Dialect::FinanceOperations => Capabilities {
            sorts_bytes: false,
            max_page_size_preference: false,
            if_match_always: false,
            cross_company: true,
            tracks_changes: false,
            upserts_by_patch: false,
            alternate_keys_in_url: false,
        },
    }
}
