//! The engine against a fake fleet and a SQLite store: every job kind resumed after a crash
//! at every agent call (before and after the call's effect), re-admission of queued jobs,
//! `--wait` refusals, fail-fast, cancel, and the `up` barrier.

use std::sync::Arc;
use std::time::Duration;

use crate::instance::{Epoch, Mode};
use qserv_migrations::{MigrationSet, Module};
use tokio::sync::watch;

use super::fake::{FakeFleet, Freeze};
use super::{Engine, SubmitError, Submitted};
use crate::domain::job::*;
use crate::domain::spec::InstanceSpec;
use crate::domain::{Node, Role, Services};
use crate::runtime::core::Core;
use crate::runtime::metrics::Metrics;
use crate::store::Store;

struct Rig {
    store: Store,
    fleet: Arc<FakeFleet>,
    _dir: tempfile::TempDir,
}

impl Rig {
    /// The store is a file: a coordinator killed mid-query may lose its connection, and an
    /// in-memory database would go with it, where a real one survives.
    async fn new(workers: usize) -> Rig {
        // In memory where the machine has a tmpfs: the store syncs every write.
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .unwrap_or_else(|e| panic!("tempdir: {e}"));
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        // The engine below leads under token 1: the store's lease says so too.
        let (store, _) =
            crate::store::suite::leading(&crate::store::StoreTarget::Sqlite(url)).await;
        Rig {
            store,
            fleet: Arc::new(FakeFleet::standard(workers)),
            _dir: dir,
        }
    }

    /// A coordinator as one that starts: the inventory from the store, no monitors.
    async fn engine(&self) -> Arc<Engine> {
        // The bundled scripts, plus a step from 0 so that a node set back to 0 has a path.
        let bundled = MigrationSet::bundled().unwrap_or_else(|e| panic!("migrations: {e}"));
        let migrations = MigrationSet::from_files(Module::ALL.into_iter().flat_map(|module| {
            bundled
                .scripts(module)
                .iter()
                .map(|s| (module, s.file_name.clone(), s.content.clone()))
                .chain([(module, "migrate-0-to-1.sql".to_owned(), "DO 1;".to_owned())])
                .collect::<Vec<_>>()
        }))
        .unwrap_or_else(|e| panic!("migrations: {e}"));
        let (snapshot, _) = watch::channel(crate::instance::InstanceState::default());
        let core = Arc::new(Core::new(
            self.store.clone(),
            snapshot,
            migrations,
            Metrics::default(),
            self.fleet.clone(),
            None,
            crate::runtime::term::Term::Leader { token: 1 },
        ));
        core.reload()
            .await
            .unwrap_or_else(|e| panic!("reload: {e}"));
        Engine::new(core)
    }

    fn spec(&self) -> InstanceSpec {
        let nodes = self
            .fleet
            .nodes
            .lock()
            .map(|n| n.clone())
            .unwrap_or_default();
        InstanceSpec {
            name: "dr1".to_owned(),
            nodes: nodes
                .iter()
                .map(|(agent, n)| Node {
                    name: n.name.clone(),
                    role: n.role,
                    agent: agent.clone(),
                })
                .collect(),
            services: Default::default(),
        }
    }

    async fn submit(
        &self,
        engine: &Engine,
        spec: JobSpec,
        wait: bool,
    ) -> Result<Submitted, SubmitError> {
        engine.submit(spec, "tester (operator)", wait).await
    }

    /// Submits a job that admission must accept; returns its id.
    async fn queue(&self, engine: &Engine, spec: JobSpec, wait: bool) -> String {
        match self.submit(engine, spec, wait).await {
            Ok(Submitted::Job(id, _)) => id,
            other => panic!("not queued: {other:?}"),
        }
    }

    /// Submits and runs a job to its end.
    async fn run(&self, spec: JobSpec) -> JobRecord {
        let engine = self.engine().await;
        let id = self.queue(&engine, spec, false).await;
        engine.run_job(&id).await;
        self.job(&id).await
    }

    async fn job(&self, id: &str) -> JobRecord {
        self.store
            .job(id)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no job {id}"))
    }

    async fn mode(&self) -> (Mode, u64) {
        let inventory = self.store.load().await.ok().flatten();
        inventory.map_or((Mode::Uninstalled, 0), |i| {
            (i.mode, Epoch::to_wire(i.epoch))
        })
    }

    async fn installed(workers: usize) -> Rig {
        let rig = Rig::new(workers).await;
        let job = rig
            .run(JobSpec::Install(InstallParams {
                spec: Some(rig.spec()),
            }))
            .await;
        assert_eq!(job.state, JobState::Succeeded, "install: {}", job.error);
        rig
    }

    async fn up(&self) {
        let job = self
            .run(JobSpec::Up(UpParams {
                timeout_ms: 5_000,
                service_timeout_ms: 0,
            }))
            .await;
        assert_eq!(job.state, JobState::Succeeded, "up: {}", job.error);
    }
}

fn succeeded(job: &JobRecord) {
    assert_eq!(job.state, JobState::Succeeded, "{}: {}", job.id, job.error);
}

/// Runs `spec` on a rig made by `prepare`, killing the coordinator at every agent call of the
/// job (before the call's effect and after it, its reply lost), then resuming with a new
/// coordinator on the same store; `check` sees each finished rig.
async fn crash_everywhere(
    prepare: impl AsyncFn() -> Rig,
    spec: impl Fn(&Rig) -> JobSpec,
    check: impl for<'a> Fn(&'a Rig) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>,
) {
    let mut crashes = 0;
    for how in [Freeze::Before, Freeze::After] {
        for at in 0.. {
            let rig = prepare().await;
            let first = rig.engine().await;
            let id = rig.queue(&first, spec(&rig), false).await;
            rig.fleet.freeze_at(Some((at, how)));
            let crashed = tokio::select! {
                () = first.run_job(&id) => false,
                () = rig.fleet.frozen.notified() => true,
            };
            drop(first);
            rig.fleet.freeze_at(None);
            if !crashed {
                succeeded(&rig.job(&id).await);
                check(&rig).await;
                break;
            }
            crashes += 1;
            let second = rig.engine().await;
            second.run_job(&id).await;
            let job = rig.job(&id).await;
            assert_eq!(
                job.state,
                JobState::Succeeded,
                "{} crashed at call {at} ({how:?}) then resumed: {}",
                job.kind,
                job.error
            );
            check(&rig).await;
        }
    }
    assert!(crashes > 0, "the job made no agent call to crash at");
}

async fn check_installed(rig: &Rig) {
    assert_eq!(rig.mode().await.0, Mode::Maintenance);
    let inventory = rig
        .store
        .load()
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no inventory"));
    let nodes = rig
        .fleet
        .nodes
        .lock()
        .map(|n| n.clone())
        .unwrap_or_default();
    let registry = nodes
        .values()
        .find(|n| n.role == Role::Repl)
        .map(|n| n.registry.clone())
        .unwrap_or_default();
    for node in nodes.values() {
        assert_eq!(node.version, Some(1), "{} at target", node.name);
        assert_eq!(
            node.applied.len(),
            1,
            "{}: no script ran twice: {:?}",
            node.name,
            node.applied
        );
        assert!(node.accounts, "{} has its accounts", node.name);
        assert_eq!(
            node.mode,
            Some(Mode::Maintenance),
            "{} holds maintenance",
            node.name
        );
        assert_eq!(node.instance, "dr1");
        if node.role == Role::Worker {
            let id = node.worker_id.clone().unwrap_or_default();
            assert!(registry.contains(&id), "{id} registered");
            let record = inventory.nodes.iter().find(|n| n.spec.name == node.name);
            assert_eq!(record.and_then(|r| r.registered_id.clone()), Some(id));
        }
    }
}

#[tokio::test]
async fn install_resumes_after_a_crash_at_every_call() {
    crash_everywhere(
        async || Rig::new(2).await,
        |rig| {
            JobSpec::Install(InstallParams {
                spec: Some(rig.spec()),
            })
        },
        |rig| Box::pin(check_installed(rig)),
    )
    .await;
}

#[tokio::test]
async fn adopt_resumes_after_a_crash_at_every_call_and_changes_no_database() {
    let prepare = async || {
        let rig = Rig::new(2).await;
        let mut nodes = rig.fleet.nodes.lock().unwrap_or_else(|e| e.into_inner());
        let ids: Vec<String> = (1..=2).map(|i| format!("uuid-{i}")).collect();
        for node in nodes.values_mut() {
            node.databases
                .insert(node.role.module().database().to_owned());
            node.version = Some(1);
            node.accounts = true;
            if node.role == Role::Worker {
                node.worker_id = Some(format!("uuid-{}", node.name.trim_start_matches("worker-")));
            }
            if node.role == Role::Repl {
                node.registry = ids.iter().cloned().collect();
            }
        }
        drop(nodes);
        rig
    };
    crash_everywhere(
        prepare,
        |rig| {
            JobSpec::Adopt(InstallParams {
                spec: Some(rig.spec()),
            })
        },
        |rig| {
            Box::pin(async move {
                assert_eq!(rig.mode().await.0, Mode::Maintenance);
                let nodes = rig
                    .fleet
                    .nodes
                    .lock()
                    .map(|n| n.clone())
                    .unwrap_or_default();
                assert!(
                    nodes.values().all(|n| n.applied.is_empty()),
                    "adopt migrates nothing"
                );
                let inventory = rig.store.load().await.ok().flatten();
                let registered: Vec<Option<String>> = inventory
                    .iter()
                    .flat_map(|i| i.nodes.iter())
                    .filter(|n| n.spec.role == Role::Worker)
                    .map(|n| n.registered_id.clone())
                    .collect();
                assert_eq!(
                    registered,
                    [Some("uuid-1".to_owned()), Some("uuid-2".to_owned())]
                );
            })
        },
    )
    .await;
}

#[tokio::test]
async fn up_and_down_resume_after_a_crash_at_every_call() {
    crash_everywhere(
        async || Rig::installed(2).await,
        |_| {
            JobSpec::Up(UpParams {
                timeout_ms: 5_000,
                service_timeout_ms: 0,
            })
        },
        |rig| {
            Box::pin(async move {
                let (mode, epoch) = rig.mode().await;
                assert_eq!(mode, Mode::Normal);
                let nodes = rig
                    .fleet
                    .nodes
                    .lock()
                    .map(|n| n.clone())
                    .unwrap_or_default();
                for node in nodes.values() {
                    assert_eq!(
                        (node.mode, node.epoch),
                        (Some(Mode::Normal), epoch),
                        "{}",
                        node.name
                    );
                }
            })
        },
    )
    .await;
    crash_everywhere(
        async || {
            let rig = Rig::installed(2).await;
            rig.up().await;
            rig
        },
        |_| JobSpec::down(),
        |rig| {
            Box::pin(async move {
                assert_eq!(rig.mode().await.0, Mode::Maintenance);
                let nodes = rig
                    .fleet
                    .nodes
                    .lock()
                    .map(|n| n.clone())
                    .unwrap_or_default();
                assert!(
                    nodes
                        .values()
                        .all(|n| n.services == Services::Stopped
                            && n.mode == Some(Mode::Maintenance))
                );
            })
        },
    )
    .await;
}

#[tokio::test]
async fn upgrade_and_repair_resume_after_a_crash_at_every_call() {
    crash_everywhere(
        async || {
            let rig = Rig::installed(2).await;
            for name in ["worker-1", "worker-2"] {
                rig.fleet.with(name, |n| n.version = Some(0));
            }
            rig
        },
        |_| {
            JobSpec::Upgrade(UpgradeParams {
                parallel: 0,
                nodes: Vec::new(),
                fail_fast: false,
            })
        },
        |rig| {
            Box::pin(async move {
                for name in ["worker-1", "worker-2"] {
                    let (version, applied) = rig.fleet.with(name, |n| (n.version, n.applied.len()));
                    assert_eq!((version, applied), (Some(1), 2), "{name}: upgraded once");
                }
                assert_eq!(
                    rig.fleet.with("czar-0", |n| n.applied.len()),
                    1,
                    "czar at target, untouched"
                );
            })
        },
    )
    .await;
    crash_everywhere(
        async || {
            let rig = Rig::installed(1).await;
            rig.fleet.with("worker-1", |n| n.dirty = true);
            rig
        },
        |_| {
            JobSpec::Repair(RepairParams {
                node: "worker-1".to_owned(),
                module: Module::Worker,
                version: 1,
                force: false,
                reason: "finished the script by hand".to_owned(),
            })
        },
        |rig| {
            Box::pin(async move {
                assert_eq!(
                    rig.fleet.with("worker-1", |n| (n.dirty, n.version)),
                    (false, Some(1))
                );
            })
        },
    )
    .await;
}

#[tokio::test]
async fn workers_add_and_remove_resume_after_a_crash_at_every_call() {
    crash_everywhere(
        async || {
            let rig = Rig::installed(1).await;
            rig.fleet.add("worker-2", Role::Worker);
            rig
        },
        |_| {
            JobSpec::WorkersAdd(WorkersAddParams {
                instance: "dr1".to_owned(),
                nodes: vec![Node {
                    name: "worker-2".to_owned(),
                    role: Role::Worker,
                    agent: "fake://worker-2".to_owned(),
                }],
            })
        },
        |rig| {
            Box::pin(async move {
                let new = rig.fleet.with("worker-2", |n| n.clone());
                assert_eq!(
                    (new.version, new.applied.len(), new.mode),
                    (Some(1), 1, Some(Mode::Maintenance))
                );
                let registry = rig.fleet.with("repl-0", |n| n.registry.clone());
                assert!(registry.contains("id-worker-2") && registry.contains("id-worker-1"));
                let inventory = rig.store.load().await.ok().flatten();
                assert_eq!(inventory.map(|i| i.nodes.len()), Some(4));
            })
        },
    )
    .await;
    crash_everywhere(
        async || Rig::installed(2).await,
        |_| {
            JobSpec::WorkersRemove(WorkersRemoveParams {
                name: "worker-2".to_owned(),
                purge: true,
                forget_replicas: false,
            })
        },
        |rig| {
            Box::pin(async move {
                let registry = rig.fleet.with("repl-0", |n| n.registry.clone());
                assert_eq!(registry.into_iter().collect::<Vec<_>>(), ["id-worker-1"]);
                assert!(
                    rig.fleet.with("worker-2", |n| n.databases.is_empty()),
                    "purged"
                );
                assert!(
                    !rig.fleet.with("worker-1", |n| n.databases.is_empty()),
                    "the other kept"
                );
                let inventory = rig.store.load().await.ok().flatten();
                assert_eq!(inventory.map(|i| i.nodes.len()), Some(3));
            })
        },
    )
    .await;
}

#[tokio::test]
async fn delete_resumes_after_a_crash_at_every_call() {
    crash_everywhere(
        async || Rig::installed(2).await,
        |_| {
            JobSpec::Delete(DeleteParams {
                confirm: "dr1".to_owned(),
            })
        },
        |rig| {
            Box::pin(async move {
                assert_eq!(rig.mode().await.0, Mode::Uninstalled);
                let nodes = rig
                    .fleet
                    .nodes
                    .lock()
                    .map(|n| n.clone())
                    .unwrap_or_default();
                assert!(
                    nodes
                        .values()
                        .all(|n| n.databases.is_empty() && !n.accounts)
                );
            })
        },
    )
    .await;
}

/// A job stored but never run holds the queue, as a running one does.
async fn hold_the_queue(rig: &Rig) -> String {
    rig.store
        .create_job(&JobSpec::down(), "someone", crate::clock::now_ms())
        .await
        .unwrap_or_else(|e| panic!("create: {e}"))
}

#[tokio::test]
async fn wait_never_skips_a_check() {
    let rig = Rig::installed(2).await;
    rig.fleet.add("worker-3", Role::Worker);
    let engine = rig.engine().await;
    let blocker = hold_the_queue(&rig).await;
    let before = rig
        .fleet
        .nodes
        .lock()
        .map(|n| n.clone())
        .unwrap_or_default();
    let refused = [
        JobSpec::Delete(DeleteParams {
            confirm: "WRONG-NAME".to_owned(),
        }),
        JobSpec::WorkersRemove(WorkersRemoveParams {
            name: "czar-0".to_owned(),
            purge: true,
            forget_replicas: false,
        }),
        JobSpec::WorkersRemove(WorkersRemoveParams {
            name: "nobody".to_owned(),
            purge: false,
            forget_replicas: false,
        }),
        JobSpec::WorkersAdd(WorkersAddParams {
            instance: "dr1".to_owned(),
            nodes: vec![Node {
                name: "worker-1".to_owned(),
                role: Role::Worker,
                agent: "fake://worker-3".to_owned(),
            }],
        }),
    ];
    for spec in refused {
        for wait in [false, true] {
            let result = rig.submit(&engine, spec.clone(), wait).await;
            assert!(
                matches!(result, Err(SubmitError::Refused(_))),
                "{spec:?} wait={wait}: {result:?}"
            );
            if wait {
                let why = format!("{result:?}");
                assert!(
                    !why.contains(&blocker),
                    "refused on its own merits, not the queue: {why}"
                );
            }
        }
    }
    let unfinished = rig.store.unfinished_jobs().await.unwrap_or_default();
    assert_eq!(unfinished, [blocker], "no job was queued");
    let after = rig
        .fleet
        .nodes
        .lock()
        .map(|n| n.clone())
        .unwrap_or_default();
    for (agent, node) in &before {
        let now = &after[agent];
        assert_eq!(
            (&node.databases, &node.registry, node.accounts),
            (&now.databases, &now.registry, now.accounts)
        );
    }
    assert_eq!(
        rig.store.load().await.ok().flatten().map(|i| i.nodes.len()),
        Some(4)
    );
}

#[tokio::test]
async fn a_queued_job_is_admitted_again_when_it_starts() {
    let rig = Rig::installed(2).await;
    let engine = rig.engine().await;
    let up = rig
        .queue(
            &engine,
            JobSpec::Up(UpParams {
                timeout_ms: 5_000,
                service_timeout_ms: 0,
            }),
            false,
        )
        .await;
    let remove = JobSpec::WorkersRemove(WorkersRemoveParams {
        name: "worker-2".to_owned(),
        purge: true,
        forget_replicas: false,
    });
    let queued = rig.queue(&engine, remove, true).await;
    assert_eq!(rig.job(&queued).await.state, JobState::Queued);
    engine.run_job(&up).await;
    succeeded(&rig.job(&up).await);
    engine.run_job(&queued).await;
    let job = rig.job(&queued).await;
    assert_eq!(
        (job.state, job.refused),
        (JobState::Failed, true),
        "{}",
        job.error
    );
    assert!(job.error.contains("maintenance"), "{}", job.error);
    assert!(
        job.steps.iter().all(|s| s.state == StepState::Pending),
        "no step ran"
    );
    assert!(
        !rig.fleet.with("worker-2", |n| n.databases.is_empty()),
        "nothing purged"
    );
    assert_eq!(rig.fleet.with("repl-0", |n| n.registry.len()), 2);
}

#[tokio::test]
async fn fail_fast_starts_no_node_after_a_failure() {
    let rig = Rig::installed(3).await;
    for name in ["worker-1", "worker-2", "worker-3"] {
        rig.fleet.with(name, |n| n.version = Some(0));
    }
    rig.fleet.with("worker-1", |n| {
        n.fail_migrate = Some("statement 2 failed".to_owned())
    });
    let job = rig
        .run(JobSpec::Upgrade(UpgradeParams {
            parallel: 1,
            nodes: Vec::new(),
            fail_fast: true,
        }))
        .await;
    assert_eq!((job.state, job.refused), (JobState::Failed, false));
    let state = |name: &str| job.nodes.iter().find(|n| n.name == name).map(|n| n.state);
    assert_eq!(state("worker-1"), Some(NodeState::Failed));
    assert_eq!(state("worker-2"), Some(NodeState::Skipped));
    assert_eq!(state("worker-3"), Some(NodeState::Skipped));
    assert_eq!(
        rig.fleet.with("worker-2", |n| n.version),
        Some(0),
        "never started"
    );
    assert!(
        job.error.contains("worker-1: statement 2 failed"),
        "{}",
        job.error
    );
}

#[tokio::test]
async fn a_cancelled_up_leaves_the_instance_in_maintenance() {
    let rig = Rig::installed(2).await;
    rig.fleet.with("worker-1", |n| n.db_ready = false);
    let engine = rig.engine().await;
    let id = rig
        .queue(
            &engine,
            JobSpec::Up(UpParams {
                timeout_ms: 60_000,
                service_timeout_ms: 0,
            }),
            false,
        )
        .await;
    let runner = engine.clone();
    let job_id = id.clone();
    let run = tokio::spawn(async move { runner.run_job(&job_id).await });
    for _ in 0..6_000 {
        let job = rig.job(&id).await;
        if job
            .nodes
            .iter()
            .any(|n| n.name == "worker-1" && n.state == NodeState::Waiting)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let waiting = rig.job(&id).await;
    let detail = waiting
        .nodes
        .iter()
        .find(|n| n.name == "worker-1")
        .map(|n| n.detail.clone());
    assert!(
        detail
            .as_deref()
            .is_some_and(|d| d.starts_with("database not ready")),
        "{detail:?}"
    );
    let _ = engine.cancel(&id).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), run).await;
    assert_eq!(rig.job(&id).await.state, JobState::Cancelled);
    assert_eq!(rig.mode().await.0, Mode::Maintenance);
}

#[tokio::test]
async fn up_persists_normal_only_after_a_barrier_of_fresh_checks() {
    // worker-1's database dies after the first round found every node available, before the
    // barrier: the instance must not go normal while it is down. (Admission probes every node
    // at submission and again when the job starts, the first round once more: the barrier
    // starts at call 3 × nodes.)
    let rig = Rig::installed(2).await;
    let nodes = 4;
    rig.fleet.at_call(3 * nodes, |fleet| {
        if let Some(n) = fleet.get_mut("fake://worker-1") {
            n.db_ready = false;
        }
    });
    let job = rig
        .run(JobSpec::Up(UpParams {
            timeout_ms: 300,
            service_timeout_ms: 0,
        }))
        .await;
    assert_eq!(
        (job.state, job.timed_out),
        (JobState::Failed, true),
        "{}",
        job.error
    );
    assert!(
        job.error.contains("worker-1: database not ready"),
        "{}",
        job.error
    );
    assert_eq!(
        job.steps[0].state,
        StepState::Succeeded,
        "the first round saw it available"
    );
    assert_eq!(rig.mode().await.0, Mode::Maintenance);
    assert!(
        rig.fleet
            .nodes
            .lock()
            .map(|n| n.values().all(|n| n.mode == Some(Mode::Maintenance)))
            .unwrap_or(false)
    );

    // Back during the barrier's wait: up completes.
    rig.fleet.with("worker-1", |n| n.db_ready = true);
    rig.fleet.at_call(3 * nodes, |fleet| {
        if let Some(n) = fleet.get_mut("fake://worker-1") {
            n.db_ready = false;
        }
    });
    rig.fleet.at_call(5 * nodes, |fleet| {
        if let Some(n) = fleet.get_mut("fake://worker-1") {
            n.db_ready = true;
        }
    });
    let job = rig
        .run(JobSpec::Up(UpParams {
            timeout_ms: 10_000,
            service_timeout_ms: 0,
        }))
        .await;
    succeeded(&job);
    assert_eq!(rig.mode().await.0, Mode::Normal);
}

#[tokio::test]
async fn a_wait_ends_only_on_a_round_that_checked_every_node() {
    // Rounds after the first check only the nodes still lacking something. worker-1 comes
    // back just as worker-2's database dies: the round that finds worker-1 ready does not
    // check worker-2, so the wait must check every node once more before it ends.
    let rig = Rig::installed(2).await;
    let nodes = 4;
    rig.fleet.with("worker-1", |n| n.db_ready = false);
    rig.fleet.at_call(3 * nodes, |fleet| {
        if let Some(n) = fleet.get_mut("fake://worker-1") {
            n.db_ready = true;
        }
        if let Some(n) = fleet.get_mut("fake://worker-2") {
            n.db_ready = false;
        }
    });
    let job = rig
        .run(JobSpec::Up(UpParams {
            timeout_ms: 500,
            service_timeout_ms: 0,
        }))
        .await;
    assert_eq!(
        (job.state, job.timed_out),
        (JobState::Failed, true),
        "{}",
        job.error
    );
    assert_eq!(job.steps[0].state, StepState::Failed, "{}", job.error);
    assert!(
        job.error.contains("worker-2: database not ready") && !job.error.contains("worker-1"),
        "{}",
        job.error
    );
    assert_eq!(rig.mode().await.0, Mode::Maintenance);
}

#[tokio::test]
async fn install_refuses_swapped_agents_and_changes_nothing() {
    let rig = Rig::new(2).await;
    let mut spec = rig.spec();
    for node in &mut spec.nodes {
        node.agent = match node.name.as_str() {
            "worker-1" => "fake://worker-2".to_owned(),
            "worker-2" => "fake://worker-1".to_owned(),
            _ => node.agent.clone(),
        };
    }
    let job = rig
        .run(JobSpec::Install(InstallParams { spec: Some(spec) }))
        .await;
    assert_eq!(
        (job.state, job.refused),
        (JobState::Failed, true),
        "{}",
        job.error
    );
    assert!(
        job.error
            .contains("worker-1: the agent at fake://worker-2 calls itself 'worker-2'"),
        "{}",
        job.error
    );
    assert!(
        job.error
            .contains("worker-2: the agent at fake://worker-1 calls itself 'worker-1'"),
        "{}",
        job.error
    );
    let nodes = rig
        .fleet
        .nodes
        .lock()
        .map(|n| n.clone())
        .unwrap_or_default();
    assert!(
        nodes
            .values()
            .all(|n| !n.accounts && n.databases.is_empty() && n.mode.is_none())
    );
}

#[tokio::test]
async fn an_exhausted_epoch_refuses_the_install_without_wrapping() {
    let rig = Rig::new(1).await;
    rig.fleet.with("worker-1", |n| n.seen = u64::MAX);
    let job = rig
        .run(JobSpec::Install(InstallParams {
            spec: Some(rig.spec()),
        }))
        .await;
    assert_eq!(
        (job.state, job.refused),
        (JobState::Failed, true),
        "{}",
        job.error
    );
    assert!(job.error.contains("no epoch can follow"), "{}", job.error);
    assert_eq!(rig.mode().await, (Mode::Uninstalled, 0));
}

#[tokio::test]
async fn install_takes_over_agents_that_saw_a_higher_epoch() {
    let rig = Rig::new(1).await;
    rig.fleet.with("czar-0", |n| n.seen = 41);
    let job = rig
        .run(JobSpec::Install(InstallParams {
            spec: Some(rig.spec()),
        }))
        .await;
    succeeded(&job);
    let (mode, epoch) = rig.mode().await;
    assert_eq!(mode, Mode::Maintenance);
    assert!(epoch > 41, "epoch {epoch}");
}

// Rolling restarts and worker replacement, on the same rig.
mod rolling;

// Configuration files written to the nodes that run a service.
mod config;

// Services in their order across the instance.
mod services;

#[tokio::test]
async fn a_job_cancelled_while_its_start_waits_on_an_agent_never_starts() {
    let rig = Rig::installed(1).await;
    let engine = rig.engine().await;
    let id = rig
        .queue(
            &engine,
            JobSpec::Up(UpParams {
                timeout_ms: 5_000,
                service_timeout_ms: 0,
            }),
            false,
        )
        .await;
    // The runner's own admission asks the agents first: the first of them stays frozen.
    let release = rig.fleet.hold_at(0);
    let run = tokio::spawn({
        let engine = engine.clone();
        let id = id.clone();
        async move { engine.run_job(&id).await }
    });
    rig.fleet.frozen.notified().await;
    let cancelled = engine.cancel(&id).await.ok().flatten();
    assert_eq!(cancelled.map(|j| j.state), Some(JobState::Cancelled));
    release.notify_one();
    let _ = tokio::time::timeout(Duration::from_secs(5), run).await;
    let job = rig.job(&id).await;
    assert_eq!(job.state, JobState::Cancelled, "{}", job.error);
    assert_eq!(job.started_at_ms, 0, "it never started");
    assert!(job.steps.iter().all(|s| s.state == StepState::Pending));
    assert_eq!(rig.mode().await.0, Mode::Maintenance);
    let modes: Vec<Services> = rig
        .fleet
        .nodes
        .lock()
        .map(|n| n.values().map(|n| n.services).collect())
        .unwrap_or_default();
    assert!(modes.iter().all(|s| *s == Services::Stopped), "{modes:?}");
}

#[tokio::test]
async fn a_cancel_stored_for_a_running_job_stops_the_leader_that_resumes_it() {
    let rig = Rig::installed(1).await;
    rig.fleet.with("worker-1", |n| n.db_ready = false);
    let first = rig.engine().await;
    let id = rig
        .queue(
            &first,
            JobSpec::Up(UpParams {
                timeout_ms: 60_000,
                service_timeout_ms: 0,
            }),
            false,
        )
        .await;
    let run = tokio::spawn({
        let first = first.clone();
        let id = id.clone();
        async move { first.run_job(&id).await }
    });
    // Patient: a loaded machine may take seconds to start the job.
    for _ in 0..6_000 {
        if rig.job(&id).await.state == JobState::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        rig.job(&id).await.state,
        JobState::Running,
        "the job started"
    );
    // The coordinator that took the cancel dies before its job sees it.
    run.abort();
    let stored = rig
        .store
        .cancel_job(&id, crate::clock::now_ms())
        .await
        .ok()
        .flatten();
    assert_eq!(stored, Some(JobState::Running));
    let second = rig.engine().await;
    tokio::time::timeout(Duration::from_secs(10), second.run_job(&id))
        .await
        .unwrap_or_else(|_| panic!("the resumed job did not stop"));
    assert_eq!(rig.job(&id).await.state, JobState::Cancelled);
    assert_eq!(rig.mode().await.0, Mode::Maintenance);
}

#[tokio::test]
async fn an_ended_job_is_never_rewritten() {
    let rig = Rig::installed(1).await;
    let engine = rig.engine().await;
    let id = rig
        .queue(
            &engine,
            JobSpec::Up(UpParams {
                timeout_ms: 5_000,
                service_timeout_ms: 0,
            }),
            false,
        )
        .await;
    let _ = engine.cancel(&id).await;
    let mut job = rig.job(&id).await;
    assert_eq!(job.state, JobState::Cancelled);
    job.state = JobState::Running;
    job.started_at_ms = 1;
    rig.store
        .save_job_header(&job)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!rig.store.start_job(&id, 2).await.unwrap_or(true));
    let after = rig.job(&id).await;
    assert_eq!((after.state, after.started_at_ms), (JobState::Cancelled, 0));
}
