//! install → up → down → delete on real databases and processes, and the refusals around them.

use std::time::Duration;

use qserv_integration::cluster::{SECRET_QSMASTER, SECRET_REPL};
use qserv_integration::{Cluster, THREE_NODES};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn install_up_down_delete() {
    let cluster = Cluster::start("dr1", &THREE_NODES);
    let c = &cluster.coordinator;
    cluster.wait_ready();

    // Nothing is allowed before install.
    let out = c.cli(&["up"]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("instance is uninstalled") && out.stderr.contains("qserv install"),
        "{}",
        out.stderr
    );

    let out = c.cli(&["install"]);
    assert_eq!(
        out.code, 0,
        "install failed:\n{}\n{}",
        out.stdout, out.stderr
    );
    let status = c.status();
    assert_eq!(status["mode"], "maintenance");
    let epoch_after_install = status["epoch"].as_u64().unwrap_or_default();
    assert!(
        epoch_after_install >= 2,
        "installing and maintenance each take an epoch"
    );

    // Schemas at target, worker registered under its harvested id, accounts usable.
    let worker = c.wait_node("worker-1", "registered", LIMIT, |n| n["registered"] == true);
    let id = worker["worker_id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(
        worker["schema"][0]["version"],
        worker["schema"][0]["target"]
    );
    let registry = cluster
        .db("repl-0")
        .execute("SELECT name, is_enabled, is_read_only FROM qservReplica.config_worker");
    assert_eq!(registry, format!("{id}\t1\t0"));
    assert_eq!(
        cluster.db("czar-0").execute_as(
            "qsmaster",
            SECRET_QSMASTER,
            "SELECT value FROM qservMeta.QMetadata WHERE metakey = 'version'"
        ),
        Ok("1".to_owned())
    );
    assert!(
        cluster
            .db("repl-0")
            .execute_as(
                "qsreplica",
                SECRET_REPL,
                "SELECT COUNT(*) FROM qservReplica.config_worker"
            )
            .is_ok()
    );
    assert!(
        cluster
            .db("worker-1")
            .execute_as("qsmaster", "wrong", "SELECT 1")
            .is_err(),
        "a wrong password must not log in"
    );

    // A second install is refused and names the mode.
    let out = c.cli(&["install"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("already installed"), "{}", out.stderr);

    // up → normal; the agents learn the epoch.
    let out = c.cli(&["up", "--timeout", "60s"]);
    assert_eq!(out.code, 0, "up failed:\n{}\n{}", out.stdout, out.stderr);
    let status = c.status();
    assert_eq!(status["mode"], "normal");
    let epoch = status["epoch"].as_u64().unwrap_or_default();
    assert_eq!(epoch, epoch_after_install + 1);
    for agent in &cluster.agents {
        c.wait_node(&agent.name, "agent learned normal", LIMIT, |n| {
            n["agent_epoch"] == epoch
        });
    }
    let out = c.cli(&["up"]);
    assert_eq!(out.code, 0, "up in normal is a no-op: {}", out.stderr);
    assert!(out.stdout.contains("nothing to do"), "{}", out.stdout);

    // delete is refused in normal, and with the wrong name.
    let out = c.cli(&["delete", "--confirm", "dr1"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("run 'qserv down' first"),
        "{}",
        out.stderr
    );

    let out = c.cli(&["down"]);
    assert_eq!(out.code, 0, "down failed:\n{}\n{}", out.stdout, out.stderr);
    assert_eq!(c.status()["mode"], "maintenance");

    let out = c.cli(&["delete", "--confirm", "dr2"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("does not match the instance name 'dr1'"),
        "{}",
        out.stderr
    );
    assert_eq!(
        cluster
            .db("czar-0")
            .execute("SHOW DATABASES LIKE 'qservMeta'"),
        "qservMeta",
        "nothing dropped"
    );

    let out = c.cli(&["delete", "--confirm", "dr1"]);
    assert_eq!(
        out.code, 0,
        "delete failed:\n{}\n{}",
        out.stdout, out.stderr
    );
    let status = c.status();
    assert_eq!(status["mode"], "uninstalled");
    assert_eq!(status["instance"], Value::Null);
    assert_eq!(status["nodes"].as_array().map(Vec::len), Some(0));
    assert_eq!(
        cluster.db("czar-0").execute("SHOW DATABASES LIKE 'qserv%'"),
        ""
    );
    assert_eq!(
        cluster
            .db("worker-1")
            .execute("SELECT COUNT(*) FROM mysql.user WHERE User = 'qsmaster'"),
        "0"
    );
    assert_eq!(
        cluster
            .db("repl-0")
            .execute("SELECT COUNT(*) FROM mysql.user WHERE User = 'qsreplica'"),
        "0"
    );

    // The job history stays.
    let jobs = c.cli(&["-o", "json", "jobs", "list"]).json();
    let kinds: Vec<&str> = jobs["jobs"]
        .as_array()
        .map(|j| j.iter().filter_map(|j| j["kind"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(kinds, ["delete", "down", "up", "install"]);
}

#[test]
fn install_refuses_existing_databases_and_creates_nothing() {
    let cluster = Cluster::start("dr1", &THREE_NODES);
    cluster.wait_ready();
    cluster
        .db("worker-1")
        .execute("CREATE DATABASE qservw_worker");

    let out = cluster.coordinator.cli(&["install"]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("qservw_worker on worker-1"),
        "{}",
        out.stderr
    );
    assert_eq!(cluster.coordinator.status()["mode"], "uninstalled");
    for node in ["czar-0", "repl-0"] {
        assert_eq!(
            cluster.db(node).execute("SHOW DATABASES LIKE 'qserv%'"),
            "",
            "{node} untouched"
        );
        assert_eq!(
            cluster
                .db(node)
                .execute("SELECT COUNT(*) FROM mysql.user WHERE User IN ('qsmaster', 'qsreplica')"),
            "0",
            "{node} has no accounts"
        );
    }
    let job = cluster
        .coordinator
        .cli(&["-o", "json", "jobs", "list"])
        .json();
    assert_eq!(job["jobs"][0]["state"], "failed");
    assert_eq!(job["jobs"][0]["refused"], true);
}

#[test]
fn a_delete_that_stops_half_way_is_shown_and_finished_by_running_it_again() {
    let mut cluster = Cluster::installed("dr1", 1, &[]);
    cluster.agent_mut("worker-1").kill();
    let out = cluster.coordinator.cli(&["delete", "--confirm", "dr1"]);
    assert_ne!(out.code, 0, "worker-1 cannot be purged: {}", out.stdout);

    // The czar is purged, the store still holds the instance: the status says what happened
    // and what to do, instead of showing two agreeing states at one epoch.
    let status = cluster.coordinator.status();
    assert_eq!(status["mode"], "maintenance");
    assert_eq!(status["health"], "degraded");
    let czar = status["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["name"] == "czar-0"))
        .cloned()
        .unwrap_or_default();
    let problem = czar["epoch_problem"].as_str().unwrap_or_default();
    assert!(
        problem.contains("delete that did not finish")
            && problem.contains("qserv delete --confirm dr1"),
        "{czar}"
    );

    cluster.agent_mut("worker-1").restart();
    cluster
        .coordinator
        .wait_node("worker-1", "reachable again", LIMIT, |n| {
            n["agent_reachable"] == true
        });
    let out = cluster.coordinator.cli(&["delete", "--confirm", "dr1"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(cluster.coordinator.status()["mode"], "uninstalled");
    assert_eq!(
        cluster
            .db("worker-1")
            .execute("SHOW DATABASES LIKE 'qserv%'"),
        ""
    );
}
