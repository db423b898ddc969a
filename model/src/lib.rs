//! The domain of the control plane, shared by the agent, the coordinator and the CLI: what a
//! node is (its role), where an instance is in its life (its mode, epoch and fencing token),
//! and what an agent knows of its node. No I/O and no wire types: the proto crate converts
//! these to and from its generated messages, once, at the gRPC edges.

pub mod activity;
pub mod agent;
pub mod mode;
pub mod name;
pub mod order;
pub mod role;
pub mod service;
pub mod target;
pub mod template;

pub use activity::{Activity, Count};
pub use agent::{AgentState, RegistryRow, SchemaState, Services};
pub use mode::{Epoch, FencingToken, Mode};
pub use order::{Layout, OrderError, OrderedService, ServiceOrder};
pub use role::Role;
pub use service::{Release, ServiceName, ServiceState, ServiceStatus};
pub use target::Target;
pub use template::{Template, TemplateError};

/// A word that is not one of the accepted names.
#[derive(Debug, thiserror::Error)]
#[error("unknown {kind} '{value}': expected one of {expected}")]
pub struct UnknownName {
    pub kind: &'static str,
    pub value: String,
    pub expected: &'static str,
}
