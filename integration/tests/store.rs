//! The coordinator with its store on MariaDB (DESIGN §13): an instance installed through it
//! lives in that database, and a restarted coordinator finds it there.

use qserv_integration::ha::store_server;
use qserv_integration::{Cluster, CoordinatorProcess};

#[test]
fn an_instance_installed_through_a_mariadb_store_survives_a_restart() {
    let password = "s3cret-'store'";
    let server = store_server(password);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let password_file = dir.path().join("store-password");
    std::fs::write(&password_file, format!("{password}\n")).unwrap_or_else(|e| panic!("{e}"));
    let args = vec![
        format!(
            "--store=mysql://coordinator@127.0.0.1:{}/qserv_store",
            server.port()
        ),
        format!("--store-password-file={}", password_file.display()),
    ];
    let mut cluster = Cluster::installed("dr1", 1, &args);

    let mode = server.execute("SELECT name, mode FROM qserv_store.instance");
    assert_eq!(mode.trim(), "dr1\tmaintenance");
    let jobs = server.execute("SELECT kind, state FROM qserv_store.jobs");
    assert!(jobs.contains("install\tsucceeded"), "{jobs}");
    let nodes = server.execute("SELECT COUNT(*) FROM qserv_store.nodes");
    assert_eq!(nodes.trim(), "3");

    cluster.coordinator.restart();
    let status = cluster.coordinator.status();
    assert_eq!(status["mode"], "maintenance");
    assert_eq!(status["instance"], "dr1");
    let listed = cluster.coordinator.cli(&["-o", "json", "jobs", "list"]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(listed.stdout.contains("\"install\""), "{}", listed.stdout);
    let log = cluster.coordinator.log_text();
    assert!(!log.contains("s3cret"), "the password reached the log");
}

#[test]
fn a_store_the_coordinator_cannot_use_stops_it_with_a_clear_reason() {
    let server = store_server("right");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let url = format!(
        "--store=mysql://coordinator@127.0.0.1:{}/qserv_store",
        server.port()
    );

    // A password in the URL is refused before anything connects.
    let inline = format!(
        "--store=mysql://coordinator:right@127.0.0.1:{}/qserv_store",
        server.port()
    );
    let Err((status, log)) = CoordinatorProcess::try_start(&dir.path().join("a"), &[inline]) else {
        panic!("a password in the store URL was accepted");
    };
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(log.contains("--store-password-file"), "{log}");
    assert!(!log.contains(":right@"), "{log}");

    // A wrong password: the reason names the store, not the password.
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "wrong").unwrap_or_else(|e| panic!("{e}"));
    let Err((status, log)) = CoordinatorProcess::try_start(
        &dir.path().join("b"),
        &[url, format!("--store-password-file={}", wrong.display())],
    ) else {
        panic!("a wrong store password was accepted");
    };
    assert_ne!(status.code(), Some(0));
    assert!(
        log.contains("cannot reach the store at mysql://coordinator@127.0.0.1"),
        "{log}"
    );
    assert!(
        !log.contains("wrong\n") && !log.contains("'wrong'"),
        "{log}"
    );
}
