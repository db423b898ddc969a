//! Wire to domain for what only the coordinator reads: worker states and activity policies.
//! Roles, modes and an agent's status decode with `qserv_proto::model`, which the agent's
//! encoding shares. An unknown or unspecified value decodes to `None`, never to a guess.

use qserv_proto::v1 as pb;

use crate::activity::{ActivityPolicy, WorkerState};

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

impl ActivityPolicy {
    pub fn from_wire(wire: Option<&pb::ActivityPolicy>) -> ActivityPolicy {
        wire.map_or_else(ActivityPolicy::default, |w| ActivityPolicy {
            drain_ms: w.drain_ms,
            force: w.force,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_states_decode_and_unknown_is_none() {
        assert_eq!(
            WorkerState::from_wire(pb::WorkerState::ReadOnly.into()),
            Some(WorkerState::ReadOnly)
        );
        assert_eq!(WorkerState::from_wire(0), None);
        assert_eq!(WorkerState::from_wire(99), None);
    }

    #[test]
    fn no_policy_is_the_default() {
        assert_eq!(ActivityPolicy::from_wire(None), ActivityPolicy::default());
    }
}
