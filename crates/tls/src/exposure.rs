//! Whether a session can be read or changed by a machine between dualsync
//! and a server: `check` warns of it for every server beyond loopback.

use crate::{TlsMode, TlsSettings};

/// What a session to a server beyond loopback risks, and the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exposure {
    pub message: String,
    pub hint: String,
}

/// Whether `host` is this machine: `localhost`, a loopback address, or a
/// Unix socket (a path).
pub fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost") || bare.starts_with('/') || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The risk of a session to `host` under `settings` (`encrypted`: whether the
/// server took TLS), when `host` is beyond loopback and the server is not
/// fully verified; None otherwise.
pub fn exposure(settings: &TlsSettings, host: &str, encrypted: bool) -> Option<Exposure> {
    if is_loopback(host) || (encrypted && settings.verifies_name()) {
        return None;
    }
    let s = settings.spelling;
    let hint = format!("use {}={} with {} set to the CA that signed its certificate", s.mode, s.name_of(TlsMode::VerifyFull), s.root);
    let message = if encrypted {
        format!(
            "the connection to {host} is encrypted, but the server is not proven to be {host} ({}; {settings}): a machine in between could pose as it",
            settings.verified()
        )
    } else {
        format!("the connection to {host} is not encrypted ({settings}): anyone on the network in between can read and change what dualsync reads and writes")
    };
    Some(Exposure { message, hint })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Spelling;

    #[test]
    fn only_servers_beyond_loopback_without_full_verification_are_exposed() {
        for host in ["localhost", "127.0.0.1", "::1", "[::1]", "/var/run/postgresql"] {
            assert!(is_loopback(host), "{host}");
        }
        let mut s = TlsSettings::new(Spelling::POSTGRES);
        assert_eq!(exposure(&s, "127.0.0.1", false), None);
        let plain = exposure(&s, "db.example", false).unwrap();
        assert!(plain.message.contains("db.example is not encrypted (sslmode=prefer)"), "{}", plain.message);
        assert_eq!(plain.hint, "use sslmode=verify-full with sslrootcert set to the CA that signed its certificate");
        s.mode = TlsMode::Require;
        assert!(exposure(&s, "10.0.0.5", true).unwrap().message.contains("certificate not verified; sslmode=require"));
        s.mode = TlsMode::VerifyFull;
        assert_eq!(exposure(&s, "db.example", true), None);
        let my = TlsSettings::new(Spelling::MYSQL);
        assert!(exposure(&my, "db.example", false).unwrap().hint.starts_with("use ssl-mode=VERIFY_IDENTITY with ssl-ca"));
    }
}
