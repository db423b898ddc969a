//! Golden files for the JSON documents operators script against: a test fails when a
//! document's shape changes, and `QSERV_BLESS=1` rewrites the files after a deliberate change.

use std::path::PathBuf;

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Compares `doc`, pretty-printed, with `tests/golden/<name>`.
#[allow(clippy::expect_used)]
pub fn assert_golden(name: &str, doc: &impl serde::Serialize) {
    let text = serde_json::to_string_pretty(doc).expect("a document serializes") + "\n";
    let file = path(name);
    if std::env::var_os("QSERV_BLESS").is_some() {
        std::fs::create_dir_all(file.parent().expect("golden files have a folder"))
            .expect("the golden folder can be made");
        std::fs::write(&file, &text).expect("the golden file can be written");
        return;
    }
    let want = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; QSERV_BLESS=1 cargo test writes it",
            file.display()
        )
    });
    assert_eq!(
        text, want,
        "{name} changed shape; if that is meant, QSERV_BLESS=1 cargo test rewrites it"
    );
}

/// An instance in normal mode mid-upgrade, as the coordinator answers it: a czar, two
/// workers (one unreachable, one with a registry row nobody explains), a repl node, activity and
/// two coordinators. Every field that reaches a document is set.
pub fn instance_status() -> qserv_proto::v1::InstanceStatus {
    use qserv_proto::v1::{
        ActiveJob, Activity, CoordinatorPeer, Health, InstanceStatus, JobState, Mode, NodeSchema,
        NodeStatus, RegistryEntry, Role, ServiceRunState, ServiceState, ServiceStatus,
    };
    let schema = |module: &str, database: &str, version: Option<i64>| NodeSchema {
        module: module.to_owned(),
        database: database.to_owned(),
        version,
        target: Some(3),
        dirty: false,
        dirty_reason: String::new(),
    };
    let node = |name: &str, role: Role| NodeStatus {
        name: name.to_owned(),
        role: role.into(),
        agent: format!("https://{name}:7080"),
        agent_reachable: true,
        db_ready: true,
        db_server_version: "10.11.6-MariaDB".to_owned(),
        services: ServiceState::Running.into(),
        agent_version: "0.1.0".to_owned(),
        protocol_version: 7,
        compatible: true,
        last_seen_ms: 1_764_000_000_000,
        agent_mode: Mode::Normal.into(),
        agent_epoch: 7,
        agent_seen_epoch: 7,
        ..NodeStatus::default()
    };
    let mut czar = node("czar-0", Role::Czar);
    czar.schema = vec![schema("czar", "qservMeta", Some(3))];
    czar.activity = Some(Activity {
        queries_executing: Some(2),
        oldest_query: Some(1041),
        ..Activity::default()
    });
    let mut worker = node("worker-1", Role::Worker);
    worker.worker_id = Some("w-5f3a".to_owned());
    worker.registered_id = Some("w-5f3a".to_owned());
    worker.registered = Some(true);
    worker.schema = vec![schema("worker", "qservw_worker", Some(2))];
    worker.services = ServiceState::Starting.into();
    worker.service_states = vec![
        ServiceStatus {
            name: "worker-xrootd".to_owned(),
            state: ServiceRunState::Ready.into(),
            since_ms: 1_764_000_000_000,
            ..ServiceStatus::default()
        },
        ServiceStatus {
            name: "worker-cmsd".to_owned(),
            state: ServiceRunState::Failed.into(),
            since_ms: 1_764_000_000_500,
            exit_code: Some(3),
            detail: "it exited (exit status: 3); last output:\ncannot bind 2131".to_owned(),
            external: false,
            config_version: 2,
            config_drift: true,
        },
        ServiceStatus {
            name: "worker-repl".to_owned(),
            state: ServiceRunState::External.into(),
            since_ms: 1_764_000_000_000,
            external: true,
            ..ServiceStatus::default()
        },
    ];
    worker.layout_problem = "the agent defines no service worker-repl".to_owned();
    let mut lost = node("worker-2", Role::Worker);
    lost.agent_reachable = false;
    lost.agent_error = "connection refused".to_owned();
    lost.db_ready = false;
    lost.services = ServiceState::Unknown.into();
    lost.worker_id = Some("w-77c1".to_owned());
    lost.registered = Some(false);
    lost.identity_problem = "worker id changed since registration (was w-0001)".to_owned();
    lost.schema = vec![schema("worker", "qservw_worker", None)];
    let mut repl = node("repl-0", Role::Repl);
    repl.schema = vec![schema("repl", "qservReplica", Some(3))];
    InstanceStatus {
        instance: "dr1".to_owned(),
        mode: Mode::Normal.into(),
        health: Health::Degraded.into(),
        epoch: 7,
        active_job: Some(ActiveJob {
            id: "j12".to_owned(),
            kind: "upgrade".to_owned(),
            state: JobState::Running.into(),
            progress: [("worker-1".to_owned(), "running: worker 2 → 3".to_owned())].into(),
        }),
        nodes: vec![czar, worker, lost, repl],
        registry: vec![
            RegistryEntry {
                name: "w-5f3a".to_owned(),
                is_enabled: true,
                is_read_only: false,
            },
            RegistryEntry {
                name: "w-dead".to_owned(),
                is_enabled: false,
                is_read_only: true,
            },
        ],
        coordinators: vec![CoordinatorPeer {
            id: "coord-a".to_owned(),
            address: "https://coord-a:7443".to_owned(),
            leader: true,
            last_seen_ms: 1_764_000_000_000,
            migrations: "sha256:4be1".to_owned(),
            disagrees: false,
        }],
        fencing_token: 3,
        answered_by: "coord-a".to_owned(),
        warnings: vec!["the certificate of worker-1 ends in 12 days".to_owned()],
        spec_drift: None,
        activity: Some(Activity {
            queries_executing: Some(2),
            oldest_query: Some(1041),
            transactions_open: Some(0),
            oldest_transaction: None,
        }),
    }
}
