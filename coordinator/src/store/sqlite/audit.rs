//! The audit trail in the store.

use crate::domain::audit::AuditRecord;

use super::SqliteStore;
use crate::store::{AuditStore, StoreError, rows};

#[async_trait::async_trait]
impl AuditStore for SqliteStore {
    async fn record_audit(&self, entry: &AuditRecord) -> Result<(), StoreError> {
        self.wrote(sqlx::query(
            "INSERT INTO audit (at_ms, identity, role, operation, params, result, job_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(entry.at_ms)
        .bind(&entry.identity)
        .bind(&entry.role)
        .bind(&entry.operation)
        .bind(&entry.params)
        .bind(entry.outcome.text())
        .bind(entry.job_id.as_deref().unwrap_or(""))
        .execute(&self.pool)
        .await?);
        Ok(())
    }

    /// The newest `limit` entries at or after `since_ms`, oldest first, and whether more
    /// matched.
    async fn audit_page(
        &self,
        since_ms: i64,
        limit: u32,
    ) -> Result<(Vec<AuditRecord>, bool), StoreError> {
        let rows = sqlx::query(rows::AUDIT_PAGE_SQL)
            .bind(since_ms)
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        rows::audit_page(rows, limit)
    }
}
