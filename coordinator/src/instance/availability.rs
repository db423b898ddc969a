//! What a node still lacks to be available for `up` (DESIGN §2), and what an operator should
//! act on soon.

use crate::domain::Role;
use crate::instance::state::{InstanceState, NodeState};

/// Why the node's agent cannot take commands: not the one the inventory means, behind the
/// instance's epoch, unreachable or of another protocol; `None` when it can.
pub fn agent_unavailable(node: &NodeState) -> Option<String> {
    if let Some(problem) = &node.identity_problem {
        return Some(format!("identity: {problem}"));
    }
    if let Some(problem) = &node.epoch_problem {
        return Some(format!("epoch: {problem}"));
    }
    if !node.reachable() {
        return Some(format!("agent unreachable ({})", node.agent_error()));
    }
    if !node.compatible() {
        return Some(qserv_proto::upgrade_hint("agent", node.protocol_version()));
    }
    None
}

/// What a node still lacks to be available for `up`; `None` when available.
pub fn unavailable_reason(node: &NodeState) -> Option<String> {
    if let Some(why) = agent_unavailable(node) {
        return Some(why);
    }
    if !node.db_ready() {
        return Some(format!("database not ready ({})", node.db_error()));
    }
    for s in &node.schema {
        if s.dirty {
            return Some(format!(
                "{} is dirty ({})",
                s.module.database(),
                s.dirty_reason
            ));
        }
        if !s.at_target() {
            let show = |v: Option<i64>| v.map_or_else(|| "none".to_owned(), |v| v.to_string());
            return Some(format!(
                "{} at version {}, target {}",
                s.module.database(),
                show(s.version),
                show(s.target)
            ));
        }
    }
    if node.role() == Role::Worker {
        match node.worker_id() {
            None => return Some("no worker id in qservw_worker.Id".to_owned()),
            Some(id) if node.registered != Some(true) => {
                return Some(format!("worker id {id} is not in the replication registry"));
            }
            Some(_) => {}
        }
    }
    None
}

/// Warnings for the certificates of this coordinator (ending at `own`) and of every agent
/// that reports one, that end within [`qserv_proto::certs::EXPIRY_WARNING_DAYS`] of `now_ms`.
pub fn certificate_warnings(state: &InstanceState, own: Option<i64>, now_ms: i64) -> Vec<String> {
    let coordinator = own.and_then(|end| {
        qserv_proto::certs::expiry_warning(
            &format!("coordinator {}", state.answered_by),
            end,
            now_ms,
        )
    });
    let agents = state.nodes.iter().filter_map(|n| {
        let end = n.certificate_expires_at_ms()?;
        qserv_proto::certs::expiry_warning(&format!("agent {}", n.name()), end, now_ms)
    });
    coordinator.into_iter().chain(agents).collect()
}
