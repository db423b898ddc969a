//! Mutual TLS with rustls (ring): the files every binary is given, the server and client
//! configurations built from them, and the identity of the peer at the other end.
//!
//! Identities follow the Kubernetes convention: the certificate's subject CN is the identity,
//! its O (organization) the role: `coordinator`, `agent`, `operator`, `viewer`.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Identity};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS needs all of --tls-cert, --tls-key and --tls-ca; {0} is missing")]
    Incomplete(&'static str),
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The certificate, key and CA a binary presents and trusts.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

impl TlsFiles {
    /// All three flags, or none (plaintext).
    pub fn from_flags(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        ca: Option<PathBuf>,
    ) -> Result<Option<TlsFiles>, TlsError> {
        match (cert, key, ca) {
            (None, None, None) => Ok(None),
            (Some(cert), Some(key), Some(ca)) => Ok(Some(TlsFiles { cert, key, ca })),
            (None, _, _) => Err(TlsError::Incomplete("--tls-cert")),
            (_, None, _) => Err(TlsError::Incomplete("--tls-key")),
            (_, _, None) => Err(TlsError::Incomplete("--tls-ca")),
        }
    }

    fn identity(&self) -> Result<Identity, TlsError> {
        Ok(Identity::from_pem(
            read("certificate", &self.cert)?,
            read("key", &self.key)?,
        ))
    }

    fn ca(&self) -> Result<Certificate, TlsError> {
        Ok(Certificate::from_pem(read("CA certificate", &self.ca)?))
    }

    /// A client that trusts the CA but presents no certificate of its own.
    pub fn ca_only(ca: &Path) -> Result<ClientTlsConfig, TlsError> {
        Ok(ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read("CA certificate", ca)?)))
    }

    /// A client that presents its certificate and trusts only the CA.
    pub fn client(&self) -> Result<ClientTlsConfig, TlsError> {
        Ok(ClientTlsConfig::new()
            .ca_certificate(self.ca()?)
            .identity(self.identity()?))
    }
}

/// Who is at the other end of a TLS connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub identity: String,
    pub role: crate::certs::CertRole,
}

/// The peer's identity from its certificate (CN) and role (O); `None` without TLS, and the
/// problem when the certificate is not one of the control plane's (no CN, several O, v1).
pub fn peer<T>(request: &tonic::Request<T>) -> Option<Result<Peer, crate::certs::CertProblem>> {
    let certs = request.peer_certs()?;
    let first = certs.first()?;
    Some(crate::certs::facts(first.as_ref()).map(|facts| Peer {
        identity: facts.identity,
        role: facts.role,
    }))
}
