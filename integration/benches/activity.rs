//! DESIGN §16: the activity check on a czar whose `qservMeta.QInfo` holds 1,000,000 queries,
//! 10 of them executing, stays under 10 ms per probe. Measured two ways on a real MariaDB and
//! a real agent: the agent's `Probe` round trip (every check it makes, the activity one
//! included) against the same probe with an empty `QInfo`, and the server's own time for the
//! activity statement (`ANALYZE FORMAT=JSON`).
//!
//! `cargo bench -p qserv-integration --bench activity` (QSERV_BENCH_ROWS overrides 1000000).

use std::time::{Duration, Instant};

use qserv_integration::{Cluster, MariaDb};
use qserv_proto::v1::ProbeRequest;
use qserv_proto::v1::agent_client::AgentClient;

const QINFO_SCHEMA: &str = include_str!("../fixtures/qserv-meta-qinfo.sql");
const PROBES: usize = 200;
const WARM_UP: usize = 20;
/// The statement the agent runs (agent/src/database/activity.rs).
const ACTIVITY: &str = "SELECT COUNT(*), CAST(MIN(queryId) AS SIGNED) \
     FROM qservMeta.QInfo WHERE status = 'EXECUTING'";

fn fill(czar: &MariaDb, rows: u64, executing: u64) {
    czar.execute("TRUNCATE TABLE qservMeta.QInfo");
    czar.execute(&format!(
        "INSERT INTO qservMeta.QInfo (queryId, qType, czarId, user, query, qTemplate, status, chunkCount)
         SELECT seq, 'ASYNC', 1, 'bench', 'SELECT * FROM Object', 'SELECT * FROM Object_%CC%',
                IF(seq > {rows} - {executing}, 'EXECUTING', 'COMPLETED'), 100
         FROM qservMeta.seq_1_to_{rows}"
    ));
    czar.execute("ANALYZE TABLE qservMeta.QInfo");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn probes(runtime: &tokio::runtime::Runtime, url: &str) -> Vec<Duration> {
    runtime.block_on(async {
        let mut client = AgentClient::connect(url.to_owned())
            .await
            .unwrap_or_else(|e| panic!("cannot reach the agent: {e}"));
        let mut times = Vec::with_capacity(PROBES);
        // The first probes after a bulk load meet the server flushing it: warm up, unmeasured.
        for _ in 0..WARM_UP {
            let _ = client.probe(ProbeRequest::default()).await;
        }
        for _ in 0..PROBES {
            let start = Instant::now();
            let status = client
                .probe(ProbeRequest::default())
                .await
                .unwrap_or_else(|e| panic!("probe failed: {e}"))
                .into_inner();
            times.push(start.elapsed());
            assert!(status.activity.is_some(), "the probe reports activity");
        }
        times.sort();
        times
    })
}

fn server_ms(czar: &MariaDb) -> f64 {
    let plan = czar.execute(&format!("ANALYZE FORMAT=JSON {ACTIVITY}"));
    let json: serde_json::Value = serde_json::from_str(&plan.replace("\\n", "\n"))
        .unwrap_or_else(|e| panic!("ANALYZE output: {e}: {plan}"));
    json["query_block"]["r_total_time_ms"]
        .as_f64()
        .unwrap_or(f64::NAN)
}

fn main() {
    let rows: u64 = std::env::var("QSERV_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let cluster = Cluster::installed("bench", 1, &[]);
    let czar = cluster.db("czar-0");
    czar.execute(&format!("USE qservMeta; {QINFO_SCHEMA}"));
    let url = cluster.agents[cluster.index("czar-0")].url();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));

    let empty = probes(&runtime, &url);
    let started = Instant::now();
    fill(czar, rows, 10);
    let filled_in = started.elapsed();
    let counted = czar.execute(ACTIVITY);
    assert!(counted.starts_with("10\t"), "{counted}");
    let full = probes(&runtime, &url);
    let server: Vec<f64> = (0..20).map(|_| server_ms(czar)).collect();
    let server_max = server.iter().copied().fold(0.0_f64, f64::max);

    println!(
        "activity check, czar with {rows} QInfo rows (10 executing; filled in {filled_in:.1?})"
    );
    for (name, times) in [("empty QInfo", &empty), ("full QInfo", &full)] {
        println!(
            "  agent Probe round trip, {name}: p50 {:.2?}  p99 {:.2?}  max {:.2?}",
            percentile(times, 0.5),
            percentile(times, 0.99),
            times[times.len() - 1]
        );
    }
    println!("  the activity statement on the server (ANALYZE, 20 runs): max {server_max:.3} ms");
    let p99 = percentile(&full, 0.99);
    println!(
        "  target: under 10 ms per probe: {}",
        if p99 < Duration::from_millis(10) {
            "met"
        } else {
            "NOT met"
        }
    );
}
