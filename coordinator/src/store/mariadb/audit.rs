//! The audit trail in the store on MariaDB.

use crate::domain::audit::AuditRecord;

use super::MariaStore;
use crate::store::{AuditStore, StoreError, rows};

#[async_trait::async_trait]
impl AuditStore for MariaStore {
    async fn record_audit(&self, entry: &AuditRecord) -> Result<(), StoreError> {
        self.run(|pool| async move {
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
    ) -> Result<(Vec<AuditRecord>, bool), StoreError> {
        self.run(|pool| async move {
            let rows = sqlx::query(rows::AUDIT_PAGE_SQL)
                .bind(since_ms)
                .bind(i64::from(limit) + 1)
                .fetch_all(&pool)
                .await?;
            rows::audit_page(rows, limit)
        })
        .await
    }
}
