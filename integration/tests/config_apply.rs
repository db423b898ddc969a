//! Reconfiguration end to end (DESIGN §17): real agents whose `worker-xrootd` prints its
//! configuration file when it starts, a real coordinator and the CLI. Diff before apply with the
//! secret masked, apply in maintenance (each node's own rendering, mode 0640, no secret in the
//! store), no diff after, services starting on the new file, normal mode taking only a rolling
//! apply, drift after a hand edit, an undefined value changing nothing, history and rollback.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use qserv_integration::Cluster;
use qserv_integration::cluster::SECRET_QSMASTER;

const LIMIT: Duration = Duration::from_secs(60);
const SERVICE: &str = "worker-xrootd";

/// Gives each worker's agent `worker-xrootd`, which prints its file when it starts; the files.
fn with_service(cluster: &mut Cluster) -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    for agent in cluster.agents.iter_mut().filter(|a| a.role == "worker") {
        let file = agent.dir().join("xrootd.cf");
        std::fs::write(&file, "by hand\n").unwrap_or_else(|e| panic!("{e}"));
        let config = agent.dir().join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "service-controller = \"exec\"\n[[services]]\nname = \"{SERVICE}\"\nexec = \"cat {0}; exec sleep 600\"\nconfig = \"{0}\"\n",
                file.display()
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        agent.set_args(&["--config", &config.display().to_string()]);
        agent.restart();
        files.push((agent.name.clone(), file));
    }
    cluster.wait_ready();
    files
}

fn read(path: &PathBuf) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// What `worker-xrootd` printed on `node` since the agent first started it.
fn printed(cluster: &Cluster, node: &str) -> String {
    let agent = &cluster.agents[cluster.index(node)];
    read(
        &agent
            .dir()
            .join("state/services")
            .join(format!("{SERVICE}.log")),
    )
}

fn rendered(node: &str, marker: &str) -> String {
    format!("[xrootd]\nname = {node}\nmarker = {marker}\npassword = {SECRET_QSMASTER}\n")
}

/// The service's drift and version on `node`, as `status -o json` shows them.
fn config_state(cluster: &Cluster, node: &str) -> (bool, serde_json::Value) {
    let status = cluster.coordinator.status();
    let service = status["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["name"] == node)
        .flat_map(|n| n["service_states"].as_array().cloned().unwrap_or_default())
        .find(|s| s["name"] == SERVICE)
        .unwrap_or_default();
    (
        service["config_drift"] == true,
        service["config_version"].clone(),
    )
}

#[test]
fn a_configuration_is_diffed_applied_rolled_through_watched_and_rolled_back() {
    let mut cluster = Cluster::installed("cf1", 2, &[]);
    let files = with_service(&mut cluster);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let template = |marker: &str, extra: &str| {
        let path = dir.path().join(format!("{marker}.cf"));
        std::fs::write(
            &path,
            format!("[xrootd]\nname = {{{{ node }}}}\nmarker = {marker}\npassword = {{{{ mysqld_user_qserv_password }}}}\n{extra}"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        path.display().to_string()
    };
    let (first, second) = (template("first", ""), template("second", ""));
    let c = &cluster.coordinator;
    let run = |args: &[&str]| c.cli(args);

    // What would change, the password masked.
    let diff = run(&["config", "diff", "--service", SERVICE, &first]);
    assert_eq!(diff.code, 0, "{}", diff.stderr);
    assert!(diff.stdout.contains("=== worker-1") && diff.stdout.contains("-by hand"));
    assert!(
        diff.stdout.contains("+password = [redacted]"),
        "{}",
        diff.stdout
    );
    assert!(!diff.stdout.contains(SECRET_QSMASTER));

    // Applied in maintenance: each node's own rendering, mode 0640; the store keeps templates.
    let apply = run(&[
        "config",
        "apply",
        "--service",
        SERVICE,
        &first,
        "--message",
        "first ✓",
    ]);
    assert_eq!(apply.code, 0, "{}\n{}", apply.stdout, apply.stderr);
    for (node, file) in &files {
        assert_eq!(read(file), rendered(node, "first"));
        let mode = std::fs::metadata(file).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o640));
    }
    for (path, bytes) in c.state_files() {
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(SECRET_QSMASTER),
            "{} holds the secret",
            path.display()
        );
    }
    let again = run(&["config", "diff", "--service", SERVICE, &first]);
    assert_eq!(
        (again.code, again.stdout.as_str()),
        (0, ""),
        "{}",
        again.stderr
    );
    assert_eq!(config_state(&cluster, "worker-1"), (false, 1.into()));

    // The services start on the new file.
    let up = run(&["up", "--timeout", "60s"]);
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    qserv_integration::wait_for("worker-1 printing its file", LIMIT, || {
        printed(&cluster, "worker-1")
            .contains("marker = first")
            .then_some(())
    });

    // In normal mode only a rolling apply writes; it restarts each node's service once.
    let plain = run(&["config", "apply", "--service", SERVICE, &second]);
    assert_eq!(plain.code, 3, "{}\n{}", plain.stdout, plain.stderr);
    assert!(plain.stderr.contains("--rolling"), "{}", plain.stderr);
    assert!(
        files
            .iter()
            .all(|(node, f)| read(f) == rendered(node, "first"))
    );
    let rolling = run(&[
        "config",
        "apply",
        "--service",
        SERVICE,
        &second,
        "--rolling",
    ]);
    assert_eq!(rolling.code, 0, "{}\n{}", rolling.stdout, rolling.stderr);
    for (node, file) in &files {
        assert_eq!(read(file), rendered(node, "second"));
        let log = printed(&cluster, node);
        assert_eq!(
            log.matches("marker = second").count(),
            1,
            "restarted once: {log}"
        );
    }
    assert_eq!(cluster.coordinator.status()["mode"], "normal");

    // A hand edit shows as drift.
    std::fs::write(&files[0].1, "edited by hand\n").unwrap_or_else(|e| panic!("{e}"));
    qserv_integration::wait_for("the hand edit to show as drift", LIMIT, || {
        config_state(&cluster, "worker-1").0.then_some(())
    });

    // An undefined value changes no file on any node, and the refusal names it.
    let broken = template("third", "threads = {{ no_such_value }}\n");
    let refused = run(&[
        "config",
        "apply",
        "--service",
        SERVICE,
        &broken,
        "--rolling",
    ]);
    assert_eq!(refused.code, 3, "{}\n{}", refused.stdout, refused.stderr);
    assert!(
        format!("{}{}", refused.stdout, refused.stderr).contains("'no_such_value'"),
        "{}\n{}",
        refused.stdout,
        refused.stderr
    );
    assert_eq!(read(&files[0].1), "edited by hand\n");
    assert_eq!(read(&files[1].1), rendered("worker-2", "second"));

    // The history lists every version stored; a rollback restores the first everywhere.
    let history = run(&["-o", "json", "config", "history", "--service", SERVICE]).json();
    let versions: Vec<u64> = history["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["version"].as_u64())
        .collect();
    assert_eq!(versions, [1, 2, 3], "{history}");
    assert_eq!(history["versions"][0]["message"], "first ✓");
    let back = run(&[
        "config",
        "rollback",
        "--service",
        SERVICE,
        "--to",
        "1",
        "--rolling",
    ]);
    assert_eq!(back.code, 0, "{}\n{}", back.stdout, back.stderr);
    for (node, file) in &files {
        assert_eq!(
            read(file),
            rendered(node, "first"),
            "{node}, the hand edit included"
        );
    }
    qserv_integration::wait_for("the drift to clear", LIMIT, || {
        (config_state(&cluster, "worker-1") == (false, 4.into())).then_some(())
    });
    let shown = run(&["config", "show", "--service", SERVICE]);
    assert!(shown.stdout.contains("marker = first"), "{}", shown.stdout);

    // Every change and every refusal is in the audit trail.
    let audit = run(&["-o", "json", "audit"]).json();
    let results: Vec<(String, String)> = audit["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            e["operation"]
                .as_str()
                .is_some_and(|o| o.starts_with("config"))
        })
        .map(|e| {
            let result = e["result"].as_str().unwrap_or_default();
            let word = result.split(':').next().unwrap_or_default();
            (
                e["operation"].as_str().unwrap_or_default().to_owned(),
                word.to_owned(),
            )
        })
        .collect();
    let expected = [
        ("config apply", "accepted"),
        ("config apply", "refused"),
        ("config apply", "accepted"),
        ("config apply", "accepted"),
        ("config rollback", "accepted"),
    ]
    .map(|(o, r)| (o.to_owned(), r.to_owned()));
    assert_eq!(results, expected, "{audit}");
}

/// A coordinator SIGKILLed while one node is still rendering (its staging blocks on a FIFO in
/// the partial file's place): no node has written, and once the coordinator is back the job
/// resumes and every node ends on the one version.
#[test]
fn a_coordinator_killed_between_the_phases_resumes_to_one_version() {
    let mut cluster = Cluster::installed("cf2", 2, &[]);
    let files = with_service(&mut cluster);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let template = dir.path().join("t.cf");
    std::fs::write(
        &template,
        "[xrootd]\nname = {{ node }}\nmarker = resumed\npassword = {{ mysqld_user_qserv_password }}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let beside = |file: &PathBuf, suffix: &str| {
        let mut name = file.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let (worker_1, worker_2) = (&files[0].1, &files[1].1);
    let fifo = beside(worker_2, ".qserv-staged.qserv-partial");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(made.success());

    let out = cluster.coordinator.cli(&[
        "config",
        "apply",
        "--service",
        SERVICE,
        &template.display().to_string(),
        "--detach",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let id = out.stdout.trim().to_owned();
    qserv_integration::wait_for("worker-1 to stage its file", LIMIT, || {
        beside(worker_1, ".qserv-staged").exists().then_some(())
    });
    assert_eq!(
        read(worker_1),
        "by hand\n",
        "nothing written while a node renders"
    );

    cluster.coordinator.kill();
    // worker-2's staging goes on (and fails on the FIFO); the next one finds a plain path.
    let drain = std::thread::spawn({
        let fifo = fifo.clone();
        move || std::fs::read(&fifo).map(|b| b.len())
    });
    let _ = drain.join();
    std::fs::remove_file(&fifo).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read(worker_1), "by hand\n");
    cluster.coordinator.restart();

    let waited = cluster.coordinator.cli(&["jobs", "wait", &id]);
    assert_eq!(waited.code, 0, "{}\n{}", waited.stdout, waited.stderr);
    for (node, file) in &files {
        assert_eq!(read(file), rendered(node, "resumed"), "{node}");
    }
    for node in ["worker-1", "worker-2"] {
        qserv_integration::wait_for("version 1 on every node", LIMIT, || {
            (config_state(&cluster, node) == (false, 1.into())).then_some(())
        });
    }
}
