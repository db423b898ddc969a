use super::*;
use crate::domain::spec::NodeSpec;
use crate::domain::{RegistryRow, SchemaObservation};
use crate::store::NodeRecord;
use proptest::prelude::*;

fn inventory() -> Inventory {
    let node = |name: &str, role: Role, registered: Option<&str>| NodeRecord {
        spec: NodeSpec {
            name: name.to_owned(),
            role,
            agent: format!("http://{name}:7080"),
        },
        registered_id: registered.map(str::to_owned),
    };
    Inventory {
        name: "dr1".to_owned(),
        mode: Mode::Maintenance,
        epoch: Epoch::from_wire(4),
        nodes: vec![
            node("repl-0", Role::Repl, None),
            node("worker-1", Role::Worker, Some("id-1")),
            node("worker-2", Role::Worker, Some("id-2")),
            node("worker-3", Role::Worker, None),
        ],
        services: Default::default(),
    }
}

/// One status report: who sends it and what of it varies.
#[derive(Debug, Clone)]
struct Report {
    node: usize,
    worker_id: Option<u8>,
    registry: Vec<u8>,
    version: Option<i64>,
    db_ready: bool,
    seen_epoch: u64,
    boot: u8,
}

fn observation(report: &Report, name: &str, role: Role, seq: u64) -> Observation {
    let module = role.module();
    Observation {
        name: name.to_owned(),
        role: Some(role),
        protocol_version: qserv_proto::PROTOCOL_VERSION,
        db_ready: report.db_ready,
        worker_id: (role == Role::Worker)
            .then(|| report.worker_id.map(|i| format!("id-{i}")))
            .flatten(),
        schemas: vec![SchemaObservation {
            module,
            version: report.version,
            dirty: false,
            dirty_reason: String::new(),
        }],
        registry: if role == Role::Repl {
            report
                .registry
                .iter()
                .map(|i| RegistryRow {
                    name: format!("id-{i}"),
                    is_enabled: true,
                    is_read_only: false,
                })
                .collect()
        } else {
            Vec::new()
        },
        seen_epoch: Epoch::from_wire(report.seen_epoch),
        boot_id: format!("boot-{}", report.boot),
        seq,
        ..Observation::default()
    }
}

fn apply(state: &mut InstanceState, report: &Report, seq: u64) -> bool {
    let inventory = inventory();
    let node = &inventory.nodes[report.node % inventory.nodes.len()].spec;
    let observed = observation(report, &node.name, node.role, seq);
    apply_observation(state, &node.name, &observed, &Targets::default(), 1_000)
}

fn node<'a>(state: &'a InstanceState, name: &str) -> &'a NodeState {
    state.node(name).unwrap_or_else(|| panic!("no node {name}"))
}

fn problem(state: &InstanceState, name: &str) -> String {
    node(state, name)
        .identity_problem
        .clone()
        .unwrap_or_default()
}

fn report(node: usize, worker_id: Option<u8>, boot: u8) -> Report {
    Report {
        node,
        worker_id,
        registry: Vec::new(),
        version: Some(1),
        db_ready: true,
        seen_epoch: 4,
        boot,
    }
}

#[test]
fn a_registry_change_reaches_every_worker() {
    let mut status = InstanceState::default();
    set_inventory(&mut status, Some(&inventory()));
    apply(&mut status, &report(1, Some(1), 1), 1);
    apply(&mut status, &report(2, Some(2), 2), 1);
    assert_eq!(node(&status, "worker-1").registered, Some(false));
    let mut repl = report(0, None, 0);
    repl.registry = vec![1, 2];
    assert!(apply(&mut status, &repl, 1));
    assert_eq!(node(&status, "worker-1").registered, Some(true));
    assert_eq!(node(&status, "worker-2").registered, Some(true));
    // The repl's own fields change too: the registry must still reach the workers.
    repl.registry = vec![2];
    repl.version = Some(2);
    assert!(apply(&mut status, &repl, 2));
    assert_eq!(node(&status, "worker-1").registered, Some(false));
    assert_eq!(node(&status, "worker-2").registered, Some(true));
}

#[test]
fn a_shared_worker_id_flags_both_and_clears_on_both() {
    let mut status = InstanceState::default();
    set_inventory(&mut status, Some(&inventory()));
    apply(&mut status, &report(1, Some(1), 1), 1);
    apply(&mut status, &report(3, Some(1), 3), 1);
    assert!(problem(&status, "worker-1").contains("shares worker id id-1"));
    assert!(problem(&status, "worker-3").contains("shares worker id id-1"));
    // A schema change alone keeps the problem; a new id on worker-3 clears it on worker-1 too.
    let mut moved = report(1, Some(1), 1);
    moved.version = Some(2);
    apply(&mut status, &moved, 2);
    assert!(problem(&status, "worker-1").contains("shares"));
    apply(&mut status, &report(3, Some(3), 3), 2);
    assert_eq!(node(&status, "worker-1").identity_problem, None);
    assert_eq!(node(&status, "worker-3").identity_problem, None);
}

fn any_report() -> impl Strategy<Value = Report> {
    (
        0usize..4,
        proptest::option::of(0u8..4),
        proptest::collection::vec(0u8..4, 0..4),
        proptest::option::of(0i64..3),
        any::<bool>(),
        3u64..6,
        0u8..4,
    )
        .prop_map(
            |(node, worker_id, registry, version, db_ready, seen_epoch, boot)| Report {
                node,
                worker_id,
                registry,
                version,
                db_ready,
                seen_epoch,
                boot,
            },
        )
}

proptest! {
    /// Refreshing only the node that changed gives the status a full refresh gives.
    #[test]
    fn refreshing_one_node_equals_refreshing_all(reports in proptest::collection::vec(any_report(), 1..40)) {
        let mut status = InstanceState::default();
        set_inventory(&mut status, Some(&inventory()));
        for (seq, report) in reports.iter().enumerate() {
            apply(&mut status, report, seq as u64 + 1);
            let mut full = status.clone();
            refresh(&mut full);
            prop_assert_eq!(&full, &status);
        }
    }
}

fn node_state(name: &str, observed: Observation) -> NodeState {
    let mut node = NodeState::new(
        Node {
            name: name.to_owned(),
            role: Role::Worker,
            agent: format!("http://{name}:7080"),
        },
        None,
    );
    node.reach = Reach::Reachable;
    node.observed = Some(observed);
    node
}

#[test]
fn certificates_near_their_end_are_warned_of() {
    let day = 24 * 3600 * 1000;
    let expiring = |end| Observation {
        certificate_expires_at_ms: end,
        ..Observation::default()
    };
    let state = InstanceState {
        answered_by: "ctl-1".to_owned(),
        nodes: vec![
            node_state("worker-1", expiring(110 * day)),
            node_state("worker-2", expiring(400 * day)),
            node_state("plain", Observation::default()),
            NodeState::new(
                Node {
                    name: "silent".to_owned(),
                    role: Role::Worker,
                    agent: "http://silent:7080".to_owned(),
                },
                None,
            ),
        ],
        ..Default::default()
    };
    let warnings = crate::instance::certificate_warnings(&state, Some(105 * day), 100 * day);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("coordinator ctl-1") && warnings[0].contains("5 days"));
    assert!(warnings[1].contains("agent worker-1") && warnings[1].contains("10 days"));
    assert!(crate::instance::certificate_warnings(&state, None, 0).is_empty());
}

#[test]
fn only_an_agent_purged_at_the_stores_own_epoch_is_a_delete_that_did_not_finish() {
    let seven = Epoch::from_wire(7);
    let purged = node_state(
        "worker-1",
        Observation {
            mode: Some(Mode::Uninstalled),
            epoch: seven,
            ..Observation::default()
        },
    );
    let problem = purged_problem(&purged, Mode::Maintenance, seven, "dr1").unwrap_or_default();
    assert!(problem.contains("qserv delete --confirm dr1"), "{problem}");
    // An install under way, an older epoch (never installed here) and an unreachable agent
    // are something else.
    assert_eq!(
        purged_problem(&purged, Mode::Installing, seven, "dr1"),
        None
    );
    assert_eq!(
        purged_problem(&purged, Mode::Maintenance, Epoch::from_wire(8), "dr1"),
        None
    );
    let mut unreachable = purged.clone();
    unreachable.reach = Reach::Unreachable("refused".to_owned());
    assert_eq!(
        purged_problem(&unreachable, Mode::Normal, seven, "dr1"),
        None
    );
    let mut bound = purged;
    if let Some(observed) = bound.observed.as_mut() {
        observed.mode = Some(Mode::Maintenance);
    }
    assert_eq!(
        purged_problem(&bound, Mode::Maintenance, seven, "dr1"),
        None
    );
}

#[test]
fn an_older_status_of_the_same_agent_process_is_ignored() {
    let mut state = InstanceState::default();
    set_inventory(&mut state, Some(&inventory()));
    let mut fresh = report(1, Some(1), 1);
    fresh.version = Some(2);
    assert!(apply(&mut state, &fresh, 5));
    assert!(!apply(&mut state, &report(1, Some(1), 1), 4));
    assert_eq!(node(&state, "worker-1").schema[0].version, Some(2));
    // A restarted agent (new boot id) counts again from 1.
    assert!(apply(&mut state, &report(1, Some(1), 2), 1));
    assert_eq!(node(&state, "worker-1").schema[0].version, Some(1));
}
