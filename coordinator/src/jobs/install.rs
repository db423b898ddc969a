//! `install` (DESIGN §7): reach every node, refuse if Qserv is already there, create accounts,
//! bring schemas to target through the migration engine, register the workers, validate.

use std::time::Duration;

use qserv_proto::v1::{
    EnsureAccountsRequest, InspectRequest, Mode, RegisterWorkersRequest, Role, ValidateRequest,
};

use super::ctx::{JobCtx, StepError};
use super::lifecycle::{nodes, push_mode, targets};
use super::upgrade::migrate_node;
use crate::agents::{COMMAND_TIMEOUT, request, status_text};
use crate::snapshot::unavailable_reason;

pub const STEPS: &[&str] = &[
    "reach", "check", "accounts", "schemas", "register", "validate",
];

/// How long install waits for every agent and database to answer.
const REACH_TIMEOUT: Duration = Duration::from_secs(600);

pub async fn step(ctx: &JobCtx, index: usize) -> Result<(), StepError> {
    match STEPS.get(index).copied() {
        Some("reach") => reach(ctx).await,
        Some("check") => check(ctx).await,
        Some("accounts") => accounts(ctx).await,
        Some("schemas") => schemas(ctx).await,
        Some("register") => register(ctx).await,
        Some("validate") => validate(ctx).await,
        _ => Err(StepError::failed(format!("install has no step {index}"))),
    }
}

pub(super) async fn reach(ctx: &JobCtx) -> Result<(), StepError> {
    let all: Vec<String> = targets(ctx).into_iter().map(|n| n.0).collect();
    ctx.wait_for_nodes(&all, REACH_TIMEOUT, |node, _| {
        if !node.agent_reachable {
            Some(format!("agent unreachable ({})", node.agent_error))
        } else if !node.db_ready {
            Some(format!("database not ready ({})", node.db_error))
        } else if !node.compatible {
            Some(format!(
                "agent protocol {} is incompatible",
                node.protocol_version
            ))
        } else {
            None
        }
    })
    .await
}

/// Checks everything before changing anything: a single existing Qserv database anywhere
/// refuses the install and nothing is created on any node.
async fn check(ctx: &JobCtx) -> Result<(), StepError> {
    let (mode, _) = ctx.core.mode();
    if mode == Mode::Installing {
        ctx.log(
            "info",
            "",
            "resuming an install: databases found now are this install's own",
        )
        .await;
        return Ok(());
    }
    let all = nodes(ctx);
    let found = ctx
        .on_nodes("inspect", &all, |(_, _, agent)| async move {
            let mut client = ctx.core.agents.client(&agent)?;
            let reply = client
                .inspect(request(InspectRequest {}, COMMAND_TIMEOUT))
                .await
                .map_err(|s| status_text(&s))?
                .into_inner();
            Ok(reply.databases.join(","))
        })
        .await?;
    let existing: Vec<String> = found
        .iter()
        .filter(|(_, dbs)| !dbs.is_empty())
        .flat_map(|(node, dbs)| dbs.split(',').map(move |db| format!("{db} on {node}")))
        .collect();
    if !existing.is_empty() {
        return Err(StepError::refused(format!(
            "refusing to install over an existing Qserv instance: {} already exists; \
             take it over with 'qserv install --adopt', or drop those databases first",
            existing.join(", ")
        )));
    }
    let epoch = ctx.core.next_epoch();
    ctx.core.set_mode(Mode::Installing, epoch).await?;
    push_mode(ctx, Mode::Installing, epoch).await;
    Ok(())
}

pub(super) async fn accounts(ctx: &JobCtx) -> Result<(), StepError> {
    let all = targets(ctx);
    ctx.on_nodes("accounts", &all, |(_, _, agent)| async move {
        let reply = ctx
            .core
            .agents
            .client(&agent)?
            .ensure_accounts(request(EnsureAccountsRequest {}, COMMAND_TIMEOUT))
            .await
            .map_err(|s| status_text(&s))?
            .into_inner();
        Ok(format!("account {} ready", reply.accounts.join(", ")))
    })
    .await
    .map(|_| ())
}

/// Brings every node's module to target; the same engine `upgrade apply` uses.
pub(super) async fn schemas(ctx: &JobCtx) -> Result<(), StepError> {
    let all = targets(ctx);
    ctx.on_nodes("migrate", &all, |(_, role, agent)| async move {
        migrate_node(ctx, role, &agent).await
    })
    .await
    .map(|_| ())
}

/// Harvests every worker's id and registers it under that id in `config_worker`.
pub(super) async fn register(ctx: &JobCtx) -> Result<(), StepError> {
    let all = nodes(ctx);
    let mine: Vec<String> = targets(ctx).into_iter().map(|n| n.0).collect();
    let Some((repl, _, repl_agent)) = all.iter().find(|n| n.1 == Role::Repl).cloned() else {
        return Err(StepError::refused(
            "the instance has no repl node to hold the worker registry; add one to the spec",
        ));
    };
    let workers: Vec<String> = all
        .iter()
        .filter(|n| n.1 == Role::Worker && mine.contains(&n.0))
        .map(|n| n.0.clone())
        .collect();
    // The agents read the id on their next check after the schema step created it.
    ctx.wait_for_nodes(&workers, Duration::from_secs(30), |node, _| {
        node.worker_id
            .as_ref()
            .is_none_or(String::is_empty)
            .then(|| "no id in qservw_worker.Id yet".to_owned())
    })
    .await?;
    let mut ids: Vec<(String, String)> = Vec::new();
    for name in &workers {
        let id = ctx
            .core
            .snapshot
            .borrow()
            .nodes
            .iter()
            .find(|n| &n.name == name)
            .and_then(|n| n.worker_id.clone())
            .unwrap_or_default();
        let elsewhere = ctx
            .core
            .snapshot
            .borrow()
            .nodes
            .iter()
            .find(|n| !mine.contains(&n.name) && n.worker_id.as_deref() == Some(id.as_str()))
            .map(|n| n.name.clone());
        if let Some(other) = elsewhere {
            return Err(StepError::failed(format!(
                "{name} reports worker id {id}, which {other} already uses; every worker needs its own"
            )));
        }
        if let Some((other, _)) = ids.iter().find(|(_, known)| *known == id) {
            return Err(StepError::failed(format!(
                "{other} and {name} both report worker id {id}; every worker needs its own"
            )));
        }
        ids.push((name.clone(), id));
    }
    let reply = ctx
        .core
        .agents
        .client(&repl_agent)
        .map_err(StepError::failed)?
        .register_workers(request(
            RegisterWorkersRequest {
                worker_ids: ids.iter().map(|(_, id)| id.clone()).collect(),
            },
            COMMAND_TIMEOUT,
        ))
        .await
        .map_err(|s| StepError::failed(format!("{repl}: {}", status_text(&s))))?
        .into_inner();
    for (name, id) in &ids {
        ctx.core.store.set_registered_id(name, Some(id)).await?;
        let note = if reply.inserted.contains(id) {
            "registered"
        } else {
            "already registered"
        };
        ctx.node(name, "done", format!("{note} as {id}"), "").await;
        ctx.log(
            "info",
            name,
            format!("worker id {id} {note} in config_worker"),
        )
        .await;
    }
    ctx.core.reload().await?;
    Ok(())
}

async fn validate(ctx: &JobCtx) -> Result<(), StepError> {
    validate_nodes(ctx).await?;
    let epoch = ctx.core.next_epoch();
    ctx.core.set_mode(Mode::Maintenance, epoch).await?;
    push_mode(ctx, Mode::Maintenance, epoch).await;
    Ok(())
}

/// Each account logs in and sees its database; versions at target, clean, every worker
/// registered: what `up` will demand.
pub(super) async fn validate_nodes(ctx: &JobCtx) -> Result<(), StepError> {
    let all = targets(ctx);
    ctx.on_nodes("validate", &all, |(_, _, agent)| async move {
        let reply = ctx
            .core
            .agents
            .client(&agent)?
            .validate(request(ValidateRequest {}, COMMAND_TIMEOUT))
            .await
            .map_err(|s| status_text(&s))?
            .into_inner();
        if reply.problems.is_empty() {
            Ok("accounts log in and see their databases".to_owned())
        } else {
            Err(reply.problems.join("; "))
        }
    })
    .await?;
    // Versions at target, clean, every worker registered: what `up` will demand.
    let names: Vec<String> = all.iter().map(|n| n.0.clone()).collect();
    ctx.wait_for_nodes(&names, Duration::from_secs(30), |node, _| {
        unavailable_reason(node)
    })
    .await
    .map_err(|e| StepError::failed(format!("validation: {}", e.message)))
}
