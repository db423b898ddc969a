//! What keeps the coordinator running: the core it shares (store, snapshot, agent client),
//! leadership and its terms, the monitors that watch agents, fresh probes,
//! metrics and retention.

pub mod core;
pub mod fresh;
pub mod leader;
pub mod metrics;
pub mod monitor;
pub mod retention;
pub mod term;
