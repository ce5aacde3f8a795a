//! A PostgreSQL app's TLS: the url's `sslmode`, `sslrootcert`, `sslcert` and
//! `sslkey`, as libpq reads them, enforced with rustls (see `dualsync-tls`).
//! Ordinary sessions go through tokio-postgres; replication sessions
//! (`logical/session.rs`) use the same client configuration.

use crate::{ConnectorError, ErrorKind};
use dualsync_tls::{TlsMode, TlsSettings};
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

pub struct PgTls {
    pub settings: TlsSettings,
    pub client: Arc<rustls::ClientConfig>,
}

impl PgTls {
    /// The url without its TLS settings, and those settings, with the files
    /// they name read now: a bad path fails before any connection.
    pub fn from_url(url: &str, location: &str) -> Result<(String, PgTls), ConnectorError> {
        let bad = |e: dualsync_tls::TlsError| ConnectorError::new(ErrorKind::Unavailable, format!("{location}: {e}"));
        let (rest, settings) = dualsync_tls::url::split_postgres(url).map_err(bad)?;
        let client = dualsync_tls::client_config(&settings).map_err(bad)?;
        Ok((rest, PgTls { settings, client }))
    }

    /// What the driver's own setting must be: the verify modes are `require`
    /// to it, and the verification is ours.
    pub fn driver_mode(&self) -> postgres::config::SslMode {
        match self.settings.mode {
            TlsMode::Disable => postgres::config::SslMode::Disable,
            TlsMode::Prefer => postgres::config::SslMode::Prefer,
            _ => postgres::config::SslMode::Require,
        }
    }

    pub fn connector(&self) -> MakeRustlsConnect {
        MakeRustlsConnect::new((*self.client).clone())
    }

    /// "TLS refused: …; fix" when the error is a TLS failure.
    pub fn explain(&self, e: &(dyn std::error::Error + 'static)) -> Option<String> {
        dualsync_tls::explain(e, &self.settings)
    }
}
