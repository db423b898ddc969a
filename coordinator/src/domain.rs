//! The coordinator's model of an instance: roles, nodes, and what an agent observed. Generated
//! proto types are converted to and from these at the gRPC and store edges only.

use qserv_migrations::Module;
use qserv_proto::names::UnknownName;
use serde::{Deserialize, Serialize};

use crate::instance::mode::{Epoch, FencingToken, Mode};

/// What a node's database serves; each role owns one module's database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Czar,
    Worker,
    Repl,
}

impl Role {
    /// Czars run queries and the repl node ingests: the roles whose services carry work that
    /// stopping them would break.
    pub fn carries_work(self) -> bool {
        matches!(self, Role::Czar | Role::Repl)
    }

    pub fn module(self) -> Module {
        match self {
            Role::Czar => Module::Czar,
            Role::Worker => Module::Worker,
            Role::Repl => Module::Repl,
        }
    }

    pub fn name(self) -> &'static str {
        self.module().name()
    }

    pub const ALL: [Role; 3] = [Role::Czar, Role::Worker, Role::Repl];

    pub fn parse(value: &str) -> Result<Role, UnknownName> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == value)
            .ok_or_else(|| UnknownName {
                kind: "role",
                value: value.to_owned(),
                expected: "czar, worker, repl",
            })
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A node of the inventory: its name, role and agent address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    pub role: Role,
    pub agent: String,
}

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

/// One module database as an agent observed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaObservation {
    pub module: Module,
    /// `None` for an uninitialized database (smig semantics).
    pub version: Option<i64>,
    pub dirty: bool,
    pub dirty_reason: String,
}

/// A row of the worker registry (`qservReplica.config_worker`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRow {
    pub name: String,
    pub is_enabled: bool,
    pub is_read_only: bool,
}

/// Everything one status of an agent says, typed. `boot_id` and `seq` order statuses: a
/// status from the same agent process with a lower `seq` is older.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    pub name: String,
    pub role: Option<Role>,
    pub agent_version: String,
    pub protocol_version: u32,
    pub boot_id: String,
    pub seq: u64,
    pub instance: String,
    /// `None` from an agent that says no mode.
    pub mode: Option<Mode>,
    pub epoch: Option<Epoch>,
    /// The highest epoch the agent has seen in a command (at least the one it holds).
    pub seen_epoch: Option<Epoch>,
    /// The highest fencing token the agent has taken commands under.
    pub seen_token: Option<FencingToken>,
    pub db_ready: bool,
    pub db_error: String,
    pub db_server_version: String,
    pub worker_id: Option<String>,
    pub schemas: Vec<SchemaObservation>,
    pub services: Services,
    pub services_error: String,
    pub registry: Vec<RegistryRow>,
    /// When the agent's certificate ends (ms since the epoch); 0 without TLS.
    pub certificate_expires_at_ms: i64,
    /// czar and repl: Qserv's queries and ingests in flight.
    pub activity: crate::activity::Activity,
}

impl Observation {
    /// The agent speaks the protocol this coordinator does.
    pub fn compatible(&self) -> bool {
        self.protocol_version == qserv_proto::PROTOCOL_VERSION
    }
}
