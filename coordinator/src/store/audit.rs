//! The audit trail in the store.

use qserv_proto::v1::AuditEntry;
use sqlx::Row;

use super::{Store, StoreError};

impl Store {
    pub async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit (at_ms, identity, role, operation, params, result, job_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(entry.at_ms)
        .bind(&entry.identity)
        .bind(&entry.role)
        .bind(&entry.operation)
        .bind(&entry.params_json)
        .bind(&entry.result)
        .bind(&entry.job_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Entries at or after `since_ms`, oldest first.
    pub async fn audit_since(&self, since_ms: i64) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT at_ms, identity, role, operation, params, result, job_id FROM audit WHERE at_ms >= ? ORDER BY id",
        )
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
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
            .collect()
    }
}
