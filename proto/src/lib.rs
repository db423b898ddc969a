//! The wire contract of the Qserv control plane and the transport pieces every binary shares.
//!
//! The generated gRPC code lives in [`v1`]; [`names`] maps its enums to the lower-case words that
//! operators read and write; [`transport`] builds channels and servers with the keepalive settings
//! that make a silent network loss visible within seconds; [`telemetry`] sets up logs and the
//! plaintext health/metrics port.

pub mod certs;
pub mod excerpt;
pub mod failure;
pub mod http;
pub mod incoming;
pub mod limits;
pub mod model;
pub mod names;
pub mod reflection;
pub mod reload;
pub mod states;
pub mod systemd;
pub mod telemetry;
pub mod tls;
pub mod transport;

/// Generated messages and services of package `qserv.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("qserv.v1");
}

/// Version of the gRPC contract. Peers with a different major protocol are reported incompatible.
/// 6: failure kinds in status metadata (`failure`), worker holdings, states and activity.
/// 7: job, step, job-node states and log levels are enums, not words.
/// 8: a job's and an audit entry's parameters are a typed `JobParams`, not the store's JSON.
/// 9: a node runs several services: per-service states, releases (`SetServices`), restarts by name.
/// 10: services' configuration files (`PrepareConfig`, `CommitConfig`, `config_version` and
///     `config_drift` per service; the coordinator's `Config*` requests).
pub const PROTOCOL_VERSION: u32 = 10;

/// Which side of a protocol mismatch to upgrade, seen from this build talking to a `peer` that
/// speaks protocol `theirs`.
pub fn upgrade_hint(peer: &str, theirs: u32) -> String {
    if theirs < PROTOCOL_VERSION {
        format!(
            "{peer} speaks protocol {theirs}, this build {PROTOCOL_VERSION}: upgrade the {peer}"
        )
    } else {
        format!(
            "{peer} speaks protocol {theirs}, this build {PROTOCOL_VERSION}: upgrade this side to the {peer}'s release"
        )
    }
}

/// The version of this build, shared by all three binaries.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A value random for each start of the process (std's hasher keys are seeded from the OS), in
/// hex: tells a restarted process from the one before it under the same name.
pub fn incarnation() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mismatch_says_which_side_to_upgrade() {
        assert!(upgrade_hint("agent", PROTOCOL_VERSION - 1).ends_with("upgrade the agent"));
        assert!(upgrade_hint("agent", PROTOCOL_VERSION + 1).contains("upgrade this side"));
    }
}
