//! `install` (DESIGN §7): declare the inventory, reach every node, refuse if Qserv is already
//! there, create accounts, bring schemas to target through the migration engine, register the
//! workers, validate. The steps other jobs share (`workers add`, adoption) live here too.

use std::time::Duration;

use crate::instance::Mode;
use crate::instance::{Epoch, InstanceState};

use super::ctx::{FanOut, JobCtx, Level, StepError};
use super::upgrade::migrate_node;
use crate::domain::job::{InstallParams, InstallStep};
use crate::domain::{Node, Role};
use crate::instance::unavailable_reason;
use crate::runtime::core::next_epoch;

/// How long install waits for every agent and database to answer.
const REACH_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the last checks wait for what the previous steps did to show.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn run(ctx: &JobCtx, params: &InstallParams, step: InstallStep) -> Result<(), StepError> {
    match step {
        InstallStep::Declare => declare(ctx, params).await,
        InstallStep::Reach => reach(ctx, &ctx.nodes()).await,
        InstallStep::Check => check(ctx).await,
        InstallStep::Accounts => accounts(ctx, &ctx.nodes()).await,
        InstallStep::Schemas => schemas(ctx, &ctx.nodes()).await,
        InstallStep::Register => register(ctx, &ctx.nodes()).await,
        InstallStep::Validate => {
            validate(ctx, &ctx.nodes()).await?;
            let (_, epoch) = ctx.core.mode();
            ctx.core
                .set_mode(Mode::Maintenance, next_epoch(epoch)?)
                .await?;
            ctx.push_mode(Mode::Maintenance).await;
            Ok(())
        }
    }
}

/// Writes the spec as the inventory of an instance not installed yet; the inventory of an
/// install in progress (which admission found the spec agrees with) stays.
pub(super) async fn declare(ctx: &JobCtx, params: &InstallParams) -> Result<(), StepError> {
    let Some(spec) = &params.spec else {
        return Ok(());
    };
    let (mode, _) = ctx.core.mode();
    if mode == Mode::Uninstalled {
        ctx.core
            .store
            .declare(spec, crate::store::Declared::ByJob)
            .await?;
        ctx.core.reload().await?;
        ctx.log(
            Level::Info,
            "",
            format!(
                "declared instance '{}' with {} nodes",
                spec.name,
                spec.nodes.len()
            ),
        )
        .await;
    }
    Ok(())
}

/// Waits until every node's agent answers and its database accepts connections (checked
/// fresh), then refuses if any agent is not the node the inventory says.
pub(super) async fn reach(ctx: &JobCtx, nodes: &[Node]) -> Result<(), StepError> {
    let view = ctx
        .wait_until(
            nodes,
            REACH_TIMEOUT,
            "agent and database answer",
            |node, _| {
                if !node.reachable() {
                    Some(format!("agent unreachable ({})", node.agent_error()))
                } else if !node.compatible() {
                    Some(format!(
                        "agent protocol {} is incompatible",
                        node.protocol_version()
                    ))
                } else if !node.db_ready() {
                    Some(format!("database not ready ({})", node.db_error()))
                } else {
                    None
                }
            },
        )
        .await?;
    refuse_doubtful(nodes, &view)
}

/// Nodes whose agent is not who the inventory says stop the job before anything changes.
fn refuse_doubtful(nodes: &[Node], view: &InstanceState) -> Result<(), StepError> {
    let doubtful: Vec<String> = crate::instance::identity::agent_mismatches(view)
        .into_iter()
        .filter(|(name, _)| nodes.iter().any(|m| m.name == *name))
        .map(|(name, problem)| format!("{name}: {problem}"))
        .collect();
    if doubtful.is_empty() {
        Ok(())
    } else {
        Err(StepError::Refused(format!(
            "node identity cannot be trusted: {}",
            doubtful.join("; ")
        )))
    }
}

/// Takes the epoch and the fencing token above any an agent has seen (an earlier
/// coordinator's, or this one's before a `delete`): installing and adopting are the operator's
/// deliberate take-over of these agents.
pub(super) async fn take_over(ctx: &JobCtx) -> Result<(), StepError> {
    let view = ctx.fresh_view(&ctx.nodes()).await;
    let seen = view.nodes.iter().filter_map(|n| n.seen_epoch()).max();
    let (_, epoch) = ctx.core.mode();
    if seen > epoch {
        let next = next_epoch(seen)?;
        let (seen, ours) = (Epoch::to_wire(seen), Epoch::to_wire(epoch));
        ctx.log(
            Level::Warn,
            "",
            format!("agents have seen epochs up to {seen}, above this coordinator's {ours}; taking them over at epoch {next}"),
        )
        .await;
        ctx.core.set_epoch(next).await?;
    }
    take_over_token(ctx).await
}

/// Waits for a term whose token the agents take: a store made anew after a `delete` counts
/// from 1 again, while the agents remember the tokens of the store before.
async fn take_over_token(ctx: &JobCtx) -> Result<(), StepError> {
    let floor = *ctx.core.token_floor.borrow();
    let held = ctx.core.term.borrow().leader_token();
    if floor <= held {
        return Ok(());
    }
    ctx.log(
        Level::Warn,
        "",
        format!("agents have seen fencing tokens up to {floor}, above this leader's {held}; taking a term above it"),
    )
    .await;
    match ctx.core.token_agents_take(TOKEN_TAKEOVER).await {
        Some(token) => {
            ctx.log(
                Level::Info,
                "",
                format!("leading under fencing token {token}"),
            )
            .await;
            Ok(())
        }
        None => Err(StepError::Failed(format!(
            "could not take a leader term above fencing token {floor} within {} s: the store did not take the claim, or another coordinator leads now; run the command again",
            TOKEN_TAKEOVER.as_secs()
        ))),
    }
}

/// How long a takeover of the agents' fencing token may take: one claim, with room for a slow
/// store.
const TOKEN_TAKEOVER: std::time::Duration = std::time::Duration::from_secs(15);

/// Checks everything before changing anything: a single existing Qserv database anywhere
/// refuses the install and nothing is created on any node.
async fn check(ctx: &JobCtx) -> Result<(), StepError> {
    let (mode, _) = ctx.core.mode();
    if mode == Mode::Installing {
        ctx.log(
            Level::Info,
            "",
            "resuming an install: databases found now are this install's own",
        )
        .await;
        ctx.push_mode(Mode::Installing).await;
        return Ok(());
    }
    take_over(ctx).await?;
    let found = inspect_all(ctx, &ctx.nodes()).await?;
    let existing: Vec<String> = found
        .iter()
        .flat_map(|(node, dbs)| dbs.iter().map(move |db| format!("{db} on {node}")))
        .collect();
    if !existing.is_empty() {
        return Err(StepError::Refused(format!(
            "refusing to install over an existing Qserv instance: {} already exists; \
             take it over with 'qserv install --adopt', or drop those databases first",
            existing.join(", ")
        )));
    }
    let (_, epoch) = ctx.core.mode();
    ctx.core
        .set_mode(Mode::Installing, next_epoch(epoch)?)
        .await?;
    ctx.push_mode(Mode::Installing).await;
    Ok(())
}

/// The Qserv databases on each node, asked under the take-over epoch.
pub(super) async fn inspect_all(
    ctx: &JobCtx,
    nodes: &[Node],
) -> Result<Vec<(String, Vec<String>)>, StepError> {
    let authority = ctx.core.authority();
    ctx.fan_out("inspect", nodes, FanOut::ALL, |node| {
        let authority = authority.clone();
        async move {
            let databases = ctx
                .core
                .agents
                .inspect(&node, &authority)
                .await
                .map_err(|e| e.to_string())?;
            let detail = if databases.is_empty() {
                "no Qserv database".to_owned()
            } else {
                format!("found {}", databases.join(", "))
            };
            Ok((detail, databases))
        }
    })
    .await
}

pub(super) async fn accounts(ctx: &JobCtx, nodes: &[Node]) -> Result<(), StepError> {
    let authority = ctx.core.authority();
    ctx.fan_out("accounts", nodes, FanOut::ALL, |node| {
        let authority = authority.clone();
        async move {
            let reply = ctx
                .core
                .agents
                .ensure_accounts(&node, &authority)
                .await
                .map_err(|e| e.to_string())?;
            ctx.core.observe(&node.name, &reply.observed);
            Ok((format!("account {} ready", reply.value.join(", ")), ()))
        }
    })
    .await
    .map(|_| ())
}

/// Brings every node's module to target; the same engine `upgrade apply` uses.
pub(super) async fn schemas(ctx: &JobCtx, nodes: &[Node]) -> Result<(), StepError> {
    ctx.fan_out("migrate", nodes, FanOut::ALL, |node| async move {
        migrate_node(ctx, &node).await.map(|detail| (detail, ()))
    })
    .await
    .map(|_| ())
}

/// Harvests each worker's id (checked fresh) and registers it under that id in
/// `config_worker`.
pub(super) async fn register(ctx: &JobCtx, nodes: &[Node]) -> Result<(), StepError> {
    let Some(repl) = ctx.repl() else {
        return Err(StepError::Refused(
            "the instance has no repl node to hold the worker registry; add one to the spec"
                .to_owned(),
        ));
    };
    let workers: Vec<Node> = nodes
        .iter()
        .filter(|n| n.role == Role::Worker)
        .cloned()
        .collect();
    let view = ctx
        .wait_until(&workers, SETTLE_TIMEOUT, "worker id found", |node, _| {
            node.worker_id()
                .is_none()
                .then(|| "no id in qservw_worker.Id yet".to_owned())
        })
        .await?;
    let mut ids: Vec<(String, String)> = Vec::new();
    for worker in &workers {
        let id = view
            .node(&worker.name)
            .and_then(|n| n.worker_id())
            .unwrap_or_default()
            .to_owned();
        let elsewhere = view.nodes.iter().find(|n| {
            !workers.iter().any(|w| w.name == n.name()) && n.worker_id() == Some(id.as_str())
        });
        if let Some(other) = elsewhere {
            return Err(StepError::Failed(format!(
                "{} reports worker id {id}, which {} already uses; every worker needs its own",
                worker.name,
                other.name()
            )));
        }
        if let Some((other, _)) = ids.iter().find(|(_, known)| *known == id) {
            return Err(StepError::Failed(format!(
                "{other} and {} both report worker id {id}; every worker needs its own",
                worker.name
            )));
        }
        ids.push((worker.name.clone(), id));
    }
    let authority = ctx.core.authority();
    let reply = ctx
        .core
        .agents
        .register_workers(
            &repl,
            &authority,
            ids.iter().map(|(_, id)| id.clone()).collect(),
        )
        .await
        .map_err(|e| StepError::Failed(format!("{}: {e}", repl.name)))?;
    ctx.core.observe(&repl.name, &reply.observed);
    let registered: Vec<(String, Option<String>)> = ids
        .iter()
        .map(|(name, id)| (name.clone(), Some(id.clone())))
        .collect();
    ctx.core.store.set_registered_ids(&registered).await?;
    for (name, id) in &ids {
        let note = if reply.value.contains(id) {
            "registered"
        } else {
            "already registered"
        };
        ctx.node(
            name,
            crate::domain::job::NodeState::Done,
            format!("{note} as {id}"),
            "",
        )
        .await;
        ctx.log(
            Level::Info,
            name,
            format!("worker id {id} {note} in config_worker"),
        )
        .await;
    }
    ctx.core.reload().await?;
    Ok(())
}

/// Each account logs in and sees its database; then versions at target, clean, every worker
/// registered (checked fresh): what `up` will demand.
pub(super) async fn validate(ctx: &JobCtx, nodes: &[Node]) -> Result<(), StepError> {
    let authority = ctx.core.authority();
    ctx.fan_out("validate", nodes, FanOut::ALL, |node| {
        let authority = authority.clone();
        async move {
            let problems = ctx
                .core
                .agents
                .validate(&node, &authority)
                .await
                .map_err(|e| e.to_string())?;
            if problems.is_empty() {
                Ok(("accounts log in and see their databases".to_owned(), ()))
            } else {
                Err(problems.join("; "))
            }
        }
    })
    .await?;
    ctx.wait_until(nodes, SETTLE_TIMEOUT, "valid", |node, _| {
        unavailable_reason(node)
    })
    .await
    .map(|_| ())
    .map_err(|e| StepError::Failed(format!("validation: {e}")))
}
