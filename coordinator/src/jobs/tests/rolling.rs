//! Rolling restarts in `normal` and worker replacement, on the fake fleet.

use super::*;

fn restart(parallel: u32) -> JobSpec {
    JobSpec::Restart(crate::domain::job::RestartParams {
        nodes: Vec::new(),
        role: None,
        parallel,
        node_timeout_ms: 5_000,
        settle_ms: 0,
        activity: Default::default(),
        services: Vec::new(),
    })
}

fn restarts(rig: &Rig) -> Vec<(String, u32)> {
    rig.fleet
        .nodes
        .lock()
        .map(|n| n.values().map(|n| (n.name.clone(), n.restarts)).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_rolling_restart_restarts_each_node_once_and_keeps_the_mode() {
    let rig = Rig::installed(2).await;
    rig.up().await;
    let before = rig.mode().await;
    let job = rig.run(restart(1)).await;
    succeeded(&job);
    assert_eq!(rig.mode().await, before, "mode and epoch unchanged");
    assert!(
        restarts(&rig).iter().all(|(_, n)| *n == 1),
        "{:?}",
        restarts(&rig)
    );
    assert!(
        job.nodes.iter().all(|n| n.state == NodeState::Done),
        "{:?}",
        job.nodes
    );
}

#[tokio::test]
async fn a_rolling_restart_stops_at_the_first_node_that_does_not_come_back() {
    let rig = Rig::installed(2).await;
    rig.up().await;
    rig.fleet.with("worker-1", |n| {
        n.fail_restart = Some("the service command exited (exit status: 1)".to_owned());
    });
    let job = rig.run(restart(1)).await;
    assert_eq!(job.state, JobState::Failed);
    assert!(
        job.error.contains("worker-1") && job.error.contains("exit status: 1"),
        "{}",
        job.error
    );
    let count: std::collections::BTreeMap<String, u32> = restarts(&rig).into_iter().collect();
    assert_eq!(count["czar-0"], 1);
    assert_eq!(count["repl-0"], 1);
    assert_eq!(count["worker-2"], 0, "nothing after the failed node");
    assert_eq!(rig.mode().await.0, Mode::Normal);
}

#[tokio::test]
async fn a_rolling_restart_resumes_after_a_crash_at_every_call() {
    crash_everywhere(
        async || {
            let rig = Rig::installed(2).await;
            rig.up().await;
            rig
        },
        |_| restart(1),
        |rig| {
            Box::pin(async move {
                assert_eq!(rig.mode().await.0, Mode::Normal);
                // A crash after a restart took effect but before its reply was stored restarts
                // that node once more; no node is left out.
                assert!(
                    restarts(rig).iter().all(|(_, n)| (1..=2).contains(n)),
                    "{:?}",
                    restarts(rig)
                );
            })
        },
    )
    .await;
}

#[tokio::test]
async fn a_rolling_restart_in_maintenance_is_nothing_to_do() {
    let rig = Rig::installed(2).await;
    let engine = rig.engine().await;
    let outcome = rig.submit(&engine, restart(1), false).await;
    assert!(
        matches!(&outcome, Ok(Submitted::NoOp(why)) if why.contains("services are stopped")),
        "{outcome:?}"
    );
}

fn replace(old: &str, new: &str, purge: bool) -> JobSpec {
    JobSpec::WorkersReplace(WorkersReplaceParams {
        instance: "dr1".to_owned(),
        old: old.to_owned(),
        new: Node {
            name: new.to_owned(),
            role: Role::Worker,
            agent: format!("fake://{new}"),
        },
        purge,
        forget_replicas: false,
    })
}

/// The registry and the inventory moved from `old` to `new`.
async fn replaced(rig: &Rig, old: &str, new: &str) {
    let registry = rig.fleet.with("repl-0", |n| n.registry.clone());
    assert!(
        registry.contains(&format!("id-{new}")) && !registry.contains(&format!("id-{old}")),
        "{registry:?}"
    );
    let names: Vec<String> = rig
        .store
        .load()
        .await
        .ok()
        .flatten()
        .map(|i| i.nodes.into_iter().map(|n| n.spec.name).collect())
        .unwrap_or_default();
    assert!(
        names.contains(&new.to_owned()) && !names.contains(&old.to_owned()),
        "{names:?}"
    );
    let joined = rig.fleet.with(new, |n| n.clone());
    assert_eq!(
        (joined.version, joined.mode),
        (Some(1), Some(Mode::Maintenance))
    );
}

#[tokio::test]
async fn workers_replace_resumes_after_a_crash_at_every_call() {
    crash_everywhere(
        async || {
            let rig = Rig::installed(1).await;
            rig.fleet.add("worker-9", Role::Worker);
            rig
        },
        |_| replace("worker-1", "worker-9", true),
        |rig| {
            Box::pin(async move {
                replaced(rig, "worker-1", "worker-9").await;
                assert!(
                    rig.fleet.with("worker-1", |n| n.databases.is_empty()),
                    "purged"
                );
            })
        },
    )
    .await;
}

#[tokio::test]
async fn workers_replace_of_a_dead_worker_leaves_its_data_and_carries_on() {
    let rig = Rig::installed(2).await;
    rig.fleet.add("worker-9", Role::Worker);
    rig.fleet.with("worker-2", |n| n.reachable = false);
    let job = rig.run(replace("worker-2", "worker-9", true)).await;
    succeeded(&job);
    replaced(&rig, "worker-2", "worker-9").await;
    assert!(
        !rig.fleet.with("worker-2", |n| n.databases.is_empty()),
        "an agent that does not answer keeps its data"
    );
    let old = job.nodes.iter().find(|n| n.name == "worker-2");
    assert_eq!(
        old.map(|n| n.state),
        Some(NodeState::Skipped),
        "{:?}",
        job.nodes
    );
}

#[tokio::test]
async fn workers_replace_is_refused_for_a_non_worker_or_an_unknown_node() {
    let rig = Rig::installed(1).await;
    rig.fleet.add("worker-9", Role::Worker);
    let engine = rig.engine().await;
    for (spec, says) in [
        (
            replace("repl-0", "worker-9", false),
            "replaces workers only",
        ),
        (replace("worker-7", "worker-9", false), "no node worker-7"),
        (replace("worker-1", "worker-1", false), "name of its own"),
    ] {
        match rig.submit(&engine, spec, false).await {
            Err(SubmitError::Refused(why)) => assert!(why.contains(says), "{why}"),
            other => panic!("not refused: {other:?}"),
        }
    }
}
