//! The agent beside one Qserv database: it reads the database's state, applies migrations,
//! keeps the node's mode, controls the local Qserv services and answers the coordinator over
//! gRPC. `main.rs` only wires these together.

pub mod activity;
pub mod admin;
pub mod admit;
pub mod bookkeeping;
pub mod cascade;
pub mod config;
pub mod controller;
pub mod db;
pub mod forget;
pub mod gate;
pub mod grpc;
pub mod grpc_registry;
pub mod holdings;
pub mod metrics;
pub mod migrate;
pub mod probe;
pub mod secrets;
pub mod service_group;
pub mod session;
pub mod state;
