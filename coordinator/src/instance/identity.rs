//! Whether each node of the inventory is who the inventory says: the agent behind its address
//! has its name and role and belongs to this instance, no two entries reach one agent, and a
//! worker still has the id it was registered under and shares it with no other worker.

use std::collections::{BTreeMap, HashMap};

use crate::domain::Role;
use crate::instance::state::{InstanceState, NodeState};

/// Per node name, why its identity cannot be trusted; nodes without a problem are absent.
pub fn problems(state: &InstanceState) -> BTreeMap<String, String> {
    collect(state, true)
}

/// Like [`problems`], for the agents only: the agent behind an address is not the node the
/// inventory says. Worker ids are left out (adoption lists those among its discrepancies).
pub fn agent_mismatches(state: &InstanceState) -> BTreeMap<String, String> {
    collect(state, false)
}

/// Nodes by a value they should not share (agent boot id, worker id), built once per check so
/// that an instance of a thousand nodes costs a thousand lookups, not a million comparisons.
struct Shared<'a>(HashMap<&'a str, Vec<&'a str>>);

impl<'a> Shared<'a> {
    fn of(nodes: impl Iterator<Item = (&'a str, Option<&'a str>)>) -> Shared<'a> {
        let mut by_value: HashMap<&str, Vec<&str>> = HashMap::new();
        for (name, value) in nodes {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                by_value.entry(value).or_default().push(name);
            }
        }
        Shared(by_value)
    }

    /// The other nodes that share `value` with `name`.
    fn others(&self, name: &str, value: Option<&str>) -> Vec<&'a str> {
        value
            .and_then(|v| self.0.get(v))
            .map(|names| names.iter().copied().filter(|n| *n != name).collect())
            .unwrap_or_default()
    }
}

fn boot_id(node: &NodeState) -> Option<&str> {
    node.observed.as_ref().map(|o| o.boot_id.as_str())
}

fn collect(state: &InstanceState, with_worker_ids: bool) -> BTreeMap<String, String> {
    let agents = Shared::of(state.nodes.iter().map(|n| (n.name(), boot_id(n))));
    let ids = Shared::of(
        state
            .nodes
            .iter()
            .filter(|n| n.role() == Role::Worker)
            .map(|n| (n.name(), n.worker_id())),
    );
    let mut found = BTreeMap::new();
    for node in &state.nodes {
        let mut problems = agent_problems(node, state.instance_name());
        let twins = agents.others(node.name(), boot_id(node));
        if !twins.is_empty() {
            problems.push(format!(
                "its address reaches the same agent as {}; every node needs its own agent",
                twins.join(", ")
            ));
        }
        if with_worker_ids && node.role() == Role::Worker {
            problems.extend(worker_problems(node, &ids));
        }
        if !problems.is_empty() {
            found.insert(node.name().to_owned(), problems.join("; "));
        }
    }
    found
}

/// The agent at the node's address calls itself by another name or role, or is bound to
/// another instance (addresses swapped in a spec, a re-IP, a host reused).
fn agent_problems(node: &NodeState, instance: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(observed) = &node.observed else {
        return problems;
    };
    let agent = &node.node.agent;
    if !observed.name.is_empty() && observed.name != node.name() {
        problems.push(format!(
            "the agent at {agent} calls itself '{}', not '{}'; fix the address in the spec or the agent's --name",
            observed.name,
            node.name()
        ));
    }
    let meant = node.role();
    if let Some(reported) = observed.role
        && reported != meant
    {
        problems.push(format!(
            "the agent at {agent} serves a {reported} database, not a {meant} one"
        ));
    }
    if !observed.instance.is_empty() && !instance.is_empty() && observed.instance != instance {
        problems.push(format!(
            "the agent at {agent} belongs to instance '{}', not '{instance}'",
            observed.instance
        ));
    }
    problems
}

/// A worker whose id changed since registration (a wiped database, a swapped disk), vanished,
/// or is shared with another worker.
fn worker_problems(node: &NodeState, ids: &Shared<'_>) -> Vec<String> {
    let mut problems = Vec::new();
    let reported = node.worker_id();
    if let (Some(registered), Some(reported)) = (&node.registered_id, reported)
        && registered != reported
    {
        problems.push(format!(
            "reports worker id {reported} but was registered as {registered}; remove and re-add the worker"
        ));
    }
    if let (Some(registered), None, true) = (&node.registered_id, reported, node.db_ready()) {
        problems.push(format!(
            "reports no worker id but was registered as {registered}; remove and re-add the worker"
        ));
    }
    if let Some(id) = reported {
        let twins = ids.others(node.name(), Some(id));
        if !twins.is_empty() {
            problems.push(format!("shares worker id {id} with {}", twins.join(", ")));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Node, Observation};
    use crate::instance::state::Reach;

    fn node(name: &str, role: Role, reported: &str, boot: &str) -> NodeState {
        let mut node = NodeState::new(
            Node {
                name: name.to_owned(),
                role,
                agent: format!("http://{name}:7080"),
            },
            None,
        );
        node.reach = Reach::Reachable;
        node.observed = Some(Observation {
            name: reported.to_owned(),
            role: Some(role),
            boot_id: boot.to_owned(),
            ..Observation::default()
        });
        node
    }

    fn observed(node: &mut NodeState) -> &mut Observation {
        node.observed.get_or_insert_with(Observation::default)
    }

    fn status(nodes: Vec<NodeState>) -> InstanceState {
        InstanceState {
            instance: Some("dr1".to_owned()),
            nodes,
            ..InstanceState::default()
        }
    }

    #[test]
    fn swapped_addresses_name_both_nodes() {
        let found = problems(&status(vec![
            node("worker-1", Role::Worker, "worker-2", "b2"),
            node("worker-2", Role::Worker, "worker-1", "b1"),
        ]));
        assert!(found["worker-1"].contains("calls itself 'worker-2'"));
        assert!(found["worker-2"].contains("calls itself 'worker-1'"));
    }

    #[test]
    fn two_entries_reaching_one_agent_are_flagged() {
        let found = problems(&status(vec![
            node("worker-1", Role::Worker, "worker-1", "b1"),
            node("worker-2", Role::Worker, "worker-1", "b1"),
        ]));
        assert!(found["worker-1"].contains("same agent as worker-2"));
        assert!(found["worker-2"].contains("same agent as worker-1"));
    }

    #[test]
    fn another_role_or_instance_is_flagged() {
        let mut czar = node("czar-0", Role::Czar, "czar-0", "b1");
        observed(&mut czar).role = Some(Role::Worker);
        let mut repl = node("repl-0", Role::Repl, "repl-0", "b2");
        observed(&mut repl).instance = "dr2".to_owned();
        let found = problems(&status(vec![czar, repl]));
        assert!(found["czar-0"].contains("serves a worker database, not a czar one"));
        assert!(found["repl-0"].contains("belongs to instance 'dr2', not 'dr1'"));
    }

    #[test]
    fn a_clean_instance_has_no_problem() {
        let mut w = node("worker-1", Role::Worker, "worker-1", "b1");
        observed(&mut w).worker_id = Some("id-1".to_owned());
        w.registered_id = Some("id-1".to_owned());
        let mut czar = node("czar-0", Role::Czar, "", "");
        observed(&mut czar).instance = "dr1".to_owned();
        assert!(problems(&status(vec![w, czar])).is_empty());
    }

    #[test]
    fn a_node_never_heard_from_has_no_identity_problem() {
        let silent = NodeState::new(
            Node {
                name: "worker-1".to_owned(),
                role: Role::Worker,
                agent: "http://worker-1:7080".to_owned(),
            },
            Some("id-1".to_owned()),
        );
        assert!(problems(&status(vec![silent])).is_empty());
    }

    #[test]
    fn worker_ids_changed_or_shared_are_flagged() {
        let mut a = node("worker-1", Role::Worker, "worker-1", "b1");
        observed(&mut a).worker_id = Some("new".to_owned());
        a.registered_id = Some("old".to_owned());
        let mut b = node("worker-2", Role::Worker, "worker-2", "b2");
        observed(&mut b).worker_id = Some("new".to_owned());
        let found = problems(&status(vec![a, b]));
        assert!(found["worker-1"].contains("registered as old"));
        assert!(found["worker-1"].contains("shares worker id new with worker-2"));
        assert!(found["worker-2"].contains("shares worker id new with worker-1"));
    }
}
