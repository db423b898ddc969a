use proptest::prelude::*;

use super::*;

fn name(s: &str) -> ServiceName {
    ServiceName::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

fn svc(n: &str, role: Role, after: &[&str]) -> OrderedService {
    OrderedService {
        name: name(n),
        role,
        after: after.iter().map(|a| name(a)).collect(),
    }
}

fn wave_names(order: &ServiceOrder) -> Vec<Vec<&str>> {
    order
        .waves()
        .into_iter()
        .map(|w| w.into_iter().map(|s| s.name.as_str()).collect())
        .collect()
}

#[test]
fn the_qserv_layout_starts_registry_managers_workers_controller_proxy_czar_http() {
    let order = ServiceOrder::the_qserv_layout();
    assert_eq!(
        wave_names(&order),
        [
            vec!["replication-registry"],
            vec!["xrootd-manager", "cmsd-manager"],
            vec!["worker-xrootd", "worker-cmsd", "worker-repl"],
            vec!["replication-controller"],
            vec!["proxy"],
            vec!["czar-http"],
        ]
    );
    let czar: Vec<&str> = order
        .node_order(Role::Czar)
        .into_iter()
        .map(ServiceName::as_str)
        .collect();
    assert_eq!(
        czar,
        ["xrootd-manager", "cmsd-manager", "proxy", "czar-http"]
    );
}

#[test]
fn a_spec_adds_its_own_services_to_a_layout() {
    let order = ServiceOrder::declare(
        Some(Layout::Qserv),
        vec![svc("ingest-http", Role::Repl, &["replication-controller"])],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(order.wave_of(&name("ingest-http")), Some(4));
    let taken = ServiceOrder::declare(Some(Layout::Qserv), vec![svc("proxy", Role::Czar, &[])]);
    assert_eq!(taken, Err(OrderError::Duplicate(name("proxy"))));
}

#[test]
fn a_cycle_is_named_in_the_order_it_closes() {
    let err = ServiceOrder::new(vec![
        svc("a", Role::Czar, &[]),
        svc("b", Role::Worker, &["c"]),
        svc("c", Role::Worker, &["d"]),
        svc("d", Role::Repl, &["b"]),
    ]);
    assert_eq!(
        err.clone().err().map(|e| e.to_string()),
        Some("the service order has a cycle: b → c → d → b (each comes after the next)".to_owned())
    );
    let own = ServiceOrder::new(vec![svc("a", Role::Czar, &["a"])]);
    assert_eq!(own, Err(OrderError::Cycle(vec![name("a")])));
}

#[test]
fn an_after_naming_nothing_is_refused_with_both_names() {
    let err = ServiceOrder::new(vec![svc("proxy", Role::Czar, &["worker-xrotd"])]);
    assert_eq!(
        err.err().map(|e| e.to_string()),
        Some(
            "service 'proxy' comes after 'worker-xrotd', which no [[services]] entry declares"
                .to_owned()
        )
    );
}

#[test]
fn a_node_lacking_a_service_of_its_role_is_told_which() {
    let order = ServiceOrder::the_qserv_layout();
    let defined = [name("worker-xrootd"), name("worker-repl"), name("extra")];
    let missing: Vec<&str> = order
        .missing(Role::Worker, &defined)
        .into_iter()
        .map(ServiceName::as_str)
        .collect();
    assert_eq!(missing, ["worker-cmsd"]);
    assert!(
        ServiceOrder::default()
            .missing(Role::Worker, &[])
            .is_empty()
    );
}

#[test]
fn layouts_keep_their_names() {
    assert_eq!(Layout::parse("qserv").ok(), Some(Layout::Qserv));
    assert_eq!(Layout::Qserv.name(), "qserv");
    assert!(Layout::parse("lsst").is_err());
    assert_eq!(
        Layout::Qserv.services().len(),
        Layout::Qserv.entries().len()
    );
}

/// A graph of `n` services where each may come after any (`forward`: only earlier ones).
fn graph(max: usize, forward: bool) -> impl Strategy<Value = Vec<Vec<usize>>> {
    (1..max).prop_flat_map(move |n| {
        proptest::collection::vec(proptest::collection::btree_set(0..n, 0..4), n).prop_map(
            move |sets| {
                sets.into_iter()
                    .enumerate()
                    .map(|(i, set)| {
                        set.into_iter()
                            .filter(|d| !forward || *d < i)
                            .collect::<Vec<_>>()
                    })
                    .collect()
            },
        )
    })
}

fn services_of(edges: &[Vec<usize>]) -> Vec<OrderedService> {
    let roles = Role::ALL;
    edges
        .iter()
        .enumerate()
        .map(|(i, deps)| OrderedService {
            name: name(&format!("s{i}")),
            role: roles[i % 3],
            after: deps.iter().map(|d| name(&format!("s{d}"))).collect(),
        })
        .collect()
}

proptest! {
    #[test]
    fn an_acyclic_order_puts_every_service_one_wave_after_its_latest_dependency(
        edges in graph(40, true)
    ) {
        let order = ServiceOrder::new(services_of(&edges));
        prop_assert!(order.is_ok(), "{order:?}");
        let order = order.unwrap_or_default();
        for s in order.services() {
            let wave = order.wave_of(&s.name);
            let latest = s.after.iter().filter_map(|a| order.wave_of(a)).max();
            prop_assert_eq!(wave, Some(latest.map_or(0, |w| w + 1)));
        }
        let flat: usize = order.waves().iter().map(Vec::len).sum();
        prop_assert_eq!(flat, edges.len());
    }

    #[test]
    fn any_order_is_either_waves_or_a_real_cycle(edges in graph(30, false)) {
        let services = services_of(&edges);
        match ServiceOrder::new(services.clone()) {
            Ok(order) => {
                for s in order.services() {
                    for a in &s.after {
                        prop_assert!(order.wave_of(a) < order.wave_of(&s.name));
                    }
                }
            }
            Err(OrderError::Cycle(cycle)) => {
                prop_assert!(!cycle.is_empty());
                for (i, n) in cycle.iter().enumerate() {
                    let next = &cycle[(i + 1) % cycle.len()];
                    let entry = services.iter().find(|s| &s.name == n);
                    prop_assert!(entry.is_some_and(|s| s.after.contains(next)), "{cycle:?}");
                }
            }
            Err(other) => prop_assert!(false, "{other}"),
        }
    }
}
