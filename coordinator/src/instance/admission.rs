//! Whether a job may run: the guard table, then what its request must satisfy (a spec with the
//! roles an instance needs, names that exist or must not, a confirmation that matches, nodes
//! whose identity can be trusted, new agents that answer as what they are meant to be).
//!
//! One pure function decides, on facts gathered for the decision (the mode and inventory from
//! the store, fresh probes of the nodes that matter). It runs when a request is submitted,
//! with or without `--wait`, and again when a queued job starts. It changes nothing: declaring
//! an instance or adding nodes are steps of the job.

use std::collections::BTreeMap;

use crate::agents::api::{AgentError, Holdings};
use crate::domain::job::{
    ConfigApplyParams, InstallParams, JobSpec, RepairParams, RestartParams, UpgradeParams,
    WorkersAddParams, WorkersReplaceParams,
};
use crate::domain::spec::InstanceSpec;
use crate::domain::{Node, Observation, Role};
use crate::instance::fsm::{self, Rule};
use crate::instance::{InstanceState, Mode};

/// Larger than any real spec (a thousand nodes fit in ~100 KiB); a bigger one is a mistake.
const MAX_SPEC_BYTES: usize = 1024 * 1024;

/// Parses a spec sent with a request; a refusal names the line.
pub fn parse_spec(text: &str) -> Result<InstanceSpec, String> {
    if text.len() > MAX_SPEC_BYTES {
        return Err("the spec is larger than 1 MiB; check that it is the right file".to_owned());
    }
    InstanceSpec::parse(text).map_err(|(line, problem)| format!("spec, line {line}: {problem}"))
}
use crate::store::{Inventory, spec_conflicts};

/// What admission decides on.
#[derive(Debug, Clone)]
pub struct Facts {
    pub mode: Mode,
    pub inventory: Option<Inventory>,
    /// The status with the nodes admission needs checked now.
    pub status: InstanceState,
    /// Fresh probes of agents that are not in the inventory yet (`workers add`).
    pub newcomers: BTreeMap<String, Result<Observation, AgentError>>,
    /// `workers remove|replace`: what the leaving worker's registry row would take with it,
    /// read now through the repl node's agent; `None` when there is nothing to read it by.
    pub holdings: Option<Result<Holdings, AgentError>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Run,
    /// Nothing to do; the message says why.
    NoOp(String),
}

/// The nodes whose fresh state admission of `spec` needs: (inventory nodes, newcomers).
pub fn needs(spec: &JobSpec, inventory: Option<&Inventory>) -> (Vec<Node>, Vec<Node>) {
    let known: Vec<Node> = inventory
        .map(|i| i.nodes.iter().map(|n| n.spec.clone()).collect())
        .unwrap_or_default();
    match spec {
        // A restart rests on every node's schema and protocol as they are now; a configuration
        // on which nodes run the service, and that each answers.
        JobSpec::Up(_) | JobSpec::Restart(_) | JobSpec::ConfigApply(_) => (known, Vec::new()),
        // Queries run on the czars, ingests on the repl node: asked now.
        JobSpec::Down(_) => (
            known
                .into_iter()
                .filter(|n| n.role.carries_work())
                .collect(),
            Vec::new(),
        ),
        // The worker's id, and the registry that holds it.
        JobSpec::WorkersRemove(crate::domain::job::WorkersRemoveParams { name, .. })
        | JobSpec::WorkersState(crate::domain::job::WorkersStateParams { name, .. }) => (
            known
                .into_iter()
                .filter(|n| n.name == *name || n.role == Role::Repl)
                .collect(),
            Vec::new(),
        ),
        JobSpec::WorkersReplace(params) => needs(&JobSpec::WorkersAdd(params.adding()), inventory),
        JobSpec::WorkersAdd(params) => {
            let members = known
                .into_iter()
                .filter(|n| matches!(n.role, Role::Worker | Role::Repl))
                .collect();
            let new = params
                .nodes
                .iter()
                .filter(|n| !inventory.is_some_and(|i| i.nodes.iter().any(|k| k.spec == **n)))
                .cloned()
                .collect();
            (members, new)
        }
        // Whether the database is dirty is decided on a probe made now.
        JobSpec::Repair(params) => (
            known
                .into_iter()
                .filter(|n| n.name == params.node)
                .collect(),
            Vec::new(),
        ),
        _ => (Vec::new(), Vec::new()),
    }
}

/// Admits `spec` on `facts`, or says why not.
pub fn admit(spec: &JobSpec, facts: &Facts) -> Result<Verdict, String> {
    match fsm::check(fsm::Op::of(spec), facts.mode)? {
        Rule::NoOp if matches!(spec, JobSpec::Restart(_)) => {
            return Ok(Verdict::NoOp(
                "nothing to restart: in maintenance mode the services are stopped".to_owned(),
            ));
        }
        Rule::NoOp => {
            let now = if matches!(spec, JobSpec::Delete(_)) {
                Mode::Uninstalled
            } else {
                facts.mode
            };
            return Ok(Verdict::NoOp(format!(
                "nothing to do: the instance is already {}",
                now.name()
            )));
        }
        Rule::Allow | Rule::Refuse => {}
    }
    match spec {
        JobSpec::Install(params) => install(params, false, facts),
        JobSpec::Adopt(params) => install(params, true, facts),
        JobSpec::Up(_) => up(facts),
        JobSpec::Down(params) => crate::domain::activity::refusal(
            "down",
            facts.status.running_activity(),
            params.activity,
        ),
        JobSpec::Delete(params) => delete(&params.confirm, facts),
        JobSpec::Upgrade(params) => upgrade(params, facts),
        JobSpec::Repair(params) => repair(params, facts),
        JobSpec::WorkersAdd(params) => workers_add(params, facts),
        JobSpec::WorkersRemove(params) => workers_remove(&params.name, facts)
            .and_then(|()| leaving(&params.name, params.forget_replicas, facts)),
        JobSpec::Restart(params) => restart(params, facts).and_then(|()| {
            crate::domain::activity::refusal(
                "a rolling restart",
                facts.status.running_activity(),
                params.activity,
            )
        }),
        JobSpec::WorkersReplace(params) => workers_replace(params, facts)
            .and_then(|()| leaving(&params.old, params.forget_replicas, facts)),
        JobSpec::WorkersState(params) => workers_state(&params.name, facts),
        JobSpec::ConfigApply(params) => config_apply(params, facts),
    }
    .map(|()| Verdict::Run)
}

/// What a forced `down` or `restart` overrides: the activity it will stop the services under,
/// for the audit trail.
pub fn overridden(spec: &JobSpec, facts: &Facts) -> Option<String> {
    let policy = match spec {
        JobSpec::Down(p) => p.activity,
        JobSpec::Restart(p) => p.activity,
        _ => return None,
    };
    if !policy.force || facts.mode != Mode::Normal {
        return None;
    }
    facts.status.running_activity().describe()
}

fn installed(facts: &Facts) -> Option<&Inventory> {
    facts.inventory.as_ref().filter(|i| !i.name.is_empty())
}

/// Refuses a change meant for another instance (DESIGN §14): `meant` is the instance the
/// request names, `here` the one this coordinator runs (empty before any) or the one an
/// install's spec declares.
pub fn check_instance(meant: Option<&str>, here: &str) -> Result<(), String> {
    match meant {
        Some(meant) if !here.is_empty() && meant != here => Err(format!(
            "this coordinator runs instance '{here}', but the request is meant for '{meant}': nothing was changed; check --instance and --coordinator"
        )),
        _ => Ok(()),
    }
}

/// An instance needs a czar, a worker and its one repl node.
pub fn check_roles(spec: &InstanceSpec) -> Result<(), String> {
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
        Err(format!(
            "the instance spec has no {}; add the node(s) and run install again",
            missing.join(", no ")
        ))
    }
}

fn install(params: &InstallParams, adopt: bool, facts: &Facts) -> Result<(), String> {
    if adopt && facts.mode == Mode::Installing {
        return Err(
            "an install is in progress; finish it with 'qserv install', or 'qserv delete' it before adopting"
                .to_owned(),
        );
    }
    let Some(spec) = &params.spec else {
        let Some(inventory) = installed(facts) else {
            return Err(
                "no inventory to install: pass --spec FILE, or start the coordinator with --spec"
                    .to_owned(),
            );
        };
        return check_roles(&inventory.spec());
    };
    check_roles(spec)?;
    if facts.mode == Mode::Installing
        && let Some(inventory) = installed(facts)
    {
        let problems: Vec<String> = spec_conflicts(inventory, spec)
            .iter()
            .map(ToString::to_string)
            .collect();
        if !problems.is_empty() {
            return Err(format!(
                "an install of '{}' is in progress and the spec disagrees with it: {}; \
                 run 'qserv install' without --spec to resume it, or 'qserv delete' it first",
                inventory.name,
                problems.join("; ")
            ));
        }
    }
    Ok(())
}

/// `up` cannot succeed while a node's identity or epoch is in doubt: refuse at once.
fn up(facts: &Facts) -> Result<(), String> {
    let doubtful: Vec<String> = facts
        .status
        .nodes
        .iter()
        .filter_map(|n| {
            let problems: Vec<&str> = [n.identity_problem.as_deref(), n.epoch_problem.as_deref()]
                .into_iter()
                .flatten()
                .filter(|p| !p.is_empty())
                .collect();
            (!problems.is_empty()).then(|| format!("{}: {}", n.name(), problems.join("; ")))
        })
        .collect();
    if doubtful.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "node identity cannot be trusted: {}",
            doubtful.join("; ")
        ))
    }
}

/// The nodes a restart works on, in inventory order.
pub fn restart_targets(params: &RestartParams, state: &InstanceState) -> Vec<Node> {
    state
        .nodes
        .iter()
        .filter(|n| params.nodes.is_empty() || params.nodes.contains(&n.node.name))
        .filter(|n| params.role.is_none_or(|role| n.node.role == role))
        .filter(|n| params.services.is_empty() || runs_any(n, &params.services))
        .map(|n| n.node.clone())
        .collect()
}

/// Whether the node's agent defines one of `services` (as it said last).
fn runs_any(node: &crate::instance::NodeState, services: &[qserv_model::ServiceName]) -> bool {
    node.observed
        .as_ref()
        .is_some_and(|o| o.service_states.iter().any(|s| services.contains(&s.name)))
}

/// A rolling restart keeps the instance in `normal`: only an instance whose every schema is at
/// target and every agent speaks this protocol may go through one, and every node restarted
/// must be reachable now.
fn restart(params: &RestartParams, facts: &Facts) -> Result<(), String> {
    let Some(inventory) = installed(facts) else {
        return Err("no instance is installed".to_owned());
    };
    let nodes: Vec<Node> = inventory.nodes.iter().map(|n| n.spec.clone()).collect();
    let unknown: Vec<&str> = params
        .nodes
        .iter()
        .filter(|name| !nodes.iter().any(|n| &n.name == *name))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "--nodes names nodes the instance does not have: {}",
            unknown.join(", ")
        ));
    }
    let targets = restart_targets(params, &facts.status);
    if targets.is_empty() && !params.services.is_empty() {
        let names: Vec<String> = params.services.iter().map(ToString::to_string).collect();
        return Err(format!(
            "no node matching --nodes and --role runs {}: nothing would restart",
            names.join(", ")
        ));
    }
    if targets.is_empty() {
        return Err("no node matches --nodes and --role: nothing would restart".to_owned());
    }
    let mut problems = Vec::new();
    for node in &facts.status.nodes {
        if node.reachable() && !node.compatible() {
            problems.push(format!(
                "{}: {}",
                node.name(),
                qserv_proto::upgrade_hint("agent", node.protocol_version())
            ));
        }
        for schema in &node.schema {
            if schema.dirty || !schema.at_target() {
                let show = |v: Option<i64>| v.map_or_else(|| "none".to_owned(), |v| v.to_string());
                problems.push(format!(
                    "{}: {} is at version {}{} (target {})",
                    node.name(),
                    schema.module,
                    show(schema.version),
                    if schema.dirty { ", dirty" } else { "" },
                    show(schema.target)
                ));
            }
        }
        if targets.iter().any(|t| t.name == node.name()) && !node.reachable() {
            problems.push(format!("{}: its agent cannot be reached", node.name()));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "a rolling restart needs every schema at target and every agent compatible and reachable: {}; bring the instance down for upgrades first",
            problems.join("; ")
        ))
    }
}

fn delete(confirm: &str, facts: &Facts) -> Result<(), String> {
    let name = installed(facts).map(|i| i.name.as_str()).unwrap_or("");
    if confirm != name {
        return Err(format!(
            "--confirm '{confirm}' does not match the instance name '{name}'; delete drops every Qserv database of the instance, so repeat its name exactly"
        ));
    }
    Ok(())
}

fn find<'a>(facts: &'a Facts, name: &str) -> Option<&'a Node> {
    installed(facts)?
        .nodes
        .iter()
        .map(|n| &n.spec)
        .find(|n| n.name == name)
}

fn upgrade(params: &UpgradeParams, facts: &Facts) -> Result<(), String> {
    let unknown: Vec<&str> = params
        .nodes
        .iter()
        .filter(|n| find(facts, n).is_none())
        .map(String::as_str)
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "--nodes names nodes the instance does not have: {}",
            unknown.join(", ")
        ))
    }
}

fn repair(params: &RepairParams, facts: &Facts) -> Result<(), String> {
    let Some(node) = find(facts, &params.node) else {
        return Err(format!(
            "no node {} in the inventory; 'qserv status' lists the nodes",
            params.node
        ));
    };
    if node.role.module() != params.module {
        return Err(format!(
            "{} is a {1} node; its module is {1}, not {2}",
            node.name,
            node.role,
            params.module.name()
        ));
    }
    if params.version < 0 {
        return Err(format!(
            "version {} is not a schema version; versions start at 0",
            params.version
        ));
    }
    let schema = facts
        .status
        .node(&params.node)
        .filter(|n| n.reachable())
        .and_then(|n| n.schema.iter().find(|s| s.module == params.module));
    if let Some(target) = schema.and_then(|s| s.target)
        && params.version > target
    {
        return Err(format!(
            "version {} is above {}'s target {target}; no migration of this release reaches it",
            params.version,
            params.module.database()
        ));
    }
    if let Some(schema) = schema
        && !schema.dirty
        && !params.force
    {
        return Err(format!(
            "{}'s {} is not dirty; there is nothing to repair (pass --force to set its version anyway)",
            params.node,
            params.module.database()
        ));
    }
    Ok(())
}

fn workers_add(params: &WorkersAddParams, facts: &Facts) -> Result<(), String> {
    let Some(inventory) = installed(facts) else {
        return Err("no instance is installed; run 'qserv install' first".to_owned());
    };
    if params.instance != inventory.name {
        return Err(format!(
            "the spec names instance '{}' but this is '{}'",
            params.instance, inventory.name
        ));
    }
    if let Some(other) = params.nodes.iter().find(|n| n.role != Role::Worker) {
        return Err(format!(
            "node '{}' is a {} node; 'workers add' adds worker nodes only",
            other.name, other.role
        ));
    }
    for node in &params.nodes {
        if let Some(known) = inventory
            .nodes
            .iter()
            .map(|n| &n.spec)
            .find(|k| k.name == node.name || k.agent == node.agent)
        {
            return Err(format!(
                "node '{}' ({}) is already in the inventory as '{}' at {}",
                node.name, node.agent, known.name, known.agent
            ));
        }
    }
    let mut ids: Vec<(&str, String)> = Vec::new();
    for node in &params.nodes {
        let id = check_newcomer(node, facts)?;
        if let Some(id) = id {
            if let Some((twin, _)) = ids.iter().find(|(_, known)| *known == id) {
                return Err(format!(
                    "{} and {twin} both report worker id {id}; every worker needs its own",
                    node.name
                ));
            }
            ids.push((&node.name, id));
        }
    }
    Ok(())
}

/// A new worker's agent answers (fresh), serves a worker database that is ready, calls itself
/// by the spec's name, and does not bring an id that is registered or used by another worker.
fn check_newcomer(node: &Node, facts: &Facts) -> Result<Option<String>, String> {
    let observed = match facts.newcomers.get(&node.name) {
        Some(Ok(observed)) => observed,
        Some(Err(err)) => {
            return Err(format!(
                "{}: the agent at {} does not answer ({err}); start it first",
                node.name, node.agent
            ));
        }
        None => return Err(format!("{}: its agent was not checked", node.name)),
    };
    if observed.role != Some(Role::Worker) {
        let role = Role::name_or_unknown(observed.role);
        return Err(format!(
            "{}: the agent at {} serves a {role} database, not a worker",
            node.name, node.agent
        ));
    }
    if observed.name != node.name {
        return Err(format!(
            "{}: the agent at {} calls itself '{}'; use the same name in the spec and in --name",
            node.name, node.agent, observed.name
        ));
    }
    if !observed.instance.is_empty()
        && Some(observed.instance.as_str()) != installed(facts).map(|i| i.name.as_str())
    {
        return Err(format!(
            "{}: the agent at {} belongs to instance '{}'",
            node.name, node.agent, observed.instance
        ));
    }
    if !observed.db_ready {
        return Err(format!(
            "{}: its database is not available ({})",
            node.name, observed.db_error
        ));
    }
    let Some(id) = observed.worker_id.clone() else {
        return Ok(None);
    };
    if facts.status.registry.iter().any(|r| r.name == id) {
        return Err(format!(
            "{}: its worker id {id} is already registered in config_worker; a worker can be registered once",
            node.name
        ));
    }
    if let Some(twin) = facts
        .status
        .nodes
        .iter()
        .find(|n| n.worker_id() == Some(id.as_str()))
    {
        return Err(format!(
            "{}: its worker id {id} is already used by {}",
            node.name,
            twin.name()
        ));
    }
    Ok(Some(id))
}

/// The old worker must be one the inventory holds; the new one must be a worker that
/// `workers add` would take. Between them the instance keeps its number of workers, so the
/// old one may be the only one.
fn workers_replace(params: &WorkersReplaceParams, facts: &Facts) -> Result<(), String> {
    let Some(old) = find(facts, &params.old) else {
        return Err(format!(
            "no node {} in the inventory; 'qserv workers list' shows the workers",
            params.old
        ));
    };
    if old.role != Role::Worker {
        return Err(format!(
            "{} is a {} node; 'workers replace' replaces workers only",
            old.name, old.role
        ));
    }
    if params.new.name == params.old {
        return Err(format!(
            "the new worker is named {} like the one it replaces; give it a name of its own",
            params.old
        ));
    }
    workers_add(&params.adding(), facts)
}

/// A worker leaves the registry only with nothing Qserv's cascade would erase, or with
/// `--forget-replicas`, which saves it first.
fn leaving(name: &str, forget: bool, facts: &Facts) -> Result<(), String> {
    if forget {
        return Ok(());
    }
    match &facts.holdings {
        None => Ok(()),
        Some(Err(err)) => Err(format!(
            "cannot read what removing {name} would delete from the replication records ({err}); nothing was changed"
        )),
        Some(Ok(held)) => crate::instance::holdings::refusal(name, held).map_or(Ok(()), Err),
    }
}

/// Worker states are flags of the registry row: the worker must be registered.
/// Every node the configuration is for answers now: it is written everywhere or nowhere.
fn config_apply(params: &ConfigApplyParams, facts: &Facts) -> Result<(), String> {
    let targets = crate::instance::configs::config_targets(
        &facts.status,
        &params.service,
        params.role,
        &params.nodes,
    )?;
    let unreachable: Vec<String> = targets
        .iter()
        .filter_map(|name| {
            let node = facts.status.node(name)?;
            crate::instance::availability::agent_unavailable(node)
                .map(|why| format!("{name}: {why}"))
        })
        .collect();
    if !unreachable.is_empty() {
        return Err(format!(
            "a configuration is written on every node that runs {} or on none, and these do not answer: {}",
            params.service,
            unreachable.join("; ")
        ));
    }
    Ok(())
}

fn workers_state(name: &str, facts: &Facts) -> Result<(), String> {
    let Some(node) = find(facts, name) else {
        return Err(format!(
            "no node {name} in the inventory; 'qserv workers list' shows the workers"
        ));
    };
    if node.role != Role::Worker {
        return Err(format!("{name} is not a worker; only workers have a state"));
    }
    let status = facts.status.node(name);
    if status.is_none_or(|s| s.registered != Some(true)) {
        return Err(format!(
            "{name} is not registered in the replication registry; install or 'workers add' registers it"
        ));
    }
    Ok(())
}

fn workers_remove(name: &str, facts: &Facts) -> Result<(), String> {
    let Some(node) = find(facts, name) else {
        return Err(format!(
            "no node {name} in the inventory; 'qserv workers list' shows the workers"
        ));
    };
    if node.role != Role::Worker {
        return Err(format!(
            "{name} is not a worker; 'workers remove' removes workers only"
        ));
    }
    let workers = installed(facts)
        .map(|i| {
            i.nodes
                .iter()
                .filter(|n| n.spec.role == Role::Worker)
                .count()
        })
        .unwrap_or(0);
    if workers <= 1 {
        return Err(format!(
            "{name} is the last worker; an instance needs at least one"
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "admission_tests.rs"]
mod tests;
