//! Worker membership, adoption of a running instance, and identity safety.

use std::time::Duration;

use qserv_integration::{Cluster, CoordinatorProcess, wait_for};

const LIMIT: Duration = Duration::from_secs(30);

fn installed(workers: usize) -> Cluster {
    Cluster::installed("dr1", workers, &[])
}

fn registry(cluster: &Cluster) -> String {
    cluster
        .db("repl-0")
        .execute("SELECT GROUP_CONCAT(name ORDER BY name) FROM qservReplica.config_worker")
}

fn worker_spec(cluster: &Cluster, name: &str, url: &str) -> std::path::PathBuf {
    let path = cluster.dir().join(format!("add-{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "name = \"dr1\"\n\n[[nodes]]\nname = \"{name}\"\nrole = \"worker\"\nagent = \"{url}\"\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    path
}

#[test]
fn workers_are_added_and_removed_in_maintenance_only() {
    let mut cluster = installed(1);
    let url = cluster.start_extra("worker-2", "worker");
    let spec = worker_spec(&cluster, "worker-2", &url);
    let spec = spec.to_string_lossy().into_owned();
    let c = &cluster.coordinator;
    assert_eq!(c.cli(&["up", "--timeout", "60s"]).code, 0);

    let out = c.cli(&["workers", "add", "--spec", &spec]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("allowed only in maintenance mode (instance is normal)"),
        "{}",
        out.stderr
    );
    assert_eq!(
        c.status()["nodes"].as_array().map(Vec::len),
        Some(3),
        "nothing changed"
    );

    assert_eq!(c.cli(&["down"]).code, 0);
    let out = c.cli(&["workers", "add", "--spec", &spec]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let node = c.wait_node("worker-2", "registered", LIMIT, |n| n["registered"] == true);
    let id = node["worker_id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(node["schema"][0]["version"], node["schema"][0]["target"]);
    assert!(registry(&cluster).contains(&id));
    let list = cluster
        .coordinator
        .cli(&["-o", "json", "workers", "list"])
        .json();
    assert_eq!(list["workers"].as_array().map(Vec::len), Some(2));
    assert!(
        list["workers"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|w| w["is_enabled"] == true && w["registered"] == true)
    );

    let out = cluster
        .coordinator
        .cli(&["workers", "add", "--spec", &spec]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("already in the inventory"),
        "{}",
        out.stderr
    );

    // Remove keeps the data; the id leaves the registry.
    let out = cluster.coordinator.cli(&["workers", "remove", "worker-2"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(!registry(&cluster).contains(&id));
    assert_eq!(
        cluster
            .db("worker-2")
            .execute("SELECT id FROM qservw_worker.Id"),
        id,
        "data kept"
    );
    let status = cluster.coordinator.status();
    assert!(
        status["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|n| n["name"] != "worker-2")
    );

    // Re-added with its data, it comes back under the same id; --purge drops the data.
    let out = cluster
        .coordinator
        .cli(&["workers", "add", "--spec", &spec]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    cluster
        .coordinator
        .wait_node("worker-2", "registered again", LIMIT, |n| {
            n["registered"] == true && n["worker_id"] == id.as_str()
        });
    let out = cluster
        .coordinator
        .cli(&["workers", "remove", "worker-2", "--purge"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        cluster
            .db("worker-2")
            .execute("SHOW DATABASES LIKE 'qservw_worker'"),
        ""
    );

    let out = cluster.coordinator.cli(&["workers", "remove", "worker-1"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("last worker"), "{}", out.stderr);
}

#[test]
fn a_worker_whose_identity_changed_blocks_up() {
    let cluster = installed(2);
    let c = &cluster.coordinator;
    let original =
        c.wait_node("worker-1", "id", LIMIT, |n| n["worker_id"].is_string())["worker_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();

    cluster
        .db("worker-1")
        .execute("UPDATE qservw_worker.Id SET id = 'imposter'");
    let node = c.wait_node("worker-1", "identity flagged", LIMIT, |n| {
        n["identity_problem"].is_string()
    });
    assert!(
        node["identity_problem"]
            .as_str()
            .unwrap_or_default()
            .contains(&original)
    );
    let out = c.cli(&["up"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("worker-1") && out.stderr.contains("imposter"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("worker-2"),
        "only the changed worker is named: {}",
        out.stderr
    );

    // Two workers reporting one id: both are named.
    cluster
        .db("worker-1")
        .execute(&format!("UPDATE qservw_worker.Id SET id = '{original}'"));
    cluster
        .db("worker-2")
        .execute(&format!("UPDATE qservw_worker.Id SET id = '{original}'"));
    c.wait_node("worker-1", "shared id flagged", LIMIT, |n| {
        n["identity_problem"]
            .as_str()
            .is_some_and(|p| p.contains("shares"))
    });
    let out = c.cli(&["up"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("worker-1") && out.stderr.contains("worker-2"),
        "{}",
        out.stderr
    );

    // The operator removes the worker, gives it a proper id, and adds it back.
    let url = cluster.agents[cluster.index("worker-2")].url();
    assert_eq!(
        cluster
            .coordinator
            .cli(&["workers", "remove", "worker-2"])
            .code,
        0
    );
    let spec = worker_spec(&cluster, "worker-2", &url);
    let spec = spec.to_string_lossy().into_owned();
    let out = cluster
        .coordinator
        .cli(&["workers", "add", "--spec", &spec]);
    assert_eq!(
        out.code, 3,
        "an id another worker uses is refused: {}",
        out.stderr
    );
    assert!(out.stderr.contains("already"), "{}", out.stderr);
    cluster
        .db("worker-2")
        .execute("UPDATE qservw_worker.Id SET id = 'worker-002'");
    wait_for("worker-2's new id to be seen", LIMIT, || {
        let out = cluster
            .coordinator
            .cli(&["workers", "add", "--spec", &spec]);
        (out.code == 0).then_some(())
    });
    let out = cluster.coordinator.cli(&["up", "--timeout", "60s"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
}

fn dumps(cluster: &Cluster) -> Vec<String> {
    cluster.dbs.iter().map(|db| db.dump_qserv()).collect()
}

#[test]
fn a_fresh_coordinator_adopts_a_running_instance_without_changing_it() {
    let mut cluster = installed(2);
    assert_eq!(cluster.coordinator.cli(&["up", "--timeout", "60s"]).code, 0);
    assert_eq!(cluster.coordinator.cli(&["down"]).code, 0);
    let before = dumps(&cluster);
    assert!(
        before.iter().all(|d| d.contains("CREATE DATABASE")),
        "every node has its database"
    );
    cluster.coordinator.kill();

    let spec = cluster.dir().join("spec.toml");
    let fresh = CoordinatorProcess::start(
        &cluster.dir().join("fresh"),
        &[format!("--spec={}", spec.display())],
    );
    for agent in &cluster.agents {
        fresh.wait_node(&agent.name, "seen", LIMIT, |n| n["db_ready"] == true);
    }
    let out = fresh.cli(&["install", "--adopt"]);
    assert_eq!(out.code, 0, "adopt failed:\n{}\n{}", out.stdout, out.stderr);
    let status = fresh.status();
    assert_eq!(status["mode"], "maintenance");
    for worker in ["worker-1", "worker-2"] {
        let node = fresh.wait_node(worker, "registered", LIMIT, |n| n["registered"] == true);
        assert_eq!(node["registered_id"], node["worker_id"]);
    }
    assert_eq!(
        dumps(&cluster),
        before,
        "adoption changed nothing in any Qserv database"
    );
    let out = fresh.cli(&["up", "--timeout", "60s"]);
    assert_eq!(
        out.code, 0,
        "the adopted instance comes up:\n{}\n{}",
        out.stdout, out.stderr
    );
    for agent in &cluster.agents {
        fresh.wait_node(&agent.name, "normal", LIMIT, |n| {
            n["agent_mode"] == "normal"
        });
    }
    drop(fresh);

    // An inconsistent instance: a registry row no node explains, a worker not registered.
    let worker_id = cluster
        .db("worker-1")
        .execute("SELECT id FROM qservw_worker.Id");
    cluster
        .db("repl-0")
        .execute("INSERT INTO qservReplica.config_worker VALUES ('ghost', 1, 0)");
    cluster.db("repl-0").execute(&format!(
        "DELETE FROM qservReplica.config_worker WHERE name = '{worker_id}'"
    ));
    let before = dumps(&cluster);
    let other = CoordinatorProcess::start(
        &cluster.dir().join("other"),
        &[format!("--spec={}", spec.display())],
    );
    wait_for("the registry to be read", LIMIT, || {
        let status = other.status();
        status["registry"]
            .as_array()
            .is_some_and(|r| r.iter().any(|row| row["name"] == "ghost"))
            .then_some(())
    });
    let out = other.cli(&["install", "--adopt"]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("registered worker id ghost has no node"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!(
            "worker-1: worker id {worker_id} is not registered"
        )),
        "{}",
        out.stderr
    );
    assert_eq!(other.status()["mode"], "uninstalled");
    assert_eq!(dumps(&cluster), before);
}

/// The step of job `id` that is running, if any.
fn running_step(c: &CoordinatorProcess, id: &str) -> Option<String> {
    let job = c.cli(&["-o", "json", "jobs", "show", id]).json();
    job["steps"]
        .as_array()?
        .iter()
        .find(|s| s["state"] == "running")
        .and_then(|s| s["name"].as_str().map(str::to_owned))
}

#[test]
fn a_worker_is_replaced_in_one_job_that_survives_a_coordinator_restart() {
    // The new worker's schema takes a few seconds: the coordinator dies in the middle of it.
    let migrations = qserv_integration::migrations::migrations_dir(
        true,
        &[("worker", "migrate-1-to-2.sql", "DO SLEEP(3);\n")],
    );
    let mut cluster =
        Cluster::installed("dr1", 2, &[qserv_integration::migrations::arg(&migrations)]);
    let old_id = cluster
        .coordinator
        .wait_node("worker-2", "registered", LIMIT, |n| n["registered"] == true)["worker_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let url = cluster.start_extra("worker-9", "worker");
    let spec = worker_spec(&cluster, "worker-9", &url);
    let spec = spec.to_string_lossy().into_owned();

    let refused = cluster
        .coordinator
        .cli(&["workers", "replace", "repl-0", "--spec", &spec]);
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("replaces workers only"),
        "{}",
        refused.stderr
    );

    let out = cluster.coordinator.cli(&[
        "workers", "replace", "worker-2", "--spec", &spec, "--purge", "--detach",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let id = out.stdout.trim().to_owned();
    wait_for("the new worker's schema being applied", LIMIT, || {
        (running_step(&cluster.coordinator, &id).as_deref() == Some("schemas")).then_some(())
    });
    cluster.coordinator.kill();
    // The inventory changes under the job: the coordinator comes back on the store's, as an
    // operator's systemd unit without --spec would.
    let args: Vec<String> = cluster
        .coordinator
        .args()
        .iter()
        .filter(|a| !a.starts_with("--spec="))
        .cloned()
        .collect();
    cluster.coordinator.set_args(&args);
    cluster.coordinator.restart();
    let out = cluster.coordinator.cli(&["jobs", "wait", &id]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);

    let c = &cluster.coordinator;
    let node = c.wait_node("worker-9", "registered", LIMIT, |n| n["registered"] == true);
    let new_id = node["worker_id"].as_str().unwrap_or_default().to_owned();
    let names = registry(&cluster);
    assert!(
        names.contains(&new_id) && !names.contains(&old_id),
        "the registry moved from {old_id} to {new_id}: {names}"
    );
    assert!(
        c.status()["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|n| n["name"] != "worker-2"),
        "worker-2 left the inventory"
    );
    assert_eq!(
        cluster
            .db("worker-2")
            .execute("SHOW DATABASES LIKE 'qservw_worker'"),
        "",
        "--purge dropped the old worker's data"
    );
    assert_eq!(c.status()["mode"], "maintenance");
}

#[test]
fn a_spec_that_lags_behind_added_workers_starts_and_shows_the_drift() {
    let mut cluster = installed(1);
    let url = cluster.start_extra("worker-2", "worker");
    let spec = worker_spec(&cluster, "worker-2", &url);
    let spec = spec.to_string_lossy().into_owned();
    let out = cluster
        .coordinator
        .cli(&["workers", "add", "--spec", &spec]);
    assert_eq!(out.code, 0, "{}", out.stderr);

    // The coordinator restarts with the spec it was started with, which lacks worker-2, as a
    // declarative deployment whose spec was not updated (or a crash mid `workers add`) has it.
    cluster.coordinator.restart();
    let status = cluster.coordinator.status();
    assert_eq!(
        status["nodes"].as_array().map(Vec::len),
        Some(4),
        "{status}"
    );
    assert_eq!(
        status["spec_drift"]["not_in_spec"],
        serde_json::json!(["worker-2"]),
        "{status}"
    );
    let table = cluster.coordinator.cli(&["status"]).stdout;
    assert!(
        table.contains("lags behind the installed workers"),
        "{table}"
    );
    assert!(
        cluster
            .coordinator
            .log_text()
            .contains("the spec lags behind the installed workers")
    );

    // Removing worker-1 leaves the spec naming a worker that is gone: shown, not refused.
    let out = cluster.coordinator.cli(&["workers", "remove", "worker-1"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    cluster.coordinator.restart();
    let drift = cluster.coordinator.status()["spec_drift"].clone();
    assert_eq!(
        drift["not_installed"],
        serde_json::json!(["worker-1"]),
        "{drift}"
    );
    assert_eq!(
        drift["not_in_spec"],
        serde_json::json!(["worker-2"]),
        "{drift}"
    );
}
