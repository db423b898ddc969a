//! The gRPC edge: the `Coordinator` service, request decoding, forwarding from a follower to
//! the leader, authentication, what a viewer is shown, streams, the audit of refusals, and the
//! one conversion between the coordinator's types and the wire's (`wire`). Only this folder and
//! the agent client name generated proto types.

pub mod auth;
mod config;
pub mod denials;
pub mod forward;
pub mod grpc;
pub mod requests;
pub mod streams;
pub mod wire;
pub mod withhold;
