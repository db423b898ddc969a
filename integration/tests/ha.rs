//! Two coordinators sharing a MariaDB store (DESIGN §13): one leads under a lease, the other
//! serves reads and forwards changes to it; the follower takes over from a killed leader, and a
//! leader frozen past its lease finds its term over when it wakes.

use std::time::Duration;

use qserv_integration::ha::{
    TTL, assert_slow_script_ran_once, leader_of, password_file, seen_tokens, slow_worker_upgrade,
    store_args, store_server, wait_leader, wait_migrating,
};
use qserv_integration::{Cluster, CoordinatorProcess, wait_for};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn a_follower_serves_reads_forwards_changes_and_takes_over_from_a_lost_leader() {
    let server = store_server("pw");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let password = password_file(dir.path(), "pw");

    let mut cluster = Cluster::installed("dr1", 1, &store_args(server.port(), &password, "a"));
    let b = CoordinatorProcess::start(
        &dir.path().join("b"),
        &store_args(server.port(), &password, "b"),
    );

    // b follows: it reads the inventory and mode from the store and names the leader.
    let status = wait_for("b sees both coordinators", LIMIT, || {
        let s = b.status();
        (s["coordinators"].as_array().map(Vec::len) == Some(2) && s["mode"] == "maintenance")
            .then_some(s)
    });
    assert_eq!(leader_of(&status).as_deref(), Some("a"));
    assert_eq!(status["answered_by"], "b");
    let token = status["fencing_token"].as_u64().unwrap_or(0);
    assert!(token >= 1, "{status}");
    assert!(seen_tokens(&cluster).iter().all(|t| *t == token));
    let table = b.cli(&["status"]);
    assert!(table.stdout.contains("a (leader)"), "{}", table.stdout);

    // A change sent to b runs on a, and the reply says so; a's audit names both.
    let up = b.cli(&["up"]);
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    assert!(up.stdout.contains("by coordinator a"), "{}", up.stdout);
    assert_eq!(b.status()["mode"], "normal");
    let audit = cluster.coordinator.cli(&["-o", "json", "audit"]);
    assert!(audit.stdout.contains("via b"), "{}", audit.stdout);

    // a dies: b takes the lease under a new token, tells every agent, and runs changes. A change
    // sent at once finds b still following a leader it cannot reach; nothing was applied, so
    // the CLI sends it again until b leads.
    cluster.coordinator.kill();
    let down = b.cli(&["down"]);
    assert_eq!(down.code, 0, "{}\n{}", down.stdout, down.stderr);
    assert!(down.stdout.contains("by coordinator b"), "{}", down.stdout);
    assert!(
        down.stderr.contains("sending the change again"),
        "the first answer was a refusal that applied nothing: {}",
        down.stderr
    );
    assert_eq!(b.status()["mode"], "maintenance");
    let status = wait_leader(&b, "b");
    let taken = status["fencing_token"].as_u64().unwrap_or(0);
    assert!(taken > token, "{status}");
    wait_for("every agent holds b's token", LIMIT, || {
        seen_tokens(&cluster)
            .iter()
            .all(|t| *t == taken)
            .then_some(())
    });

    // a comes back as a follower; b frozen past its lease loses it to a, and on waking finds
    // its term over: it refuses changes and the agents hold a's newer token.
    cluster.coordinator.restart();
    wait_leader(&cluster.coordinator, "b");
    b.pause();
    let status = wait_leader(&cluster.coordinator, "a");
    let third = status["fencing_token"].as_u64().unwrap_or(0);
    assert!(third > taken, "{status}");
    wait_for("every agent holds a's token", LIMIT, || {
        seen_tokens(&cluster)
            .iter()
            .all(|t| *t == third)
            .then_some(())
    });
    b.resume();
    wait_leader(&b, "a");
    let up = b.cli(&["up"]);
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    assert!(
        up.stdout.contains("by coordinator a"),
        "the woken b runs nothing itself: {}",
        up.stdout
    );
    assert_eq!(cluster.coordinator.status()["mode"], "normal");
    assert!(seen_tokens(&cluster).iter().all(|t| *t == third));
}

#[test]
fn a_leader_killed_mid_upgrade_leaves_the_job_to_the_follower_and_no_script_runs_twice() {
    let server = store_server("pw");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let password = password_file(dir.path(), "pw");

    let workers = 8;
    let mut cluster =
        Cluster::installed("dr1", workers, &store_args(server.port(), &password, "a"));
    // Each worker takes a few seconds over its script: the leader dies in the middle of it.
    let migrations = slow_worker_upgrade(3);
    cluster.use_migrations(&migrations);
    let mut b_args = store_args(server.port(), &password, "b");
    b_args.push(qserv_integration::migrations::arg(&migrations));
    let b = CoordinatorProcess::start(&dir.path().join("b"), &b_args);
    wait_leader(&b, "a");

    let both = format!("{},{}", cluster.coordinator.url(), b.url());
    let follower = {
        let both = both.clone();
        std::thread::spawn(move || qserv_integration::run_cli(&both, &["upgrade", "apply"]))
    };
    wait_migrating(&b);
    cluster.coordinator.kill();

    // b answers reads throughout the takeover.
    let mut failed_reads = 0;
    let status = wait_for("b leading", LIMIT, || {
        let out = b.cli(&["-o", "json", "status"]);
        if out.code != 0 {
            failed_reads += 1;
            return None;
        }
        let s = out.json();
        (leader_of(&s).as_deref() == Some("b")).then_some(s)
    });
    assert_eq!(failed_reads, 0, "reads failed during the takeover");
    assert!(
        status["fencing_token"].as_u64().unwrap_or(0) >= 2,
        "{status}"
    );

    let out = follower
        .join()
        .unwrap_or_else(|_| panic!("the CLI thread panicked"));
    assert_eq!(
        out.code, 0,
        "the CLI followed the job to b:\n{}\n{}",
        out.stdout, out.stderr
    );
    let status = b.status();
    for node in status["nodes"].as_array().into_iter().flatten() {
        if node["role"] == "worker" {
            assert_eq!(node["schema"][0]["version"], 2, "{node}");
            assert_eq!(node["schema"][0]["dirty"], false, "{node}");
        }
    }
    assert_slow_script_ran_once(&cluster, workers);
    let jobs = b.cli(&["-o", "json", "jobs", "list"]);
    assert!(jobs.stdout.contains("succeeded"), "{}", jobs.stdout);
}

#[test]
fn over_tls_a_follower_forwards_an_operators_change_and_refuses_a_viewers() {
    let server = store_server("pw");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let password = password_file(dir.path(), "pw");
    let pki = dir.path().join("pki");
    let out = qserv_integration::run_cli(
        "http://127.0.0.1:1",
        &[
            "certs",
            "init",
            &format!("--dir={}", pki.display()),
            "--coordinator=127.0.0.1,localhost",
            "--agent=czar-0=127.0.0.1,localhost",
            "--agent=repl-0=127.0.0.1,localhost",
            "--agent=worker-1=127.0.0.1,localhost",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let names = Cluster::standard_nodes(1);
    let setup: Vec<qserv_integration::NodeSetup<'_>> = names
        .iter()
        .map(|(name, role)| qserv_integration::NodeSetup { name, role })
        .collect();
    let cluster = Cluster::start_secure_with(
        "dr1",
        &setup,
        &pki,
        &store_args(server.port(), &password, "a"),
    );
    cluster.wait_ready();
    let install = cluster.coordinator.cli(&["install"]);
    assert_eq!(install.code, 0, "{}", install.stderr);

    let tls = |file: &str, flag: &str| format!("--{flag}={}", pki.join(file).display());
    let mut b_args = vec![
        tls("coordinator.pem", "tls-cert"),
        tls("coordinator.key", "tls-key"),
        tls("ca.pem", "tls-ca"),
    ];
    b_args.extend(store_args(server.port(), &password, "b"));
    let mut b = CoordinatorProcess::start(&dir.path().join("b"), &b_args);
    b.client_args = cluster.coordinator.client_args.clone();
    wait_leader(&b, "a");

    let viewer: Vec<String> = vec![
        tls("viewer.pem", "tls-cert"),
        tls("viewer.key", "tls-key"),
        tls("ca.pem", "tls-ca"),
    ];
    let mut as_viewer: Vec<&str> = viewer.iter().map(String::as_str).collect();
    as_viewer.push("up");
    let refused = qserv_integration::run_cli(&b.url(), &as_viewer);
    assert_eq!(refused.code, 3, "{}\n{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("permission denied"),
        "{}",
        refused.stderr
    );

    let up = b.cli(&["up"]);
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    assert!(up.stdout.contains("by coordinator a"), "{}", up.stdout);
    let audit = cluster.coordinator.cli(&["-o", "json", "audit"]);
    assert!(audit.stdout.contains("operator via b"), "{}", audit.stdout);
    assert_eq!(cluster.coordinator.status()["mode"], "normal");
}

#[test]
fn coordinators_on_galera_carry_on_when_a_store_node_dies() {
    let mut galera = qserv_integration::Galera::start(3);
    qserv_integration::ha::store_account(&galera.nodes[0], "pw");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let password = password_file(dir.path(), "pw");
    let args = |id: &str| {
        let mut args: Vec<String> = galera
            .urls("coordinator", "qserv_store")
            .into_iter()
            .map(|url| format!("--store={url}"))
            .collect();
        args.push(format!("--store-password-file={}", password.display()));
        args.push(format!("--id={id}"));
        args.push(TTL.to_owned());
        args
    };
    let cluster = Cluster::installed("dr1", 1, &args("a"));
    let b = CoordinatorProcess::start(&dir.path().join("b"), &args("b"));
    wait_leader(&b, "a");

    // The store node both use first dies; they move to the others and the lease holds.
    galera.nodes[0].kill();
    let up = b.cli(&["up"]);
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    // Each coordinator reads the change from the surviving store nodes (a follower within a
    // moment); whichever leads, exactly one of them does, and no job is left behind.
    for coordinator in [&cluster.coordinator, &b] {
        wait_for("normal, seen by both coordinators", LIMIT, || {
            let status = coordinator.status();
            (status["mode"] == "normal" && status["active_job"].is_null()).then_some(())
        });
    }
    let leaders: Vec<Option<String>> = [&cluster.coordinator, &b]
        .iter()
        .map(|c| leader_of(&c.status()))
        .collect();
    assert!(
        leaders[0].is_some() && leaders[0] == leaders[1],
        "{leaders:?}"
    );
    let left = galera.nodes[1].execute("SELECT mode FROM qserv_store.instance");
    assert_eq!(left.trim(), "normal", "the surviving nodes hold the change");
    galera.rejoin(0);
    let back = galera.nodes[0].execute("SELECT mode FROM qserv_store.instance");
    assert_eq!(back.trim(), "normal", "the node caught up when it rejoined");
}
