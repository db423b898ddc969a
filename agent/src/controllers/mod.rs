//! The loops that run for the agent's whole life: database checks that keep the published
//! state current, and the service controller that keeps the local services where the mode
//! wants them.

pub mod configs;
pub mod output;
pub mod probe;
pub mod process;
pub mod readiness;
pub mod service_group;
pub mod services;
pub mod supervisor;
