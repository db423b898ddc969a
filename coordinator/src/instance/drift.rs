//! A spec given at start against the installed inventory. After install only jobs change which
//! workers there are (`workers add`, `remove`, `replace`), so a declarative deployment's spec
//! may lag behind by workers, for instance after a crash in the middle of `workers add`: that
//! is drift to show, not a reason to refuse to start. Anything else that differs (the instance
//! name, a czar or repl node, a node's role or address) is a conflict.

use crate::domain::Role;
use crate::domain::spec::InstanceSpec;
use crate::instance::InstanceState;
use crate::store::{Inventory, SpecConflict, spec_conflicts};

/// Workers the spec and the installed inventory disagree on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drift {
    /// Installed workers the spec does not name (added by a job since).
    pub not_in_spec: Vec<String>,
    /// Workers the spec names that are not installed (removed by a job since, or not added yet).
    pub not_installed: Vec<String>,
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        self.not_in_spec.is_empty() && self.not_installed.is_empty()
    }
}

/// How the spec's workers differ from the nodes named `installed` (name, role).
pub fn drift(spec: &InstanceSpec, installed: &[(String, Role)]) -> Drift {
    let installed_workers = installed.iter().filter(|(_, role)| *role == Role::Worker);
    let spec_workers = spec.nodes.iter().filter(|n| n.role == Role::Worker);
    Drift {
        not_in_spec: installed_workers
            .filter(|(name, _)| !spec.nodes.iter().any(|n| n.name == *name))
            .map(|(name, _)| name.clone())
            .collect(),
        not_installed: spec_workers
            .filter(|n| !installed.iter().any(|(name, _)| *name == n.name))
            .map(|n| n.name.clone())
            .collect(),
    }
}

/// What stops a coordinator starting with `spec` on `inventory`: every difference but workers
/// present on one side only.
pub fn start_conflicts(inventory: &Inventory, spec: &InstanceSpec) -> Vec<SpecConflict> {
    spec_conflicts(inventory, spec)
        .into_iter()
        .filter(|conflict| {
            !matches!(
                conflict,
                SpecConflict::NotInstalled {
                    role: Role::Worker,
                    ..
                } | SpecConflict::NotInSpec {
                    role: Role::Worker,
                    ..
                }
            )
        })
        .collect()
}

/// The drift of the spec given at start against the nodes `state` holds, for the status.
pub fn status_drift(spec: &InstanceSpec, state: &InstanceState) -> Option<Drift> {
    let installed: Vec<(String, Role)> = state
        .nodes
        .iter()
        .map(|n| (n.name().to_owned(), n.role()))
        .collect();
    Some(drift(spec, &installed)).filter(|d| !d.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::spec::NodeSpec;
    use crate::store::NodeRecord;

    fn node(name: &str, role: Role) -> NodeSpec {
        NodeSpec {
            name: name.to_owned(),
            role,
            agent: format!("http://{name}:7080"),
        }
    }

    fn inventory(nodes: &[NodeSpec]) -> Inventory {
        Inventory {
            name: "dr1".to_owned(),
            mode: crate::instance::Mode::Maintenance,
            epoch: crate::instance::Epoch::from_wire(3),
            nodes: nodes
                .iter()
                .map(|n| NodeRecord {
                    spec: n.clone(),
                    registered_id: None,
                })
                .collect(),
            services: Default::default(),
        }
    }

    fn spec(nodes: &[NodeSpec]) -> InstanceSpec {
        InstanceSpec {
            name: "dr1".to_owned(),
            nodes: nodes.to_vec(),
            services: Default::default(),
        }
    }

    #[test]
    fn workers_added_or_removed_by_jobs_are_drift_not_conflicts() {
        let base = [node("czar-0", Role::Czar), node("repl-0", Role::Repl)];
        let installed = inventory(&[
            base[0].clone(),
            base[1].clone(),
            node("worker-3", Role::Worker),
        ]);
        let lagging = spec(&[
            base[0].clone(),
            base[1].clone(),
            node("worker-1", Role::Worker),
        ]);
        assert!(start_conflicts(&installed, &lagging).is_empty());
        let names: Vec<(String, Role)> = installed
            .nodes
            .iter()
            .map(|n| (n.spec.name.clone(), n.spec.role))
            .collect();
        assert_eq!(
            drift(&lagging, &names),
            Drift {
                not_in_spec: vec!["worker-3".to_owned()],
                not_installed: vec!["worker-1".to_owned()],
            }
        );
    }

    #[test]
    fn anything_else_that_differs_still_refuses_the_start() {
        let installed = inventory(&[node("czar-0", Role::Czar), node("repl-0", Role::Repl)]);
        let no_repl = spec(&[node("czar-0", Role::Czar)]);
        assert_eq!(start_conflicts(&installed, &no_repl).len(), 1);
        let mut moved = node("czar-0", Role::Czar);
        moved.agent = "http://elsewhere:7080".to_owned();
        let moved = spec(&[moved, node("repl-0", Role::Repl)]);
        assert_eq!(start_conflicts(&installed, &moved).len(), 1);
        let mut renamed = spec(&[node("czar-0", Role::Czar), node("repl-0", Role::Repl)]);
        renamed.name = "dr2".to_owned();
        assert_eq!(start_conflicts(&installed, &renamed).len(), 1);
    }
}
