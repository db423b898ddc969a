//! Where generated proto types meet the coordinator's own: what agents and clients send is
//! decoded here, and what the coordinator answers is encoded here. Outside this folder, the
//! gRPC service and the agent client, the coordinator works on domain types only.

mod jobs;
mod params;
mod status;

pub use status::{plan, spec_drift, status};
