//! What a hostile operator or network found: a frozen agent holds no job and no submission, a
//! cancelled job never runs, a full state disk is an error the coordinator recovers from.

use std::path::Path;
use std::time::Duration;

use qserv_integration::{Cluster, NodeSetup, run_cli, wait_for};

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

const NODES: [NodeSetup<'static>; 3] = [
    NodeSetup {
        name: "czar-0",
        role: "czar",
    },
    NodeSetup {
        name: "worker-1",
        role: "worker",
    },
    NodeSetup {
        name: "repl-0",
        role: "repl",
    },
];

/// An instance over mutual TLS, installed and in maintenance.
fn secure_installed(pki: &Path) -> Cluster {
    certs(pki, &["czar-0", "worker-1", "repl-0"]);
    let cluster = Cluster::start_secure("dr1", &NODES, pki);
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
