//! Who this node is and what it holds: its persisted mode and counters, whether a command may
//! act on it, and the credentials of its database accounts. No network and no SQL.

pub mod admit;
pub mod secrets;
pub mod services;
pub mod state;
