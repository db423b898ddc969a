//! `up` of an instance with Qserv's layout (DESIGN §19): N workers, every service a stand-in
//! that becomes ready a known delay after it starts. The critical path is the sum over the
//! layout's waves of the slowest readiness delay; the benchmark reports `up`'s wall time (the
//! whole CLI process, its availability barrier included) ÷ that critical path.
//!
//! `cargo bench -p qserv-integration --bench services` (QSERV_BENCH_SIZES=8,32 by default;
//! QSERV_BENCH_READY_MS=1000, each service's readiness delay).

use std::time::{Duration, Instant};

use qserv_integration::Cluster;
use qserv_integration::standin::{Behaviour, Kind, QservLayout};
use qserv_model::ServiceOrder;

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn main() {
    let ready_ms = env_list("QSERV_BENCH_READY_MS", "1000")
        .first()
        .copied()
        .unwrap_or(1000) as u64;
    let waves = ServiceOrder::the_qserv_layout().waves().len();
    let critical = Duration::from_millis(ready_ms) * u32::try_from(waves).unwrap_or(6);
    println!(
        "up with Qserv's layout: {waves} waves, every service ready {ready_ms} ms after it starts; critical path {:.2} s",
        critical.as_secs_f64()
    );
    for workers in env_list("QSERV_BENCH_SIZES", "8,32") {
        let mut cluster = Cluster::installed("bench", workers, &[]);
        let layout = QservLayout::apply(&mut cluster, |_, _| Behaviour {
            ready_after_ms: ready_ms,
            ..Behaviour::default()
        });
        cluster.wait_ready();
        let t = Instant::now();
        let up = cluster.coordinator.cli(&["up", "--timeout", "5m"]);
        let wall = t.elapsed();
        assert_eq!(up.code, 0, "up:\n{}\n{}", up.stdout, up.stderr);
        let events = layout.events();
        let first_start = events
            .iter()
            .filter(|e| e.kind == Kind::Start)
            .map(|e| e.at_ns)
            .min();
        let last_ready = events
            .iter()
            .filter(|e| e.kind == Kind::Ready)
            .map(|e| e.at_ns)
            .max();
        let services = events.iter().filter(|e| e.kind == Kind::Ready).count();
        let (Some(first), Some(last)) = (first_start, last_ready) else {
            panic!("no service started: {events:?}");
        };
        let waves_wall = Duration::from_nanos(u64::try_from(last - first).unwrap_or(u64::MAX));
        println!(
            "  N = {workers:>3}: {services} services; up {:.2} s, first start to last ready {:.2} s; \
             wall / critical path {:.3} (services only {:.3})  [<= 1.1]",
            wall.as_secs_f64(),
            waves_wall.as_secs_f64(),
            wall.as_secs_f64() / critical.as_secs_f64(),
            waves_wall.as_secs_f64() / critical.as_secs_f64(),
        );
        let down = cluster.coordinator.cli(&["down"]);
        assert_eq!(down.code, 0, "down:\n{}\n{}", down.stdout, down.stderr);
    }
}
