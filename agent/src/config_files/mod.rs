//! The services' configuration files (DESIGN §17): rendered from the coordinator's templates
//! with this node's values, staged beside their path, installed atomically with the previous
//! file kept, and hashed so that a hand edit shows as drift.

pub mod diff;
pub mod file;
pub mod records;
pub mod render;
