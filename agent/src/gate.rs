//! `qserv-agent gate`: blocks until an agent reports mode `normal`, for `ExecStartPre=` lines and
//! init containers that must not start Qserv before the control plane allows it.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use qserv_proto::names::mode_name;
use qserv_proto::transport::{describe_error, describe_status, secure_endpoint};
use qserv_proto::v1::agent_client::AgentClient;
use qserv_proto::v1::{AgentStatusRequest, Mode};
use tokio::time::Instant;

/// Exit code when the gate did not open in time (DESIGN §4).
pub const TIMED_OUT: u8 = 6;

/// Waits for `normal`; Ok with the epoch when open, Err with what was last seen on timeout.
pub async fn wait_open(
    agent: &str,
    timeout: Duration,
    tls: Option<&tonic::transport::ClientTlsConfig>,
) -> Result<u64, String> {
    let endpoint = secure_endpoint(agent, tls).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + timeout;
    let mut backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(1))
        .with_jitter()
        .without_max_times()
        .build();
    let mut last_seen = "not contacted yet".to_owned();
    loop {
        let attempt = async {
            let channel = endpoint
                .connect()
                .await
                .map_err(|e| format!("unreachable: {}", describe_error(&e)))?;
            let mut stream = AgentClient::new(channel)
                .watch_status(AgentStatusRequest {})
                .await
                .map_err(|s| format!("unreachable: {}", describe_status(&s)))?
                .into_inner();
            loop {
                match stream.message().await {
                    Ok(Some(status)) => {
                        let mode = Mode::try_from(status.mode).unwrap_or(Mode::Unspecified);
                        if mode == Mode::Normal {
                            return Ok(status.epoch);
                        }
                        last_seen = format!("mode {} (epoch {})", mode_name(mode), status.epoch);
                    }
                    Ok(None) => return Err("the agent closed its status stream".to_owned()),
                    Err(s) => return Err(format!("stream lost: {}", describe_status(&s))),
                }
            }
        };
        match tokio::time::timeout_at(deadline, attempt).await {
            Ok(Ok(epoch)) => return Ok(epoch),
            Ok(Err(error)) => last_seen = error,
            Err(_) => return Err(last_seen),
        }
        let delay = backoff.next().unwrap_or(Duration::from_secs(1));
        if Instant::now() + delay >= deadline {
            return Err(last_seen);
        }
        tokio::time::sleep(delay).await;
    }
}
