//! Fleet upgrade (DESIGN §10): `upgrade apply` on N workers, each with its own MariaDB and agent,
//! with a migration of known cost (`DO SLEEP(2)`), against a serial loop over the same workers
//! (what Qserv's smig-update does). Reports wall time ÷ the slowest single node's own migration
//! time; also the latency of `GetStatus` while the parallel upgrade runs.
//!
//! `cargo bench -p qserv-integration --bench upgrade` (sizes: QSERV_BENCH_SIZES=8,16,32).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use qserv_integration::migrations::migrations_dir;
use qserv_integration::{Cluster, NodeSetup};

const LIMIT: Duration = Duration::from_secs(120);
const SLEEP_SQL: &str = "DO SLEEP(2);\n";

fn slowest_ms(cluster: &Cluster, workers: &[String], script: &str) -> f64 {
    workers
        .iter()
        .map(|w| {
            cluster
                .db(w)
                .execute(&format!(
                    "SELECT MAX(duration_ms) FROM qserv_agent.applied_scripts WHERE file_name = '{script}'"
                ))
                .parse::<f64>()
                .unwrap_or(f64::NAN)
        })
        .fold(0.0, f64::max)
}

fn fencing_token(cluster: &Cluster) -> u64 {
    cluster.coordinator.status()["fencing_token"]
        .as_u64()
        .unwrap_or(0)
}

/// Gives the coordinator the migrations in `dir` (a restart) and waits until it leads again
/// and plans `target` for every worker: the upgrade is timed, not the takeover.
fn use_migrations(cluster: &mut Cluster, dir: &tempfile::TempDir, workers: &[String], target: i64) {
    let before = fencing_token(cluster);
    cluster.use_migrations(dir);
    qserv_integration::wait_for("the restarted coordinator leading", LIMIT, || {
        (fencing_token(cluster) > before).then_some(())
    });
    for w in workers {
        cluster.coordinator.wait_node(w, "new target", LIMIT, |n| {
            n["schema"][0]["target"] == target
        });
    }
}

/// Polls GetStatus every 10 ms until `stop`, returning each call's latency.
fn status_latencies(url: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<Duration>> {
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return Vec::new();
        };
        runtime.block_on(async move {
            use qserv_proto::v1::InstanceStatusRequest;
            use qserv_proto::v1::coordinator_client::CoordinatorClient;
            let Ok(mut client) = CoordinatorClient::connect(url).await else {
                return Vec::new();
            };
            let mut latencies = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let t = Instant::now();
                if client.get_status(InstanceStatusRequest {}).await.is_ok() {
                    latencies.push(t.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            latencies
        })
    })
}

fn percentile(values: &mut [Duration], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort();
    let index = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[index].as_secs_f64() * 1000.0
}

fn run(n: usize) {
    let mut names = vec![("czar-0".to_owned(), "czar"), ("repl-0".to_owned(), "repl")];
    names.extend((1..=n).map(|i| (format!("worker-{i}"), "worker")));
    let setup: Vec<NodeSetup<'_>> = names
        .iter()
        .map(|(name, role)| NodeSetup { name, role })
        .collect();
    let started = Instant::now();
    let mut cluster = Cluster::start("bench", &setup);
    for (name, _) in &names {
        cluster
            .coordinator
            .wait_node(name, "ready", LIMIT, |node| node["db_ready"] == true);
    }
    let out = cluster.coordinator.cli(&["install"]);
    assert_eq!(out.code, 0, "install failed: {}", out.stderr);
    eprintln!(
        "n={n}: instance of {} nodes installed in {:.1} s",
        names.len(),
        started.elapsed().as_secs_f64()
    );
    let workers: Vec<String> = (1..=n).map(|i| format!("worker-{i}")).collect();

    // Parallel: one job, every worker at once.
    let v2 = migrations_dir(true, &[("worker", "migrate-1-to-2.sql", SLEEP_SQL)]);
    use_migrations(&mut cluster, &v2, &workers, 2);
    let stop = Arc::new(AtomicBool::new(false));
    let poller = status_latencies(cluster.coordinator.url(), stop.clone());
    let t = Instant::now();
    let out = cluster.coordinator.cli(&["upgrade", "apply"]);
    let parallel_wall = t.elapsed().as_secs_f64() * 1000.0;
    stop.store(true, Ordering::SeqCst);
    let mut latencies = poller.join().unwrap_or_default();
    assert_eq!(out.code, 0, "parallel apply failed: {}", out.stderr);
    let parallel_slowest = slowest_ms(&cluster, &workers, "migrate-1-to-2.sql");

    // Serial: one node after another, as a loop over smig-update would.
    let v3 = migrations_dir(
        true,
        &[
            ("worker", "migrate-1-to-2.sql", SLEEP_SQL),
            ("worker", "migrate-2-to-3.sql", SLEEP_SQL),
        ],
    );
    use_migrations(&mut cluster, &v3, &workers, 3);
    let t = Instant::now();
    for w in &workers {
        let out = cluster.coordinator.cli(&["upgrade", "apply", "--nodes", w]);
        assert_eq!(out.code, 0, "serial apply on {w} failed: {}", out.stderr);
    }
    let serial_wall = t.elapsed().as_secs_f64() * 1000.0;
    let serial_slowest = slowest_ms(&cluster, &workers, "migrate-2-to-3.sql");

    println!(
        "| {n:>2} | {:>8.0} | {:>8.0} | {:>5.2} | {:>8.0} | {:>5.2} | {:>6.1} | {:>6.1} |",
        parallel_wall,
        parallel_slowest,
        parallel_wall / parallel_slowest,
        serial_wall,
        serial_wall / serial_slowest,
        percentile(&mut latencies, 0.5),
        percentile(&mut latencies, 0.99),
    );
}

fn main() {
    let sizes: Vec<usize> = std::env::var("QSERV_BENCH_SIZES")
        .unwrap_or_else(|_| "8,16,32".to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!(
        "fleet upgrade: DO SLEEP(2) on every worker; ratio = wall / slowest node's own migration [target <= 1.2 at N = 32]"
    );
    println!(
        "|  N | parallel wall ms | slowest node ms | ratio | serial wall ms | ratio | status p50 ms | p99 ms |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        run(n);
    }
}
