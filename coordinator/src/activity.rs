//! Qserv's own work in flight (queries on the czars, ingest transactions on the repl node), and
//! the worker states of the replication registry. Pure: the status's nodes come in, counts and
//! refusals go out.

use serde::{Deserialize, Serialize};

/// How many of something are open, and the oldest id among them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    pub open: u64,
    pub oldest: Option<u64>,
}

/// Both combined by `f`, else whichever there is.
fn combine<T>(a: Option<T>, b: Option<T>, f: impl FnOnce(T, T) -> T) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(f(a, b)),
        (a, b) => a.or(b),
    }
}

impl Count {
    fn add(self, other: Count) -> Count {
        Count {
            open: self.open + other.open,
            oldest: combine(self.oldest, other.oldest, u64::min),
        }
    }
}

/// `None` where no node has the table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Activity {
    pub queries: Option<Count>,
    pub transactions: Option<Count>,
}

impl Activity {
    pub fn merge(self, other: Activity) -> Activity {
        Activity {
            queries: combine(self.queries, other.queries, Count::add),
            transactions: combine(self.transactions, other.transactions, Count::add),
        }
    }

    /// What runs, in an operator's words; `None` when nothing does.
    pub fn describe(self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(c) = self.queries.filter(|c| c.open > 0) {
            parts.push(format!(
                "{} quer{} executing{}",
                c.open,
                if c.open == 1 { "y" } else { "ies" },
                c.oldest
                    .map(|id| format!(" (oldest {id})"))
                    .unwrap_or_default()
            ));
        }
        if let Some(c) = self.transactions.filter(|c| c.open > 0) {
            parts.push(format!(
                "{} ingest transaction{} open{}",
                c.open,
                if c.open == 1 { "" } else { "s" },
                c.oldest
                    .map(|id| format!(" (oldest {id})"))
                    .unwrap_or_default()
            ));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// The instance's activity: every reachable node's, summed (what an unreachable agent last
/// said is not what runs now).
pub fn of_instance(state: &crate::instance::InstanceState) -> Activity {
    state
        .nodes
        .iter()
        .filter(|n| n.reachable())
        .map(crate::instance::NodeState::activity)
        .fold(Activity::default(), Activity::merge)
}

/// What `down` and `restart` do about activity (DESIGN §16).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityPolicy {
    /// Wait this long for it to end; 0: refuse at once.
    #[serde(default)]
    pub drain_ms: u64,
    /// Go ahead anyway.
    #[serde(default)]
    pub force: bool,
}

/// Admission's rule: activity refuses a command that would stop the services under it, unless
/// it drains (the job waits) or forces.
pub fn refusal(what: &str, activity: Activity, policy: ActivityPolicy) -> Result<(), String> {
    if policy.force || policy.drain_ms > 0 {
        return Ok(());
    }
    match activity.describe() {
        None => Ok(()),
        Some(running) => Err(format!(
            "{what} would stop the services under work in flight: {running}; wait for it with --drain DUR, or pass --force to stop it anyway"
        )),
    }
}

/// A worker's state in the replication registry: `is_enabled` / `is_read_only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkerState {
    Enabled,
    ReadOnly,
    Disabled,
}

impl WorkerState {
    /// (`is_enabled`, `is_read_only`) as Qserv reads them.
    pub fn flags(self) -> (bool, bool) {
        match self {
            WorkerState::Enabled => (true, false),
            WorkerState::ReadOnly => (true, true),
            WorkerState::Disabled => (false, false),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WorkerState::Enabled => "enabled",
            WorkerState::ReadOnly => "read-only",
            WorkerState::Disabled => "disabled",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(open: u64, oldest: Option<u64>) -> Option<Count> {
        Some(Count { open, oldest })
    }

    #[test]
    fn activity_sums_and_keeps_the_oldest() {
        let a = Activity {
            queries: count(2, Some(40)),
            transactions: None,
        };
        let b = Activity {
            queries: count(1, Some(7)),
            transactions: count(0, None),
        };
        let m = a.merge(b);
        assert_eq!(m.queries, count(3, Some(7)));
        assert_eq!(m.transactions, count(0, None));
        assert!(m.describe().is_some());
        assert_eq!(
            Activity::default().describe(),
            None,
            "no tables: nothing to wait for"
        );
    }

    #[test]
    fn a_refusal_names_counts_and_ids_and_the_ways_out() {
        let busy = Activity {
            queries: count(1, Some(12)),
            transactions: count(2, Some(5)),
        };
        let why = refusal("down", busy, ActivityPolicy::default()).err();
        let why = why.unwrap_or_default();
        assert!(why.contains("1 query executing (oldest 12)"), "{why}");
        assert!(
            why.contains("2 ingest transactions open (oldest 5)"),
            "{why}"
        );
        assert!(why.contains("--drain") && why.contains("--force"), "{why}");
        let drain = ActivityPolicy {
            drain_ms: 1000,
            force: false,
        };
        assert!(refusal("down", busy, drain).is_ok());
        assert!(refusal("down", Activity::default(), ActivityPolicy::default()).is_ok());
    }

    #[test]
    fn worker_states_round_trip_through_the_flags() {
        for state in [
            WorkerState::Enabled,
            WorkerState::ReadOnly,
            WorkerState::Disabled,
        ] {
            let (enabled, read_only) = state.flags();
            assert_eq!(
                qserv_proto::names::worker_state_name(enabled, read_only),
                state.name(),
                "the flags written read back as the state"
            );
        }
        assert_eq!(WorkerState::Disabled.flags(), (false, false));
    }

    #[test]
    fn a_policy_reads_from_old_documents() {
        let p = serde_json::from_str::<ActivityPolicy>("{}").map_err(|e| e.to_string());
        assert_eq!(p, Ok(ActivityPolicy::default()));
    }
}
