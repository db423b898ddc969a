//! DESIGN §13: two coordinators sharing a MariaDB store; the leader is SIGKILLed, or SIGSTOPped,
//! and one CLI command given both addresses is sent at once: the time until it is accepted is
//! measured (5 runs per lease TTL and signal), with the CLI commands that failed meanwhile and
//! what a lease claim costs the store.
//!
//! `cargo bench -p qserv-integration --bench failover` (QSERV_BENCH_TTLS overrides "5s,2s").

use std::time::{Duration, Instant};

use qserv_integration::ha::{leader_of, store_server};
use qserv_integration::{Cluster, CoordinatorProcess, http_get, run_cli_within, wait_for};

/// How the leader is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loss {
    Kill,
    Freeze,
}

impl Loss {
    fn name(self) -> &'static str {
        match self {
            Loss::Kill => "SIGKILL",
            Loss::Freeze => "SIGSTOP",
        }
    }
}

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

fn run(ttl: &str, loss: Loss) {
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
    // The leader's address first: the CLI must get past it.
    let (a_url, b_url) = (cluster.coordinator.url(), b.url());
    let both = |leader: &str| {
        if leader == "a" {
            format!("{a_url},{b_url}")
        } else {
            format!("{b_url},{a_url}")
        }
    };

    let mut times = Vec::new();
    let mut failed_commands = 0;
    for _ in 0..5 {
        let leader = wait_for("one leader both agree on", LIMIT, || {
            let x = leader_of(&cluster.coordinator.status())?;
            (leader_of(&b.status()).as_deref() == Some(x.as_str())).then_some(x)
        });
        let urls = both(&leader);
        // Let the follower's lease view settle into its steady rhythm.
        std::thread::sleep(Duration::from_secs(1));
        let lost = if leader == "a" {
            &mut cluster.coordinator
        } else {
            &mut b
        };
        match loss {
            Loss::Kill => lost.kill(),
            Loss::Freeze => lost.pause(),
        }
        let struck = Instant::now();
        loop {
            // One command, as an operator types it: it retries between leaders by itself.
            // `down` in maintenance changes nothing, and only a leader accepts it.
            let down = run_cli_within(&urls, &["down"], LIMIT);
            let read = run_cli_within(&urls, &["-o", "json", "status"], LIMIT);
            if read.code != 0 {
                failed_commands += 1;
            }
            if down.code == 0 {
                break;
            }
            failed_commands += 1;
            eprintln!("failed ({}): {}", down.code, down.stderr.trim());
            assert!(struck.elapsed() < LIMIT, "no takeover within {LIMIT:?}");
        }
        times.push(struck.elapsed());
        match loss {
            Loss::Kill => lost.restart(),
            Loss::Freeze => lost.resume(),
        }
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
        "failover with --lease-ttl {ttl}: leader {} -> one CLI change given both addresses accepted: \
         median {:.2} s, min {:.2} s, max {:.2} s (5 runs); CLI commands that failed: {failed_commands} [target 0]; \
         lease claim on the store: mean {:.1} ms over {claims:.0} claims (2 row writes each, one transaction); \
         terms taken over from a dead leader before their lease expired: {seized}",
        loss.name(),
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
        for loss in [Loss::Kill, Loss::Freeze] {
            run(ttl.trim(), loss);
        }
    }
}
