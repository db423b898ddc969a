//! `workers add`, `workers remove` and `workers replace` (maintenance mode only).

use crate::instance::Mode;

use super::ctx::{JobCtx, Level, StepError};
use super::install;
use crate::agents::api::AgentError;
use crate::domain::Node;
use crate::domain::job::{
    NodeState, WorkersAddParams, WorkersAddStep, WorkersRemoveParams, WorkersRemoveStep,
    WorkersReplaceParams, WorkersReplaceStep, WorkersStateParams, WorkersStateStep,
};

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

/// Saves the worker's replication records on the repl node, then deletes its row. The agent
/// names the file after the job, so a job resumed after a crash finds the rows gone and the
/// file that was saved, never saves twice or deletes twice.
async fn forget(ctx: &JobCtx, name: &str, id: &str, repl: &Node) -> Result<(), StepError> {
    let reply = ctx
        .core
        .agents
        .forget_worker(repl, &ctx.core.authority(), id, &ctx.id)
        .await
        .map_err(|e| StepError::Failed(format!("{}: {e}", repl.name)))?;
    ctx.core.observe(&repl.name, &reply.observed);
    let done = reply.value;
    let saved = if done.saved_path.is_empty() {
        "nothing was saved".to_owned()
    } else {
        format!(
            "{} row(s) saved on {} in {} (load back with: mariadb qservReplica < {})",
            done.saved_rows, repl.name, done.saved_path, done.saved_path
        )
    };
    let what = if done.removed {
        "removed from config_worker"
    } else {
        "was no longer in config_worker"
    };
    let detail = format!("worker id {id} {what}; {saved}");
    ctx.node(name, NodeState::Done, detail.clone(), "").await;
    ctx.log(Level::Warn, name, detail).await;
    Ok(())
}

/// `workers enable|read-only|disable`: the flags of the worker's registry row.
pub async fn set_state(
    ctx: &JobCtx,
    params: &WorkersStateParams,
    step: WorkersStateStep,
) -> Result<(), StepError> {
    let WorkersStateStep::Set = step;
    let name = &params.name;
    let Some(node) = ctx.node_named(name) else {
        return Err(StepError::Refused(format!(
            "no node {name} in the inventory"
        )));
    };
    let view = ctx.fresh_view(std::slice::from_ref(&node)).await;
    let id = view
        .node(name)
        .and_then(|n| n.registry_id())
        .map(str::to_owned)
        .ok_or_else(|| StepError::Refused(format!("{name} has no registered worker id")))?;
    let Some(repl) = ctx.repl() else {
        return Err(StepError::Failed(
            "the instance has no repl node holding the worker registry".to_owned(),
        ));
    };
    let reply = ctx
        .core
        .agents
        .set_worker_state(&repl, &ctx.core.authority(), &id, params.state.flags())
        .await
        .map_err(|e| StepError::Failed(format!("{}: {e}", repl.name)))?;
    ctx.core.observe(&repl.name, &reply.observed);
    let detail = match reply.value {
        None => {
            return Err(StepError::Refused(format!(
                "worker id {id} is not in config_worker on {}",
                repl.name
            )));
        }
        Some(true) => format!("now {}", params.state.name()),
        Some(false) => format!("already {}", params.state.name()),
    };
    ctx.node(name, NodeState::Done, detail.clone(), "").await;
    ctx.log(Level::Info, name, format!("worker id {id} {detail}"))
        .await;
    Ok(())
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
                .node(name)
                .and_then(|n| n.registry_id())
                .map(str::to_owned);
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
            if params.forget_replicas {
                return forget(ctx, name, &id, &repl).await;
            }
            // The agent refuses, under the row's lock, when Qserv's cascade would delete
            // anything with it: admission's check is not the last word.
            let reply = ctx
                .core
                .agents
                .unregister_workers(&repl, &ctx.core.authority(), vec![id.clone()])
                .await
                .map_err(|e| match e {
                    AgentError::Refused(why) => StepError::Refused(format!("{}: {why}", repl.name)),
                    e => StepError::Failed(format!("{}: {e}", repl.name)),
                })?;
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
