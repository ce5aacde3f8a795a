//! HTTPS for a listener beyond loopback: a certificate chain and key from PEM
//! files, rustls, and hyper's HTTP/1 connections over it, each told its
//! peer's address (for the failed-token limit) and drained on shutdown.

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("--tls-cert {path}: {message}; give a PEM file with the server's certificate chain, its own certificate first")]
    Cert { path: String, message: String },
    #[error("--tls-key {path}: {message}; give a PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1)")]
    Key { path: String, message: String },
    #[error("the certificate and key do not go together: {0}")]
    Config(String),
}

/// Reads and checks the files: a bad file stops `serve` before it listens.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let shown = |p: &Path| p.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| TlsError::Cert { path: shown(&files.cert), message: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::Cert { path: shown(&files.cert), message: "no certificate in it".into() });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::Key { path: shown(&files.key), message: e.to_string() })?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `app` over TLS until `stop`; then answers what is in flight (for up to 10 s).
pub async fn serve(listener: TcpListener, acceptor: TlsAcceptor, app: Router, stop: &'static AtomicBool) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let stopping = crate::until(stop);
    tokio::pin!(stopping);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut stopping => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors, say: wait a little rather than spin.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let app = app.clone().layer(axum::Extension(ConnectInfo(peer)));
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return tracing::info!(%peer, error = %e, "TLS handshake refused"),
                Err(_) => return tracing::info!(%peer, "TLS handshake timed out"),
            };
            let connection = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), TowerToHyperService::new(app));
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
    Ok(())
}
