//! The coordinator of a Qserv instance: its inventory and mode, the jobs that change them,
//! the agents' observations folded into one status, and the gRPC service the CLI talks to.
//! `main.rs` only wires these together.
//!
//! Folders by concern, each using only those listed after it:
//! - `edge`: the gRPC service, request decoding, forwarding, auth, streams, wire conversion;
//! - `jobs`: the job engine and one module per kind of job;
//! - `runtime`: the shared core, leadership, monitors, peers, metrics, retention;
//! - `instance`: the instance's state and the pure decisions over it (guard table, admission,
//!   plans, drift);
//! - `agents`: the interface to agents and its gRPC client;
//! - `store`: the persistent state, on SQLite or MariaDB;
//! - `domain`: the vocabulary (nodes, spec, jobs, audit records, activity), no I/O.
//!
//! `config` (the binary's settings) and `clock` stand beside them.

pub mod agents;
pub mod clock;
pub mod config;
pub mod domain;
pub mod edge;
pub mod instance;
pub mod jobs;
pub mod runtime;
pub mod store;
