//! The connection to the coordinator.

use std::time::Duration;

use qserv_proto::transport::{describe_error, endpoint};
use qserv_proto::v1::coordinator_client::CoordinatorClient;
use tonic::transport::Channel;

use crate::exit::{CliError, Exit, unreachable};

/// Connects to the coordinator; an address that does not answer is exit 5, naming the address.
pub async fn connect(url: &str) -> Result<CoordinatorClient<Channel>, CliError> {
    let endpoint = endpoint(url)
        .map_err(|e| CliError::new(Exit::Usage, e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30));
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| unreachable(url, &describe_error(&e)))?;
    Ok(CoordinatorClient::new(channel))
}
