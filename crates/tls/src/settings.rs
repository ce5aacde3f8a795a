//! The TLS modes, and how each server kind's clients spell them.

use std::fmt;
use std::path::PathBuf;

/// How far a session trusts the server, from libpq's `sslmode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it; its certificate is not checked.
    #[default]
    Prefer,
    /// TLS or no session; the certificate is not checked (unless roots are given, as libpq does).
    Require,
    /// TLS, and a certificate issued by a trusted CA, for any host name.
    VerifyCa,
    /// TLS, a certificate issued by a trusted CA, and for the host the URL names.
    VerifyFull,
}

impl TlsMode {
    /// Whether sessions under this mode use TLS at all.
    pub fn uses_tls(self) -> bool {
        self != TlsMode::Disable
    }
}

/// The names one server kind's clients give the settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spelling {
    pub mode: &'static str,
    pub root: &'static str,
    pub cert: &'static str,
    pub key: &'static str,
    /// The modes in order: disable, prefer, require, verify-ca, verify-full.
    pub modes: [&'static str; 5],
}

impl Spelling {
    pub const POSTGRES: Spelling = Spelling {
        mode: "sslmode",
        root: "sslrootcert",
        cert: "sslcert",
        key: "sslkey",
        modes: ["disable", "prefer", "require", "verify-ca", "verify-full"],
    };
    pub const MYSQL: Spelling = Spelling {
        mode: "ssl-mode",
        root: "ssl-ca",
        cert: "ssl-cert",
        key: "ssl-key",
        modes: ["DISABLED", "PREFERRED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY"],
    };

    pub fn name_of(&self, mode: TlsMode) -> &'static str {
        self.modes[mode as usize]
    }

    pub fn parse_mode(&self, value: &str) -> Option<TlsMode> {
        const ALL: [TlsMode; 5] = [TlsMode::Disable, TlsMode::Prefer, TlsMode::Require, TlsMode::VerifyCa, TlsMode::VerifyFull];
        self.modes.iter().position(|m| m.eq_ignore_ascii_case(value)).map(|i| ALL[i])
    }
}

/// One connection's TLS settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: TlsMode,
    /// The CA certificates (PEM) that may issue the server's certificate; the system's when none.
    pub root_cert: Option<PathBuf>,
    /// A client certificate (PEM) and its private key, for servers that ask for one.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub spelling: Spelling,
}

impl TlsSettings {
    pub fn new(spelling: Spelling) -> Self {
        TlsSettings { mode: TlsMode::default(), root_cert: None, client_cert: None, client_key: None, spelling }
    }

    /// Whether the server's certificate must chain to a trusted root. As in
    /// libpq and MySQL, `require` with a root file given verifies the issuer.
    pub fn verifies_issuer(&self) -> bool {
        matches!(self.mode, TlsMode::VerifyCa | TlsMode::VerifyFull) || (self.mode == TlsMode::Require && self.root_cert.is_some())
    }

    pub fn verifies_name(&self) -> bool {
        self.mode == TlsMode::VerifyFull
    }

    /// Whether a session without TLS is refused.
    pub fn requires_tls(&self) -> bool {
        !matches!(self.mode, TlsMode::Disable | TlsMode::Prefer)
    }

    /// What an encrypted session under these settings has proven of the server.
    pub fn verified(&self) -> &'static str {
        if self.verifies_name() {
            "certificate and host name verified"
        } else if self.verifies_issuer() {
            "certificate verified, host name not checked"
        } else {
            "certificate not verified"
        }
    }
}

impl fmt::Display for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.spelling.mode, self.spelling.name_of(self.mode))
    }
}
