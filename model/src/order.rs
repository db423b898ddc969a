//! The order in which an instance's services start (DESIGN §15): the one place that knows the
//! rules. A service starts on a node only once every instance of each service it comes `after`
//! is ready on every node; services stop in the reverse order.
//!
//! Waves group services by their depth in the graph: wave 0 needs nothing, wave k needs only
//! services of earlier waves and at least one of wave k-1. The critical path of a start is the
//! sum over waves of their slowest readiness delay (DESIGN §19).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::UnknownName;
use crate::role::Role;
use crate::service::ServiceName;

/// One entry of the instance spec's `[[services]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderedService {
    pub name: ServiceName,
    pub role: Role,
    /// Services (of any role) that must be ready everywhere before this one starts.
    #[serde(default)]
    pub after: Vec<ServiceName>,
}

/// A layout the spec can name instead of writing out its services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Qserv's own services, one per `entrypoint` subcommand, in the order its start-up needs:
    /// registry → managers → worker services → replication controller → proxy → czar-http.
    Qserv,
}

impl Layout {
    pub fn parse(value: &str) -> Result<Layout, UnknownName> {
        match value {
            "qserv" => Ok(Layout::Qserv),
            _ => Err(UnknownName {
                kind: "layout",
                value: value.to_owned(),
                expected: "qserv",
            }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Layout::Qserv => "qserv",
        }
    }

    /// The layout's services as `(name, role, after)`.
    fn entries(self) -> &'static [(&'static str, Role, &'static [&'static str])] {
        const MANAGERS: &[&str] = &["xrootd-manager", "cmsd-manager"];
        const WORKER: &[&str] = &["worker-xrootd", "worker-cmsd", "worker-repl"];
        match self {
            Layout::Qserv => &[
                ("replication-registry", Role::Repl, &[]),
                ("xrootd-manager", Role::Czar, &["replication-registry"]),
                ("cmsd-manager", Role::Czar, &["replication-registry"]),
                ("worker-xrootd", Role::Worker, MANAGERS),
                ("worker-cmsd", Role::Worker, MANAGERS),
                ("worker-repl", Role::Worker, MANAGERS),
                ("replication-controller", Role::Repl, WORKER),
                ("proxy", Role::Czar, &["replication-controller"]),
                ("czar-http", Role::Czar, &["proxy"]),
            ],
        }
    }

    pub fn services(self) -> Vec<OrderedService> {
        self.entries()
            .iter()
            .filter_map(|(name, role, after)| {
                Some(OrderedService {
                    name: ServiceName::parse(name).ok()?,
                    role: *role,
                    after: after
                        .iter()
                        .filter_map(|a| ServiceName::parse(a).ok())
                        .collect(),
                })
            })
            .collect()
    }
}

/// Why a declared order cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("service '{0}' is declared twice")]
    Duplicate(ServiceName),
    #[error("service '{service}' comes after '{after}', which no [[services]] entry declares")]
    UnknownAfter {
        service: ServiceName,
        after: ServiceName,
    },
    /// The services of the cycle, each coming after the next; the last comes after the first.
    #[error("the service order has a cycle: {} (each comes after the next)", cycle_text(.0))]
    Cycle(Vec<ServiceName>),
}

fn cycle_text(cycle: &[ServiceName]) -> String {
    let mut words: Vec<&str> = cycle.iter().map(ServiceName::as_str).collect();
    if let Some(first) = cycle.first() {
        words.push(first.as_str());
    }
    words.join(" → ")
}

/// A validated order: unique names, every `after` declared, no cycle. Kept (in job documents)
/// as its list of services, and checked again when read back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<OrderedService>", into = "Vec<OrderedService>")]
pub struct ServiceOrder {
    services: Vec<OrderedService>,
    /// The wave of each service, by index in `services`.
    waves: Vec<usize>,
}

impl ServiceOrder {
    /// The layout's services (if any) followed by the spec's own entries.
    pub fn declare(
        layout: Option<Layout>,
        own: Vec<OrderedService>,
    ) -> Result<ServiceOrder, OrderError> {
        let mut services = layout.map(Layout::services).unwrap_or_default();
        services.extend(own);
        ServiceOrder::new(services)
    }

    pub fn new(services: Vec<OrderedService>) -> Result<ServiceOrder, OrderError> {
        let mut index: HashMap<&ServiceName, usize> = HashMap::new();
        for (i, s) in services.iter().enumerate() {
            if index.insert(&s.name, i).is_some() {
                return Err(OrderError::Duplicate(s.name.clone()));
            }
        }
        let mut edges = Vec::with_capacity(services.len());
        for s in &services {
            let mut deps = Vec::with_capacity(s.after.len());
            for after in &s.after {
                let Some(&dep) = index.get(after) else {
                    return Err(OrderError::UnknownAfter {
                        service: s.name.clone(),
                        after: after.clone(),
                    });
                };
                deps.push(dep);
            }
            edges.push(deps);
        }
        let waves = depths(&edges).map_err(|cycle| {
            OrderError::Cycle(
                cycle
                    .into_iter()
                    .map(|i| services[i].name.clone())
                    .collect(),
            )
        })?;
        Ok(ServiceOrder { services, waves })
    }

    pub fn the_qserv_layout() -> ServiceOrder {
        // The layout's table is checked by a unit test; an invalid one would be an empty order.
        ServiceOrder::declare(Some(Layout::Qserv), Vec::new()).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    pub fn services(&self) -> &[OrderedService] {
        &self.services
    }

    /// The services a node of `role` runs, in declaration order.
    pub fn of_role(&self, role: Role) -> impl Iterator<Item = &OrderedService> {
        self.services.iter().filter(move |s| s.role == role)
    }

    /// The wave a service starts in.
    pub fn wave_of(&self, name: &ServiceName) -> Option<usize> {
        let i = self.services.iter().position(|s| &s.name == name)?;
        self.waves.get(i).copied()
    }

    /// The services by wave, each wave in declaration order; stop in the reverse.
    pub fn waves(&self) -> Vec<Vec<&OrderedService>> {
        let count = self.waves.iter().max().map_or(0, |w| w + 1);
        let mut waves = vec![Vec::new(); count];
        for (s, &w) in self.services.iter().zip(&self.waves) {
            waves[w].push(s);
        }
        waves
    }

    /// The services of `role` in the order that a node starts them itself (a rolling restart):
    /// by wave, then as declared.
    pub fn node_order(&self, role: Role) -> Vec<&ServiceName> {
        self.waves()
            .into_iter()
            .flatten()
            .filter(|s| s.role == role)
            .map(|s| &s.name)
            .collect()
    }

    /// The services of `role` that a node defining `defined` lacks: a layout problem.
    pub fn missing<'a>(&'a self, role: Role, defined: &[ServiceName]) -> Vec<&'a ServiceName> {
        self.of_role(role)
            .map(|s| &s.name)
            .filter(|name| !defined.contains(name))
            .collect()
    }
}

impl TryFrom<Vec<OrderedService>> for ServiceOrder {
    type Error = OrderError;
    fn try_from(services: Vec<OrderedService>) -> Result<ServiceOrder, OrderError> {
        ServiceOrder::new(services)
    }
}

impl From<ServiceOrder> for Vec<OrderedService> {
    fn from(order: ServiceOrder) -> Vec<OrderedService> {
        order.services
    }
}

/// The depth of each node of a graph given by its out-edges (`edges[i]`: what `i` comes after),
/// or a cycle as indices, each coming after the next.
fn depths(edges: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark = vec![Mark::New; edges.len()];
    let mut depth = vec![0usize; edges.len()];
    for root in 0..edges.len() {
        if mark[root] != Mark::New {
            continue;
        }
        // An explicit stack (node, next edge): a spec of thousands of services cannot overflow.
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        mark[root] = Mark::Open;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&dep) = edges[node].get(*next) {
                *next += 1;
                match mark[dep] {
                    Mark::New => {
                        mark[dep] = Mark::Open;
                        stack.push((dep, 0));
                    }
                    Mark::Open => {
                        let from = stack.iter().position(|(n, _)| *n == dep).unwrap_or(0);
                        return Err(stack[from..].iter().map(|(n, _)| *n).collect());
                    }
                    Mark::Done => {}
                }
            } else {
                depth[node] = edges[node].iter().map(|d| depth[*d] + 1).max().unwrap_or(0);
                mark[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    Ok(depth)
}

#[cfg(test)]
#[path = "order_tests.rs"]
mod tests;
