//! Wire to domain: the enums clients and agents send as numbers, and an agent's status as the
//! typed [`Observation`] the instance state folds in. An unknown or unspecified value decodes
//! to `None` (or `Unknown`), never to a guess.

use qserv_migrations::Module;
use qserv_proto::v1 as pb;

use crate::activity::{Activity, ActivityPolicy, Count, WorkerState};
use crate::domain::{Observation, RegistryRow, Role, SchemaObservation, Services};
use crate::instance::{Epoch, FencingToken, Mode};

impl Role {
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

impl Mode {
    /// The mode of a wire message; `None` for an unspecified or unknown one.
    pub fn from_wire(value: i32) -> Option<Mode> {
        match pb::Mode::try_from(value).ok()? {
            pb::Mode::Uninstalled => Some(Mode::Uninstalled),
            pb::Mode::Installing => Some(Mode::Installing),
            pb::Mode::Maintenance => Some(Mode::Maintenance),
            pb::Mode::Normal => Some(Mode::Normal),
            pb::Mode::Unspecified => None,
        }
    }
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

impl WorkerState {
    pub fn from_wire(value: i32) -> Option<WorkerState> {
        match pb::WorkerState::try_from(value).ok()? {
            pb::WorkerState::Enabled => Some(WorkerState::Enabled),
            pb::WorkerState::ReadOnly => Some(WorkerState::ReadOnly),
            pb::WorkerState::Disabled => Some(WorkerState::Disabled),
            pb::WorkerState::Unspecified => None,
        }
    }
}

impl Activity {
    pub fn from_wire(wire: Option<&pb::Activity>) -> Activity {
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
}

impl ActivityPolicy {
    pub fn from_wire(wire: Option<&pb::ActivityPolicy>) -> ActivityPolicy {
        wire.map_or_else(ActivityPolicy::default, |w| ActivityPolicy {
            drain_ms: w.drain_ms,
            force: w.force,
        })
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
            activity: Activity::from_wire(status.activity.as_ref()),
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

    /// The CLI spells roles and modes with `qserv_proto::names`: both sides must agree.
    #[test]
    fn roles_round_trip_through_the_wire() {
        for role in Role::ALL {
            assert_eq!(Role::from_wire(role.into()), Some(role));
            assert_eq!(Role::parse(role.name()).ok(), Some(role));
            let wire = qserv_proto::names::parse_role(role.name()).ok();
            assert_eq!(wire, Some(pb::Role::from(role)), "{role}");
        }
        assert_eq!(Role::from_wire(0), None);
        assert!(Role::parse("master").is_err());
    }

    #[test]
    fn modes_round_trip_through_the_wire_and_their_names() {
        for mode in Mode::ALL {
            assert_eq!(Mode::from_wire(mode.into()), Some(mode));
            assert_eq!(Mode::parse(mode.name()).ok(), Some(mode));
            assert_eq!(qserv_proto::names::mode_name(mode.into()), mode.name());
        }
        assert_eq!(Mode::from_wire(0), None);
        assert!(Mode::parse("unknown").is_err());
    }

    #[test]
    fn services_round_trip_through_the_wire() {
        for services in [
            Services::Unknown,
            Services::Stopped,
            Services::Running,
            Services::None,
        ] {
            let wire: pb::ServiceState = services.into();
            assert_eq!(Services::from_wire(wire.into()), services);
        }
        assert_eq!(Services::from_wire(99), Services::Unknown);
    }

    #[test]
    fn activity_round_trips_through_the_wire() {
        let activity = Activity {
            queries: Some(Count {
                open: 2,
                oldest: Some(41),
            }),
            transactions: None,
        };
        assert_eq!(Activity::from_wire(Some(&activity.to_wire())), activity);
        assert_eq!(Activity::from_wire(None), Activity::default());
    }

    #[test]
    fn an_empty_worker_id_is_no_id() {
        let status = pb::AgentStatus {
            worker_id: Some(String::new()),
            seen_epoch: 2,
            epoch: 5,
            seen_token: 3,
            ..pb::AgentStatus::default()
        };
        let observation = Observation::from(&status);
        assert_eq!(observation.worker_id, None);
        assert_eq!(
            observation.seen_epoch,
            Epoch::from_wire(5),
            "a held epoch is a seen epoch"
        );
        assert_eq!(observation.seen_token, FencingToken::from_wire(3));
        assert_eq!(observation.mode, None, "no mode said is no mode");
    }
}
