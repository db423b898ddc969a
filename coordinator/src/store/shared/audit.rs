//! The audit trail in the store.

use super::{Script, Sql, stmt};
use crate::domain::audit::AuditRecord;
use crate::store::{AuditStore, StoreError, rows};

const RECORD_SQL: &str = "INSERT INTO audit (at_ms, identity, role, operation, params, result, \
     job_id) VALUES (?, ?, ?, ?, ?, ?, ?)";

#[async_trait::async_trait]
impl<S: Sql> AuditStore for S {
    /// Recorded whoever leads: a follower's refusals belong in the trail too.
    async fn record_audit(&self, entry: &AuditRecord) -> Result<(), StoreError> {
        let record = stmt(
            RECORD_SQL,
            vec![
                entry.at_ms.into(),
                (&entry.identity).into(),
                (&entry.role).into(),
                (&entry.operation).into(),
                (&entry.params).into(),
                entry.outcome.text().as_str().into(),
                entry.job_id.as_deref().unwrap_or("").into(),
            ],
        );
        self.transact(&Script::writes(vec![record]).without_fence())
            .await?;
        Ok(())
    }

    async fn audit_page(
        &self,
        since_ms: i64,
        limit: u32,
    ) -> Result<(Vec<AuditRecord>, bool), StoreError> {
        let read = stmt(
            rows::AUDIT_PAGE_SQL,
            vec![since_ms.into(), (i64::from(limit) + 1).into()],
        );
        let page = self.read(&[read]).await?.into_iter().next();
        rows::audit_page(page.unwrap_or_default(), limit)
    }
}
