//! The coordinator of a Qserv instance: its inventory and mode, the jobs that change them,
//! the agents' observations folded into one status, and the gRPC service the CLI talks to.
//! `main.rs` only wires these together.

pub mod activity;
pub mod admission;
pub mod agent_api;
pub mod agents;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod config;
pub mod core;
pub mod denials;
pub mod domain;
pub mod drift;
pub mod forward;
pub mod fresh;
pub mod fsm;
pub mod grpc;
pub mod holdings;
pub mod instance;
pub mod jobs;
pub mod leader;
pub mod metrics;
pub mod monitor;
pub mod peers;
pub mod plan;
pub mod requests;
pub mod retention;
pub mod spec;
pub mod store;
pub mod streams;
pub mod term;
pub mod wire;
pub mod withhold;
