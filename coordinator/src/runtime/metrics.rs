//! The coordinator's Prometheus metrics.

use crate::instance::{Epoch, InstanceState, Mode, NodeState};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabel {
    pub mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeStateLabel {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabel {
    pub kind: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

fn job_histogram() -> Histogram {
    Histogram::new([0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0, 7200.0])
}

#[derive(Clone)]
pub struct Metrics {
    /// 1 for the current mode, 0 for the others.
    pub mode: Family<ModeLabel, Gauge>,
    pub epoch: Gauge,
    /// Nodes per state: total, agent_reachable, db_ready.
    pub nodes: Family<NodeStateLabel, Gauge>,
    pub agent_reconnects: Counter,
    /// Rounds of fresh checks a job made while waiting for nodes (its backoff attempts).
    pub wait_checks: Counter,
    /// Finished jobs by kind and final state.
    pub jobs: Family<JobLabel, Counter>,
    pub job_seconds: Family<KindLabel, Histogram, fn() -> Histogram>,
    /// Tasks feeding a server stream (a followed job or log) right now.
    pub stream_tasks: Gauge,
    /// How long each claim of the leader lease took on the store.
    pub lease_claim_seconds: Histogram,
    /// 1 while this coordinator holds the leader lease.
    pub leader: Gauge,
}

/// Counts a stream-feeding task in `stream_tasks` for as long as it lives.
pub struct StreamTask {
    gauge: Gauge,
}

impl StreamTask {
    pub fn start(metrics: &Metrics) -> StreamTask {
        metrics.stream_tasks.inc();
        StreamTask {
            gauge: metrics.stream_tasks.clone(),
        }
    }
}

impl Drop for StreamTask {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            mode: Family::default(),
            epoch: Gauge::default(),
            nodes: Family::default(),
            agent_reconnects: Counter::default(),
            wait_checks: Counter::default(),
            jobs: Family::default(),
            job_seconds: Family::new_with_constructor(job_histogram),
            stream_tasks: Gauge::default(),
            lease_claim_seconds: Histogram::new([
                0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0,
            ]),
            leader: Gauge::default(),
        }
    }
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Metrics {
        let metrics = Metrics::default();
        let registry = registry.sub_registry_with_prefix("qserv_coordinator");
        registry.register(
            "build",
            "Coordinator build",
            Info::new(vec![("version", qserv_proto::VERSION.to_owned())]),
        );
        registry.register(
            "mode",
            "1 for the instance's current mode",
            metrics.mode.clone(),
        );
        registry.register("epoch", "Epoch of the current mode", metrics.epoch.clone());
        registry.register(
            "lease_claim_seconds",
            "Time each claim of the leader lease took on the store",
            metrics.lease_claim_seconds.clone(),
        );
        registry.register(
            "leader",
            "1 while this coordinator holds the leader lease",
            metrics.leader.clone(),
        );
        registry.register(
            "stream_tasks",
            "Tasks feeding a followed job or job log to a client",
            metrics.stream_tasks.clone(),
        );
        registry.register(
            "nodes",
            "Nodes of the inventory by state",
            metrics.nodes.clone(),
        );
        registry.register(
            "agent_reconnects",
            "Attempts to (re)open an agent's status stream",
            metrics.agent_reconnects.clone(),
        );
        registry.register(
            "wait_checks",
            "Rounds of fresh checks jobs made while waiting for nodes, with backoff",
            metrics.wait_checks.clone(),
        );
        registry.register(
            "jobs",
            "Finished jobs by kind and final state",
            metrics.jobs.clone(),
        );
        registry.register(
            "job_duration_seconds",
            "Duration of finished jobs",
            metrics.job_seconds.clone(),
        );
        metrics
    }

    /// The store's write counters, which the store itself keeps.
    pub fn register_store(registry: &mut Registry, writes: &crate::store::WriteCounters) {
        let registry = registry.sub_registry_with_prefix("qserv_coordinator_store");
        registry.register(
            "write_statements",
            "Write statements executed on the store",
            writes.statements.clone(),
        );
        registry.register(
            "rows_written",
            "Rows inserted, updated or deleted in the store",
            writes.rows.clone(),
        );
        registry.register(
            "conflicts",
            "Store transactions run again after a Galera certification conflict or a deadlock",
            writes.conflicts.clone(),
        );
        registry.register(
            "failovers",
            "Moves to another store host after the one in use failed",
            writes.failovers.clone(),
        );
    }

    /// Counts a finished job.
    pub fn job_finished(&self, kind: &str, state: &str, seconds: f64) {
        self.jobs
            .get_or_create(&JobLabel {
                kind: kind.to_owned(),
                state: state.to_owned(),
            })
            .inc();
        self.job_seconds
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .observe(seconds);
    }

    /// Mirrors the snapshot into the gauges.
    pub fn observe(&self, state: &InstanceState) {
        for mode in Mode::ALL {
            let label = ModeLabel {
                mode: mode.name().to_owned(),
            };
            self.mode
                .get_or_create(&label)
                .set(i64::from(state.mode() == mode));
        }
        self.epoch
            .set(i64::try_from(Epoch::to_wire(state.epoch)).unwrap_or(i64::MAX));
        let count = |pred: &dyn Fn(&NodeState) -> bool| {
            i64::try_from(state.nodes.iter().filter(|n| pred(n)).count()).unwrap_or(i64::MAX)
        };
        for (label, value) in [
            ("total", count(&|_| true)),
            ("agent_reachable", count(&NodeState::reachable)),
            ("db_ready", count(&NodeState::db_ready)),
        ] {
            self.nodes
                .get_or_create(&NodeStateLabel {
                    state: label.to_owned(),
                })
                .set(value);
        }
    }
}
