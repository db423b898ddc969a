//! The lower-case words of the job enums, as tables, JSON and logs show them, and what they
//! mean to a client that follows a job.

use crate::v1::{JobNodeState, JobState, LogLevel, StepState};

impl JobState {
    pub fn name(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Interrupted => "interrupted",
            JobState::Unspecified => "unknown",
        }
    }

    /// The job will not change any more.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled | JobState::Interrupted
        )
    }
}

impl StepState {
    pub fn name(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Running => "running",
            StepState::Succeeded => "succeeded",
            StepState::Failed => "failed",
            StepState::Skipped => "skipped",
            StepState::Cancelled => "cancelled",
            StepState::Unspecified => "unknown",
        }
    }
}

impl JobNodeState {
    pub fn name(self) -> &'static str {
        match self {
            JobNodeState::Pending => "pending",
            JobNodeState::Running => "running",
            JobNodeState::Waiting => "waiting",
            JobNodeState::Done => "done",
            JobNodeState::Failed => "failed",
            JobNodeState::Skipped => "skipped",
            JobNodeState::Unspecified => "unknown",
        }
    }
}

impl LogLevel {
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Unspecified => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_from_a_newer_peer_reads_as_unknown() {
        assert_eq!(JobState::try_from(99).unwrap_or_default().name(), "unknown");
        assert!(!JobState::Unspecified.is_finished());
        assert!(JobState::Interrupted.is_finished());
    }
}
