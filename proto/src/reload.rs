//! TLS that follows its files: a rotated certificate, key or CA takes effect for the next
//! connection, without restarting the process. Each new connection stats the three files (cheap)
//! and rebuilds the configuration when one changed.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use crate::tls::{TlsError, TlsFiles};

fn bad(path: &std::path::Path, what: &'static str, message: impl ToString) -> TlsError {
    TlsError::Read {
        what,
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidData, message.to_string()),
    }
}

fn read(what: &'static str, path: &std::path::Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

/// A rustls server configuration that requires a client certificate signed by the CA.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read("certificate", &files.cert)?)
            .collect::<Result<_, _>>()
            .map_err(|e| bad(&files.cert, "certificate", e))?;
    let key = PrivateKeyDer::from_pem_slice(&read("key", &files.key)?)
        .map_err(|e| bad(&files.key, "key", e))?;
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&read("CA certificate", &files.ca)?) {
        let ca = ca.map_err(|e| bad(&files.ca, "CA certificate", e))?;
        roots
            .add(ca)
            .map_err(|e| bad(&files.ca, "CA certificate", e))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| bad(&files.ca, "CA certificate", e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&files.cert, "certificate", e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| bad(&files.cert, "certificate", e))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The modification times of the three files; `None` where a file cannot be read right now.
pub fn stamps(files: &TlsFiles) -> [Option<SystemTime>; 3] {
    [&files.cert, &files.key, &files.ca]
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
}

/// The current server configuration, rebuilt when the files change. A half-written rotation
/// (a file that does not parse yet) keeps the last good configuration.
pub struct ReloadingServer {
    files: TlsFiles,
    current: Mutex<([Option<SystemTime>; 3], Arc<rustls::ServerConfig>)>,
}

impl ReloadingServer {
    pub fn new(files: TlsFiles) -> Result<ReloadingServer, TlsError> {
        let config = server_config(&files)?;
        Ok(ReloadingServer {
            current: Mutex::new((stamps(&files), config)),
            files,
        })
    }

    pub fn config(&self) -> Option<Arc<rustls::ServerConfig>> {
        let mut current = self.current.lock().ok()?;
        let now = stamps(&self.files);
        if now != current.0 {
            match server_config(&self.files) {
                Ok(config) => {
                    tracing::info!(cert = %self.files.cert.display(), "reloaded TLS certificates");
                    *current = (now, config);
                }
                Err(err) => {
                    tracing::warn!(error = %err, "TLS files changed but cannot be loaded; keeping the previous ones")
                }
            }
        }
        Some(current.1.clone())
    }
}

/// Connections that completed a TLS handshake (off the accept loop, so a slow or hostile
/// client cannot hold up the others, within [`crate::incoming::HANDSHAKE_TIMEOUT`]); failed
/// handshakes are logged and dropped.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<ReloadingServer>,
    limits: &crate::limits::ConnectionLimits,
) -> ReceiverStream<Result<crate::incoming::Counted<TlsStream<TcpStream>>, io::Error>> {
    crate::incoming::accept(
        listener,
        limits.grpc,
        limits.counters.clone(),
        move |stream, peer| {
            let config = tls.config();
            async move {
                let handshake = TlsAcceptor::from(config?).accept(stream);
                match tokio::time::timeout(crate::incoming::HANDSHAKE_TIMEOUT, handshake).await {
                    Ok(Ok(stream)) => Some(stream),
                    Ok(Err(err)) => {
                        tracing::debug!(%peer, error = %err, "TLS handshake failed");
                        None
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        None
                    }
                }
            }
        },
    )
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("gRPC server failed: {0}")]
    Server(#[from] tonic::transport::Error),
}

/// Serves `router` on `listener` until `shutdown`: mutual TLS from `tls` (reloaded as its files
/// change) or plaintext, within `limits`. Tells systemd when serving starts and when it ends.
pub async fn serve(
    router: tonic::transport::server::Router,
    listener: TcpListener,
    tls: Option<&TlsFiles>,
    limits: &crate::limits::ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    let tls = tls
        .map(|files| ReloadingServer::new(files.clone()).map(Arc::new))
        .transpose()?;
    crate::systemd::ready("serving");
    let served = match tls {
        Some(tls) => {
            router
                .serve_with_incoming_shutdown(incoming(listener, tls, limits), shutdown)
                .await
        }
        None => {
            router
                .serve_with_incoming_shutdown(
                    crate::incoming::plaintext(listener, limits.grpc, limits.counters.clone()),
                    shutdown,
                )
                .await
        }
    };
    crate::systemd::stopping();
    Ok(served?)
}
