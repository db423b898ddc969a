//! Jobs in the store on MariaDB. Each change is written on its own (the job's header, one step, one node's
//! progress), so a coordinator killed at any point comes back knowing which steps completed,
//! and a job's progress costs one write per change, not a rewrite of the whole job.

use crate::domain::job::LogRecord;

use super::{MariaStore, begin};
use crate::domain::job::{JobRecord, JobSpec, JobState, NodeProgress, StepRecord};
use crate::store::{
    CANCEL_QUEUED_SQL, CANCEL_RUNNING_SQL, JobStore, SAVE_HEADER_SQL, START_SQL, StoreError,
    corrupt, rows,
};

fn to_i64(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[async_trait::async_trait]
impl JobStore for MariaStore {
    /// Inserts a new job (state `queued`) with its steps; returns its id (`j<seq>`).
    async fn create_job(
        &self,
        spec: &JobSpec,
        requested_by: &str,
        now_ms: i64,
    ) -> Result<String, StoreError> {
        let params = spec.encode()?;
        let params = params.as_str();
        self.run(|pool| async move {
            let mut tx = begin(&pool).await?;
            self.fenced(&mut tx).await?;
            let seq: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(MAX(seq), 0) + 1 AS SIGNED) FROM jobs FOR UPDATE",
            )
            .fetch_one(&mut *tx)
            .await?;
            let id = format!("j{seq}");
            self.wrote(
                sqlx::query(
                    "INSERT INTO jobs (id, seq, kind, params, requested_by, state, created_at_ms) \
             VALUES (?, ?, ?, ?, ?, 'queued', ?)",
                )
                .bind(&id)
                .bind(seq)
                .bind(spec.kind())
                .bind(params)
                .bind(requested_by)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?,
            );
            for (idx, name) in spec.steps().iter().enumerate() {
                self.wrote(
                sqlx::query(
                    "INSERT INTO job_steps (job_id, idx, name, state) VALUES (?, ?, ?, 'pending')",
                )
                .bind(&id)
                .bind(to_i64(idx))
                .bind(name)
                .execute(&mut *tx)
                .await?,
            );
            }
            tx.commit().await?;
            Ok(id)
        })
        .await
    }

    /// The job's own row: state, outcome, times; a job that has ended is left as it is.
    async fn save_job_header(&self, job: &JobRecord) -> Result<(), StoreError> {
        self.run(|pool| async move {
            let mut tx = begin(&pool).await?;
            self.fenced(&mut tx).await?;
            self.wrote(
                sqlx::query(SAVE_HEADER_SQL)
                    .bind(job.state.name())
                    .bind(&job.error)
                    .bind(job.refused)
                    .bind(job.timed_out)
                    .bind(job.started_at_ms)
                    .bind(job.finished_at_ms)
                    .bind(&job.note)
                    .bind(&job.id)
                    .execute(&mut *tx)
                    .await?,
            );
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn start_job(&self, id: &str, started_at_ms: i64) -> Result<bool, StoreError> {
        self.run(|pool| async move {
            let mut tx = begin(&pool).await?;
            self.fenced(&mut tx).await?;
            let started = self
                .wrote(
                    sqlx::query(START_SQL)
                        .bind(started_at_ms)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?,
                )
                .rows_affected()
                == 1;
            tx.commit().await?;
            Ok(started)
        })
        .await
    }

    async fn cancel_job(&self, id: &str, now_ms: i64) -> Result<Option<JobState>, StoreError> {
        self.run(|pool| async move {
            let mut tx = begin(&pool).await?;
            self.fenced(&mut tx).await?;
            // The row is locked first, so that a start through another Galera node conflicts
            // with this decision instead of both going through.
            let state: Option<String> =
                sqlx::query_scalar("SELECT state FROM jobs WHERE id = ? FOR UPDATE")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let state = state
                .map(|s| JobState::parse(&s).ok_or_else(|| corrupt("job state", &s)))
                .transpose()?;
            match state {
                Some(JobState::Queued) => {
                    self.wrote(
                        sqlx::query(CANCEL_QUEUED_SQL)
                            .bind(now_ms)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?,
                    );
                }
                Some(JobState::Running) => {
                    self.wrote(
                        sqlx::query(CANCEL_RUNNING_SQL)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?,
                    );
                }
                _ => {}
            }
            tx.commit().await?;
            Ok(state)
        })
        .await
    }

    async fn save_step(
        &self,
        job_id: &str,
        idx: usize,
        step: &StepRecord,
    ) -> Result<(), StoreError> {
        self.run(|pool| async move {
            let mut tx = begin(&pool).await?;
            self.fenced(&mut tx).await?;
            self.wrote(
                sqlx::query(
                    "UPDATE job_steps SET state = ?, started_at_ms = ?, finished_at_ms = ? \
             WHERE job_id = ? AND idx = ?",
                )
                .bind(step.state.name())
                .bind(step.started_at_ms)
                .bind(step.finished_at_ms)
                .bind(job_id)
                .bind(to_i64(idx))
                .execute(&mut *tx)
                .await?,
            );
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Several nodes' progress in one transaction: one flush to disk, however many nodes.
    async fn save_nodes(&self, job_id: &str, nodes: &[NodeProgress]) -> Result<(), StoreError> {
        self.run(|pool| async move {
            let mut tx = begin(&pool).await?;
            self.fenced(&mut tx).await?;
            for node in nodes {
                self.wrote(sqlx::query(
                "INSERT INTO job_nodes (job_id, node, state, detail, error) VALUES (?, ?, ?, ?, ?) \
                 ON DUPLICATE KEY UPDATE state = VALUES(state), \
                 detail = VALUES(detail), error = VALUES(error)",
            )
            .bind(job_id)
            .bind(&node.name)
            .bind(node.state.name())
            .bind(&node.detail)
            .bind(&node.error)
            .execute(&mut *tx)
            .await?);
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn append_log(&self, job_id: &str, line: &LogRecord) -> Result<(), StoreError> {
        self.run(|pool| async move {
        let mut tx = begin(&pool).await?;
        self.fenced(&mut tx).await?;
        self.wrote(sqlx::query(
            "INSERT INTO job_logs (job_id, seq, at_ms, level, node, message) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(job_id)
        .bind(i64::try_from(line.seq).unwrap_or(i64::MAX))
        .bind(line.at_ms)
        .bind(line.level.name())
        .bind(&line.node)
        .bind(&line.message)
        .execute(&mut *tx)
        .await?);
        tx.commit().await?;
        Ok(())
        }).await
    }

    /// At most `max` lines after `after_seq`, in order.
    async fn logs(
        &self,
        job_id: &str,
        after_seq: u64,
        max: u32,
    ) -> Result<Vec<LogRecord>, StoreError> {
        self.run(|pool| async move {
            let rows = sqlx::query(rows::LOGS_SQL)
                .bind(job_id)
                .bind(i64::try_from(after_seq).unwrap_or(i64::MAX))
                .bind(i64::from(max))
                .fetch_all(&pool)
                .await?;
            rows.iter().map(rows::log_line).collect()
        })
        .await
    }

    /// A job's state alone, without its steps and nodes: what a log follower polls.
    async fn job_state(&self, id: &str) -> Result<Option<JobState>, StoreError> {
        self.run(|pool| async move {
            let state: Option<String> = sqlx::query_scalar("SELECT state FROM jobs WHERE id = ?")
                .bind(id)
                .fetch_optional(&pool)
                .await?;
            state
                .map(|s| JobState::parse(&s).ok_or_else(|| corrupt("job state", &s)))
                .transpose()
        })
        .await
    }

    /// The sequence number of the job's last log line; 0 when it has none.
    async fn last_log_seq(&self, job_id: &str) -> Result<u64, StoreError> {
        self.run(|pool| async move {
            let last: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(MAX(seq), 0) AS SIGNED) FROM job_logs WHERE job_id = ?",
            )
            .bind(job_id)
            .fetch_one(&pool)
            .await?;
            Ok(u64::try_from(last).unwrap_or_default())
        })
        .await
    }

    async fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        self.run(|pool| async move {
            let Some(head) = sqlx::query(rows::JOB_SQL)
                .bind(id)
                .fetch_optional(&pool)
                .await?
            else {
                return Ok(None);
            };
            let steps = sqlx::query(rows::STEPS_SQL)
                .bind(id)
                .fetch_all(&pool)
                .await?;
            let nodes = sqlx::query(rows::JOB_NODES_SQL)
                .bind(id)
                .fetch_all(&pool)
                .await?;
            rows::job(&head, &steps, &nodes).map(Some)
        })
        .await
    }

    /// Most recent first: at most `limit`, created at or after `since_ms`.
    async fn list_jobs(&self, limit: u32, since_ms: i64) -> Result<Vec<JobRecord>, StoreError> {
        let ids: Vec<String> = self
            .run(|pool| async move {
                Ok(sqlx::query_scalar(
                    "SELECT id FROM jobs WHERE created_at_ms >= ? ORDER BY seq DESC LIMIT ?",
                )
                .bind(since_ms)
                .bind(i64::from(limit))
                .fetch_all(&pool)
                .await?)
            })
            .await?;
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            jobs.extend(self.job(&id).await?);
        }
        Ok(jobs)
    }

    /// Deletes jobs that finished before `before_ms` (their steps, nodes and logs go with them)
    /// and audit entries older than it; returns how many of each.
    async fn prune(&self, before_ms: i64) -> Result<(u64, u64), StoreError> {
        self.run(|pool| async move {
            let mut tx = begin(&pool).await?;
            let jobs = self
                .wrote(
                    sqlx::query(
                        "DELETE FROM jobs WHERE state NOT IN ('queued', 'running') \
             AND finished_at_ms > 0 AND finished_at_ms < ?",
                    )
                    .bind(before_ms)
                    .execute(&mut *tx)
                    .await?,
                )
                .rows_affected();
            let audit = self
                .wrote(
                    sqlx::query("DELETE FROM audit WHERE at_ms < ?")
                        .bind(before_ms)
                        .execute(&mut *tx)
                        .await?,
                )
                .rows_affected();
            tx.commit().await?;
            Ok((jobs, audit))
        })
        .await
    }

    /// Jobs that have not ended, oldest first: what a restarted coordinator must continue.
    async fn unfinished_jobs(&self) -> Result<Vec<String>, StoreError> {
        self.run(|pool| async move {
            Ok(sqlx::query_scalar(
                "SELECT id FROM jobs WHERE state IN ('queued', 'running') ORDER BY seq",
            )
            .fetch_all(&pool)
            .await?)
        })
        .await
    }
}
