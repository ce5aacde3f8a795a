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
}

pub fn of(dialect: Dialect) -> Capabilities {
    match dialect {
        // SAP CAP and most services on a database with a binary collation.
        Dialect::Standard => {
            Capabilities { sorts_bytes: true, max_page_size_preference: true, if_match_always: false, cross_company: false }
        }
        // SQL Server's default collation: case-insensitive.
        Dialect::Dataverse => {
            Capabilities { sorts_bytes: false, max_page_size_preference: true, if_match_always: true, cross_company: false }
        }
        Dialect::FinanceOperations => {
            Capabilities { sorts_bytes: false, max_page_size_preference: false, if_match_always: false, cross_company: true }
        }
    }
}
