//! Fresh observations: agents checked now, never a cached view. What admission and every job
//! decision rest on; what is found is folded into the snapshot too, for display.

use futures::StreamExt;
use qserv_proto::v1::InstanceStatus;

use crate::agent_api::AgentResult;
use crate::core::Core;
use crate::domain::{Node, Observation};
use crate::snapshot;

/// At most this many probes run at once.
const MAX_CONCURRENT_PROBES: usize = 256;

/// Checks every node now and folds what was found into the snapshot.
pub async fn probe(core: &Core, nodes: &[Node]) -> Vec<(Node, AgentResult<Observation>)> {
    futures::stream::iter(nodes.iter().cloned())
        .map(|node| async move {
            let result = core.agents.probe(&node).await;
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
pub fn view(core: &Core, results: &[(Node, AgentResult<Observation>)]) -> InstanceStatus {
    let mut view = core.snapshot.borrow().clone();
    let now = crate::now_ms();
    for (node, result) in results {
        match result {
            Ok(observed) => {
                snapshot::apply_observation(&mut view, &node.name, observed, &core.targets, now);
            }
            Err(err) => {
                snapshot::apply_unreachable(&mut view, &node.name, &err.to_string());
            }
        }
    }
    view
}
