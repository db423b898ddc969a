//! The leader lease on MariaDB: coordinators on different Galera nodes that claim at once
//! conflict in certification, and the one run again finds the other's lease.

use super::{MariaStore, begin};
use crate::store::lease::claim;
use crate::store::{Lease, LeaseStore, Peer, StoreError, rows};

#[async_trait::async_trait]
impl LeaseStore for MariaStore {
    async fn claim_lease(
        &self,
        holder: &str,
        address: &str,
        ttl_ms: i64,
        seize: Option<&Lease>,
    ) -> Result<(Lease, i64), StoreError> {
        self.run(|pool| async move {
        let mut tx = begin(&pool).await?;
        let now: i64 = sqlx::query_scalar("SELECT CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)")
            .fetch_one(&mut *tx)
            .await?;
        let held = sqlx::query(
            "SELECT holder, address, token, expires_at_ms FROM leader_lease WHERE id = 1 FOR UPDATE",
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
                     VALUES (1, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE holder = VALUES(holder), \
                     address = VALUES(address), token = VALUES(token), \
                     expires_at_ms = VALUES(expires_at_ms)",
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
                 ON DUPLICATE KEY UPDATE address = VALUES(address), \
                 last_seen_ms = VALUES(last_seen_ms)",
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
        })
        .await
    }

    async fn release_lease(&self, holder: &str) -> Result<(), StoreError> {
        self.run(|pool| async move {
            self.wrote(
                sqlx::query(
                    "UPDATE leader_lease SET expires_at_ms = 0 WHERE id = 1 AND holder = ?",
                )
                .bind(holder)
                .execute(&pool)
                .await?,
            );
            Ok(())
        })
        .await
    }

    async fn peers(&self) -> Result<Vec<Peer>, StoreError> {
        self.run(|pool| async move {
            let rows = sqlx::query(rows::PEERS_SQL).fetch_all(&pool).await?;
            rows.iter().map(rows::peer).collect()
        })
        .await
    }
}
