//! `up` of an instance with Qserv's layout (DESIGN §19): N workers, every service a stand-in
//! that becomes ready a known delay after it starts. The critical path is the sum over the
//! layout's waves of the slowest readiness delay; the benchmark reports `up`'s wall time (the
//! whole CLI process, its availability barrier included) ÷ that critical path.
//!
//! `cargo bench -p qserv-integration --bench services` (QSERV_BENCH_SIZES=8,32 by default;
//! QSERV_BENCH_READY_MS=1000, each service's readiness delay; QSERV_BENCH_ROUNDS=3, `up` and
//! `down` repeated on the same instance, the median reported).

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

/// A time of the job document.
fn at(v: &serde_json::Value) -> Option<std::time::SystemTime> {
    v.as_str().and_then(|t| humantime::parse_rfc3339(t).ok())
}

fn ms_between(from: std::time::SystemTime, to: Option<std::time::SystemTime>) -> String {
    to.and_then(|to| to.duration_since(from).ok())
        .map_or_else(|| "?".to_owned(), |d| d.as_millis().to_string())
}

/// Each step of the job document as `name ms`, from its recorded start and end.
fn step_times(job: &serde_json::Value) -> Vec<String> {
    job["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|step| {
            let took = at(&step["started_at"]).map_or_else(
                || "?".to_owned(),
                |a| ms_between(a, at(&step["finished_at"])),
            );
            format!("{} {took} ms", step["name"].as_str().unwrap_or("?"))
        })
        .collect()
}

/// For each wave: the gap from the last service of the wave before becoming ready to the
/// first of this one starting (what the control plane adds), then how far its starts spread.
fn wave_gaps(events: &[qserv_integration::standin::Event]) -> Vec<String> {
    let order = ServiceOrder::the_qserv_layout();
    let mut previous_ready: Option<u128> = None;
    order
        .waves()
        .iter()
        .enumerate()
        .map(|(k, wave)| {
            let of = |kind: Kind| {
                events
                    .iter()
                    .filter(move |e| {
                        e.kind == kind && wave.iter().any(|s| s.name.as_str() == e.service)
                    })
                    .map(|e| e.at_ns)
            };
            let (first, last) = (of(Kind::Start).min(), of(Kind::Start).max());
            let ms = |a: u128, b: u128| b.saturating_sub(a) as f64 / 1e6;
            let gap = match (previous_ready, first) {
                (Some(ready), Some(first)) => format!("+{:.0}", ms(ready, first)),
                _ => "-".to_owned(),
            };
            previous_ready = of(Kind::Ready).max();
            let spread = first.zip(last).map_or(0.0, |(a, b)| ms(a, b));
            format!("{} {gap}/{spread:.0} ms", k + 1)
        })
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
    let rounds = env_list("QSERV_BENCH_ROUNDS", "3")
        .first()
        .copied()
        .unwrap_or(3)
        .max(1);
    for workers in env_list("QSERV_BENCH_SIZES", "8,32") {
        let mut cluster = Cluster::installed("bench", workers, &[]);
        let layout = QservLayout::apply(&mut cluster, |_, _| Behaviour {
            ready_after_ms: ready_ms,
            ..Behaviour::default()
        });
        cluster.wait_ready();
        let mut ratios = Vec::new();
        for _ in 0..rounds {
            let before = layout.events().len();
            let t = Instant::now();
            let called = std::time::SystemTime::now();
            let up = cluster
                .coordinator
                .cli(&["-o", "json", "up", "--timeout", "5m"]);
            let wall = t.elapsed();
            assert_eq!(up.code, 0, "up:\n{}\n{}", up.stdout, up.stderr);
            let returned = std::time::SystemTime::now();
            let job = up.json();
            let mut steps = vec![format!(
                "cli to job start {} ms",
                ms_between(called, at(&job["started_at"]))
            )];
            steps.extend(step_times(&job));
            steps.push(format!(
                "job end to cli exit {} ms",
                ms_between(at(&job["finished_at"]).unwrap_or(returned), Some(returned))
            ));
            let events = layout.events().split_off(before);
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
            println!("         steps: {}", steps.join(", "));
            println!("         waves: {}", wave_gaps(&events).join(", "));
            ratios.push(wall.as_secs_f64() / critical.as_secs_f64());
            let down = cluster.coordinator.cli(&["down"]);
            assert_eq!(down.code, 0, "down:\n{}\n{}", down.stdout, down.stderr);
        }
        ratios.sort_by(f64::total_cmp);
        println!(
            "  N = {workers:>3}: median wall / critical path over {rounds} rounds {:.3}  [<= 1.1]",
            ratios[ratios.len() / 2]
        );
    }
}
