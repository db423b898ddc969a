//! `qserv-agent gate`: blocks until an agent reports mode `normal` (and, with `--service`, until
//! that service's turn has come: the coordinator released it), for `ExecStartPre=` lines and
//! containers that must not start Qserv before the control plane allows it.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use qserv_model::{AgentState, Epoch, Mode, ServiceName};
use qserv_proto::transport::{describe_error, describe_status, secure_endpoint};
use qserv_proto::v1::AgentStatusRequest;
use qserv_proto::v1::agent_client::AgentClient;
use tokio::time::Instant;

/// Exit code when the gate did not open in time (DESIGN §4).
pub const TIMED_OUT: u8 = 6;

/// Whether the gate is open on this state: the epoch it opened under, or what it waits for.
pub fn open(state: &AgentState, service: Option<&ServiceName>) -> Result<Epoch, String> {
    let mode = Mode::name_or_unknown(state.mode);
    // Normal without an epoch is not one a coordinator gave.
    let (Some(Mode::Normal), Some(epoch)) = (state.mode, state.epoch) else {
        return Err(format!(
            "mode {mode} (epoch {})",
            Epoch::to_wire(state.epoch)
        ));
    };
    let Some(service) = service else {
        return Ok(epoch);
    };
    if !state.service_states.iter().any(|s| &s.name == service) {
        return Err(format!(
            "the agent defines no service '{service}': add it to the agent's [[services]]"
        ));
    }
    if state.released.allows(service) {
        Ok(epoch)
    } else {
        Err(format!(
            "mode normal; waiting until the services that '{service}' comes after are ready"
        ))
    }
}

/// Waits until [`open`]; Ok with the epoch when open, Err with what was last seen on timeout.
pub async fn wait_open(
    agent: &str,
    service: Option<&ServiceName>,
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
                        match open(&qserv_proto::model::agent_state(&status), service) {
                            Ok(epoch) => return Ok(epoch),
                            Err(waiting) => last_seen = waiting,
                        }
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

#[cfg(test)]
mod tests {
    use qserv_model::{Release, ServiceState, ServiceStatus};

    use super::*;

    fn name(n: &str) -> ServiceName {
        ServiceName::parse(n).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_service_gate_opens_in_normal_once_the_service_is_released() {
        let proxy = name("proxy");
        let mut state = AgentState {
            mode: Some(Mode::Maintenance),
            epoch: Epoch::from_wire(3),
            service_states: vec![ServiceStatus::new(proxy.clone(), ServiceState::Stopped, 0)],
            released: Release::none(),
            ..AgentState::default()
        };
        assert!(open(&state, None).is_err_and(|w| w.contains("maintenance")));
        state.mode = Some(Mode::Normal);
        assert_eq!(
            open(&state, None),
            Ok(Epoch::from_wire(3).unwrap_or_else(|| panic!()))
        );
        assert!(open(&state, Some(&proxy)).is_err_and(|w| w.contains("waiting until")));
        state.released = Release::Only([proxy.clone()].into());
        assert!(open(&state, Some(&proxy)).is_ok());
        let other = open(&state, Some(&name("czar-http")));
        assert!(other.is_err_and(|w| w.contains("defines no service 'czar-http'")));
        state.epoch = None;
        assert!(open(&state, Some(&proxy)).is_err());
    }
}
