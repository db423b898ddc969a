//! One task per agent: holds a `WatchStatus` stream and folds what arrives into the snapshot.
//! [`supervise`] keeps one running for every agent the inventory names.
//!
//! A broken stream (agent killed, connection reset, keepalive ping unanswered) marks the agent
//! unreachable at once; reconnection backs off exponentially with jitter so a fleet of restarting
//! agents is not hammered in lockstep. An agent that holds an older epoch than the instance (it
//! was down or partitioned when the mode changed) is told the current mode, with backoff until it
//! acknowledges.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::instance::Mode;
use backon::{BackoffBuilder, ExponentialBuilder};
use qserv_proto::transport::secure_endpoint;
use tokio::task::{AbortHandle, JoinHandle, JoinSet};
use tonic::transport::Endpoint;

use crate::agents::api::AgentError;
use crate::agents::client::StatusStream;
use crate::domain::{Node, Observation};
use crate::instance::apply_unreachable;
use crate::runtime::core::Core;

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

/// Runs a monitor for each agent the inventory names, starting and stopping them as it
/// changes; aborting this task stops them all (they live in its `JoinSet`).
pub async fn supervise(core: Arc<Core>) {
    let mut watched = core.watched.subscribe();
    let mut running: HashMap<String, (String, AbortHandle)> = HashMap::new();
    let mut tasks = JoinSet::new();
    loop {
        let wanted = watched.borrow_and_update().clone();
        running.retain(|name, (agent, task)| {
            let keep = wanted.get(name) == Some(agent);
            if !keep {
                task.abort();
            }
            keep
        });
        for (name, agent) in wanted {
            if let std::collections::hash_map::Entry::Vacant(slot) = running.entry(name) {
                let task = tasks.spawn(run(slot.key().clone(), agent.clone(), Arc::clone(&core)));
                slot.insert((agent, task));
            }
        }
        tokio::select! {
            changed = watched.changed() => if changed.is_err() { break },
            // Reaps the monitors stopped above.
            Some(_) = tasks.join_next() => {}
        }
    }
}

/// Watches one agent until the task is aborted.
pub async fn run(name: String, agent: String, core: Arc<Core>) {
    let mut backoff = reconnect_backoff();
    let mut attempt: u32 = 0;
    loop {
        // Built for each connection so that rotated client certificates are picked up.
        let tls = core.grpc().and_then(|g| g.tls());
        let (error, received) = match secure_endpoint(&agent, tls.as_ref()) {
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
    let opened = tokio::time::timeout(OPEN_TIMEOUT, StatusStream::open(endpoint)).await;
    let mut stream = match opened {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return (error, false),
        Err(_) => return (format!("no answer within {OPEN_TIMEOUT:?}"), false),
    };
    let mut received = false;
    let mut catch_up = CatchUp::default();
    loop {
        match stream.next().await {
            Ok(Some(observed)) => {
                if !received {
                    tracing::info!(node = %name, agent_version = %observed.agent_version, "agent connected");
                }
                received = true;
                core.observe(name, &observed);
                catch_up.check(name, &observed, core);
            }
            Ok(None) => return ("the agent closed its status stream".to_owned(), received),
            Err(error) => return (error, received),
        }
    }
}

/// At most one mode push per agent in flight; it ends with the monitor's connection.
#[derive(Default)]
struct CatchUp {
    task: Option<JoinHandle<()>>,
}

impl Drop for CatchUp {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl CatchUp {
    /// Tells an agent the instance's mode when it holds an older epoch.
    fn check(&mut self, name: &str, observed: &Observation, core: &Arc<Core>) {
        // Only the leader commands agents.
        if !core.term.borrow().is_leader() {
            return;
        }
        // A running job tells agents the mode itself (and `down` raises the epoch before the
        // mode it pushes is stored): a second pusher would race it under the same epoch.
        if core.snapshot.borrow().active_job.is_some() {
            return;
        }
        let (mode, epoch) = core.mode();
        // `None` orders below every epoch: an agent that holds none is stale too.
        let stale = epoch.is_some() && mode != Mode::Uninstalled && observed.epoch < epoch;
        if !stale || self.task.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let Some(node) = inventory_node(core, name) else {
            return;
        };
        self.task = Some(tokio::spawn(push_until_acknowledged(
            node,
            Arc::clone(core),
        )));
    }
}

fn inventory_node(core: &Core, name: &str) -> Option<Node> {
    core.snapshot.borrow().node(name).map(|n| n.node.clone())
}

/// Pushes the current mode until the agent takes it, refuses it, or it is no longer current.
async fn push_until_acknowledged(node: Node, core: Arc<Core>) {
    let mut backoff = reconnect_backoff();
    loop {
        if !core.term.borrow().is_leader() {
            return;
        }
        let (mode, _) = core.mode();
        let authority = core.authority();
        let release = core.release_for(node.role);
        match core
            .agents
            .set_mode(&node, &authority, mode, &release)
            .await
        {
            Ok(observed) => {
                core.observe(&node.name, &observed);
                tracing::info!(node = %node.name, epoch = crate::instance::Epoch::to_wire(authority.epoch), "told a stale agent the current mode");
                return;
            }
            Err(AgentError::Refused(why)) => {
                tracing::warn!(node = %node.name, error = %why, "the agent refused the current mode");
                return;
            }
            Err(err) => {
                let delay = backoff.next().unwrap_or(Duration::from_secs(1));
                tracing::debug!(node = %node.name, error = %err, retry_ms = delay.as_millis() as u64, "cannot tell the agent the current mode yet");
                tokio::time::sleep(delay).await;
            }
        }
    }
}
