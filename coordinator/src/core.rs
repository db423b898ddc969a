//! What the job engine, the monitors and the gRPC service share: the store, the snapshot, the
//! agent clients, the migrations, and the set of running monitors.

use std::collections::HashMap;
use std::sync::Mutex;

use qserv_migrations::MigrationSet;
use qserv_proto::v1::Mode;
use tokio::task::JoinHandle;

use crate::agents::Agents;
use crate::metrics::Metrics;
use crate::snapshot::{self, Snapshot, Targets};
use crate::store::{Inventory, Store, StoreError};

pub struct Core {
    pub store: Store,
    pub snapshot: Snapshot,
    pub agents: Agents,
    pub migrations: MigrationSet,
    pub targets: Targets,
    pub metrics: Metrics,
    monitors: Mutex<HashMap<String, (String, JoinHandle<()>)>>,
}

impl Core {
    pub fn new(
        store: Store,
        snapshot: Snapshot,
        migrations: MigrationSet,
        metrics: Metrics,
        tls: Option<qserv_proto::tls::TlsFiles>,
    ) -> Result<Core, qserv_proto::tls::TlsError> {
        Ok(Core {
            store,
            snapshot,
            agents: Agents::new(tls)?,
            targets: Targets::of(&migrations),
            migrations,
            metrics,
            monitors: Mutex::new(HashMap::new()),
        })
    }

    pub fn mode(&self) -> (Mode, u64) {
        let s = self.snapshot.borrow();
        (Mode::try_from(s.mode).unwrap_or(Mode::Unspecified), s.epoch)
    }

    /// The epoch for the next mode change: above the instance's and above any agent's, so that
    /// agents that served an earlier coordinator (or store) never ignore it as stale.
    pub fn next_epoch(&self) -> u64 {
        let s = self.snapshot.borrow();
        let agents = s.nodes.iter().map(|n| n.agent_epoch).max().unwrap_or(0);
        s.epoch.max(agents) + 1
    }

    pub fn instance_name(&self) -> String {
        self.snapshot.borrow().instance.clone()
    }

    /// Persists a mode change and publishes it.
    pub async fn set_mode(&self, mode: Mode, epoch: u64) -> Result<(), StoreError> {
        self.store.set_mode(mode, epoch).await?;
        self.snapshot.send_modify(|s| {
            s.mode = mode.into();
            s.epoch = epoch;
        });
        tracing::info!(
            mode = qserv_proto::names::mode_name(mode),
            epoch,
            "mode changed"
        );
        Ok(())
    }

    /// Re-reads the inventory from the store into the snapshot and starts or stops monitors.
    pub async fn reload(self: &std::sync::Arc<Self>) -> Result<Option<Inventory>, StoreError> {
        let inventory = self.store.load().await?.filter(|i| !i.name.is_empty());
        self.snapshot
            .send_modify(|s| snapshot::set_inventory(s, inventory.as_ref()));
        self.sync_monitors(inventory.as_ref());
        Ok(inventory)
    }

    fn sync_monitors(self: &std::sync::Arc<Self>, inventory: Option<&Inventory>) {
        let Ok(mut monitors) = self.monitors.lock() else {
            return;
        };
        let wanted: HashMap<&str, &str> = inventory
            .map(|i| {
                i.nodes
                    .iter()
                    .map(|n| (n.spec.name.as_str(), n.spec.agent.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        monitors.retain(|name, (agent, task)| {
            let keep = wanted.get(name.as_str()) == Some(&agent.as_str());
            if !keep {
                task.abort();
            }
            keep
        });
        for (name, agent) in wanted {
            if !monitors.contains_key(name) {
                let task = tokio::spawn(crate::monitor::run(
                    name.to_owned(),
                    agent.to_owned(),
                    std::sync::Arc::clone(self),
                ));
                monitors.insert(name.to_owned(), (agent.to_owned(), task));
            }
        }
    }

    pub fn stop_monitors(&self) {
        if let Ok(mut monitors) = self.monitors.lock() {
            for (_, (_, task)) in monitors.drain() {
                task.abort();
            }
        }
    }
}
