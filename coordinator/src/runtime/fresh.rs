//! Fresh observations: agents checked now, never a cached view. What admission and every job
//! decision rest on; what is found is folded into the snapshot too, for display.

use crate::instance::InstanceState;
use futures::StreamExt;

use tokio::time::Instant;

use crate::agents::api::{AgentError, AgentResult, Scope};
use crate::domain::{Node, Observation};
use crate::instance;
use crate::runtime::core::Core;

/// At most this many probes run at once.
const MAX_CONCURRENT_PROBES: usize = 256;

/// Checks every node now and folds what was found into the snapshot.
pub async fn probe(core: &Core, nodes: &[Node]) -> Vec<(Node, AgentResult<Observation>)> {
    probe_until(core, nodes, Scope::All, None).await
}

/// [`probe`] of `scope`, with every probe still unanswered at `until` taken as unreachable: a
/// wait that ends at the operator's deadline does not wait on a slow agent past it.
pub async fn probe_until(
    core: &Core,
    nodes: &[Node],
    scope: Scope,
    until: Option<Instant>,
) -> Vec<(Node, AgentResult<Observation>)> {
    futures::stream::iter(nodes.iter().cloned())
        .map(|node| async move {
            let probe = core.agents.probe(&node, scope);
            let result = match until {
                Some(until) => tokio::time::timeout_at(until, probe)
                    .await
                    .unwrap_or_else(|_| {
                        Err(AgentError::Unreachable(
                            "no answer before the job's deadline".to_owned(),
                        ))
                    }),
                None => probe.await,
            };
            match &result {
                Ok(observed) => core.observe(&node.name, observed),
                Err(err) => core.observe_failure(&node.name, err),
            }
            (node, result)
        })
        .buffer_unordered(MAX_CONCURRENT_PROBES)
        .collect()
        .await
}

/// The status as the snapshot has it, with `results` (fresh) applied over it: a node that did
/// not answer is unreachable in this view whatever the snapshot said before.
pub fn view(core: &Core, results: &[(Node, AgentResult<Observation>)]) -> InstanceState {
    let mut view = core.snapshot.borrow().clone();
    let now = crate::clock::now_ms();
    for (node, result) in results {
        match result {
            Ok(observed) => {
                instance::apply_observation(&mut view, &node.name, observed, &core.targets, now);
            }
            Err(err) => {
                instance::apply_unreachable(&mut view, &node.name, &err.to_string());
            }
        }
    }
    view
}
