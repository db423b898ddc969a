//! `up` and `down`, and the pieces every job uses to reach the inventory's agents.

use std::time::Duration;

use qserv_proto::names::mode_name;
use qserv_proto::v1::{Mode, Role, ServiceState, SetModeRequest};

use super::ctx::{JobCtx, NodeRef, StepError};
use crate::agents::{COMMAND_TIMEOUT, request, status_text};
use crate::snapshot::unavailable_reason;

pub const UP_STEPS: &[&str] = &["wait-available", "normal"];
pub const DOWN_STEPS: &[&str] = &["stop-services", "maintenance"];

/// Default of `qserv up --timeout`.
const UP_TIMEOUT: Duration = Duration::from_secs(600);
/// How long `down` waits for reachable agents to confirm their services stopped.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// The inventory's nodes as (name, role, agent address).
pub fn nodes(ctx: &JobCtx) -> Vec<NodeRef> {
    ctx.core
        .snapshot
        .borrow()
        .nodes
        .iter()
        .map(|n| {
            (
                n.name.clone(),
                Role::try_from(n.role).unwrap_or(Role::Unspecified),
                n.agent.clone(),
            )
        })
        .collect()
}

/// The nodes a job works on: those named in its `nodes` parameter (`workers add`), else all.
pub fn targets(ctx: &JobCtx) -> Vec<NodeRef> {
    let wanted: Vec<String> = ctx
        .params
        .get("nodes")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    nodes(ctx)
        .into_iter()
        .filter(|n| wanted.is_empty() || wanted.contains(&n.0))
        .collect()
}

/// Tells every agent the mode; an agent that cannot be told now is told by its monitor when it
/// comes back (it will hold an older epoch).
pub async fn push_mode(ctx: &JobCtx, mode: Mode, epoch: u64) {
    let all = nodes(ctx);
    let pushes = all.iter().map(|(name, _, agent)| async move {
        let result = match ctx.core.agents.client(agent) {
            Ok(mut client) => client
                .set_mode(request(
                    SetModeRequest {
                        mode: mode.into(),
                        epoch,
                    },
                    COMMAND_TIMEOUT,
                ))
                .await
                .map(|_| ())
                .map_err(|s| status_text(&s)),
            Err(e) => Err(e),
        };
        if let Err(error) = result {
            ctx.log(
                "warn",
                name,
                format!(
                    "cannot tell the agent mode {} now ({error}); it will be told when it is back",
                    mode_name(mode)
                ),
            )
            .await;
        }
    });
    futures::future::join_all(pushes).await;
}

pub async fn up_step(ctx: &JobCtx, index: usize) -> Result<(), StepError> {
    match UP_STEPS.get(index).copied() {
        Some("wait-available") => {
            let timeout = ctx
                .params
                .get("timeout_ms")
                .and_then(serde_json::Value::as_u64)
                .filter(|ms| *ms > 0)
                .map_or(UP_TIMEOUT, Duration::from_millis);
            let names: Vec<String> = nodes(ctx).into_iter().map(|n| n.0).collect();
            ctx.wait_for_nodes(&names, timeout, |node, _| unavailable_reason(node))
                .await
        }
        Some("normal") => {
            let (mode, epoch) = ctx.core.mode();
            // A resumed job may find the mode already set.
            let epoch = if mode == Mode::Normal {
                epoch
            } else {
                ctx.core.next_epoch()
            };
            ctx.core.set_mode(Mode::Normal, epoch).await?;
            push_mode(ctx, Mode::Normal, epoch).await;
            Ok(())
        }
        _ => Err(StepError::failed(format!("up has no step {index}"))),
    }
}

pub async fn down_step(ctx: &JobCtx, index: usize) -> Result<(), StepError> {
    match DOWN_STEPS.get(index).copied() {
        Some("stop-services") => {
            let next = ctx.core.next_epoch();
            push_mode(ctx, Mode::Maintenance, next).await;
            let names: Vec<String> = nodes(ctx).into_iter().map(|n| n.0).collect();
            let result = ctx
                .wait_for_nodes(&names, STOP_TIMEOUT, |node, _| {
                    if !node.agent_reachable {
                        // It cannot run services we could stop; it learns the mode on return.
                        return None;
                    }
                    if node.agent_epoch < next {
                        return Some("has not taken the maintenance mode yet".to_owned());
                    }
                    (node.services == i32::from(ServiceState::Running))
                        .then(|| "services still running".to_owned())
                })
                .await;
            result.map_err(|e| StepError::failed(format!("services did not stop: {}", e.message)))
        }
        Some("maintenance") => {
            // The epoch the agents were told in the previous step (or, if none could be told,
            // the next one): the instance never goes below what an agent holds.
            let (_, epoch) = ctx.core.mode();
            let told = ctx
                .core
                .snapshot
                .borrow()
                .nodes
                .iter()
                .map(|n| n.agent_epoch)
                .max()
                .unwrap_or(0);
            ctx.core
                .set_mode(Mode::Maintenance, told.max(epoch + 1))
                .await?;
            Ok(())
        }
        _ => Err(StepError::failed(format!("down has no step {index}"))),
    }
}
