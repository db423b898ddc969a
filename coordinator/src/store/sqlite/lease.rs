//! The leader lease in SQLite: with one coordinator per file it is always its own, and the
//! token still grows with every term.

use super::SqliteStore;
use crate::store::lease::claim;
use crate::store::{Lease, LeaseStore, Peer, StoreError, rows};

#[async_trait::async_trait]
impl LeaseStore for SqliteStore {
    async fn claim_lease(
        &self,
        holder: &str,
        address: &str,
        ttl_ms: i64,
        seize: Option<&Lease>,
    ) -> Result<(Lease, i64), StoreError> {
        let mut tx = self.begin_write().await?;
        let now: i64 =
            sqlx::query_scalar("SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)")
                .fetch_one(&mut *tx)
                .await?;
        let held = sqlx::query(
            "SELECT holder, address, token, expires_at_ms FROM leader_lease WHERE id = 1",
        )
        .fetch_optional(&mut *tx)
        .await?
        .as_ref()
        .map(rows::lease)
        .transpose()?;
        let next = claim(held.as_ref(), holder, address, now, ttl_ms, seize);
        if let Some(lease) = &next {
            self.wrote(
                sqlx::query(
                    "INSERT INTO leader_lease (id, holder, address, token, expires_at_ms) \
                     VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, \
                     address = excluded.address, token = excluded.token, \
                     expires_at_ms = excluded.expires_at_ms",
                )
                .bind(&lease.holder)
                .bind(&lease.address)
                .bind(i64::try_from(lease.token).unwrap_or(i64::MAX))
                .bind(lease.expires_at_ms)
                .execute(&mut *tx)
                .await?,
            );
        }
        self.wrote(
            sqlx::query(
                "INSERT INTO coordinators (id, address, last_seen_ms) VALUES (?, ?, ?) \
                 ON CONFLICT (id) DO UPDATE SET address = excluded.address, \
                 last_seen_ms = excluded.last_seen_ms",
            )
            .bind(holder)
            .bind(address)
            .bind(now)
            .execute(&mut *tx)
            .await?,
        );
        tx.commit().await?;
        let lease = next
            .or(held)
            .ok_or_else(|| StoreError::Corrupt("the lease vanished while claimed".to_owned()))?;
        Ok((lease, now))
    }

    async fn release_lease(&self, holder: &str) -> Result<(), StoreError> {
        self.wrote(
            sqlx::query("UPDATE leader_lease SET expires_at_ms = 0 WHERE id = 1 AND holder = ?")
                .bind(holder)
                .execute(&self.pool)
                .await?,
        );
        Ok(())
    }

    async fn peers(&self) -> Result<Vec<Peer>, StoreError> {
        let rows = sqlx::query(rows::PEERS_SQL).fetch_all(&self.pool).await?;
        rows.iter().map(rows::peer).collect()
    }
}
