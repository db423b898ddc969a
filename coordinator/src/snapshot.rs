//! The instance status that queries read. Monitors and jobs write into it; `GetStatus` and
//! `WatchStatus` only ever read a copy, so a query never waits on a job or a slow agent. It is
//! for display: jobs decide on fresh observations, and fold them in here so that what an
//! operator reads after a job ends already shows its effects.

use std::collections::{BTreeMap, HashSet};

use qserv_migrations::{MigrationSet, Module};
use qserv_proto::v1::{
    Health, InstanceStatus, Mode, NodeSchema, NodeStatus, RegistryEntry, ServiceState,
};
use tokio::sync::watch;

use crate::domain::{Observation, Role};
use crate::store::Inventory;

pub type Snapshot = watch::Sender<InstanceStatus>;

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

const NOT_CONTACTED: &str = "not contacted yet";

/// Replaces the instance part of the status with `inventory`, keeping what is known of nodes
/// that stay.
pub fn set_inventory(status: &mut InstanceStatus, inventory: Option<&Inventory>) {
    let Some(inventory) = inventory else {
        *status = InstanceStatus {
            mode: Mode::Uninstalled.into(),
            epoch: status.epoch,
            active_job: status.active_job.take(),
            ..InstanceStatus::default()
        };
        refresh(status);
        return;
    };
    let mut old: BTreeMap<String, NodeStatus> = status
        .nodes
        .drain(..)
        .map(|n| (n.name.clone(), n))
        .collect();
    status.instance = inventory.name.clone();
    status.mode = inventory.mode.into();
    status.epoch = inventory.epoch;
    status.nodes = inventory
        .nodes
        .iter()
        .map(|record| {
            let mut node = old
                .remove(&record.spec.name)
                .filter(|n| n.agent == record.spec.agent)
                .unwrap_or_else(|| NodeStatus {
                    name: record.spec.name.clone(),
                    agent: record.spec.agent.clone(),
                    agent_error: NOT_CONTACTED.to_owned(),
                    db_error: "unknown: agent not contacted yet".to_owned(),
                    ..NodeStatus::default()
                });
            node.role = record.spec.role.into();
            node.registered_id = record.registered_id.clone();
            node
        })
        .collect();
    if !status
        .nodes
        .iter()
        .any(|n| Role::from_wire(n.role) == Some(Role::Repl))
    {
        status.registry.clear();
    }
    refresh(status);
}

/// Folds what an agent reported into its node; true when anything a reader sees changed. A
/// status older than the one already folded in (same agent process, lower sequence number) is
/// ignored: a stream message that was in flight must not undo a fresh probe's result.
pub fn apply_observation(
    status: &mut InstanceStatus,
    name: &str,
    observed: &Observation,
    targets: &Targets,
    seen_at_ms: i64,
) -> bool {
    let Some(node) = status.nodes.iter().find(|n| n.name == name) else {
        return false;
    };
    if node.agent_boot_id == observed.boot_id && observed.seq < node.agent_seq {
        return false;
    }
    let is_repl = Role::from_wire(node.role) == Some(Role::Repl);
    let registry: Vec<RegistryEntry> = observed
        .registry
        .iter()
        .map(|r| RegistryEntry {
            name: r.name.clone(),
            is_enabled: r.is_enabled,
            is_read_only: r.is_read_only,
        })
        .collect();
    let registry_changed = is_repl && status.registry != registry;
    if registry_changed {
        status.registry = registry;
    }
    let node_changed = update_node(status, name, |node| {
        node.agent_reachable = true;
        node.agent_error.clear();
        node.db_ready = observed.db_ready;
        node.db_error = observed.db_error.clone();
        node.db_server_version = observed.db_server_version.clone();
        node.worker_id = observed.worker_id.clone();
        node.services = ServiceState::from(observed.services).into();
        node.agent_version = observed.agent_version.clone();
        node.protocol_version = observed.protocol_version;
        node.compatible = observed.compatible();
        node.agent_mode = observed.mode.into();
        node.agent_epoch = observed.epoch;
        node.agent_seen_epoch = observed.seen_epoch;
        node.reported_name = observed.name.clone();
        node.reported_role = observed.role.map_or(0, i32::from);
        node.agent_instance = observed.instance.clone();
        node.agent_boot_id = observed.boot_id.clone();
        node.agent_seq = observed.seq;
        node.activity = Some(observed.activity.to_wire());
        node.schema = observed
            .schemas
            .iter()
            .map(|s| NodeSchema {
                module: s.module.name().to_owned(),
                database: s.module.database().to_owned(),
                version: s.version,
                target: targets.get(s.module),
                dirty: s.dirty,
                dirty_reason: s.dirty_reason.clone(),
            })
            .collect();
        node.last_seen_ms = seen_at_ms;
        node.certificate_expires_at_ms = observed.certificate_expires_at_ms;
    });
    // Every worker's registration reads the registry: refresh them all, whatever the node did.
    if registry_changed {
        refresh(status);
    }
    node_changed || registry_changed
}

/// Marks a node's agent unreachable. What the agent said last about schemas and ids stays (it
/// describes data on disk); readiness cannot be vouched for and turns false.
pub fn apply_unreachable(status: &mut InstanceStatus, name: &str, error: &str) -> bool {
    update_node(status, name, |node| {
        node.agent_reachable = false;
        node.agent_error = error.to_owned();
        node.db_ready = false;
        node.db_error = "unknown: agent unreachable".to_owned();
        node.services = ServiceState::Unknown.into();
    })
}

fn update_node(
    status: &mut InstanceStatus,
    name: &str,
    change: impl FnOnce(&mut NodeStatus),
) -> bool {
    let Some(index) = status.nodes.iter().position(|n| n.name == name) else {
        return false;
    };
    let node = &mut status.nodes[index];
    let before = node.clone();
    change(node);
    // The time and sequence number of the last message alone are not news for watchers.
    let mut compare = node.clone();
    compare.last_seen_ms = before.last_seen_ms;
    compare.agent_seq = before.agent_seq;
    if compare == before {
        return false;
    }
    // A change that leaves every input of the identity checks alone cannot change another
    // node's problems: refreshing this node alone keeps a job over a thousand nodes linear.
    if IdentityInputs::of(&before) == IdentityInputs::of(&compare) {
        refresh_node(status, index);
    } else {
        refresh(status);
    }
    true
}

/// What `identity::problems` reads of a node.
#[derive(PartialEq)]
struct IdentityInputs<'a> {
    name: &'a str,
    agent: &'a str,
    role: i32,
    reported_name: &'a str,
    reported_role: i32,
    instance: &'a str,
    boot_id: &'a str,
    worker_id: Option<&'a str>,
    registered_id: Option<&'a str>,
    db_ready: bool,
}

impl IdentityInputs<'_> {
    fn of(node: &NodeStatus) -> IdentityInputs<'_> {
        IdentityInputs {
            name: &node.name,
            agent: &node.agent,
            role: node.role,
            reported_name: &node.reported_name,
            reported_role: node.reported_role,
            instance: &node.agent_instance,
            boot_id: &node.agent_boot_id,
            worker_id: node.worker_id.as_deref(),
            registered_id: node.registered_id.as_deref(),
            db_ready: node.db_ready,
        }
    }
}

/// Recomputes what derives from several nodes: registration, identities, epochs, health.
pub fn refresh(status: &mut InstanceStatus) {
    let registered: HashSet<&str> = status.registry.iter().map(|r| r.name.as_str()).collect();
    for node in &mut status.nodes {
        node.registered = is_registered(node, |id| registered.contains(id));
    }
    let problems = crate::identity::problems(status);
    let mode = Mode::try_from(status.mode).unwrap_or(Mode::Unspecified);
    let epoch = status.epoch;
    for node in &mut status.nodes {
        node.identity_problem = problems.get(&node.name).cloned().unwrap_or_default();
        node.epoch_problem = epoch_problem(node, mode, epoch, &status.instance);
    }
    summarize(status);
}

/// What the status says of the instance as a whole, from its nodes.
fn summarize(status: &mut InstanceStatus) {
    status.health = health(status).into();
    status.activity = Some(crate::activity::of_instance(status).to_wire());
}

/// [`refresh`] for a change of one node that other nodes' problems do not depend on.
fn refresh_node(status: &mut InstanceStatus, index: usize) {
    let mode = Mode::try_from(status.mode).unwrap_or(Mode::Unspecified);
    let epoch = status.epoch;
    let registry = &status.registry;
    let registered = is_registered(&status.nodes[index], |id| {
        registry.iter().any(|r| r.name == id)
    });
    let node = &mut status.nodes[index];
    node.registered = registered;
    node.epoch_problem = epoch_problem(node, mode, epoch, &status.instance);
    summarize(status);
}

/// The id a worker is known by in the registry: the one it was registered under, else the one
/// it reports now.
pub fn registry_id(node: &NodeStatus) -> Option<String> {
    node.registered_id
        .clone()
        .or_else(|| node.worker_id.clone())
}

/// For a worker, whether its id is in the registry; `None` for other roles.
fn is_registered(node: &NodeStatus, in_registry: impl Fn(&str) -> bool) -> Option<bool> {
    (Role::from_wire(node.role) == Some(Role::Worker))
        .then(|| node.worker_id.as_deref().is_some_and(in_registry))
}

/// What is wrong with a node's epoch under the store's `mode` and `epoch`: the agent obeys
/// another coordinator, or a delete purged it half way.
fn epoch_problem(node: &NodeStatus, mode: Mode, epoch: u64, instance: &str) -> String {
    let installed = matches!(mode, Mode::Installing | Mode::Maintenance | Mode::Normal);
    if installed && node.agent_seen_epoch > epoch {
        format!(
            "the agent has seen epoch {}, above this coordinator's {epoch}: another coordinator (or store) commanded it since; its commands are refused until 'qserv install --adopt' takes the instance over",
            node.agent_seen_epoch
        )
    } else {
        purged_problem(node, mode, epoch, instance)
    }
}

/// A node a `delete` purged while the store still holds the instance: the delete stopped half
/// way (a node it could not reach, a failure), and only running it again ends the instance on
/// every node. Nothing else leaves an agent uninstalled at the store's own epoch.
fn purged_problem(node: &NodeStatus, mode: Mode, epoch: u64, instance: &str) -> String {
    let held = matches!(mode, Mode::Maintenance | Mode::Normal);
    let purged = node.agent_reachable
        && Mode::try_from(node.agent_mode) == Ok(Mode::Uninstalled)
        && epoch > 0
        && node.agent_epoch >= epoch;
    if held && purged {
        format!(
            "the agent was purged by a delete that did not finish (its Qserv databases are dropped) while the store still holds the instance: run 'qserv delete --confirm {instance}' again to finish it"
        )
    } else {
        String::new()
    }
}

/// ok: every node reachable, compatible, ready and clean; unknown: some node never answered yet
/// (or there are no nodes); degraded otherwise.
fn health(status: &InstanceStatus) -> Health {
    let healthy = |n: &NodeStatus| {
        n.agent_reachable
            && n.compatible
            && n.db_ready
            && n.identity_problem.is_empty()
            && n.epoch_problem.is_empty()
            && n.schema.iter().all(|s| !s.dirty)
    };
    let never_seen = |n: &NodeStatus| n.last_seen_ms == 0 && n.agent_error == NOT_CONTACTED;
    if status.nodes.is_empty() || status.nodes.iter().any(never_seen) {
        Health::Unknown
    } else if status.nodes.iter().all(healthy) {
        Health::Ok
    } else {
        Health::Degraded
    }
}

/// What a node still lacks to be available for `up` (DESIGN §2); `None` when available.
pub fn unavailable_reason(node: &NodeStatus) -> Option<String> {
    if !node.identity_problem.is_empty() {
        return Some(format!("identity: {}", node.identity_problem));
    }
    if !node.epoch_problem.is_empty() {
        return Some(format!("epoch: {}", node.epoch_problem));
    }
    if !node.agent_reachable {
        return Some(format!("agent unreachable ({})", node.agent_error));
    }
    if !node.compatible {
        return Some(qserv_proto::upgrade_hint("agent", node.protocol_version));
    }
    if !node.db_ready {
        return Some(format!("database not ready ({})", node.db_error));
    }
    for s in &node.schema {
        if s.dirty {
            return Some(format!("{} is dirty ({})", s.database, s.dirty_reason));
        }
        if s.version != s.target {
            let show = |v: Option<i64>| v.map_or_else(|| "none".to_owned(), |v| v.to_string());
            return Some(format!(
                "{} at version {}, target {}",
                s.database,
                show(s.version),
                show(s.target)
            ));
        }
    }
    if Role::from_wire(node.role) == Some(Role::Worker) {
        match &node.worker_id {
            None => return Some("no worker id in qservw_worker.Id".to_owned()),
            Some(id) if node.registered != Some(true) => {
                return Some(format!("worker id {id} is not in the replication registry"));
            }
            Some(_) => {}
        }
    }
    None
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;

/// Warnings for the certificates of this coordinator (ending at `own`) and of every agent
/// that reports one, that end within [`qserv_proto::certs::EXPIRY_WARNING_DAYS`] of `now_ms`.
pub fn certificate_warnings(status: &InstanceStatus, own: Option<i64>, now_ms: i64) -> Vec<String> {
    let coordinator = own.and_then(|end| {
        qserv_proto::certs::expiry_warning(
            &format!("coordinator {}", status.answered_by),
            end,
            now_ms,
        )
    });
    let agents = status
        .nodes
        .iter()
        .filter(|n| n.certificate_expires_at_ms > 0)
        .filter_map(|n| {
            qserv_proto::certs::expiry_warning(
                &format!("agent {}", n.name),
                n.certificate_expires_at_ms,
                now_ms,
            )
        });
    coordinator.into_iter().chain(agents).collect()
}
