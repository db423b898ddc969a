//! The coordinator's side of talking to agents: the `Agents` trait and its typed replies (what
//! jobs and monitors call, and what a fake fleet implements for unit tests), and the gRPC client
//! that implements it.

pub mod api;
pub mod client;
