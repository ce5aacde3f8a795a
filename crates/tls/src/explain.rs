//! What a refused TLS session means, and what to do: the rustls error found
//! in a driver's error chain, in the words of the settings the user wrote.

use crate::TlsSettings;
use rustls::{AlertDescription, CertificateError};
use std::error::Error;

/// "its certificate …; fix", when `err` (or a cause of it) is a TLS failure.
pub fn explain(err: &(dyn Error + 'static), settings: &TlsSettings) -> Option<String> {
    let mut cause: Option<&(dyn Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(describe(tls, settings));
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
                return Some(describe(tls, settings));
            }
        }
        cause = e.source();
    }
    // Some drivers keep only the text of the TLS error (MySQL's codec errors).
    from_text(&err.to_string()).map(|tls| describe(&tls, settings))
}

/// The rustls error a message quotes, for the failures `describe` words.
fn from_text(text: &str) -> Option<rustls::Error> {
    if let Some((_, rest)) = text.split_once("invalid peer certificate: ") {
        let failure = if rest.starts_with("UnknownIssuer") {
            CertificateError::UnknownIssuer
        } else if rest.starts_with("NotValidForName") || rest.starts_with("certificate not valid for name") {
            CertificateError::NotValidForName
        } else if rest.starts_with("Expired") || rest.starts_with("certificate expired") {
            let after = rest.split_once("not valid after ").and_then(|(_, n)| n.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok());
            match after {
                Some(secs) => CertificateError::ExpiredContext {
                    time: rustls::pki_types::UnixTime::now(),
                    not_after: rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs)),
                },
                None => CertificateError::Expired,
            }
        } else {
            return None;
        };
        return Some(rustls::Error::InvalidCertificate(failure));
    }
    let (_, alert) = text.split_once("received fatal alert: ")?;
    let alert = [
        AlertDescription::CertificateRequired,
        AlertDescription::HandshakeFailure,
        AlertDescription::BadCertificate,
        AlertDescription::UnknownCA,
        AlertDescription::CertificateUnknown,
    ]
    .into_iter()
    .find(|a| alert.starts_with(&format!("{a:?}")))?;
    Some(rustls::Error::AlertReceived(alert))
}

fn describe(e: &rustls::Error, settings: &TlsSettings) -> String {
    let s = settings.spelling;
    let roots = match &settings.root_cert {
        Some(file) => format!("the CA file {}", file.display()),
        None => "the system's trust store".to_string(),
    };
    let issuer_fix = format!("set {} to the CA that signed the server's certificate", s.root);
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                format!("TLS refused: the server's certificate was not issued by a CA in {roots} ({settings}); {issuer_fix}")
            }
            CertificateError::NotValidForName => format!(
                "TLS refused: the server's certificate is not for the host in the url ({settings}); connect by a name the certificate carries, or use {}={}",
                s.mode,
                s.name_of(crate::TlsMode::VerifyCa)
            ),
            CertificateError::NotValidForNameContext { expected, presented } => format!(
                "TLS refused: the server's certificate is for {} and not for {:?}, the host in the url ({settings}); connect by a name the certificate carries, or reissue it for this host",
                if presented.is_empty() { "no host name".to_string() } else { presented.iter().map(|p| bare_name(p)).collect::<Vec<_>>().join(", ") },
                expected.to_str()
            ),
            CertificateError::Expired => "TLS refused: the server's certificate has expired; renew it on the server".to_string(),
            CertificateError::ExpiredContext { not_after, .. } => {
                format!("TLS refused: the server's certificate expired on {}; renew it on the server", date(not_after.as_secs()))
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "TLS refused: the server's certificate is not valid yet; check the clocks of this machine and the server".to_string()
            }
            CertificateError::Revoked => "TLS refused: the server's certificate was revoked; install a new one on the server".to_string(),
            CertificateError::BadSignature => format!("TLS refused: the server's certificate does not match the signature of its issuer; {issuer_fix}"),
            other => format!("TLS refused: the server's certificate is not valid ({other:?}); check it against {roots}"),
        },
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired | AlertDescription::HandshakeFailure | AlertDescription::BadCertificate)
            if settings.client_cert.is_none() =>
        {
            format!("TLS refused by the server ({e}); if it asks for a client certificate, set {} and {}", s.cert, s.key)
        }
        rustls::Error::AlertReceived(AlertDescription::UnknownCA | AlertDescription::BadCertificate | AlertDescription::CertificateUnknown) => {
            format!("TLS refused by the server: it does not trust the client certificate {} ({e}); have it issued by the CA the server trusts", settings.client_cert.as_ref().map(|p| p.display().to_string()).unwrap_or_default())
        }
        other => format!("TLS failed: {other}"),
    }
}

/// `localhost` of webpki's `DnsName("localhost")` (or `IpAddress(…)`).
fn bare_name(presented: &str) -> &str {
    match presented.split_once('(') {
        Some((_, inner)) => inner.trim_end_matches(')').trim_matches('"'),
        None => presented,
    }
}

/// A UNIX time as `YYYY-MM-DD` (UTC), by the civil-from-days algorithm.
fn date(secs: u64) -> String {
    let days = (secs / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + (month <= 2) as i64;
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Spelling;

    #[test]
    fn dates_are_civil() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(date(1_609_459_199), "2020-12-31");
    }

    #[test]
    fn an_unknown_issuer_names_the_roots_and_the_fix() {
        let mut settings = TlsSettings::new(Spelling::POSTGRES);
        settings.mode = crate::TlsMode::VerifyFull;
        settings.root_cert = Some("/etc/ca.pem".into());
        let io = std::io::Error::other(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer));
        let said = explain(&io, &settings).unwrap();
        assert!(said.contains("/etc/ca.pem") && said.contains("sslrootcert") && said.contains("sslmode=verify-full"), "{said}");
    }

    #[test]
    fn a_quoted_failure_is_worded_too() {
        let settings = TlsSettings::new(Spelling::MYSQL);
        let io = std::io::Error::other("CodecError { IO error: `invalid peer certificate: certificate expired: verification time 1700000000 (UNIX), but certificate is not valid after 1580515200 (1 seconds ago)' }");
        assert!(explain(&io, &settings).unwrap().contains("expired on 2020-02-01"));
        let io = std::io::Error::other("IO error: `invalid peer certificate: UnknownIssuer'");
        assert!(explain(&io, &settings).unwrap().contains("set ssl-ca"));
        assert_eq!(explain(&std::io::Error::other("connection refused"), &settings), None);
    }
}
