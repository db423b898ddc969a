//! The agent beside one Qserv database: it reads the database's state, applies migrations,
//! keeps the node's mode, controls the local Qserv services and answers the coordinator over
//! gRPC. `main.rs` only wires these together.
//!
//! Each folder may use only those below it:
//! - `edge`: the gRPC service and server, and the `gate` client; the only place that names the
//!   generated wire types;
//! - `controllers`: the loops that keep the published state current (database checks) and
//!   the local services where the mode wants them;
//! - `database`: everything that reads or changes the local MariaDB;
//! - `config_files`: the services' configuration files, rendered and written;
//! - `node`: who this node is and what it holds (admission, its persisted mode, its secrets).

pub mod config;
pub mod config_files;
pub mod controllers;
pub mod database;
pub mod edge;
pub mod metrics;
pub mod node;
