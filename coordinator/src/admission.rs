//! What a mutating request must satisfy before its job is created, beyond the mode (which the
//! engine checks against the guard table): a spec that parses, names that exist, a confirmation
//! that matches, workers whose identity can be trusted. A refusal here changes nothing.

use std::sync::Arc;
use std::time::Duration;

use qserv_proto::names::role_name;
use qserv_proto::v1::{AgentStatusRequest, Mode, Role};

use crate::agents::{request, status_text};
use crate::core::Core;
use crate::jobs::SubmitError;
use crate::spec::{InstanceSpec, NodeSpec};
use crate::store::{StoreError, spec_conflicts};

const MAX_SPEC_BYTES: usize = 1024 * 1024;

fn refused(message: impl Into<String>) -> SubmitError {
    SubmitError::Refused(message.into())
}

fn internal(err: StoreError) -> SubmitError {
    SubmitError::Internal(err.to_string())
}

fn parse_spec(text: &str) -> Result<InstanceSpec, SubmitError> {
    if text.len() > MAX_SPEC_BYTES {
        return Err(refused(
            "the spec is larger than 1 MiB; check that it is the right file",
        ));
    }
    InstanceSpec::parse(text)
        .map_err(|(line, problem)| refused(format!("spec, line {line}: {problem}")))
}

/// An instance needs a czar, a worker and its one repl node.
fn check_roles(spec: &InstanceSpec) -> Result<(), SubmitError> {
    let count = |role| spec.nodes.iter().filter(|n| n.role == role).count();
    let missing: Vec<&str> = [
        (Role::Czar, "a czar"),
        (Role::Worker, "a worker"),
        (Role::Repl, "a repl node"),
    ]
    .into_iter()
    .filter(|(role, _)| count(*role) == 0)
    .map(|(_, what)| what)
    .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(refused(format!(
            "the instance spec has no {}; add the node(s) and run install again",
            missing.join(", no ")
        )))
    }
}

/// `install [--spec] [--adopt]`: declares the spec's inventory on an uninstalled instance, or
/// checks it against the install in progress.
pub async fn install(
    core: &Arc<Core>,
    spec_text: String,
    adopt: bool,
) -> Result<Option<String>, SubmitError> {
    let (mode, _) = core.mode();
    if adopt && mode == Mode::Installing {
        return Err(refused(
            "an install is in progress; finish it with 'qserv install', or 'qserv delete' it before adopting",
        ));
    }
    if spec_text.is_empty() {
        let inventory = core
            .store
            .load()
            .await
            .map_err(internal)?
            .filter(|i| !i.name.is_empty());
        let Some(inventory) = inventory else {
            return Err(refused(
                "no inventory to install: pass --spec FILE, or start the coordinator with --spec",
            ));
        };
        check_roles(&inventory.spec())?;
        return Ok(None);
    }
    let spec = parse_spec(&spec_text)?;
    check_roles(&spec)?;
    if mode == Mode::Installing {
        if let Some(inventory) = core.store.load().await.map_err(internal)? {
            let problems = spec_conflicts(&inventory, &spec);
            if !problems.is_empty() {
                return Err(refused(format!(
                    "an install of '{}' is in progress and the spec disagrees with it: {}; \
                     run 'qserv install' without --spec to resume it, or 'qserv delete' it first",
                    inventory.name,
                    problems.join("; ")
                )));
            }
        }
        return Ok(None);
    }
    core.store.declare(&spec).await.map_err(internal)?;
    core.reload().await.map_err(internal)?;
    Ok(None)
}

/// `up` cannot succeed while a worker's identity is in doubt: refuse at once, naming them.
pub fn up(core: &Core) -> Result<Option<String>, SubmitError> {
    let status = core.snapshot.borrow();
    let doubtful: Vec<String> = status
        .nodes
        .iter()
        .filter(|n| !n.identity_problem.is_empty())
        .map(|n| format!("{} {}", n.name, n.identity_problem))
        .collect();
    if doubtful.is_empty() {
        Ok(None)
    } else {
        Err(refused(format!(
            "worker identity cannot be trusted: {}",
            doubtful.join("; ")
        )))
    }
}

pub fn delete(core: &Core, confirm: &str) -> Result<Option<String>, SubmitError> {
    let name = core.instance_name();
    if confirm != name {
        return Err(refused(format!(
            "--confirm '{confirm}' does not match the instance name '{name}'; delete drops every Qserv database of the instance, so repeat its name exactly"
        )));
    }
    Ok(None)
}

fn node_names(core: &Core) -> Vec<String> {
    core.snapshot
        .borrow()
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .collect()
}

pub fn upgrade_apply(core: &Core, wanted: &[String]) -> Result<Option<String>, SubmitError> {
    let known = node_names(core);
    let unknown: Vec<&str> = wanted
        .iter()
        .filter(|n| !known.contains(n))
        .map(String::as_str)
        .collect();
    if unknown.is_empty() {
        Ok(None)
    } else {
        Err(refused(format!(
            "--nodes names nodes the instance does not have: {}",
            unknown.join(", ")
        )))
    }
}

pub fn repair(core: &Core, node: &str, module: &str) -> Result<Option<String>, SubmitError> {
    let role = core
        .snapshot
        .borrow()
        .nodes
        .iter()
        .find(|n| n.name == node)
        .map(|n| Role::try_from(n.role).unwrap_or(Role::Unspecified));
    match role {
        None => Err(refused(format!("no node {node} in the inventory"))),
        Some(role) if role_name(role) != module => Err(refused(format!(
            "{node} is a {0} node; its module is {0}, not {module}",
            role_name(role)
        ))),
        Some(_) => Ok(None),
    }
}

/// `workers add`: every check that can be made before anything changes, then the new nodes
/// join the inventory (so their monitors report them) and the job's parameters name them.
pub async fn workers_add(core: &Arc<Core>, spec_text: &str) -> Result<Vec<String>, SubmitError> {
    let spec = parse_spec(spec_text)?;
    let instance = core.instance_name();
    if spec.name != instance {
        return Err(refused(format!(
            "the spec names instance '{}' but this is '{instance}'",
            spec.name
        )));
    }
    if let Some(other) = spec.nodes.iter().find(|n| n.role != Role::Worker) {
        return Err(refused(format!(
            "node '{}' is a {} node; 'workers add' adds worker nodes only",
            other.name,
            role_name(other.role)
        )));
    }
    let status = core.snapshot.borrow().clone();
    for node in &spec.nodes {
        if let Some(known) = status
            .nodes
            .iter()
            .find(|n| n.name == node.name || n.agent == node.agent)
        {
            return Err(refused(format!(
                "node '{}' ({}) is already in the inventory as '{}' at {}",
                node.name, node.agent, known.name, known.agent
            )));
        }
    }
    for node in &spec.nodes {
        check_new_worker(core, node, &status).await?;
    }
    core.store.add_nodes(&spec.nodes).await.map_err(internal)?;
    core.reload().await.map_err(internal)?;
    Ok(spec.nodes.into_iter().map(|n| n.name).collect())
}

/// The new worker's agent answers, serves a worker database that is ready, and does not bring
/// an id that is already registered or used by another worker.
async fn check_new_worker(
    core: &Core,
    node: &NodeSpec,
    status: &qserv_proto::v1::InstanceStatus,
) -> Result<(), SubmitError> {
    let agent = core
        .agents
        .client(&node.agent)
        .map_err(refused)?
        .get_status(request(AgentStatusRequest {}, Duration::from_secs(5)))
        .await
        .map_err(|s| {
            refused(format!(
                "{}: agent at {} unreachable ({}); start it first",
                node.name,
                node.agent,
                status_text(&s)
            ))
        })?
        .into_inner();
    if agent.role != i32::from(Role::Worker) {
        return Err(refused(format!(
            "{}: the agent at {} serves a {} database, not a worker",
            node.name,
            node.agent,
            role_name(Role::try_from(agent.role).unwrap_or(Role::Unspecified))
        )));
    }
    if agent.name != node.name {
        return Err(refused(format!(
            "{}: the agent at {} calls itself '{}'; use the same name in the spec and in --name",
            node.name, node.agent, agent.name
        )));
    }
    if !agent.database.as_ref().is_some_and(|d| d.ready) {
        let why = agent.database.map(|d| d.error).unwrap_or_default();
        return Err(refused(format!(
            "{}: its database is not available ({why})",
            node.name
        )));
    }
    if let Some(id) = agent.worker_id.filter(|id| !id.is_empty()) {
        if status.registry.iter().any(|r| r.name == id) {
            return Err(refused(format!(
                "{}: its worker id {id} is already registered in config_worker; a worker can be registered once",
                node.name
            )));
        }
        if let Some(twin) = status
            .nodes
            .iter()
            .find(|n| n.worker_id.as_deref() == Some(id.as_str()))
        {
            return Err(refused(format!(
                "{}: its worker id {id} is already used by {}",
                node.name, twin.name
            )));
        }
    }
    Ok(())
}

pub fn workers_remove(core: &Core, name: &str) -> Result<Option<String>, SubmitError> {
    let status = core.snapshot.borrow();
    let Some(node) = status.nodes.iter().find(|n| n.name == name) else {
        return Err(refused(format!(
            "no node {name} in the inventory; 'qserv workers list' shows the workers"
        )));
    };
    if node.role != i32::from(Role::Worker) {
        return Err(refused(format!(
            "{name} is not a worker; 'workers remove' removes workers only"
        )));
    }
    let workers = status
        .nodes
        .iter()
        .filter(|n| n.role == i32::from(Role::Worker))
        .count();
    if workers <= 1 {
        return Err(refused(format!(
            "{name} is the last worker; an instance needs at least one"
        )));
    }
    Ok(None)
}
