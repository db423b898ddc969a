//! `workers add` and `workers remove` (maintenance mode only).

use qserv_proto::v1::{PurgeRequest, UnregisterWorkersRequest};

use super::ctx::{JobCtx, StepError};
use super::install;
use super::lifecycle::nodes;
use crate::agents::{COMMAND_TIMEOUT, request, status_text};

/// The new nodes are in the inventory before the job starts (their monitors report them);
/// then the same steps as install, on them only.
pub const ADD_STEPS: &[&str] = &["reach", "accounts", "schemas", "register", "validate"];
pub const REMOVE_STEPS: &[&str] = &["unregister", "purge", "forget"];

pub async fn add_step(ctx: &JobCtx, index: usize) -> Result<(), StepError> {
    match ADD_STEPS.get(index).copied() {
        Some("reach") => install::reach(ctx).await,
        Some("accounts") => install::accounts(ctx).await,
        Some("schemas") => install::schemas(ctx).await,
        Some("register") => install::register(ctx).await,
        Some("validate") => install::validate_nodes(ctx).await,
        _ => Err(StepError::failed(format!(
            "workers add has no step {index}"
        ))),
    }
}

fn param(ctx: &JobCtx, key: &str) -> String {
    ctx.params
        .get(key)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned()
}

pub async fn remove_step(ctx: &JobCtx, index: usize) -> Result<(), StepError> {
    let name = param(ctx, "name");
    let purge = ctx
        .params
        .get("purge")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let all = nodes(ctx);
    let agent = all.iter().find(|n| n.0 == name).map(|n| n.2.clone());
    match REMOVE_STEPS.get(index).copied() {
        Some("unregister") => {
            if agent.is_none() {
                ctx.log("info", &name, "already gone from the inventory")
                    .await;
                return Ok(());
            }
            let id = {
                let status = ctx.core.snapshot.borrow();
                let node = status.nodes.iter().find(|n| n.name == name);
                node.and_then(|n| n.registered_id.clone().or_else(|| n.worker_id.clone()))
            };
            let Some(id) = id else {
                ctx.log("info", &name, "no worker id was ever registered for it")
                    .await;
                return Ok(());
            };
            let Some((repl, _, repl_agent)) = all
                .iter()
                .find(|n| n.1 == qserv_proto::v1::Role::Repl)
                .cloned()
            else {
                return Err(StepError::failed(
                    "the instance has no repl node holding the worker registry",
                ));
            };
            let reply = ctx
                .core
                .agents
                .client(&repl_agent)
                .map_err(StepError::failed)?
                .unregister_workers(request(
                    UnregisterWorkersRequest {
                        worker_ids: vec![id.clone()],
                    },
                    COMMAND_TIMEOUT,
                ))
                .await
                .map_err(|s| StepError::failed(format!("{repl}: {}", status_text(&s))))?
                .into_inner();
            // Finish only once the status shows it, so the next command sees the registry as it is.
            let gone = id.clone();
            ctx.wait_for_nodes(
                std::slice::from_ref(&repl),
                std::time::Duration::from_secs(30),
                |_, status| {
                    status
                        .registry
                        .iter()
                        .any(|r| r.name == gone)
                        .then(|| format!("worker id {gone} still listed in config_worker"))
                },
            )
            .await?;
            let what = if reply.removed.is_empty() {
                "was not registered"
            } else {
                "unregistered"
            };
            ctx.node(&name, "done", format!("worker id {id} {what}"), "")
                .await;
            ctx.log(
                "info",
                &name,
                format!("worker id {id} {what} in config_worker"),
            )
            .await;
            Ok(())
        }
        Some("purge") => {
            let (Some(agent), true) = (agent, purge) else {
                if !purge {
                    ctx.log("info", &name, "databases kept (no --purge)").await;
                }
                return Ok(());
            };
            let reply = ctx
                .core
                .agents
                .client(&agent)
                .map_err(StepError::failed)?
                .purge(request(PurgeRequest {}, COMMAND_TIMEOUT))
                .await
                .map_err(|s| StepError::failed(format!("{name}: {}", status_text(&s))))?
                .into_inner();
            let detail = format!(
                "dropped databases [{}] and accounts [{}]",
                reply.dropped_databases.join(", "),
                reply.dropped_accounts.join(", ")
            );
            ctx.node(&name, "done", detail.clone(), "").await;
            ctx.log("warn", &name, detail).await;
            Ok(())
        }
        Some("forget") => {
            ctx.core.store.remove_node(&name).await?;
            ctx.core.reload().await?;
            ctx.log("info", &name, "removed from the inventory").await;
            Ok(())
        }
        _ => Err(StepError::failed(format!(
            "workers remove has no step {index}"
        ))),
    }
}
