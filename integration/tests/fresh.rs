//! Decisions on fresh facts (DESIGN §2, §3): `up` right after a database dies, read-your-writes
//! after every mutating command, `--wait` refusing what a plain request refuses, and a spec
//! whose agent addresses are swapped.

use std::time::Duration;

use qserv_integration::cluster::spec_text;
use qserv_integration::migrations::migrations_dir;
use qserv_integration::{Cluster, CoordinatorProcess, NodeSetup, wait_for};

const LIMIT: Duration = Duration::from_secs(30);

fn node<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["name"] == name))
        .unwrap_or_else(|| panic!("no node {name} in {status}"))
}

/// czar, repl and the workers of `names`, every database ready, nothing installed.
fn not_installed(names: &[(String, &'static str)]) -> Cluster {
    let setup: Vec<NodeSetup<'_>> = names
        .iter()
        .map(|(name, role)| NodeSetup { name, role })
        .collect();
    let cluster = Cluster::start("dr1", &setup);
    cluster.wait_ready();
    cluster
}

#[test]
fn up_right_after_a_database_dies_never_reaches_normal() {
    let mut cluster = Cluster::installed("dr1", 2, &[]);
    // No wait for the coordinator to notice: the command itself must find out.
    cluster.db_mut("worker-1").kill();
    let out = cluster.coordinator.cli(&["up", "--timeout", "3s"]);
    assert_eq!(out.code, 6, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("worker-1: database not ready"),
        "{}",
        out.stderr
    );
    assert_eq!(cluster.coordinator.status()["mode"], "maintenance");

    cluster.db_mut("worker-1").restart();
    let out = cluster.coordinator.cli(&["up", "--timeout", "60s"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = cluster.coordinator.status();
    assert_eq!(status["mode"], "normal");
    assert_eq!(node(&status, "worker-1")["db_ready"], true);
}

#[test]
fn the_first_status_read_after_each_command_shows_its_effects() {
    let names = Cluster::standard_nodes(2);
    let mut cluster = not_installed(&names);

    // install
    let out = cluster.coordinator.cli(&["install"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = cluster.coordinator.status();
    assert_eq!(status["mode"], "maintenance");
    for (name, role) in &names {
        let n = node(&status, name);
        assert_eq!(n["schema"][0]["version"], 1, "{name} after install: {n}");
        if *role == "worker" {
            assert_eq!(n["registered"], true, "{name} registered: {n}");
        }
    }

    // upgrade apply (worker-2 fails and is left dirty)
    let v2 = migrations_dir(
        true,
        &[(
            "worker",
            "migrate-1-to-2-chunks.sql",
            "CREATE TABLE `qservw_worker`.`Chunks` (id INT PRIMARY KEY);\n",
        )],
    );
    cluster
        .db("worker-2")
        .execute("CREATE TABLE qservw_worker.Chunks (x INT)");
    cluster.use_migrations(&v2);
    cluster
        .coordinator
        .wait_node("worker-1", "new target", LIMIT, |n| {
            n["schema"][0]["target"] == 2
        });
    let out = cluster.coordinator.cli(&["upgrade", "apply"]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    let status = cluster.coordinator.status();
    assert_eq!(node(&status, "worker-1")["schema"][0]["version"], 2);
    assert_eq!(node(&status, "worker-2")["schema"][0]["dirty"], true);

    // upgrade repair
    cluster.db("worker-2").execute(
        "DROP TABLE qservw_worker.Chunks; CREATE TABLE qservw_worker.Chunks (id INT PRIMARY KEY)",
    );
    let out = cluster.coordinator.cli(&[
        "upgrade",
        "repair",
        "worker-2",
        "--module",
        "worker",
        "--version",
        "2",
        "--reason",
        "recreated Chunks by hand",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = cluster.coordinator.status();
    let schema = &node(&status, "worker-2")["schema"][0];
    assert_eq!(
        (schema["dirty"].clone(), schema["version"].clone()),
        (false.into(), 2.into()),
        "{schema}"
    );

    // workers add
    let url = cluster.start_extra("worker-3", "worker");
    let spec = cluster.dir().join("add.toml");
    std::fs::write(
        &spec,
        format!("name = \"dr1\"\n\n[[nodes]]\nname = \"worker-3\"\nrole = \"worker\"\nagent = \"{url}\"\n"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = cluster
        .coordinator
        .cli(&["workers", "add", "--spec", &spec.to_string_lossy()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = cluster.coordinator.status();
    let added = node(&status, "worker-3");
    assert_eq!(added["registered"], true, "{added}");
    assert_eq!(added["schema"][0]["version"], 2, "{added}");
}

#[test]
fn wait_refuses_exactly_what_a_plain_request_refuses() {
    let mut cluster = Cluster::installed("dr1", 2, &[]);
    let url = cluster.start_extra("worker-3", "worker");
    let existing = cluster.dir().join("existing.toml");
    std::fs::write(
        &existing,
        format!("name = \"dr1\"\n\n[[nodes]]\nname = \"worker-1\"\nrole = \"worker\"\nagent = \"{url}\"\n"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let existing = existing.to_string_lossy().into_owned();
    let dumps: Vec<String> = cluster.dbs.iter().map(|db| db.dump_qserv()).collect();

    // A job that keeps running: up waits for a database that is down.
    cluster.db_mut("czar-0").kill();
    let c = &cluster.coordinator;
    let up = c.cli(&["up", "--detach", "--timeout", "120s"]);
    assert_eq!(up.code, 0, "{}", up.stderr);
    let up = up.stdout.trim().to_owned();

    let refused: [&[&str]; 4] = [
        &["delete", "--confirm", "WRONG-NAME"],
        &["workers", "remove", "czar-0", "--purge"],
        &["workers", "remove", "nobody"],
        &["workers", "add", "--spec", &existing],
    ];
    for args in refused {
        let plain = c.cli(args);
        let mut queued: Vec<&str> = args.to_vec();
        queued.push("--wait");
        let waited = c.cli(&queued);
        assert_eq!(plain.code, 3, "{args:?}: {}", plain.stderr);
        assert_eq!(waited.code, 3, "{args:?} --wait: {}", waited.stderr);
        assert!(
            !waited.stderr.contains(&up),
            "refused on its own merits, not for the running job: {}",
            waited.stderr
        );
    }
    let jobs = c.cli(&["-o", "json", "jobs", "list"]).json();
    let queued = jobs["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|j| j["state"] == "queued")
        .count();
    assert_eq!(queued, 0, "nothing was queued: {jobs}");

    assert_eq!(c.cli(&["jobs", "cancel", &up]).code, 0);
    cluster.db_mut("czar-0").restart();
    cluster
        .coordinator
        .wait_node("czar-0", "ready", LIMIT, |n| n["db_ready"] == true);
    let after: Vec<String> = cluster.dbs.iter().map(|db| db.dump_qserv()).collect();
    assert_eq!(dumps.len(), 4 + 1);
    for (i, (before, now)) in dumps.iter().zip(&after).enumerate() {
        assert_eq!(before, now, "database {i} unchanged");
    }
    assert_eq!(
        cluster.coordinator.status()["nodes"]
            .as_array()
            .map(Vec::len),
        Some(4),
        "the inventory is unchanged"
    );
}

#[test]
fn a_spec_with_swapped_agent_addresses_is_refused_naming_both() {
    let names = Cluster::standard_nodes(2);
    let mut cluster = not_installed(&names);
    let swapped_spec = {
        let text = spec_text("dr1", &cluster.agents);
        let one = cluster.agents[cluster.index("worker-1")].url();
        let two = cluster.agents[cluster.index("worker-2")].url();
        text.replace(&one, "@ONE@")
            .replace(&two, &one)
            .replace("@ONE@", &two)
    };
    let swapped = cluster.dir().join("swapped.toml");
    std::fs::write(&swapped, &swapped_spec).unwrap_or_else(|e| panic!("{e}"));
    let swapped = swapped.to_string_lossy().into_owned();

    let out = cluster.coordinator.cli(&["install", "--spec", &swapped]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    for name in ["worker-1", "worker-2"] {
        assert!(
            out.stderr.contains(&format!("{name}: the agent at")),
            "{}",
            out.stderr
        );
    }
    for db in &cluster.dbs {
        assert_eq!(
            db.execute("SHOW DATABASES LIKE 'qserv%'"),
            "",
            "nothing was created"
        );
    }

    // Installed properly, then adopted by a new coordinator with the swapped spec.
    let out = cluster.coordinator.cli(&[
        "install",
        "--spec",
        &cluster.dir().join("spec.toml").to_string_lossy(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    cluster.coordinator.kill();
    let adopter = CoordinatorProcess::start(&cluster.dir().join("adopter"), &[]);
    let out = adopter.cli(&["install", "--adopt", "--spec", &swapped]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    for name in ["worker-1", "worker-2"] {
        assert!(
            out.stderr.contains(&format!("{name}: the agent at")),
            "{}",
            out.stderr
        );
    }
    let status = wait_for("the adopter's status", LIMIT, || {
        let status = adopter.status();
        (status["mode"] != "installing").then_some(status)
    });
    assert_ne!(status["mode"], "maintenance", "not adopted");
}
