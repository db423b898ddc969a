//! Domain to wire for what `status` and `upgrade plan` answer: the one conversion of the
//! [`InstanceState`] into the wire's `InstanceStatus`, and the enums it carries. The wire
//! keeps its own conventions: 0 for an absent counter, empty text for no problem.

use qserv_proto::v1 as pb;

use crate::domain::RegistryRow;
use crate::instance::drift::Drift;
use crate::instance::peers::CoordinatorPeer;
use crate::instance::plan::NodePlan;
use crate::instance::services::layout_problem;
use crate::instance::{ActiveJob, Epoch, FencingToken, Health, InstanceState, NodeState};
use qserv_model::ServiceOrder;

/// The status as the wire carries it, without the parts only the service knows (warnings
/// about its own certificate, the drift of the spec it was started with).
pub fn status(state: &InstanceState) -> pb::InstanceStatus {
    pb::InstanceStatus {
        instance: state.instance_name().to_owned(),
        mode: state
            .mode
            .map_or(pb::Mode::Unspecified, pb::Mode::from)
            .into(),
        health: health(state.health).into(),
        epoch: Epoch::to_wire(state.epoch),
        active_job: state.active_job.as_ref().map(active_job),
        nodes: state
            .nodes
            .iter()
            .map(|n| node(n, &state.services))
            .collect(),
        registry: state.registry.iter().map(registry_entry).collect(),
        coordinators: state.coordinators.iter().map(coordinator).collect(),
        fencing_token: FencingToken::to_wire(state.fencing_token),
        answered_by: state.answered_by.clone(),
        warnings: Vec::new(),
        spec_drift: None,
        activity: Some(pb::Activity::from(state.activity)),
    }
}

fn health(health: Health) -> pb::Health {
    match health {
        Health::Unknown => pb::Health::Unknown,
        Health::Ok => pb::Health::Ok,
        Health::Degraded => pb::Health::Degraded,
    }
}

pub fn active_job(job: &ActiveJob) -> pb::ActiveJob {
    pb::ActiveJob {
        id: job.id.clone(),
        kind: job.kind.clone(),
        state: pb::JobState::from(job.state).into(),
        progress: job
            .progress
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

fn registry_entry(row: &RegistryRow) -> pb::RegistryEntry {
    pb::RegistryEntry {
        name: row.name.clone(),
        is_enabled: row.is_enabled,
        is_read_only: row.is_read_only,
    }
}

fn node(node: &NodeState, order: &ServiceOrder) -> pb::NodeStatus {
    let observed = node.observed.as_ref();
    let text = |f: fn(&crate::domain::Observation) -> &String| {
        observed.map(|o| f(o).clone()).unwrap_or_default()
    };
    pb::NodeStatus {
        name: node.name().to_owned(),
        role: pb::Role::from(node.role()).into(),
        agent: node.node.agent.clone(),
        agent_reachable: node.reachable(),
        agent_error: node.agent_error().to_owned(),
        db_ready: node.db_ready(),
        db_error: node.db_error().to_owned(),
        db_server_version: text(|o| &o.db_server_version),
        worker_id: node.worker_id().map(str::to_owned),
        registered: node.registered,
        services: pb::ServiceState::from(node.services()).into(),
        agent_version: text(|o| &o.agent_version),
        protocol_version: node.protocol_version(),
        compatible: node.compatible(),
        schema: node
            .schema
            .iter()
            .map(|s| pb::NodeSchema {
                module: s.module.name().to_owned(),
                database: s.module.database().to_owned(),
                version: s.version,
                target: s.target,
                dirty: s.dirty,
                dirty_reason: s.dirty_reason.clone(),
            })
            .collect(),
        last_seen_ms: node.last_seen_ms.unwrap_or_default(),
        registered_id: node.registered_id.clone(),
        agent_mode: node
            .agent_mode()
            .map_or(pb::Mode::Unspecified, pb::Mode::from)
            .into(),
        agent_epoch: Epoch::to_wire(node.agent_epoch()),
        identity_problem: node.identity_problem.clone().unwrap_or_default(),
        agent_seen_epoch: Epoch::to_wire(node.seen_epoch()),
        epoch_problem: node.epoch_problem.clone().unwrap_or_default(),
        reported_name: text(|o| &o.name),
        reported_role: observed
            .and_then(|o| o.role)
            .map_or(0, |r| pb::Role::from(r).into()),
        agent_instance: text(|o| &o.instance),
        agent_boot_id: text(|o| &o.boot_id),
        agent_seq: observed.map_or(0, |o| o.seq),
        certificate_expires_at_ms: node.certificate_expires_at_ms().unwrap_or_default(),
        activity: observed.map(|o| pb::Activity::from(o.activity)),
        service_states: observed
            .map(|o| {
                o.service_states
                    .iter()
                    .map(pb::ServiceStatus::from)
                    .collect()
            })
            .unwrap_or_default(),
        layout_problem: layout_problem(order, node).unwrap_or_default(),
    }
}

fn coordinator(peer: &CoordinatorPeer) -> pb::CoordinatorPeer {
    pb::CoordinatorPeer {
        id: peer.id.clone(),
        address: peer.address.clone(),
        leader: peer.leader,
        last_seen_ms: peer.last_seen_ms,
        migrations: peer.migrations.clone(),
        disagrees: peer.disagrees,
    }
}

pub fn spec_drift(drift: Drift) -> pb::SpecDrift {
    pb::SpecDrift {
        not_in_spec: drift.not_in_spec,
        not_installed: drift.not_installed,
    }
}

pub fn plan(nodes: Vec<NodePlan>) -> pb::UpgradePlanReply {
    pb::UpgradePlanReply {
        nodes: nodes
            .into_iter()
            .map(|n| pb::NodePlan {
                node: n.node,
                module: n.module.name().to_owned(),
                database: n.module.database().to_owned(),
                current: n.current,
                target: n.target,
                scripts: n
                    .scripts
                    .into_iter()
                    .map(|s| pb::PlannedScript {
                        file_name: s.file_name,
                        checksum: s.checksum,
                    })
                    .collect(),
                dirty: n.dirty,
                error: n.error.unwrap_or_default(),
                messages: n.messages,
            })
            .collect(),
    }
}
