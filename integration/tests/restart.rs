//! A rolling restart in `normal` (DESIGN §14), on real agents whose exec controller runs a
//! service that writes down when it starts and stops.

use std::time::Duration;

use qserv_integration::{Cluster, NodeSetup, wait_for};

const LIMIT: Duration = Duration::from_secs(90);
const NODES: [(&str, &str); 4] = [
    ("czar-0", "czar"),
    ("worker-1", "worker"),
    ("worker-2", "worker"),
    ("repl-0", "repl"),
];

/// One line of the services' log: `start|stop NODE NANOS`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Event {
    kind: String,
    node: String,
    at: u128,
}

fn events(log: &std::path::Path) -> Vec<Event> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            Some(Event {
                kind: parts.next()?.to_owned(),
                node: parts.next()?.to_owned(),
                at: parts.next()?.parse().ok()?,
            })
        })
        .collect()
}

#[test]
fn a_rolling_restart_goes_node_by_node_in_normal_and_stops_at_one_that_will_not_start() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let log = dir.path().join("services.log");
    let setup: Vec<NodeSetup<'_>> = NODES
        .iter()
        .map(|(name, role)| NodeSetup { name, role })
        .collect();
    let mut cluster = Cluster::start("dr1", &setup);
    for (name, _) in NODES {
        // A service that will not start once its node is marked broken; otherwise it notes its
        // start, and its stop when the agent sends SIGTERM.
        let broken = dir.path().join(format!("broken-{name}"));
        let command = format!(
            "[ -e {broken} ] && exit 1; echo \"start {name} $(date +%s%N)\" >> {log}; \
             trap 'echo \"stop {name} $(date +%s%N)\" >> {log}; exit 0' TERM; sleep 600 & wait",
            broken = broken.display(),
            log = log.display(),
        );
        let agent = cluster.agent_mut(name);
        agent.set_args(&[
            "--service-controller=exec",
            &format!("--service-cmd={command}"),
            "--service-stop-timeout=5s",
        ]);
        agent.restart();
    }
    cluster.wait_ready();
    let c = &cluster.coordinator;
    for command in [vec!["install"], vec!["up", "--timeout", "60s"]] {
        let out = c.cli(&command);
        assert_eq!(out.code, 0, "{command:?}: {}\n{}", out.stdout, out.stderr);
    }
    for (name, _) in NODES {
        c.wait_node(name, "services running", LIMIT, |n| {
            n["services"] == "running"
        });
    }
    let before = c.status();
    let epoch = before["epoch"].as_u64();
    let order: Vec<String> = before["nodes"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .filter_map(|n| n["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mark = events(&log).len();

    let out = c.cli(&["restart", "--settle", "500ms"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let after = c.status();
    assert_eq!(after["mode"], "normal");
    assert_eq!(after["epoch"].as_u64(), epoch, "a restart changes no epoch");

    // Each node stopped and started once, in inventory order, and the next stopped only once
    // the one before had started again.
    let seen: Vec<Event> = events(&log).split_off(mark);
    let expected: Vec<(String, String)> = order
        .iter()
        .flat_map(|n| {
            [
                ("stop".to_owned(), n.clone()),
                ("start".to_owned(), n.clone()),
            ]
        })
        .collect();
    let got: Vec<(String, String)> = seen
        .iter()
        .map(|e| (e.kind.clone(), e.node.clone()))
        .collect();
    assert_eq!(got, expected, "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0].at <= w[1].at),
        "one at a time: {seen:?}"
    );

    // worker-2's service will not start again: the job stops there, names it, and the node
    // after it is left alone.
    std::fs::write(dir.path().join("broken-worker-2"), "").unwrap_or_else(|e| panic!("{e}"));
    let mark = events(&log).len();
    let out = c.cli(&["restart", "--settle", "500ms"]);
    assert_eq!(out.code, 4, "{}\n{}", out.stdout, out.stderr);
    let told = format!("{}{}", out.stdout, out.stderr);
    assert!(told.contains("worker-2"), "{told}");
    let seen: Vec<Event> = events(&log).split_off(mark);
    assert!(
        !seen.iter().any(|e| e.node == "repl-0"),
        "nothing after the failed node: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|e| e.node == "worker-2" && e.kind == "stop"),
        "{seen:?}"
    );
    let status = c.status();
    assert_eq!(status["mode"], "normal");
    assert_eq!(status["epoch"].as_u64(), epoch);
    wait_for("the job's record of worker-2", LIMIT, || {
        let jobs = c
            .cli(&["-o", "json", "jobs", "list", "--limit", "1"])
            .json();
        let error = jobs["jobs"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        error.contains("worker-2").then_some(())
    });
}
