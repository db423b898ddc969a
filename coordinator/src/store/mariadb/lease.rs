//! The leader lease on MariaDB: coordinators on different Galera nodes that claim at once
//! conflict in certification, and the one run again finds the other's lease.

use super::{MariaStore, begin};
use crate::store::lease::claim;
use crate::store::{Claim, Claimant, Claimed, LeaseStore, Peer, StoreError, rows};

/// [`rows::LEASE_SQL`], locking the row until the claim commits.
const LEASE_FOR_UPDATE_SQL: &str = "SELECT holder, incarnation, address, token, expires_at_ms \
     FROM leader_lease WHERE id = 1 FOR UPDATE";

#[async_trait::async_trait]
impl LeaseStore for MariaStore {
    async fn claim_lease(&self, request: &Claim<'_>) -> Result<Claimed, StoreError> {
        let me = request.claimant;
        self.run(|pool| async move {
            let mut tx = begin(&pool).await?;
            let now: i64 =
                sqlx::query_scalar("SELECT CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)")
                    .fetch_one(&mut *tx)
                    .await?;
            let held = sqlx::query(LEASE_FOR_UPDATE_SQL)
                .fetch_optional(&mut *tx)
                .await?
                .as_ref()
                .map(rows::lease)
                .transpose()?;
            let peers = sqlx::query(rows::PEERS_SQL)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(rows::peer)
                .collect::<Result<Vec<_>, _>>()?;
            let verdict = claim(held.as_ref(), &peers, now, request);
            if let Some(lease) = verdict.written() {
                self.wrote(
                    sqlx::query(
                        "INSERT INTO leader_lease (id, holder, incarnation, address, token, expires_at_ms) \
                         VALUES (1, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE holder = VALUES(holder), \
                         incarnation = VALUES(incarnation), address = VALUES(address), \
                         token = VALUES(token), expires_at_ms = VALUES(expires_at_ms)",
                    )
                    .bind(&lease.holder)
                    .bind(&lease.incarnation)
                    .bind(&lease.address)
                    .bind(i64::try_from(lease.token).unwrap_or(i64::MAX))
                    .bind(lease.expires_at_ms)
                    .execute(&mut *tx)
                    .await?,
                );
            }
            self.wrote(
                sqlx::query(
                    "INSERT INTO coordinators (id, address, last_seen_ms, incarnation, migrations) \
                     VALUES (?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE address = VALUES(address), \
                     last_seen_ms = VALUES(last_seen_ms), incarnation = VALUES(incarnation), \
                     migrations = VALUES(migrations)",
                )
                .bind(&me.id)
                .bind(&me.address)
                .bind(now)
                .bind(&me.incarnation)
                .bind(&me.migrations)
                .execute(&mut *tx)
                .await?,
            );
            tx.commit().await?;
            Ok(Claimed::after(verdict, held, now))
        })
        .await
    }

    async fn release_lease(&self, claimant: &Claimant) -> Result<(), StoreError> {
        self.run(|pool| async move {
            self.wrote(
                sqlx::query(
                    "UPDATE leader_lease SET expires_at_ms = 0 \
                     WHERE id = 1 AND holder = ? AND incarnation = ?",
                )
                .bind(&claimant.id)
                .bind(&claimant.incarnation)
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
