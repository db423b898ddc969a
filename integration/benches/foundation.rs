//! Foundation figures (DESIGN §10): how fast a killed database or agent shows in `status`, how
//! long `qserv status` takes, and how much memory an idle agent holds.
//!
//! Run with `cargo bench -p qserv-integration --bench foundation`. Times are measured from the
//! kill to the arrival of the status update on a `qserv status --watch` stream.

use std::time::{Duration, Instant};

use qserv_integration::watch::{StatusWatch, node, rss_kib};
use qserv_integration::{Cluster, NodeSetup};

const RUNS: usize = 7;
const LIMIT: Duration = Duration::from_secs(30);

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn percentile(values: &[Duration], p: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn field(name: &'static str, key: &'static str, want: bool) -> impl Fn(&serde_json::Value) -> bool {
    move |status| node(status, name).is_some_and(|n| n[key] == want)
}

fn main() {
    let mut cluster = Cluster::start(
        "bench",
        &[
            NodeSetup {
                name: "czar-0",
                role: "czar",
            },
            NodeSetup {
                name: "worker-1",
                role: "worker",
            },
        ],
    );
    let watch = StatusWatch::start(&cluster.coordinator.url());
    watch.until(LIMIT, |s| s["health"] == "ok");

    let (mut db_down, mut db_up, mut agent_down, mut agent_up) = (vec![], vec![], vec![], vec![]);
    let mut frozen = vec![];
    for _ in 0..RUNS {
        let t = Instant::now();
        cluster.db_mut("worker-1").kill();
        db_down.push(watch.until(LIMIT, field("worker-1", "db_ready", false)).0 - t);
        cluster.db_mut("worker-1").restart();
        // restart() returns once the server greets; count from that moment.
        let ready_at = Instant::now();
        db_up.push(
            watch
                .until(LIMIT, field("worker-1", "db_ready", true))
                .0
                .saturating_duration_since(ready_at),
        );

        let t = Instant::now();
        cluster.agent_mut("czar-0").kill();
        agent_down.push(
            watch
                .until(LIMIT, field("czar-0", "agent_reachable", false))
                .0
                - t,
        );
        cluster.agent_mut("czar-0").restart();
        let listening_at = Instant::now();
        agent_up.push(
            watch
                .until(LIMIT, field("czar-0", "agent_reachable", true))
                .0
                .saturating_duration_since(listening_at),
        );
    }

    for _ in 0..RUNS {
        let t = Instant::now();
        cluster.agents[1].pause();
        frozen.push(
            watch
                .until(LIMIT, field("worker-1", "agent_reachable", false))
                .0
                - t,
        );
        cluster.agents[1].resume();
        watch.until(LIMIT, field("worker-1", "agent_reachable", true));
    }

    // False alarms on a loaded host: every CPU kept busy twice over while nothing else changes;
    // any agent reported unreachable meanwhile is a false alarm.
    let load_secs: u64 = std::env::var("QSERV_BENCH_LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let busy = 2 * std::thread::available_parallelism().map_or(2, usize::from);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let burners: Vec<_> = (0..busy)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x: u64 = 1;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            })
        })
        .collect();
    // How long an agent can go without answering under that load: /healthz is served by the
    // same runtime as its gRPC port and its keepalive pings.
    let port = cluster.agents[1].http_port;
    let polling = stop.clone();
    let poller = std::thread::spawn(move || {
        let mut worst = Duration::ZERO;
        while !polling.load(std::sync::atomic::Ordering::Relaxed) {
            let t = Instant::now();
            let _ = qserv_integration::http_get(port, "/healthz");
            worst = worst.max(t.elapsed());
            std::thread::sleep(Duration::from_millis(20));
        }
        worst
    });
    let updates = watch.collect(Duration::from_secs(load_secs));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let slowest_answer = poller.join().unwrap_or_default();
    for burner in burners {
        let _ = burner.join();
    }
    let false_alarms = updates
        .iter()
        .filter(|(_, s)| {
            s["nodes"]
                .as_array()
                .is_some_and(|nodes| nodes.iter().any(|n| n["agent_reachable"] == false))
        })
        .count();

    let mut latencies = Vec::new();
    for _ in 0..100 {
        let out = cluster.coordinator.cli(&["-o", "json", "status"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        latencies.push(out.elapsed);
    }

    std::thread::sleep(Duration::from_secs(5));
    let agent_rss = cluster.agents[1]
        .pid()
        .and_then(rss_kib)
        .unwrap_or_default();

    println!("foundation benchmark ({RUNS} runs each; target in brackets)");
    println!(
        "  killed database -> db_ready false   median {}  max {}  [<= 2 s]",
        ms(median(db_down.clone())),
        ms(percentile(&db_down, 1.0))
    );
    println!(
        "  restarted database -> db_ready true median {}  max {}",
        ms(median(db_up.clone())),
        ms(percentile(&db_up, 1.0))
    );
    println!(
        "  killed agent -> agent_reachable false median {}  max {}  [<= 2 s]",
        ms(median(agent_down.clone())),
        ms(percentile(&agent_down, 1.0))
    );
    println!(
        "  frozen agent (SIGSTOP) -> unreachable median {}  max {}  [<= 1 s]",
        ms(median(frozen.clone())),
        ms(percentile(&frozen, 1.0))
    );
    println!(
        "  false alarms: status updates with an agent unreachable during {load_secs} s with {busy} busy threads on {} CPUs: {false_alarms}  [0]",
        busy / 2
    );
    println!(
        "  meanwhile the agent's slowest answer to /healthz (every 20 ms): {}  [keepalive timeout 600 ms]",
        ms(slowest_answer)
    );
    println!(
        "  restarted agent -> reachable        median {}  max {}",
        ms(median(agent_up.clone())),
        ms(percentile(&agent_up, 1.0))
    );
    println!(
        "  qserv -o json status (whole process, 100 runs) p50 {}  p99 {}",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99))
    );
    println!(
        "  idle agent RSS {:.1} MiB  [< 20 MiB]",
        agent_rss as f64 / 1024.0
    );
}
