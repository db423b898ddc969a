//! One task per agent: holds a `WatchStatus` stream and folds what arrives into the snapshot.
//!
//! A broken stream (agent killed, connection reset, keepalive ping unanswered) marks the agent
//! unreachable at once; reconnection backs off exponentially with jitter so a fleet of restarting
//! agents is not hammered in lockstep. An agent that holds an older epoch than the instance (it
//! was down or partitioned when the mode changed) is told the current mode.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use qserv_proto::transport::{describe_error, describe_status, secure_endpoint};
use qserv_proto::v1::agent_client::AgentClient;
use qserv_proto::v1::{AgentStatus, AgentStatusRequest, Mode, SetModeRequest};
use tonic::transport::{Channel, Endpoint};

use crate::agents::{COMMAND_TIMEOUT, request};
use crate::core::Core;
use crate::snapshot::{apply_agent_status, apply_unreachable};

/// How long opening a status stream may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(3);

fn reconnect_backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(1))
        .with_jitter()
        .without_max_times()
        .build()
}

/// Watches one agent until the task is aborted.
pub async fn run(name: String, agent: String, core: Arc<Core>) {
    let mut backoff = reconnect_backoff();
    let mut attempt: u32 = 0;
    loop {
        // Built for each connection so that rotated client certificates are picked up.
        let (error, received) = match secure_endpoint(&agent, core.agents.tls().as_ref()) {
            Ok(endpoint) => watch_once(&endpoint, &name, &core).await,
            Err(err) => (err.to_string(), false),
        };
        if received {
            backoff = reconnect_backoff();
            attempt = 0;
            tracing::warn!(node = %name, error = %error, "lost the agent's status stream");
        }
        attempt = attempt.saturating_add(1);
        core.metrics.agent_reconnects.inc();
        core.snapshot
            .send_if_modified(|s| apply_unreachable(s, &name, &error));
        let delay = backoff.next().unwrap_or(Duration::from_secs(1));
        if attempt == 1 || attempt.is_power_of_two() {
            tracing::info!(node = %name, attempt, next_try_ms = delay.as_millis() as u64, error = %error, "agent unreachable");
        }
        tokio::time::sleep(delay).await;
    }
}

/// Connects and follows the stream until it breaks; returns why it broke and whether any status
/// arrived.
async fn watch_once(endpoint: &Endpoint, name: &str, core: &Arc<Core>) -> (String, bool) {
    // A frozen host accepts TCP connections in its kernel but never completes the HTTP/2
    // handshake; the bound keeps such a node from holding its monitor forever.
    let opened = tokio::time::timeout(OPEN_TIMEOUT, async {
        let channel = endpoint.connect().await.map_err(|e| describe_error(&e))?;
        let stream = AgentClient::new(channel.clone())
            .watch_status(AgentStatusRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| describe_status(&s))?;
        Ok::<_, String>((channel, stream))
    })
    .await;
    let (channel, mut stream) = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(error)) => return (error, false),
        Err(_) => return (format!("no answer within {OPEN_TIMEOUT:?}"), false),
    };
    let mut received = false;
    let mut pushed_epoch = 0;
    loop {
        match stream.message().await {
            Ok(Some(agent)) => {
                if !received {
                    tracing::info!(node = %name, agent_version = %agent.agent_version, "agent connected");
                }
                received = true;
                let now = crate::now_ms();
                core.snapshot
                    .send_if_modified(|s| apply_agent_status(s, name, &agent, &core.targets, now));
                pushed_epoch = push_mode_if_stale(name, &agent, core, &channel, pushed_epoch);
            }
            Ok(None) => return ("the agent closed its status stream".to_owned(), received),
            Err(status) => return (describe_status(&status), received),
        }
    }
}

/// Tells an agent the instance's mode when it holds an older epoch; returns the epoch pushed.
fn push_mode_if_stale(
    name: &str,
    agent: &AgentStatus,
    core: &Core,
    channel: &Channel,
    pushed: u64,
) -> u64 {
    let (mode, epoch) = core.mode();
    if epoch == 0 || mode == Mode::Uninstalled || agent.epoch >= epoch || pushed >= epoch {
        return pushed;
    }
    let mut client = AgentClient::new(channel.clone());
    let name = name.to_owned();
    tokio::spawn(async move {
        let result = client
            .set_mode(request(
                SetModeRequest {
                    mode: mode.into(),
                    epoch,
                },
                COMMAND_TIMEOUT,
            ))
            .await;
        match result {
            Ok(_) => tracing::info!(node = %name, epoch, "told a stale agent the current mode"),
            Err(status) => {
                tracing::warn!(node = %name, error = %describe_status(&status), "cannot tell the agent the current mode")
            }
        }
    });
    epoch
}
