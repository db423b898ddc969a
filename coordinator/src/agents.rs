//! gRPC clients to the agents, one lazily connected channel per node.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use qserv_proto::transport::{describe_status, secure_endpoint};
use qserv_proto::v1::agent_client::AgentClient;
use tonic::transport::{Channel, ClientTlsConfig};

/// Deadline of an ordinary agent command; migrations get their own.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Agents {
    channels: Mutex<HashMap<String, Channel>>,
    tls: Option<ClientTlsConfig>,
}

impl Agents {
    pub fn new(tls: Option<ClientTlsConfig>) -> Agents {
        Agents {
            channels: Mutex::new(HashMap::new()),
            tls,
        }
    }

    /// The TLS configuration agents are reached with; `None` for plaintext.
    pub fn tls(&self) -> Option<&ClientTlsConfig> {
        self.tls.as_ref()
    }

    /// A client for the agent at `url`; connection happens on first use and is re-established
    /// by the channel when it breaks.
    pub fn client(&self, url: &str) -> Result<AgentClient<Channel>, String> {
        let mut channels = self
            .channels
            .lock()
            .map_err(|_| "agent channel table poisoned".to_owned())?;
        if let Some(channel) = channels.get(url) {
            return Ok(AgentClient::new(channel.clone()));
        }
        let channel = secure_endpoint(url, self.tls.as_ref())
            .map_err(|e| e.to_string())?
            .connect_lazy();
        channels.insert(url.to_owned(), channel.clone());
        Ok(AgentClient::new(channel))
    }
}

/// A request with a deadline.
pub fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

pub fn status_text(status: &tonic::Status) -> String {
    describe_status(status)
}
