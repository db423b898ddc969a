//! `upgrade apply` and `upgrade repair`: schema migrations pushed to every agent at once.

use crate::instance::InstanceState;

use super::ctx::{FanOut, JobCtx, Level, StepError};
use crate::agents::api::{AgentError, MigrateCall, RepairCall, Scope};
use crate::domain::Node;
use crate::domain::job::{NodeState, RepairParams, RepairStep, UpgradeParams, UpgradeStep};

/// Asks one agent to bring its module to target. The scripts sent are those the plan from the
/// node's version as last observed needs; the agent plans again under its lock, so when the
/// database moved meanwhile it refuses as stale, and the request is rebuilt once from a probe
/// made now. A node at target gets no script and answers at once (after checking no applied
/// script changed). What the agent checked after migrating goes into the snapshot before this
/// returns.
pub async fn migrate_node(ctx: &JobCtx, node: &Node) -> Result<String, String> {
    let module = node.role.module();
    let observed = ctx.core.observed_version(&node.name, module);
    let reply = match send_shipment(ctx, node, observed, false).await {
        Err(AgentError::Stale(why)) => {
            tracing::info!(node = %node.name, module = %module, reason = %why, "migration planned from an old view; probing and asking again");
            let probed = ctx
                .core
                .agents
                .probe(node, Scope::All)
                .await
                .map_err(|e| e.to_string())?;
            ctx.core.observe(&node.name, &probed);
            let current = probed
                .schemas
                .iter()
                .find(|s| s.module == module)
                .and_then(|s| s.version);
            send_shipment(ctx, node, current, true).await
        }
        other => other,
    }
    .map_err(|e| e.to_string())?;
    ctx.core.observe(&node.name, &reply.observed);
    let migrated = reply.value;
    let show = |v: Option<i64>| v.map_or_else(|| "none".to_owned(), |v| v.to_string());
    Ok(if migrated.applied.is_empty() {
        format!("{module} already at version {}", show(migrated.to))
    } else {
        let scripts: Vec<String> = migrated
            .applied
            .iter()
            .map(|a| format!("{} in {:.1} s", a.file_name, a.duration_ms as f64 / 1000.0))
            .collect();
        format!(
            "{module} {} -> {} ({})",
            show(migrated.from),
            show(migrated.to),
            scripts.join(", ")
        )
    })
}

/// Sends the scripts of the plan from `current`; a version observed earlier (`fresh` false)
/// that these migrations cannot plan from counts as stale, a probed one as a refusal.
async fn send_shipment(
    ctx: &JobCtx,
    node: &Node,
    current: Option<i64>,
    fresh: bool,
) -> Result<crate::agents::api::Reply<crate::agents::api::Migrated>, AgentError> {
    let module = node.role.module();
    let pieces = ctx
        .core
        .migrations
        .pieces(module, current, crate::instance::plan::PIECE_BYTES)
        .map_err(|e| {
            let why = format!("cannot plan {module} on {}: {e}", node.name);
            if fresh {
                AgentError::Refused(why)
            } else {
                AgentError::Stale(why)
            }
        })?;
    // A chain too large for one message goes in parts, each from where the last stopped.
    let mut total: Option<crate::agents::api::Reply<crate::agents::api::Migrated>> = None;
    for shipment in pieces {
        let call = MigrateCall {
            shipment,
            job_id: ctx.id.clone(),
            requested_by: ctx.requested_by.clone(),
        };
        let reply = ctx
            .core
            .agents
            .migrate(node, &ctx.core.authority(), call)
            .await?;
        total = Some(match total {
            None => reply,
            Some(mut sum) => {
                sum.value.applied.extend(reply.value.applied);
                sum.value.to = reply.value.to;
                sum.observed = reply.observed;
                sum
            }
        });
    }
    total.ok_or_else(|| AgentError::Failed(format!("nothing to send {}", node.name)))
}

/// The nodes an upgrade works on: those named with `--nodes`, else all.
fn targets(ctx: &JobCtx, params: &UpgradeParams) -> Vec<Node> {
    ctx.nodes()
        .into_iter()
        .filter(|n| params.nodes.is_empty() || params.nodes.contains(&n.name))
        .collect()
}

pub async fn apply(
    ctx: &JobCtx,
    params: &UpgradeParams,
    step: UpgradeStep,
) -> Result<(), StepError> {
    let targets = targets(ctx, params);
    match step {
        UpgradeStep::Check => {
            let view = ctx.fresh_view(&targets).await;
            refuse_dirty(&targets, &view)
        }
        UpgradeStep::Apply => {
            let policy = FanOut {
                limit: usize::try_from(params.parallel).unwrap_or(usize::MAX),
                fail_fast: params.fail_fast,
            };
            ctx.fan_out("migrate", &targets, policy, |node| async move {
                migrate_node(ctx, &node).await.map(|detail| (detail, ()))
            })
            .await
            .map(|_| ())
            .map_err(|e| match e {
                StepError::Failed(why) => {
                    StepError::Failed(why.replacen("migrate failed", "upgrade failed", 1))
                }
                other => other,
            })
        }
    }
}

/// A dirty database is never migrated further: refuse before touching any node.
fn refuse_dirty(targets: &[Node], view: &InstanceState) -> Result<(), StepError> {
    let dirty: Vec<String> = view
        .nodes
        .iter()
        .filter(|n| targets.iter().any(|t| t.name == n.name()))
        .flat_map(|n| {
            n.schema.iter().filter(|s| s.dirty).map(move |s| {
                format!(
                    "{}'s {} is dirty ({}); fix it by hand and run 'qserv upgrade repair {} --module {} --version V'",
                    n.name(), s.module.database(), s.dirty_reason, n.name(), s.module
                )
            })
        })
        .collect();
    if dirty.is_empty() {
        Ok(())
    } else {
        Err(StepError::Refused(format!(
            "{}; or leave the node out with --nodes",
            dirty.join("; ")
        )))
    }
}

pub async fn repair(
    ctx: &JobCtx,
    params: &RepairParams,
    step: RepairStep,
) -> Result<(), StepError> {
    match step {
        RepairStep::Repair => {}
    }
    let Some(node) = ctx.node_named(&params.node) else {
        return Err(StepError::Refused(format!(
            "no node {} in the inventory",
            params.node
        )));
    };
    let module = params.module;
    let version = params.version;
    ctx.node(
        &node.name,
        NodeState::Running,
        format!("marking {module} repaired at version {version}"),
        "",
    )
    .await;
    let call = RepairCall {
        module,
        version,
        max_version: ctx.core.migrations.target(module),
        force: params.force,
        reason: params.reason.clone(),
        job_id: ctx.id.clone(),
        requested_by: ctx.requested_by.clone(),
    };
    let reply = ctx
        .core
        .agents
        .repair(&node, &ctx.core.authority(), call)
        .await
        .map_err(|e| match e {
            AgentError::Refused(why) => StepError::Refused(format!("{}: {why}", node.name)),
            other => StepError::Failed(format!("{}: {other}", node.name)),
        })?;
    ctx.core.observe(&node.name, &reply.observed);
    let detail = format!(
        "{module} marked repaired at version {version} by {}{}{}",
        ctx.requested_by,
        if params.force { " (forced)" } else { "" },
        if params.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", params.reason)
        }
    );
    ctx.node(&node.name, NodeState::Done, detail.clone(), "")
        .await;
    ctx.log(
        Level::Warn,
        &node.name,
        format!("{detail}; it was: {}", reply.value),
    )
    .await;
    Ok(())
}
