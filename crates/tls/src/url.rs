//! Takes the TLS settings out of a database URL's query, leaving the rest for
//! the driver: `postgres://h/db?sslmode=verify-full&sslrootcert=/etc/ca.pem`.

use crate::{Spelling, TlsError, TlsSettings};
use std::path::PathBuf;

/// A PostgreSQL URL's `sslmode`, `sslrootcert`, `sslcert` and `sslkey`.
pub fn split_postgres(url: &str) -> Result<(String, TlsSettings), TlsError> {
    split(url, Spelling::POSTGRES, &[])
}

/// A MySQL/MariaDB URL's `ssl-mode`, `ssl-ca`, `ssl-cert` and `ssl-key`
/// (`_` for `-` too). The driver's own TLS switches are refused, so that
/// one setting decides.
pub fn split_mysql(url: &str) -> Result<(String, TlsSettings), TlsError> {
    const DRIVERS_OWN: &[&str] = &[
        "require_ssl",
        "verify_ca",
        "verify_identity",
        "built_in_roots",
        "root_cert_path",
        "cert_chain_path",
        "priv_key_path",
        "pkcs12_path",
        "pkcs12_password",
    ];
    split(url, Spelling::MYSQL, DRIVERS_OWN)
}

fn split(url: &str, spelling: Spelling, refused: &[&str]) -> Result<(String, TlsSettings), TlsError> {
    let mut settings = TlsSettings::new(spelling);
    let Some((base, query)) = url.split_once('?') else { return Ok((url.to_string(), settings)) };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = key.replace('_', "-");
        let value = decode(value);
        if name == spelling.mode.replace('_', "-") {
            settings.mode = spelling.parse_mode(&value).ok_or_else(|| TlsError::BadMode {
                param: spelling.mode,
                value: value.clone(),
                expected: if spelling == Spelling::POSTGRES {
                    "disable, prefer, require, verify-ca, verify-full"
                } else {
                    "DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY"
                },
            })?;
        } else if name == spelling.root {
            settings.root_cert = Some(PathBuf::from(value));
        } else if name == spelling.cert {
            settings.client_cert = Some(PathBuf::from(value));
        } else if name == spelling.key {
            settings.client_key = Some(PathBuf::from(value));
        } else if refused.contains(&key) {
            return Err(TlsError::Unsupported { param: key.to_string(), instead: "ssl-mode, ssl-ca, ssl-cert and ssl-key" });
        } else {
            kept.push(pair);
        }
    }
    match (&settings.client_cert, &settings.client_key) {
        (Some(_), None) => return Err(TlsError::HalfIdentity(spelling.cert, spelling.key)),
        (None, Some(_)) => return Err(TlsError::HalfIdentity(spelling.key, spelling.cert)),
        _ => {}
    }
    let rest = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    Ok((rest, settings))
}

/// Percent-decoding of a query value (paths may hold `%2F` or spaces).
fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TlsMode;

    #[test]
    fn postgres_settings_leave_the_url_and_the_rest_stays() {
        let (rest, s) =
            split_postgres("postgres://u@h:5432/db?sslmode=verify-full&connect_timeout=5&sslrootcert=/etc/my%20ca.pem").unwrap();
        assert_eq!(rest, "postgres://u@h:5432/db?connect_timeout=5");
        assert_eq!(s.mode, TlsMode::VerifyFull);
        assert_eq!(s.root_cert, Some(PathBuf::from("/etc/my ca.pem")));
        let (rest, s) = split_postgres("postgres://u@h/db").unwrap();
        assert_eq!((rest.as_str(), s.mode), ("postgres://u@h/db", TlsMode::Prefer));
    }

    #[test]
    fn mysql_spells_modes_its_own_way() {
        let (rest, s) = split_mysql("mysql://root@h/db?ssl-mode=verify_identity&ssl_ca=/ca.pem&ssl-cert=/c.pem&ssl-key=/k.pem").unwrap();
        assert_eq!(rest, "mysql://root@h/db");
        assert_eq!(s.mode, TlsMode::VerifyFull);
        assert!(s.verifies_name());
        assert_eq!(s.to_string(), "ssl-mode=VERIFY_IDENTITY");
        assert_eq!(split_mysql("mysql://h/db?ssl-mode=REQUIRED").unwrap().1.mode, TlsMode::Require);
    }

    #[test]
    fn bad_settings_say_what_to_write() {
        let e = split_postgres("postgres://h/db?sslmode=verify_full").unwrap_err().to_string();
        assert!(e.contains("sslmode=\"verify_full\"") && e.contains("verify-full"), "{e}");
        let e = split_mysql("mysql://h/db?require_ssl=true").unwrap_err().to_string();
        assert!(e.contains("require_ssl") && e.contains("ssl-mode"), "{e}");
        let e = split_postgres("postgres://h/db?sslcert=/c.pem").unwrap_err().to_string();
        assert!(e.contains("sslcert needs sslkey"), "{e}");
    }

    #[test]
    fn require_with_roots_verifies_the_issuer_as_libpq_does() {
        let (_, s) = split_postgres("postgres://h/db?sslmode=require&sslrootcert=/ca.pem").unwrap();
        assert!(s.verifies_issuer() && !s.verifies_name());
        let (_, s) = split_postgres("postgres://h/db?sslmode=require").unwrap();
        assert!(!s.verifies_issuer() && s.requires_tls());
    }
}
