//! `install --adopt`: takes over an instance that is already installed (for example by Qserv's
//! own tooling). It reads versions, ids and the worker registry and changes nothing in any
//! database; every discrepancy is listed and refuses the adoption.

use std::collections::BTreeSet;

use qserv_migrations::Module;
use qserv_proto::names::role_name;
use qserv_proto::v1::{InspectRequest, Mode, Role};

use super::ctx::{JobCtx, StepError};
use super::install;
use super::lifecycle::{nodes, push_mode};
use crate::agents::{COMMAND_TIMEOUT, request, status_text};

pub const STEPS: &[&str] = &["reach", "inspect", "record"];

pub async fn step(ctx: &JobCtx, index: usize) -> Result<(), StepError> {
    match STEPS.get(index).copied() {
        Some("reach") => install::reach(ctx).await,
        Some("inspect") => inspect(ctx).await,
        Some("record") => record(ctx).await,
        _ => Err(StepError::failed(format!("adopt has no step {index}"))),
    }
}

async fn inspect(ctx: &JobCtx) -> Result<(), StepError> {
    let all = nodes(ctx);
    let mut problems = Vec::new();
    for (name, role, agent) in &all {
        let reply = ctx
            .core
            .agents
            .client(agent)
            .map_err(StepError::failed)?
            .inspect(request(InspectRequest {}, COMMAND_TIMEOUT))
            .await
            .map_err(|s| StepError::failed(format!("{name}: {}", status_text(&s))))?
            .into_inner();
        let Ok(module) = Module::parse(role_name(*role)) else {
            continue;
        };
        if !reply.databases.iter().any(|d| d == module.database()) {
            problems.push(format!(
                "{name}: {} does not exist; adopt takes over installed nodes only ('qserv install' sets up new ones)",
                module.database()
            ));
        }
    }
    let status = ctx.core.snapshot.borrow().clone();
    let mut ids = Vec::new();
    for node in &status.nodes {
        for schema in &node.schema {
            let module = Module::parse(&schema.module).ok();
            if schema.dirty {
                problems.push(format!(
                    "{}: {} is dirty ({})",
                    node.name, schema.database, schema.dirty_reason
                ));
            } else if let (Some(module), Some(_)) = (module, schema.version)
                && let Err(err) = ctx.core.migrations.plan(module, schema.version)
            {
                problems.push(format!(
                    "{}: {} is at a version these migrations do not know ({err})",
                    node.name, schema.database
                ));
            } else if schema.version.is_none() {
                problems.push(format!(
                    "{}: {} is uninitialized (no version in QMetadata)",
                    node.name, schema.database
                ));
            }
        }
        if node.role == i32::from(Role::Worker) {
            match &node.worker_id {
                None => problems.push(format!("{}: no worker id in qservw_worker.Id", node.name)),
                Some(id) => {
                    if !status.registry.iter().any(|r| &r.name == id) {
                        problems.push(format!(
                            "{}: worker id {id} is not registered in config_worker",
                            node.name
                        ));
                    }
                    ids.push((node.name.clone(), id.clone()));
                }
            }
        }
    }
    let mut seen = BTreeSet::new();
    for (name, id) in &ids {
        if !seen.insert(id) {
            problems.push(format!(
                "{name}: worker id {id} is reported by another worker too"
            ));
        }
    }
    for row in &status.registry {
        if !ids.iter().any(|(_, id)| id == &row.name) {
            problems.push(format!(
                "registered worker id {} has no node in the spec",
                row.name
            ));
        }
    }
    if problems.is_empty() {
        ctx.log(
            "info",
            "",
            "the instance is consistent; nothing was changed",
        )
        .await;
        Ok(())
    } else {
        Err(StepError::refused(format!(
            "cannot adopt the instance as it is: {}",
            problems.join("; ")
        )))
    }
}

async fn record(ctx: &JobCtx) -> Result<(), StepError> {
    let workers: Vec<(String, Option<String>)> = ctx
        .core
        .snapshot
        .borrow()
        .nodes
        .iter()
        .filter(|n| n.role == i32::from(Role::Worker))
        .map(|n| (n.name.clone(), n.worker_id.clone()))
        .collect();
    for (name, id) in &workers {
        ctx.core
            .store
            .set_registered_id(name, id.as_deref())
            .await?;
    }
    ctx.core.reload().await?;
    let epoch = ctx.core.next_epoch();
    ctx.core.set_mode(Mode::Maintenance, epoch).await?;
    push_mode(ctx, Mode::Maintenance, epoch).await;
    Ok(())
}
