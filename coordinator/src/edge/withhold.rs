//! What a reader who may not change the instance is shown: everything but a database server's
//! own words (the bounded excerpts agents mark, see [`qserv_proto::excerpt`]). A failed
//! statement's message quotes the statement, and a statement holds whatever its script held.

use qserv_proto::excerpt::withhold;
use qserv_proto::v1::job_params::Kind;
use qserv_proto::v1::{AuditEntry, InstanceStatus, Job, JobParams, LogLine, UpgradePlanReply};

/// Who reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// May change the instance, and sees the servers' messages.
    Operator,
    /// Sees everything else.
    Viewer,
}

fn hide(text: &mut String) {
    if let std::borrow::Cow::Owned(shown) = withhold(text) {
        *text = shown;
    }
}

/// A repair's reason is the one parameter of free text; the rest are checked names and numbers.
fn hide_params(params: &mut Option<JobParams>) {
    if let Some(JobParams {
        kind: Some(Kind::Repair(repair)),
    }) = params
    {
        hide(&mut repair.reason);
    }
}

impl Reader {
    pub fn status(self, mut status: InstanceStatus) -> InstanceStatus {
        if self == Reader::Viewer {
            for node in &mut status.nodes {
                hide(&mut node.db_error);
                hide(&mut node.agent_error);
                hide(&mut node.identity_problem);
                for schema in &mut node.schema {
                    hide(&mut schema.dirty_reason);
                }
            }
            if let Some(job) = status.active_job.as_mut() {
                job.progress.values_mut().for_each(hide);
            }
        }
        status
    }

    pub fn job(self, mut job: Job) -> Job {
        if self == Reader::Viewer {
            hide(&mut job.error);
            hide_params(&mut job.params);
            for node in &mut job.nodes {
                hide(&mut node.detail);
                hide(&mut node.error);
            }
        }
        job
    }

    pub fn log(self, mut line: LogLine) -> LogLine {
        if self == Reader::Viewer {
            hide(&mut line.message);
        }
        line
    }

    pub fn audit(self, mut entry: AuditEntry) -> AuditEntry {
        if self == Reader::Viewer {
            hide(&mut entry.result);
            hide_params(&mut entry.params);
        }
        entry
    }

    pub fn plan(self, mut plan: UpgradePlanReply) -> UpgradePlanReply {
        if self == Reader::Viewer {
            for node in &mut plan.nodes {
                hide(&mut node.error);
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qserv_proto::excerpt::{WITHHELD, quote};
    use qserv_proto::v1::{JobNode, NodeSchema, NodeStatus};

    fn failure() -> String {
        format!(
            "migrate-4-to-5-x.sql statement 1 (line 1) failed: MariaDB error 1064: {}",
            quote("You have an error in your SQL syntax near '-----BEGIN PRIVATE KEY-----'")
        )
    }

    #[test]
    fn a_viewer_never_reads_the_servers_words_and_an_operator_does() {
        let status = InstanceStatus {
            nodes: vec![NodeStatus {
                schema: vec![NodeSchema {
                    dirty: true,
                    dirty_reason: failure(),
                    ..NodeSchema::default()
                }],
                ..NodeStatus::default()
            }],
            ..InstanceStatus::default()
        };
        let job = Job {
            error: format!("upgrade failed on worker-1: {}", failure()),
            nodes: vec![JobNode {
                error: failure(),
                ..JobNode::default()
            }],
            ..Job::default()
        };
        let line = LogLine {
            message: failure(),
            ..LogLine::default()
        };

        let seen = Reader::Viewer.status(status.clone());
        let reason = &seen.nodes[0].schema[0].dirty_reason;
        assert!(
            !reason.contains("PRIVATE") && reason.contains(WITHHELD),
            "{reason}"
        );
        assert!(
            reason.starts_with("migrate-4-to-5-x.sql statement 1"),
            "{reason}"
        );
        let seen = Reader::Viewer.job(job.clone());
        assert!(!format!("{seen:?}").contains("PRIVATE"));
        assert!(!Reader::Viewer.log(line.clone()).message.contains("PRIVATE"));

        assert_eq!(Reader::Operator.status(status.clone()), status);
        assert_eq!(Reader::Operator.job(job.clone()), job);
        assert_eq!(Reader::Operator.log(line.clone()), line);
    }
}
