//! The coordinator's persistent state: the inventory, the mode and its epoch, jobs and the audit
//! trail. One set of traits, implemented once (`shared`) over two backends that only run its
//! scripts: SQLite (the embedded default) and MariaDB (one server, or the hosts of a Galera
//! cluster), which several coordinators can share.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::domain::{Epoch, Mode};
use prometheus_client::metrics::counter::Counter;

use crate::domain::Role;
use crate::domain::audit::AuditRecord;
use crate::domain::config::{ConfigVersion, NewConfigVersion};
use crate::domain::job::{JobRecord, JobSpec, JobState, LogRecord, NodeProgress};
use crate::domain::spec::{InstanceSpec, NodeSpec};
use qserv_model::{ServiceName, ServiceOrder};

mod health;
pub mod lease;
mod mariadb;
mod rows;
mod shared;
mod sqlite;
#[cfg(test)]
pub(crate) mod suite;

pub use health::WriteHealth;
pub use lease::{Claim, Claimant, Lease, Peer, Verdict};

/// What a claim came to.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub verdict: Verdict,
    /// The lease as it stands after the claim (none on a store no coordinator ever led).
    pub standing: Option<Lease>,
    /// The store's clock when it decided, in ms since the epoch.
    pub now_ms: i64,
}

impl Claimed {
    /// What `verdict`, decided at `now_ms` on the lease `held`, leaves standing.
    pub fn after(verdict: Verdict, held: Option<Lease>, now_ms: i64) -> Claimed {
        Claimed {
            standing: verdict.written().cloned().or(held),
            verdict,
            now_ms,
        }
    }
}
pub use mariadb::{MariaTarget, Unfinished};

/// Where the store is: one SQLite database, or MariaDB hosts (of one Galera cluster).
#[derive(Clone)]
pub enum StoreTarget {
    Sqlite(String),
    Maria(MariaTarget),
}

impl std::fmt::Debug for StoreTarget {
    // The password stays out of every rendering.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreTarget::Sqlite(url) => write!(f, "Sqlite({url})"),
            StoreTarget::Maria(target) => write!(f, "Maria({:?})", target.urls),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("cannot migrate the store {url}: {source}")]
    Migrate {
        url: String,
        source: sqlx::migrate::MigrateError,
    },
    #[error(
        "cannot reach the store at {url}: {reason}; check that it runs and that the coordinator may log in"
    )]
    Unreachable { url: String, reason: String },
    #[error("store query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("the store holds a value this build does not understand: {0}")]
    Corrupt(String),
    #[error(
        "this coordinator no longer leads (its term, token {token}, has ended) and changed nothing; run the command again: the leader now in charge takes it"
    )]
    Fenced { token: u64 },
    #[error(transparent)]
    Unfinished(#[from] Unfinished),
    /// A write that carried this change together with others failed.
    #[error("{0}")]
    Grouped(String),
    #[error(transparent)]
    Encode(#[from] crate::domain::job::EncodeError),
}

/// The fencing token this coordinator writes under: its term's while it leads, 0 (which no
/// lease carries) otherwise. Every change to the instance or its jobs is made only if the
/// store's lease still carries this token, checked in the change's own transaction, so a leader
/// deposed between deciding and writing changes nothing (DESIGN §13).
#[derive(Clone, Debug, Default)]
pub struct Fence {
    token: Arc<AtomicU64>,
    deposed: Arc<tokio::sync::Notify>,
}

impl Fence {
    /// Writes from now on are made under `token` (0: none are).
    pub fn hold(&self, token: u64) {
        self.token.store(token, Ordering::SeqCst);
    }

    pub fn token(&self) -> u64 {
        self.token.load(Ordering::SeqCst)
    }

    /// A write under `token` found another term in the store: no more writes under it, and
    /// whoever waits in [`Fence::deposed`] learns it now rather than at its next claim.
    pub(crate) fn refused(&self, token: u64) -> StoreError {
        let _ = self
            .token
            .compare_exchange(token, 0, Ordering::SeqCst, Ordering::SeqCst);
        self.deposed.notify_one();
        StoreError::Fenced { token }
    }

    /// Resolves when a write was refused because another term holds the lease.
    pub async fn deposed(&self) {
        self.deposed.notified().await;
    }
}

/// The statement that makes a transaction's changes conditional on the lease: it changes the
/// lease row only while that row carries the writer's token (same text for both backends).
pub(crate) const FENCE_SQL: &str =
    "UPDATE leader_lease SET fenced_writes = fenced_writes + 1 WHERE id = 1 AND token = ?";

/// A job's header, unless the job has ended (same text for both backends).
pub(crate) const SAVE_HEADER_SQL: &str = "UPDATE jobs SET state = ?, error = ?, refused = ?, \
     timed_out = ?, started_at_ms = ?, finished_at_ms = ?, note = ? \
     WHERE id = ? AND state IN ('queued', 'running')";
/// A queued job starts.
pub(crate) const START_SQL: &str =
    "UPDATE jobs SET state = 'running', started_at_ms = ? WHERE id = ? AND state = 'queued'";
/// A queued job is cancelled.
pub(crate) const CANCEL_QUEUED_SQL: &str = "UPDATE jobs SET state = 'cancelled', \
     finished_at_ms = ?, error = 'cancelled before it started' WHERE id = ? AND state = 'queued'";
/// A running job is asked to stop.
pub(crate) const CANCEL_RUNNING_SQL: &str =
    "UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND state = 'running'";

/// When a change to a new instance is made: at start-up, before any term (a spec given to a
/// coordinator whose store holds none), or by a job, under the leader's term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Declared {
    AtStart,
    ByJob,
}

/// A node as the coordinator knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    pub spec: NodeSpec,
    /// The worker id recorded at registration.
    pub registered_id: Option<String>,
}

/// The instance as persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    pub name: String,
    pub mode: Mode,
    pub epoch: Option<Epoch>,
    pub nodes: Vec<NodeRecord>,
    /// The order the instance's services start in.
    pub services: ServiceOrder,
}

impl Inventory {
    pub fn spec(&self) -> InstanceSpec {
        InstanceSpec {
            name: self.name.clone(),
            nodes: self.nodes.iter().map(|n| n.spec.clone()).collect(),
            services: self.services.clone(),
        }
    }
}

/// Writes made to the store since it opened, for `/metrics`: what a job costs the store shows
/// there, not only in a benchmark.
#[derive(Clone, Debug, Default)]
pub struct WriteCounters {
    pub statements: Counter,
    pub rows: Counter,
    /// Transactions run again after a Galera certification conflict or a deadlock.
    pub conflicts: Counter,
    /// Moves to another store host after the one in use failed.
    pub failovers: Counter,
}

/// The instance: inventory, mode and epoch.
#[async_trait::async_trait]
pub trait InventoryStore: Send + Sync {
    /// The store can still be reached (for `/readyz`).
    fn is_open(&self) -> bool;
    /// The persisted inventory; `None` before any spec was ever loaded.
    async fn load(&self) -> Result<Option<Inventory>, StoreError>;
    /// The instance's name, mode and epoch alone: what a follower polls.
    async fn instance_row(&self) -> Result<Option<(String, Mode, Option<Epoch>)>, StoreError>;
    /// Replaces the inventory of an uninstalled instance with `spec`, in one transaction;
    /// fenced unless made at start.
    async fn declare(&self, spec: &InstanceSpec, when: Declared) -> Result<Inventory, StoreError>;
    /// Replaces the service order (a spec given at start that declares another one).
    async fn set_service_order(&self, spec: &InstanceSpec) -> Result<(), StoreError>;
    /// Raises the epoch without changing the mode.
    async fn set_epoch(&self, epoch: Epoch) -> Result<(), StoreError>;
    /// Persists a mode change; the epoch must grow with every change.
    async fn set_mode(&self, mode: Mode, epoch: Option<Epoch>) -> Result<(), StoreError>;
    /// Records the ids workers were registered under (none: not registered).
    async fn set_registered_ids(&self, ids: &[(String, Option<String>)]) -> Result<(), StoreError>;
    /// Appends nodes; a node already there as given is kept.
    async fn add_nodes(&self, nodes: &[NodeSpec]) -> Result<(), StoreError>;
    async fn remove_node(&self, name: &str) -> Result<(), StoreError>;
    /// Forgets the inventory after `delete`; the epoch keeps growing.
    async fn forget(&self, epoch: Epoch) -> Result<(), StoreError>;
}

/// Jobs: header, steps, node progress and log lines, each written on its own.
#[async_trait::async_trait]
pub trait JobStore: Send + Sync {
    /// Inserts a new job (state `queued`) with its steps; returns its id (`j<seq>`).
    async fn create_job(
        &self,
        spec: &JobSpec,
        requested_by: &str,
        now_ms: i64,
    ) -> Result<String, StoreError>;
    /// The job's own row: state, outcome, times. A job that has ended is never rewritten.
    async fn save_job_header(&self, job: &JobRecord) -> Result<(), StoreError>;
    /// Moves a queued job to `running`; false, with nothing changed, when it is no longer
    /// queued (cancelled meanwhile). One conditional write decides between this and
    /// [`JobStore::cancel_job`], so a job cancelled before it started never starts.
    async fn start_job(&self, id: &str, started_at_ms: i64) -> Result<bool, StoreError>;
    /// Cancels a queued job at once; a running one is marked for its runner, whichever
    /// coordinator that is, to stop at its next check. Returns the state the job was in
    /// (`None`: no such job).
    async fn cancel_job(&self, id: &str, now_ms: i64) -> Result<Option<JobState>, StoreError>;
    async fn save_step(
        &self,
        job_id: &str,
        idx: usize,
        step: &crate::domain::job::StepRecord,
    ) -> Result<(), StoreError>;
    /// Several nodes' progress in one transaction.
    async fn save_nodes(&self, job_id: &str, nodes: &[NodeProgress]) -> Result<(), StoreError>;
    async fn append_log(&self, job_id: &str, line: &LogRecord) -> Result<(), StoreError>;
    /// At most `max` lines after `after_seq`, in order.
    async fn logs(
        &self,
        job_id: &str,
        after_seq: u64,
        max: u32,
    ) -> Result<Vec<LogRecord>, StoreError>;
    /// A job's state alone.
    async fn job_state(&self, id: &str) -> Result<Option<JobState>, StoreError>;
    /// The sequence number of the job's last log line; 0 when it has none.
    async fn last_log_seq(&self, job_id: &str) -> Result<u64, StoreError>;
    async fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError>;
    /// Most recent first: at most `limit`, created at or after `since_ms`.
    async fn list_jobs(&self, limit: u32, since_ms: i64) -> Result<Vec<JobRecord>, StoreError>;
    /// Deletes jobs finished before `before_ms` and older audit entries; returns how many.
    async fn prune(&self, before_ms: i64) -> Result<(u64, u64), StoreError>;
    /// Jobs that have not ended, oldest first.
    async fn unfinished_jobs(&self) -> Result<Vec<String>, StoreError>;
}

/// The audit trail.
#[async_trait::async_trait]
pub trait AuditStore: Send + Sync {
    async fn record_audit(&self, entry: &AuditRecord) -> Result<(), StoreError>;
    /// The newest `limit` entries at or after `since_ms`, oldest first, and whether more
    /// matched.
    async fn audit_page(
        &self,
        since_ms: i64,
        limit: u32,
    ) -> Result<(Vec<AuditRecord>, bool), StoreError>;
}

/// The versions of the services' configuration templates.
#[async_trait::async_trait]
pub trait ConfigStore: Send + Sync {
    /// Stores the next version of a service's template, under the fence; what was stored.
    async fn add_config_version(
        &self,
        new: NewConfigVersion<'_>,
    ) -> Result<ConfigVersion, StoreError>;
    /// Every version of `service`'s template, oldest first, without their text.
    async fn config_history(&self, service: &ServiceName)
    -> Result<Vec<ConfigVersion>, StoreError>;
    /// One version and its text; `None` when there is no such version.
    async fn config_version(
        &self,
        service: &ServiceName,
        version: u32,
    ) -> Result<Option<(ConfigVersion, String)>, StoreError>;
}

/// The leader lease and the coordinators sharing the store.
#[async_trait::async_trait]
pub trait LeaseStore: Send + Sync {
    /// Decides `claim` on the lease (see [`lease::claim`]), by the store's clock, writes what
    /// it decided and records the claimant's heartbeat, in one transaction.
    async fn claim_lease(&self, claim: &Claim<'_>) -> Result<Claimed, StoreError>;
    /// Ends `claimant`'s term at once (a clean stop), so that a follower need not wait it out.
    async fn release_lease(&self, claimant: &Claimant) -> Result<(), StoreError>;
    /// Every coordinator that ever claimed, with its last heartbeat.
    async fn peers(&self) -> Result<Vec<Peer>, StoreError>;
}

/// Everything a store does.
pub trait Backend: InventoryStore + JobStore + AuditStore + LeaseStore + ConfigStore {}

impl<T: InventoryStore + JobStore + AuditStore + LeaseStore + ConfigStore> Backend for T {}

/// The store the coordinator runs with, whichever implementation holds it.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    writes: WriteCounters,
    fence: Fence,
    health: WriteHealth,
    /// Where the store is, for messages (no password: URLs never carry one).
    location: Arc<str>,
}

impl Store {
    /// Opens (and brings to schema) the store at `url`: a SQLite URL or path.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let writes = WriteCounters::default();
        let fence = Fence::default();
        let backend = sqlite::SqliteStore::open(url, writes.clone(), fence.clone()).await?;
        Ok(Store {
            backend: Arc::new(backend),
            writes,
            fence,
            health: WriteHealth::default(),
            location: url.into(),
        })
    }

    /// Opens the store `target` names: SQLite, or MariaDB (one server or a Galera cluster).
    pub async fn open_target(target: &StoreTarget) -> Result<Store, StoreError> {
        match target {
            StoreTarget::Sqlite(url) => Store::open(url).await,
            StoreTarget::Maria(target) => {
                let writes = WriteCounters::default();
                let fence = Fence::default();
                let backend =
                    mariadb::MariaStore::open(target, writes.clone(), fence.clone()).await?;
                Ok(Store {
                    backend: Arc::new(backend),
                    writes,
                    fence,
                    health: WriteHealth::default(),
                    location: target.urls.join(",").into(),
                })
            }
        }
    }

    pub fn write_counters(&self) -> &WriteCounters {
        &self.writes
    }

    /// The token this store's changes are made under; the leader lease loop sets it.
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Whether the latest write went through.
    pub fn health(&self) -> &WriteHealth {
        &self.health
    }

    /// What an operator is told when a write failed with `err`.
    pub fn write_problem(&self, err: &StoreError) -> String {
        self.problem_text(&health::cause(err))
    }

    /// Why the store cannot be written now, as an operator is told it; `None` while it can.
    pub fn unwritable(&self) -> Option<String> {
        self.health.problem().map(|cause| self.problem_text(&cause))
    }

    fn problem_text(&self, cause: &str) -> String {
        format!(
            "the coordinator cannot write its store {}: {cause}; free space on its disk or bring its host back (the coordinator recovers by itself)",
            self.location
        )
    }
}

impl Deref for Store {
    type Target = dyn Backend;

    fn deref(&self) -> &Self::Target {
        &*self.backend
    }
}

pub(crate) fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("unknown {what} '{value}'"))
}

/// How a spec differs from the installed inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecConflict {
    Name {
        spec: String,
        installed: String,
    },
    /// A node of the spec is not installed.
    NotInstalled {
        node: String,
        role: Role,
    },
    /// A node is installed with another role or address.
    Differs {
        spec: NodeSpec,
        installed: NodeSpec,
    },
    /// An installed node is not in the spec.
    NotInSpec {
        node: String,
        role: Role,
    },
}

impl std::fmt::Display for SpecConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpecConflict::Name { spec, installed } => write!(
                f,
                "the spec names instance '{spec}' but the installed instance is '{installed}'"
            ),
            SpecConflict::NotInstalled { node, .. } => {
                write!(f, "node '{node}' is not in the installed inventory")
            }
            SpecConflict::Differs { spec, installed } => write!(
                f,
                "node '{}' is {} at {} in the spec but {} at {} in the installed inventory",
                spec.name, spec.role, spec.agent, installed.role, installed.agent
            ),
            SpecConflict::NotInSpec { node, .. } => {
                write!(f, "installed node '{node}' is missing from the spec")
            }
        }
    }
}

/// Every way `spec` differs from the installed inventory.
pub fn spec_conflicts(installed: &Inventory, spec: &InstanceSpec) -> Vec<SpecConflict> {
    let mut problems = Vec::new();
    if installed.name != spec.name {
        problems.push(SpecConflict::Name {
            spec: spec.name.clone(),
            installed: installed.name.clone(),
        });
    }
    for node in &spec.nodes {
        match installed.nodes.iter().find(|n| n.spec.name == node.name) {
            None => problems.push(SpecConflict::NotInstalled {
                node: node.name.clone(),
                role: node.role,
            }),
            Some(known) if known.spec != *node => problems.push(SpecConflict::Differs {
                spec: node.clone(),
                installed: known.spec.clone(),
            }),
            Some(_) => {}
        }
    }
    for known in &installed.nodes {
        if !spec.nodes.iter().any(|n| n.name == known.spec.name) {
            problems.push(SpecConflict::NotInSpec {
                node: known.spec.name.clone(),
                role: known.spec.role,
            });
        }
    }
    problems
}
