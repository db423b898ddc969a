//! What the job engine, the monitors and the gRPC service share: the store, the snapshot, the
//! agent seam, the migrations, and which agents the inventory names (the monitors follow it).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::instance::{Epoch, FencingToken, Mode};
use qserv_migrations::MigrationSet;
use tokio::sync::watch;

use crate::agents::api::{AgentError, Agents, Authority};
use crate::agents::client::GrpcAgents;
use crate::domain::{Node, Observation};
use crate::instance::{self, Snapshot, Targets};
use crate::runtime::metrics::Metrics;
use crate::runtime::term::Term;
use crate::store::{Inventory, Peer, Store, StoreError};

/// Epochs are stored as SQLite integers; none may pass this.
const MAX_EPOCH: u64 = i64::MAX as u64;

/// No epoch can follow the one given.
#[derive(Debug, thiserror::Error)]
#[error(
    "no epoch can follow {0}: an agent or the store holds the largest one there is; reset the agent's state directory or the store"
)]
pub struct EpochExhausted(pub u64);

/// The epoch after `current` (the first one when there is none), without overflow.
pub fn next_epoch(current: Option<Epoch>) -> Result<Epoch, EpochExhausted> {
    let current = Epoch::to_wire(current);
    current
        .checked_add(1)
        .filter(|e| *e <= MAX_EPOCH)
        .and_then(Epoch::from_wire)
        .ok_or(EpochExhausted(current))
}

pub struct Core {
    pub store: Store,
    pub snapshot: Snapshot,
    pub agents: Agents,
    pub migrations: MigrationSet,
    /// [`MigrationSet::digest`] of `migrations`, which do not change while the process runs.
    pub migrations_digest: String,
    pub targets: Targets,
    pub metrics: Metrics,
    /// This coordinator's part in the leader lease's current term.
    pub term: watch::Sender<Term>,
    /// The coordinators sharing the store, as of the last claim.
    pub peers: watch::Sender<Vec<Peer>>,
    /// The highest fencing token any agent reported: the lease's term must reach it before
    /// agents take this coordinator's commands (a fresh store starts counting at 1 again).
    pub token_floor: watch::Sender<u64>,
    /// Where monitors open their status streams; `None` runs without monitors (unit tests).
    grpc: Option<Arc<GrpcAgents>>,
    /// The agents the inventory names, node name to address; the monitors follow it.
    pub watched: watch::Sender<BTreeMap<String, String>>,
    /// How many waves of the service order a running `up` or `down` has released; `None`
    /// when all are (no such job runs). A stale agent told the mode gets the same release.
    pub waves_released: watch::Sender<Option<usize>>,
}

impl Core {
    pub fn new(
        store: Store,
        snapshot: Snapshot,
        migrations: MigrationSet,
        metrics: Metrics,
        agents: Agents,
        grpc: Option<Arc<GrpcAgents>>,
        term: Term,
    ) -> Core {
        Core {
            store,
            snapshot,
            agents,
            targets: Targets::of(&migrations),
            migrations_digest: migrations.digest(),
            migrations,
            metrics,
            grpc,
            watched: watch::channel(BTreeMap::new()).0,
            term: watch::channel(term).0,
            peers: watch::channel(Vec::new()).0,
            token_floor: watch::channel(0).0,
            waves_released: watch::channel(None).0,
        }
    }

    /// The services a node of `role` may run now, as the running `up` or `down` released them.
    pub fn release_for(&self, role: crate::domain::Role) -> qserv_model::Release {
        match *self.waves_released.borrow() {
            None => qserv_model::Release::All,
            Some(waves) => crate::instance::services::released_through(
                &self.snapshot.borrow().services,
                role,
                waves,
            ),
        }
    }

    pub fn grpc(&self) -> Option<&Arc<GrpcAgents>> {
        self.grpc.as_ref()
    }

    /// The mode and epoch as stored (the snapshot mirrors the store's own row, written through
    /// on every change).
    pub fn mode(&self) -> (Mode, Option<Epoch>) {
        let s = self.snapshot.borrow();
        (s.mode(), s.epoch)
    }

    /// The inventory's nodes, in order, as the snapshot holds them.
    pub fn nodes(&self) -> Vec<Node> {
        self.snapshot.borrow().inventory()
    }

    /// The authority commands to agents carry now.
    pub fn authority(&self) -> Authority {
        let s = self.snapshot.borrow();
        Authority {
            instance: s.instance_name().to_owned(),
            epoch: s.epoch,
            token: FencingToken::from_wire(self.term.borrow().token()),
        }
    }

    /// Waits, up to `limit`, until this leader's term carries a token every agent takes (at
    /// least the highest any reported); returns that token, or `None` when it stopped leading
    /// or the term was not raised in time.
    pub async fn token_agents_take(&self, limit: std::time::Duration) -> Option<u64> {
        let floor = *self.token_floor.borrow();
        let mut term = self.term.subscribe();
        let reached = tokio::time::timeout(
            limit,
            term.wait_for(|t| !t.is_leader() || t.leader_token() >= floor),
        )
        .await;
        match reached {
            Ok(Ok(term)) if term.is_leader() => Some(term.leader_token()),
            _ => None,
        }
    }

    /// Persists a mode change and publishes it.
    pub async fn set_mode(
        &self,
        mode: Mode,
        epoch: impl Into<Option<Epoch>>,
    ) -> Result<(), StoreError> {
        let epoch = epoch.into();
        self.store.set_mode(mode, epoch).await?;
        self.snapshot.send_modify(|s| {
            s.mode = Some(mode);
            s.epoch = epoch;
            instance::refresh(s);
        });
        tracing::info!(
            mode = mode.name(),
            epoch = Epoch::to_wire(epoch),
            "mode changed"
        );
        Ok(())
    }

    /// Persists a higher epoch under the same mode and publishes it.
    pub async fn set_epoch(&self, epoch: Epoch) -> Result<(), StoreError> {
        self.store.set_epoch(epoch).await?;
        self.snapshot.send_modify(|s| {
            s.epoch = Some(epoch);
            instance::refresh(s);
        });
        Ok(())
    }

    /// A module's version on a node as last observed; `None` when uninitialized or unknown.
    pub fn observed_version(&self, name: &str, module: qserv_migrations::Module) -> Option<i64> {
        self.snapshot
            .borrow()
            .node(name)?
            .schema
            .iter()
            .find(|s| s.module == module)?
            .version
    }

    /// Folds an agent's status into the snapshot (older statuses are ignored there).
    pub fn observe(&self, name: &str, observed: &Observation) {
        self.token_floor.send_if_modified(|floor| {
            let seen = FencingToken::to_wire(observed.seen_token);
            let higher = seen > *floor;
            *floor = (*floor).max(seen);
            higher
        });
        let now = crate::clock::now_ms();
        self.snapshot.send_if_modified(|s| {
            instance::apply_observation(s, name, observed, &self.targets, now)
        });
    }

    /// Records that a fresh probe could not reach the node's agent.
    pub fn observe_failure(&self, name: &str, error: &AgentError) {
        if let AgentError::Unreachable(text) = error {
            self.snapshot
                .send_if_modified(|s| instance::apply_unreachable(s, name, text));
        }
    }

    /// Re-reads the inventory from the store into the snapshot and starts or stops monitors.
    pub async fn reload(self: &Arc<Self>) -> Result<Option<Inventory>, StoreError> {
        let inventory = self.store.load().await?.filter(|i| !i.name.is_empty());
        self.snapshot
            .send_modify(|s| instance::set_inventory(s, inventory.as_ref()));
        let wanted: BTreeMap<String, String> = inventory
            .iter()
            .flat_map(|i| &i.nodes)
            .map(|n| (n.spec.name.clone(), n.spec.agent.clone()))
            .collect();
        self.watched.send_if_modified(|watched| {
            let changed = *watched != wanted;
            *watched = wanted;
            changed
        });
        Ok(inventory)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_never_wrap() {
        assert_eq!(next_epoch(None).ok(), Epoch::from_wire(1));
        assert_eq!(next_epoch(Epoch::from_wire(4)).ok(), Epoch::from_wire(5));
        assert!(next_epoch(Epoch::from_wire(MAX_EPOCH)).is_err());
        assert!(next_epoch(Epoch::from_wire(u64::MAX)).is_err());
    }
}
