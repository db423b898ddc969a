//! The connection to the coordinator.

use std::time::Duration;

use std::path::PathBuf;
use std::sync::OnceLock;

use qserv_proto::tls::TlsFiles;
use qserv_proto::transport::{describe_error, secure_endpoint};
use qserv_proto::v1::coordinator_client::CoordinatorClient;
use tonic::transport::{Channel, ClientTlsConfig};

use crate::exit::{CliError, Exit, unreachable};

static TLS: OnceLock<Option<ClientTlsConfig>> = OnceLock::new();

/// Sets the TLS configuration every connection of this process uses (from the global flags).
/// A CA alone verifies the coordinator without presenting a client certificate; a coordinator
/// that requires one then refuses the connection, and the error says so.
pub fn configure_tls(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
) -> Result<(), CliError> {
    let usage = |e: qserv_proto::tls::TlsError| CliError::new(Exit::Usage, e.to_string());
    let config = match (cert, key, ca) {
        (None, None, Some(ca)) => Some(TlsFiles::ca_only(&ca).map_err(usage)?),
        (cert, key, ca) => TlsFiles::from_flags(cert, key, ca)
            .map_err(usage)?
            .map(|f| f.client())
            .transpose()
            .map_err(usage)?,
    };
    let _ = TLS.set(config);
    Ok(())
}

/// Connects to the coordinator at `urls`: one address, or a comma-separated list of the
/// coordinators sharing a store, tried in order. When none answers it is exit 5, naming each.
pub async fn connect(urls: &str) -> Result<CoordinatorClient<Channel>, CliError> {
    let mut failures = Vec::new();
    for url in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        match connect_one(url).await {
            Ok(client) => return Ok(client),
            Err(err) if err.exit == Exit::Unreachable => failures.push(err),
            Err(err) => return Err(err),
        }
    }
    match failures.len() {
        0 => Err(CliError::new(
            Exit::Usage,
            "no coordinator address given: pass --coordinator URL or set QSERV_COORDINATOR",
        )),
        1 => Err(failures.remove(0)),
        _ => Err(CliError::new(
            Exit::Unreachable,
            failures
                .iter()
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join("; "),
        )),
    }
}

async fn connect_one(url: &str) -> Result<CoordinatorClient<Channel>, CliError> {
    let tls = TLS.get().and_then(Option::as_ref);
    let endpoint = secure_endpoint(url, tls)
        .map_err(|e| CliError::new(Exit::Usage, e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30));
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| unreachable(url, &describe_error(&e)))?;
    Ok(CoordinatorClient::new(channel))
}
