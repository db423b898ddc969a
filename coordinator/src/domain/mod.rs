//! The coordinator's vocabulary, below everything else and without I/O: roles, nodes, what an
//! agent observed, the instance spec, jobs and their parameters, the audit record, and Qserv's
//! activity. The shared words come from `qserv_model`; generated proto types are converted to
//! and from these at the gRPC and store edges only.

use serde::{Deserialize, Serialize};

pub mod activity;
pub mod audit;
pub mod config;
pub mod job;
pub mod spec;

pub use qserv_model::{
    Epoch, FencingToken, Mode, RegistryRow, Role, SchemaState as SchemaObservation, Services,
};

/// The coordinator's last observation of a node is that agent's state, as it said it.
pub type Observation = qserv_model::AgentState;

/// The agent speaks the protocol this coordinator does.
pub fn compatible(observation: &Observation) -> bool {
    observation.protocol_version == qserv_proto::PROTOCOL_VERSION
}

/// A node of the inventory: its name, role and agent address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    pub role: Role,
    pub agent: String,
}
