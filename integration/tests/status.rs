//! The agent's live view of its database, as the operator sees it through `qserv status`.

use std::time::{Duration, Instant};

use qserv_integration::{Cluster, NodeSetup, THREE_NODES, free_port, run_cli};
use serde_json::{Value, json};

/// Generous: these tests check behaviour; detection speed is measured by the benchmark.
const LIMIT: Duration = Duration::from_secs(15);

fn schema_version(node: &Value) -> Value {
    node["schema"][0]["version"].clone()
}

#[test]
fn worker_reports_id_and_smig_versions() {
    let cluster = Cluster::start(
        "dr1",
        &[NodeSetup {
            name: "worker-1",
            role: "worker",
        }],
    );
    let c = &cluster.coordinator;
    let db = cluster.db("worker-1");

    // No qservw_worker database: uninitialized.
    let node = c.wait_node("worker-1", "db ready", LIMIT, |n| n["db_ready"] == true);
    assert_eq!(schema_version(&node), Value::Null);
    assert_eq!(node["schema"][0]["database"], "qservw_worker");
    assert_eq!(node["schema"][0]["target"], json!(1));
    assert_eq!(node["worker_id"], Value::Null);
    assert_eq!(node["registered"], json!(false));

    // A database without QMetadata is version 0.
    db.execute("CREATE DATABASE qservw_worker");
    c.wait_node("worker-1", "version 0", LIMIT, |n| {
        schema_version(n) == json!(0)
    });

    // QMetadata without a version row is uninitialized again; with one, its number.
    db.execute("CREATE TABLE qservw_worker.QMetadata (metakey CHAR(64) PRIMARY KEY, value TEXT)");
    c.wait_node("worker-1", "version null", LIMIT, |n| {
        schema_version(n) == Value::Null
    });
    db.execute("INSERT INTO qservw_worker.QMetadata VALUES ('version', '3')");
    c.wait_node("worker-1", "version 3", LIMIT, |n| {
        schema_version(n) == json!(3)
    });

    db.execute("CREATE TABLE qservw_worker.Id (id VARCHAR(64) NOT NULL, created TIMESTAMP DEFAULT CURRENT_TIMESTAMP)");
    db.execute("INSERT INTO qservw_worker.Id (id) VALUES ('worker-007')");
    let node = c.wait_node("worker-1", "worker id", LIMIT, |n| {
        n["worker_id"] == "worker-007"
    });
    assert_eq!(node["agent_reachable"], true);
    assert_eq!(node["schema"][0]["dirty"], false);

    // The database went away entirely: uninitialized, and no id any more.
    db.execute("DROP DATABASE qservw_worker");
    let node = c.wait_node("worker-1", "database gone", LIMIT, |n| {
        schema_version(n) == Value::Null
    });
    assert_eq!(node["worker_id"], Value::Null);
}

#[test]
fn status_lists_every_node_and_follows_failures() {
    let mut cluster = Cluster::start("dr1", &THREE_NODES);
    let status = cluster.coordinator.status();
    assert_eq!(status["instance"], "dr1");
    assert_eq!(status["mode"], "uninstalled");
    assert_eq!(status["active_job"], Value::Null);
    let names: Vec<&str> = status["nodes"]
        .as_array()
        .map(|nodes| nodes.iter().filter_map(|n| n["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["czar-0", "worker-1", "repl-0"]);
    let roles: Vec<&str> = status["nodes"]
        .as_array()
        .map(|nodes| nodes.iter().filter_map(|n| n["role"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(roles, ["czar", "worker", "repl"]);

    cluster.wait_ready();
    let status = cluster.coordinator.status();
    assert_eq!(status["health"], "ok");
    let czar = &status["nodes"][0];
    assert_eq!(czar["schema"][0]["module"], "czar");
    assert_eq!(czar["schema"][0]["database"], "qservMeta");
    assert_eq!(
        czar["registered"],
        Value::Null,
        "only workers are registered"
    );
    assert_eq!(czar["agent_version"], env!("CARGO_PKG_VERSION"));
    assert!(
        czar["db_server_version"]
            .as_str()
            .is_some_and(|v| v.contains("MariaDB"))
    );

    // A killed database: not ready, instance degraded; back when restarted.
    cluster.db_mut("worker-1").kill();
    let started = Instant::now();
    let node = cluster
        .coordinator
        .wait_node("worker-1", "db not ready", LIMIT, |n| {
            n["db_ready"] == false
        });
    eprintln!("killed database noticed after {:?}", started.elapsed());
    assert_eq!(
        node["agent_reachable"], true,
        "the agent itself is still up"
    );
    assert!(node["db_error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(cluster.coordinator.status()["health"], "degraded");
    let (code, body) = cluster.agents[1].http("/readyz").unwrap_or_default();
    assert_eq!(code, 503, "readyz while the database is down: {body}");
    assert_eq!(
        body, "not ready: database unreachable\n",
        "a short reason, never the server's text"
    );

    cluster.db_mut("worker-1").restart();
    cluster
        .coordinator
        .wait_node("worker-1", "db ready again", LIMIT, |n| {
            n["db_ready"] == true
        });
    let (code, _) = cluster.agents[1].http("/readyz").unwrap_or_default();
    assert_eq!(code, 200);

    // A killed agent: unreachable; back when restarted.
    cluster.agent_mut("czar-0").kill();
    let started = Instant::now();
    let node = cluster
        .coordinator
        .wait_node("czar-0", "agent unreachable", LIMIT, |n| {
            n["agent_reachable"] == false
        });
    eprintln!("killed agent noticed after {:?}", started.elapsed());
    assert_eq!(
        node["db_ready"], false,
        "readiness cannot be vouched for without the agent"
    );
    assert_eq!(
        node["schema"][0]["module"], "czar",
        "last known schema is kept"
    );
    cluster.agent_mut("czar-0").restart();
    cluster
        .coordinator
        .wait_node("czar-0", "agent back", LIMIT, |n| {
            n["agent_reachable"] == true && n["db_ready"] == true
        });
    assert_eq!(cluster.coordinator.status()["health"], "ok");
}

#[test]
fn frozen_agent_is_noticed_by_keepalive() {
    let cluster = Cluster::start(
        "dr1",
        &[NodeSetup {
            name: "worker-1",
            role: "worker",
        }],
    );
    let c = &cluster.coordinator;
    c.wait_node("worker-1", "ready", LIMIT, |n| n["agent_reachable"] == true);
    // A frozen process sends neither FIN nor RST: only keepalive pings can tell.
    cluster.agents[0].pause();
    let t = Instant::now();
    let node = c.wait_node("worker-1", "agent unreachable", LIMIT, |n| {
        n["agent_reachable"] == false
    });
    assert!(node["agent_error"].as_str().is_some_and(|e| !e.is_empty()));
    eprintln!("frozen agent noticed after {:?}", t.elapsed());
    cluster.agents[0].resume();
    let t = Instant::now();
    c.wait_node("worker-1", "agent back", LIMIT, |n| {
        n["agent_reachable"] == true
    });
    eprintln!("resumed agent back after {:?}", t.elapsed());
}

#[test]
fn status_table_is_readable() {
    let cluster = Cluster::start(
        "dr1",
        &[NodeSetup {
            name: "worker-1",
            role: "worker",
        }],
    );
    cluster
        .coordinator
        .wait_node("worker-1", "ready", LIMIT, |n| n["db_ready"] == true);
    let out = cluster.coordinator.cli(&["status"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("instance dr1  mode uninstalled"),
        "{}",
        out.stdout
    );
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("worker-1"))
        .unwrap_or_default();
    assert!(
        row.contains("worker") && row.contains("up") && row.contains("ready"),
        "{row}"
    );
    assert!(row.contains("worker none/1"), "{row}");
    assert!(
        row.contains("  none  "),
        "no service controller reads none, not unknown: {row}"
    );
}

#[test]
fn control_characters_in_a_worker_id_never_reach_the_terminal() {
    let cluster = Cluster::installed("dr1", 1, &[]);
    // Qserv's service account can write its own Id table; an escape sequence there must not
    // paint the operator's terminal.
    cluster.db("worker-1").execute(
        "UPDATE qservw_worker.Id SET id = CONCAT('w', CHAR(27), '[31mred', CHAR(7), CHAR(10), 'x')",
    );
    cluster
        .coordinator
        .wait_node("worker-1", "the new id", LIMIT, |n| {
            n["worker_id"]
                .as_str()
                .is_some_and(|id| id.contains('\u{1b}'))
        });
    for args in [&["status"][..], &["workers", "list"][..]] {
        let out = cluster.coordinator.cli(args);
        assert!(
            !out.stdout.contains('\u{1b}') && !out.stdout.contains('\u{7}'),
            "{args:?}: {:?}",
            out.stdout
        );
        assert!(
            out.stdout.contains("w\u{fffd}[31mred"),
            "{args:?} shows the id, defanged: {:?}",
            out.stdout
        );
    }
}

#[test]
fn unreachable_coordinator_exits_5_naming_the_address() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let out = run_cli(&url, &["status"]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(
        out.stderr.contains(&url),
        "the message names the address: {}",
        out.stderr
    );

    let out = run_cli(&url, &["-o", "json", "status"]);
    assert_eq!(out.code, 5);
    assert_eq!(out.json()["error"]["code"], 5);
}

#[test]
fn version_and_completions_work_without_a_coordinator() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let out = run_cli(&url, &["-o", "json", "version"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc = out.json();
    assert_eq!(doc["client"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        doc["coordinator"]["error"]
            .as_str()
            .is_some_and(|e| e.contains(&url))
    );

    let out = run_cli(&url, &["completions", "bash"]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("complete") && out.stdout.contains("status"));
}
