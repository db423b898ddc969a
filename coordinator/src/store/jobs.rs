//! Jobs in the store. The in-memory `Job` is written through on every change, so a coordinator
//! killed at any point comes back knowing which steps completed.

use qserv_proto::v1::{Job, JobNode, JobStep, LogLine};
use sqlx::Row;

use super::{Store, StoreError};

impl Store {
    /// Inserts a new job (state `queued`) with its steps; returns its id (`j<seq>`).
    pub async fn create_job(
        &self,
        kind: &str,
        params: &str,
        requested_by: &str,
        steps: &[&str],
        now_ms: i64,
    ) -> Result<String, StoreError> {
        let mut tx = self.begin_write().await?;
        let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs")
            .fetch_one(&mut *tx)
            .await?;
        let id = format!("j{seq}");
        sqlx::query(
            "INSERT INTO jobs (id, seq, kind, params, requested_by, state, created_at_ms) \
             VALUES (?, ?, ?, ?, ?, 'queued', ?)",
        )
        .bind(&id)
        .bind(seq)
        .bind(kind)
        .bind(params)
        .bind(requested_by)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        for (idx, name) in steps.iter().enumerate() {
            sqlx::query(
                "INSERT INTO job_steps (job_id, idx, name, state) VALUES (?, ?, ?, 'pending')",
            )
            .bind(&id)
            .bind(i64::try_from(idx).unwrap_or(i64::MAX))
            .bind(name)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Writes the job's state, steps and nodes as they are in memory.
    pub async fn save_job(&self, job: &Job) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE jobs SET state = ?, error = ?, refused = ?, timed_out = ?, started_at_ms = ?, \
             finished_at_ms = ? WHERE id = ?",
        )
        .bind(&job.state)
        .bind(&job.error)
        .bind(job.refused)
        .bind(job.timed_out)
        .bind(job.started_at_ms)
        .bind(job.finished_at_ms)
        .bind(&job.id)
        .execute(&mut *tx)
        .await?;
        for (idx, step) in job.steps.iter().enumerate() {
            sqlx::query(
                "UPDATE job_steps SET state = ?, started_at_ms = ?, finished_at_ms = ? WHERE job_id = ? AND idx = ?",
            )
            .bind(&step.state)
            .bind(step.started_at_ms)
            .bind(step.finished_at_ms)
            .bind(&job.id)
            .bind(i64::try_from(idx).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        }
        for node in &job.nodes {
            sqlx::query(
                "INSERT INTO job_nodes (job_id, node, state, detail, error) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (job_id, node) DO UPDATE SET state = excluded.state, \
                 detail = excluded.detail, error = excluded.error",
            )
            .bind(&job.id)
            .bind(&node.name)
            .bind(&node.state)
            .bind(&node.detail)
            .bind(&node.error)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn append_log(&self, job_id: &str, line: &LogLine) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO job_logs (job_id, seq, at_ms, level, node, message) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(job_id)
        .bind(i64::try_from(line.seq).unwrap_or(i64::MAX))
        .bind(line.at_ms)
        .bind(&line.level)
        .bind(&line.node)
        .bind(&line.message)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn logs(&self, job_id: &str, after_seq: u64) -> Result<Vec<LogLine>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at_ms, level, node, message FROM job_logs WHERE job_id = ? AND seq > ? ORDER BY seq",
        )
        .bind(job_id)
        .bind(i64::try_from(after_seq).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(LogLine {
                    seq: u64::try_from(row.try_get::<i64, _>("seq")?).unwrap_or_default(),
                    at_ms: row.try_get("at_ms")?,
                    level: row.try_get("level")?,
                    node: row.try_get("node")?,
                    message: row.try_get("message")?,
                })
            })
            .collect()
    }

    pub async fn job(&self, id: &str) -> Result<Option<Job>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT id, kind, params, requested_by, state, error, refused, timed_out, created_at_ms, \
             started_at_ms, finished_at_ms FROM jobs WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let mut job = Job {
            id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            params_json: row.try_get("params")?,
            requested_by: row.try_get("requested_by")?,
            state: row.try_get("state")?,
            error: row.try_get("error")?,
            refused: row.try_get("refused")?,
            timed_out: row.try_get("timed_out")?,
            created_at_ms: row.try_get("created_at_ms")?,
            started_at_ms: row.try_get("started_at_ms")?,
            finished_at_ms: row.try_get("finished_at_ms")?,
            ..Job::default()
        };
        for row in sqlx::query(
            "SELECT name, state, started_at_ms, finished_at_ms FROM job_steps WHERE job_id = ? ORDER BY idx",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        {
            job.steps.push(JobStep {
                name: row.try_get("name")?,
                state: row.try_get("state")?,
                started_at_ms: row.try_get("started_at_ms")?,
                finished_at_ms: row.try_get("finished_at_ms")?,
            });
        }
        for row in sqlx::query(
            "SELECT node, state, detail, error FROM job_nodes WHERE job_id = ? ORDER BY node",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        {
            job.nodes.push(JobNode {
                name: row.try_get("node")?,
                state: row.try_get("state")?,
                detail: row.try_get("detail")?,
                error: row.try_get("error")?,
            });
        }
        Ok(Some(job))
    }

    /// Most recent first.
    pub async fn list_jobs(&self, limit: u32) -> Result<Vec<Job>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM jobs ORDER BY seq DESC LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            jobs.extend(self.job(&id).await?);
        }
        Ok(jobs)
    }

    /// Jobs that have not ended, oldest first: what a restarted coordinator must continue.
    pub async fn unfinished_jobs(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM jobs WHERE state IN ('queued', 'running') ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
