//! The leader lease in SQLite: with one coordinator per file it is always its own, and the
//! token still grows with every term.

use super::SqliteStore;
use crate::store::lease::claim;
use crate::store::{Claim, Claimant, Claimed, LeaseStore, Peer, StoreError, rows};

#[async_trait::async_trait]
impl LeaseStore for SqliteStore {
    async fn claim_lease(&self, request: &Claim<'_>) -> Result<Claimed, StoreError> {
        let me = request.claimant;
        let mut tx = self.begin_write().await?;
        let now: i64 =
            sqlx::query_scalar("SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)")
                .fetch_one(&mut *tx)
                .await?;
        let held = sqlx::query(rows::LEASE_SQL)
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
                     VALUES (1, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, \
                     incarnation = excluded.incarnation, address = excluded.address, \
                     token = excluded.token, expires_at_ms = excluded.expires_at_ms",
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
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET address = excluded.address, \
                 last_seen_ms = excluded.last_seen_ms, incarnation = excluded.incarnation, \
                 migrations = excluded.migrations",
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
    }

    async fn release_lease(&self, claimant: &Claimant) -> Result<(), StoreError> {
        self.wrote(
            sqlx::query(
                "UPDATE leader_lease SET expires_at_ms = 0 \
                 WHERE id = 1 AND holder = ? AND incarnation = ?",
            )
            .bind(&claimant.id)
            .bind(&claimant.incarnation)
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
