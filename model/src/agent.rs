//! What an agent knows of its node: the state it publishes, and the coordinator's last
//! observation of that node. Both sides hold the same type; the wire carries it between them.

use qserv_migrations::Module;

use crate::activity::Activity;
use crate::mode::{Epoch, FencingToken, Mode};
use crate::role::Role;

/// What the agent's service controller knows of the local Qserv services.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Services {
    #[default]
    Unknown,
    Stopped,
    Running,
    /// No service controller on that node.
    None,
}

impl Services {
    pub fn name(self) -> &'static str {
        match self {
            Services::Unknown => "unknown",
            Services::Stopped => "stopped",
            Services::Running => "running",
            Services::None => "none",
        }
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
    /// repl: the worker registry.
    pub registry: Vec<RegistryRow>,
    /// When the agent's certificate ends (ms since the epoch); 0 without TLS.
    pub certificate_expires_at_ms: i64,
    /// czar and repl: Qserv's queries and ingests in flight.
    pub activity: Activity,
}
