//! Whether this agent takes a command (DESIGN §2): it must be meant for this node, role and
//! instance, carry an epoch and a leader's fencing token no older than the highest seen, and, for anything that changes the
//! database, find the agent out of `normal` with its services stopped. A refused command
//! changes nothing.

use qserv_model::{Epoch, FencingToken, Mode, Release, Role, Services, Target};

use crate::node::state::ModeState;

/// What the command does, as far as the checks are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Reads only (`Inspect`, `Validate`).
    Read,
    /// Changes the database or its accounts (`Migrate`, `Repair`, `Purge`, `EnsureAccounts`,
    /// `RegisterWorkers`, `UnregisterWorkers`).
    Change,
    /// `SetMode` to this mode, with the services it releases (a repeat of the mode held keeps
    /// the release held: a resumed `up` must not stop what it already started).
    SetMode(Mode, Release),
    /// `SetServices`: which services may run in `normal`, under the epoch held.
    Release(Release),
    /// Restarts the services (`RestartServices`), in any mode: outside `normal` there are
    /// none running, and the controller says so.
    Restart,
    /// Writes a service's configuration file (`CommitConfig`): in `normal` only when the
    /// coordinator restarts the service next (`rolling`).
    Configure { rolling: bool },
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
    #[error(
        "this agent is {me} ({my_role}); the command was meant for {node} ({role}): the coordinator's inventory points {node} at this agent's address"
    )]
    OtherNode {
        me: String,
        my_role: Role,
        node: String,
        /// The role the command named; "unknown" for one this build does not know.
        role: &'static str,
    },
    #[error(
        "this agent belongs to instance '{bound}', not '{asked}'; a coordinator of another instance sent the command"
    )]
    OtherInstance { bound: String, asked: String },
    #[error(
        "stale epoch {asked}: this agent has seen epoch {seen}; the command comes from a coordinator that is no longer in charge"
    )]
    StaleEpoch { asked: u64, seen: Epoch },
    #[error(
        "stale fencing token {asked}: this agent has seen token {seen}; the command comes from a coordinator whose leader lease another has taken since"
    )]
    StaleToken { asked: u64, seen: FencingToken },
    #[error("epoch {epoch} already holds mode {held} on this agent; {asked} needs a newer epoch")]
    ModeConflict {
        epoch: u64,
        held: &'static str,
        asked: Mode,
    },
    #[error(
        "this agent holds mode {mode} with its services {services}; schema, account and registry changes need maintenance with the services stopped: run 'qserv down' first"
    )]
    Busy {
        mode: &'static str,
        services: Services,
    },
    #[error(
        "this agent holds mode normal: a configuration file changes under running services only in a rolling apply ('qserv config apply --rolling'), or after 'qserv down'"
    )]
    ConfigureInNormal,
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
    services: Services,
    me: &Identity,
    target: Option<&Target>,
    command: Command,
) -> Result<Admitted, Refusal> {
    let target = target
        .filter(|t| t.is_addressed())
        .ok_or(Refusal::NoTarget)?;
    if target.node != me.name || target.role != Some(me.role) {
        return Err(Refusal::OtherNode {
            me: me.name.clone(),
            my_role: me.role,
            node: target.node.clone(),
            role: Role::name_or_unknown(target.role),
        });
    }
    if !held.instance.is_empty() && held.instance != target.instance {
        return Err(Refusal::OtherInstance {
            bound: held.instance.clone(),
            asked: target.instance.clone(),
        });
    }
    // No counter is below every counter: a command without one passes only an agent that has
    // seen none.
    if let Some(seen) = held.seen_epoch.filter(|seen| target.epoch < Some(*seen)) {
        return Err(Refusal::StaleEpoch {
            asked: Epoch::to_wire(target.epoch),
            seen,
        });
    }
    if let Some(seen) = held.seen_token.filter(|seen| target.token < Some(*seen)) {
        return Err(Refusal::StaleToken {
            asked: FencingToken::to_wire(target.token),
            seen,
        });
    }
    let mut next = held.clone();
    next.seen_epoch = target.epoch;
    next.seen_token = target.token;
    let mut applies = false;
    match command {
        Command::Read | Command::Restart => {}
        Command::Configure { rolling } => {
            if held.mode == Some(Mode::Normal) && !rolling {
                return Err(Refusal::ConfigureInNormal);
            }
        }
        Command::Release(release) => next.release = release,
        Command::Change => {
            if held.mode == Some(Mode::Normal) || services.any_up() {
                return Err(Refusal::Busy {
                    mode: Mode::name_or_unknown(held.mode),
                    services,
                });
            }
        }
        Command::SetMode(mode, release) => {
            if target.epoch > held.epoch {
                next.mode = Some(mode);
                next.epoch = target.epoch;
                next.release = release;
                applies = true;
                if mode != Mode::Uninstalled && next.instance.is_empty() {
                    next.instance = target.instance.clone();
                }
            } else if held.mode != Some(mode) {
                return Err(Refusal::ModeConflict {
                    epoch: Epoch::to_wire(target.epoch),
                    held: Mode::name_or_unknown(held.mode),
                    asked: mode,
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

    fn target(node: &str, role: Role, instance: &str, epoch: u64) -> Target {
        Target {
            instance: instance.to_owned(),
            node: node.to_owned(),
            role: Some(role),
            epoch: Epoch::from_wire(epoch),
            token: None,
        }
    }

    fn held(mode: Option<Mode>, epoch: u64, instance: &str, seen: u64) -> ModeState {
        ModeState {
            mode,
            epoch: Epoch::from_wire(epoch),
            instance: instance.to_owned(),
            seen_epoch: Epoch::from_wire(seen),
            seen_token: None,
            release: qserv_model::Release::All,
        }
    }

    const STOPPED: Services = Services::Stopped;
    const MAINTENANCE: Option<Mode> = Some(Mode::Maintenance);

    #[test]
    fn a_command_for_another_node_or_role_is_refused() {
        let h = held(MAINTENANCE, 3, "dr1", 3);
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
        let bound = held(MAINTENANCE, 3, "dr1", 3);
        assert!(matches!(
            admit(&bound, STOPPED, &me(), Some(&dr2), Command::Read),
            Err(Refusal::OtherInstance { .. })
        ));
        let unbound = held(None, 0, "", 0);
        let admitted = admit(
            &unbound,
            STOPPED,
            &me(),
            Some(&dr2),
            Command::SetMode(Mode::Installing, Release::All),
        );
        assert_eq!(
            admitted.map(|a| a.next.instance).ok().as_deref(),
            Some("dr2")
        );
    }

    #[test]
    fn stale_epochs_are_refused_and_newer_ones_remembered() -> Result<(), &'static str> {
        let h = held(MAINTENANCE, 5, "dr1", 7);
        let old = target("worker-1", Role::Worker, "dr1", 6);
        assert_eq!(
            admit(&h, STOPPED, &me(), Some(&old), Command::Read),
            Err(Refusal::StaleEpoch {
                asked: 6,
                seen: Epoch::from_wire(7).ok_or("no epoch")?
            })
        );
        let new = target("worker-1", Role::Worker, "dr1", 9);
        let admitted = admit(&h, STOPPED, &me(), Some(&new), Command::Change);
        assert_eq!(
            admitted.map(|a| (a.next.seen_epoch, a.next.epoch)),
            Ok((Epoch::from_wire(9), Epoch::from_wire(5)))
        );
        let max = target("worker-1", Role::Worker, "dr1", u64::MAX);
        assert!(admit(&h, STOPPED, &me(), Some(&max), Command::Read).is_ok());
        Ok(())
    }

    #[test]
    fn a_deposed_leaders_token_is_refused_and_a_newer_one_remembered() -> Result<(), &'static str> {
        let mut h = held(MAINTENANCE, 5, "dr1", 5);
        h.seen_token = FencingToken::from_wire(4);
        let mut old = target("worker-1", Role::Worker, "dr1", 5);
        old.token = FencingToken::from_wire(3);
        assert_eq!(
            admit(&h, STOPPED, &me(), Some(&old), Command::Read),
            Err(Refusal::StaleToken {
                asked: 3,
                seen: FencingToken::from_wire(4).ok_or("no token")?
            })
        );
        old.token = None;
        assert!(
            matches!(
                admit(&h, STOPPED, &me(), Some(&old), Command::Read),
                Err(Refusal::StaleToken { asked: 0, .. })
            ),
            "a command without a token is older than any token seen"
        );
        let mut new = old.clone();
        new.token = FencingToken::from_wire(6);
        let admitted = admit(&h, STOPPED, &me(), Some(&new), Command::Change);
        assert_eq!(admitted.map(|a| a.next.seen_token), Ok(new.token));
        Ok(())
    }

    #[test]
    fn changes_need_maintenance_with_services_stopped() {
        let t = target("worker-1", Role::Worker, "dr1", 4);
        let normal = held(Some(Mode::Normal), 4, "dr1", 4);
        let refusal = admit(&normal, Services::Running, &me(), Some(&t), Command::Change);
        assert!(refusal.is_err_and(|r| r.to_string().contains("run 'qserv down' first")));
        let maintenance = held(MAINTENANCE, 4, "dr1", 4);
        assert!(
            admit(
                &maintenance,
                Services::Running,
                &me(),
                Some(&t),
                Command::Change
            )
            .is_err()
        );
        assert!(
            admit(
                &maintenance,
                Services::Unknown,
                &me(),
                Some(&t),
                Command::Change
            )
            .is_ok()
        );
        assert!(admit(&normal, Services::Running, &me(), Some(&t), Command::Read).is_ok());
        let fresh = ModeState::default();
        assert!(admit(&fresh, STOPPED, &me(), Some(&t), Command::Change).is_ok());
    }

    #[test]
    fn set_mode_applies_once_per_epoch() {
        let h = held(MAINTENANCE, 4, "dr1", 4);
        let same = target("worker-1", Role::Worker, "dr1", 4);
        let repeat = admit(
            &h,
            STOPPED,
            &me(),
            Some(&same),
            Command::SetMode(Mode::Maintenance, Release::All),
        );
        assert_eq!(repeat.map(|a| a.applies), Ok(false));
        assert!(matches!(
            admit(
                &h,
                STOPPED,
                &me(),
                Some(&same),
                Command::SetMode(Mode::Normal, Release::All)
            ),
            Err(Refusal::ModeConflict { .. })
        ));
        let next = target("worker-1", Role::Worker, "dr1", 5);
        let up = admit(
            &h,
            STOPPED,
            &me(),
            Some(&next),
            Command::SetMode(Mode::Normal, Release::All),
        );
        assert_eq!(
            up.map(|a| (a.applies, a.next.mode, a.next.epoch)),
            Ok((true, Some(Mode::Normal), Epoch::from_wire(5)))
        );
    }

    #[test]
    fn a_repeated_mode_keeps_its_release_and_a_release_needs_no_stopped_services() {
        let proxy = qserv_model::ServiceName::parse("proxy").unwrap_or_else(|e| panic!("{e}"));
        let mut h = held(Some(Mode::Normal), 5, "dr1", 5);
        h.release = Release::Only([proxy.clone()].into());
        let same = target("worker-1", Role::Worker, "dr1", 5);
        let repeat = admit(
            &h,
            Services::Running,
            &me(),
            Some(&same),
            Command::SetMode(Mode::Normal, Release::none()),
        );
        assert_eq!(repeat.map(|a| a.next.release), Ok(h.release.clone()));
        let newer = target("worker-1", Role::Worker, "dr1", 6);
        let down = admit(
            &h,
            Services::Running,
            &me(),
            Some(&newer),
            Command::SetMode(Mode::Maintenance, Release::All),
        );
        assert_eq!(down.map(|a| a.next.release), Ok(Release::All));
        let all = admit(
            &h,
            Services::Starting,
            &me(),
            Some(&same),
            Command::Release(Release::All),
        );
        assert_eq!(all.map(|a| a.next.release), Ok(Release::All));
        let stale = target("worker-1", Role::Worker, "dr1", 4);
        let refused = admit(
            &h,
            STOPPED,
            &me(),
            Some(&stale),
            Command::Release(Release::All),
        );
        assert!(matches!(refused, Err(Refusal::StaleEpoch { .. })));
    }

    #[test]
    fn a_config_file_changes_in_normal_only_in_a_rolling_apply() {
        let at = target("worker-1", Role::Worker, "dr1", 5);
        let normal = held(Some(Mode::Normal), 5, "dr1", 5);
        let plain = admit(
            &normal,
            Services::Running,
            &me(),
            Some(&at),
            Command::Configure { rolling: false },
        );
        assert_eq!(plain.err(), Some(Refusal::ConfigureInNormal));
        let rolling = admit(
            &normal,
            Services::Running,
            &me(),
            Some(&at),
            Command::Configure { rolling: true },
        );
        assert!(rolling.is_ok());
        let maintenance = held(MAINTENANCE, 5, "dr1", 5);
        let plain = admit(
            &maintenance,
            STOPPED,
            &me(),
            Some(&at),
            Command::Configure { rolling: false },
        );
        assert!(plain.is_ok());
    }
}
