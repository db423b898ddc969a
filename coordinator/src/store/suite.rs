//! One test suite for every store implementation: what each method promises, checked on
//! SQLite and on a real MariaDB server (started by the test harness).

use std::sync::Arc;

use crate::domain::{Epoch, Mode};

use super::{Claim, Claimant, Declared, Lease, Store, StoreError};
use crate::domain::audit::{AuditRecord, Outcome};
use crate::domain::config::NewConfigVersion;
use crate::domain::job::{JobSpec, JobState, Level, LogRecord, NodeProgress, NodeState, StepState};
use crate::domain::spec::InstanceSpec;
use crate::domain::{Node, Role};
use crate::store::MariaTarget;
use crate::store::StoreTarget;
use qserv_model::ServiceName;

fn node(name: &str, role: Role) -> Node {
    Node {
        name: name.to_owned(),
        role,
        agent: format!("http://{name}:7080"),
    }
}

/// Text no collation or charset conversion may change.
const UTF8: &str = "Ünïcode ✓ 星 🚀 'quote' \\back";

async fn inventory(store: &Store) {
    assert_eq!(
        store.load().await.ok().flatten(),
        None,
        "a new store is empty"
    );
    let spec = InstanceSpec {
        name: "dr1".to_owned(),
        nodes: vec![
            node("czar-0", Role::Czar),
            node("repl-0", Role::Repl),
            node("worker-1", Role::Worker),
            node("worker-2", Role::Worker),
        ],
        services: Default::default(),
    };
    let declared = store
        .declare(&spec, Declared::ByJob)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(declared.spec(), spec);
    assert_eq!((declared.mode, declared.epoch), (Mode::Uninstalled, None));

    store
        .set_epoch(epoch(3))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .set_mode(Mode::Maintenance, Some(epoch(4)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .set_registered_ids(&[
            ("worker-1".to_owned(), Some("id-1".to_owned())),
            ("worker-2".to_owned(), None),
        ])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let extra = node("worker-3", Role::Worker);
    for _ in 0..2 {
        store
            .add_nodes(std::slice::from_ref(&extra))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(
        store.instance_row().await.ok().flatten(),
        Some(("dr1".to_owned(), Mode::Maintenance, Some(epoch(4))))
    );
    let loaded = store
        .load()
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no inventory"));
    assert_eq!(
        (loaded.mode, loaded.epoch),
        (Mode::Maintenance, Some(epoch(4)))
    );
    let names: Vec<&str> = loaded.nodes.iter().map(|n| n.spec.name.as_str()).collect();
    assert_eq!(
        names,
        ["czar-0", "repl-0", "worker-1", "worker-2", "worker-3"],
        "kept in order, added once"
    );
    assert_eq!(loaded.nodes[2].registered_id.as_deref(), Some("id-1"));
    assert_eq!(loaded.nodes[3].registered_id, None);

    store
        .remove_node("worker-3")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .forget(epoch(9))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let forgotten = store
        .load()
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no row"));
    assert_eq!(
        (
            forgotten.name.as_str(),
            forgotten.mode,
            forgotten.epoch,
            forgotten.nodes.len()
        ),
        ("", Mode::Uninstalled, Some(epoch(9)), 0),
        "the epoch survives a delete"
    );
}

async fn jobs(store: &Store) {
    let first = store
        .create_job(&JobSpec::down(), UTF8, 1_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let second = store
        .create_job(&JobSpec::down(), "operator", 5_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((first.as_str(), second.as_str()), ("j1", "j2"));

    let mut job = store
        .job(&first)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no job"));
    assert_eq!(
        (job.state, job.requested_by.as_str()),
        (JobState::Queued, UTF8)
    );
    assert!(!job.steps.is_empty() && job.steps.iter().all(|s| s.state == StepState::Pending));
    job.state = JobState::Running;
    job.started_at_ms = 1_100;
    store
        .save_job_header(&job)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut step = job.steps[0].clone();
    step.state = StepState::Succeeded;
    step.finished_at_ms = 1_200;
    store
        .save_step(&first, 0, &step)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let progress = |state, detail: &str| NodeProgress {
        name: "worker-1".to_owned(),
        state,
        detail: detail.to_owned(),
        error: String::new(),
    };
    store
        .save_nodes(&first, &[progress(NodeState::Running, "migrate")])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .save_nodes(&first, &[progress(NodeState::Done, UTF8)])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let read = store
        .job(&first)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no job"));
    assert_eq!((read.state, read.started_at_ms), (JobState::Running, 1_100));
    assert_eq!(read.steps[0], step);
    assert_eq!(
        read.nodes,
        [progress(NodeState::Done, UTF8)],
        "one row per node, updated"
    );
    assert_eq!(
        store.job_state(&first).await.ok().flatten(),
        Some(JobState::Running)
    );

    for seq in 1..=3 {
        let line = LogRecord {
            seq,
            at_ms: 1_000 + i64::try_from(seq).unwrap_or_default(),
            level: if seq == 2 { Level::Warn } else { Level::Info },
            node: "worker-1".to_owned(),
            message: format!("{UTF8} {seq}"),
        };
        store
            .append_log(&first, &line)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let page = store
        .logs(&first, 1, 1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(page.len(), 1);
    assert_eq!(
        (page[0].seq, page[0].level, page[0].message.as_str()),
        (2, Level::Warn, &*format!("{UTF8} 2"))
    );
    assert_eq!(store.last_log_seq(&first).await.ok(), Some(3));
    assert_eq!(store.last_log_seq(&second).await.ok(), Some(0));

    let listed = store
        .list_jobs(1, 0)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        listed.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        ["j2"]
    );
    let since = store
        .list_jobs(10, 2_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(since.len(), 1, "created before --since is left out");
    assert_eq!(
        store.unfinished_jobs().await.ok(),
        Some(vec![first.clone(), second.clone()])
    );

    let mut done = read;
    done.state = JobState::Succeeded;
    done.finished_at_ms = 1_500;
    store
        .save_job_header(&done)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        store.unfinished_jobs().await.ok(),
        Some(vec![second.clone()])
    );
    for at_ms in [1_000, 3_000, 4_000] {
        let entry = AuditRecord {
            at_ms,
            identity: UTF8.to_owned(),
            role: "operator".to_owned(),
            operation: "down".to_owned(),
            params: "{}".to_owned(),
            outcome: if at_ms == 4_000 {
                Outcome::AcceptedForced(format!("{UTF8}: 2 queries executing"))
            } else {
                Outcome::Accepted
            },
            job_id: Some(second.clone()),
        };
        store
            .record_audit(&entry)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let (entries, truncated) = store
        .audit_page(2_000, 1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(truncated);
    assert_eq!(
        (entries[0].at_ms, entries[0].identity.as_str()),
        (4_000, UTF8)
    );
    assert_eq!(
        entries[0].outcome,
        Outcome::AcceptedForced(format!("{UTF8}: 2 queries executing"))
    );
    assert_eq!(entries[0].job_id.as_deref(), Some(second.as_str()));

    let (jobs, audit) = store.prune(2_000).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((jobs, audit), (1, 1), "the finished job and the old entry");
    assert_eq!(store.job(&first).await.ok(), Some(None));
    assert!(
        store
            .logs(&first, 0, 10)
            .await
            .unwrap_or_default()
            .is_empty(),
        "logs go with the job"
    );
    assert!(
        store.job(&second).await.ok().flatten().is_some(),
        "an unfinished job stays"
    );
    assert!(store.write_counters().statements.get() > 10);
}

/// A claimant for the suite: process "1" of `id`, planning with set "m".
pub(crate) fn claimant(id: &str) -> Claimant {
    Claimant {
        id: id.to_owned(),
        address: format!("https://{id}:7070"),
        incarnation: "1".to_owned(),
        migrations: "m".to_owned(),
    }
}

/// `claimant` claims for a minute; returns the lease standing after and the store's time.
pub(crate) async fn claim_as(
    store: &Store,
    claimant: &Claimant,
    holding: Option<u64>,
    seize: Option<&Lease>,
) -> (Lease, i64) {
    let claimed = store
        .claim_lease(&Claim {
            claimant,
            ttl_ms: 60_000,
            seize,
            holding,
            floor: 0,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let lease = claimed
        .standing
        .unwrap_or_else(|| panic!("no lease after a claim: {:?}", claimed.verdict));
    (lease, claimed.now_ms)
}

/// Lease semantics; returns the lease standing at the end (b's, for a minute).
async fn lease(store: &Store) -> Lease {
    let (a, b) = (claimant("a"), claimant("b"));
    let (first, now) = claim_as(store, &a, None, None).await;
    assert_eq!((first.holder.as_str(), first.token), ("a", 1));
    assert!(
        first.expires_at_ms >= now + 60_000,
        "expires by the store's clock"
    );
    let (seen, _) = claim_as(store, &b, None, None).await;
    assert_eq!((seen.holder.as_str(), seen.token), ("a", 1), "b waits");
    let (renewed, _) = claim_as(store, &a, Some(1), None).await;
    assert_eq!(renewed.token, 1, "a renewal keeps the token");
    let restarted = Claimant {
        incarnation: "2".to_owned(),
        ..a.clone()
    };
    let (other, _) = claim_as(store, &restarted, None, None).await;
    assert_eq!(
        (other.incarnation.as_str(), other.token),
        ("1", 1),
        "a second process with a's id does not renew a's term"
    );
    store
        .release_lease(&b)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .release_lease(&restarted)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        claim_as(store, &b, None, None).await.0.holder,
        "a",
        "only the holding process releases"
    );
    store
        .release_lease(&a)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (taken, _) = claim_as(store, &b, None, None).await;
    assert_eq!(
        (taken.holder.as_str(), taken.token),
        ("b", 2),
        "a new term, a new token"
    );
    let peers = store.peers().await.unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<&str> = peers.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert!(peers.iter().all(|p| p.last_seen_ms >= now));
    assert!(peers.iter().all(|p| p.migrations == "m"));
    assert_eq!(peers[0].incarnation, "2", "the last process to claim as a");
    taken
}

/// `old` leads under `term`; `new`, another coordinator on the same store, seizes the term.
/// From then on nothing `old` writes under its token lands, and `new` writes freely.
async fn fencing(old: &Store, new: &Store, term: &Lease) {
    let fenced = |result: Result<(), StoreError>, what: &str| match result {
        Err(StoreError::Fenced { token }) => assert_eq!(token, term.token, "{what}"),
        other => panic!("{what}: expected a fenced write, got {other:?}"),
    };
    assert!(
        matches!(
            new.set_epoch(epoch(1)).await,
            Err(StoreError::Fenced { token: 0 })
        ),
        "a coordinator that never led writes nothing"
    );
    let (taken, _) = claim_as(new, &claimant("successor"), None, Some(term)).await;
    assert_eq!(
        (taken.holder.as_str(), taken.token),
        ("successor", term.token + 1)
    );
    new.fence().hold(taken.token);

    let before = old.load().await.unwrap_or_else(|e| panic!("{e}"));
    let queue = old
        .unfinished_jobs()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    fenced(
        old.set_mode(Mode::Normal, Some(epoch(1_000))).await,
        "a deposed leader's mode change",
    );
    assert_eq!(
        old.fence().token(),
        0,
        "a refused write ends the term locally"
    );
    old.fence().hold(term.token);
    fenced(
        old.create_job(&JobSpec::down(), "deposed", 5)
            .await
            .map(|_| ()),
        "a deposed leader's new job",
    );
    old.fence().hold(term.token);
    fenced(
        old.remove_node("worker-1").await,
        "a deposed leader's inventory change",
    );
    assert_eq!(
        old.load().await.ok(),
        Some(before.clone()),
        "nothing changed"
    );
    assert_eq!(old.unfinished_jobs().await.ok(), Some(queue));

    new.set_mode(Mode::Normal, Some(epoch(1_000)))
        .await
        .unwrap_or_else(|e| panic!("the new leader writes: {e}"));
    // Read through the deposed leader's node: causal, so the write made through another
    // node is there at once.
    let after = old.load().await.ok().flatten().map(|i| (i.mode, i.epoch));
    assert_eq!(after, Some((Mode::Normal, Some(epoch(1_000)))));
}

fn add<'a>(service: &'a ServiceName, content: &'a str, at_ms: i64) -> NewConfigVersion<'a> {
    NewConfigVersion {
        service,
        content,
        sha256: "ab",
        by: "ops@example",
        at_ms,
        message: UTF8,
    }
}

/// Versions of templates: numbered from 1 per service, the text kept exactly, and none stored
/// by a coordinator that no longer leads.
async fn config_versions(store: &Store, other: &Store) {
    let czar = ServiceName::parse("czar-http").unwrap_or_else(|e| panic!("{e}"));
    let worker = ServiceName::parse("worker-xrootd").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.config_history(&czar).await.ok(), Some(Vec::new()));
    let text = format!("[http]\nname = {UTF8}\npassword = {{{{ p }}}}\n");
    let (czar, worker, text) = (&czar, &worker, text.as_str());
    let first = store
        .add_config_version(add(czar, text, 10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.version, 1);
    let second = store
        .add_config_version(add(czar, "two", 20))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let elsewhere = store
        .add_config_version(add(worker, "w", 30))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (second.version, elsewhere.version),
        (2, 1),
        "numbered per service"
    );
    let history = store
        .config_history(czar)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(history, vec![first.clone(), second]);
    assert_eq!(
        store.config_version(czar, 1).await.ok().flatten(),
        Some((first, text.to_owned())),
        "the text comes back byte for byte"
    );
    assert_eq!(store.config_version(czar, 3).await.ok().flatten(), None);
    // Another coordinator, not leading, stores nothing.
    assert!(matches!(
        other.add_config_version(add(czar, "three", 40)).await,
        Err(StoreError::Fenced { .. })
    ));
    assert_eq!(
        store.config_history(czar).await.map(|h| h.len()).ok(),
        Some(2)
    );
}

async fn every_method(store: Store, other: Store) {
    assert!(store.is_open());
    let term = lease(&store).await;
    store.fence().hold(term.token);
    inventory(&store).await;
    jobs(&store).await;
    config_versions(&store, &other).await;
    fencing(&store, &other, &term).await;
}

#[tokio::test]
async fn sqlite_keeps_every_promise() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let open = || async {
        Store::open_target(&StoreTarget::Sqlite(url.clone()))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    };
    every_method(open().await, open().await).await;
}

/// A store at `target` whose coordinator leads: it holds the lease and writes under its token.
pub(crate) async fn leading(target: &StoreTarget) -> (Store, Lease) {
    let store = Store::open_target(target)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (term, _) = claim_as(&store, &claimant("a"), None, None).await;
    store.fence().hold(term.token);
    (store, term)
}

/// A MariaDB server holding an empty store database, and how a coordinator reaches it.
async fn maria_store(password: &'static str) -> (Arc<qserv_integration::MariaDb>, StoreTarget) {
    let server = tokio::task::spawn_blocking(move || qserv_integration::ha::store_server(password))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!(
        "mysql://coordinator@127.0.0.1:{}/qserv_store",
        server.port()
    );
    (Arc::new(server), maria_target(vec![url], password))
}

/// The store on the MariaDB or Galera hosts at `urls`, as the `coordinator` account.
fn maria_target(urls: Vec<String>, password: &str) -> StoreTarget {
    StoreTarget::Maria(MariaTarget {
        urls,
        password: Some(password.to_owned()),
    })
}

#[tokio::test]
async fn mariadb_keeps_every_promise() {
    let (_server, target) = maria_store("pa'ss").await;
    let open = || async {
        Store::open_target(&target)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    };
    every_method(open().await, open().await).await;
}

/// Every connection of the store killed under many concurrent reads (a server restart, a
/// network blip, a coordinator waking from a freeze whose connections the server dropped): the
/// reads that fail move to fresh connections, and none reaches its caller as an error.
#[tokio::test]
async fn concurrent_reads_outlive_every_connection_being_killed() {
    let (server, target) = maria_store("secret").await;
    let (store, _) = leading(&target).await;
    let job = store
        .create_job(&JobSpec::down(), "operator", 1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let readers: Vec<_> = (0..16)
        .map(|_| {
            let (store, job) = (store.clone(), job.clone());
            tokio::spawn(async move {
                for _ in 0..100 {
                    store.job(&job).await?;
                }
                Ok::<(), StoreError>(())
            })
        })
        .collect();
    for _ in 0..4 {
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
        let admin = Arc::clone(&server);
        tokio::task::spawn_blocking(move || admin.execute("KILL CONNECTION USER coordinator"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    for reader in readers {
        reader
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("a read failed while its connection was killed: {e}"));
    }
    assert!(
        store.write_counters().failovers.get() >= 1,
        "no connection was lost: the test shows nothing"
    );
}

/// A store migration interrupted between sqlx marking it begun and marking it done (a Galera
/// conflict aborting its DDL, a coordinator killed) is finished at the next start, whether its
/// statements ran or not; one that cannot be finished stops the coordinator saying what to do.
#[tokio::test]
async fn an_interrupted_store_migration_is_finished_at_the_next_start() {
    let (server, target) = maria_store("secret").await;
    let done = |version: u32| {
        server.execute(&format!(
            "SELECT success FROM qserv_store._sqlx_migrations WHERE version = {version}"
        ))
    };
    Store::open_target(&target)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // Undoes some of `version`'s statements and marks it begun; the next start must finish it
    // (`check` then runs) and mark it done.
    let finished = async |undo: &str, version: u32, check: &str| {
        server.execute(&format!(
            "{undo}; UPDATE qserv_store._sqlx_migrations SET success = 0 WHERE version = {version}"
        ));
        Store::open_target(&target)
            .await
            .unwrap_or_else(|e| panic!("migration {version} after '{undo}': {e}"));
        assert_eq!(done(version).trim(), "1");
        server.execute(check);
    };
    // Begun, its one statement never ran.
    finished(
        "ALTER TABLE qserv_store.leader_lease DROP COLUMN fenced_writes",
        6,
        "SELECT fenced_writes FROM qserv_store.leader_lease",
    )
    .await;
    // Begun, some of its statements ran: the others run now.
    finished(
        "DROP TABLE qserv_store.job_logs",
        2,
        "SELECT COUNT(*) FROM qserv_store.job_logs",
    )
    .await;

    // Begun, and a statement fails for another reason than "exists": nothing is marked done,
    // and the message says how to finish it.
    server.execute(
        "RENAME TABLE qserv_store.leader_lease TO qserv_store.kept_aside;
         UPDATE qserv_store._sqlx_migrations SET success = 0 WHERE version = 6",
    );
    let err = Store::open_target(&target)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("store migration 6") && err.contains("SET success = 1 WHERE version = 6"),
        "{err}"
    );
    assert_eq!(done(6).trim(), "0");
}

#[tokio::test]
async fn galera_keeps_every_promise_through_conflicts_and_a_lost_node() {
    let mut galera = tokio::task::spawn_blocking(|| qserv_integration::Galera::start(3))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    qserv_integration::ha::store_account(&galera.nodes[0], "secret");
    let target = |urls: Vec<String>| maria_target(urls, "secret");
    let urls = galera.urls("coordinator", "qserv_store");
    let (store, term) = leading(&target(urls.clone())).await;
    inventory(&store).await;

    // Two coordinators writing the same rows through different nodes: Galera certifies one
    // transaction of each conflicting pair and aborts the other, which must run again.
    let mut rotated = urls.clone();
    rotated.rotate_left(1);
    let other = Store::open_target(&target(rotated))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // The same term writing through two nodes: conflicts here are about rows, not terms.
    other.fence().hold(term.token);
    let job = store
        .create_job(&JobSpec::down(), "operator", 1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let writer = |store: Store, job: String, tag: &'static str| async move {
        for round in 0..150 {
            let rows: Vec<NodeProgress> = (0..4)
                .map(|n| NodeProgress {
                    name: format!("worker-{n}"),
                    state: NodeState::Running,
                    detail: format!("{tag} {round}"),
                    error: String::new(),
                })
                .collect();
            store.save_nodes(&job, &rows).await?;
        }
        Ok::<(), super::StoreError>(())
    };
    let (a, b) = tokio::join!(
        writer(store.clone(), job.clone(), "a"),
        writer(other.clone(), job.clone(), "b")
    );
    a.unwrap_or_else(|e| panic!("writer a: {e}"));
    b.unwrap_or_else(|e| panic!("writer b: {e}"));
    let rows = store.job(&job).await.ok().flatten().map(|j| j.nodes.len());
    assert_eq!(rows, Some(4));
    let conflicts = store.write_counters().conflicts.get() + other.write_counters().conflicts.get();
    eprintln!("certification conflicts run again: {conflicts}");
    assert!(
        conflicts > 0,
        "the writers never conflicted: the test shows nothing"
    );

    // The node in use dies: the store moves to another and loses nothing.
    galera.nodes[0].kill();
    jobs_after(&store, &job).await;
    assert_eq!(store.write_counters().failovers.get(), 1);

    // A takeover through another node than the one the deposed leader writes to: Galera
    // certifies the lease row, so the deposed leader's writes still fail.
    let mut third = urls.clone();
    third.rotate_left(2);
    let successor = Store::open_target(&target(third))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    fencing(&store, &successor, &term).await;
    galera.rejoin(0);
}

/// What a store that moved to another Galera node still holds and does.
async fn jobs_after(store: &Store, job: &str) {
    let loaded = store.load().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        loaded.map(|i| i.epoch),
        Some(Some(epoch(9))),
        "the inventory written before the loss"
    );
    let next = store
        .create_job(&JobSpec::down(), "operator", 2)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(next, job);
    assert_eq!(
        store.unfinished_jobs().await.ok(),
        Some(vec![job.to_owned(), next])
    );
}

/// A caller that gives up while its BEGIN waits (a Galera node catching up, as after another
/// node died) must not leave the session inside a transaction the pool does not know about:
/// every later read through that session would see the snapshot of that moment.
#[tokio::test]
async fn a_begin_whose_caller_gave_up_leaves_no_session_in_an_old_snapshot() {
    let galera = Arc::new(
        tokio::task::spawn_blocking(|| qserv_integration::Galera::start(2))
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    qserv_integration::ha::store_account(&galera.nodes[0], "secret");
    let urls = galera.urls("coordinator", "qserv_store");
    let target = |url: &String| maria_target(vec![url.clone()], "secret");
    let (writer, term) = leading(&target(&urls[0])).await;
    let reader = Store::open_target(&target(&urls[1]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    reader.fence().hold(term.token);

    // The reader's node stops applying for a while, as an rsync donor does, and falls behind
    // the writer: a causal BEGIN there waits until it has caught up.
    let locker = {
        let galera = Arc::clone(&galera);
        tokio::task::spawn_blocking(move || {
            galera.nodes[1].try_execute(
                "SET GLOBAL wsrep_desync = ON; FLUSH TABLES WITH READ LOCK; SELECT SLEEP(3); \
                 UNLOCK TABLES; SET GLOBAL wsrep_desync = OFF",
            )
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    writer
        .create_job(&JobSpec::down(), "operator", 1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let gave_up = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        reader.create_job(&JobSpec::down(), "operator", 2),
    )
    .await;
    assert!(
        gave_up.is_err(),
        "the BEGIN did not wait: the test shows nothing"
    );
    locker
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));

    // Reads through every session of the reader's pool, then a job committed after them.
    for _ in 0..16 {
        reader
            .unfinished_jobs()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let later = writer
        .create_job(&JobSpec::down(), "operator", 3)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for round in 0..16 {
        let seen = reader.job(&later).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(
            seen.is_some(),
            "read {round} through the reader's pool missed a job committed before it"
        );
    }
}

/// An epoch for a test; 0 is no epoch.
fn epoch(value: u64) -> Epoch {
    Epoch::from_wire(value).unwrap_or_else(|| panic!("epoch {value} is none"))
}
