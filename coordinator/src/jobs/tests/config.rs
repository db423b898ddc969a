//! `config apply` on the fake fleet: every node that runs the service renders before any
//! writes, a node that cannot render changes nothing anywhere, normal mode takes only a rolling
//! apply (each node restarted once, in turn, the first that does not come back put back), and
//! a coordinator killed at any call leaves every node on one version once resumed.

use qserv_model::ServiceName;

use super::*;
use crate::domain::config::NewConfigVersion;

fn name(n: &str) -> ServiceName {
    ServiceName::parse(n).unwrap_or_else(|e| panic!("{e}"))
}

const TEMPLATE: &str = "[xrootd]\nname = {{ node }}\n";

impl Rig {
    /// Installed with Qserv's layout; `worker-xrootd`'s template stored as version 1.
    async fn with_template(workers: usize) -> Rig {
        let rig = Rig::with_layout(workers).await;
        let service = name("worker-xrootd");
        let stored = rig
            .store
            .add_config_version(NewConfigVersion {
                service: &service,
                content: TEMPLATE,
                sha256: "x",
                by: "tester",
                at_ms: 1,
                message: "",
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stored.version, 1);
        rig
    }

    /// Each worker's `worker-xrootd` file: (text, version).
    fn xrootd_files(&self) -> Vec<(String, Option<String>, u32)> {
        let nodes = self
            .fleet
            .nodes
            .lock()
            .map(|n| n.clone())
            .unwrap_or_default();
        nodes
            .values()
            .filter(|n| n.role == Role::Worker)
            .map(|n| {
                let file = n
                    .configs
                    .get(&name("worker-xrootd"))
                    .cloned()
                    .unwrap_or_default();
                (n.name.clone(), file.text, file.version)
            })
            .collect()
    }
}

fn apply(rolling: bool) -> JobSpec {
    JobSpec::ConfigApply(ConfigApplyParams {
        service: name("worker-xrootd"),
        version: 1,
        role: None,
        nodes: Vec::new(),
        rolling,
    })
}

fn rendered(node: &str) -> Option<String> {
    Some(TEMPLATE.replace("{{ node }}", node))
}

#[tokio::test]
async fn apply_writes_every_node_that_runs_the_service_rendered_for_it() {
    let rig = Rig::with_template(3).await;
    succeeded(&rig.run(apply(false)).await);
    assert_eq!(
        rig.xrootd_files(),
        ["worker-1", "worker-2", "worker-3"]
            .map(|n| (n.to_owned(), rendered(n), 1))
            .to_vec()
    );
    let czar = rig.fleet.nodes.lock().map(|n| {
        n.values()
            .filter(|n| n.role != Role::Worker)
            .all(|n| n.configs.is_empty())
    });
    assert_eq!(czar.ok(), Some(true), "only the nodes that run it");
}

#[tokio::test]
async fn a_node_that_cannot_render_stops_the_apply_before_any_file_changes() {
    let rig = Rig::with_template(3).await;
    rig.fleet.with("worker-3", |n| {
        n.fail_render = Some("undefined value 'p'".to_owned())
    });
    let job = rig.run(apply(false)).await;
    assert_eq!(job.state, JobState::Failed);
    assert!(job.refused, "exit 3: {}", job.error);
    assert!(
        job.error.contains("worker-3") && job.error.contains("no file was changed"),
        "{}",
        job.error
    );
    assert!(
        rig.xrootd_files()
            .iter()
            .all(|(_, text, v)| text.is_none() && *v == 0),
        "{:?}",
        rig.xrootd_files()
    );
}

#[tokio::test]
async fn normal_mode_takes_only_a_rolling_apply_which_restarts_each_node_once() {
    let rig = Rig::with_template(3).await;
    rig.up().await;
    let engine = rig.engine().await;
    let refused = rig.submit(&engine, apply(false), false).await;
    assert!(
        matches!(&refused, Err(SubmitError::Refused(why)) if why.contains("--rolling")),
        "{refused:?}"
    );
    assert!(rig.xrootd_files().iter().all(|(_, text, _)| text.is_none()));

    let before = rig.fleet.nodes.lock().map(|n| {
        n.values()
            .map(|n| (n.name.clone(), n.restarts))
            .collect::<Vec<_>>()
    });
    succeeded(&rig.run(apply(true)).await);
    assert!(
        rig.xrootd_files()
            .iter()
            .all(|(n, text, v)| *text == rendered(n) && *v == 1)
    );
    let after = rig.fleet.nodes.lock().map(|n| {
        n.values()
            .map(|n| (n.name.clone(), n.restarts))
            .collect::<Vec<_>>()
    });
    let (Ok(before), Ok(after)) = (before, after) else {
        panic!("fleet lock poisoned");
    };
    for ((name, was), (_, now)) in before.iter().zip(&after) {
        let expected = if name.starts_with("worker") {
            was + 1
        } else {
            *was
        };
        assert_eq!(now, &expected, "{name}");
    }
    assert_eq!(rig.mode().await.0, Mode::Normal);
}

#[tokio::test]
async fn a_rolling_apply_stops_at_the_first_node_that_does_not_come_back_and_puts_it_back() {
    let rig = Rig::with_template(3).await;
    rig.up().await;
    rig.fleet.with("worker-2", |n| {
        n.fail_restart = Some("cannot bind 1094".to_owned())
    });
    let job = rig.run(apply(true)).await;
    assert_eq!(job.state, JobState::Failed);
    assert!(
        job.error.contains("worker-2") && job.error.contains("previous file"),
        "{}",
        job.error
    );
    let files = rig.xrootd_files();
    assert_eq!(files[0], ("worker-1".to_owned(), rendered("worker-1"), 1));
    assert_eq!(files[1], ("worker-2".to_owned(), None, 0), "put back");
    assert_eq!(files[2], ("worker-3".to_owned(), None, 0), "never reached");
}

#[tokio::test]
async fn apply_resumes_after_a_crash_at_every_call_leaving_one_version() {
    crash_everywhere(
        async || Rig::with_template(2).await,
        |_| apply(false),
        |rig| {
            Box::pin(async move {
                let files = rig.xrootd_files();
                assert!(
                    files
                        .iter()
                        .all(|(n, text, v)| *text == rendered(n) && *v == 1),
                    "{files:?}"
                );
            })
        },
    )
    .await;
}
