//! DESIGN §10 at scale: from the last database accepting connections to mode `normal`, and a
//! coordinator watching 1,000 (simulated) agents: its memory and `status` latency.
//!
//! `cargo bench -p qserv-integration --bench scale` (QSERV_BENCH_AGENTS overrides 1000).

mod sim;

use std::time::{Duration, Instant};

use qserv_integration::watch::{StatusWatch, rss_kib};
use qserv_integration::{Cluster, CoordinatorProcess};

const LIMIT: Duration = Duration::from_secs(120);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn readiness() {
    let mut cluster = Cluster::installed("bench", 1, &[]);
    let watch = StatusWatch::start(&cluster.coordinator.url());
    let mut times = Vec::new();
    for _ in 0..5 {
        cluster.db_mut("worker-1").kill();
        watch.until(LIMIT, |s| {
            qserv_integration::watch::node(s, "worker-1").is_some_and(|n| n["db_ready"] == false)
        });
        let out = cluster
            .coordinator
            .cli(&["up", "--detach", "--timeout", "120s"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        std::thread::sleep(Duration::from_millis(1500));
        cluster.db_mut("worker-1").restart();
        let accepting = Instant::now();
        let (at, _) = watch.until(LIMIT, |s| s["mode"] == "normal");
        times.push(at.saturating_duration_since(accepting));
        // The up job may still be telling the agents; queue behind it.
        assert_eq!(cluster.coordinator.cli(&["down", "--wait"]).code, 0);
    }
    times.sort();
    println!(
        "database accepting connections -> mode normal: median {:.0} ms, max {:.0} ms (5 runs) [target <= 1 s]",
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
}

fn thousand_agents(count: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let spec = sim::fleet(&runtime, count, None);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let spec_path = dir.path().join("spec.toml");
    std::fs::write(&spec_path, spec).unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let coordinator = CoordinatorProcess::start(
        &dir.path().join("c"),
        &[format!("--spec={}", spec_path.display())],
    );
    let watch = StatusWatch::start(&coordinator.url());
    watch.until(LIMIT, |s| {
        s["nodes"]
            .as_array()
            .is_some_and(|n| n.len() == count && n.iter().all(|n| n["agent_reachable"] == true))
    });
    let connected = started.elapsed();
    std::thread::sleep(Duration::from_secs(5));
    let rss = coordinator.pid().and_then(rss_kib).unwrap_or_default();
    let mut latencies: Vec<Duration> = (0..20)
        .map(|_| {
            let out = coordinator.cli(&["-o", "json", "status"]);
            assert_eq!(out.code, 0, "{}", out.stderr);
            out.elapsed
        })
        .collect();
    latencies.sort();
    println!(
        "coordinator with {count} simulated agents: all connected after {:.1} s, RSS {:.1} MiB [target < 100 MB], \
         qserv -o json status (whole process) p50 {:.0} ms, max {:.0} ms",
        connected.as_secs_f64(),
        rss as f64 / 1024.0,
        ms(latencies[latencies.len() / 2]),
        ms(latencies[latencies.len() - 1])
    );
    drop(coordinator);
    runtime.shutdown_background();
}

fn main() {
    readiness();
    let count = std::env::var("QSERV_BENCH_AGENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    thousand_agents(count);
}
