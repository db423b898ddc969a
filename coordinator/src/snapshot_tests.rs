use proptest::prelude::*;
use qserv_proto::v1 as pb;

use super::*;
use crate::spec::NodeSpec;
use crate::store::NodeRecord;

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
        epoch: 4,
        nodes: vec![
            node("repl-0", Role::Repl, None),
            node("worker-1", Role::Worker, Some("id-1")),
            node("worker-2", Role::Worker, Some("id-2")),
            node("worker-3", Role::Worker, None),
        ],
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
    Observation::from(&pb::AgentStatus {
        name: name.to_owned(),
        role: pb::Role::from(role).into(),
        protocol_version: qserv_proto::PROTOCOL_VERSION,
        database: Some(pb::DatabaseStatus {
            ready: report.db_ready,
            ..pb::DatabaseStatus::default()
        }),
        worker_id: (role == Role::Worker)
            .then(|| report.worker_id.map(|i| format!("id-{i}")))
            .flatten(),
        schemas: vec![pb::ModuleSchema {
            module: module.name().to_owned(),
            database: module.database().to_owned(),
            version: report.version,
            ..pb::ModuleSchema::default()
        }],
        registry: if role == Role::Repl {
            report
                .registry
                .iter()
                .map(|i| pb::RegistryEntry {
                    name: format!("id-{i}"),
                    is_enabled: true,
                    is_read_only: false,
                })
                .collect()
        } else {
            Vec::new()
        },
        seen_epoch: report.seen_epoch,
        seen_token: 0,
        boot_id: format!("boot-{}", report.boot),
        seq,
        ..pb::AgentStatus::default()
    })
}

fn apply(status: &mut InstanceStatus, report: &Report, seq: u64) -> bool {
    let inventory = inventory();
    let node = &inventory.nodes[report.node % inventory.nodes.len()].spec;
    let observed = observation(report, &node.name, node.role, seq);
    apply_observation(status, &node.name, &observed, &Targets::default(), 1_000)
}

fn node<'a>(status: &'a InstanceStatus, name: &str) -> &'a NodeStatus {
    status
        .nodes
        .iter()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("no node {name}"))
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
    let mut status = InstanceStatus::default();
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
    let mut status = InstanceStatus::default();
    set_inventory(&mut status, Some(&inventory()));
    apply(&mut status, &report(1, Some(1), 1), 1);
    apply(&mut status, &report(3, Some(1), 3), 1);
    assert!(
        node(&status, "worker-1")
            .identity_problem
            .contains("shares worker id id-1")
    );
    assert!(
        node(&status, "worker-3")
            .identity_problem
            .contains("shares worker id id-1")
    );
    // A schema change alone keeps the problem; a new id on worker-3 clears it on worker-1 too.
    let mut moved = report(1, Some(1), 1);
    moved.version = Some(2);
    apply(&mut status, &moved, 2);
    assert!(
        node(&status, "worker-1")
            .identity_problem
            .contains("shares")
    );
    apply(&mut status, &report(3, Some(3), 3), 2);
    assert_eq!(node(&status, "worker-1").identity_problem, "");
    assert_eq!(node(&status, "worker-3").identity_problem, "");
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
        let mut status = InstanceStatus::default();
        set_inventory(&mut status, Some(&inventory()));
        for (seq, report) in reports.iter().enumerate() {
            apply(&mut status, report, seq as u64 + 1);
            let mut full = status.clone();
            refresh(&mut full);
            prop_assert_eq!(&full, &status);
        }
    }
}

#[test]
fn certificates_near_their_end_are_warned_of() {
    let day = 24 * 3600 * 1000;
    let status = InstanceStatus {
        answered_by: "ctl-1".to_owned(),
        nodes: vec![
            qserv_proto::v1::NodeStatus {
                name: "worker-1".to_owned(),
                certificate_expires_at_ms: 110 * day,
                ..Default::default()
            },
            qserv_proto::v1::NodeStatus {
                name: "worker-2".to_owned(),
                certificate_expires_at_ms: 400 * day,
                ..Default::default()
            },
            qserv_proto::v1::NodeStatus {
                name: "plain".to_owned(),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let warnings = crate::snapshot::certificate_warnings(&status, Some(105 * day), 100 * day);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("coordinator ctl-1") && warnings[0].contains("5 days"));
    assert!(warnings[1].contains("agent worker-1") && warnings[1].contains("10 days"));
    assert!(crate::snapshot::certificate_warnings(&status, None, 0).is_empty());
}

#[test]
fn only_an_agent_purged_at_the_stores_own_epoch_is_a_delete_that_did_not_finish() {
    let purged = NodeStatus {
        agent_reachable: true,
        agent_mode: Mode::Uninstalled.into(),
        agent_epoch: 7,
        ..NodeStatus::default()
    };
    let problem = purged_problem(&purged, Mode::Maintenance, 7, "dr1");
    assert!(problem.contains("qserv delete --confirm dr1"), "{problem}");
    // An install under way, an older epoch (never installed here) and an unreachable agent
    // are something else.
    assert!(purged_problem(&purged, Mode::Installing, 7, "dr1").is_empty());
    assert!(purged_problem(&purged, Mode::Maintenance, 8, "dr1").is_empty());
    let unreachable = NodeStatus {
        agent_reachable: false,
        ..purged.clone()
    };
    assert!(purged_problem(&unreachable, Mode::Normal, 7, "dr1").is_empty());
    let bound = NodeStatus {
        agent_mode: Mode::Maintenance.into(),
        ..purged
    };
    assert!(purged_problem(&bound, Mode::Maintenance, 7, "dr1").is_empty());
}
