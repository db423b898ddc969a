//! The coordinator's Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use qserv_proto::names::mode_name;
use qserv_proto::v1::{InstanceStatus, Mode};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabel {
    pub mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeStateLabel {
    pub state: String,
}

#[derive(Clone, Default)]
pub struct Metrics {
    /// 1 for the current mode, 0 for the others.
    pub mode: Family<ModeLabel, Gauge>,
    pub epoch: Gauge,
    /// Nodes per state: total, agent_reachable, db_ready.
    pub nodes: Family<NodeStateLabel, Gauge>,
    pub agent_reconnects: Counter,
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
            "nodes",
            "Nodes of the inventory by state",
            metrics.nodes.clone(),
        );
        registry.register(
            "agent_reconnects",
            "Attempts to (re)open an agent's status stream",
            metrics.agent_reconnects.clone(),
        );
        metrics
    }

    /// Mirrors the snapshot into the gauges.
    pub fn observe(&self, status: &InstanceStatus) {
        for mode in [
            Mode::Uninstalled,
            Mode::Installing,
            Mode::Maintenance,
            Mode::Normal,
        ] {
            let label = ModeLabel {
                mode: mode_name(mode).to_owned(),
            };
            self.mode
                .get_or_create(&label)
                .set(i64::from(status.mode == i32::from(mode)));
        }
        self.epoch
            .set(i64::try_from(status.epoch).unwrap_or(i64::MAX));
        let count = |pred: &dyn Fn(&qserv_proto::v1::NodeStatus) -> bool| {
            i64::try_from(status.nodes.iter().filter(|n| pred(n)).count()).unwrap_or(i64::MAX)
        };
        for (state, value) in [
            ("total", count(&|_| true)),
            ("agent_reachable", count(&|n| n.agent_reachable)),
            ("db_ready", count(&|n| n.db_ready)),
        ] {
            self.nodes
                .get_or_create(&NodeStateLabel {
                    state: state.to_owned(),
                })
                .set(value);
        }
    }
}
