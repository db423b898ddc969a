//! Qserv's services started in their order across the instance (`up` in waves), stopped in
//! reverse (`down`, a failed `up`), restarted by name, and resumed after a crash, on the fake
//! fleet.

use std::collections::BTreeMap;

use qserv_model::{ServiceName, ServiceOrder};

use super::*;

impl Rig {
    /// Installed with Qserv's layout, every node defining its role's services.
    pub(super) async fn with_layout(workers: usize) -> Rig {
        let rig = Rig::new(workers).await;
        let order = ServiceOrder::the_qserv_layout();
        if let Ok(mut nodes) = rig.fleet.nodes.lock() {
            for node in nodes.values_mut() {
                node.defined = order.node_order(node.role).into_iter().cloned().collect();
            }
        }
        let mut spec = rig.spec();
        spec.services = order;
        let job = rig
            .run(JobSpec::Install(InstallParams { spec: Some(spec) }))
            .await;
        succeeded(&job);
        rig
    }

    /// A copy of every fake node, by address.
    fn fleet_nodes(&self) -> BTreeMap<String, super::super::fake::FakeNode> {
        self.fleet
            .nodes
            .lock()
            .map(|n| n.clone())
            .unwrap_or_default()
    }

    /// Every node's service starts and stops: (sequence, node, service, started).
    fn service_events(&self) -> Vec<(usize, String, ServiceName, bool)> {
        let nodes = self.fleet_nodes();
        let mut events: Vec<_> = nodes
            .values()
            .flat_map(|n| {
                n.service_events
                    .iter()
                    .map(|(seq, s, started)| (*seq, n.name.clone(), s.clone(), *started))
            })
            .collect();
        events.sort();
        events
    }
}

fn up_spec() -> JobSpec {
    JobSpec::Up(UpParams {
        timeout_ms: 5_000,
        service_timeout_ms: 2_000,
    })
}

fn name(n: &str) -> ServiceName {
    ServiceName::parse(n).unwrap_or_else(|e| panic!("{e}"))
}

/// No service started before every instance of what it comes after (started: true) or
/// stopped before everything that comes after it (started: false).
fn assert_ordered(events: &[(usize, String, ServiceName, bool)], started: bool) {
    let order = ServiceOrder::the_qserv_layout();
    let first_of = |service: &ServiceName| {
        events
            .iter()
            .filter(|e| &e.2 == service && e.3 == started)
            .map(|e| e.0)
            .min()
    };
    let last_of = |service: &ServiceName| {
        events
            .iter()
            .filter(|e| &e.2 == service && e.3 == started)
            .map(|e| e.0)
            .max()
    };
    for s in order.services() {
        for before in &s.after {
            let (Some(dep_last), Some(dep_first), Some(mine_first), Some(mine_last)) = (
                last_of(before),
                first_of(before),
                first_of(&s.name),
                last_of(&s.name),
            ) else {
                panic!(
                    "{} or {before} never {}: {events:?}",
                    s.name,
                    if started { "started" } else { "stopped" }
                );
            };
            if started {
                assert!(
                    dep_last < mine_first,
                    "{} started before every {before} did: {events:?}",
                    s.name
                );
            } else {
                assert!(
                    mine_last < dep_first,
                    "{before} stopped before every {} did: {events:?}",
                    s.name
                );
            }
        }
    }
}

#[tokio::test]
async fn up_starts_the_qserv_layout_wave_by_wave_across_the_nodes() {
    let rig = Rig::with_layout(3).await;
    let job = rig.run(up_spec()).await;
    succeeded(&job);
    assert_eq!(rig.mode().await.0, Mode::Normal);
    let events = rig.service_events();
    assert_ordered(&events, true);
    assert_eq!(
        events.iter().filter(|e| e.3).count(),
        4 + 2 + 3 * 3,
        "{events:?}"
    );
    let nodes = rig.fleet_nodes();
    for node in nodes.values() {
        assert_eq!(node.release, qserv_model::Release::All, "{}", node.name);
        assert_eq!(node.running.len(), node.defined.len(), "{}", node.name);
    }
}

#[tokio::test]
async fn down_stops_the_services_in_reverse_order() {
    let rig = Rig::with_layout(2).await;
    succeeded(&rig.run(up_spec()).await);
    succeeded(&rig.run(JobSpec::down()).await);
    assert_eq!(rig.mode().await.0, Mode::Maintenance);
    let stops: Vec<_> = rig.service_events().into_iter().filter(|e| !e.3).collect();
    assert_ordered(&stops, false);
    let nodes = rig.fleet_nodes();
    assert!(nodes.values().all(|n| n.running.is_empty()));
}

#[tokio::test]
async fn a_service_that_exits_at_start_fails_up_and_what_was_started_stops_in_reverse() {
    let rig = Rig::with_layout(2).await;
    rig.fleet
        .with("worker-2", |n| n.fail_service = Some(name("worker-cmsd")));
    let job = rig.run(up_spec()).await;
    assert_eq!(job.state, JobState::Failed, "{}", job.error);
    assert!(
        job.error.contains("worker-2")
            && job.error.contains("worker-cmsd")
            && job.error.contains("exit code 1"),
        "{}",
        job.error
    );
    assert_eq!(rig.mode().await.0, Mode::Maintenance);
    let nodes = rig.fleet_nodes();
    for node in nodes.values() {
        assert!(
            node.running.is_empty(),
            "{} still runs {:?}",
            node.name,
            node.running
        );
        assert_eq!(node.mode, Some(Mode::Maintenance), "{}", node.name);
    }
    let events = rig.service_events();
    // Nothing after the failed wave started, and what started stopped, in reverse.
    assert!(
        !events
            .iter()
            .any(|e| e.2.as_str() == "replication-controller"),
        "{events:?}"
    );
    let started: Vec<_> = events.iter().filter(|e| e.3).collect();
    let stopped: Vec<_> = events.iter().filter(|e| !e.3).collect();
    assert_eq!(started.len(), stopped.len(), "{events:?}");
    let manager_stop = stopped
        .iter()
        .filter(|e| e.2.as_str() == "cmsd-manager")
        .map(|e| e.0)
        .min();
    let worker_stop = stopped
        .iter()
        .filter(|e| e.2.as_str() == "worker-xrootd")
        .map(|e| e.0)
        .max();
    assert!(worker_stop < manager_stop, "{events:?}");
    // The job is exit 4 material: it ran and failed, it was not refused.
    assert!(!job.refused);
}

#[tokio::test]
async fn an_agent_lacking_a_service_of_its_role_blocks_up() {
    let rig = Rig::with_layout(1).await;
    rig.fleet.with("worker-1", |n| {
        n.defined.retain(|s| s.as_str() != "worker-repl")
    });
    let job = rig
        .run(JobSpec::Up(UpParams {
            timeout_ms: 500,
            service_timeout_ms: 0,
        }))
        .await;
    assert_ne!(job.state, JobState::Succeeded);
    assert!(
        job.error.contains("worker-1") && job.error.contains("worker-repl"),
        "{}",
        job.error
    );
    assert_eq!(rig.mode().await.0, Mode::Maintenance);
}

#[tokio::test]
async fn restarting_one_service_restarts_it_once_per_node_one_node_at_a_time_and_nothing_else() {
    let rig = Rig::with_layout(3).await;
    succeeded(&rig.run(up_spec()).await);
    let before = rig.service_events().len();
    let job = rig
        .run(JobSpec::Restart(RestartParams {
            nodes: Vec::new(),
            role: None,
            parallel: 1,
            node_timeout_ms: 5_000,
            settle_ms: 0,
            activity: Default::default(),
            services: vec![name("worker-xrootd")],
        }))
        .await;
    succeeded(&job);
    let events: Vec<_> = rig.service_events().into_iter().skip(before).collect();
    assert!(
        events.iter().all(|e| e.2.as_str() == "worker-xrootd"),
        "{events:?}"
    );
    let mut per_node: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    for e in &events {
        per_node.entry(e.1.clone()).or_default().push(e.3);
    }
    assert_eq!(per_node.len(), 3, "{events:?}");
    assert!(per_node.values().all(|v| v == &[false, true]), "{events:?}");
    // One node at a time: a node's stop and start are next to each other.
    for pair in events.chunks(2) {
        assert_eq!(pair[0].1, pair[1].1, "{events:?}");
    }
}

#[tokio::test]
async fn up_in_waves_resumes_after_a_crash_at_every_call_starting_nothing_twice() {
    crash_everywhere(
        async || Rig::with_layout(2).await,
        |_| up_spec(),
        |rig| {
            Box::pin(async move {
                assert_eq!(rig.mode().await.0, Mode::Normal);
                let events = rig.service_events();
                assert_ordered(&events, true);
                let mut starts: BTreeMap<(String, ServiceName), usize> = BTreeMap::new();
                for e in events.iter().filter(|e| e.3) {
                    *starts.entry((e.1.clone(), e.2.clone())).or_default() += 1;
                }
                assert!(starts.values().all(|n| *n == 1), "{starts:?}");
                assert!(!events.iter().any(|e| !e.3), "nothing stopped: {events:?}");
            })
        },
    )
    .await;
}
