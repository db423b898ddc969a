//! DESIGN §13: two coordinators sharing a MariaDB store; the leader is SIGKILLed and the time
//! until the follower accepts a mutating command is measured (5 runs per lease TTL), with the
//! reads that failed meanwhile and what a lease claim costs the store.
//!
//! `cargo bench -p qserv-integration --bench failover` (QSERV_BENCH_TTLS overrides "5s,2s").

use std::time::{Duration, Instant};

use qserv_integration::ha::{leader_of, store_server};
use qserv_integration::{Cluster, CoordinatorProcess, http_get, wait_for};

const LIMIT: Duration = Duration::from_secs(60);

fn metric(coordinator: &CoordinatorProcess, name: &str) -> f64 {
    http_get(coordinator.http_port, "/metrics")
        .and_then(|(_, body)| {
            body.lines().find_map(|line| {
                let (key, value) = line.split_once(' ')?;
                (key == name).then(|| value.trim().parse().ok()).flatten()
            })
        })
        .unwrap_or(0.0)
}

fn run(ttl: &str) {
    let server = store_server("pw");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let password = dir.path().join("pw");
    std::fs::write(&password, "pw").unwrap_or_else(|e| panic!("{e}"));
    let args = |id: &str| {
        vec![
            format!(
                "--store=mysql://coordinator@127.0.0.1:{}/qserv_store",
                server.port()
            ),
            format!("--store-password-file={}", password.display()),
            format!("--id={id}"),
            format!("--lease-ttl={ttl}"),
        ]
    };
    let mut cluster = Cluster::installed("bench", 1, &args("a"));
    let mut b = CoordinatorProcess::start(&dir.path().join("b"), &args("b"));

    let mut times = Vec::new();
    let mut failed_reads = 0;
    for _ in 0..5 {
        let leader = wait_for("one leader both agree on", LIMIT, || {
            let x = leader_of(&cluster.coordinator.status())?;
            (leader_of(&b.status()).as_deref() == Some(x.as_str())).then_some(x)
        });
        // Let the follower's lease view settle into its steady rhythm.
        std::thread::sleep(Duration::from_secs(1));
        let (dead, alive) = if leader == "a" {
            (&mut cluster.coordinator, &mut b)
        } else {
            (&mut b, &mut cluster.coordinator)
        };
        dead.kill();
        let killed = Instant::now();
        loop {
            let read = alive.cli(&["-o", "json", "status"]);
            if read.code != 0 {
                failed_reads += 1;
            }
            // `down` in maintenance changes nothing, and only a leader accepts it.
            if alive.cli(&["down"]).code == 0 {
                break;
            }
            assert!(killed.elapsed() < LIMIT, "no takeover within {LIMIT:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        times.push(killed.elapsed());
        dead.restart();
    }
    times.sort();
    let seized = [&cluster.coordinator, &b]
        .iter()
        .map(|c| c.log_text().matches("taking its term over").count())
        .sum::<usize>();
    let claims = metric(&b, "qserv_coordinator_lease_claim_seconds_count")
        + metric(
            &cluster.coordinator,
            "qserv_coordinator_lease_claim_seconds_count",
        );
    let claim_seconds = metric(&b, "qserv_coordinator_lease_claim_seconds_sum")
        + metric(
            &cluster.coordinator,
            "qserv_coordinator_lease_claim_seconds_sum",
        );
    println!(
        "failover with --lease-ttl {ttl}: leader SIGKILL -> mutating command accepted by the new leader: \
         median {:.2} s, min {:.2} s, max {:.2} s (5 runs) [target <= 3 s]; reads failed meanwhile: {failed_reads} [target 0]; \
         lease claim on the store: mean {:.1} ms over {claims:.0} claims (2 row writes each, one transaction); \
         terms taken over from a dead leader before their lease expired: {seized}",
        times[2].as_secs_f64(),
        times[0].as_secs_f64(),
        times[4].as_secs_f64(),
        if claims > 0.0 {
            claim_seconds / claims * 1000.0
        } else {
            0.0
        },
    );
}

fn main() {
    let ttls = std::env::var("QSERV_BENCH_TTLS").unwrap_or_else(|_| "5s,2s".to_owned());
    for ttl in ttls.split(',') {
        run(ttl.trim());
    }
}
