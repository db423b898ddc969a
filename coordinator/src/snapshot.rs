//! The instance status that queries read. Monitors and jobs write into it; `GetStatus` and
//! `WatchStatus` only ever read a copy, so a query never waits on a job or a slow agent.

use std::collections::BTreeMap;

use qserv_migrations::{MigrationSet, Module};
use qserv_proto::v1::{AgentStatus, Health, InstanceStatus, Mode, NodeSchema, NodeStatus, Role};
use tokio::sync::watch;

use crate::store::{Inventory, NodeRecord};

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

    fn get(&self, module: &str) -> Option<i64> {
        Module::parse(module)
            .ok()
            .and_then(|m| self.0.get(&m).copied().flatten())
    }
}

/// The status before any agent has answered.
pub fn initial(inventory: Option<&Inventory>) -> InstanceStatus {
    let Some(inventory) = inventory else {
        return InstanceStatus {
            mode: Mode::Uninstalled.into(),
            health: Health::Unknown.into(),
            ..InstanceStatus::default()
        };
    };
    let mut status = InstanceStatus {
        instance: inventory.name.clone(),
        mode: inventory.mode.into(),
        epoch: inventory.epoch,
        active_job: None,
        nodes: inventory.nodes.iter().map(unseen_node).collect(),
        health: Health::Unknown.into(),
    };
    refresh_health(&mut status);
    status
}

fn unseen_node(record: &NodeRecord) -> NodeStatus {
    NodeStatus {
        name: record.spec.name.clone(),
        role: record.spec.role.into(),
        agent: record.spec.agent.clone(),
        agent_error: "not contacted yet".to_owned(),
        db_error: "unknown: agent not contacted yet".to_owned(),
        registered: (record.spec.role == Role::Worker).then_some(false),
        ..NodeStatus::default()
    }
}

/// Folds what an agent reported into its node; true when anything changed.
pub fn apply_agent_status(
    status: &mut InstanceStatus,
    record: &NodeRecord,
    agent: &AgentStatus,
    targets: &Targets,
    seen_at_ms: i64,
) -> bool {
    update_node(status, &record.spec.name, |node| {
        let db = agent.database.clone().unwrap_or_default();
        node.agent_reachable = true;
        node.agent_error.clear();
        node.db_ready = db.ready;
        node.db_error = db.error;
        node.db_server_version = db.server_version;
        node.worker_id = agent.worker_id.clone();
        node.registered = (record.spec.role == Role::Worker)
            .then(|| record.registered_id.is_some() && record.registered_id == agent.worker_id);
        node.services = agent.services;
        node.agent_version = agent.agent_version.clone();
        node.protocol_version = agent.protocol_version;
        node.compatible = agent.protocol_version == qserv_proto::PROTOCOL_VERSION;
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
    })
}

/// Marks a node's agent unreachable. What the agent said last about schemas and ids stays (it
/// describes data on disk); readiness cannot be vouched for and turns false.
pub fn apply_unreachable(status: &mut InstanceStatus, name: &str, error: &str) -> bool {
    update_node(status, name, |node| {
        node.agent_reachable = false;
        node.agent_error = error.to_owned();
        node.db_ready = false;
        node.db_error = "unknown: agent unreachable".to_owned();
        node.services = qserv_proto::v1::ServiceState::Unknown.into();
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
    refresh_health(status);
    true
}

/// ok: every node reachable, compatible, ready and clean; unknown: some node never answered yet
/// (or there are no nodes); degraded otherwise.
pub fn refresh_health(status: &mut InstanceStatus) {
    let healthy = |n: &NodeStatus| {
        n.agent_reachable && n.compatible && n.db_ready && n.schema.iter().all(|s| !s.dirty)
    };
    let never_seen = |n: &NodeStatus| n.last_seen_ms == 0 && n.agent_error == "not contacted yet";
    let health = if status.nodes.is_empty() || status.nodes.iter().any(never_seen) {
        Health::Unknown
    } else if status.nodes.iter().all(healthy) {
        Health::Ok
    } else {
        Health::Degraded
    };
    status.health = health.into();
}
