//! The audit trail in the store on MariaDB.

use qserv_proto::v1::AuditEntry;
use sqlx::Row;

use super::MariaStore;
use crate::store::{AuditStore, StoreError};

#[async_trait::async_trait]
impl AuditStore for MariaStore {
    async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.run(|pool| async move {
        self.wrote(sqlx::query(
            "INSERT INTO audit (at_ms, identity, role, operation, params, result, job_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(entry.at_ms)
        .bind(&entry.identity)
        .bind(&entry.role)
        .bind(&entry.operation)
        .bind(&entry.params_json)
        .bind(&entry.result)
        .bind(&entry.job_id)
        .execute(&pool)
        .await?);
        Ok(())
        }).await
    }

    /// The newest `limit` entries at or after `since_ms`, oldest first, and whether more
    /// matched.
    async fn audit_page(
        &self,
        since_ms: i64,
        limit: u32,
    ) -> Result<(Vec<AuditEntry>, bool), StoreError> {
        self.run(|pool| async move {
            let mut rows = sqlx::query(
                "SELECT at_ms, identity, role, operation, params, result, job_id FROM audit \
             WHERE at_ms >= ? ORDER BY id DESC LIMIT ?",
            )
            .bind(since_ms)
            .bind(i64::from(limit) + 1)
            .fetch_all(&pool)
            .await?;
            let truncated = rows.len() > limit as usize;
            rows.truncate(limit as usize);
            rows.reverse();
            let entries = rows
                .iter()
                .map(|row| {
                    Ok(AuditEntry {
                        at_ms: row.try_get("at_ms")?,
                        identity: row.try_get("identity")?,
                        role: row.try_get("role")?,
                        operation: row.try_get("operation")?,
                        params_json: row.try_get("params")?,
                        result: row.try_get("result")?,
                        job_id: row.try_get("job_id")?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok((entries, truncated))
        })
        .await
    }
}
