//! Qserv's own data guards every change (DESIGN §16): a worker's replica and contribution
//! records are not erased by its removal without saying so and keeping them; worker states are
//! the registry's flags; `down` does not stop the services under queries or ingests in flight.
//! The replication and czar tables are Qserv's own (fixtures with their columns and keys).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use qserv_integration::{Cluster, MariaDb, binaries, wait_for};

const LIMIT: Duration = Duration::from_secs(60);
const REPLICA_SCHEMA: &str = include_str!("../fixtures/qserv-replica-v15.sql");
const QINFO_SCHEMA: &str = include_str!("../fixtures/qserv-meta-qinfo.sql");

/// Every row the cascade reaches, table by table, in a stable order: what a restore must give
/// back exactly.
const CASCADED: [(&str, &str); 7] = [
    ("config_worker", "name"),
    ("config_worker_ext", "worker_name, param"),
    ("replica", "id"),
    ("replica_file", "replica_id, name"),
    ("transaction_contrib", "id"),
    ("transaction_contrib_ext", "contrib_id, `key`"),
    ("transaction_contrib_warn", "contrib_id, pos"),
];

/// SQL through the client in UTF-8 (the fixtures hold names in any script).
fn sql(db: &MariaDb, text: &str) -> String {
    db.execute_with(&["--default-character-set=utf8mb4"], text)
        .unwrap_or_else(|e| panic!("SQL failed: {text}\n{e}"))
}

fn snapshot(db: &MariaDb) -> String {
    let mut out = String::new();
    for (table, order) in CASCADED
        .iter()
        .copied()
        .chain([("transaction_contrib_retry", "contrib_id")])
    {
        out.push_str(&format!("== {table}\n"));
        out.push_str(&sql(
            db,
            &format!("SELECT * FROM qservReplica.`{table}` ORDER BY {order}"),
        ));
        out.push('\n');
    }
    out
}

fn worker_id(cluster: &Cluster, name: &str) -> String {
    let node = cluster
        .coordinator
        .wait_node(name, "registered", LIMIT, |n| n["registered"] == true);
    node["worker_id"].as_str().unwrap_or_default().to_owned()
}

/// worker-1 holds six replicas of dp1, three of them (chunks 1, 2, 3) the only copy; two
/// ingest contributions with their extended rows; one configuration override.
fn holdings(cluster: &Cluster) -> (String, String) {
    let w1 = worker_id(cluster, "worker-1");
    let w2 = worker_id(cluster, "worker-2");
    let repl = cluster.db("repl-0");
    sql(repl, &format!("USE qservReplica; {REPLICA_SCHEMA}"));
    sql(
        repl,
        &format!(
            "USE qservReplica;
         INSERT INTO config_database_family VALUES ('layout_340_3', 1, 340, 3, 0.01667);
         INSERT INTO config_database (`database`, family_name) VALUES ('dp1', 'layout_340_3');
         INSERT INTO config_database_table (`database`, `table`, is_partitioned)
           VALUES ('dp1', 'Object', 1);
         INSERT INTO config_worker_ext VALUES ('{w1}', 'svc-port', '25000');
         INSERT INTO replica (id, worker, `database`, chunk, verify_time) VALUES
           (1, '{w1}', 'dp1', 1, 10), (2, '{w1}', 'dp1', 2, 10), (3, '{w1}', 'dp1', 3, 10),
           (4, '{w1}', 'dp1', 4, 10), (5, '{w1}', 'dp1', 5, 10), (6, '{w1}', 'dp1', 6, 10),
           (7, '{w2}', 'dp1', 4, 10), (8, '{w2}', 'dp1', 5, 10), (9, '{w2}', 'dp1', 6, 10);
         INSERT INTO replica_file SELECT id, CONCAT('Object_', chunk, '.MYD'), 1024, 7, 'a1',
           1, 2 FROM replica;
         INSERT INTO replica_file SELECT id, CONCAT('chunk_', chunk, '_é東.MYI'), 2048, 7,
           'b''2', 1, 2 FROM replica WHERE worker = '{w1}';
         INSERT INTO `transaction` (id, `database`, state, begin_time, context)
           VALUES (1, 'dp1', 'FINISHED', 5, X'00ff10');
         INSERT INTO transaction_contrib (id, transaction_id, worker, `database`, `table`, chunk,
           is_overlap, url, status, tmp_file) VALUES
           (1, 1, '{w1}', 'dp1', 'Object', 1, 0, 'file:///data/c1.csv', 'FINISHED', ''),
           (2, 1, '{w1}', 'dp1', 'Object', 2, 1, 'file:///data/c2.csv', 'FINISHED', '');
         INSERT INTO transaction_contrib_ext VALUES (1, 'charset', 'utf8mb4'), (2, 'k', '');
         INSERT INTO transaction_contrib_warn VALUES (1, 0, 'Warning', 1265, 'Data truncated');
         INSERT INTO transaction_contrib_retry (contrib_id, tmp_file, error)
           VALUES (2, '/tmp/x', 'timeout \\\\ once');"
        ),
    );
    (w1, w2)
}

fn count(db: &MariaDb, sql: &str) -> i64 {
    db.execute(sql).trim().parse().unwrap_or(-1)
}

fn saved_files(cluster: &Cluster) -> Vec<PathBuf> {
    let dir = cluster.agents[cluster.index("repl-0")]
        .dir()
        .join("state")
        .join("forgotten");
    std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "sql"))
                .collect()
        })
        .unwrap_or_default()
}

/// Loads a saved file the way the note says: `mariadb qservReplica < FILE`.
fn load(db: &MariaDb, file: &Path) {
    let input = std::fs::File::open(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let out = Command::new("mariadb")
        .arg("--no-defaults")
        .args(["--protocol=TCP", "-h", "127.0.0.1", "-P"])
        .arg(db.port().to_string())
        .args(["-uroot", "qservReplica"])
        .stdin(Stdio::from(input))
        .output()
        .unwrap_or_else(|e| panic!("cannot run mariadb: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_worker_holding_sole_replicas_is_kept_until_forgotten_and_the_file_restores_it() {
    let cluster = Cluster::installed("dr1", 2, &[]);
    let (w1, _) = holdings(&cluster);
    let repl = cluster.db("repl-0");
    let before = snapshot(repl);

    let out = cluster.coordinator.cli(&["workers", "remove", "worker-1"]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    for needle in [
        "database dp1: 6 replica(s)",
        "3 chunk(s) with no other replica (1, 2, 3)",
        "2 ingest contribution(s)",
        "--forget-replicas",
    ] {
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
    }
    assert_eq!(snapshot(repl), before, "nothing was deleted");
    assert_eq!(
        cluster.coordinator.status()["nodes"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );

    let out = cluster.coordinator.cli(&[
        "-o",
        "json",
        "workers",
        "remove",
        "worker-1",
        "--forget-replicas",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let files = saved_files(&cluster);
    assert_eq!(files.len(), 1, "{files:?}");
    let path = files[0].display().to_string();
    assert!(
        out.stdout.contains(&path),
        "the path is printed: {}",
        out.stdout
    );
    assert_eq!(
        count(
            repl,
            &format!("SELECT COUNT(*) FROM qservReplica.replica WHERE worker = '{w1}'")
        ),
        0
    );
    assert_eq!(
        count(
            repl,
            "SELECT COUNT(*) FROM qservReplica.transaction_contrib"
        ),
        0
    );
    assert_eq!(
        count(repl, "SELECT COUNT(*) FROM qservReplica.replica"),
        3,
        "worker-2's replicas stay"
    );

    load(repl, &files[0]);
    assert_eq!(snapshot(repl), before, "the file gives every row back");
}

#[test]
fn a_coordinator_killed_between_saving_and_deleting_resumes_with_one_file() {
    let mut cluster = Cluster::installed("dr1", 2, &[]);
    let (w1, _) = holdings(&cluster);
    // A reader holding a share lock on one of worker-1's replica rows: the agent saves (its
    // reads share the lock) but its delete, which cascades to that row, waits for the reader.
    let port = cluster.db("repl-0").port().to_string();
    let mut reader = Command::new("mariadb")
        .args([
            "--no-defaults",
            "--protocol=TCP",
            "-h",
            "127.0.0.1",
            "-P",
            &port,
        ])
        .args(["-uroot", "-N", "-e"])
        .arg(
            "START TRANSACTION; SELECT id FROM qservReplica.replica WHERE id = 1 \
             LOCK IN SHARE MODE; SELECT SLEEP(6); COMMIT;",
        )
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run mariadb: {e}"));
    std::thread::sleep(Duration::from_millis(500));
    let out = cluster.coordinator.cli(&[
        "workers",
        "remove",
        "worker-1",
        "--forget-replicas",
        "--detach",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id = out.stdout.trim().to_owned();
    wait_for("the rows to be saved", LIMIT, || {
        (!saved_files(&cluster).is_empty()).then_some(())
    });
    cluster.coordinator.kill();
    let _ = reader.wait();
    cluster.coordinator.restart();
    let out = cluster.coordinator.cli(&["jobs", "wait", &id]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(saved_files(&cluster).len(), 1, "one file");
    let repl = cluster.db("repl-0");
    assert_eq!(
        count(
            repl,
            &format!("SELECT COUNT(*) FROM qservReplica.config_worker WHERE name = '{w1}'")
        ),
        0
    );
    assert_eq!(
        count(
            repl,
            &format!("SELECT COUNT(*) FROM qservReplica.replica WHERE worker = '{w1}'")
        ),
        0
    );
    let file = std::fs::read_to_string(&saved_files(&cluster)[0]).unwrap_or_default();
    assert!(file.contains("-- rows: "), "{file}");
    assert!(file.contains(&w1), "the file holds the worker's own row");
}

#[test]
fn worker_states_round_trip_through_the_registry_flags() {
    let cluster = Cluster::installed("dr1", 1, &[]);
    let w1 = worker_id(&cluster, "worker-1");
    let flags = || {
        cluster.db("repl-0").execute(&format!(
            "SELECT CONCAT(is_enabled, '/', is_read_only) FROM qservReplica.config_worker WHERE name = '{w1}'"
        ))
    };
    let state = || {
        let out = cluster.coordinator.cli(&["-o", "json", "workers", "list"]);
        out.json()["workers"][0]["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!((flags(), state()), ("1/0".to_owned(), "enabled".to_owned()));
    for (command, expected, shown) in [
        ("disable", "0/0", "disabled"),
        ("read-only", "1/1", "read-only"),
        ("enable", "1/0", "enabled"),
    ] {
        let out = cluster.coordinator.cli(&["workers", command, "worker-1"]);
        assert_eq!(out.code, 0, "{command}: {}", out.stderr);
        assert_eq!(flags(), expected, "{command}");
        wait_for(&format!("workers list to show {shown}"), LIMIT, || {
            (state() == shown).then_some(())
        });
    }
    // Installing again keeps the flags of a row that exists.
    assert_eq!(
        cluster
            .coordinator
            .cli(&["workers", "disable", "worker-1"])
            .code,
        0
    );
    let out = cluster.coordinator.cli(&["up", "--timeout", "60s"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = cluster.coordinator.cli(&["workers", "enable", "worker-1"]);
    assert_eq!(out.code, 3, "maintenance only: {}", out.stderr);
    assert_eq!(flags(), "0/0");
}

/// An instance whose czar and repl schemas get Qserv's tables through migrations (version 2 of
/// each module), as an install from a real Qserv migrations directory does; in `normal`.
fn with_activity() -> (Cluster, tempfile::TempDir) {
    let migrations = qserv_integration::migrations::migrations_dir(
        true,
        &[
            ("czar", "migrate-1-to-2.sql", QINFO_SCHEMA),
            ("repl", "migrate-1-to-2.sql", REPLICA_SCHEMA),
        ],
    );
    let args = [qserv_integration::migrations::arg(&migrations)];
    let cluster = Cluster::installed("dr1", 1, &args);
    let node = cluster
        .coordinator
        .wait_node("repl-0", "migrated", LIMIT, |n| {
            n["schema"][0]["version"] == 2
        });
    assert_eq!(node["schema"][0]["target"], 2);
    sql(
        cluster.db("repl-0"),
        "USE qservReplica;
         INSERT INTO config_database_family VALUES ('f', 1, 340, 3, 0.01667);
         INSERT INTO config_database (`database`, family_name) VALUES ('dp1', 'f');",
    );
    let out = cluster.coordinator.cli(&["up", "--timeout", "60s"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    (cluster, migrations)
}

fn query(db: &MariaDb, id: u64, status: &str) {
    db.execute(&format!(
        "INSERT INTO qservMeta.QInfo (queryId, qType, czarId, user, query, qTemplate, status, chunkCount)
         VALUES ({id}, 'SYNC', 1, 'anonymous', 'SELECT 1', 'SELECT 1', '{status}', 1)
         ON DUPLICATE KEY UPDATE status = '{status}'"
    ));
}

#[test]
fn down_waits_for_a_query_and_refuses_under_it() {
    let (cluster, _migrations) = with_activity();
    let czar = cluster.db("czar-0");
    query(czar, 41, "COMPLETED");
    query(czar, 42, "EXECUTING");
    let status = wait_for("the query in the status", LIMIT, || {
        let s = cluster.coordinator.status();
        (s["activity"]["queries_executing"] == 1).then_some(s)
    });
    assert_eq!(status["activity"]["oldest_query"], 42);
    assert_eq!(status["activity"]["ingest_transactions_open"], 0);

    let out = cluster.coordinator.cli(&["down"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("1 query executing (oldest 42)"),
        "{}",
        out.stderr
    );
    assert_eq!(cluster.coordinator.status()["mode"], "normal");

    let out = cluster.coordinator.cli(&["down", "--drain", "2s"]);
    assert_eq!(out.code, 6, "{}\n{}", out.stdout, out.stderr);
    let status = cluster.coordinator.status();
    assert_eq!(status["mode"], "normal", "nothing was stopped");
    assert!(
        status["nodes"]
            .as_array()
            .is_some_and(|nodes| nodes.iter().all(|n| n["agent_mode"] == "normal")),
        "every agent keeps its services: {status}"
    );

    let mut down = Command::new(binaries::path("qserv"))
        .arg(format!("--coordinator={}", cluster.coordinator.url()))
        .args(["down", "--drain", "30s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start qserv: {e}"));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        cluster.coordinator.status()["mode"],
        "normal",
        "still draining"
    );
    query(czar, 42, "COMPLETED");
    let code = down.wait().map(|s| s.code()).unwrap_or_default();
    assert_eq!(code, Some(0));
    assert_eq!(cluster.coordinator.status()["mode"], "maintenance");
}

#[test]
fn down_forced_over_an_open_ingest_is_audited() {
    let (cluster, _migrations) = with_activity();
    cluster.db("repl-0").execute(
        "INSERT INTO qservReplica.`transaction` (id, `database`, state, begin_time)
         VALUES (7, 'dp1', 'STARTED', 1), (8, 'dp1', 'FINISHED', 1)",
    );
    wait_for("the transaction in the status", LIMIT, || {
        (cluster.coordinator.status()["activity"]["ingest_transactions_open"] == 1).then_some(())
    });
    let out = cluster.coordinator.cli(&["down"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("1 ingest transaction open (oldest 7)"),
        "{}",
        out.stderr
    );
    let out = cluster.coordinator.cli(&["down", "--force"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(cluster.coordinator.status()["mode"], "maintenance");
    let audit = cluster.coordinator.cli(&["-o", "json", "audit"]);
    assert_eq!(audit.code, 0, "{}", audit.stderr);
    assert!(
        audit
            .stdout
            .contains("forced over: 1 ingest transaction open (oldest 7)"),
        "{}",
        audit.stdout
    );
}
