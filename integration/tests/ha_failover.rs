//! The CLI across coordinators that freeze, die or lose the lease: it uses the address that
//! answers, sends a change again while no leader can take it, follows a job to its end through
//! a coordinator that lost the lease, and names a lost coordinator as unreachable (exit 5).

use std::time::{Duration, Instant};

use qserv_integration::ha::{
    leader_of, password_file, slow_worker_upgrade, store_args, store_server, wait_leader,
    wait_migrating,
};
use qserv_integration::partition::Link;
use qserv_integration::{Cluster, CoordinatorProcess, run_cli_within, wait_for};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn with_the_first_address_frozen_the_cli_uses_the_second_and_changes_wait_for_a_leader() {
    let server = store_server("pw");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let password = password_file(dir.path(), "pw");
    let cluster = Cluster::installed("dr1", 1, &store_args(server.port(), &password, "a"));
    let b = CoordinatorProcess::start(
        &dir.path().join("b"),
        &store_args(server.port(), &password, "b"),
    );
    wait_leader(&b, "a");
    let both = format!("{},{}", cluster.coordinator.url(), b.url());

    cluster.coordinator.pause();

    // b alone, a frozen: b cannot forward the change, says so as between leaders, and the CLI
    // sends it again until b leads.
    let up = run_cli_within(&b.url(), &["up"], LIMIT);
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    assert!(up.stdout.contains("by coordinator b"), "{}", up.stdout);
    assert!(
        up.stderr.contains("sending the change again"),
        "{}",
        up.stderr
    );

    let started = Instant::now();
    let status = run_cli_within(&both, &["-o", "json", "status"], LIMIT);
    assert_eq!(status.code, 0, "b answers a read: {}", status.stderr);
    assert_eq!(status.json()["answered_by"], "b");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a frozen a holds nothing: {:?}",
        started.elapsed()
    );

    // Both addresses, the first frozen: the change goes to b at once.
    let down = run_cli_within(&both, &["down"], LIMIT);
    assert_eq!(down.code, 0, "{}\n{}", down.stdout, down.stderr);
    assert_eq!(b.status()["mode"], "maintenance");

    cluster.coordinator.resume();
    wait_leader(&cluster.coordinator, "b");
}

#[test]
fn the_cli_follows_a_job_to_its_end_through_a_coordinator_that_lost_the_lease() {
    let server = store_server("pw");
    let link = Link::to(server.port());
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let password = password_file(dir.path(), "pw");
    let mut cluster = Cluster::installed("dr1", 2, &store_args(link.port(), &password, "a"));
    let migrations = slow_worker_upgrade(2);
    cluster.use_migrations(&migrations);
    let mut b_args = store_args(server.port(), &password, "b");
    b_args.push(qserv_integration::migrations::arg(&migrations));
    let b = CoordinatorProcess::start(&dir.path().join("b"), &b_args);
    wait_leader(&b, "a");

    // The CLI asks a alone and follows the upgrade there; a loses the store, b the job.
    let a_url = cluster.coordinator.url();
    let operator = std::thread::spawn(move || {
        run_cli_within(&a_url, &["upgrade", "apply"], Duration::from_secs(120))
    });
    wait_migrating(&b);
    link.cut_at_next_commit();
    wait_for("a asking to commit", LIMIT, || link.is_cut().then_some(()));
    wait_leader(&b, "b");
    wait_for("b finishing the upgrade", LIMIT, || {
        b.status()["active_job"].is_null().then_some(())
    });
    link.heal();

    let out = operator
        .join()
        .unwrap_or_else(|_| panic!("the CLI thread panicked"));
    assert_eq!(
        out.code, 0,
        "a, following now, reads the job's end from the store:\n{}\n{}",
        out.stdout, out.stderr
    );
    assert!(out.stdout.contains("succeeded"), "{}", out.stdout);
    // a learns who leads at its next claim after the link healed, which may come after the
    // job's end it read.
    wait_for("a showing b as the leader", LIMIT, || {
        (leader_of(&cluster.coordinator.status()).as_deref() == Some("b")).then_some(())
    });
}

#[test]
fn losing_the_only_coordinator_while_following_is_exit_5() {
    let mut cluster = Cluster::installed("dr1", 1, &[]);
    let migrations = slow_worker_upgrade(5);
    cluster.use_migrations(&migrations);
    let url = cluster.coordinator.url();
    let operator = std::thread::spawn(move || run_cli_within(&url, &["upgrade", "apply"], LIMIT));
    wait_migrating(&cluster.coordinator);
    cluster.coordinator.kill();
    let out = operator
        .join()
        .unwrap_or_else(|_| panic!("the CLI thread panicked"));
    assert_eq!(out.code, 5, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("cannot reach the coordinator")
            || out.stderr.contains("lost the coordinator"),
        "{}",
        out.stderr
    );
}
