//! Qserv's own work in flight (queries on the czars, ingest transactions on the repl node), and
//! the worker states of the replication registry. Pure: the status's nodes come in, counts and
//! refusals go out.

use serde::{Deserialize, Serialize};

pub use qserv_model::{Activity, Count};

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
