//! The instance's services against what the agents report (DESIGN §15): which node lacks a
//! service its role has, what a wave still waits for on a node, and which services a node may
//! run once some waves have started. Pure functions over the state; the jobs act on them.

use std::collections::{BTreeSet, HashMap};

use qserv_model::{OrderedService, Release, Role, ServiceName, ServiceOrder, ServiceState};

use crate::instance::state::{InstanceState, NodeState};

/// The services of the node's role in `order` that its agent does not define; `None` when it
/// defines them all, or when it has not reported yet.
pub fn layout_problem(order: &ServiceOrder, node: &NodeState) -> Option<String> {
    let observed = node.observed.as_ref()?;
    let defined: Vec<ServiceName> = observed
        .service_states
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let missing = order.missing(node.role(), &defined);
    (!missing.is_empty()).then(|| {
        let names: Vec<&str> = missing.iter().map(|n| n.as_str()).collect();
        format!(
            "the agent defines no service {} that a {} runs in this instance's order: add {} to its [[services]]",
            names.join(", "),
            node.role(),
            if names.len() == 1 { "it" } else { "them" }
        )
    })
}

/// The services of `role` in the first `waves` waves: what a node of that role may run once
/// those waves were started.
pub fn released_through(order: &ServiceOrder, role: Role, waves: usize) -> Release {
    let names: BTreeSet<ServiceName> = order
        .waves()
        .into_iter()
        .take(waves)
        .flatten()
        .filter(|s| s.role == role)
        .map(|s| s.name.clone())
        .collect();
    Release::Only(names)
}

/// Where a wave's services stand on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaveState {
    /// Every service of the wave that the node runs is ready.
    Ready,
    /// Still waiting: why.
    Waiting(String),
    /// A service failed: which, and why (exit code and last output, from its agent).
    Failed { service: ServiceName, why: String },
}

/// How `wave` stands on `node`.
pub fn wave_state(wave: &[&OrderedService], node: &NodeState) -> WaveState {
    let mine = wave.iter().filter(|s| s.role == node.role());
    let Some(observed) = node.observed.as_ref().filter(|_| node.reachable()) else {
        return WaveState::Waiting(format!("agent unreachable ({})", node.agent_error()));
    };
    let mut waiting = Vec::new();
    for service in mine {
        let Some(status) = observed
            .service_states
            .iter()
            .find(|s| s.name == service.name)
        else {
            return WaveState::Failed {
                service: service.name.clone(),
                why: "the agent does not define it".to_owned(),
            };
        };
        match status.state {
            s if s.is_ready() => {}
            ServiceState::Failed => {
                let code = status
                    .exit_code
                    .map(|c| format!(" (exit code {c})"))
                    .unwrap_or_default();
                return WaveState::Failed {
                    service: service.name.clone(),
                    why: format!("{}{code}", status.detail),
                };
            }
            other if status.detail.is_empty() => waiting.push(format!("{} {other}", service.name)),
            other => waiting.push(format!("{} {other}: {}", service.name, status.detail)),
        }
    }
    if waiting.is_empty() {
        WaveState::Ready
    } else {
        WaveState::Waiting(waiting.join("; "))
    }
}

/// What of `wave` still runs on `node`, leaving out what someone else started (the agent
/// cannot stop that); `None` when nothing does.
pub fn wave_stopped(wave: &[&OrderedService], node: &NodeState) -> Option<String> {
    let observed = node.observed.as_ref().filter(|_| node.reachable())?;
    let running: Vec<String> = wave
        .iter()
        .filter(|s| s.role == node.role())
        .filter_map(|s| observed.service_states.iter().find(|st| st.name == s.name))
        .filter(|st| !st.external)
        .filter(|st| !matches!(st.state, ServiceState::Stopped | ServiceState::Failed))
        .map(|st| format!("{} {}", st.name, st.state))
        .collect();
    (!running.is_empty()).then(|| format!("still running: {}", running.join(", ")))
}

/// When each started service was last seen becoming ready, by node and service.
pub type ReadySince = HashMap<(String, ServiceName), i64>;

/// A service of `started` that failed, or stopped being ready since `seen` recorded it ready (it
/// entered another state since: it died and may have been started again), on any reachable
/// node; records the ready ones not seen yet. `None` when every one holds.
pub fn lapse(
    started: &[&OrderedService],
    state: &InstanceState,
    seen: &mut ReadySince,
) -> Option<String> {
    for node in state.nodes.iter().filter(|n| n.reachable()) {
        let Some(observed) = node.observed.as_ref() else {
            continue;
        };
        let mine = started.iter().filter(|s| s.role == node.role());
        for service in mine {
            let Some(status) = observed
                .service_states
                .iter()
                .find(|s| s.name == service.name)
            else {
                continue;
            };
            let key = (node.name().to_owned(), service.name.clone());
            if status.state == ServiceState::Failed {
                return Some(format!(
                    "{}: {}: {}",
                    node.name(),
                    service.name,
                    status.detail
                ));
            }
            match seen.get(&key) {
                Some(since) if *since != status.since_ms || !status.state.is_ready() => {
                    return Some(format!(
                        "{}: {} stopped being ready after it started (it is {}{})",
                        node.name(),
                        service.name,
                        status.state,
                        if status.detail.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", status.detail)
                        }
                    ));
                }
                Some(_) => {}
                None if status.state.is_ready() => {
                    seen.insert(key, status.since_ms);
                }
                None => {}
            }
        }
    }
    None
}

#[cfg(test)]
#[path = "services_tests.rs"]
mod tests;
