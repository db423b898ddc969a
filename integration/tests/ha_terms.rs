//! Leader terms among coordinators sharing a MariaDB store: a term belongs to one process, a
//! leader whose token was changed under it stops, a new store starts above the tokens agents
//! remember, coordinators with different migration sets do not lead until they agree, and two
//! coordinators may start together on an empty store.

use std::time::Duration;

use qserv_integration::ha::{
    leader_of, password_file, seen_tokens, slow_worker_upgrade, store_args, store_server,
    wait_leader,
};
use qserv_integration::{Cluster, CoordinatorProcess, wait_for};

const LIMIT: Duration = Duration::from_secs(60);

fn token(status: &serde_json::Value) -> u64 {
    status["fencing_token"].as_u64().unwrap_or(0)
}

fn wait_agents_hold(cluster: &Cluster, token: u64) {
    wait_for(&format!("every agent holds token {token}"), LIMIT, || {
        seen_tokens(cluster)
            .iter()
            .all(|t| *t == token)
            .then_some(())
    });
}

#[test]
fn a_changed_token_stops_the_leader_and_a_new_store_starts_above_what_agents_saw() {
    let server = store_server("pw");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let password = password_file(dir.path(), "pw");
    let mut cluster = Cluster::installed("dr1", 1, &store_args(server.port(), &password, "a"));
    let first = token(&wait_leader(&cluster.coordinator, "a"));

    // The token changed by hand: the sitting term is over; a takes the row's term afresh and
    // the agents follow it.
    server.execute("UPDATE qserv_store.leader_lease SET token = token + 10");
    let raised = first + 10;
    wait_for("a leading under the changed token", LIMIT, || {
        let status = cluster.coordinator.status();
        (token(&status) == raised && leader_of(&status).as_deref() == Some("a")).then_some(())
    });
    assert!(
        cluster
            .coordinator
            .log_text()
            .contains("no longer this term's"),
        "the old term stopped"
    );
    let up = cluster.coordinator.cli(&["up"]);
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    wait_agents_hold(&cluster, raised);

    // Deleted, and the store made anew: it counts from 1, the agents remember `raised`.
    for command in [&["down"][..], &["delete", "--confirm", "dr1"]] {
        let out = cluster.coordinator.cli(command);
        assert_eq!(out.code, 0, "{command:?}: {}\n{}", out.stdout, out.stderr);
    }
    cluster.coordinator.kill();
    server.execute("DROP DATABASE qserv_store");
    server.execute("CREATE DATABASE qserv_store");
    cluster.coordinator.restart();
    let install = cluster.coordinator.cli(&["install"]);
    assert_eq!(install.code, 0, "{}\n{}", install.stdout, install.stderr);
    let status = cluster.coordinator.status();
    assert_eq!(status["mode"], "maintenance");
    let taken = token(&status);
    assert!(taken > raised, "a term above what agents saw: {status}");
    wait_agents_hold(&cluster, taken);
    let jobs = cluster
        .coordinator
        .cli(&["-o", "json", "jobs", "list"])
        .json();
    let install_id = jobs["jobs"]
        .as_array()
        .and_then(|list| list.iter().find(|j| j["kind"] == "install"))
        .and_then(|j| j["id"].as_str())
        .unwrap_or_default()
        .to_owned();
    let logs = cluster.coordinator.cli(&["jobs", "logs", &install_id]);
    // The term is raised as soon as the agents are heard from: by the install, or before it.
    assert!(
        logs.stdout
            .contains(&format!("fencing tokens up to {raised}"))
            || cluster
                .coordinator
                .log_text()
                .contains("agents have seen a later fencing token"),
        "the coordinator says why: {}",
        logs.stdout
    );
}

#[test]
fn a_second_process_with_a_frozen_leaders_id_takes_a_new_token() {
    let server = store_server("pw");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let password = password_file(dir.path(), "pw");
    let cluster = Cluster::installed("dr1", 1, &store_args(server.port(), &password, "b"));
    let first = token(&wait_leader(&cluster.coordinator, "b"));

    // The supervisor's mistake: b hangs, and another b starts beside it.
    cluster.coordinator.pause();
    let second = CoordinatorProcess::start(
        &dir.path().join("second"),
        &store_args(server.port(), &password, "b"),
    );
    let status = wait_for("the second b leading", LIMIT, || {
        let s = second.status();
        (leader_of(&s).as_deref() == Some("b") && token(&s) > first).then_some(s)
    });
    let taken = token(&status);
    let up = second.cli(&["up"]);
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    wait_agents_hold(&cluster, taken);

    // The first wakes to find its term over: it follows, and agents keep the second's token.
    cluster.coordinator.resume();
    wait_for("the first b following", LIMIT, || {
        (token(&cluster.coordinator.status()) == taken).then_some(())
    });
    let down = cluster.coordinator.cli(&["down"]);
    assert_eq!(down.code, 0, "{}\n{}", down.stdout, down.stderr);
    assert_eq!(second.status()["mode"], "maintenance");
    assert!(seen_tokens(&cluster).iter().all(|t| *t == taken));
    assert_eq!(token(&second.status()), taken, "no term was taken since");
}

#[test]
fn a_coordinator_killed_and_started_again_at_its_address_takes_its_earlier_term_over_at_once() {
    // A lease far longer than the wait below: leading again in time means the earlier term
    // was taken over, not waited out.
    let args = ["--id=a".to_owned(), "--lease-ttl=120s".to_owned()];
    let mut cluster = Cluster::installed("dr1", 1, &args);
    let first = token(&wait_leader(&cluster.coordinator, "a"));

    // A crash and a restart by the supervisor: same id, same address, another process.
    cluster.coordinator.kill();
    cluster.coordinator.restart();
    // The dead process's term names the same id, so only a new token shows the new term.
    let status = wait_for("a leading under a new term", LIMIT, || {
        let s = cluster.coordinator.status();
        (leader_of(&s).as_deref() == Some("a") && token(&s) > first).then_some(s)
    });
    let taken = token(&status);
    assert!(
        cluster
            .coordinator
            .log_text()
            .contains("held by an earlier process of this coordinator"),
        "the takeover is explained in the log"
    );
    let up = cluster.coordinator.cli(&["up"]);
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    wait_agents_hold(&cluster, taken);
}

#[test]
fn coordinators_with_different_migration_sets_show_it_and_do_not_lead_until_they_agree() {
    let server = store_server("pw");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let password = password_file(dir.path(), "pw");
    let mut cluster = Cluster::installed("dr1", 1, &store_args(server.port(), &password, "a"));
    let other = slow_worker_upgrade(0);
    let mut b_args = store_args(server.port(), &password, "b");
    b_args.push(format!("--migrations-dir={}", other.path().display()));
    let mut b = CoordinatorProcess::start(&dir.path().join("b"), &b_args);

    let status = wait_for("b shown planning with another set", LIMIT, || {
        let s = b.status();
        s["coordinators"]
            .as_array()
            .is_some_and(|list| {
                list.iter()
                    .any(|c| c["id"] == "b" && c["disagrees"] == true)
            })
            .then_some(s)
    });
    assert_eq!(leader_of(&status).as_deref(), Some("a"));
    let warned = status["warnings"].to_string();
    assert!(
        warned.contains("coordinator b plans with another migration set"),
        "{warned}"
    );
    let plan = b.cli(&["upgrade", "plan"]);
    assert_ne!(
        plan.code, 0,
        "b refuses to plan with its own set: {}",
        plan.stdout
    );
    assert!(
        plan.stderr.contains("another migration set"),
        "{}",
        plan.stderr
    );
    let plan = cluster.coordinator.cli(&["upgrade", "plan"]);
    assert_eq!(plan.code, 0, "the leader plans: {}", plan.stderr);

    // a starts again while b runs: neither takes the lease while they disagree.
    cluster.coordinator.kill();
    cluster.coordinator.restart();
    std::thread::sleep(Duration::from_secs(6));
    for coordinator in [&cluster.coordinator, &b] {
        let status = coordinator.status();
        assert_eq!(leader_of(&status), None, "nobody leads: {status}");
    }
    let up = cluster
        .coordinator
        .cli_within(&["up", "--detach"], Duration::from_secs(60));
    assert_ne!(up.code, 0, "no leader takes a change: {}", up.stdout);

    // Given the same set, they agree and one leads.
    b.set_args(&store_args(server.port(), &password, "b"));
    b.kill();
    b.restart();
    let status = wait_for("a leader again", LIMIT, || {
        let s = b.status();
        leader_of(&s).is_some().then_some(s)
    });
    assert!(
        !status["warnings"]
            .to_string()
            .contains("plans with another"),
        "{status}"
    );
    let up = b.cli(&["up"]);
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
}

#[test]
fn two_coordinators_starting_together_on_an_empty_store_both_come_up() {
    for round in 0..3 {
        let server = store_server("pw");
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let password = password_file(dir.path(), "pw");
        let port = server.port();
        // Each coordinator is started, and kept, by a thread of its own: the harness's
        // children die with the thread that spawned them.
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let finished = std::sync::Arc::new(std::sync::Mutex::new(finished));
        let starts: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|id| {
                let home = dir.path().join(id);
                let args = store_args(port, &password, id);
                let (started, url) = std::sync::mpsc::channel();
                let finished = finished.clone();
                let keeper = std::thread::spawn(move || {
                    let coordinator = CoordinatorProcess::try_start(&home, &args);
                    let _ = started.send(
                        coordinator
                            .as_ref()
                            .map(CoordinatorProcess::url)
                            .map_err(|(status, log)| format!("exited with {status}:\n{log}")),
                    );
                    if let Ok(guard) = finished.lock() {
                        let _ = guard.recv();
                    }
                    drop(coordinator);
                });
                (url, keeper)
            })
            .collect();
        let urls: Vec<String> = starts
            .iter()
            .map(|(url, _)| match url.recv() {
                Ok(Ok(url)) => url,
                Ok(Err(why)) => panic!("round {round}: a coordinator {why}"),
                Err(_) => panic!("round {round}: the starting thread ended"),
            })
            .collect();
        let leaders = wait_for("one leader", LIMIT, || {
            let seen: Vec<Option<String>> = urls
                .iter()
                .map(|url| {
                    let out =
                        qserv_integration::run_cli_within(url, &["-o", "json", "status"], LIMIT);
                    assert_eq!(out.code, 0, "round {round}: {}", out.stderr);
                    leader_of(&out.json())
                })
                .collect();
            (seen.iter().all(Option::is_some) && seen[0] == seen[1]).then_some(seen)
        });
        assert!(leaders[0].is_some(), "round {round}");
        for id in ["a", "b"] {
            let log = std::fs::read_to_string(dir.path().join(id).join("coordinator.log"))
                .unwrap_or_default();
            for alarm in ["Duplicate entry", "was interrupted", "WARN"] {
                assert!(
                    !log.contains(alarm),
                    "round {round}: starting together is no trouble for {id}:\n{log}"
                );
            }
        }
        drop(done);
        for (_, keeper) in starts {
            let _ = keeper.join();
        }
    }
}
