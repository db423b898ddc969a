//! Domain to wire for what the job and audit queries answer: jobs with their steps and nodes,
//! log lines, audit entries, and the states they carry.

use qserv_proto::v1 as pb;

use crate::domain::audit::AuditRecord;
use crate::domain::job::{JobRecord, JobState, Level, LogRecord, NodeState, StepState};

/// `From` a domain state to its wire counterpart, variant by variant: a variant added on one
/// side and not the other does not compile.
macro_rules! same_variants {
    ($name:ident => $wire:ident { $($variant:ident),+ $(,)? }) => {
        impl From<$name> for pb::$wire {
            fn from(state: $name) -> pb::$wire {
                match state { $($name::$variant => pb::$wire::$variant),+ }
            }
        }

        impl From<$name> for i32 {
            fn from(state: $name) -> i32 {
                pb::$wire::from(state).into()
            }
        }
    };
}

same_variants!(JobState => JobState { Queued, Running, Succeeded, Failed, Cancelled, Interrupted });
same_variants!(StepState => StepState { Pending, Running, Succeeded, Failed, Skipped, Cancelled });
same_variants!(NodeState => JobNodeState { Pending, Running, Waiting, Done, Failed, Skipped });
same_variants!(Level => LogLevel { Info, Warn, Error });

impl From<&LogRecord> for pb::LogLine {
    fn from(line: &LogRecord) -> pb::LogLine {
        pb::LogLine {
            seq: line.seq,
            at_ms: line.at_ms,
            level: line.level.into(),
            node: line.node.clone(),
            message: line.message.clone(),
        }
    }
}

impl From<&JobRecord> for pb::Job {
    fn from(job: &JobRecord) -> pb::Job {
        pb::Job {
            id: job.id.clone(),
            kind: job.kind.clone(),
            state: job.state.into(),
            params: job.params.spec().map(Into::into),
            requested_by: job.requested_by.clone(),
            created_at_ms: job.created_at_ms,
            started_at_ms: job.started_at_ms,
            finished_at_ms: job.finished_at_ms,
            store_error: job.unstored.clone().unwrap_or_default(),
            note: job.note.clone(),
            steps: job
                .steps
                .iter()
                .map(|s| pb::JobStep {
                    name: s.name.clone(),
                    state: s.state.into(),
                    started_at_ms: s.started_at_ms,
                    finished_at_ms: s.finished_at_ms,
                })
                .collect(),
            nodes: job
                .nodes
                .iter()
                .map(|n| pb::JobNode {
                    name: n.name.clone(),
                    state: n.state.into(),
                    detail: n.detail.clone(),
                    error: n.error.clone(),
                })
                .collect(),
            error: job.error.clone(),
            refused: job.refused,
            timed_out: job.timed_out,
        }
    }
}

impl From<&AuditRecord> for pb::AuditEntry {
    fn from(record: &AuditRecord) -> pb::AuditEntry {
        pb::AuditEntry {
            at_ms: record.at_ms,
            identity: record.identity.clone(),
            role: record.role.clone(),
            operation: record.operation.clone(),
            params: super::params::stored(&record.params),
            result: record.outcome.text(),
            job_id: record.job_id.clone().unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store and the CLI spell states each on its side of the wire; they must agree.
    #[test]
    fn states_are_spelt_as_the_wire_spells_them() {
        for &state in JobState::ALL {
            assert_eq!(pb::JobState::from(state).name(), state.name());
            assert_eq!(pb::JobState::from(state).is_finished(), state.is_finished());
        }
        for &state in StepState::ALL {
            assert_eq!(pb::StepState::from(state).name(), state.name());
        }
        for &state in NodeState::ALL {
            assert_eq!(pb::JobNodeState::from(state).name(), state.name());
        }
        for &level in Level::ALL {
            assert_eq!(pb::LogLevel::from(level).name(), level.name());
        }
    }
}
