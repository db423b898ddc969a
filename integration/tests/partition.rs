//! A leader cut off from its store while it runs a job (DESIGN §13): it is cut at the worst
//! moment, asking to commit a transaction that holds the lease row. The server must end that
//! silent transaction, so that the follower can take the lease over, finish the job without
//! running any script twice, and keep the operator's CLI following it; the old leader, once
//! the network heals, follows.

use std::time::{Duration, Instant};

use qserv_integration::ha::{
    assert_slow_script_ran_once, password_file, seen_tokens, slow_worker_upgrade, store_args,
    store_server, wait_leader, wait_migrating,
};
use qserv_integration::partition::Link;
use qserv_integration::{Cluster, CoordinatorProcess, wait_for};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn a_leader_cut_off_from_its_store_mid_transaction_hands_its_job_to_the_follower() {
    let server = store_server("pw");
    let link = Link::to(server.port());
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let password = password_file(dir.path(), "pw");

    let workers = 4;
    // a reaches the store through the link; b directly.
    let mut cluster = Cluster::installed("dr1", workers, &store_args(link.port(), &password, "a"));
    let migrations = slow_worker_upgrade(2);
    cluster.use_migrations(&migrations);
    let mut b_args = store_args(server.port(), &password, "b");
    b_args.push(qserv_integration::migrations::arg(&migrations));
    let b = CoordinatorProcess::start(&dir.path().join("b"), &b_args);
    let before = wait_leader(&b, "a")["fencing_token"].as_u64().unwrap_or(0);

    // The operator's CLI asks b, which forwards the upgrade to a and follows it from the store.
    let both = format!("{},{}", b.url(), cluster.coordinator.url());
    let operator =
        std::thread::spawn(move || qserv_integration::run_cli(&both, &["upgrade", "apply"]));
    wait_migrating(&b);
    link.cut_at_next_commit();
    wait_for("a asking to commit", LIMIT, || link.is_cut().then_some(()));
    let cut = Instant::now();

    let status = wait_leader(&b, "b");
    eprintln!("b leads {:?} after a was cut off", cut.elapsed());
    let token = status["fencing_token"].as_u64().unwrap_or(0);
    assert!(token > before, "a new term: {before} then {token}");

    let out = operator
        .join()
        .unwrap_or_else(|_| panic!("the CLI thread panicked"));
    assert_eq!(
        out.code, 0,
        "the CLI followed the job to its end under b:\n{}\n{}",
        out.stdout, out.stderr
    );
    assert_slow_script_ran_once(&cluster, workers);
    assert!(link.is_cut(), "the job finished while a was still cut off");

    // Healed, a finds b leading and follows; every agent holds b's token.
    link.heal();
    let seen_by_a = wait_leader(&cluster.coordinator, "b");
    assert_eq!(seen_by_a["fencing_token"].as_u64(), Some(token));
    assert!(
        seen_tokens(&cluster).iter().all(|t| *t == token),
        "{:?}",
        seen_tokens(&cluster)
    );
    let jobs = b.cli(&["-o", "json", "jobs", "list"]);
    assert!(jobs.stdout.contains("succeeded"), "{}", jobs.stdout);
}
