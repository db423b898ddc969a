//! What a hostile operator or network found: a frozen agent holds no job and no submission, a
//! cancelled job never runs, a full state disk is an error the coordinator recovers from.

use std::path::Path;
use std::time::Duration;

use qserv_integration::{Cluster, THREE_NODES, run_cli, wait_for};

const LIMIT: Duration = Duration::from_secs(60);

fn certs(dir: &Path, agents: &[&str]) {
    let mut args = vec![
        "certs".to_owned(),
        "init".to_owned(),
        format!("--dir={}", dir.display()),
        "--coordinator=127.0.0.1,localhost".to_owned(),
    ];
    args.extend(
        agents
            .iter()
            .map(|a| format!("--agent={a}=127.0.0.1,localhost")),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_cli("http://127.0.0.1:1", &args);
    assert_eq!(out.code, 0, "certs init failed: {}", out.stderr);
}

/// An instance over mutual TLS, installed and in maintenance.
fn secure_installed(pki: &Path) -> Cluster {
    certs(pki, &["czar-0", "worker-1", "repl-0"]);
    let cluster = Cluster::start_secure("dr1", &THREE_NODES, pki);
    cluster.wait_ready();
    let out = cluster.coordinator.cli_within(&["install"], LIMIT);
    assert_eq!(out.code, 0, "install failed: {}", out.stderr);
    cluster
}

fn job_state(cluster: &Cluster, id: &str) -> serde_json::Value {
    let out = cluster
        .coordinator
        .cli_within(&["-o", "json", "jobs", "show", id], LIMIT);
    assert_eq!(out.code, 0, "jobs show failed: {}", out.stderr);
    out.json()
}

#[test]
fn a_frozen_agent_holds_no_job_and_a_cancelled_job_never_runs() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cluster = secure_installed(&dir.path().join("pki"));
    let worker = cluster.index("worker-1");
    cluster.agents[worker].pause();

    // The wait ends at the operator's deadline with the frozen node named, not minutes later.
    let out = cluster
        .coordinator
        .cli_within(&["up", "--timeout", "8s"], LIMIT);
    assert_eq!(
        out.code, 6,
        "up with a frozen agent times out: {}\n{}",
        out.stdout, out.stderr
    );
    assert!(
        out.stderr.contains("worker-1"),
        "the timeout names the node: {}",
        out.stderr
    );

    // A submission answers while the agent stays frozen, and cancelling the job before it
    // starts means it never starts: not when the agent is back either.
    let out = cluster
        .coordinator
        .cli_within(&["up", "--timeout", "10m", "--detach"], LIMIT);
    assert_eq!(out.code, 0, "up --detach answers: {}", out.stderr);
    let id = out.stdout.trim().to_owned();
    let out = cluster
        .coordinator
        .cli_within(&["jobs", "cancel", &id], LIMIT);
    assert_eq!(out.code, 0, "jobs cancel: {}", out.stderr);
    assert_eq!(job_state(&cluster, &id)["state"], "cancelled");
    std::thread::sleep(Duration::from_secs(4));
    cluster.agents[worker].resume();
    cluster
        .coordinator
        .wait_node("worker-1", "reachable again", LIMIT, |n| {
            n["agent_reachable"] == true
        });
    std::thread::sleep(Duration::from_secs(3));
    let job = job_state(&cluster, &id);
    assert_eq!(job["state"], "cancelled", "the cancelled job ran: {job}");
    assert!(job["started_at"].is_null(), "it never started: {job}");
    assert_eq!(cluster.coordinator.status()["mode"], "maintenance");

    // With the agent back, the same command goes through.
    let out = cluster
        .coordinator
        .cli_within(&["up", "--timeout", "60s"], LIMIT);
    assert_eq!(out.code, 0, "up: {}", out.stderr);
    wait_for("mode normal", LIMIT, || {
        (cluster.coordinator.status()["mode"] == "normal").then_some(())
    });
}

/// A tmpfs of `size` mounted at a new directory; unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run mount: {e}"));
        assert!(
            out.status.success(),
            "cannot mount a tmpfs (the test runs as root, as CI does): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the disk is full.
    fn fill(&self) {
        use std::io::Write;
        let mut file =
            std::fs::File::create(self.path().join("filler")).unwrap_or_else(|e| panic!("{e}"));
        let block = vec![0u8; 4096];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
    }

    fn free(&self) {
        let _ = std::fs::remove_file(self.path().join("filler"));
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_full_state_disk_is_an_error_the_coordinator_recovers_from() {
    let disk = SmallDisk::mount("8m");
    let store = format!(
        "--store=sqlite://{}",
        disk.path().join("coordinator.db").display()
    );
    let mut cluster = Cluster::installed("dr1", 1, &[store]);

    // A job that runs when the disk fills: it stops, and its follower is told why.
    cluster.db_mut("worker-1").kill();
    let url = cluster.coordinator.url();
    let follower = std::thread::spawn(move || {
        qserv_integration::run_cli_within(&url, &["up", "--timeout", "60s"], LIMIT)
    });
    let c = &cluster.coordinator;
    let running = wait_for("the up job to wait for worker-1", LIMIT, || {
        let jobs = c.cli_within(&["-o", "json", "jobs", "list"], LIMIT).json();
        jobs["jobs"]
            .as_array()?
            .iter()
            .find(|j| j["kind"] == "up" && j["state"] == "running")
            .and_then(|j| j["id"].as_str().map(str::to_owned))
    });
    disk.fill();
    cluster.db_mut("worker-1").restart();
    let out = follower
        .join()
        .unwrap_or_else(|_| panic!("the follower panicked"));
    assert_eq!(
        out.code, 1,
        "a job whose end cannot be stored: {}\n{}",
        out.stdout, out.stderr
    );
    assert!(
        out.stderr.contains("full") && out.stderr.contains("coordinator.db"),
        "the error names the store and the cause: {}",
        out.stderr
    );

    // A new command on the full disk: refused with the store named, nothing spins.
    let c = &cluster.coordinator;
    let out = c.cli_within(&["down"], LIMIT);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("full") && out.stderr.contains("coordinator.db"),
        "{}",
        out.stderr
    );
    let (_, body) = wait_for("/readyz to say not ready", LIMIT, || {
        c_http(c, "/readyz").filter(|(code, _)| *code == 503)
    });
    assert!(body.contains("full"), "{body}");
    let before = c.log_text();
    std::thread::sleep(Duration::from_secs(5));
    let during = c.log_text();
    let new = &during[before.len().min(during.len())..];
    let tries = new.matches("cannot store the end of the job").count();
    assert!(
        tries <= 10,
        "no retry without backoff: {tries} tries in 5 s"
    );
    assert!(
        !during.contains("resuming from the last completed step"),
        "the job was not run again"
    );

    // Space back: the store recovers by itself, the job's end is stored, commands go through.
    disk.free();
    wait_for("/readyz to say ready again", LIMIT, || {
        c_http(c, "/readyz").filter(|(code, _)| *code == 200)
    });
    let job = wait_for("the job's end to be stored", LIMIT, || {
        let job = c
            .cli_within(&["-o", "json", "jobs", "show", &running], LIMIT)
            .json();
        (job["state"] != "running").then_some(job)
    });
    assert!(job["store_error"].is_null(), "{job}");
    let out = c.cli_within(&["up", "--timeout", "60s"], LIMIT);
    assert_eq!(
        out.code, 0,
        "up once space is back: {}\n{}",
        out.stdout, out.stderr
    );
    assert_eq!(c.status()["mode"], "normal");
}

fn c_http(c: &qserv_integration::CoordinatorProcess, path: &str) -> Option<(u16, String)> {
    qserv_integration::http_get(c.http_port, path)
}

fn tls_args(pki: &Path, client: &str) -> Vec<String> {
    vec![
        format!("--tls-cert={}", pki.join(format!("{client}.pem")).display()),
        format!("--tls-key={}", pki.join(format!("{client}.key")).display()),
        format!("--tls-ca={}", pki.join("ca.pem").display()),
    ]
}

fn cli_as(cluster: &Cluster, args: &[String], command: &[&str]) -> qserv_integration::CliOutput {
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend_from_slice(command);
    qserv_integration::run_cli_within(&cluster.coordinator.url(), &all, LIMIT)
}

#[test]
fn linked_scripts_are_refused_and_a_servers_words_reach_operators_only() {
    use qserv_integration::migrations::{arg, migrations_dir};
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let pki = dir.path().join("pki");
    let mut cluster = secure_installed(&pki);

    // A link in the migrations directory, aimed at the coordinator's own key: the coordinator
    // does not start, and says which file, without a word of the key.
    let linked = migrations_dir(true, &[]);
    std::os::unix::fs::symlink(
        pki.join("coordinator.key"),
        linked.path().join("worker/migrate-1-to-2-x.sql"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut args: Vec<String> = cluster.coordinator.args().to_vec();
    args.push(arg(&linked));
    match qserv_integration::CoordinatorProcess::try_start(&dir.path().join("other"), &args) {
        Ok(_) => panic!("a coordinator started with a linked migration script"),
        Err((_, log)) => {
            assert!(
                log.contains("migrate-1-to-2-x.sql") && log.contains("symbolic link"),
                "{log}"
            );
            assert!(!log.contains("PRIVATE KEY"), "{log}");
        }
    }

    // A script that fails with the server quoting it: operators read a bounded excerpt,
    // viewers read that it is withheld, everywhere.
    let marker = "Q7-SECRET-MARKER";
    let failing = migrations_dir(
        true,
        &[(
            "worker",
            "migrate-1-to-2-x.sql",
            &format!("SELEC '{marker}{}' FROM nowhere;\n", "x".repeat(3000)),
        )],
    );
    cluster.use_migrations(&failing);
    cluster
        .coordinator
        .wait_node("worker-1", "target 2", LIMIT, |n| {
            n["schema"][0]["target"] == 2
        });
    let out = cluster.coordinator.cli_within(&["upgrade", "apply"], LIMIT);
    assert_eq!(out.code, 4, "{}\n{}", out.stdout, out.stderr);
    let node =
        cluster
            .coordinator
            .wait_node("worker-1", "dirty after the failed statement", LIMIT, |n| {
                n["schema"][0]["dirty_reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("failed"))
            });
    let reason = node["schema"][0]["dirty_reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.contains(marker),
        "operators see the excerpt: {reason}"
    );
    assert!(
        reason.chars().count() < 600,
        "the excerpt is bounded: {} characters",
        reason.chars().count()
    );

    let viewer = tls_args(&pki, "viewer");
    let jobs = cli_as(&cluster, &viewer, &["-o", "json", "jobs", "list"]).json();
    let mut seen = vec![
        cli_as(&cluster, &viewer, &["-o", "json", "status"]).stdout,
        cli_as(&cluster, &viewer, &["status"]).stdout,
        cli_as(&cluster, &viewer, &["-o", "json", "upgrade", "plan"]).stdout,
        cli_as(&cluster, &viewer, &["-o", "json", "audit"]).stdout,
        jobs.to_string(),
    ];
    for job in jobs["jobs"].as_array().into_iter().flatten() {
        let id = job["id"].as_str().unwrap_or_default();
        seen.push(cli_as(&cluster, &viewer, &["-o", "json", "jobs", "show", id]).stdout);
        seen.push(cli_as(&cluster, &viewer, &["jobs", "logs", id]).stdout);
    }
    for text in &seen {
        assert!(
            !text.contains(marker),
            "a viewer read the server's words: {text}"
        );
    }
    assert!(
        seen[0].contains("shown to operators only"),
        "a viewer is told something is withheld: {}",
        seen[0]
    );
}

/// A connection that sends nothing and is kept open.
fn hold(port: u16) -> Option<std::net::TcpStream> {
    std::net::TcpStream::connect(("127.0.0.1", port)).ok()
}

/// Whether the server has closed `stream`: reading it (past whatever the server sent, such as
/// an HTTP/2 server's settings) ends in end of file or an error.
fn closed_by_server(stream: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    }
}

fn counter(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn idle_connections_never_shut_out_the_health_check() {
    let mut cluster = Cluster::start("dr1", &THREE_NODES);
    cluster.wait_ready();
    {
        let agent = cluster.agent_mut("worker-1");
        agent.set_launcher(&["prlimit", "--nofile=128:128", "--"]);
        agent.restart();
    }
    cluster
        .coordinator
        .wait_node("worker-1", "reachable under 128 descriptors", LIMIT, |n| {
            n["db_ready"] == true
        });
    let agent = &cluster.agents[cluster.index("worker-1")];

    // 200 idle connections to each port, more than the agent has descriptors.
    let mut http: Vec<std::net::TcpStream> =
        (0..200).filter_map(|_| hold(agent.http_port)).collect();
    let mut grpc: Vec<std::net::TcpStream> =
        (0..200).filter_map(|_| hold(agent.grpc_port)).collect();
    let (code, body) = agent
        .http("/readyz")
        .unwrap_or_else(|| panic!("no answer from /readyz while 200 connections are held"));
    assert_eq!((code, body.trim()), (200, "ready"));
    // The coordinator's own connection, made before, still answers its keepalive pings (an
    // agent that could not would be unreachable within 2 s).
    std::thread::sleep(Duration::from_secs(3));
    let status = cluster.coordinator.status();
    let node = status["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["name"] == "worker-1"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(node["agent_reachable"], true, "{node}");
    let metrics = agent.http("/metrics").map(|(_, b)| b).unwrap_or_default();
    assert!(
        counter(&metrics, "qserv_agent_http_connections_evicted_total") > 0.0,
        "{metrics}"
    );
    assert!(
        counter(&metrics, "qserv_agent_grpc_connections_refused_total") > 0.0,
        "{metrics}"
    );

    // Idle connections and a client trickling one header byte a second are closed.
    let mut trickle = hold(agent.http_port).unwrap_or_else(|| panic!("cannot connect"));
    let mut open: Vec<std::net::TcpStream> = http.drain(..).chain(grpc.drain(..)).collect();
    let mut trickling = true;
    wait_for(
        "idle connections to be closed",
        Duration::from_secs(40),
        || {
            use std::io::Write;
            let _ = trickle.write_all(b"G");
            std::thread::sleep(Duration::from_millis(900));
            open.retain_mut(|s| !closed_by_server(s));
            trickling = trickling && !closed_by_server(&mut trickle);
            (open.is_empty() && !trickling).then_some(())
        },
    );
    let metrics = agent.http("/metrics").map(|(_, b)| b).unwrap_or_default();
    assert!(
        counter(&metrics, "qserv_agent_http_connections_idle_closed_total") > 0.0,
        "{metrics}"
    );
    assert!(
        counter(&metrics, "qserv_agent_grpc_connections_idle_closed_total") > 0.0,
        "{metrics}"
    );
    assert_eq!(agent.http("/readyz").map(|(c, _)| c), Some(200));
    // New gRPC connections are served again.
    let out = cluster.coordinator.cli_within(&["install"], LIMIT);
    assert_eq!(out.code, 0, "install: {}", out.stderr);
}

#[test]
fn a_migration_chain_larger_than_one_message_is_planned_and_applied_in_parts() {
    use qserv_integration::migrations::migrations_dir;
    // Five scripts of 3.9 MB each: each within the per-script limit, 19.5 MB together.
    let padding: String = "-- padding to make a large script\n".repeat(3_900_000 / 34);
    let scripts: Vec<(String, String)> = (1..=5)
        .map(|v| {
            (
                format!("migrate-{v}-to-{}-large.sql", v + 1),
                format!("{padding}CREATE TABLE big_{v} (i INT);\n"),
            )
        })
        .collect();
    let extra: Vec<(&str, &str, &str)> = scripts
        .iter()
        .map(|(name, text)| ("worker", name.as_str(), text.as_str()))
        .collect();
    let large = migrations_dir(true, &extra);
    let mut cluster = Cluster::installed("dr1", 1, &[]);
    cluster.use_migrations(&large);
    let c = &cluster.coordinator;
    c.wait_node("worker-1", "target 6", LIMIT, |n| {
        n["schema"][0]["target"] == 6
    });

    let plan = c
        .cli_within(&["-o", "json", "upgrade", "plan"], LIMIT)
        .json();
    let worker = plan["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["node"] == "worker-1"))
        .cloned()
        .unwrap_or_default();
    assert!(
        worker["messages"].as_u64().is_some_and(|m| m >= 2),
        "the plan says the chain goes in parts: {plan}"
    );
    let table = c.cli_within(&["upgrade", "plan"], LIMIT);
    assert!(
        table.stdout.contains("parts"),
        "{}\n{}",
        table.stdout,
        table.stderr
    );

    let out = c.cli_within(&["upgrade", "apply"], Duration::from_secs(300));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let node = c.wait_node("worker-1", "at 6", LIMIT, |n| {
        n["schema"][0]["version"] == 6
    });
    assert_eq!(node["schema"][0]["dirty"], false);
    let tables = cluster.db("worker-1").execute(
        "SELECT COUNT(*) FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = 'qservw_worker' AND TABLE_NAME LIKE 'big\\_%'",
    );
    assert_eq!(tables.trim(), "5", "every script ran once");
}

#[test]
fn a_queued_job_that_finds_nothing_to_do_says_so_and_skips_its_steps() {
    let mut cluster = Cluster::installed("dr1", 1, &[]);
    cluster.db_mut("worker-1").kill();
    let c = &cluster.coordinator;
    let first = c.cli_within(&["up", "--detach", "--timeout", "120s"], LIMIT);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let second = c.cli_within(&["up", "--wait", "--detach"], LIMIT);
    assert_eq!(second.code, 0, "{}", second.stderr);
    let (first, second) = (
        first.stdout.trim().to_owned(),
        second.stdout.trim().to_owned(),
    );
    cluster.db_mut("worker-1").restart();
    let c = &cluster.coordinator;
    assert_eq!(c.cli_within(&["jobs", "wait", &first], LIMIT).code, 0);
    let out = c.cli_within(&["jobs", "wait", &second], LIMIT);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("nothing to do"), "{}", out.stdout);

    let job = job_state(&cluster, &second);
    assert_eq!(job["state"], "succeeded", "{job}");
    assert!(
        job["error"].is_null(),
        "no error for a job that did nothing: {job}"
    );
    assert!(
        job["note"]
            .as_str()
            .is_some_and(|n| n.contains("already normal")),
        "{job}"
    );
    let steps = job["steps"].as_array().cloned().unwrap_or_default();
    assert!(
        !steps.is_empty() && steps.iter().all(|s| s["state"] == "skipped"),
        "{job}"
    );

    // jobs logs -o json is one document.
    let logs = c.cli_within(&["-o", "json", "jobs", "logs", &second], LIMIT);
    assert_eq!(logs.code, 0, "{}", logs.stderr);
    let document: serde_json::Value =
        serde_json::from_str(logs.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", logs.stdout));
    assert_eq!(document["id"], second.as_str());
    assert!(
        document["lines"]
            .as_array()
            .is_some_and(|l| l.iter().any(|l| l["message"]
                .as_str()
                .is_some_and(|m| m.contains("nothing to do")))),
        "{document}"
    );
}
