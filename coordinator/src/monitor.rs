//! One task per agent: holds a `WatchStatus` stream and folds what arrives into the snapshot.
//!
//! A broken stream (agent killed, connection reset, keepalive ping unanswered) marks the agent
//! unreachable at once; reconnection backs off exponentially with jitter so a fleet of restarting
//! agents is not hammered in lockstep.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use qserv_proto::transport::{describe_error, describe_status, endpoint};
use qserv_proto::v1::AgentStatusRequest;
use qserv_proto::v1::agent_client::AgentClient;
use tonic::transport::Endpoint;

use crate::metrics::Metrics;
use crate::snapshot::{Snapshot, Targets, apply_agent_status, apply_unreachable};
use crate::store::NodeRecord;

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
pub async fn run(record: NodeRecord, snapshot: Snapshot, targets: Targets, metrics: Metrics) {
    let name = record.spec.name.clone();
    let endpoint = match endpoint(&record.spec.agent) {
        Ok(endpoint) => endpoint,
        Err(err) => {
            // The spec was validated; this only guards against a store edited by hand.
            snapshot.send_if_modified(|s| apply_unreachable(s, &name, &err.to_string()));
            return;
        }
    };
    let mut backoff = reconnect_backoff();
    let mut attempt: u32 = 0;
    loop {
        let (error, received) = watch_once(&endpoint, &record, &snapshot, &targets).await;
        if received {
            backoff = reconnect_backoff();
            attempt = 0;
            tracing::warn!(node = %name, error = %error, "lost the agent's status stream");
        }
        attempt = attempt.saturating_add(1);
        metrics.agent_reconnects.inc();
        snapshot.send_if_modified(|s| apply_unreachable(s, &name, &error));
        let delay = backoff.next().unwrap_or(Duration::from_secs(1));
        if attempt == 1 || attempt.is_power_of_two() {
            tracing::info!(node = %name, attempt, next_try_ms = delay.as_millis() as u64, error = %error, "agent unreachable");
        }
        tokio::time::sleep(delay).await;
    }
}

/// Connects and follows the stream until it breaks; returns why it broke and whether any status
/// arrived.
async fn watch_once(
    endpoint: &Endpoint,
    record: &NodeRecord,
    snapshot: &Snapshot,
    targets: &Targets,
) -> (String, bool) {
    // A frozen host accepts TCP connections in its kernel but never completes the HTTP/2
    // handshake; the bound keeps such a node from holding its monitor forever.
    let opened = tokio::time::timeout(OPEN_TIMEOUT, async {
        let channel = endpoint.connect().await.map_err(|e| describe_error(&e))?;
        AgentClient::new(channel)
            .watch_status(AgentStatusRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| describe_status(&s))
    })
    .await;
    let mut stream = match opened {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return (error, false),
        Err(_) => return (format!("no answer within {OPEN_TIMEOUT:?}"), false),
    };
    let mut received = false;
    loop {
        match stream.message().await {
            Ok(Some(agent)) => {
                if !received {
                    tracing::info!(node = %record.spec.name, agent_version = %agent.agent_version, "agent connected");
                }
                received = true;
                let now = crate::now_ms();
                snapshot.send_if_modified(|s| apply_agent_status(s, record, &agent, targets, now));
            }
            Ok(None) => return ("the agent closed its status stream".to_owned(), received),
            Err(status) => return (describe_status(&status), received),
        }
    }
}
