//! `restart`: a rolling restart of the Qserv services in `normal` (DESIGN §14). Node by node (or
//! `parallel` at a time, in inventory order), the agent stops and starts its services; the job
//! goes on only once the node's services run and its database is ready, checked by probes made
//! after the restart and holding for a moment. The mode and the epoch do not change; the first
//! failure stops the job and names the node.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

use super::ctx::{FanOut, JobCtx, StepError};
use crate::agents::api::Scope;
use crate::domain::job::{NodeState, RestartParams, RestartStep};
use crate::domain::{Node, Services};
use crate::instance::admission::restart_targets;
use qserv_model::ServiceName;

/// Between probes of a restarted node.
const PROBE_EVERY: Duration = Duration::from_millis(250);

pub async fn run(ctx: &JobCtx, params: &RestartParams, step: RestartStep) -> Result<(), StepError> {
    if step == RestartStep::Drain {
        return super::drain::run(ctx, "a rolling restart", params.activity).await;
    }
    // Resumed after a takeover or a restart of the coordinator: the nodes this job already
    // restarted are not restarted again.
    let done: BTreeSet<String> = ctx
        .record()
        .await
        .nodes
        .into_iter()
        .filter(|n| n.state == NodeState::Done)
        .map(|n| n.name)
        .collect();
    let targets = restart_targets(params, &ctx.core.snapshot.borrow());
    let remaining: Vec<Node> = targets
        .into_iter()
        .filter(|n| !done.contains(&n.name))
        .collect();
    let policy = FanOut {
        limit: usize::try_from(params.parallel.max(1)).unwrap_or(1),
        fail_fast: true,
    };
    let timeout = Duration::from_millis(params.node_timeout_ms);
    let hold = Duration::from_millis(params.settle_ms);
    let services = &params.services;
    ctx.fan_out("restart", &remaining, policy, |node| async move {
        restart_node(ctx, &node, services, timeout, hold)
            .await
            .map(|detail| (detail, ()))
    })
    .await
    .map(|_| ())
}

async fn restart_node(
    ctx: &JobCtx,
    node: &Node,
    services: &[ServiceName],
    timeout: Duration,
    hold: Duration,
) -> Result<String, String> {
    let started = Instant::now();
    let reply = ctx
        .core
        .agents
        .restart_services(node, &ctx.core.authority(), services)
        .await
        .map_err(|e| e.to_string())?;
    ctx.core.observe(&node.name, &reply.observed);
    if !reply.value.restarted {
        return Ok(format!("nothing restarted: {}", reply.value.detail));
    }
    settle(ctx, node, started + timeout, hold).await?;
    Ok(format!(
        "services restarted; running with the database ready after {:.1} s",
        started.elapsed().as_secs_f64()
    ))
}

/// Probes `node` until its services have run with the database ready for `hold`; fails on
/// services that stopped with an error, or at `deadline`.
async fn settle(
    ctx: &JobCtx,
    node: &Node,
    deadline: Instant,
    hold: Duration,
) -> Result<(), String> {
    let mut ready_since: Option<Instant> = None;
    let mut last = String::from("no probe answered");
    loop {
        if ctx.is_cancelled() {
            return Err("the job was cancelled while the node came back".to_owned());
        }
        match ctx.core.agents.probe(node, Scope::All).await {
            Ok(seen) => {
                ctx.core.observe(&node.name, &seen);
                let ready = seen.services == Services::Running && seen.db_ready;
                if !seen.services_error.is_empty() {
                    return Err(format!(
                        "the services did not stay up: {}",
                        seen.services_error
                    ));
                }
                if ready {
                    let since = *ready_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= hold {
                        return Ok(());
                    }
                } else {
                    ready_since = None;
                    last = if seen.db_ready {
                        format!(
                            "services {}",
                            qserv_proto::names::services_name(seen.services.into())
                        )
                    } else {
                        format!("database not ready: {}", seen.db_error)
                    };
                }
            }
            Err(err) => {
                ready_since = None;
                last = err.to_string();
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "not back within the node timeout: {last}; the job stopped here"
            ));
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}
