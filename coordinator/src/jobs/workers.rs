//! `workers add`, `workers remove` and `workers replace` (maintenance mode only).

use qserv_proto::v1::Mode;

use super::ctx::{JobCtx, Level, StepError};
use super::install;
use super::model::{
    NodeState, WorkersAddParams, WorkersAddStep, WorkersRemoveParams, WorkersRemoveStep,
    WorkersReplaceParams, WorkersReplaceStep,
};
use crate::agent_api::AgentError;

/// A worker's agent that does not answer when its databases were to be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Silent {
    /// Fails the step: `workers remove --purge` means the data goes.
    Fails,
    /// Leaves the data: a replaced worker's host is often the one that died.
    Tolerated,
}

/// The new worker joins first, exactly as `workers add` adds one; only once it is registered
/// and validated does the old one leave, as `workers remove` removes one. A job resumed at any
/// step finds the steps before it done.
pub async fn replace(
    ctx: &JobCtx,
    params: &WorkersReplaceParams,
    step: WorkersReplaceStep,
) -> Result<(), StepError> {
    let adding = params.adding();
    let removing = params.removing();
    match step {
        WorkersReplaceStep::Declare => add(ctx, &adding, WorkersAddStep::Declare).await,
        WorkersReplaceStep::Reach => add(ctx, &adding, WorkersAddStep::Reach).await,
        WorkersReplaceStep::Accounts => add(ctx, &adding, WorkersAddStep::Accounts).await,
        WorkersReplaceStep::Schemas => add(ctx, &adding, WorkersAddStep::Schemas).await,
        WorkersReplaceStep::Register => add(ctx, &adding, WorkersAddStep::Register).await,
        WorkersReplaceStep::Validate => add(ctx, &adding, WorkersAddStep::Validate).await,
        WorkersReplaceStep::Unregister => {
            leave(
                ctx,
                &removing,
                WorkersRemoveStep::Unregister,
                Silent::Tolerated,
            )
            .await
        }
        WorkersReplaceStep::Purge => {
            leave(ctx, &removing, WorkersRemoveStep::Purge, Silent::Tolerated).await
        }
        WorkersReplaceStep::Forget => {
            leave(ctx, &removing, WorkersRemoveStep::Forget, Silent::Tolerated).await
        }
    }
}

/// The new nodes join the inventory as the job's first step (their monitors then report
/// them); then the same steps as install, on them only.
pub async fn add(
    ctx: &JobCtx,
    params: &WorkersAddParams,
    step: WorkersAddStep,
) -> Result<(), StepError> {
    let new = &params.nodes;
    match step {
        WorkersAddStep::Declare => {
            ctx.core.store.add_nodes(new).await?;
            ctx.core.reload().await?;
            for node in new {
                ctx.log(
                    Level::Info,
                    &node.name,
                    format!("added to the inventory at {}", node.agent),
                )
                .await;
            }
            Ok(())
        }
        WorkersAddStep::Reach => install::reach(ctx, new).await,
        WorkersAddStep::Accounts => install::accounts(ctx, new).await,
        WorkersAddStep::Schemas => install::schemas(ctx, new).await,
        WorkersAddStep::Register => install::register(ctx, new).await,
        WorkersAddStep::Validate => {
            install::validate(ctx, new).await?;
            // The new agents hold no mode of this instance yet.
            ctx.push_mode(Mode::Maintenance).await;
            Ok(())
        }
    }
}

pub async fn remove(
    ctx: &JobCtx,
    params: &WorkersRemoveParams,
    step: WorkersRemoveStep,
) -> Result<(), StepError> {
    leave(ctx, params, step, Silent::Fails).await
}

async fn leave(
    ctx: &JobCtx,
    params: &WorkersRemoveParams,
    step: WorkersRemoveStep,
    silent: Silent,
) -> Result<(), StepError> {
    let name = &params.name;
    let node = ctx.node_named(name);
    match step {
        WorkersRemoveStep::Unregister => {
            let Some(node) = node else {
                ctx.log(Level::Info, name, "already gone from the inventory")
                    .await;
                return Ok(());
            };
            let view = ctx.fresh_view(std::slice::from_ref(&node)).await;
            let id = view
                .nodes
                .iter()
                .find(|n| n.name == *name)
                .and_then(|n| n.registered_id.clone().or_else(|| n.worker_id.clone()));
            let Some(id) = id else {
                ctx.log(Level::Info, name, "no worker id was ever registered for it")
                    .await;
                return Ok(());
            };
            let Some(repl) = ctx.repl() else {
                return Err(StepError::Failed(
                    "the instance has no repl node holding the worker registry".to_owned(),
                ));
            };
            let reply = ctx
                .core
                .agents
                .unregister_workers(&repl, &ctx.core.authority(), vec![id.clone()])
                .await
                .map_err(|e| StepError::Failed(format!("{}: {e}", repl.name)))?;
            ctx.core.observe(&repl.name, &reply.observed);
            let what = if reply.value.is_empty() {
                "was not registered"
            } else {
                "unregistered"
            };
            ctx.node(name, NodeState::Done, format!("worker id {id} {what}"), "")
                .await;
            ctx.log(
                Level::Info,
                name,
                format!("worker id {id} {what} in config_worker"),
            )
            .await;
            Ok(())
        }
        WorkersRemoveStep::Purge => {
            let (Some(node), true) = (node, params.purge) else {
                if !params.purge {
                    ctx.log(Level::Info, name, "databases kept (no --purge)")
                        .await;
                }
                return Ok(());
            };
            // The agent checks the command names it (node, role, instance): after a re-IP, an
            // agent that now answers at this address refuses instead of dropping its data.
            let reply = match ctx.core.agents.purge(&node, &ctx.core.authority()).await {
                Ok(reply) => reply,
                Err(AgentError::Unreachable(why)) if silent == Silent::Tolerated => {
                    let detail =
                        format!("its agent does not answer ({why}): databases left in place");
                    ctx.node(name, NodeState::Skipped, detail.clone(), "").await;
                    ctx.log(Level::Warn, name, detail).await;
                    return Ok(());
                }
                Err(err) => return Err(StepError::Failed(format!("{name}: {err}"))),
            };
            ctx.core.observe(name, &reply.observed);
            let detail = format!(
                "dropped databases [{}] and accounts [{}]",
                reply.value.databases.join(", "),
                reply.value.accounts.join(", ")
            );
            ctx.node(name, NodeState::Done, detail.clone(), "").await;
            ctx.log(Level::Warn, name, detail).await;
            Ok(())
        }
        WorkersRemoveStep::Forget => {
            ctx.core.store.remove_node(name).await?;
            ctx.core.reload().await?;
            ctx.log(Level::Info, name, "removed from the inventory")
                .await;
            Ok(())
        }
    }
}
