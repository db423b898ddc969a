//! An upgrade over 1,000 simulated agents (DESIGN §10, issue "bounded under load"): what it costs
//! the coordinator's store (write statements, rows) and its CPU, and how long it takes. The
//! agents answer from memory, so the figures are the coordinator's own.
//!
//! `cargo bench -p qserv-integration --bench fleet` (QSERV_BENCH_AGENTS overrides 1000).

mod sim;

use std::time::{Duration, Instant};

use qserv_integration::watch::StatusWatch;
use qserv_integration::{CoordinatorProcess, http_get};

const LIMIT: Duration = Duration::from_secs(600);

/// A counter or gauge from the coordinator's `/metrics`.
fn metric(coordinator: &CoordinatorProcess, name: &str) -> f64 {
    let (_, body) = http_get(coordinator.http_port, "/metrics")
        .unwrap_or_else(|| panic!("the coordinator's /metrics did not answer"));
    body.lines()
        .find_map(|line| {
            let (key, value) = line.split_once(' ')?;
            (key == name).then(|| value.trim().parse().ok()).flatten()
        })
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// User plus system CPU seconds the process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("cannot read the coordinator's CPU time: {e}"));
    // Fields after the command name, which may hold spaces, closed by the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command, in clock
    // ticks of USER_HZ, which Linux fixes at 100 for every architecture's user space.
    (ticks(11) + ticks(12)) / 100.0
}

struct Cost {
    statements: f64,
    rows: f64,
    cpu: f64,
}

fn cost(coordinator: &CoordinatorProcess) -> Cost {
    Cost {
        statements: metric(
            coordinator,
            "qserv_coordinator_store_write_statements_total",
        ),
        rows: metric(coordinator, "qserv_coordinator_store_rows_written_total"),
        cpu: cpu_seconds(
            coordinator
                .pid()
                .unwrap_or_else(|| panic!("no coordinator")),
        ),
    }
}

fn measure(coordinator: &CoordinatorProcess, what: &str, count: usize, args: &[&str]) {
    let before = cost(coordinator);
    let started = Instant::now();
    let out = coordinator.cli(args);
    let wall = started.elapsed();
    assert_eq!(out.code, 0, "{what} failed: {}", out.stderr);
    let after = cost(coordinator);
    println!(
        "{what} over {count} simulated agents: {:.2} s wall, coordinator CPU {:.2} s, \
         store writes {:.0} statements / {:.0} rows ({:.1} rows per node)",
        wall.as_secs_f64(),
        after.cpu - before.cpu,
        after.statements - before.statements,
        after.rows - before.rows,
        (after.rows - before.rows) / count as f64,
    );
}

fn main() {
    let count = std::env::var("QSERV_BENCH_AGENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    // Installed at the bundled version 1; the coordinator's migrations go to 3 in two scripts.
    let spec = sim::fleet(&runtime, count, Some(1));
    let migrations = qserv_integration::migrations::migrations_dir(
        true,
        &[
            ("czar", "migrate-1-to-2.sql", "SELECT 1;\n"),
            ("czar", "migrate-2-to-3.sql", "SELECT 1;\n"),
            ("repl", "migrate-1-to-2.sql", "SELECT 1;\n"),
            ("repl", "migrate-2-to-3.sql", "SELECT 1;\n"),
            ("worker", "migrate-1-to-2.sql", "SELECT 1;\n"),
            ("worker", "migrate-2-to-3.sql", "SELECT 1;\n"),
        ],
    );
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let spec_path = dir.path().join("spec.toml");
    std::fs::write(&spec_path, spec).unwrap_or_else(|e| panic!("{e}"));
    let coordinator = CoordinatorProcess::start(
        &dir.path().join("c"),
        &[
            format!("--spec={}", spec_path.display()),
            qserv_integration::migrations::arg(&migrations),
        ],
    );
    let watch = StatusWatch::start(&coordinator.url());
    watch.until(LIMIT, |s| {
        s["nodes"]
            .as_array()
            .is_some_and(|n| n.len() == count && n.iter().all(|n| n["agent_reachable"] == true))
    });
    measure(
        &coordinator,
        "install --adopt",
        count,
        &["install", "--adopt"],
    );
    measure(&coordinator, "upgrade apply", count, &["upgrade", "apply"]);
    let status = coordinator.status();
    let behind = status["nodes"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .filter(|n| {
                    n["schema"]
                        .as_array()
                        .is_none_or(|s| s.iter().any(|s| s["version"] != 3))
                })
                .count()
        })
        .unwrap_or(count);
    assert_eq!(behind, 0, "nodes not at version 3 after the upgrade");
    drop(coordinator);
    runtime.shutdown_background();
}
