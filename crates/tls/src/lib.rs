//! TLS for dualsync's connections to database servers, with rustls.
//!
//! One set of modes for every server kind, spelled as each kind's own client
//! spells them in its URL (libpq's `sslmode=verify-full&sslrootcert=…`,
//! MySQL's `ssl-mode=VERIFY_IDENTITY&ssl-ca=…`). This crate takes them out
//! of the URL ([`url`]), builds the rustls configuration that enforces them
//! ([`client`]), and says what a refused certificate means ([`explain`]).

mod client;
mod explain;
mod exposure;
mod settings;
pub mod url;

pub use client::{client_config, system_roots_file};
pub use explain::explain;
pub use exposure::{exposure, is_loopback, Exposure};
pub use settings::{Spelling, TlsMode, TlsSettings};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{param}={value:?} is not a TLS mode; use one of {expected}")]
    BadMode { param: &'static str, value: String, expected: &'static str },
    #[error("{param} is not a setting dualsync takes; use {instead}")]
    Unsupported { param: String, instead: &'static str },
    #[error("{what} {} cannot be read: {reason}; fix the path in the url", path.display())]
    File { what: &'static str, path: PathBuf, reason: String },
    #[error("{what} {} holds no certificate in PEM format", path.display())]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error("the client certificate {} cannot be used: {reason}; it must be an X.509 v3 certificate in PEM, with its private key", cert.display())]
    ClientIdentity { cert: PathBuf, reason: String },
    #[error("{0} needs {1} too: a client certificate goes with its private key")]
    HalfIdentity(&'static str, &'static str),
    #[error("{mode} verifies the server's certificate, and no trust roots were found: set {root_param} to the CA that signed it")]
    NoRoots { mode: String, root_param: &'static str },
    #[error("the TLS settings were refused: {0}")]
    Rustls(#[from] rustls::Error),
}
