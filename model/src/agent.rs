//! What an agent knows of its node: the state it publishes, and the coordinator's last
//! observation of that node. Both sides hold the same type; the wire carries it between them.

use qserv_migrations::Module;

use crate::activity::Activity;
use crate::mode::{Epoch, FencingToken, Mode};
use crate::role::Role;
use crate::service::{Release, ServiceState, ServiceStatus};

/// What the agent's service controller knows of the local Qserv services, as one word.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Services {
    #[default]
    Unknown,
    /// None of the services the agent runs is up.
    Stopped,
    /// All of them are ready.
    Running,
    /// The agent runs no service (none is defined, or all are started by someone else).
    None,
    /// Some are up, not all ready: starting or stopping.
    Starting,
}

impl Services {
    pub fn name(self) -> &'static str {
        match self {
            Services::Unknown => "unknown",
            Services::Stopped => "stopped",
            Services::Running => "running",
            Services::None => "none",
            Services::Starting => "starting",
        }
    }

    /// The summary of the services the agent runs itself (`External` ones it cannot stop).
    pub fn summarize<'a>(states: impl IntoIterator<Item = &'a ServiceStatus>) -> Services {
        let (mut own, mut down, mut ready) = (0, 0, 0);
        for s in states.into_iter().filter(|s| !s.external) {
            match s.state {
                ServiceState::External => continue,
                ServiceState::Stopped | ServiceState::Failed => down += 1,
                ServiceState::Ready | ServiceState::Running => ready += 1,
                ServiceState::Starting => {}
            }
            own += 1;
        }
        match own {
            0 => Services::None,
            _ if down == own => Services::Stopped,
            _ if ready == own => Services::Running,
            _ => Services::Starting,
        }
    }

    /// Whether anything of the agent's own may still be running: changes to the database wait.
    pub fn any_up(self) -> bool {
        matches!(self, Services::Running | Services::Starting)
    }
}

impl std::fmt::Display for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One module database as its agent last read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaState {
    pub module: Module,
    /// `None` for an uninitialized database (smig semantics).
    pub version: Option<i64>,
    pub dirty: bool,
    /// The script, statement and server error that left it dirty; empty when clean.
    pub dirty_reason: String,
}

/// A row of the worker registry (`qservReplica.config_worker`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRow {
    pub name: String,
    pub is_enabled: bool,
    pub is_read_only: bool,
}

/// Everything one status of an agent says. `boot_id` and `seq` order statuses: a status from
/// the same agent process with a lower `seq` is older.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentState {
    pub name: String,
    /// `None` from an agent that says no role this build knows.
    pub role: Option<Role>,
    pub agent_version: String,
    pub protocol_version: u32,
    /// Random for each start of the agent process.
    pub boot_id: String,
    pub seq: u64,
    /// When the check that produced this state ran (ms since the epoch).
    pub observed_at_ms: i64,
    /// The instance the first mode bound the agent to; empty when unbound.
    pub instance: String,
    /// `None` before the agent is given one.
    pub mode: Option<Mode>,
    /// The epoch the mode was given under.
    pub epoch: Option<Epoch>,
    /// The highest epoch the agent has seen in a command (at least the one it holds).
    pub seen_epoch: Option<Epoch>,
    /// The highest fencing token the agent has taken commands under.
    pub seen_token: Option<FencingToken>,
    /// The local database accepts connections and answers `SELECT 1`.
    pub db_ready: bool,
    /// Why it is not ready; empty when it is.
    pub db_error: String,
    /// `SELECT VERSION()` of the last successful check.
    pub db_server_version: String,
    /// Consecutive failed checks since it was last ready.
    pub db_failed_attempts: u32,
    /// The worker's unique id from `qservw_worker.Id`.
    pub worker_id: Option<String>,
    pub schemas: Vec<SchemaState>,
    pub services: Services,
    /// Why the service controller is not where the mode wants it; empty when it is.
    pub services_error: String,
    /// Each service the node defines, in its config's order.
    pub service_states: Vec<ServiceStatus>,
    /// Which services may run in `normal`.
    pub released: Release,
    /// repl: the worker registry.
    pub registry: Vec<RegistryRow>,
    /// When the agent's certificate ends (ms since the epoch); 0 without TLS.
    pub certificate_expires_at_ms: i64,
    /// czar and repl: Qserv's queries and ingests in flight.
    pub activity: Activity,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::ServiceName;

    fn status(name: &str, state: ServiceState, external: bool) -> ServiceStatus {
        ServiceStatus {
            external,
            ..ServiceStatus::new(
                ServiceName::parse(name).unwrap_or_else(|e| panic!("{e}")),
                state,
                0,
            )
        }
    }

    #[test]
    fn the_summary_speaks_of_the_services_the_agent_runs_itself() {
        use ServiceState::*;
        let summary = |states: &[(ServiceState, bool)]| {
            let list: Vec<ServiceStatus> = states
                .iter()
                .enumerate()
                .map(|(i, (s, e))| status(&format!("s{i}"), *s, *e))
                .collect();
            Services::summarize(&list)
        };
        assert_eq!(summary(&[]), Services::None);
        assert_eq!(summary(&[(Ready, true), (External, true)]), Services::None);
        assert_eq!(
            summary(&[(Stopped, false), (Failed, false)]),
            Services::Stopped
        );
        assert_eq!(
            summary(&[(Ready, false), (Running, false), (Stopped, true)]),
            Services::Running
        );
        assert_eq!(
            summary(&[(Ready, false), (Starting, false)]),
            Services::Starting
        );
        assert_eq!(
            summary(&[(Ready, false), (Stopped, false)]),
            Services::Starting
        );
        assert!(Services::Starting.any_up() && !Services::None.any_up());
    }
}
