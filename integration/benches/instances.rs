//! DESIGN §14: `qserv instances` with 8 configured instances, every one answering and then one
//! of them hung (a listener that accepts and never answers). Every instance is asked at once,
//! each within `--timeout`, so the wall time should stay near the slowest answer: the target is
//! the bounded time of the unreachable one plus less than 100 ms. Median of 5 runs each.
//!
//! `cargo bench -p qserv-integration --bench instances`

use std::net::TcpListener;
use std::time::{Duration, Instant};

use qserv_integration::{CoordinatorProcess, run_qserv};

const INSTANCES: usize = 8;
const RUNS: usize = 5;
const TIMEOUT: &str = "2s";

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn time_instances(config: &str) -> (Duration, i32) {
    let started = Instant::now();
    let out = run_qserv(&["--config", config, "instances", "--timeout", TIMEOUT]);
    (started.elapsed(), out.code)
}

fn main() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let coordinators: Vec<CoordinatorProcess> = (0..INSTANCES)
        .map(|i| CoordinatorProcess::start(&dir.path().join(format!("dr{i}")), &[]))
        .collect();
    // Accepts connections into its backlog and never answers: a hung host.
    let hung = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let hung_url = format!(
        "http://{}",
        hung.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );

    let write = |path: &std::path::Path, last: &str| {
        let mut text = String::new();
        for (i, c) in coordinators.iter().enumerate() {
            let url = if i == INSTANCES - 1 {
                last.to_owned()
            } else {
                c.url()
            };
            text.push_str(&format!("[instances.dr{i}]\ncoordinator = \"{url}\"\n\n"));
        }
        std::fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
        path.to_string_lossy().into_owned()
    };
    let all = write(
        &dir.path().join("all.toml"),
        &coordinators[INSTANCES - 1].url(),
    );
    let one_hung = write(&dir.path().join("hung.toml"), &hung_url);

    let (_, code) = time_instances(&all);
    assert_eq!(code, 0, "every instance answers");
    let answering: Vec<Duration> = (0..RUNS).map(|_| time_instances(&all).0).collect();
    let mut with_hung = Vec::new();
    for _ in 0..RUNS {
        let (took, code) = time_instances(&one_hung);
        assert_eq!(code, 5, "the hung instance is reported");
        with_hung.push(took);
    }
    let bound = humantime::parse_duration(TIMEOUT).unwrap_or_default();
    let hung_median = median(with_hung.clone());
    println!("qserv instances, {INSTANCES} instances, median of {RUNS} (process start included):");
    println!(
        "  all answering:        {:>7.1} ms  (runs: {:?})",
        median(answering.clone()).as_secs_f64() * 1000.0,
        answering.iter().map(|d| d.as_millis()).collect::<Vec<_>>()
    );
    println!(
        "  one hung, --timeout {TIMEOUT}: {:>7.1} ms  (runs: {:?})",
        hung_median.as_secs_f64() * 1000.0,
        with_hung.iter().map(|d| d.as_millis()).collect::<Vec<_>>()
    );
    println!(
        "  over the bound:       {:>7.1} ms  (target < 100 ms)",
        hung_median.saturating_sub(bound).as_secs_f64() * 1000.0
    );
    drop(hung);
}
