//! Which nodes a configuration change is for (DESIGN §17): those that run the service (their
//! role has it in the instance's order, or their agent reports it), narrowed by role and names.

use qserv_model::{Role, ServiceName};

use super::InstanceState;

/// The nodes of `status` that `service`'s configuration is written to, in inventory order; or
/// why there are none, or why a named node is not one.
pub fn config_targets(
    status: &InstanceState,
    service: &ServiceName,
    role: Option<Role>,
    names: &[String],
) -> Result<Vec<String>, String> {
    for name in names {
        if status.node(name).is_none() {
            return Err(format!("no node named '{name}' in the inventory"));
        }
    }
    let runs = |node: &super::NodeState| {
        status.services.node_order(node.role()).contains(&service)
            || node
                .observed
                .as_ref()
                .is_some_and(|o| o.service_states.iter().any(|s| &s.name == service))
    };
    let mut targets = Vec::new();
    for node in &status.nodes {
        if role.is_some_and(|r| r != node.role()) {
            continue;
        }
        let named = names.iter().any(|n| n == node.name());
        if !names.is_empty() && !named {
            continue;
        }
        if runs(node) {
            targets.push(node.name().to_owned());
        } else if named {
            return Err(format!(
                "node '{}' does not run service '{service}'",
                node.name()
            ));
        }
    }
    if targets.is_empty() {
        let scope = role.map_or_else(String::new, |r| format!(" among the {} nodes", r.name()));
        return Err(format!(
            "no node runs service '{service}'{scope}: the instance's order and its agents name none"
        ));
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use qserv_model::{ServiceOrder, ServiceState, ServiceStatus};

    use super::*;
    use crate::domain::{Node, Observation};
    use crate::instance::NodeState;

    fn node(name: &str, role: Role, reports: &[&str]) -> NodeState {
        let mut node = NodeState::new(
            Node {
                name: name.to_owned(),
                role,
                agent: format!("http://{name}:7080"),
            },
            None,
        );
        node.observed = Some(Observation {
            service_states: reports
                .iter()
                .map(|s| ServiceStatus::new(service(s), ServiceState::Stopped, 1))
                .collect(),
            ..Observation::default()
        });
        node
    }

    fn service(name: &str) -> ServiceName {
        ServiceName::parse(name).unwrap_or_else(|e| panic!("{e}"))
    }

    fn instance(order: ServiceOrder) -> InstanceState {
        InstanceState {
            nodes: vec![
                node("czar-0", Role::Czar, &["proxy"]),
                node("worker-1", Role::Worker, &[]),
                node("worker-2", Role::Worker, &["worker-xrootd"]),
            ],
            services: order,
            ..InstanceState::default()
        }
    }

    #[test]
    fn the_nodes_that_run_the_service_by_the_order_or_by_their_agent() {
        let xrootd = service("worker-xrootd");
        let agents_only = instance(ServiceOrder::default());
        assert_eq!(
            config_targets(&agents_only, &xrootd, None, &[]),
            Ok(vec!["worker-2".to_owned()])
        );
        let ordered = instance(ServiceOrder::the_qserv_layout());
        assert_eq!(
            config_targets(&ordered, &xrootd, None, &[]),
            Ok(vec!["worker-1".to_owned(), "worker-2".to_owned()])
        );
        assert_eq!(
            config_targets(
                &ordered,
                &xrootd,
                Some(Role::Worker),
                &["worker-1".to_owned()]
            ),
            Ok(vec!["worker-1".to_owned()])
        );
    }

    #[test]
    fn a_node_that_does_not_run_it_or_does_not_exist_is_named() {
        let ordered = instance(ServiceOrder::the_qserv_layout());
        let xrootd = service("worker-xrootd");
        let czar = config_targets(&ordered, &xrootd, None, &["czar-0".to_owned()]);
        assert!(czar.is_err_and(|e| e.contains("'czar-0' does not run")));
        let ghost = config_targets(&ordered, &xrootd, None, &["worker-9".to_owned()]);
        assert!(ghost.is_err_and(|e| e.contains("no node named 'worker-9'")));
        let none = config_targets(&ordered, &xrootd, Some(Role::Repl), &[]);
        assert!(none.is_err_and(|e| e.contains("among the repl nodes")));
    }
}
