//! Qserv's services on real agents (DESIGN §15): stand-ins for every service of Qserv's layout,
//! started by each node's agent in the instance's order, stopped in reverse, restarted by name,
//! failing at start, started by someone else behind `gate --service`, and a coordinator killed
//! in the middle of `up`.

use std::collections::BTreeMap;
use std::time::Duration;

use qserv_integration::standin::{Behaviour, Event, Kind, QservLayout};
use qserv_integration::{Cluster, CoordinatorProcess, binaries, run_cli, wait_for};
use qserv_model::ServiceOrder;

const LIMIT: Duration = Duration::from_secs(90);

/// The earliest and latest time of `kind` events of `service`, over every node.
fn span(events: &[Event], service: &str, kind: Kind) -> Option<(u128, u128)> {
    let times: Vec<u128> = events
        .iter()
        .filter(|e| e.service == service && e.kind == kind)
        .map(|e| e.at_ns)
        .collect();
    Some((*times.iter().min()?, *times.iter().max()?))
}

/// No service started before every instance of what it comes after was ready.
fn assert_started_in_order(events: &[Event]) {
    for s in ServiceOrder::the_qserv_layout().services() {
        let Some((first_start, _)) = span(events, s.name.as_str(), Kind::Start) else {
            panic!("{} never started: {events:#?}", s.name);
        };
        for before in &s.after {
            let Some((_, last_ready)) = span(events, before.as_str(), Kind::Ready) else {
                panic!("{before} never became ready: {events:#?}");
            };
            assert!(
                last_ready < first_start,
                "{} started before every {before} was ready: {events:#?}",
                s.name
            );
        }
    }
}

/// No service stopped before everything that comes after it had stopped (`skip`: services
/// the agents do not stop).
fn assert_stopped_in_reverse(events: &[Event], skip: &[&str]) {
    let order = ServiceOrder::the_qserv_layout();
    let stopped = order
        .services()
        .iter()
        .filter(|s| !skip.contains(&s.name.as_str()));
    for s in stopped {
        let Some((_, last_stop)) = span(events, s.name.as_str(), Kind::Stop) else {
            panic!("{} never stopped: {events:#?}", s.name);
        };
        for before in s.after.iter().filter(|b| !skip.contains(&b.as_str())) {
            let Some((first_stop, _)) = span(events, before.as_str(), Kind::Stop) else {
                panic!("{before} never stopped: {events:#?}");
            };
            assert!(
                last_stop < first_stop,
                "{before} stopped before every {} had: {events:#?}",
                s.name
            );
        }
    }
}

fn count(events: &[Event], kind: Kind) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for e in events.iter().filter(|e| e.kind == kind) {
        *counts
            .entry((e.node.clone(), e.service.clone()))
            .or_default() += 1;
    }
    counts
}

#[test]
fn up_starts_qserv_services_in_order_down_stops_them_in_reverse_and_one_restarts_alone() {
    let mut cluster = Cluster::installed("dr1", 2, &[]);
    // czar-http is started by someone else (a container) that waits on the gate.
    let layout = QservLayout::apply(&mut cluster, |node, service| Behaviour {
        external: node == "czar-0" && service == "czar-http",
        ..Behaviour::default()
    });
    let czar = cluster.agents[cluster.index("czar-0")].url();
    let gate = std::process::Command::new(binaries::path("qserv-agent"))
        .args([
            "gate",
            "--agent",
            &czar,
            "--service",
            "czar-http",
            "--timeout",
            "80s",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run the gate: {e}"));
    let events_path = layout.events.clone();
    let container = layout.standin("czar-0", "czar-http").command(&events_path);
    let opened = std::thread::spawn(move || {
        let out = gate.wait_with_output();
        let opened_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        // What the container does once its gate opens: start the service.
        let service = std::process::Command::new("/bin/sh")
            .args(["-c", &container])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        (out.map(|o| o.status.code()), opened_at, service)
    });

    let up = cluster
        .coordinator
        .cli(&["up", "--timeout", "60s", "--service-timeout", "60s"]);
    assert_eq!(up.code, 0, "up:\n{}\n{}", up.stdout, up.stderr);
    let (gate_code, opened_at, container) = opened.join().unwrap_or_else(|_| panic!("gate thread"));
    assert_eq!(gate_code.ok().flatten(), Some(0), "the gate opened");
    let events = layout.events();
    assert_started_in_order(&events);
    let (_, proxy_ready) = span(&events, "proxy", Kind::Ready).unwrap_or_default();
    assert!(
        proxy_ready < opened_at,
        "the gate of czar-http opened before proxy was ready"
    );
    assert!(
        count(&events, Kind::Start).values().all(|n| *n == 1),
        "{events:#?}"
    );

    let status = cluster.coordinator.status();
    for node in status["nodes"].as_array().into_iter().flatten() {
        let states = node["service_states"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(!states.is_empty(), "{node}");
        assert!(
            states.iter().all(|s| s["state"] == "ready"),
            "{}: {states:?}",
            node["name"]
        );
        assert_eq!(node["layout_problem"], serde_json::Value::Null);
    }
    let table = cluster.coordinator.cli(&["status"]);
    assert!(table.stdout.contains("3/3"), "{}", table.stdout);

    // One service, one node at a time, nothing else.
    let before = layout.events().len();
    let restart =
        cluster
            .coordinator
            .cli(&["restart", "--service", "worker-xrootd", "--settle", "100ms"]);
    assert_eq!(
        restart.code, 0,
        "restart:\n{}\n{}",
        restart.stdout, restart.stderr
    );
    let restarted: Vec<Event> = layout.events().into_iter().skip(before).collect();
    assert!(
        restarted.iter().all(|e| e.service == "worker-xrootd"),
        "{restarted:#?}"
    );
    let nodes: Vec<(String, Kind)> = restarted.iter().map(|e| (e.node.clone(), e.kind)).collect();
    assert_eq!(
        nodes,
        [
            ("worker-1".to_owned(), Kind::Stop),
            ("worker-1".to_owned(), Kind::Start),
            ("worker-1".to_owned(), Kind::Ready),
            ("worker-2".to_owned(), Kind::Stop),
            ("worker-2".to_owned(), Kind::Start),
            ("worker-2".to_owned(), Kind::Ready),
        ]
    );

    let down_from = layout.events().len();
    let down = cluster.coordinator.cli(&["-o", "json", "down"]);
    assert_eq!(down.code, 0, "down:\n{}\n{}", down.stdout, down.stderr);
    let down_job = down.json()["id"].as_str().unwrap_or_default().to_owned();
    let stops: Vec<Event> = layout.events().into_iter().skip(down_from).collect();
    assert!(stops.iter().all(|e| e.kind == Kind::Stop), "{stops:#?}");
    // Every service the agents run stopped once; the external one is the container's to stop.
    assert_eq!(stops.len(), 11, "{stops:#?}");
    assert!(
        !stops.iter().any(|e| e.service == "czar-http"),
        "{stops:#?}"
    );
    assert_stopped_in_reverse(&stops, &["czar-http"]);
    let logs = cluster.coordinator.cli(&["jobs", "logs", &down_job]);
    assert!(
        logs.stdout
            .contains("czar-http was started by someone else"),
        "{}",
        logs.stdout
    );
    let mut container = container.unwrap_or_else(|e| panic!("the container's service: {e}"));
    assert!(
        container.try_wait().ok().flatten().is_none(),
        "the external service still runs"
    );
    let _ = container.kill();
    let _ = container.wait();
}

#[test]
fn a_service_that_exits_at_start_fails_up_with_exit_4_and_everything_started_stops_again() {
    let mut cluster = Cluster::installed("dr1", 2, &[]);
    let layout = QservLayout::apply(&mut cluster, |node, service| Behaviour {
        exit_at_start: (node == "worker-2" && service == "worker-cmsd").then_some(3),
        ..Behaviour::default()
    });
    let up = cluster
        .coordinator
        .cli(&["up", "--timeout", "60s", "--service-timeout", "20s"]);
    assert_eq!(up.code, 4, "up:\n{}\n{}", up.stdout, up.stderr);
    let said = format!("{}{}", up.stdout, up.stderr);
    assert!(
        said.contains("worker-2") && said.contains("worker-cmsd") && said.contains("exit code 3"),
        "{said}"
    );
    assert!(
        said.contains("standing in for a service that fails"),
        "quotes its output: {said}"
    );
    let status = cluster.coordinator.status();
    assert_eq!(status["mode"], "maintenance");
    let events = wait_for("every started service to stop", LIMIT, || {
        let events = layout.events();
        let starts = count(&events, Kind::Ready);
        let stops = count(&events, Kind::Stop);
        (starts == stops).then_some(events)
    });
    assert!(
        !events.iter().any(|e| e.service == "replication-controller"),
        "nothing after the failed wave started: {events:#?}"
    );
    // The failed wave's other services stopped before the managers did.
    let (_, workers_stopped) = span(&events, "worker-xrootd", Kind::Stop).unwrap_or_default();
    let (managers_stopped, _) = span(&events, "cmsd-manager", Kind::Stop).unwrap_or_default();
    assert!(workers_stopped < managers_stopped, "{events:#?}");
}

#[test]
fn a_service_that_dies_while_later_waves_start_fails_up() {
    let mut cluster = Cluster::installed("dr1", 1, &[]);
    // cmsd-manager (wave 2) dies while the replication controller (wave 4) takes its time.
    let layout = QservLayout::apply(&mut cluster, |node, service| Behaviour {
        exit_after_ms: (node == "czar-0" && service == "cmsd-manager").then_some(1500),
        ready_after_ms: if service == "replication-controller" {
            4000
        } else {
            0
        },
        ..Behaviour::default()
    });
    let up = cluster
        .coordinator
        .cli(&["up", "--timeout", "60s", "--service-timeout", "30s"]);
    assert_eq!(up.code, 4, "up:\n{}\n{}", up.stdout, up.stderr);
    let said = format!("{}{}", up.stdout, up.stderr);
    assert!(
        said.contains("czar-0") && said.contains("cmsd-manager"),
        "{said}"
    );
    assert_eq!(cluster.coordinator.status()["mode"], "maintenance");
    let events = layout.events();
    assert!(
        !events.iter().any(|e| e.service == "proxy"),
        "nothing after the failure started: {events:#?}"
    );
}

#[test]
fn an_agent_lacking_a_service_of_its_role_blocks_up_and_status_says_which() {
    let mut cluster = Cluster::installed("dr1", 1, &[]);
    let _layout = QservLayout::apply(&mut cluster, |_, _| Behaviour::default());
    // worker-1 forgets worker-repl.
    let agent = cluster.agent_mut("worker-1");
    let config = agent.dir().join("agent.toml");
    let text = std::fs::read_to_string(&config).unwrap_or_default();
    let kept: Vec<&str> = text
        .split("\n[[services]]")
        .filter(|e| !e.contains("\"worker-repl\""))
        .collect();
    std::fs::write(&config, kept.join("\n[[services]]")).unwrap_or_else(|e| panic!("{e}"));
    agent.restart();
    let problem = cluster
        .coordinator
        .wait_node("worker-1", "a layout problem", LIMIT, |n| {
            n["layout_problem"]
                .as_str()
                .is_some_and(|p| p.contains("worker-repl"))
        });
    assert!(
        problem["layout_problem"]
            .as_str()
            .is_some_and(|p| p.contains("[[services]]"))
    );
    let up = cluster.coordinator.cli(&["up", "--timeout", "3s"]);
    assert_eq!(up.code, 6, "up:\n{}\n{}", up.stdout, up.stderr);
    assert!(
        up.stderr.contains("worker-repl") || up.stdout.contains("worker-repl"),
        "{}",
        up.stderr
    );
    assert_eq!(cluster.coordinator.status()["mode"], "maintenance");
}

#[test]
fn a_coordinator_killed_in_the_middle_of_up_resumes_in_order_starting_nothing_twice() {
    let mut cluster = Cluster::installed("dr1", 2, &[]);
    // The replication controller takes its time: the coordinator dies while its wave waits.
    let layout = QservLayout::apply(&mut cluster, |_, service| Behaviour {
        ready_after_ms: if service == "replication-controller" {
            3000
        } else {
            0
        },
        ..Behaviour::default()
    });
    // The CLI follows the job; its stream breaks with the coordinator, and it follows on.
    let url = cluster.coordinator.url();
    let follower = std::thread::spawn(move || run_cli(&url, &["up", "--timeout", "60s"]));
    wait_for("the replication controller to start", LIMIT, || {
        layout
            .events()
            .iter()
            .any(|e| e.service == "replication-controller" && e.kind == Kind::Start)
            .then_some(())
    });
    cluster.coordinator.kill();
    cluster.coordinator.restart();
    let up = follower
        .join()
        .unwrap_or_else(|_| panic!("the CLI's thread"));
    assert_eq!(up.code, 0, "the followed up:\n{}\n{}", up.stdout, up.stderr);
    assert!(up.stderr.contains("following it again"), "{}", up.stderr);
    let events = layout.events();
    assert_started_in_order(&events);
    assert!(
        count(&events, Kind::Start).values().all(|n| *n == 1),
        "{events:#?}"
    );
    assert!(!events.iter().any(|e| e.kind == Kind::Stop), "{events:#?}");
    assert_eq!(cluster.coordinator.status()["mode"], "normal");
}

#[test]
fn a_spec_whose_services_form_a_cycle_is_refused_at_start_and_by_install() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let spec = dir.path().join("cycle.toml");
    let text = "name = \"dr1\"\n\n[[nodes]]\nname = \"czar-0\"\nrole = \"czar\"\nagent = \"http://127.0.0.1:1\"\n\n\
                [[services]]\nname = \"proxy\"\nrole = \"czar\"\nafter = [\"czar-http\"]\n\n\
                [[services]]\nname = \"czar-http\"\nrole = \"czar\"\nafter = [\"proxy\"]\n";
    std::fs::write(&spec, text).unwrap_or_else(|e| panic!("{e}"));
    let refused = CoordinatorProcess::try_start(
        &dir.path().join("refused"),
        &[format!("--spec={}", spec.display())],
    );
    let Err((_, log)) = refused else {
        panic!("a coordinator started with a cyclic spec");
    };
    assert!(
        log.contains("cycle.toml")
            && log.contains("line 9")
            && log.contains("proxy → czar-http → proxy"),
        "{log}"
    );
    let coordinator = CoordinatorProcess::start(&dir.path().join("bare"), &[]);
    let install = coordinator.cli(&["install", "--spec", &spec.display().to_string()]);
    assert_eq!(
        install.code, 3,
        "install:\n{}\n{}",
        install.stdout, install.stderr
    );
    assert!(install.stderr.contains("cycle"), "{}", install.stderr);
}
