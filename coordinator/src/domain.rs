//! The coordinator's model of an instance: roles, nodes, and what an agent observed. The
//! shared words come from `qserv_model`; generated proto types are converted to and from them
//! at the gRPC and store edges only.

use serde::{Deserialize, Serialize};

pub use qserv_model::{RegistryRow, Role, SchemaState as SchemaObservation, Services};

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
