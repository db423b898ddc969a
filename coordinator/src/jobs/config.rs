//! `config apply` and `config rollback` (DESIGN §17): a stored version of a service's template
//! rendered and staged on every node that runs the service, and only once every node has done
//! so, written on each. A node that cannot render stops the job before any file changes. In a
//! rolling apply each node's file is written and its service restarted before the next; the
//! first node whose service does not come back gets its previous file back and stops the job.

use super::ctx::{FanOut, JobCtx, Level, StepError};
use crate::agents::api::ConfigWrite;
use crate::domain::Node;
use crate::domain::job::{ConfigApplyParams, ConfigApplyStep, NodeState};
use crate::instance::InstanceState;
use crate::instance::configs::config_targets;

/// The version's text, and the nodes it is for as a probe made now shows them.
async fn what_and_where(
    ctx: &JobCtx,
    params: &ConfigApplyParams,
) -> Result<(String, Vec<Node>, InstanceState), StepError> {
    let stored = ctx
        .core
        .store
        .config_version(&params.service, params.version)
        .await?;
    let Some((_, template)) = stored else {
        return Err(StepError::Failed(format!(
            "version {} of {}'s template is not in the store",
            params.version, params.service
        )));
    };
    let view = ctx.fresh_view(&ctx.nodes()).await;
    let targets = config_targets(&view, &params.service, params.role, &params.nodes)
        .map_err(StepError::Refused)?;
    let nodes = ctx
        .nodes()
        .into_iter()
        .filter(|n| targets.contains(&n.name))
        .collect();
    Ok((template, nodes, view))
}

/// The version of `service`'s file a node showed in `view`.
fn shown_version(view: &InstanceState, node: &str, params: &ConfigApplyParams) -> u32 {
    view.node(node)
        .and_then(|n| n.observed.as_ref())
        .and_then(|o| o.service_states.iter().find(|s| s.name == params.service))
        .and_then(|s| s.config_version)
        .unwrap_or(0)
}

pub async fn apply(
    ctx: &JobCtx,
    params: &ConfigApplyParams,
    step: ConfigApplyStep,
) -> Result<(), StepError> {
    let (template, nodes, view) = what_and_where(ctx, params).await?;
    match step {
        ConfigApplyStep::Render => render(ctx, params, &template, &nodes).await,
        ConfigApplyStep::Write if params.rolling => {
            rolling(ctx, params, &template, &nodes, &view).await
        }
        ConfigApplyStep::Write => write_all(ctx, params, &template, &nodes, &view).await,
    }
}

/// Every node renders and stages the file; any that cannot means nothing is written anywhere.
async fn render(
    ctx: &JobCtx,
    params: &ConfigApplyParams,
    template: &str,
    nodes: &[Node],
) -> Result<(), StepError> {
    let auth = ctx.core.authority();
    ctx.fan_out("render", nodes, FanOut::ALL, |node| {
        let auth = auth.clone();
        async move {
            let prepared = ctx
                .core
                .agents
                .prepare_config(&node, &auth, &params.service, template, true)
                .await
                .map_err(|e| e.to_string())?;
            let detail = if prepared.diff.is_empty() {
                format!("{} staged: no change", prepared.path)
            } else {
                format!("{} staged", prepared.path)
            };
            Ok((detail, ()))
        }
    })
    .await
    .map(|_| ())
    .map_err(|e| match e {
        StepError::Failed(why) => {
            StepError::Refused(format!("{why}; no file was changed on any node"))
        }
        other => other,
    })
}

/// Writes the staged file on one node: the hash it was rendered to is asked again (the
/// staging may be from a run of this job before its coordinator stopped).
async fn write_one(
    ctx: &JobCtx,
    params: &ConfigApplyParams,
    template: &str,
    node: &Node,
) -> Result<String, String> {
    let auth = ctx.core.authority();
    let agents = &ctx.core.agents;
    let prepared = agents
        .prepare_config(node, &auth, &params.service, template, false)
        .await
        .map_err(|e| e.to_string())?;
    let write = ConfigWrite::Install {
        version: params.version,
        rendered_sha256: prepared.rendered_sha256,
    };
    let written = agents
        .commit_config(node, &auth, &params.service, &write, params.rolling)
        .await
        .map_err(|e| e.to_string())?;
    ctx.core.observe(&node.name, &written.observed);
    Ok(prepared.path)
}

/// Every node writes its staged file at once. A node that fails keeps the file it had (the
/// agent replaces it by a rename, or not at all); the job says who holds which version.
async fn write_all(
    ctx: &JobCtx,
    params: &ConfigApplyParams,
    template: &str,
    nodes: &[Node],
    before: &InstanceState,
) -> Result<(), StepError> {
    let written = ctx
        .fan_out("write", nodes, FanOut::ALL, |node| async move {
            let path = write_one(ctx, params, template, &node).await?;
            Ok((format!("{path}: version {}", params.version), ()))
        })
        .await;
    if let Err(StepError::Failed(why)) = written {
        let after = ctx.fresh_view(nodes).await;
        let holding: Vec<String> = nodes
            .iter()
            .map(|n| {
                let now = shown_version(&after, &n.name, params);
                let was = shown_version(before, &n.name, params);
                let version = if after.node(&n.name).is_some_and(|s| s.reachable()) {
                    now
                } else {
                    was
                };
                format!("{} holds version {version}", n.name)
            })
            .collect();
        return Err(StepError::Failed(format!(
            "{why}; {}; 'qserv config apply' again writes the rest",
            holding.join(", ")
        )));
    }
    written.map(|_| ())
}

/// Node by node: write, restart the service, and go on only once it is back. The first node
/// whose service does not come back gets its previous file back (and its service restarted on
/// it), and the job stops there.
async fn rolling(
    ctx: &JobCtx,
    params: &ConfigApplyParams,
    template: &str,
    nodes: &[Node],
    before: &InstanceState,
) -> Result<(), StepError> {
    let auth = ctx.core.authority();
    let agents = &ctx.core.agents;
    let services = [params.service.clone()];
    ctx.nodes_pending(nodes, "write and restart").await;
    for node in nodes {
        if ctx.is_cancelled() {
            return Err(StepError::Cancelled);
        }
        ctx.node(&node.name, NodeState::Running, "write and restart", "")
            .await;
        let path = match write_one(ctx, params, template, node).await {
            Ok(path) => path,
            Err(why) => {
                ctx.node(&node.name, NodeState::Failed, "write", why.clone())
                    .await;
                return Err(StepError::Failed(format!(
                    "{}: the file was not written: {why}; the nodes before it hold version {}",
                    node.name, params.version
                )));
            }
        };
        let restarted = agents
            .restart_services(node, &auth, &services)
            .await
            .map_err(|e| e.to_string());
        if let Err(why) = restarted {
            let previous = shown_version(before, &node.name, params);
            let back = ConfigWrite::Restore { version: previous };
            let put_back = agents
                .commit_config(node, &auth, &params.service, &back, true)
                .await;
            let again = agents.restart_services(node, &auth, &services).await;
            let outcome = match (put_back, again) {
                (Ok(_), Ok(_)) => format!(
                    "its previous file (version {previous}) is back and {} restarted on it",
                    params.service
                ),
                (Ok(_), Err(e)) => format!(
                    "its previous file (version {previous}) is back, but {} did not restart on it either: {e}",
                    params.service
                ),
                (Err(e), _) => format!("its previous file could not be put back: {e}"),
            };
            ctx.node(&node.name, NodeState::Failed, "restart", why.clone())
                .await;
            ctx.log(
                Level::Error,
                &node.name,
                format!(
                    "{} did not come back on version {}: {why}; {outcome}",
                    params.service, params.version
                ),
            )
            .await;
            return Err(StepError::Failed(format!(
                "{}: {} did not come back on the new file: {why}; {outcome}; the nodes before it hold version {}",
                node.name, params.service, params.version
            )));
        }
        let detail = format!(
            "{path}: version {}, {} restarted",
            params.version, params.service
        );
        ctx.node(&node.name, NodeState::Done, detail.clone(), "")
            .await;
        ctx.log(Level::Info, &node.name, detail).await;
    }
    Ok(())
}
