//! The rustls configuration that enforces a connection's [`TlsSettings`].

use crate::{TlsError, TlsSettings};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The client configuration for one connection's settings (not for `disable`,
/// which has no TLS; it gets the same as `prefer`).
pub fn client_config(settings: &TlsSettings) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let verifier: Arc<dyn ServerCertVerifier> = if settings.verifies_issuer() {
        let roots = Arc::new(roots(settings)?);
        let webpki =
            WebPkiServerVerifier::builder_with_provider(roots, provider).build().map_err(|e| rustls::Error::General(e.to_string()))?;
        if settings.verifies_name() {
            webpki
        } else {
            Arc::new(IssuerOnly(webpki))
        }
    } else {
        Arc::new(EncryptOnly(provider))
    };
    let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
    let config = match (&settings.client_cert, &settings.client_key) {
        (Some(cert), Some(key)) => {
            let chain = certificates(cert, "the client certificate")?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error("the client key", key, e))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| TlsError::ClientIdentity { cert: cert.clone(), reason: e.to_string() })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The system's CA bundle: `SSL_CERT_FILE`, else where the usual
/// distributions keep it (the paths OpenSSL's own probe looks at).
pub fn system_roots_file() -> Option<PathBuf> {
    if let Some(file) = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from) {
        return Some(file);
    }
    [
        "/etc/ssl/certs/ca-certificates.crt",                // Debian, Ubuntu, Alpine, Arch
        "/etc/pki/tls/certs/ca-bundle.crt",                  // Fedora, RHEL
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // RHEL 7+
        "/etc/ssl/ca-bundle.pem",                            // openSUSE
        "/etc/ssl/cert.pem",                                 // macOS, BSDs
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

fn roots(settings: &TlsSettings) -> Result<RootCertStore, TlsError> {
    let no_roots = || TlsError::NoRoots { mode: settings.to_string(), root_param: settings.spelling.root };
    let file = settings.root_cert.clone().or_else(system_roots_file).ok_or_else(no_roots)?;
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(certificates(&file, "the CA file")?);
    if store.is_empty() {
        return Err(no_roots());
    }
    Ok(store)
}

fn certificates(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs =
        CertificateDer::pem_file_iter(path).and_then(|iter| iter.collect::<Result<Vec<_>, _>>()).map_err(|e| file_error(what, path, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { what, path: path.to_path_buf() });
    }
    Ok(certs)
}

fn file_error(what: &'static str, path: &Path, e: rustls::pki_types::pem::Error) -> TlsError {
    let reason = match e {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        rustls::pki_types::pem::Error::NoItemsFound => "it holds no PEM item of that kind".to_string(),
        other => format!("{other:?}"),
    };
    TlsError::File { what, path: path.to_path_buf(), reason }
}

/// `verify-ca`: the chain, dates and signatures are checked, the name is not.
#[derive(Debug)]
struct IssuerOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for IssuerOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(m, c, d)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(m, c, d)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require`: the certificate is taken as it comes (libpq's
/// behaviour), but the handshake's signatures made with it are checked, so
/// the session is encrypted end to end with whoever holds its key.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
