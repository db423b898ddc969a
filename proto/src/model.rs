//! The one conversion between the shared domain (`qserv_model`) and the generated messages.
//! The wire keeps its own conventions (0 for an absent counter or enum, empty text for
//! nothing); past these functions there is `None`. An unknown or unspecified value decodes to
//! `None` (or `Unknown`), never to a guess.

use qserv_migrations::Module;
use qserv_model::name::InvalidName;
use qserv_model::{
    Activity, AgentState, Count, Epoch, FencingToken, Mode, RegistryRow, Release, Role,
    SchemaState, ServiceName, ServiceState, ServiceStatus, Services, Target,
};

use crate::v1 as pb;

/// The role of a wire message; `None` for an unspecified or unknown one.
pub fn role(value: i32) -> Option<Role> {
    match pb::Role::try_from(value).ok()? {
        pb::Role::Czar => Some(Role::Czar),
        pb::Role::Worker => Some(Role::Worker),
        pb::Role::Repl => Some(Role::Repl),
        pb::Role::Unspecified => None,
    }
}

/// The wire's role of a role that may be absent.
pub fn role_to_wire(role: Option<Role>) -> i32 {
    role.map_or(pb::Role::Unspecified, pb::Role::from).into()
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

/// The mode of a wire message; `None` for an unspecified or unknown one.
pub fn mode(value: i32) -> Option<Mode> {
    match pb::Mode::try_from(value).ok()? {
        pb::Mode::Uninstalled => Some(Mode::Uninstalled),
        pb::Mode::Installing => Some(Mode::Installing),
        pb::Mode::Maintenance => Some(Mode::Maintenance),
        pb::Mode::Normal => Some(Mode::Normal),
        pb::Mode::Unspecified => None,
    }
}

/// The wire's mode of a mode that may be absent.
pub fn mode_to_wire(mode: Option<Mode>) -> i32 {
    mode.map_or(pb::Mode::Unspecified, pb::Mode::from).into()
}

impl From<Mode> for pb::Mode {
    fn from(mode: Mode) -> pb::Mode {
        match mode {
            Mode::Uninstalled => pb::Mode::Uninstalled,
            Mode::Installing => pb::Mode::Installing,
            Mode::Maintenance => pb::Mode::Maintenance,
            Mode::Normal => pb::Mode::Normal,
        }
    }
}

pub fn services(value: i32) -> Services {
    match pb::ServiceState::try_from(value) {
        Ok(pb::ServiceState::Stopped) => Services::Stopped,
        Ok(pb::ServiceState::Running) => Services::Running,
        Ok(pb::ServiceState::None) => Services::None,
        Ok(pb::ServiceState::Starting) => Services::Starting,
        _ => Services::Unknown,
    }
}

impl From<Services> for pb::ServiceState {
    fn from(value: Services) -> pb::ServiceState {
        match value {
            Services::Unknown => pb::ServiceState::Unknown,
            Services::Stopped => pb::ServiceState::Stopped,
            Services::Running => pb::ServiceState::Running,
            Services::None => pb::ServiceState::None,
            Services::Starting => pb::ServiceState::Starting,
        }
    }
}

pub fn service_state(value: i32) -> Option<ServiceState> {
    Some(match pb::ServiceRunState::try_from(value).ok()? {
        pb::ServiceRunState::Unspecified => return None,
        pb::ServiceRunState::Stopped => ServiceState::Stopped,
        pb::ServiceRunState::Starting => ServiceState::Starting,
        pb::ServiceRunState::Ready => ServiceState::Ready,
        pb::ServiceRunState::Running => ServiceState::Running,
        pb::ServiceRunState::Failed => ServiceState::Failed,
        pb::ServiceRunState::External => ServiceState::External,
    })
}

impl From<ServiceState> for pb::ServiceRunState {
    fn from(value: ServiceState) -> pb::ServiceRunState {
        match value {
            ServiceState::Stopped => pb::ServiceRunState::Stopped,
            ServiceState::Starting => pb::ServiceRunState::Starting,
            ServiceState::Ready => pb::ServiceRunState::Ready,
            ServiceState::Running => pb::ServiceRunState::Running,
            ServiceState::Failed => pb::ServiceRunState::Failed,
            ServiceState::External => pb::ServiceRunState::External,
        }
    }
}

/// A service whose name is not one, or whose state this build does not know, is left out: a
/// peer of another protocol is reported incompatible anyway.
pub fn service_status(wire: &pb::ServiceStatus) -> Option<ServiceStatus> {
    Some(ServiceStatus {
        name: ServiceName::parse(&wire.name).ok()?,
        state: service_state(wire.state)?,
        since_ms: wire.since_ms,
        exit_code: wire.exit_code,
        detail: wire.detail.clone(),
        external: wire.external,
        config_version: (wire.config_version > 0).then_some(wire.config_version),
        config_drift: wire.config_drift,
    })
}

impl From<&ServiceStatus> for pb::ServiceStatus {
    fn from(s: &ServiceStatus) -> pb::ServiceStatus {
        pb::ServiceStatus {
            name: s.name.to_string(),
            state: pb::ServiceRunState::from(s.state).into(),
            since_ms: s.since_ms,
            exit_code: s.exit_code,
            detail: s.detail.clone(),
            external: s.external,
            config_version: s.config_version.unwrap_or(0),
            config_drift: s.config_drift,
        }
    }
}

/// Absent, a release is all the services (what agents of earlier versions ran).
pub fn release(wire: Option<&pb::ServiceRelease>) -> Result<Release, InvalidName> {
    match wire {
        None => Ok(Release::All),
        Some(r) if r.all => Ok(Release::All),
        Some(r) => Ok(Release::Only(
            r.names
                .iter()
                .map(|n| ServiceName::parse(n))
                .collect::<Result<_, _>>()?,
        )),
    }
}

impl From<&Release> for pb::ServiceRelease {
    fn from(r: &Release) -> pb::ServiceRelease {
        match r {
            Release::All => pb::ServiceRelease {
                all: true,
                names: Vec::new(),
            },
            Release::Only(names) => pb::ServiceRelease {
                all: false,
                names: names.iter().map(ToString::to_string).collect(),
            },
        }
    }
}

pub fn activity(wire: Option<&pb::Activity>) -> Activity {
    let Some(w) = wire else {
        return Activity::default();
    };
    Activity {
        queries: w.queries_executing.map(|open| Count {
            open,
            oldest: w.oldest_query,
        }),
        transactions: w.transactions_open.map(|open| Count {
            open,
            oldest: w.oldest_transaction,
        }),
    }
}

impl From<Activity> for pb::Activity {
    fn from(a: Activity) -> pb::Activity {
        pb::Activity {
            queries_executing: a.queries.map(|c| c.open),
            oldest_query: a.queries.and_then(|c| c.oldest),
            transactions_open: a.transactions.map(|c| c.open),
            oldest_transaction: a.transactions.and_then(|c| c.oldest),
        }
    }
}

impl From<&RegistryRow> for pb::RegistryEntry {
    fn from(r: &RegistryRow) -> pb::RegistryEntry {
        pb::RegistryEntry {
            name: r.name.clone(),
            is_enabled: r.is_enabled,
            is_read_only: r.is_read_only,
        }
    }
}

/// Whom a command is meant for, as the agent checks it.
pub fn target(wire: &pb::CommandTarget) -> Target {
    Target {
        instance: wire.instance.clone(),
        node: wire.node.clone(),
        role: role(wire.role),
        epoch: Epoch::from_wire(wire.epoch),
        token: FencingToken::from_wire(wire.fencing_token),
    }
}

impl From<&Target> for pb::CommandTarget {
    fn from(t: &Target) -> pb::CommandTarget {
        pb::CommandTarget {
            instance: t.instance.clone(),
            node: t.node.clone(),
            role: role_to_wire(t.role),
            epoch: Epoch::to_wire(t.epoch),
            fencing_token: FencingToken::to_wire(t.token),
        }
    }
}

/// What an agent says, as the coordinator folds it in.
pub fn agent_state(status: &pb::AgentStatus) -> AgentState {
    let db = status.database.clone().unwrap_or_default();
    AgentState {
        name: status.name.clone(),
        role: role(status.role),
        agent_version: status.agent_version.clone(),
        protocol_version: status.protocol_version,
        boot_id: status.boot_id.clone(),
        seq: status.seq,
        observed_at_ms: status.observed_at_ms,
        instance: status.instance.clone(),
        mode: mode(status.mode),
        epoch: Epoch::from_wire(status.epoch),
        seen_epoch: Epoch::from_wire(status.seen_epoch.max(status.epoch)),
        seen_token: FencingToken::from_wire(status.seen_token),
        db_ready: db.ready,
        db_error: db.error,
        db_server_version: db.server_version,
        db_failed_attempts: db.failed_attempts,
        worker_id: status.worker_id.clone().filter(|id| !id.is_empty()),
        // A module this build does not know is not one it can plan for; it is left out.
        schemas: status
            .schemas
            .iter()
            .filter_map(|s| {
                Some(SchemaState {
                    module: Module::parse(&s.module).ok()?,
                    version: s.version,
                    dirty: s.dirty,
                    dirty_reason: s.dirty_reason.clone(),
                })
            })
            .collect(),
        services: services(status.services),
        services_error: status.services_error.clone(),
        service_states: status
            .service_states
            .iter()
            .filter_map(service_status)
            .collect(),
        // A release this build cannot read releases nothing: a gate stays shut rather than
        // open on a guess.
        released: release(status.released.as_ref()).unwrap_or_else(|_| Release::none()),
        certificate_expires_at_ms: status.certificate_expires_at_ms,
        activity: activity(status.activity.as_ref()),
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

/// What an agent publishes, as the wire carries it.
impl From<&AgentState> for pb::AgentStatus {
    fn from(s: &AgentState) -> pb::AgentStatus {
        pb::AgentStatus {
            name: s.name.clone(),
            role: role_to_wire(s.role),
            agent_version: s.agent_version.clone(),
            protocol_version: s.protocol_version,
            database: Some(pb::DatabaseStatus {
                ready: s.db_ready,
                server_version: s.db_server_version.clone(),
                error: s.db_error.clone(),
                failed_attempts: s.db_failed_attempts,
            }),
            worker_id: s.worker_id.clone(),
            schemas: s
                .schemas
                .iter()
                .map(|m| pb::ModuleSchema {
                    module: m.module.name().to_owned(),
                    database: m.module.database().to_owned(),
                    version: m.version,
                    dirty: m.dirty,
                    dirty_reason: m.dirty_reason.clone(),
                })
                .collect(),
            services: pb::ServiceState::from(s.services).into(),
            mode: mode_to_wire(s.mode),
            epoch: Epoch::to_wire(s.epoch),
            observed_at_ms: s.observed_at_ms,
            registry: s.registry.iter().map(pb::RegistryEntry::from).collect(),
            services_error: s.services_error.clone(),
            seq: s.seq,
            boot_id: s.boot_id.clone(),
            instance: s.instance.clone(),
            seen_epoch: Epoch::to_wire(s.seen_epoch),
            seen_token: FencingToken::to_wire(s.seen_token),
            certificate_expires_at_ms: s.certificate_expires_at_ms,
            activity: Some(s.activity.into()),
            service_states: s
                .service_states
                .iter()
                .map(pb::ServiceStatus::from)
                .collect(),
            released: Some(pb::ServiceRelease::from(&s.released)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_modes_round_trip_and_keep_their_names() {
        for r in Role::ALL {
            assert_eq!(role(pb::Role::from(r).into()), Some(r));
        }
        for m in Mode::ALL {
            assert_eq!(mode(pb::Mode::from(m).into()), Some(m));
        }
        assert_eq!(role(0), None);
        assert_eq!(mode(0), None);
        assert_eq!(role_to_wire(None), 0);
        assert_eq!(mode_to_wire(None), 0);
    }

    fn svc(name: &str) -> ServiceName {
        ServiceName::parse(name).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn service_states_and_releases_round_trip_and_bad_ones_do_not_pass() {
        for state in ServiceState::ALL {
            let wire = pb::ServiceRunState::from(state);
            assert_eq!(service_state(wire.into()), Some(state));
        }
        assert_eq!(service_state(0), None);
        assert_eq!(service_state(99), None);
        let bad = pb::ServiceStatus {
            name: "a b".to_owned(),
            state: pb::ServiceRunState::Ready.into(),
            ..pb::ServiceStatus::default()
        };
        assert_eq!(service_status(&bad), None);
        assert_eq!(release(None).ok(), Some(Release::All));
        let none = pb::ServiceRelease::from(&Release::none());
        assert_eq!(release(Some(&none)).ok(), Some(Release::none()));
        let invalid = pb::ServiceRelease {
            all: false,
            names: vec!["x;y".to_owned()],
        };
        assert!(release(Some(&invalid)).is_err());
    }

    #[test]
    fn services_round_trip_and_keep_their_names() {
        for s in [
            Services::Unknown,
            Services::Stopped,
            Services::Running,
            Services::None,
            Services::Starting,
        ] {
            let wire = pb::ServiceState::from(s);
            assert_eq!(services(wire.into()), s);
            assert_eq!(crate::names::services_name(wire), s.name());
        }
        assert_eq!(services(99), Services::Unknown);
    }

    #[test]
    fn an_agent_state_round_trips_through_the_wire() {
        let state = AgentState {
            name: "worker-1".to_owned(),
            role: Some(Role::Worker),
            agent_version: "1.2.3".to_owned(),
            protocol_version: 7,
            boot_id: "b".to_owned(),
            seq: 9,
            observed_at_ms: 1_700_000_000_000,
            instance: "dr1".to_owned(),
            mode: Some(Mode::Maintenance),
            epoch: Epoch::from_wire(4),
            seen_epoch: Epoch::from_wire(5),
            seen_token: FencingToken::from_wire(3),
            db_ready: false,
            db_error: "connection refused".to_owned(),
            db_server_version: "11.8.3-MariaDB".to_owned(),
            db_failed_attempts: 2,
            worker_id: Some("w-1".to_owned()),
            schemas: vec![SchemaState {
                module: Module::Worker,
                version: Some(3),
                dirty: true,
                dirty_reason: "002.sql: ☃ failed".to_owned(),
            }],
            services: Services::Starting,
            services_error: String::new(),
            service_states: vec![
                ServiceStatus {
                    name: svc("worker-xrootd"),
                    state: ServiceState::Failed,
                    since_ms: 7,
                    exit_code: Some(3),
                    detail: "it exited; last output:\nnö ☃".to_owned(),
                    external: false,
                    config_version: Some(4),
                    config_drift: true,
                },
                ServiceStatus {
                    external: true,
                    ..ServiceStatus::new(svc("worker-cmsd"), ServiceState::Ready, 8)
                },
            ],
            released: Release::Only([svc("worker-cmsd")].into()),
            registry: vec![RegistryRow {
                name: "w-1".to_owned(),
                is_enabled: true,
                is_read_only: false,
            }],
            certificate_expires_at_ms: 42,
            activity: Activity {
                queries: Some(Count {
                    open: 2,
                    oldest: Some(41),
                }),
                transactions: None,
            },
        };
        let wire = pb::AgentStatus::from(&state);
        assert_eq!(agent_state(&wire), state);
        assert_eq!(activity(None), Activity::default());
    }

    #[test]
    fn wire_conventions_decode_to_none() {
        let status = pb::AgentStatus {
            worker_id: Some(String::new()),
            seen_epoch: 2,
            epoch: 5,
            seen_token: 3,
            ..pb::AgentStatus::default()
        };
        let state = agent_state(&status);
        assert_eq!(state.worker_id, None, "an empty worker id is no id");
        assert_eq!(
            state.seen_epoch,
            Epoch::from_wire(5),
            "a held epoch is seen"
        );
        assert_eq!(state.seen_token, FencingToken::from_wire(3));
        assert_eq!(state.mode, None, "no mode said is no mode");
        assert_eq!(state.role, None);
    }

    #[test]
    fn a_target_round_trips_and_zero_is_no_counter() {
        let t = Target {
            instance: "dr1·α".to_owned(),
            node: "worker-1".to_owned(),
            role: Some(Role::Worker),
            epoch: Epoch::from_wire(4),
            token: FencingToken::from_wire(2),
        };
        assert_eq!(target(&pb::CommandTarget::from(&t)), t);
        let bare = target(&pb::CommandTarget::default());
        assert_eq!((bare.role, bare.epoch, bare.token), (None, None, None));
        assert!(!bare.is_addressed());
    }
}
