//! A MySQL/MariaDB app's TLS: the url's `ssl-mode`, `ssl-ca`, `ssl-cert` and
//! `ssl-key`, spelled as MySQL's client spells them, mapped onto the driver's
//! rustls options. `PREFERRED` (the default) falls back to an unencrypted
//! session only when the server offers no TLS at all.

use crate::{ConnectorError, ErrorKind};
use dualsync_tls::{TlsMode, TlsSettings};

/// The url without its TLS settings, those settings, and the driver's options
/// for them (None: no TLS). The files named are read now, so that a bad
/// path fails before any connection.
pub fn from_url(url: &str, location: &str) -> Result<(String, TlsSettings, Option<mysql::SslOpts>), ConnectorError> {
    let bad = |e: dualsync_tls::TlsError| ConnectorError::new(ErrorKind::Unavailable, format!("{location}: {e}"));
    let (rest, settings) = dualsync_tls::url::split_mysql(url).map_err(bad)?;
    dualsync_tls::client_config(&settings).map_err(bad)?;
    if !settings.mode.uses_tls() {
        return Ok((rest, settings, None));
    }
    let mut ssl = mysql::SslOpts::default();
    if settings.verifies_issuer() {
        // The driver trusts Mozilla's roots besides the file given; with none given, the system's bundle too.
        let roots = settings.root_cert.clone().or_else(dualsync_tls::system_roots_file);
        ssl = ssl.with_root_cert_path(roots).with_danger_skip_domain_validation(!settings.verifies_name());
    } else {
        ssl = ssl.with_danger_accept_invalid_certs(true);
    }
    if let (Some(cert), Some(key)) = (&settings.client_cert, &settings.client_key) {
        ssl = ssl.with_client_identity(Some(mysql::ClientIdentity::new(cert.clone(), key.clone())));
    }
    Ok((rest, settings, Some(ssl)))
}

/// Whether a failed connection under `PREFERRED` should be tried again without TLS.
pub fn falls_back(settings: &TlsSettings, e: &mysql::Error) -> bool {
    settings.mode == TlsMode::Prefer && matches!(e, mysql::Error::DriverError(mysql::DriverError::TlsNotSupported))
}
