//! The instance status that queries read. Monitors and jobs write into it; `GetStatus` and
//! `WatchStatus` only ever read a copy, so a query never waits on a job or a slow agent.

use std::collections::BTreeMap;

use qserv_migrations::{MigrationSet, Module};
use qserv_proto::v1::{
    AgentStatus, Health, InstanceStatus, Mode, NodeSchema, NodeStatus, Role, ServiceState,
};
use tokio::sync::watch;

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

    pub fn get(&self, module: &str) -> Option<i64> {
        Module::parse(module)
            .ok()
            .and_then(|m| self.0.get(&m).copied().flatten())
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
    refresh(status);
}

/// Folds what an agent reported into its node; true when anything changed.
pub fn apply_agent_status(
    status: &mut InstanceStatus,
    name: &str,
    agent: &AgentStatus,
    targets: &Targets,
    seen_at_ms: i64,
) -> bool {
    let is_repl = agent.role == i32::from(Role::Repl);
    let registry_changed = is_repl && status.registry != agent.registry;
    if registry_changed {
        status.registry = agent.registry.clone();
    }
    let node_changed = update_node(status, name, |node| {
        let db = agent.database.clone().unwrap_or_default();
        node.agent_reachable = true;
        node.agent_error.clear();
        node.db_ready = db.ready;
        node.db_error = db.error;
        node.db_server_version = db.server_version;
        node.worker_id = agent.worker_id.clone();
        node.services = agent.services;
        node.agent_version = agent.agent_version.clone();
        node.protocol_version = agent.protocol_version;
        node.compatible = agent.protocol_version == qserv_proto::PROTOCOL_VERSION;
        node.agent_mode = agent.mode;
        node.agent_epoch = agent.epoch;
        node.schema = agent
            .schemas
            .iter()
            .map(|s| NodeSchema {
                module: s.module.clone(),
                database: s.database.clone(),
                version: s.version,
                target: targets.get(&s.module),
                dirty: s.dirty,
                dirty_reason: s.dirty_reason.clone(),
            })
            .collect();
        node.last_seen_ms = seen_at_ms;
    });
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
    let Some(node) = status.nodes.iter_mut().find(|n| n.name == name) else {
        return false;
    };
    let before = node.clone();
    change(node);
    // The time of the last message alone is not news for watchers.
    let mut compare = node.clone();
    compare.last_seen_ms = before.last_seen_ms;
    if compare == before {
        return false;
    }
    refresh(status);
    true
}

/// Recomputes what derives from several nodes: each worker's registration and the health.
pub fn refresh(status: &mut InstanceStatus) {
    let registry = std::mem::take(&mut status.registry);
    for node in &mut status.nodes {
        node.registered = (node.role == i32::from(Role::Worker)).then(|| {
            node.worker_id
                .as_ref()
                .is_some_and(|id| registry.iter().any(|r| &r.name == id))
        });
    }
    status.registry = registry;
    check_identities(status);
    // ok: every node reachable, compatible, ready and clean; unknown: some node never answered
    // yet (or there are no nodes); degraded otherwise.
    let healthy = |n: &NodeStatus| {
        n.agent_reachable
            && n.compatible
            && n.db_ready
            && n.identity_problem.is_empty()
            && n.schema.iter().all(|s| !s.dirty)
    };
    let never_seen = |n: &NodeStatus| n.last_seen_ms == 0 && n.agent_error == NOT_CONTACTED;
    let health = if status.nodes.is_empty() || status.nodes.iter().any(never_seen) {
        Health::Unknown
    } else if status.nodes.iter().all(healthy) {
        Health::Ok
    } else {
        Health::Degraded
    };
    status.health = health.into();
}

/// Flags workers whose identity cannot be trusted: the id they report differs from the one
/// recorded at registration (a wiped database, a swapped disk, the wrong host behind an
/// address), or several workers report the same id.
fn check_identities(status: &mut InstanceStatus) {
    let ids: Vec<(String, Option<String>)> = status
        .nodes
        .iter()
        .filter(|n| n.role == i32::from(Role::Worker))
        .map(|n| (n.name.clone(), n.worker_id.clone()))
        .collect();
    for node in &mut status.nodes {
        if node.role != i32::from(Role::Worker) {
            continue;
        }
        let mut problems = Vec::new();
        if let (Some(registered), Some(reported)) = (&node.registered_id, &node.worker_id)
            && registered != reported
        {
            problems.push(format!(
                "reports worker id {reported} but was registered as {registered}; remove and re-add the worker"
            ));
        }
        if let (Some(registered), None, true) =
            (&node.registered_id, &node.worker_id, node.db_ready)
        {
            problems.push(format!(
                "reports no worker id but was registered as {registered}; remove and re-add the worker"
            ));
        }
        if let Some(id) = &node.worker_id {
            let twins: Vec<&str> = ids
                .iter()
                .filter(|(name, other)| name != &node.name && other.as_ref() == Some(id))
                .map(|(name, _)| name.as_str())
                .collect();
            if !twins.is_empty() {
                problems.push(format!("shares worker id {id} with {}", twins.join(", ")));
            }
        }
        node.identity_problem = problems.join("; ");
    }
}

/// What a node still lacks to be available for `up` (DESIGN §2); `None` when available.
pub fn unavailable_reason(node: &NodeStatus) -> Option<String> {
    if !node.identity_problem.is_empty() {
        return Some(format!("identity: {}", node.identity_problem));
    }
    if !node.agent_reachable {
        return Some(format!("agent unreachable ({})", node.agent_error));
    }
    if !node.compatible {
        return Some(format!(
            "agent protocol {} is not {}",
            node.protocol_version,
            qserv_proto::PROTOCOL_VERSION
        ));
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
    if node.role == i32::from(Role::Worker) {
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
