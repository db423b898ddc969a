//! gRPC clients to the agents, one lazily connected channel per node.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use qserv_proto::reload::stamps;
use qserv_proto::tls::{TlsError, TlsFiles};

use qserv_proto::transport::{describe_status, secure_endpoint};
use qserv_proto::v1::agent_client::AgentClient;
use tonic::transport::{Channel, ClientTlsConfig};

/// Deadline of an ordinary agent command; migrations get their own.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

type Stamped = ([Option<SystemTime>; 3], ClientTlsConfig);

pub struct Agents {
    channels: Mutex<HashMap<String, Channel>>,
    files: Option<TlsFiles>,
    tls: Mutex<Option<Stamped>>,
}

impl Agents {
    pub fn new(files: Option<TlsFiles>) -> Result<Agents, TlsError> {
        let tls = match &files {
            Some(f) => Some((stamps(f), f.client()?)),
            None => None,
        };
        Ok(Agents {
            channels: Mutex::new(HashMap::new()),
            files,
            tls: Mutex::new(tls),
        })
    }

    /// The TLS configuration agents are reached with (`None` for plaintext), reloaded when the
    /// certificate files change; the cached channels then go, so new connections use it.
    pub fn tls(&self) -> Option<ClientTlsConfig> {
        let files = self.files.as_ref()?;
        let mut current = self.tls.lock().ok()?;
        let now = stamps(files);
        if current.as_ref().is_none_or(|(then, _)| *then != now) {
            match files.client() {
                Ok(config) => {
                    tracing::info!(cert = %files.cert.display(), "reloaded TLS certificates for agents");
                    *current = Some((now, config));
                    if let Ok(mut channels) = self.channels.lock() {
                        channels.clear();
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "TLS files changed but cannot be loaded; keeping the previous ones")
                }
            }
        }
        current.as_ref().map(|(_, config)| config.clone())
    }

    /// A client for the agent at `url`; connection happens on first use and is re-established
    /// by the channel when it breaks.
    pub fn client(&self, url: &str) -> Result<AgentClient<Channel>, String> {
        let tls = self.tls();
        let mut channels = self
            .channels
            .lock()
            .map_err(|_| "agent channel table poisoned".to_owned())?;
        if let Some(channel) = channels.get(url) {
            return Ok(AgentClient::new(channel.clone()));
        }
        let channel = secure_endpoint(url, tls.as_ref())
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
