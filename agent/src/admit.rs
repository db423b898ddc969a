//! Whether this agent takes a command (DESIGN §2): it must be meant for this node, role and
//! instance, carry an epoch and a leader's fencing token no older than the highest seen, and, for anything that changes the
//! database, find the agent out of `normal` with its services stopped. A refused command
//! changes nothing.

use qserv_proto::names::{mode_name, role_name};
use qserv_proto::v1::{CommandTarget, Mode, Role, ServiceState};

use crate::state::ModeState;

/// What the command does, as far as the checks are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Reads only (`Inspect`, `Validate`).
    Read,
    /// Changes the database or its accounts (`Migrate`, `Repair`, `Purge`, `EnsureAccounts`,
    /// `RegisterWorkers`, `UnregisterWorkers`).
    Change,
    /// `SetMode` to this mode.
    SetMode(Mode),
    /// Restarts the services (`RestartServices`), in any mode: outside `normal` there are
    /// none running, and the controller says so.
    Restart,
}

/// Who this agent is.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "the command names no instance, node or epoch; it did not come from a qserv coordinator of this version"
    )]
    NoTarget,
    #[error("set-mode needs a mode")]
    NoMode,
    #[error(
        "this agent is {me} ({my_role}); the command was meant for {node} ({role}): the coordinator's inventory points {node} at this agent's address"
    )]
    OtherNode {
        me: String,
        my_role: &'static str,
        node: String,
        role: &'static str,
    },
    #[error(
        "this agent belongs to instance '{bound}', not '{asked}'; a coordinator of another instance sent the command"
    )]
    OtherInstance { bound: String, asked: String },
    #[error(
        "stale epoch {asked}: this agent has seen epoch {seen}; the command comes from a coordinator that is no longer in charge"
    )]
    StaleEpoch { asked: u64, seen: u64 },
    #[error(
        "stale fencing token {asked}: this agent has seen token {seen}; the command comes from a coordinator whose leader lease another has taken since"
    )]
    StaleToken { asked: u64, seen: u64 },
    #[error("epoch {epoch} already holds mode {held} on this agent; {asked} needs a newer epoch")]
    ModeConflict {
        epoch: u64,
        held: &'static str,
        asked: &'static str,
    },
    #[error(
        "this agent holds mode {mode} with its services {services}; schema, account and registry changes need maintenance with the services stopped: run 'qserv down' first"
    )]
    Busy {
        mode: &'static str,
        services: &'static str,
    },
}

/// What an admitted command changes in the agent's own state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// The state to persist when it differs from the one held.
    pub next: ModeState,
    /// A `SetMode` that takes effect (false for a repeat of the mode held).
    pub applies: bool,
}

/// Checks `target` for `command` against what the agent holds.
pub fn admit(
    held: &ModeState,
    services: ServiceState,
    me: &Identity,
    target: Option<&CommandTarget>,
    command: Command,
) -> Result<Admitted, Refusal> {
    let target = target
        .filter(|t| !t.instance.is_empty() && !t.node.is_empty())
        .ok_or(Refusal::NoTarget)?;
    let role = Role::try_from(target.role).unwrap_or(Role::Unspecified);
    if target.node != me.name || role != me.role {
        return Err(Refusal::OtherNode {
            me: me.name.clone(),
            my_role: role_name(me.role),
            node: target.node.clone(),
            role: role_name(role),
        });
    }
    if !held.instance.is_empty() && held.instance != target.instance {
        return Err(Refusal::OtherInstance {
            bound: held.instance.clone(),
            asked: target.instance.clone(),
        });
    }
    if target.epoch < held.seen_epoch {
        return Err(Refusal::StaleEpoch {
            asked: target.epoch,
            seen: held.seen_epoch,
        });
    }
    if target.fencing_token < held.seen_token {
        return Err(Refusal::StaleToken {
            asked: target.fencing_token,
            seen: held.seen_token,
        });
    }
    let mut next = held.clone();
    next.seen_epoch = target.epoch;
    next.seen_token = target.fencing_token;
    let mut applies = false;
    match command {
        Command::Read | Command::Restart => {}
        Command::Change => {
            if held.mode == Mode::Normal || services == ServiceState::Running {
                return Err(Refusal::Busy {
                    mode: mode_name(held.mode),
                    services: qserv_proto::names::services_name(services),
                });
            }
        }
        Command::SetMode(Mode::Unspecified) => return Err(Refusal::NoMode),
        Command::SetMode(mode) => {
            if target.epoch > held.epoch {
                next.mode = mode;
                next.epoch = target.epoch;
                applies = true;
                if mode != Mode::Uninstalled && next.instance.is_empty() {
                    next.instance = target.instance.clone();
                }
            } else if held.mode != mode {
                return Err(Refusal::ModeConflict {
                    epoch: target.epoch,
                    held: mode_name(held.mode),
                    asked: mode_name(mode),
                });
            }
        }
    }
    Ok(Admitted { next, applies })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Identity {
        Identity {
            name: "worker-1".to_owned(),
            role: Role::Worker,
        }
    }

    fn target(node: &str, role: Role, instance: &str, epoch: u64) -> CommandTarget {
        CommandTarget {
            instance: instance.to_owned(),
            node: node.to_owned(),
            role: role.into(),
            epoch,
            fencing_token: 0,
        }
    }

    fn held(mode: Mode, epoch: u64, instance: &str, seen: u64) -> ModeState {
        ModeState {
            mode,
            epoch,
            instance: instance.to_owned(),
            seen_epoch: seen,
            seen_token: 0,
        }
    }

    const STOPPED: ServiceState = ServiceState::Stopped;

    #[test]
    fn a_command_for_another_node_or_role_is_refused() {
        let h = held(Mode::Maintenance, 3, "dr1", 3);
        let other = target("worker-2", Role::Worker, "dr1", 3);
        assert!(matches!(
            admit(&h, STOPPED, &me(), Some(&other), Command::Change),
            Err(Refusal::OtherNode { .. })
        ));
        let czar = target("worker-1", Role::Czar, "dr1", 3);
        let refusal = admit(&h, STOPPED, &me(), Some(&czar), Command::Read).err();
        assert!(refusal.is_some_and(|r| r.to_string().contains("meant for worker-1 (czar)")));
        assert_eq!(
            admit(&h, STOPPED, &me(), None, Command::Read),
            Err(Refusal::NoTarget)
        );
    }

    #[test]
    fn another_instance_is_refused_once_bound() {
        let dr2 = target("worker-1", Role::Worker, "dr2", 9);
        let bound = held(Mode::Maintenance, 3, "dr1", 3);
        assert!(matches!(
            admit(&bound, STOPPED, &me(), Some(&dr2), Command::Read),
            Err(Refusal::OtherInstance { .. })
        ));
        let unbound = held(Mode::Unspecified, 0, "", 0);
        let admitted = admit(
            &unbound,
            STOPPED,
            &me(),
            Some(&dr2),
            Command::SetMode(Mode::Installing),
        );
        assert_eq!(
            admitted.map(|a| a.next.instance).ok().as_deref(),
            Some("dr2")
        );
    }

    #[test]
    fn stale_epochs_are_refused_and_newer_ones_remembered() {
        let h = held(Mode::Maintenance, 5, "dr1", 7);
        let old = target("worker-1", Role::Worker, "dr1", 6);
        assert_eq!(
            admit(&h, STOPPED, &me(), Some(&old), Command::Read),
            Err(Refusal::StaleEpoch { asked: 6, seen: 7 })
        );
        let new = target("worker-1", Role::Worker, "dr1", 9);
        let admitted = admit(&h, STOPPED, &me(), Some(&new), Command::Change);
        assert_eq!(
            admitted.map(|a| (a.next.seen_epoch, a.next.epoch)),
            Ok((9, 5))
        );
        let max = target("worker-1", Role::Worker, "dr1", u64::MAX);
        assert!(admit(&h, STOPPED, &me(), Some(&max), Command::Read).is_ok());
    }

    #[test]
    fn a_deposed_leaders_token_is_refused_and_a_newer_one_remembered() {
        let mut h = held(Mode::Maintenance, 5, "dr1", 5);
        h.seen_token = 4;
        let mut old = target("worker-1", Role::Worker, "dr1", 5);
        old.fencing_token = 3;
        assert_eq!(
            admit(&h, STOPPED, &me(), Some(&old), Command::Read),
            Err(Refusal::StaleToken { asked: 3, seen: 4 })
        );
        let mut new = old.clone();
        new.fencing_token = 6;
        let admitted = admit(&h, STOPPED, &me(), Some(&new), Command::Change);
        assert_eq!(admitted.map(|a| a.next.seen_token), Ok(6));
    }

    #[test]
    fn changes_need_maintenance_with_services_stopped() {
        let t = target("worker-1", Role::Worker, "dr1", 4);
        let normal = held(Mode::Normal, 4, "dr1", 4);
        let refusal = admit(
            &normal,
            ServiceState::Running,
            &me(),
            Some(&t),
            Command::Change,
        );
        assert!(refusal.is_err_and(|r| r.to_string().contains("run 'qserv down' first")));
        let maintenance = held(Mode::Maintenance, 4, "dr1", 4);
        assert!(
            admit(
                &maintenance,
                ServiceState::Running,
                &me(),
                Some(&t),
                Command::Change
            )
            .is_err()
        );
        assert!(
            admit(
                &maintenance,
                ServiceState::Unknown,
                &me(),
                Some(&t),
                Command::Change
            )
            .is_ok()
        );
        assert!(
            admit(
                &normal,
                ServiceState::Running,
                &me(),
                Some(&t),
                Command::Read
            )
            .is_ok()
        );
        let fresh = ModeState::default();
        assert!(admit(&fresh, STOPPED, &me(), Some(&t), Command::Change).is_ok());
    }

    #[test]
    fn set_mode_applies_once_per_epoch() {
        let h = held(Mode::Maintenance, 4, "dr1", 4);
        let same = target("worker-1", Role::Worker, "dr1", 4);
        let repeat = admit(
            &h,
            STOPPED,
            &me(),
            Some(&same),
            Command::SetMode(Mode::Maintenance),
        );
        assert_eq!(repeat.map(|a| a.applies), Ok(false));
        assert!(matches!(
            admit(
                &h,
                STOPPED,
                &me(),
                Some(&same),
                Command::SetMode(Mode::Normal)
            ),
            Err(Refusal::ModeConflict { .. })
        ));
        let next = target("worker-1", Role::Worker, "dr1", 5);
        let up = admit(
            &h,
            STOPPED,
            &me(),
            Some(&next),
            Command::SetMode(Mode::Normal),
        );
        assert_eq!(
            up.map(|a| (a.applies, a.next.mode, a.next.epoch)),
            Ok((true, Mode::Normal, 5))
        );
        assert_eq!(
            admit(
                &h,
                STOPPED,
                &me(),
                Some(&next),
                Command::SetMode(Mode::Unspecified)
            ),
            Err(Refusal::NoMode)
        );
    }
}
