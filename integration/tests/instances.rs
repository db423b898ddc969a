//! Several data releases side by side (DESIGN §14): `qserv instances` asks every configured
//! instance at once, an instance that does not answer is a row saying so, and a change meant for
//! one instance is refused by another's coordinator.

use qserv_integration::{Cluster, run_qserv};
use serde_json::Value;

fn config_args(config: &str, args: &[&str]) -> Vec<String> {
    let mut all = vec!["--config".to_owned(), config.to_owned()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    all
}

fn qserv(config: &str, args: &[&str]) -> qserv_integration::CliOutput {
    let all = config_args(config, args);
    run_qserv(&all.iter().map(String::as_str).collect::<Vec<_>>())
}

fn row<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["instances"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == name))
        .unwrap_or_else(|| panic!("no row for {name}: {doc}"))
}

#[test]
fn two_instances_side_by_side_and_never_the_wrong_one() {
    let dr1 = Cluster::installed("dr1", 1, &[]);
    let mut dr2 = Cluster::installed("dr2", 1, &[]);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = dir.path().join("qserv").join("config.toml");
    let config = config.to_string_lossy().into_owned();
    for (name, cluster) in [("dr1", &dr1), ("dr2", &dr2)] {
        let added = qserv(
            &config,
            &[
                "instances",
                "add",
                name,
                "--coordinator",
                &cluster.coordinator.url(),
            ],
        );
        assert_eq!(added.code, 0, "{}", added.stderr);
    }

    // Both answer: one row each, complete.
    let out = qserv(&config, &["-o", "json", "instances"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let doc = out.json();
    for name in ["dr1", "dr2"] {
        let row = row(&doc, name);
        assert_eq!(row["reachable"], true, "{row}");
        assert_eq!(row["mode"], "maintenance", "{row}");
        assert!(row["epoch"].as_u64().unwrap_or(0) >= 1, "{row}");
        let worker = &row["modules"]["worker"];
        assert!(
            worker["target"].is_i64() && worker["lowest"] == worker["target"],
            "an installed instance is at target: {row}"
        );
    }
    let table = qserv(&config, &["instances"]);
    assert!(
        table.stdout.contains("dr1") && table.stdout.contains("dr2"),
        "{}",
        table.stdout
    );

    // Read-only commands for every instance at once.
    let all = qserv(&config, &["--instance", "all", "-o", "json", "status"]);
    assert_eq!(all.code, 0, "{}", all.stderr);
    let doc = all.json();
    assert_eq!(row(&doc, "dr2")["status"]["instance"], "dr2");
    let refused = qserv(&config, &["--instance", "all", "down"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);

    // A change meant for dr1 that reaches dr2's coordinator changes nothing there.
    let wrong = dir.path().join("wrong.toml");
    std::fs::write(
        &wrong,
        format!(
            "[instances.dr1]\ncoordinator = \"{}\"\n",
            dr2.coordinator.url()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let wrong = wrong.to_string_lossy().into_owned();
    let up = qserv(&wrong, &["--instance", "dr1", "up"]);
    assert_eq!(up.code, 3, "{}\n{}", up.stdout, up.stderr);
    assert!(
        up.stderr.contains("'dr2'") && up.stderr.contains("'dr1'"),
        "{}",
        up.stderr
    );
    assert_eq!(dr2.coordinator.status()["mode"], "maintenance");
    let audit = dr2.coordinator.cli(&["-o", "json", "audit"]);
    assert!(
        audit.stdout.contains("meant for 'dr1'"),
        "the refusal is in the trail: {}",
        audit.stdout
    );
    // Reading it under the wrong name is refused too, and the instances table says so.
    let status = qserv(&wrong, &["--instance", "dr1", "status"]);
    assert_eq!(status.code, 3, "{}\n{}", status.stdout, status.stderr);
    assert!(
        status.stderr.contains("runs instance 'dr2'"),
        "{}",
        status.stderr
    );
    let rows = qserv(&wrong, &["-o", "json", "instances"]);
    assert_eq!(rows.code, 3, "{}", rows.stderr);
    let misnamed = row(&rows.json(), "dr1").clone();
    assert!(
        misnamed["error"]
            .as_str()
            .is_some_and(|e| e.contains("runs instance 'dr2'")),
        "{misnamed}"
    );

    // Through its own name the same change goes through.
    let up = qserv(&config, &["--instance", "dr2", "up"]);
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);

    // dr2's coordinator hangs: its row says so within the bounded time, dr1's is complete.
    dr2.coordinator.pause();
    let out = qserv(&config, &["-o", "json", "instances", "--timeout", "2s"]);
    assert_eq!(out.code, 5, "{}\n{}", out.stdout, out.stderr);
    let doc = out.json();
    let hung = row(&doc, "dr2");
    assert_eq!(hung["reachable"], false, "{hung}");
    assert!(
        hung["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{hung}"
    );
    assert_eq!(row(&doc, "dr1")["mode"], "maintenance");
    dr2.coordinator.resume();
    dr2.coordinator.kill();
    let out = qserv(&config, &["-o", "json", "instances"]);
    assert_eq!(row(&out.json(), "dr2")["reachable"], false);
    assert_eq!(row(&out.json(), "dr1")["reachable"], true);
}
