//! Coordinators sharing a store: the MariaDB server that holds it, and who leads.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::{Cluster, CoordinatorProcess, MariaDb, wait_for};

/// A short lease, so that takeovers happen within a test's patience.
pub const TTL: &str = "--lease-ttl=1500ms";

/// A MariaDB server with an empty `qserv_store` database and a `coordinator` account that may
/// use it, logging in with `password`.
pub fn store_server(password: &str) -> MariaDb {
    let server = MariaDb::start();
    store_account(&server, password);
    server
}

/// Makes the empty `qserv_store` database and the `coordinator` account, logging in with
/// `password`, on `server` (on a Galera node, for the whole cluster).
pub fn store_account(server: &MariaDb, password: &str) {
    server.execute("CREATE DATABASE qserv_store");
    server.execute(&format!(
        "CREATE USER coordinator@'%' IDENTIFIED BY '{}'",
        password.replace('\'', "''")
    ));
    server.execute("GRANT ALL ON qserv_store.* TO coordinator@'%'");
}

/// The leading coordinator's id in a `qserv -o json status`.
pub fn leader_of(status: &Value) -> Option<String> {
    status["coordinators"]
        .as_array()?
        .iter()
        .find(|c| c["leader"] == true)
        .and_then(|c| c["id"].as_str())
        .map(str::to_owned)
}

/// A coordinator's arguments for the store on `127.0.0.1:port`, as coordinator `id`.
pub fn store_args(port: u16, password_file: &Path, id: &str) -> Vec<String> {
    vec![
        format!("--store=mysql://coordinator@127.0.0.1:{port}/qserv_store"),
        format!("--store-password-file={}", password_file.display()),
        format!("--id={id}"),
        TTL.to_owned(),
    ]
}

/// Waits until `coordinator` reports `id` as the leader; returns that status.
pub fn wait_leader(coordinator: &CoordinatorProcess, id: &str) -> Value {
    wait_for(&format!("{id} leading"), Duration::from_secs(60), || {
        let out = coordinator.cli(&["-o", "json", "status"]);
        (out.code == 0)
            .then(|| out.json())
            .filter(|s| leader_of(s).as_deref() == Some(id))
    })
}

/// The fencing token each agent holds on disk.
pub fn seen_tokens(cluster: &Cluster) -> Vec<u64> {
    cluster
        .agents
        .iter()
        .map(|agent| {
            let text = std::fs::read_to_string(agent.dir().join("state").join("mode.toml"))
                .unwrap_or_default();
            text.lines()
                .find_map(|l| l.strip_prefix("seen_token = "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        })
        .collect()
}

/// Writes `password` to a file in `dir` for `--store-password-file`; returns its path.
pub fn password_file(dir: &Path, password: &str) -> std::path::PathBuf {
    let path = dir.join("store-password");
    std::fs::write(&path, password)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

/// The file name of the worker script [`slow_worker_upgrade`] adds.
const SLOW_SCRIPT: &str = "migrate-1-to-2.sql";

/// Migrations with one worker script that takes `seconds`: a coordinator can be lost in the
/// middle of it.
pub fn slow_worker_upgrade(seconds: u32) -> tempfile::TempDir {
    let script = format!("DO SLEEP({seconds});\nCREATE TABLE qservw_worker.upgraded (x INT);\n");
    crate::migrations::migrations_dir(true, &[("worker", SLOW_SCRIPT, &script)])
}

/// Waits until `coordinator` shows a node of the active job running its step.
pub fn wait_migrating(coordinator: &CoordinatorProcess) {
    wait_for("the upgrade migrating", Duration::from_secs(60), || {
        coordinator.status()["active_job"]["progress"]
            .as_object()
            .is_some_and(|p| {
                p.values()
                    .any(|v| v.as_str().is_some_and(|v| v.starts_with("running")))
            })
            .then_some(())
    });
}

/// Checks that each of the `workers` applied the slow script exactly once.
pub fn assert_slow_script_ran_once(cluster: &Cluster, workers: usize) {
    for index in 1..=workers {
        let runs = cluster.db(&format!("worker-{index}")).execute(&format!(
            "SELECT COUNT(*) FROM qserv_agent.applied_scripts WHERE file_name = '{SLOW_SCRIPT}'"
        ));
        assert_eq!(runs.trim(), "1", "worker-{index} ran the script once");
    }
}
