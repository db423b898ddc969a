//! Jobs in the store. Each change is written on its own (the job's header, one step, one
//! node's progress), so a coordinator killed at any point comes back knowing which steps
//! completed, and a job's progress costs one write per change, not a rewrite of the whole job.

use super::{Plan, Script, Sql, all, first, int, scalar, stmt};
use crate::domain::job::{JobRecord, JobSpec, JobState, LogRecord, NodeProgress, StepRecord};
use crate::store::{
    CANCEL_QUEUED_SQL, CANCEL_RUNNING_SQL, JobStore, SAVE_HEADER_SQL, START_SQL, StoreError,
    corrupt, rows,
};

const INSERT_JOB_SQL: &str = "INSERT INTO jobs (id, seq, kind, params, requested_by, state, \
     created_at_ms) VALUES (?, ?, ?, ?, ?, 'queued', ?)";
const INSERT_STEP_SQL: &str =
    "INSERT INTO job_steps (job_id, idx, name, state) VALUES (?, ?, ?, 'pending')";
const SAVE_STEP_SQL: &str = "UPDATE job_steps SET state = ?, started_at_ms = ?, \
     finished_at_ms = ? WHERE job_id = ? AND idx = ?";
const APPEND_LOG_SQL: &str =
    "INSERT INTO job_logs (job_id, seq, at_ms, level, node, message) VALUES (?, ?, ?, ?, ?, ?)";
const JOB_STATE_SQL: &str = "SELECT state FROM jobs WHERE id = ?";
const JOB_IDS_SQL: &str = "SELECT id FROM jobs WHERE created_at_ms >= ? ORDER BY seq DESC LIMIT ?";
const UNFINISHED_SQL: &str =
    "SELECT id FROM jobs WHERE state IN ('queued', 'running') ORDER BY seq";
const PRUNE_JOBS_SQL: &str = "DELETE FROM jobs WHERE state NOT IN ('queued', 'running') \
     AND finished_at_ms > 0 AND finished_at_ms < ?";
const PRUNE_AUDIT_SQL: &str = "DELETE FROM audit WHERE at_ms < ?";

fn state_of(row: Option<&super::Row>) -> Result<Option<JobState>, StoreError> {
    row.map(|r| {
        let text = r.text("state")?;
        JobState::parse(&text).ok_or_else(|| corrupt("job state", &text))
    })
    .transpose()
}

#[async_trait::async_trait]
impl<S: Sql> JobStore for S {
    async fn create_job(
        &self,
        spec: &JobSpec,
        requested_by: &str,
        now_ms: i64,
    ) -> Result<String, StoreError> {
        let params = spec.encode()?;
        let script = Script::read_then(vec![stmt(self.dialect().next_job_seq, vec![])], |read| {
            let seq = scalar(read, 0, "next")?;
            let id = format!("j{seq}");
            let mut writes = vec![stmt(
                INSERT_JOB_SQL,
                vec![
                    (&id).into(),
                    seq.into(),
                    spec.kind().into(),
                    (&params).into(),
                    requested_by.into(),
                    now_ms.into(),
                ],
            )];
            writes.extend(spec.steps().iter().enumerate().map(|(idx, name)| {
                stmt(
                    INSERT_STEP_SQL,
                    vec![(&id).into(), int(idx), (*name).into()],
                )
            }));
            Ok(Plan { writes, value: id })
        });
        Ok(self.transact(&script).await?.0)
    }

    async fn save_job_header(&self, job: &JobRecord) -> Result<(), StoreError> {
        let header = stmt(
            SAVE_HEADER_SQL,
            vec![
                job.state.name().into(),
                (&job.error).into(),
                job.refused.into(),
                job.timed_out.into(),
                job.started_at_ms.into(),
                job.finished_at_ms.into(),
                (&job.note).into(),
                (&job.id).into(),
            ],
        );
        self.transact(&Script::writes(vec![header])).await?;
        Ok(())
    }

    async fn start_job(&self, id: &str, started_at_ms: i64) -> Result<bool, StoreError> {
        let start = stmt(START_SQL, vec![started_at_ms.into(), id.into()]);
        let (_, changed) = self.transact(&Script::writes(vec![start])).await?;
        Ok(changed.first() == Some(&1))
    }

    async fn cancel_job(&self, id: &str, now_ms: i64) -> Result<Option<JobState>, StoreError> {
        let script = Script::read_then(
            vec![stmt(self.dialect().job_state_for_update, vec![id.into()])],
            |read| {
                let state = state_of(first(read, 0))?;
                let writes = match state {
                    Some(JobState::Queued) => {
                        vec![stmt(CANCEL_QUEUED_SQL, vec![now_ms.into(), id.into()])]
                    }
                    Some(JobState::Running) => vec![stmt(CANCEL_RUNNING_SQL, vec![id.into()])],
                    _ => Vec::new(),
                };
                Ok(Plan {
                    writes,
                    value: state,
                })
            },
        );
        Ok(self.transact(&script).await?.0)
    }

    async fn save_step(
        &self,
        job_id: &str,
        idx: usize,
        step: &StepRecord,
    ) -> Result<(), StoreError> {
        let save = stmt(
            SAVE_STEP_SQL,
            vec![
                step.state.name().into(),
                step.started_at_ms.into(),
                step.finished_at_ms.into(),
                job_id.into(),
                int(idx),
            ],
        );
        self.transact(&Script::writes(vec![save])).await?;
        Ok(())
    }

    /// Several nodes' progress in one transaction: one flush to disk, however many nodes.
    async fn save_nodes(&self, job_id: &str, nodes: &[NodeProgress]) -> Result<(), StoreError> {
        let upsert = self.dialect().upsert_job_node;
        let writes = nodes
            .iter()
            .map(|node| {
                stmt(
                    upsert,
                    vec![
                        job_id.into(),
                        (&node.name).into(),
                        node.state.name().into(),
                        (&node.detail).into(),
                        (&node.error).into(),
                    ],
                )
            })
            .collect();
        self.transact(&Script::writes(writes).progress()).await?;
        Ok(())
    }

    async fn append_log(&self, job_id: &str, line: &LogRecord) -> Result<(), StoreError> {
        let append = stmt(
            APPEND_LOG_SQL,
            vec![
                job_id.into(),
                int(line.seq),
                line.at_ms.into(),
                line.level.name().into(),
                (&line.node).into(),
                (&line.message).into(),
            ],
        );
        self.transact(&Script::writes(vec![append]).progress())
            .await?;
        Ok(())
    }

    async fn logs(
        &self,
        job_id: &str,
        after_seq: u64,
        max: u32,
    ) -> Result<Vec<LogRecord>, StoreError> {
        let read = stmt(
            rows::LOGS_SQL,
            vec![job_id.into(), int(after_seq), i64::from(max).into()],
        );
        let read = self.read(&[read]).await?;
        all(&read, 0).iter().map(rows::log_line).collect()
    }

    async fn job_state(&self, id: &str) -> Result<Option<JobState>, StoreError> {
        let read = self.read(&[stmt(JOB_STATE_SQL, vec![id.into()])]).await?;
        state_of(first(&read, 0))
    }

    async fn last_log_seq(&self, job_id: &str) -> Result<u64, StoreError> {
        let read = stmt(self.dialect().last_log_seq, vec![job_id.into()]);
        let read = self.read(&[read]).await?;
        Ok(u64::try_from(scalar(&read, 0, "last")?).unwrap_or_default())
    }

    async fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let read = self
            .read(&[
                stmt(rows::JOB_SQL, vec![id.into()]),
                stmt(rows::STEPS_SQL, vec![id.into()]),
                stmt(rows::JOB_NODES_SQL, vec![id.into()]),
            ])
            .await?;
        let Some(head) = first(&read, 0) else {
            return Ok(None);
        };
        rows::job(head, all(&read, 1), all(&read, 2)).map(Some)
    }

    async fn list_jobs(&self, limit: u32, since_ms: i64) -> Result<Vec<JobRecord>, StoreError> {
        let read = stmt(JOB_IDS_SQL, vec![since_ms.into(), i64::from(limit).into()]);
        let read = self.read(&[read]).await?;
        let mut jobs = Vec::new();
        for row in all(&read, 0) {
            jobs.extend(self.job(&row.text("id")?).await?);
        }
        Ok(jobs)
    }

    /// Deletes jobs that finished before `before_ms` (their steps, nodes and logs go with them)
    /// and audit entries older than it; returns how many of each.
    async fn prune(&self, before_ms: i64) -> Result<(u64, u64), StoreError> {
        let script = Script::writes(vec![
            stmt(PRUNE_JOBS_SQL, vec![before_ms.into()]),
            stmt(PRUNE_AUDIT_SQL, vec![before_ms.into()]),
        ])
        .without_fence();
        let (_, changed) = self.transact(&script).await?;
        Ok((
            changed.first().copied().unwrap_or_default(),
            changed.get(1).copied().unwrap_or_default(),
        ))
    }

    async fn unfinished_jobs(&self) -> Result<Vec<String>, StoreError> {
        let read = self.read(&[stmt(UNFINISHED_SQL, vec![])]).await?;
        all(&read, 0)
            .iter()
            .map(|row| Ok(row.text("id")?))
            .collect()
    }
}
