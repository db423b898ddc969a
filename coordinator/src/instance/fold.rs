//! How what the store and the agents say is folded into the [`InstanceState`]: the inventory,
//! an agent's status, an agent that cannot be reached, and what derives from several nodes.

use std::collections::{BTreeMap, HashSet};

use qserv_migrations::{MigrationSet, Module};

use crate::domain::{Epoch, Mode};
use crate::domain::{Node, Observation, Role};
use crate::instance::identity;
use crate::instance::state::{Health, InstanceState, NodeState, Reach, SchemaState};
use crate::store::Inventory;

/// The target version of each module under the migrations the coordinator runs with.
#[derive(Debug, Clone, Default)]
pub struct Targets(BTreeMap<Module, Option<i64>>);

impl Targets {
    pub fn of(set: &MigrationSet) -> Targets {
        Targets(
            Module::ALL
                .into_iter()
                .map(|m| (m, set.target(m)))
                .collect(),
        )
    }

    pub fn get(&self, module: Module) -> Option<i64> {
        self.0.get(&module).copied().flatten()
    }
}

/// Replaces the instance part of the state with `inventory`, keeping what is known of nodes
/// that stay.
pub fn set_inventory(state: &mut InstanceState, inventory: Option<&Inventory>) {
    let Some(inventory) = inventory else {
        *state = InstanceState {
            mode: Some(Mode::Uninstalled),
            epoch: state.epoch,
            active_job: state.active_job.take(),
            fencing_token: state.fencing_token,
            coordinators: std::mem::take(&mut state.coordinators),
            answered_by: std::mem::take(&mut state.answered_by),
            ..InstanceState::default()
        };
        refresh(state);
        return;
    };
    let mut old: BTreeMap<String, NodeState> = state
        .nodes
        .drain(..)
        .map(|n| (n.node.name.clone(), n))
        .collect();
    state.instance = Some(inventory.name.clone());
    state.services = inventory.services.clone();
    state.mode = Some(inventory.mode);
    state.epoch = inventory.epoch;
    state.nodes = inventory
        .nodes
        .iter()
        .map(|record| {
            let spec = Node {
                name: record.spec.name.clone(),
                role: record.spec.role,
                agent: record.spec.agent.clone(),
            };
            let mut node = old
                .remove(&spec.name)
                .filter(|n| n.node.agent == spec.agent)
                .unwrap_or_else(|| NodeState::new(spec.clone(), None));
            node.node = spec;
            node.registered_id = record.registered_id.clone();
            node
        })
        .collect();
    if !state.nodes.iter().any(|n| n.role() == Role::Repl) {
        state.registry.clear();
    }
    refresh(state);
}

/// Folds what an agent reported into its node; true when anything a reader sees changed. A
/// status older than the one already folded in (same agent process, lower sequence number) is
/// ignored: a stream message that was in flight must not undo a fresh probe's result.
pub fn apply_observation(
    state: &mut InstanceState,
    name: &str,
    observed: &Observation,
    targets: &Targets,
    seen_at_ms: i64,
) -> bool {
    let Some(node) = state.node(name) else {
        return false;
    };
    if let Some(last) = &node.observed
        && last.boot_id == observed.boot_id
        && observed.seq < last.seq
    {
        return false;
    }
    let registry_changed = node.role() == Role::Repl && state.registry != observed.registry;
    if registry_changed {
        state.registry = observed.registry.clone();
    }
    let node_changed = update_node(state, name, |node| {
        node.reach = Reach::Reachable;
        node.schema = observed
            .schemas
            .iter()
            .map(|s| SchemaState {
                module: s.module,
                version: s.version,
                target: targets.get(s.module),
                dirty: s.dirty,
                dirty_reason: s.dirty_reason.clone(),
            })
            .collect();
        node.observed = Some(observed.clone());
        node.last_seen_ms = Some(seen_at_ms);
    });
    // Every worker's registration reads the registry: refresh them all, whatever the node did.
    if registry_changed {
        refresh(state);
    }
    node_changed || registry_changed
}

/// Marks a node's agent unreachable. What the agent said last about schemas and ids stays (it
/// describes data on disk); readiness cannot be vouched for.
pub fn apply_unreachable(state: &mut InstanceState, name: &str, error: &str) -> bool {
    update_node(state, name, |node| {
        node.reach = Reach::Unreachable(error.to_owned());
    })
}

fn update_node(state: &mut InstanceState, name: &str, change: impl FnOnce(&mut NodeState)) -> bool {
    let Some(index) = state.nodes.iter().position(|n| n.node.name == name) else {
        return false;
    };
    let node = &mut state.nodes[index];
    let before = node.clone();
    change(node);
    if !news(&before, node) {
        return false;
    }
    // A change that leaves every input of the identity checks alone cannot change another
    // node's problems: refreshing this node alone keeps a job over a thousand nodes linear.
    if IdentityInputs::of(&before) == IdentityInputs::of(node) {
        refresh_node(state, index);
    } else {
        refresh(state);
    }
    true
}

/// Whether `after` differs from `before` in what watchers see: the time and sequence number
/// of the last message alone are not news.
fn news(before: &NodeState, after: &NodeState) -> bool {
    let mut compare = after.clone();
    compare.last_seen_ms = before.last_seen_ms;
    if let (Some(was), Some(now)) = (&before.observed, compare.observed.as_mut()) {
        now.seq = was.seq;
    }
    compare != *before
}

/// What `identity::problems` reads of a node.
#[derive(PartialEq)]
struct IdentityInputs<'a> {
    node: &'a Node,
    reported_name: Option<&'a str>,
    reported_role: Option<Role>,
    instance: Option<&'a str>,
    boot_id: Option<&'a str>,
    worker_id: Option<&'a str>,
    registered_id: Option<&'a str>,
    db_ready: bool,
}

impl IdentityInputs<'_> {
    fn of(node: &NodeState) -> IdentityInputs<'_> {
        let observed = node.observed.as_ref();
        IdentityInputs {
            node: &node.node,
            reported_name: observed.map(|o| o.name.as_str()),
            reported_role: observed.and_then(|o| o.role),
            instance: observed.map(|o| o.instance.as_str()),
            boot_id: observed.map(|o| o.boot_id.as_str()),
            worker_id: node.worker_id(),
            registered_id: node.registered_id.as_deref(),
            db_ready: node.db_ready(),
        }
    }
}

/// Recomputes what derives from several nodes: registration, identities, epochs, health.
pub fn refresh(state: &mut InstanceState) {
    let registered: HashSet<&str> = state.registry.iter().map(|r| r.name.as_str()).collect();
    let registrations: Vec<Option<bool>> = state
        .nodes
        .iter()
        .map(|n| is_registered(n, |id| registered.contains(id)))
        .collect();
    for (node, registered) in state.nodes.iter_mut().zip(registrations) {
        node.registered = registered;
    }
    let mut problems = identity::problems(state);
    let (mode, epoch) = (state.mode(), state.epoch);
    let instance = state.instance_name().to_owned();
    for node in &mut state.nodes {
        node.identity_problem = problems.remove(node.name());
        node.epoch_problem = epoch_problem(node, mode, epoch, &instance);
    }
    summarize(state);
}

/// What the state says of the instance as a whole, from its nodes.
fn summarize(state: &mut InstanceState) {
    state.health = health(state);
    state.activity = state.running_activity();
}

/// [`refresh`] for a change of one node that other nodes' problems do not depend on.
fn refresh_node(state: &mut InstanceState, index: usize) {
    let (mode, epoch) = (state.mode(), state.epoch);
    let registry = &state.registry;
    let registered = is_registered(&state.nodes[index], |id| {
        registry.iter().any(|r| r.name == id)
    });
    let instance = state.instance_name().to_owned();
    let node = &mut state.nodes[index];
    node.registered = registered;
    node.epoch_problem = epoch_problem(node, mode, epoch, &instance);
    summarize(state);
}

/// For a worker, whether its id is in the registry; `None` for other roles.
fn is_registered(node: &NodeState, in_registry: impl Fn(&str) -> bool) -> Option<bool> {
    (node.role() == Role::Worker).then(|| node.worker_id().is_some_and(in_registry))
}

/// What is wrong with a node's epoch under the store's `mode` and `epoch`: the agent obeys
/// another coordinator, or a delete purged it half way.
fn epoch_problem(
    node: &NodeState,
    mode: Mode,
    epoch: Option<Epoch>,
    instance: &str,
) -> Option<String> {
    if mode.is_installed()
        && let Some(seen) = node.seen_epoch()
        && Some(seen) > epoch
    {
        let ours = Epoch::to_wire(epoch);
        return Some(format!(
            "the agent has seen epoch {seen}, above this coordinator's {ours}: another coordinator (or store) commanded it since; its commands are refused until 'qserv install --adopt' takes the instance over"
        ));
    }
    purged_problem(node, mode, epoch, instance)
}

/// A node a `delete` purged while the store still holds the instance: the delete stopped half
/// way (a node it could not reach, a failure), and only running it again ends the instance on
/// every node. Nothing else leaves an agent uninstalled at the store's own epoch.
fn purged_problem(
    node: &NodeState,
    mode: Mode,
    epoch: Option<Epoch>,
    instance: &str,
) -> Option<String> {
    let held = matches!(mode, Mode::Maintenance | Mode::Normal);
    let purged = node.reachable()
        && node.agent_mode() == Some(Mode::Uninstalled)
        && epoch.is_some()
        && node.agent_epoch() >= epoch;
    (held && purged).then(|| format!(
        "the agent was purged by a delete that did not finish (its Qserv databases are dropped) while the store still holds the instance: run 'qserv delete --confirm {instance}' again to finish it"
    ))
}

/// ok: every node reachable, compatible, ready and clean; unknown: some node never answered yet
/// (or there are no nodes); degraded otherwise.
fn health(state: &InstanceState) -> Health {
    let never_seen = |n: &NodeState| n.reach == Reach::NotContacted;
    if state.nodes.is_empty() || state.nodes.iter().any(never_seen) {
        Health::Unknown
    } else if state.nodes.iter().all(NodeState::healthy) {
        Health::Ok
    } else {
        Health::Degraded
    }
}

#[cfg(test)]
#[path = "fold_tests.rs"]
mod tests;
