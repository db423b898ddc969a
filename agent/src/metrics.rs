//! The agent's Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModuleLabel {
    pub module: String,
}

#[derive(Clone)]
pub struct Metrics {
    pub db_ready: Gauge,
    pub db_check_failures: Counter,
    pub db_check_seconds: Histogram,
    /// -1 for an uninitialized database.
    pub schema_version: Family<ModuleLabel, Gauge>,
    pub schema_dirty: Family<ModuleLabel, Gauge>,
}

impl Metrics {
    pub fn register(registry: &mut Registry, name: &str, role: &str) -> Metrics {
        let metrics = Metrics {
            db_ready: Gauge::default(),
            db_check_failures: Counter::default(),
            db_check_seconds: Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.0]),
            schema_version: Family::default(),
            schema_dirty: Family::default(),
        };
        let registry = registry.sub_registry_with_prefix("qserv_agent");
        registry.register(
            "build",
            "Agent build and identity",
            Info::new(vec![
                ("version", qserv_proto::VERSION.to_owned()),
                ("name", name.to_owned()),
                ("role", role.to_owned()),
            ]),
        );
        registry.register(
            "db_ready",
            "1 while the local database accepts connections and answers",
            metrics.db_ready.clone(),
        );
        registry.register(
            "db_check_failures",
            "Rounds of local database checks that failed",
            metrics.db_check_failures.clone(),
        );
        registry.register(
            "db_check_duration_seconds",
            "Duration of one round of local database checks",
            metrics.db_check_seconds.clone(),
        );
        registry.register(
            "schema_version",
            "Schema version per module; -1 when uninitialized",
            metrics.schema_version.clone(),
        );
        registry.register(
            "schema_dirty",
            "1 when a migration failed part-way and the database needs repair",
            metrics.schema_dirty.clone(),
        );
        metrics
    }
}
