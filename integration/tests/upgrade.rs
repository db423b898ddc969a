//! Fleet schema upgrades: parallel apply, a failing node left dirty, repair, resume after a
//! coordinator crash, changed scripts, and a directory laid out like Qserv's own.

use std::time::Duration;

use qserv_integration::migrations::{arg, migrations_dir};
use qserv_integration::{Cluster, NodeSetup, wait_for};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(30);

fn installed(workers: usize, coordinator_args: &[String]) -> Cluster {
    Cluster::installed("dr1", workers, coordinator_args)
}

fn nodes(workers: usize) -> Vec<(String, &'static str)> {
    Cluster::standard_nodes(workers)
}

fn wait_target(cluster: &Cluster, node: &str, target: i64) {
    cluster
        .coordinator
        .wait_node(node, "new target", LIMIT, |n| {
            n["schema"][0]["target"] == target
        });
}

#[test]
fn parallel_apply_leaves_a_failed_node_dirty_until_repaired() {
    let mut cluster = installed(3, &[]);
    // The second statement fails on worker-2 only, where the table already exists by hand.
    let v2 = migrations_dir(
        true,
        &[(
            "worker",
            "migrate-1-to-2-chunks.sql",
            "-- chunk bookkeeping; the ';' in this comment is not a statement end\n\
             SELECT 'warming up; not a delimiter';\n\
             CREATE TABLE `qservw_worker`.`Chunks` (id INT PRIMARY KEY);\n\
             INSERT INTO qservw_worker.Chunks VALUES (1);\n",
        )],
    );
    cluster
        .db("worker-2")
        .execute("CREATE TABLE qservw_worker.Chunks (x INT)");
    cluster.use_migrations(&v2);
    wait_target(&cluster, "worker-3", 2);
    let c = &cluster.coordinator;

    let plan = c.cli(&["-o", "json", "upgrade", "plan"]).json();
    let worker = plan["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["node"] == "worker-1")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (worker["current"].clone(), worker["target"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(worker["scripts"][0]["file"], "migrate-1-to-2-chunks.sql");
    assert_eq!(
        worker["scripts"][0]["checksum"].as_str().map(str::len),
        Some(64)
    );
    let czar = plan["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["node"] == "czar-0")
        .cloned()
        .unwrap_or_default();
    assert_eq!(czar["up_to_date"], true);

    let out = c.cli(&["upgrade", "apply"]);
    assert_eq!(out.code, 4, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("worker-2"),
        "names the failed node: {}",
        out.stderr
    );
    for ok in ["worker-1", "worker-3"] {
        c.wait_node(ok, "at target", LIMIT, |n| n["schema"][0]["version"] == 2);
        assert_eq!(
            cluster
                .db(ok)
                .execute("SELECT id FROM qservw_worker.Chunks"),
            "1"
        );
    }
    let failed = c.wait_node("worker-2", "dirty", LIMIT, |n| {
        n["schema"][0]["dirty"] == true
    });
    let reason = failed["schema"][0]["dirty_reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        reason.contains("migrate-1-to-2-chunks.sql statement 2 (line 3)")
            && reason.contains("already exists"),
        "{reason}"
    );
    assert_eq!(
        failed["schema"][0]["version"], 1,
        "the failed script did not move the version"
    );
    let table = c.cli(&["status"]);
    assert!(
        table.stdout.contains("DIRTY") && table.stdout.contains("statement 2"),
        "{}",
        table.stdout
    );

    // A dirty database is never migrated further, and blocks up.
    let out = c.cli(&["upgrade", "apply"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("worker-2's qservw_worker is dirty"),
        "{}",
        out.stderr
    );
    let out = c.cli(&["up", "--timeout", "2s"]);
    assert_eq!(out.code, 6, "{}", out.stderr);
    assert!(
        out.stderr.contains("worker-2") && out.stderr.contains("dirty"),
        "{}",
        out.stderr
    );

    // The operator finishes the script by hand and marks the database repaired.
    cluster
        .db("worker-2")
        .execute("DROP TABLE qservw_worker.Chunks");
    cluster
        .db("worker-2")
        .execute("CREATE TABLE qservw_worker.Chunks (id INT PRIMARY KEY)");
    cluster
        .db("worker-2")
        .execute("INSERT INTO qservw_worker.Chunks VALUES (1)");
    let repair = |node: &str, version: &str, extra: &[&str]| {
        let mut args = vec![
            "upgrade",
            "repair",
            node,
            "--module",
            "worker",
            "--version",
            version,
            "--reason",
            "recreated Chunks by hand",
        ];
        args.extend_from_slice(extra);
        c.cli(&args)
    };
    // Versions outside 0..=target and clean databases are refused before anything changes.
    for (node, version, why) in [
        ("worker-2", "-1", "versions start at 0"),
        ("worker-2", "3", "above qservw_worker's target 2"),
        ("worker-1", "2", "not dirty"),
    ] {
        let out = repair(node, version, &[]);
        assert_eq!(out.code, 3, "{node} {version}: {}", out.stderr);
        assert!(out.stderr.contains(why), "{}", out.stderr);
    }
    let out = repair("worker-2", "2", &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    c.wait_node("worker-2", "repaired", LIMIT, |n| {
        n["schema"][0]["dirty"] == false && n["schema"][0]["version"] == 2
    });
    let by = cluster
        .db("worker-2")
        .execute("SELECT repaired_by FROM qserv_agent.schema_state WHERE module = 'worker'");
    assert!(by.contains('@'), "who repaired it is recorded: {by}");
    let recorded = cluster.db("worker-2").execute(
        "SELECT CONCAT_WS('|', version, forced, reason, previous_error LIKE '%statement 2%') FROM qserv_agent.repairs",
    );
    assert_eq!(recorded, "2|0|recreated Chunks by hand|1");
    let audit = c.cli(&["-o", "json", "audit"]).stdout;
    assert!(audit.contains("recreated Chunks by hand"), "{audit}");
    // Forced, a clean database may be set (and is recorded as forced).
    let out = repair("worker-1", "2", &["--force"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let forced = cluster
        .db("worker-1")
        .execute("SELECT CONCAT_WS('|', version, forced) FROM qserv_agent.repairs");
    assert_eq!(forced, "2|1");

    // Applying again touches nothing; up now works; upgrades are refused in normal.
    let out = c.cli(&["upgrade", "apply"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("already at version 2"),
        "{}",
        out.stdout
    );
    let applied = cluster.db("worker-1").execute("SELECT COUNT(*) FROM qserv_agent.applied_scripts WHERE file_name = 'migrate-1-to-2-chunks.sql'");
    assert_eq!(applied, "1");
    let out = c.cli(&["up", "--timeout", "60s"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let out = c.cli(&["upgrade", "apply"]);
    assert_eq!(out.code, 3);
    assert!(
        out.stderr.contains("schema upgrades are allowed only in maintenance mode (instance is normal); run 'qserv down' first"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_coordinator_killed_mid_apply_resumes_and_no_script_runs_twice() {
    let mut cluster = installed(2, &[]);
    let v2 = migrations_dir(
        true,
        &[(
            "worker",
            "migrate-1-to-2.sql",
            "CREATE TABLE qservw_worker.Runs (n INT);\nINSERT INTO qservw_worker.Runs VALUES (1);\nDO SLEEP(3);\n",
        )],
    );
    cluster.use_migrations(&v2);
    wait_target(&cluster, "worker-2", 2);
    let out = cluster.coordinator.cli(&["upgrade", "apply", "--detach"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id = out.stdout.trim().to_owned();
    wait_for("workers migrating", LIMIT, || {
        let status = cluster.coordinator.status();
        let progress = &status["active_job"]["progress"];
        (progress["worker-1"]
            .as_str()
            .is_some_and(|p| p.starts_with("running"))
            && progress["worker-2"]
                .as_str()
                .is_some_and(|p| p.starts_with("running")))
        .then_some(())
    });
    cluster.coordinator.kill();
    std::thread::sleep(Duration::from_millis(500));
    cluster.coordinator.restart();

    let out = cluster.coordinator.cli(&["jobs", "wait", &id]);
    assert_eq!(
        out.code, 0,
        "the resumed upgrade failed:\n{}\n{}",
        out.stdout, out.stderr
    );
    for worker in ["worker-1", "worker-2"] {
        cluster
            .coordinator
            .wait_node(worker, "at target", LIMIT, |n| {
                n["schema"][0]["version"] == 2
            });
        assert_eq!(
            cluster
                .db(worker)
                .execute("SELECT COUNT(*) FROM qservw_worker.Runs"),
            "1",
            "{worker}: ran once"
        );
        assert_eq!(
            cluster.db(worker).execute("SELECT COUNT(*) FROM qserv_agent.applied_scripts WHERE file_name = 'migrate-1-to-2.sql'"),
            "1"
        );
    }
}

#[test]
fn a_script_edited_after_it_was_applied_is_refused() {
    let original = "CREATE TABLE qservw_worker.Extra (n INT);\n";
    let v2 = migrations_dir(true, &[("worker", "migrate-1-to-2.sql", original)]);
    let mut cluster = installed(1, &[arg(&v2)]);
    cluster
        .coordinator
        .wait_node("worker-1", "at 2", LIMIT, |n| {
            n["schema"][0]["version"] == 2
        });

    let edited = migrations_dir(
        true,
        &[
            (
                "worker",
                "migrate-1-to-2.sql",
                "CREATE TABLE qservw_worker.Extra (n BIGINT);\n",
            ),
            (
                "worker",
                "migrate-2-to-3.sql",
                "CREATE TABLE qservw_worker.More (n INT);\n",
            ),
        ],
    );
    cluster.use_migrations(&edited);
    wait_target(&cluster, "worker-1", 3);
    let out = cluster.coordinator.cli(&["upgrade", "apply"]);
    assert_eq!(out.code, 4, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("worker/migrate-1-to-2.sql changed after it was applied"),
        "{}",
        out.stderr
    );
    assert_eq!(
        cluster
            .db("worker-1")
            .execute("SHOW TABLES FROM qservw_worker LIKE 'More'"),
        "",
        "nothing of the newer script ran"
    );
}

/// Scripts shaped like Qserv's own: None-to-N templates that create their database and insert
/// the version, incremental scripts with unqualified names, a repl module without a None
/// script, a DELIMITER block.
#[test]
fn a_directory_laid_out_like_qservs_installs_and_upgrades() {
    let czar_none = "CREATE SCHEMA IF NOT EXISTS `qservMeta`;\n\
        CREATE TABLE IF NOT EXISTS `qservMeta`.`QMetadata` (`metakey` CHAR(64) NOT NULL, `value` TEXT NULL, PRIMARY KEY (`metakey`)) ENGINE = InnoDB;\n\
        CREATE USER IF NOT EXISTS 'qsmaster'@'localhost' IDENTIFIED BY '{{ mysqld_user_qserv_password }}';\n\
        INSERT INTO `qservMeta`.`QMetadata` (`metakey`, `value`) VALUES ('version', '2');\n";
    let worker_none = "CREATE SCHEMA `qservw_worker`;\n\
        CREATE TABLE `qservw_worker`.`QMetadata` (`metakey` CHAR(64) NOT NULL, `value` TEXT NULL, PRIMARY KEY (`metakey`)) ENGINE = InnoDB;\n\
        CREATE TABLE IF NOT EXISTS `qservw_worker`.`Id` (`id` VARCHAR(64) NOT NULL, `type` ENUM('UUID') DEFAULT 'UUID', `created` TIMESTAMP DEFAULT CURRENT_TIMESTAMP, UNIQUE KEY (`type`)) ENGINE = InnoDB;\n\
        INSERT INTO `qservw_worker`.`Id` (`id`) VALUES (COALESCE(NULLIF('{{ worker_name }}', ''), CONCAT(UUID())));\n\
        INSERT INTO `qservw_worker`.`QMetadata` (`metakey`, `value`) VALUES ('version', '3');\n";
    let worker_procedure = "DELIMITER $$\n\
        CREATE PROCEDURE CountChunks() BEGIN SELECT COUNT(*) FROM Id; SELECT 1; END$$\n\
        DELIMITER ;\n";
    let repl_0_1 = "CREATE TABLE IF NOT EXISTS `QMetadata` (`metakey` CHAR(64) NOT NULL, `value` TEXT NULL, PRIMARY KEY (`metakey`)) ENGINE = InnoDB;\n\
        CREATE TABLE IF NOT EXISTS `config_worker` (`name` VARCHAR(255) NOT NULL, `is_enabled` BOOLEAN NOT NULL, `is_read_only` BOOLEAN NOT NULL, PRIMARY KEY (`name`)) ENGINE = InnoDB;\n";
    let repl_1_2 = "CREATE TABLE IF NOT EXISTS `config_worker_ext` (`worker_name` VARCHAR(255) NOT NULL, `param` VARCHAR(255) NOT NULL, `value` VARCHAR(255) NOT NULL, PRIMARY KEY (`worker_name`, `param`), CONSTRAINT `config_worker_ext_fk` FOREIGN KEY (`worker_name`) REFERENCES `config_worker` (`name`) ON DELETE CASCADE ON UPDATE CASCADE) ENGINE = InnoDB;\n";
    let qserv_like = migrations_dir(
        false,
        &[
            ("czar", "migrate-None-to-2.sql.jinja", czar_none),
            (
                "czar",
                "migrate-1-to-2.sql",
                "ALTER TABLE QMetadata COMMENT = 'never run here';\n",
            ),
            ("worker", "migrate-None-to-3.sql.jinja", worker_none),
            (
                "worker",
                "migrate-0-to-1.sql",
                "CREATE TABLE IF NOT EXISTS QMetadata (metakey CHAR(64) PRIMARY KEY, value TEXT);\n",
            ),
            (
                "worker",
                "migrate-2-to-3.sql",
                "ALTER TABLE Id COMMENT = 'never run here';\n",
            ),
            ("repl", "migrate-0-to-1.sql", repl_0_1),
            ("repl", "migrate-1-to-2.sql", repl_1_2),
            (
                "repl",
                "schema_migration.py",
                "# smig's Python side; not a script\n",
            ),
        ],
    );
    let names = nodes(1);
    let setup: Vec<NodeSetup<'_>> = names
        .iter()
        .map(|(name, role)| NodeSetup { name, role })
        .collect();
    let mut cluster = Cluster::start_with("dr1", &setup, &[arg(&qserv_like)]);
    let worker = cluster.agent_mut("worker-1");
    worker.write_secrets(&format!(
        "mysqld_user_qserv_password = \"{}\"\nworker_name = \"worker-007\"\n",
        qserv_integration::cluster::SECRET_QSMASTER
    ));
    worker.restart();
    for (name, _) in &names {
        cluster
            .coordinator
            .wait_node(name, "ready", LIMIT, |n| n["db_ready"] == true);
    }
    let out = cluster.coordinator.cli(&["install"]);
    assert_eq!(
        out.code, 0,
        "install failed:\n{}\n{}",
        out.stdout, out.stderr
    );
    let c = &cluster.coordinator;
    c.wait_node("czar-0", "czar at 2", LIMIT, |n| {
        n["schema"][0]["version"] == 2
    });
    c.wait_node("repl-0", "repl at 2 from 0", LIMIT, |n| {
        n["schema"][0]["version"] == 2
    });
    let worker = c.wait_node("worker-1", "worker at 3", LIMIT, |n| {
        n["schema"][0]["version"] == 3
    });
    assert_eq!(worker["worker_id"], "worker-007");
    assert_eq!(worker["registered"], true);
    assert_eq!(
        cluster
            .db("repl-0")
            .execute("SELECT name FROM qservReplica.config_worker"),
        "worker-007"
    );

    // An incremental script with a DELIMITER block runs with the module database as default.
    let extra_dir = migrations_dir(false, &[]);
    for module in ["czar", "worker", "repl"] {
        for entry in std::fs::read_dir(qserv_like.path().join(module))
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::copy(
                entry.path(),
                extra_dir.path().join(module).join(entry.file_name()),
            );
        }
    }
    std::fs::write(
        extra_dir.path().join("worker/migrate-3-to-4.sql"),
        worker_procedure,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    cluster.use_migrations(&extra_dir);
    wait_target(&cluster, "worker-1", 4);
    let out = cluster.coordinator.cli(&["upgrade", "apply"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        cluster.db("worker-1").execute("SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'qservw_worker'"),
        "CountChunks"
    );
}

#[test]
fn a_database_that_dies_mid_migration_is_left_dirty_and_named() {
    let mut cluster = installed(2, &[]);
    let v2 = migrations_dir(
        true,
        &[(
            "worker",
            "migrate-1-to-2.sql",
            "CREATE TABLE qservw_worker.Slow (n INT);\nDO SLEEP(4);\nINSERT INTO qservw_worker.Slow VALUES (1);\n",
        )],
    );
    cluster.use_migrations(&v2);
    wait_target(&cluster, "worker-2", 2);
    let out = cluster.coordinator.cli(&["upgrade", "apply", "--detach"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id = out.stdout.trim().to_owned();
    wait_for("worker-2 migrating", LIMIT, || {
        let status = cluster.coordinator.status();
        status["active_job"]["progress"]["worker-2"]
            .as_str()
            .is_some_and(|p| p.starts_with("running"))
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(1500));
    cluster.db_mut("worker-2").kill();

    let out = cluster.coordinator.cli(&["jobs", "wait", &id]);
    assert_eq!(out.code, 4, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("worker-2"), "{}", out.stderr);
    cluster
        .coordinator
        .wait_node("worker-1", "at target", LIMIT, |n| {
            n["schema"][0]["version"] == 2
        });

    cluster.db_mut("worker-2").restart();
    let node = cluster
        .coordinator
        .wait_node("worker-2", "dirty after restart", LIMIT, |n| {
            n["db_ready"] == true && n["schema"][0]["dirty"] == true
        });
    let reason = node["schema"][0]["dirty_reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        reason.contains("migrate-1-to-2.sql") && reason.contains("statement 2"),
        "{reason}"
    );
    let out = cluster.coordinator.cli(&["upgrade", "apply"]);
    assert_eq!(
        out.code, 3,
        "a dirty database is not migrated further: {}",
        out.stderr
    );
}
