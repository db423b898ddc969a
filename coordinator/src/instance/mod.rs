//! The instance domain: its state as this coordinator knows it, how observations fold into it,
//! and the pure functions over it that decide: the mode's guard table, admission, plans, spec
//! drift. Nothing here does I/O or names a wire type: `crate::edge::wire` converts at the edge.

pub mod admission;
pub mod availability;
pub mod configs;
pub mod drift;
pub mod fold;
pub mod fsm;
pub mod holdings;
pub mod identity;
pub mod peers;
pub mod plan;
pub mod services;
pub mod state;

pub use crate::domain::{Epoch, FencingToken, Mode};
pub use availability::{certificate_warnings, unavailable_reason};
pub use fold::{Targets, apply_observation, apply_unreachable, refresh, set_inventory};
pub use state::{ActiveJob, Health, InstanceState, NodeState, Reach, SchemaState};

/// What queries read: monitors and jobs write into it, `GetStatus` and `WatchStatus` only ever
/// read a copy, so a query never waits on a job or a slow agent. It is for display: jobs decide
/// on fresh observations, and fold them in here so that what an operator reads after a job ends
/// already shows its effects.
pub type Snapshot = tokio::sync::watch::Sender<InstanceState>;
