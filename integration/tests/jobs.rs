//! Jobs under stress: up waiting for a database, timing out, refusing a second job, surviving a
//! coordinator killed mid-job; services following the mode.

use std::process::Command;
use std::time::Duration;

use qserv_integration::{Cluster, THREE_NODES, binaries, run_cli, wait_for};

const LIMIT: Duration = Duration::from_secs(30);

fn installed(name: &str, worker_args: &[&str]) -> Cluster {
    let mut cluster = Cluster::start(name, &THREE_NODES);
    if !worker_args.is_empty() {
        let worker = cluster.agent_mut("worker-1");
        worker.set_args(worker_args);
        worker.restart();
    }
    cluster.wait_ready();
    let out = cluster.coordinator.cli(&["install"]);
    assert_eq!(
        out.code, 0,
        "install failed:\n{}\n{}",
        out.stdout, out.stderr
    );
    cluster
}

fn active_job_id(cluster: &Cluster) -> String {
    wait_for("an active job", LIMIT, || {
        cluster.coordinator.status()["active_job"]["id"]
            .as_str()
            .map(str::to_owned)
    })
}

#[test]
fn up_waits_for_a_database_times_out_and_refuses_a_second_job() {
    let mut cluster = installed("dr1", &[]);
    cluster.db_mut("worker-1").kill();
    cluster
        .coordinator
        .wait_node("worker-1", "db down", LIMIT, |n| n["db_ready"] == false);

    let out = cluster.coordinator.cli(&["up", "--timeout", "2s"]);
    assert_eq!(out.code, 6, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("worker-1: database not ready"),
        "names the node and what it lacks: {}",
        out.stderr
    );
    assert_eq!(cluster.coordinator.status()["mode"], "maintenance");

    let url = cluster.coordinator.url();
    let up = std::thread::spawn(move || run_cli(&url, &["up", "--timeout", "60s"]));
    let id = active_job_id(&cluster);

    // Queries answer while the job waits; the progress says what the node lacks.
    let status = cluster.coordinator.status();
    assert_eq!(status["active_job"]["kind"], "up");
    let progress = wait_for("progress for worker-1", LIMIT, || {
        let status = cluster.coordinator.status();
        status["active_job"]["progress"]["worker-1"]
            .as_str()
            .map(str::to_owned)
    });
    assert!(
        progress.starts_with("waiting: database not ready"),
        "{progress}"
    );
    // Each round of checks counts in /metrics; the node's row changes only with its reason.
    let rounds = |cluster: &Cluster| {
        qserv_integration::http_get(cluster.coordinator.http_port, "/metrics")
            .and_then(|(_, body)| {
                body.lines()
                    .find_map(|l| l.strip_prefix("qserv_coordinator_wait_checks_total "))
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
            .unwrap_or(0)
    };
    let first = rounds(&cluster);
    wait_for("more rounds of checks", LIMIT, || {
        (rounds(&cluster) > first).then_some(())
    });

    let out = cluster.coordinator.cli(&["down"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("job {id} (up) is running")),
        "{}",
        out.stderr
    );

    cluster.db_mut("worker-1").restart();
    let out = up
        .join()
        .unwrap_or_else(|_| panic!("the up thread panicked"));
    assert_eq!(out.code, 0, "up failed:\n{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("worker-1: waiting"),
        "live progress was shown: {}",
        out.stdout
    );
    assert_eq!(cluster.coordinator.status()["mode"], "normal");

    let job = cluster
        .coordinator
        .cli(&["-o", "json", "jobs", "show", &id])
        .json();
    assert_eq!(job["state"], "succeeded");
    assert_eq!(job["steps"][0]["name"], "wait-available");
    assert!(job["finished_at"].is_string());
    // The parameters are typed on the wire: the kind and the timeout `up --timeout 60s` asked for.
    assert_eq!(job["params"]["kind"], "up", "{job}");
    assert_eq!(job["params"]["timeout_ms"], 60_000, "{job}");
    assert!(
        job["params"]["format"].is_null(),
        "no store document: {job}"
    );
}

/// Kills worker-1's database and starts `up` detached, which then waits for it; the job's id.
fn up_waiting_for_worker_1(cluster: &mut Cluster) -> String {
    cluster.db_mut("worker-1").kill();
    cluster
        .coordinator
        .wait_node("worker-1", "db down", LIMIT, |n| n["db_ready"] == false);
    let out = cluster
        .coordinator
        .cli(&["up", "--detach", "--timeout", "120s"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout.trim().to_owned()
}

#[test]
fn a_coordinator_killed_mid_job_resumes_it() {
    let mut cluster = installed("dr1", &[]);
    let id = up_waiting_for_worker_1(&mut cluster);
    wait_for("the job to wait for worker-1", LIMIT, || {
        let status = cluster.coordinator.status();
        status["active_job"]["progress"]["worker-1"]
            .as_str()
            .is_some_and(|p| p.starts_with("waiting"))
            .then_some(())
    });

    cluster.coordinator.kill();
    cluster.db_mut("worker-1").restart();
    cluster.coordinator.restart();

    let out = cluster.coordinator.cli(&["jobs", "wait", &id]);
    assert_eq!(
        out.code, 0,
        "the resumed job failed:\n{}\n{}",
        out.stdout, out.stderr
    );
    assert_eq!(cluster.coordinator.status()["mode"], "normal");
    let logs = cluster.coordinator.cli(&["jobs", "logs", &id]);
    assert!(
        logs.stdout
            .contains("resuming from the last completed step"),
        "{}",
        logs.stdout
    );
    let jobs = cluster
        .coordinator
        .cli(&["-o", "json", "jobs", "list"])
        .json();
    let ups = jobs["jobs"]
        .as_array()
        .map(|j| j.iter().filter(|j| j["kind"] == "up").count());
    assert_eq!(ups, Some(1), "the same job resumed, no new one");
}

fn gate(agent: &str, timeout: &str) -> (i32, String) {
    let out = Command::new(binaries::path("qserv-agent"))
        .args(["gate", "--agent", agent, "--timeout", timeout])
        .output()
        .unwrap_or_else(|e| panic!("cannot run qserv-agent gate: {e}"));
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn services_follow_the_mode_and_the_gate_opens_in_normal() {
    let marker = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let pidfile = marker.path().join("service.pid");
    let command = format!("echo $$ > {}; exec sleep 600", pidfile.display());
    let mut cluster = installed(
        "dr1",
        &[
            "--service-controller=exec",
            &format!("--service-cmd={command}"),
            "--service-stop-timeout=2s",
        ],
    );
    let worker = cluster.agents[1].url();
    let c = &cluster.coordinator;

    c.wait_node("worker-1", "services stopped in maintenance", LIMIT, |n| {
        n["services"] == "stopped" && n["agent_mode"] == "maintenance"
    });
    let (code, text) = gate(&worker, "1s");
    assert_eq!(code, 6, "the gate stays closed in maintenance: {text}");
    assert!(text.contains("mode maintenance"), "{text}");

    let out = c.cli(&["up", "--timeout", "60s"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    c.wait_node("worker-1", "services running", LIMIT, |n| {
        n["services"] == "running"
    });
    let pid = wait_for("the service's pid file", LIMIT, || {
        std::fs::read_to_string(&pidfile).ok()
    });
    let proc_dir = format!("/proc/{}", pid.trim());
    assert!(std::path::Path::new(&proc_dir).exists(), "the service runs");
    let (code, text) = gate(&worker, "5s");
    assert_eq!(code, 0, "{text}");

    // An agent restarted while the coordinator is away keeps doing what it last did.
    cluster.coordinator.kill();
    cluster.agent_mut("worker-1").restart();
    let (code, text) = gate(&worker, "5s");
    assert_eq!(code, 0, "the persisted mode survives a restart: {text}");
    cluster.coordinator.restart();

    let out = cluster.coordinator.cli(&["down"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    cluster
        .coordinator
        .wait_node("worker-1", "services stopped", LIMIT, |n| {
            n["services"] == "stopped"
        });
    let new_pid = std::fs::read_to_string(&pidfile).unwrap_or_default();
    wait_for("the service to exit", LIMIT, || {
        (!std::path::Path::new(&format!("/proc/{}", new_pid.trim())).exists()).then_some(())
    });
}

#[test]
fn a_failed_install_stays_installing_and_resumes() {
    let mut cluster = Cluster::start("dr1", &THREE_NODES);
    let repl = cluster.agent_mut("repl-0");
    repl.write_secrets("repl_user = \"qsreplica\"\n");
    repl.restart();
    cluster.wait_ready();
    let out = cluster.coordinator.cli(&["install"]);
    assert_eq!(out.code, 4, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("repl-0") && out.stderr.contains("repl_password"),
        "names the node and the missing secret: {}",
        out.stderr
    );
    assert_eq!(cluster.coordinator.status()["mode"], "installing");

    // Everything but install is refused while installing.
    let out = cluster.coordinator.cli(&["up"]);
    assert_eq!(out.code, 3);
    assert!(
        out.stderr.contains("run 'qserv install' again"),
        "{}",
        out.stderr
    );

    let repl = cluster.agent_mut("repl-0");
    repl.write_secrets("repl_user = \"qsreplica\"\nrepl_password = \"fixed-Secret\"\n");
    repl.restart();
    cluster
        .coordinator
        .wait_node("repl-0", "ready", LIMIT, |n| n["db_ready"] == true);
    let out = cluster.coordinator.cli(&["install"]);
    assert_eq!(
        out.code, 0,
        "the second install resumes:\n{}\n{}",
        out.stdout, out.stderr
    );
    assert_eq!(cluster.coordinator.status()["mode"], "maintenance");
    assert!(
        cluster
            .db("repl-0")
            .execute_as("qsreplica", "fixed-Secret", "SELECT 1")
            .is_ok()
    );
}

#[test]
fn jobs_queue_with_wait_and_can_be_cancelled() {
    let mut cluster = installed("dr1", &[]);
    cluster.db_mut("worker-1").kill();
    cluster
        .coordinator
        .wait_node("worker-1", "db down", LIMIT, |n| n["db_ready"] == false);
    let c = &cluster.coordinator;

    let first = c
        .cli(&["up", "--detach", "--timeout", "120s"])
        .stdout
        .trim()
        .to_owned();
    let out = c.cli(&["jobs", "cancel", &first]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = c.cli(&["jobs", "wait", &first]);
    assert_eq!(
        out.code, 4,
        "a cancelled job is not a success: {}",
        out.stderr
    );
    let job = c.cli(&["-o", "json", "jobs", "show", &first]).json();
    assert_eq!(job["state"], "cancelled");
    assert_eq!(c.status()["mode"], "maintenance");

    let up = c
        .cli(&["up", "--detach", "--timeout", "120s"])
        .stdout
        .trim()
        .to_owned();
    let out = c.cli(&["down", "--wait", "--detach"]);
    assert_eq!(
        out.code, 0,
        "--wait queues instead of refusing: {}",
        out.stderr
    );
    let down = out.stdout.trim().to_owned();
    let job = c.cli(&["-o", "json", "jobs", "show", &down]).json();
    assert_eq!(job["state"], "queued");

    cluster.db_mut("worker-1").restart();
    let c = &cluster.coordinator;
    assert_eq!(c.cli(&["jobs", "wait", &up]).code, 0);
    let out = c.cli(&["jobs", "wait", &down]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        c.status()["mode"],
        "maintenance",
        "up then down ran in order"
    );
}

/// The coordinator's count of tasks feeding followed jobs and logs.
fn stream_tasks(cluster: &Cluster) -> Option<u64> {
    let (_, body) = qserv_integration::http_get(cluster.coordinator.http_port, "/metrics")?;
    body.lines()
        .find_map(|l| l.strip_prefix("qserv_coordinator_stream_tasks "))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn followers_that_leave_a_quiet_job_free_their_tasks() {
    let mut cluster = installed("dr1", &[]);
    let id = up_waiting_for_worker_1(&mut cluster);
    assert_eq!(stream_tasks(&cluster), Some(0));

    // Two followers of a job that says nothing new: one of its logs, one of the job itself.
    let follow = |args: &[&str]| {
        Command::new(binaries::path("qserv"))
            .arg(format!("--coordinator={}", cluster.coordinator.url()))
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start qserv: {e}"))
    };
    let mut logs = follow(&["jobs", "logs", &id, "--follow"]);
    let mut waiter = follow(&["jobs", "wait", &id]);
    wait_for("two stream tasks", LIMIT, || {
        (stream_tasks(&cluster) == Some(2)).then_some(())
    });
    let _ = logs.kill();
    let _ = waiter.kill();
    let _ = logs.wait();
    let _ = waiter.wait();
    wait_for("the tasks to end with their clients", LIMIT, || {
        (stream_tasks(&cluster) == Some(0)).then_some(())
    });
    // The job itself goes on: the store has it running, and the status shows it (a status
    // published between two rounds of a loaded machine may lag; the store decides).
    let shown = cluster
        .coordinator
        .cli_within(&["-o", "json", "jobs", "show", &id], LIMIT);
    assert_eq!(shown.json()["state"], "running", "{}", shown.stdout);
    wait_for("the status to show the job", LIMIT, || {
        (cluster.coordinator.status()["active_job"]["id"] == id.as_str()).then_some(())
    });

    // One client may hold only so many streams; beyond, a clear refusal.
    let mut args = cluster.coordinator.args().to_vec();
    args.push("--max-streams-per-client=1".to_owned());
    cluster.coordinator.set_args(&args);
    cluster.coordinator.restart();
    let mut holder = Command::new(binaries::path("qserv"))
        .arg(format!("--coordinator={}", cluster.coordinator.url()))
        .args(["jobs", "logs", &id, "--follow"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start qserv: {e}"));
    wait_for("the first stream", LIMIT, || {
        (stream_tasks(&cluster) == Some(1)).then_some(())
    });
    let out = cluster.coordinator.cli(&["jobs", "logs", &id, "--follow"]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stderr.contains("open streams") && out.stderr.contains("--max-streams-per-client"),
        "{}",
        out.stderr
    );
}

/// Processes whose command line is exactly `words`, with their environment.
fn processes(words: &[&str]) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            (args == words).then(|| {
                let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
                (pid, String::from_utf8_lossy(&environ).replace('\0', "\n"))
            })
        })
        .collect()
}

#[test]
fn an_agent_killed_in_normal_takes_its_services_over_instead_of_doubling_them() {
    // A sleep long and odd enough to be this test's own.
    let words = ["sleep", "6173"];
    let mut cluster = installed(
        "dr1",
        &[
            "--service-controller=exec",
            "--service-cmd=exec sleep 6173",
            "--service-stop-timeout=2s",
        ],
    );
    let c = &cluster.coordinator;
    let out = c.cli(&["up", "--timeout", "60s"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let first = wait_for("the service", LIMIT, || {
        let found = processes(&words);
        (found.len() == 1).then(|| found[0].clone())
    });
    assert!(
        !first.1.contains("QSERV_"),
        "the service's environment holds no QSERV_ variable:\n{}",
        first.1
    );

    let worker = cluster.agent_mut("worker-1");
    worker.kill();
    assert_eq!(
        processes(&words).len(),
        1,
        "the services outlive a SIGKILLed agent"
    );
    worker.restart();
    cluster
        .coordinator
        .wait_node("worker-1", "the agent back, services running", LIMIT, |n| {
            n["agent_reachable"] == true && n["services"] == "running"
        });
    std::thread::sleep(Duration::from_secs(2));
    let now = processes(&words);
    assert_eq!(
        now.iter().map(|(pid, _)| *pid).collect::<Vec<_>>(),
        [first.0],
        "exactly one copy, the one that was running"
    );

    // The taken-over group is stopped by down like one the agent started.
    let out = cluster.coordinator.cli(&["down"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    wait_for("the service to stop", LIMIT, || {
        processes(&words).is_empty().then_some(())
    });
}

#[test]
fn lists_page_and_retention_prunes_what_is_past_it() {
    let mut cluster = installed("dr1", &[]);
    let c = &cluster.coordinator;
    for command in ["up", "down"] {
        let out = c.cli(&[command]);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let jobs = |args: &[&str]| {
        let mut all = vec!["-o", "json", "jobs", "list"];
        all.extend_from_slice(args);
        c.cli(&all).json()["jobs"]
            .as_array()
            .map(Vec::len)
            .unwrap_or_default()
    };
    assert_eq!(jobs(&[]), 3, "install, up and down");
    assert_eq!(jobs(&["--limit", "1"]), 1);
    let audit = c.cli(&["-o", "json", "audit", "--limit", "2"]);
    let page = audit.json();
    assert_eq!(page["entries"].as_array().map(Vec::len), Some(2));
    assert_eq!(page["truncated"], true, "{}", audit.stdout);
    assert_eq!(
        page["entries"][1]["operation"], "down",
        "the newest entries, oldest first"
    );
    let table = c.cli(&["audit", "--limit", "1"]);
    assert!(
        table.stderr.contains("showing the newest 1"),
        "{}",
        table.stderr
    );
    let install = c.cli(&["-o", "json", "jobs", "list"]).json()["jobs"][2]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let all = c.cli(&["jobs", "logs", &install]).stdout.lines().count();
    let last = c.cli(&["jobs", "logs", &install, "--limit", "2"]).stdout;
    assert!(all > 2, "install logs more than two lines: {all}");
    assert_eq!(last.lines().count(), 2, "{last}");

    // Restarted with a retention shorter than the jobs' age, the coordinator prunes them and
    // their audit entries at once.
    std::thread::sleep(Duration::from_millis(1500));
    let mut args = cluster.coordinator.args().to_vec();
    args.push("--retain=1s".to_owned());
    cluster.coordinator.set_args(&args);
    cluster.coordinator.restart();
    let c = &cluster.coordinator;
    wait_for("finished jobs pruned", LIMIT, || {
        (c.cli(&["-o", "json", "jobs", "list"]).json()["jobs"]
            .as_array()
            .map(Vec::len)
            == Some(0))
        .then_some(())
    });
    let audit = c.cli(&["-o", "json", "audit", "--since", "1d"]).json();
    assert_eq!(
        audit["entries"].as_array().map(Vec::len),
        Some(0),
        "{audit}"
    );
    assert_eq!(
        c.status()["mode"],
        "maintenance",
        "the instance itself is kept"
    );
}
