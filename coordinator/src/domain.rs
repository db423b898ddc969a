//! The coordinator's model of an instance: roles, nodes, and what an agent observed. Generated
//! proto types are converted to and from these at the gRPC and store edges only.

use qserv_migrations::Module;
use qserv_proto::names::UnknownName;
use qserv_proto::v1 as pb;
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

    pub fn parse(value: &str) -> Result<Role, UnknownName> {
        let role = qserv_proto::names::parse_role(value)?;
        Role::from_wire(role.into()).ok_or_else(|| UnknownName {
            kind: "role",
            value: value.to_owned(),
            expected: "czar, worker, repl",
        })
    }

    /// The role of a wire message; `None` for an unspecified or unknown one.
    pub fn from_wire(value: i32) -> Option<Role> {
        match pb::Role::try_from(value).ok()? {
            pb::Role::Czar => Some(Role::Czar),
            pb::Role::Worker => Some(Role::Worker),
            pb::Role::Repl => Some(Role::Repl),
            pb::Role::Unspecified => None,
        }
    }
}

impl From<Role> for pb::Role {
    fn from(role: Role) -> pb::Role {
        match role {
            Role::Czar => pb::Role::Czar,
            Role::Worker => pb::Role::Worker,
            Role::Repl => pb::Role::Repl,
        }
    }
}

impl From<Role> for i32 {
    fn from(role: Role) -> i32 {
        pb::Role::from(role).into()
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

impl Services {
    pub fn from_wire(value: i32) -> Services {
        match pb::ServiceState::try_from(value) {
            Ok(pb::ServiceState::Stopped) => Services::Stopped,
            Ok(pb::ServiceState::Running) => Services::Running,
            Ok(pb::ServiceState::None) => Services::None,
            _ => Services::Unknown,
        }
    }
}

impl From<Services> for pb::ServiceState {
    fn from(value: Services) -> pb::ServiceState {
        match value {
            Services::Unknown => pb::ServiceState::Unknown,
            Services::Stopped => pb::ServiceState::Stopped,
            Services::Running => pb::ServiceState::Running,
            Services::None => pb::ServiceState::None,
        }
    }
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

impl From<&pb::AgentStatus> for Observation {
    fn from(status: &pb::AgentStatus) -> Observation {
        let db = status.database.clone().unwrap_or_default();
        Observation {
            name: status.name.clone(),
            role: Role::from_wire(status.role),
            agent_version: status.agent_version.clone(),
            protocol_version: status.protocol_version,
            boot_id: status.boot_id.clone(),
            seq: status.seq,
            instance: status.instance.clone(),
            mode: Mode::from_wire(status.mode),
            epoch: Epoch::from_wire(status.epoch),
            seen_epoch: Epoch::from_wire(status.seen_epoch.max(status.epoch)),
            seen_token: FencingToken::from_wire(status.seen_token),
            db_ready: db.ready,
            db_error: db.error,
            db_server_version: db.server_version,
            worker_id: status.worker_id.clone().filter(|id| !id.is_empty()),
            // A module this build does not know is not one it can plan for; it is left out.
            schemas: status
                .schemas
                .iter()
                .filter_map(|s| {
                    Some(SchemaObservation {
                        module: Module::parse(&s.module).ok()?,
                        version: s.version,
                        dirty: s.dirty,
                        dirty_reason: s.dirty_reason.clone(),
                    })
                })
                .collect(),
            services: Services::from_wire(status.services),
            services_error: status.services_error.clone(),
            certificate_expires_at_ms: status.certificate_expires_at_ms,
            activity: crate::activity::Activity::from_wire(status.activity.as_ref()),
            registry: status
                .registry
                .iter()
                .map(|r| RegistryRow {
                    name: r.name.clone(),
                    is_enabled: r.is_enabled,
                    is_read_only: r.is_read_only,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_the_wire() {
        for role in [Role::Czar, Role::Worker, Role::Repl] {
            assert_eq!(Role::from_wire(role.into()), Some(role));
            assert_eq!(Role::parse(role.name()).ok(), Some(role));
        }
        assert_eq!(Role::from_wire(0), None);
        assert!(Role::parse("master").is_err());
    }

    #[test]
    fn an_empty_worker_id_is_no_id() {
        let status = pb::AgentStatus {
            worker_id: Some(String::new()),
            seen_epoch: 2,
            epoch: 5,
            ..pb::AgentStatus::default()
        };
        let observation = Observation::from(&status);
        assert_eq!(observation.worker_id, None);
        assert_eq!(
            observation.seen_epoch,
            Epoch::from_wire(5),
            "a held epoch is a seen epoch"
        );
    }
}
