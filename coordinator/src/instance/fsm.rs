//! The mode state machine's guard table (DESIGN §2), as data: what each operation may do in
//! each mode. The coordinator enforces it; the CLI only reports.

use crate::domain::job::JobSpec;
use crate::instance::Mode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Install,
    Up,
    Down,
    UpgradePlan,
    UpgradeApply,
    Repair,
    WorkersAdd,
    WorkersRemove,
    Delete,
    Restart,
    WorkersReplace,
    WorkersState,
    ConfigApply,
    ConfigApplyRolling,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Allow,
    NoOp,
    Refuse,
}

use Rule::{Allow, NoOp, Refuse};

/// Columns: uninstalled, installing, maintenance, normal.
const GUARDS: [(Op, [Rule; 4]); 14] = [
    (Op::Install, /*      */ [Allow, Allow, Refuse, Refuse]),
    (Op::Up, /*           */ [Refuse, Refuse, Allow, NoOp]),
    (Op::Down, /*         */ [Refuse, Refuse, NoOp, Allow]),
    (Op::UpgradePlan, /*  */ [Refuse, Allow, Allow, Allow]),
    (Op::UpgradeApply, /* */ [Refuse, Refuse, Allow, Refuse]),
    (Op::Repair, /*       */ [Refuse, Refuse, Allow, Refuse]),
    (Op::WorkersAdd, /*   */ [Refuse, Refuse, Allow, Refuse]),
    (Op::WorkersRemove, /**/ [Refuse, Refuse, Allow, Refuse]),
    (Op::Delete, /*       */ [NoOp, Allow, Allow, Refuse]),
    // In maintenance the services are stopped: nothing to restart.
    (Op::Restart, /*      */ [Refuse, Refuse, NoOp, Allow]),
    (
        Op::WorkersReplace,
        /* */ [Refuse, Refuse, Allow, Refuse],
    ),
    (Op::WorkersState, /* */ [Refuse, Refuse, Allow, Refuse]),
    // Under running services only one node at a time, each restarted before the next.
    (Op::ConfigApply, /*  */ [Refuse, Refuse, Allow, Refuse]),
    (
        Op::ConfigApplyRolling,
        /* */ [Refuse, Refuse, Allow, Allow],
    ),
];

impl Op {
    /// The guard table's row for `spec`.
    pub fn of(spec: &JobSpec) -> Op {
        match spec {
            JobSpec::Install(_) | JobSpec::Adopt(_) => Op::Install,
            JobSpec::Up(_) => Op::Up,
            JobSpec::Down(_) => Op::Down,
            JobSpec::Delete(_) => Op::Delete,
            JobSpec::Upgrade(_) => Op::UpgradeApply,
            JobSpec::Repair(_) => Op::Repair,
            JobSpec::WorkersAdd(_) => Op::WorkersAdd,
            JobSpec::WorkersRemove(_) => Op::WorkersRemove,
            JobSpec::Restart(_) => Op::Restart,
            JobSpec::WorkersReplace(_) => Op::WorkersReplace,
            JobSpec::WorkersState(_) => Op::WorkersState,
            JobSpec::ConfigApply(p) if p.rolling => Op::ConfigApplyRolling,
            JobSpec::ConfigApply(_) => Op::ConfigApply,
        }
    }
    fn describe(self) -> &'static str {
        match self {
            Op::Install => "install",
            Op::Up => "up",
            Op::Down => "down",
            Op::UpgradePlan => "upgrade plans",
            Op::UpgradeApply => "schema upgrades",
            Op::Repair => "schema repairs",
            Op::WorkersAdd => "adding workers",
            Op::WorkersRemove => "removing workers",
            Op::Delete => "delete",
            Op::Restart => "rolling restarts",
            Op::WorkersReplace => "replacing workers",
            Op::WorkersState => "worker state changes",
            Op::ConfigApply => "configuration changes",
            Op::ConfigApplyRolling => "rolling configuration changes",
        }
    }
}

fn column(mode: Mode) -> usize {
    match mode {
        Mode::Uninstalled => 0,
        Mode::Installing => 1,
        Mode::Maintenance => 2,
        Mode::Normal => 3,
    }
}

pub fn rule(op: Op, mode: Mode) -> Rule {
    GUARDS
        .iter()
        .find(|(o, _)| *o == op)
        .map_or(Refuse, |(_, rules)| rules[column(mode)])
}

/// Allowed or no-op, or the refusal an operator reads: what is not allowed, in which mode, and
/// the command that would make it possible.
pub fn check(op: Op, mode: Mode) -> Result<Rule, String> {
    let rule = rule(op, mode);
    if rule != Refuse {
        return Ok(rule);
    }
    let allowed: Vec<&str> = Mode::ALL
        .into_iter()
        .filter(|m| self::rule(op, *m) == Allow)
        .map(Mode::name)
        .collect();
    let hint = match (op, mode) {
        (Op::Install, _) => {
            "the instance is already installed; 'qserv delete --confirm NAME' removes it".to_owned()
        }
        (Op::ConfigApply, Mode::Normal) => {
            "add --rolling to write and restart node by node, or run 'qserv down' first".to_owned()
        }
        (_, Mode::Normal) => "run 'qserv down' first".to_owned(),
        (_, Mode::Installing) => {
            "finish the installation first: run 'qserv install' again".to_owned()
        }
        (_, Mode::Uninstalled) => "run 'qserv install' first".to_owned(),
        (_, Mode::Maintenance) => "run 'qserv up' first".to_owned(),
    };
    Err(format!(
        "{} {} allowed only in {} mode (instance is {}); {hint}",
        op.describe(),
        if op.describe().ends_with('s') {
            "are"
        } else {
            "is"
        },
        allowed.join(" or "),
        mode.name()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_in_normal_names_down() {
        assert_eq!(
            check(Op::UpgradeApply, Mode::Normal).err().as_deref(),
            Some(
                "schema upgrades are allowed only in maintenance mode (instance is normal); run 'qserv down' first"
            )
        );
    }

    #[test]
    fn noops_and_refusals_follow_the_table() {
        assert_eq!(check(Op::Up, Mode::Normal), Ok(NoOp));
        assert_eq!(check(Op::Down, Mode::Maintenance), Ok(NoOp));
        assert_eq!(check(Op::Delete, Mode::Uninstalled), Ok(NoOp));
        assert_eq!(check(Op::Install, Mode::Installing), Ok(Allow));
        assert!(
            check(Op::Delete, Mode::Normal).is_err_and(|e| e.contains("run 'qserv down' first"))
        );
        assert!(
            check(Op::Up, Mode::Uninstalled)
                .is_err_and(|e| e.contains("run 'qserv install' first"))
        );
        assert!(
            check(Op::Install, Mode::Maintenance).is_err_and(|e| e.contains("already installed"))
        );
    }
}
