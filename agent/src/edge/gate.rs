//! `qserv-agent gate`: blocks until an agent reports mode `normal`, for `ExecStartPre=` lines and
//! init containers that must not start Qserv before the control plane allows it.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use qserv_model::{Epoch, Mode};
use qserv_proto::transport::{describe_error, describe_status, secure_endpoint};
use qserv_proto::v1::AgentStatusRequest;
use qserv_proto::v1::agent_client::AgentClient;
use tokio::time::Instant;

/// Exit code when the gate did not open in time (DESIGN §4).
pub const TIMED_OUT: u8 = 6;

/// Waits for `normal`; Ok with the epoch when open, Err with what was last seen on timeout.
pub async fn wait_open(
    agent: &str,
    timeout: Duration,
    tls: Option<&tonic::transport::ClientTlsConfig>,
) -> Result<Epoch, String> {
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
                        let state = qserv_proto::model::agent_state(&status);
                        // Normal without an epoch is not one a coordinator gave.
                        if let (Some(Mode::Normal), Some(epoch)) = (state.mode, state.epoch) {
                            return Ok(epoch);
                        }
                        last_seen = format!(
                            "mode {} (epoch {})",
                            Mode::name_or_unknown(state.mode),
                            Epoch::to_wire(state.epoch)
                        );
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
