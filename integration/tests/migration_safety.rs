//! Migrations Qserv would accept byte for byte (DESIGN §6): UTF-8 scripts, values escaped into
//! literals, the server's own collation, errors that carry no secret, and guarded repairs.

use std::time::Duration;

use qserv_integration::Cluster;
use qserv_integration::migrations::migrations_dir;

const LIMIT: Duration = Duration::from_secs(30);

/// Multibyte text everywhere the splitter looks: literals, comments, identifiers, an executable
/// comment, a delimiter block, and a character straddling byte 9 of a statement.
const UTF8_SCRIPT: &str = "-- Überschrift; 東京 ☕\n\
    SET @a='é';\n\
    /* café ☕ 東京; not a statement */ CREATE TABLE qservw_worker.`Zählung_東` (\n\
      id INT PRIMARY KEY, name VARCHAR(32) CHARACTER SET utf8mb4\n\
    ) /*!50100 COMMENT 'π; ünïcode' */;\n\
    INSERT INTO qservw_worker.`Zählung_東` VALUES (1, 'Ångström; 東京'), (2, @a), (3, 'it''s \\'ok\\' 🚀');\n\
    DELIMITER $$\n\
    CREATE PROCEDURE qservw_worker.`zähle`() BEGIN SELECT 'ä;ö'; SELECT COUNT(*) FROM qservw_worker.`Zählung_東`; END$$\n\
    DELIMITER ;\n\
    CREATE VIEW qservw_worker.v_migrated AS SELECT name FROM qservw_worker.`Zählung_東`;\n";

fn wait_target(cluster: &Cluster, node: &str, target: i64) {
    cluster
        .coordinator
        .wait_node(node, "new target", LIMIT, |n| {
            n["schema"][0]["target"] == target
        });
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02X}")).collect()
}

#[test]
fn utf8_scripts_apply_and_views_get_the_servers_collation() {
    let mut cluster = Cluster::installed("dr1", 1, &[]);
    let v2 = migrations_dir(
        true,
        &[("worker", "migrate-1-to-2-ünïcode.sql", UTF8_SCRIPT)],
    );
    cluster.use_migrations(&v2);
    wait_target(&cluster, "worker-1", 2);
    let out = cluster.coordinator.cli(&["upgrade", "apply"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);

    let db = cluster.db("worker-1");
    let rows = db.execute(
        "SELECT GROUP_CONCAT(HEX(name) ORDER BY id SEPARATOR ',') FROM qservw_worker.`Zählung_東`",
    );
    let expected = ["Ångström; 東京", "é", "it's 'ok' 🚀"].map(hex).join(",");
    assert_eq!(rows, expected, "every character stored as written");
    let comment = db.execute(
        "SELECT HEX(TABLE_COMMENT) FROM information_schema.TABLES WHERE TABLE_NAME = 'Zählung_東'",
    );
    assert_eq!(
        comment,
        hex("π; ünïcode"),
        "the executable comment ran whole"
    );
    let routine = db.execute(
        "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'qservw_worker' AND ROUTINE_NAME = 'zähle'",
    );
    assert_eq!(routine, "1", "the DELIMITER block became one procedure");
    assert_eq!(
        cluster.coordinator.status()["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["name"] == "worker-1")
            .map(|n| n["schema"][0]["version"].clone()),
        Some(2.into())
    );

    // The same view created by the `mariadb` client, configured for utf8mb4 as Debian's
    // client configuration does, records the same session settings.
    db.execute_with(
        &["--default-character-set=utf8mb4"],
        "CREATE VIEW qservw_worker.v_client AS SELECT name FROM qservw_worker.`Zählung_東`",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let settings = |view: &str| {
        db.execute(&format!(
            "SELECT CONCAT_WS(' ', CHARACTER_SET_CLIENT, COLLATION_CONNECTION) FROM information_schema.VIEWS \
             WHERE TABLE_SCHEMA = 'qservw_worker' AND TABLE_NAME = '{view}'"
        ))
    };
    let migrated = settings("v_migrated");
    assert!(!migrated.is_empty(), "the migration created its view");
    assert_eq!(migrated, settings("v_client"));
    assert_ne!(
        migrated, "utf8mb4 utf8mb4_unicode_ci",
        "not the client library's own choice"
    );
}

/// A password no naive quoting survives, long enough that fragments are distinctive.
const PASSWORD: &str = "Kx7'q\\Zr;\"Mé東-9vLp2Wn;--x";
const REPL_PASSWORD: &str = "Rq2\\'p;Lm\"8東ü-Yt5Vb3Hs";

fn toml_string(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Every run of 8 characters of `secret`, and of its escaped forms.
fn fragments(secret: &str) -> Vec<String> {
    let forms = [
        secret.to_owned(),
        qserv_migrations::escape_literal(secret),
        secret.replace('\'', "''"),
    ];
    let mut out = Vec::new();
    for form in forms {
        let chars: Vec<char> = form.chars().collect();
        out.extend(chars.windows(8).map(|w| w.iter().collect::<String>()));
    }
    out
}

#[test]
fn quoted_passwords_install_and_failures_leak_no_fragment() {
    let secrets = format!(
        "mysqld_user_qserv_password = {}\nrepl_user = \"qsreplica\"\nrepl_password = {}\n",
        toml_string(PASSWORD),
        toml_string(REPL_PASSWORD)
    );
    let mut cluster = Cluster::installed_with_secrets("dr1", 1, &[], Some(&secrets));
    // The service accounts log in with the passwords as written.
    for (node, user, password) in [
        ("worker-1", "qsmaster", PASSWORD),
        ("czar-0", "qsmaster", PASSWORD),
        ("repl-0", "qsreplica", REPL_PASSWORD),
    ] {
        let login = cluster.db(node).execute_as(user, password, "SELECT 1");
        assert_eq!(login.as_deref(), Ok("1"), "{user} on {node}: {login:?}");
    }

    // A template puts the password in a literal, as Qserv's own do; then one fails after
    // rendering, with the password in the statement the server would quote.
    let v3 = migrations_dir(
        true,
        &[
            (
                "worker",
                "migrate-1-to-2.sql.jinja",
                "CREATE USER IF NOT EXISTS 'qsreader'@'%' IDENTIFIED BY '{{ mysqld_user_qserv_password }}';\n\
                 GRANT SELECT ON `qservw_worker`.* TO 'qsreader'@'%';\n",
            ),
            (
                "worker",
                "migrate-2-to-3.sql.jinja",
                "-- a typo after the secret: the server's message quotes the statement\n\
                 SELECT 1;\n\
                 SELEC '{{ mysqld_user_qserv_password }}' FROM nowhere WHERE x = '{{ repl_password }}';\n",
            ),
        ],
    );
    cluster.use_migrations(&v3);
    wait_target(&cluster, "worker-1", 3);
    let out = cluster.coordinator.cli(&["upgrade", "apply"]);
    assert_eq!(out.code, 4, "{}\n{}", out.stdout, out.stderr);
    let reader = cluster
        .db("worker-1")
        .execute_as("qsreader", PASSWORD, "SELECT 1");
    assert_eq!(reader.as_deref(), Ok("1"), "the rendered account logs in");

    let c = &cluster.coordinator;
    let node = c.wait_node("worker-1", "dirty", LIMIT, |n| {
        n["schema"][0]["dirty"] == true
    });
    let reason = node["schema"][0]["dirty_reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        reason.contains("migrate-2-to-3.sql.jinja statement 2 (line 3)")
            && reason.contains("MariaDB error 1064"),
        "code, script, statement and template line: {reason}"
    );
    assert_eq!(node["schema"][0]["version"], 2);

    // Every output an operator or a log collector can see.
    let mut outputs = vec![
        ("upgrade apply stdout", out.stdout.clone()),
        ("upgrade apply stderr", out.stderr.clone()),
        ("status", c.cli(&["status"]).stdout),
        ("status json", c.cli(&["-o", "json", "status"]).stdout),
        (
            "upgrade plan",
            c.cli(&["-o", "json", "upgrade", "plan"]).stdout,
        ),
        ("audit", c.cli(&["-o", "json", "audit"]).stdout),
        ("coordinator log", c.log_text()),
    ];
    let jobs = c.cli(&["-o", "json", "jobs", "list"]);
    outputs.push(("jobs list", jobs.stdout.clone()));
    let ids: Vec<String> = jobs.json()["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|j| j["id"].as_str().map(str::to_owned))
        .collect();
    assert!(
        ids.len() >= 2,
        "install and upgrade are listed: {}",
        jobs.stdout
    );
    for id in &ids {
        outputs.push((
            "jobs show",
            c.cli(&["-o", "json", "jobs", "show", id]).stdout,
        ));
        outputs.push(("jobs logs", c.cli(&["jobs", "logs", id]).stdout));
    }
    for agent in &cluster.agents {
        outputs.push(("agent log", agent.log_text()));
        if let Some((_, metrics)) = agent.http("/metrics") {
            outputs.push(("agent metrics", metrics));
        }
    }
    for db in &cluster.dbs {
        outputs.push((
            "server log",
            std::fs::read_to_string(db.log_path()).unwrap_or_default(),
        ));
    }
    outputs.push((
        "bookkeeping",
        cluster
            .db("worker-1")
            .execute("SELECT CONCAT_WS(' ', module, error) FROM qserv_agent.schema_state"),
    ));
    let all_fragments: Vec<String> = fragments(PASSWORD)
        .into_iter()
        .chain(fragments(REPL_PASSWORD))
        .collect();
    for (what, text) in &outputs {
        for fragment in &all_fragments {
            assert!(
                !text.contains(fragment.as_str()),
                "{what} holds the secret fragment {fragment:?}"
            );
        }
    }
    assert!(
        outputs
            .iter()
            .any(|(_, t)| t.contains("MariaDB error 1064")),
        "the search saw the failure itself"
    );

    // Repaired, it carries on; the reason and who are recorded.
    let out = c.cli(&[
        "upgrade",
        "repair",
        "worker-1",
        "--module",
        "worker",
        "--version",
        "3",
        "--reason",
        "ran the fixed SELECT by hand",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let recorded = cluster.db("worker-1").execute(
        "SELECT CONCAT_WS('|', version, forced, reason, repaired_by <> '') FROM qserv_agent.repairs",
    );
    assert_eq!(recorded, "3|0|ran the fixed SELECT by hand|1");
}
