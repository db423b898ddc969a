//! The JSON documents of jobs (`jobs show`, `jobs list`, a followed job's end, `jobs logs`),
//! printed from these types only so that their shape (DESIGN §5) is pinned in one place.

use std::time::{Duration, UNIX_EPOCH};

use qserv_proto::v1::{Job, LogLine};
use serde::Serialize;

use crate::json::non_empty;
use crate::params_doc::ParamsJson;

/// `ms` since the epoch as RFC 3339 with milliseconds; `None` for 0 (never).
pub fn time_text(ms: i64) -> Option<String> {
    let ms = u64::try_from(ms).ok().filter(|ms| *ms > 0)?;
    let at = UNIX_EPOCH + Duration::from_millis(ms);
    Some(humantime::format_rfc3339_millis(at).to_string())
}

#[derive(Debug, Serialize)]
pub struct JobJson {
    pub id: String,
    pub kind: String,
    pub state: &'static str,
    pub requested_by: String,
    /// What the job was asked to do; `None` when this client cannot read it.
    pub params: Option<ParamsJson>,
    pub steps: Vec<StepJson>,
    pub nodes: Vec<JobNodeJson>,
    pub error: Option<String>,
    pub refused: bool,
    pub timed_out: bool,
    pub note: Option<String>,
    pub store_error: Option<String>,
    pub created_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct StepJson {
    pub name: String,
    pub state: &'static str,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct JobNodeJson {
    pub name: String,
    pub state: &'static str,
    pub detail: Option<String>,
    pub error: Option<String>,
}

impl From<&Job> for JobJson {
    fn from(job: &Job) -> JobJson {
        JobJson {
            id: job.id.clone(),
            kind: job.kind.clone(),
            state: job.state().name(),
            requested_by: job.requested_by.clone(),
            params: ParamsJson::of(job.params.as_ref()),
            steps: job
                .steps
                .iter()
                .map(|s| StepJson {
                    name: s.name.clone(),
                    state: s.state().name(),
                    started_at: time_text(s.started_at_ms),
                    finished_at: time_text(s.finished_at_ms),
                })
                .collect(),
            nodes: job
                .nodes
                .iter()
                .map(|n| JobNodeJson {
                    name: n.name.clone(),
                    state: n.state().name(),
                    detail: non_empty(&n.detail),
                    error: non_empty(&n.error),
                })
                .collect(),
            error: non_empty(&job.error),
            refused: job.refused,
            timed_out: job.timed_out,
            note: non_empty(&job.note),
            store_error: non_empty(&job.store_error),
            created_at: time_text(job.created_at_ms),
            started_at: time_text(job.started_at_ms),
            finished_at: time_text(job.finished_at_ms),
        }
    }
}

/// `jobs list -o json`.
#[derive(Debug, Serialize)]
pub struct JobsJson {
    pub jobs: Vec<JobJson>,
}

impl JobsJson {
    pub fn of(jobs: &[Job]) -> JobsJson {
        JobsJson {
            jobs: jobs.iter().map(JobJson::from).collect(),
        }
    }
}

/// `jobs logs -o json`: the job's lines in one document.
#[derive(Debug, Serialize)]
pub struct LogsJson {
    pub id: String,
    pub lines: Vec<LogLineJson>,
}

#[derive(Debug, Serialize)]
pub struct LogLineJson {
    pub seq: u64,
    pub at: Option<String>,
    pub level: &'static str,
    pub node: String,
    pub message: String,
}

impl From<&LogLine> for LogLineJson {
    fn from(line: &LogLine) -> LogLineJson {
        LogLineJson {
            seq: line.seq,
            at: time_text(line.at_ms),
            level: line.level().name(),
            node: line.node.clone(),
            message: line.message.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use qserv_proto::v1::{JobNode, JobNodeState, JobState, JobStep, LogLevel, StepState};

    use super::*;
    use crate::golden::assert_golden;

    fn job() -> Job {
        Job {
            id: "j7".to_owned(),
            kind: "upgrade".to_owned(),
            state: JobState::Failed.into(),
            params: Some(qserv_proto::v1::JobParams {
                kind: Some(qserv_proto::v1::job_params::Kind::Upgrade(
                    qserv_proto::v1::UpgradeParams {
                        parallel: 0,
                        nodes: vec!["worker-1".to_owned(), "worker-2".to_owned()],
                        fail_fast: false,
                    },
                )),
            }),
            requested_by: "alice (operator)".to_owned(),
            created_at_ms: 1_764_000_000_000,
            started_at_ms: 1_764_000_000_250,
            finished_at_ms: 1_764_000_003_500,
            steps: vec![
                JobStep {
                    name: "check".to_owned(),
                    state: StepState::Succeeded.into(),
                    started_at_ms: 1_764_000_000_250,
                    finished_at_ms: 1_764_000_000_900,
                },
                JobStep {
                    name: "apply".to_owned(),
                    state: StepState::Failed.into(),
                    started_at_ms: 1_764_000_000_900,
                    finished_at_ms: 0,
                },
            ],
            nodes: vec![
                JobNode {
                    name: "worker-1".to_owned(),
                    state: JobNodeState::Done.into(),
                    detail: "worker 2 → 3".to_owned(),
                    error: String::new(),
                },
                JobNode {
                    name: "worker-2".to_owned(),
                    state: JobNodeState::Failed.into(),
                    detail: String::new(),
                    error: "the database went away".to_owned(),
                },
            ],
            error: "1 of 2 nodes failed".to_owned(),
            ..Job::default()
        }
    }

    #[test]
    fn jobs_show_keeps_its_documented_shape() {
        assert_golden("jobs-show.json", &JobJson::from(&job()));
    }

    #[test]
    fn jobs_list_keeps_its_documented_shape() {
        assert_golden("jobs-list.json", &JobsJson::of(&[job()]));
    }

    #[test]
    fn jobs_logs_keeps_its_documented_shape() {
        let line = LogLine {
            seq: 3,
            at_ms: 1_764_000_001_000,
            level: LogLevel::Error.into(),
            node: "worker-2".to_owned(),
            message: "001_x.sql statement 2: 1146 (42S02)".to_owned(),
        };
        let doc = LogsJson {
            id: "j7".to_owned(),
            lines: vec![LogLineJson::from(&line)],
        };
        assert_golden("jobs-logs.json", &doc);
    }

    #[test]
    fn parameters_the_client_cannot_read_show_as_none() {
        let mut job = job();
        job.params = Some(qserv_proto::v1::JobParams { kind: None });
        job.state = 42;
        let doc = JobJson::from(&job);
        assert!(doc.params.is_none());
        assert_eq!(doc.state, "unknown");
    }
}
