//! A local cluster for tests and benchmarks: real `mariadbd` servers, real `qserv-agent` and
//! `qserv-coordinator` processes from this workspace's binaries, and the `qserv` CLI to talk to
//! them. Everything is torn down when its handle drops, including while a test panics.

pub mod binaries;
pub mod cli;
pub mod cluster;
pub mod galera;
pub mod ha;
pub mod mariadb;
pub mod migrations;
pub mod partition;
pub mod process;
pub mod standin;
pub mod watch;

pub use cli::{CliOutput, run_cli, run_cli_within, run_qserv};
pub use cluster::{AgentProcess, Cluster, CoordinatorProcess, NodeSetup, THREE_NODES, http_get};
pub use galera::Galera;
pub use mariadb::MariaDb;

use std::time::{Duration, Instant};

/// Polls `probe` until it returns `Some`, or panics after `limit` naming what was awaited.
/// Tests use generous limits: they check behaviour, benchmarks measure speed.
pub fn wait_for<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A free port on 127.0.0.1, never handed out before by this process.
pub fn free_port() -> u16 {
    qserv_proto::transport::free_local_port().unwrap_or_else(|| panic!("no free port on 127.0.0.1"))
}
