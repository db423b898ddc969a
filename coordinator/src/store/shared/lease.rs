//! The leader lease in the store. The claim is decided by [`claim`] on what one transaction
//! read (the store's clock, the lease, the peers) and written in the same transaction, so that
//! coordinators claiming at once through different Galera nodes conflict in certification, and
//! the one run again finds the other's lease.

use super::{Plan, Script, Sql, all, first, scalar, stmt};
use crate::store::lease::claim;
use crate::store::{Claim, Claimant, Claimed, LeaseStore, Peer, StoreError, rows};

const RELEASE_SQL: &str = "UPDATE leader_lease SET expires_at_ms = 0 \
     WHERE id = 1 AND holder = ? AND incarnation = ?";

#[async_trait::async_trait]
impl<S: Sql> LeaseStore for S {
    async fn claim_lease(&self, request: &Claim<'_>) -> Result<Claimed, StoreError> {
        let dialect = self.dialect();
        let me = request.claimant;
        let script = Script::read_then(
            vec![
                stmt(dialect.now_ms, vec![]),
                stmt(dialect.lease_for_update, vec![]),
                stmt(rows::PEERS_SQL, vec![]),
            ],
            |read| {
                let now = scalar(read, 0, "now_ms")?;
                let held = first(read, 1).map(rows::lease).transpose()?;
                let peers = all(read, 2)
                    .iter()
                    .map(rows::peer)
                    .collect::<Result<Vec<_>, _>>()?;
                let verdict = claim(held.as_ref(), &peers, now, request);
                let mut writes = Vec::new();
                if let Some(lease) = verdict.written() {
                    writes.push(stmt(
                        dialect.upsert_lease,
                        vec![
                            (&lease.holder).into(),
                            (&lease.incarnation).into(),
                            (&lease.address).into(),
                            super::int(lease.token),
                            lease.expires_at_ms.into(),
                        ],
                    ));
                }
                writes.push(stmt(
                    dialect.upsert_coordinator,
                    vec![
                        (&me.id).into(),
                        (&me.address).into(),
                        now.into(),
                        (&me.incarnation).into(),
                        (&me.migrations).into(),
                    ],
                ));
                Ok(Plan {
                    writes,
                    value: Claimed::after(verdict, held, now),
                })
            },
        )
        .without_fence();
        Ok(self.transact(&script).await?.0)
    }

    async fn release_lease(&self, claimant: &Claimant) -> Result<(), StoreError> {
        let release = stmt(
            RELEASE_SQL,
            vec![(&claimant.id).into(), (&claimant.incarnation).into()],
        );
        self.transact(&Script::writes(vec![release]).without_fence())
            .await?;
        Ok(())
    }

    async fn peers(&self) -> Result<Vec<Peer>, StoreError> {
        let read = self.read(&[stmt(rows::PEERS_SQL, vec![])]).await?;
        all(&read, 0).iter().map(rows::peer).collect()
    }
}
