//! `upgrade apply` and `upgrade repair`: schema migrations pushed to every agent at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use qserv_proto::names::role_name;
use qserv_proto::v1::{MigrateRequest, MigrationScript, RepairRequest, Role};
use tokio::sync::Semaphore;

use super::ctx::{JobCtx, StepError};
use super::lifecycle::{nodes, targets};
use crate::agents::{COMMAND_TIMEOUT, request, status_text};

pub const APPLY_STEPS: &[&str] = &["check", "apply"];
pub const REPAIR_STEPS: &[&str] = &["repair"];

/// A migration may run long; the agent finishes it even if this deadline passes.
const MIGRATE_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// Asks one agent to bring its module to target; the agent plans from its own version, so a
/// node already at target answers at once (after checking no applied script changed).
pub async fn migrate_node(ctx: &JobCtx, role: Role, agent: &str) -> Result<String, String> {
    let module = role_name(role).to_owned();
    let scripts: Vec<MigrationScript> = qserv_migrations::Module::parse(&module)
        .map(|m| {
            ctx.core
                .migrations
                .scripts(m)
                .iter()
                .map(|s| MigrationScript {
                    file_name: s.file_name.clone(),
                    content: s.content.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    let (job_id, requested_by) = {
        let job = ctx.job.lock().await;
        (job.id.clone(), job.requested_by.clone())
    };
    let reply = ctx
        .core
        .agents
        .client(agent)?
        .migrate(request(
            MigrateRequest {
                module: module.clone(),
                scripts,
                job_id,
                requested_by,
            },
            MIGRATE_TIMEOUT,
        ))
        .await
        .map_err(|s| status_text(&s))?
        .into_inner();
    let show = |v: Option<i64>| v.map_or_else(|| "none".to_owned(), |v| v.to_string());
    Ok(if reply.applied.is_empty() {
        format!("{module} already at version {}", show(reply.to_version))
    } else {
        let scripts: Vec<String> = reply
            .applied
            .iter()
            .map(|a| format!("{} in {:.1} s", a.file_name, a.duration_ms as f64 / 1000.0))
            .collect();
        format!(
            "{module} {} -> {} ({})",
            show(reply.from_version),
            show(reply.to_version),
            scripts.join(", ")
        )
    })
}

pub async fn apply_step(ctx: &JobCtx, index: usize) -> Result<(), StepError> {
    match APPLY_STEPS.get(index).copied() {
        Some("check") => check(ctx),
        Some("apply") => apply(ctx).await,
        _ => Err(StepError::failed(format!("upgrade has no step {index}"))),
    }
}

/// A dirty database is never migrated further: refuse before touching any node.
fn check(ctx: &JobCtx) -> Result<(), StepError> {
    let names: Vec<String> = targets(ctx).into_iter().map(|n| n.0).collect();
    let status = ctx.core.snapshot.borrow().clone();
    let dirty: Vec<String> = status
        .nodes
        .iter()
        .filter(|n| names.contains(&n.name))
        .flat_map(|n| {
            n.schema.iter().filter(|s| s.dirty).map(move |s| {
                format!(
                    "{}'s {} is dirty ({}); fix it by hand and run 'qserv upgrade repair {} --module {} --version V'",
                    n.name, s.database, s.dirty_reason, n.name, s.module
                )
            })
        })
        .collect();
    if dirty.is_empty() {
        Ok(())
    } else {
        Err(StepError::refused(format!(
            "{}; or leave the node out with --nodes",
            dirty.join("; ")
        )))
    }
}

async fn apply(ctx: &JobCtx) -> Result<(), StepError> {
    let targets = targets(ctx);
    let parallel = ctx
        .params
        .get("parallel")
        .and_then(serde_json::Value::as_u64)
        .and_then(|p| usize::try_from(p).ok())
        .filter(|p| *p > 0)
        .unwrap_or(targets.len())
        .max(1);
    let fail_fast = ctx
        .params
        .get("fail_fast")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let permits = Arc::new(Semaphore::new(parallel));
    let failed = AtomicBool::new(false);
    for (name, _, _) in &targets {
        ctx.node(name, "pending", "waiting for a slot", "").await;
    }
    let runs = targets.iter().map(|(name, role, agent)| {
        let permits = permits.clone();
        let failed = &failed;
        async move {
            let _permit = permits.acquire().await;
            if fail_fast && failed.load(Ordering::SeqCst) {
                ctx.node(
                    name,
                    "skipped",
                    "not started: an earlier node failed (--fail-fast)",
                    "",
                )
                .await;
                return Some(format!("{name}: skipped"));
            }
            ctx.node(name, "running", "migrating", "").await;
            match migrate_node(ctx, *role, agent).await {
                Ok(detail) => {
                    ctx.node(name, "done", detail.clone(), "").await;
                    ctx.log("info", name, detail).await;
                    None
                }
                Err(error) => {
                    failed.store(true, Ordering::SeqCst);
                    ctx.node(name, "failed", "migration failed", error.clone())
                        .await;
                    ctx.log("error", name, format!("migration failed: {error}"))
                        .await;
                    Some(format!("{name}: {error}"))
                }
            }
        }
    });
    let problems: Vec<String> = futures::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(StepError::failed(format!(
            "upgrade failed on {}",
            problems.join("; ")
        )))
    }
}

pub async fn repair_step(ctx: &JobCtx, _index: usize) -> Result<(), StepError> {
    let node = ctx
        .params
        .get("node")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    let module = ctx
        .params
        .get("module")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    let version = ctx
        .params
        .get("version")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or_default();
    let Some((_, _, agent)) = nodes(ctx).into_iter().find(|n| n.0 == node) else {
        return Err(StepError::refused(format!(
            "no node {node} in the inventory"
        )));
    };
    let (job_id, requested_by) = {
        let job = ctx.job.lock().await;
        (job.id.clone(), job.requested_by.clone())
    };
    ctx.node(
        &node,
        "running",
        format!("marking {module} repaired at version {version}"),
        "",
    )
    .await;
    let reply = ctx
        .core
        .agents
        .client(&agent)
        .map_err(StepError::failed)?
        .repair(request(
            RepairRequest {
                module: module.clone(),
                version,
                job_id,
                requested_by: requested_by.clone(),
            },
            COMMAND_TIMEOUT,
        ))
        .await
        .map_err(|s| StepError::failed(format!("{node}: {}", status_text(&s))))?
        .into_inner();
    let detail = format!("{module} marked repaired at version {version} by {requested_by}");
    ctx.node(&node, "done", detail.clone(), "").await;
    ctx.log(
        "warn",
        &node,
        format!("{detail}; it was: {}", reply.previous_error),
    )
    .await;
    Ok(())
}
