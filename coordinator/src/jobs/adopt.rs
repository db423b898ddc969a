//! `install --adopt`: takes over an instance that is already installed (for example by Qserv's
//! own tooling). It reads versions, ids and the worker registry, checked fresh, and changes
//! nothing in any database; every discrepancy is listed and refuses the adoption.

use std::collections::BTreeSet;

use crate::instance::InstanceState;
use crate::instance::Mode;

use super::ctx::{JobCtx, Level, StepError};
use super::install;
use crate::domain::Role;
use crate::domain::job::{AdoptStep, InstallParams};
use crate::runtime::core::next_epoch;

pub async fn run(ctx: &JobCtx, params: &InstallParams, step: AdoptStep) -> Result<(), StepError> {
    match step {
        AdoptStep::Declare => install::declare(ctx, params).await,
        AdoptStep::Reach => install::reach(ctx, &ctx.nodes()).await,
        AdoptStep::Inspect => inspect(ctx).await,
        AdoptStep::Record => record(ctx).await,
    }
}

async fn inspect(ctx: &JobCtx) -> Result<(), StepError> {
    install::take_over(ctx).await?;
    let nodes = ctx.nodes();
    let found = install::inspect_all(ctx, &nodes).await?;
    let mut problems = Vec::new();
    for node in &nodes {
        let database = node.role.module().database();
        let present = found
            .iter()
            .any(|(name, dbs)| *name == node.name && dbs.iter().any(|d| d == database));
        if !present {
            problems.push(format!(
                "{}: {database} does not exist; adopt takes over installed nodes only ('qserv install' sets up new ones)",
                node.name
            ));
        }
    }
    let view = ctx.fresh_view(&nodes).await;
    problems.extend(discrepancies(ctx, &view));
    if problems.is_empty() {
        ctx.log(
            Level::Info,
            "",
            "the instance is consistent; nothing was changed",
        )
        .await;
        Ok(())
    } else {
        Err(StepError::Refused(format!(
            "cannot adopt the instance as it is: {}",
            problems.join("; ")
        )))
    }
}

/// Everything that makes the instance as observed differ from one this coordinator installed.
fn discrepancies(ctx: &JobCtx, view: &InstanceState) -> Vec<String> {
    let mut problems = Vec::new();
    let mut ids = Vec::new();
    for node in &view.nodes {
        if !node.reachable() {
            problems.push(format!(
                "{}: agent unreachable ({})",
                node.name(),
                node.agent_error()
            ));
            continue;
        }
        for schema in &node.schema {
            let module = Some(schema.module);
            if schema.dirty {
                problems.push(format!(
                    "{}: {} is dirty ({})",
                    node.name(),
                    schema.module.database(),
                    schema.dirty_reason
                ));
            } else if let (Some(module), Some(_)) = (module, schema.version)
                && let Err(err) = ctx.core.migrations.plan(module, schema.version)
            {
                problems.push(format!(
                    "{}: {} is at a version these migrations do not know ({err})",
                    node.name(),
                    schema.module.database()
                ));
            } else if schema.version.is_none() {
                problems.push(format!(
                    "{}: {} is uninitialized (no version in QMetadata)",
                    node.name(),
                    schema.module.database()
                ));
            }
        }
        if node.role() == Role::Worker {
            match node.worker_id() {
                None => problems.push(format!("{}: no worker id in qservw_worker.Id", node.name())),
                Some(id) => {
                    if !view.registry.iter().any(|r| r.name == id) {
                        problems.push(format!(
                            "{}: worker id {id} is not registered in config_worker",
                            node.name()
                        ));
                    }
                    ids.push((node.name().to_owned(), id.to_owned()));
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
    for row in &view.registry {
        if !ids.iter().any(|(_, id)| id == &row.name) {
            problems.push(format!(
                "registered worker id {} has no node in the spec",
                row.name
            ));
        }
    }
    problems
}

async fn record(ctx: &JobCtx) -> Result<(), StepError> {
    let nodes = ctx.nodes();
    let workers: Vec<_> = nodes
        .iter()
        .filter(|n| n.role == Role::Worker)
        .cloned()
        .collect();
    let view = ctx.fresh_view(&workers).await;
    let ids: Vec<(String, Option<String>)> = workers
        .iter()
        .map(|worker| {
            let id = view
                .node(&worker.name)
                .and_then(|n| n.worker_id())
                .map(str::to_owned);
            (worker.name.clone(), id)
        })
        .collect();
    ctx.core.store.set_registered_ids(&ids).await?;
    ctx.core.reload().await?;
    let (_, epoch) = ctx.core.mode();
    ctx.core
        .set_mode(Mode::Maintenance, next_epoch(epoch)?)
        .await?;
    ctx.push_mode(Mode::Maintenance).await;
    Ok(())
}
