//! The agent's gRPC edge: the service, the server around it, and the `gate` client. Generated
//! wire types are converted here, through `qserv_proto::model`, and go no further in.

mod config;
pub mod gate;
pub mod grpc;
mod registry;
pub mod server;
