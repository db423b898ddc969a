//! What the coordinator asks of an agent, typed. Jobs and admission talk to agents only through
//! [`AgentApi`]: the gRPC implementation lives in `agents.rs`, and unit tests put a fake in its
//! place.

use std::sync::Arc;

use crate::domain::{Epoch, FencingToken, Mode};
use qserv_migrations::{Module, Shipment};
use qserv_model::{Release, ServiceName};

use crate::domain::{Node, Observation};

/// On whose authority a command is sent: the instance the coordinator runs and its epoch. The
/// agent checks both, and the node's name and role, before it acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    pub instance: String,
    pub epoch: Option<Epoch>,
    /// The fencing token of the leader lease this coordinator holds.
    pub token: Option<FencingToken>,
}

/// What a probe looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The database checked now, and everything else the agent knows.
    All,
    /// The services, as the agent's supervisors see them now; the database is not checked. A
    /// wait on services polls often, and checking every database each round would slow the
    /// very services it waits for.
    Services,
}

/// Why an agent call did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// The agent could not be reached, or did not answer in time: nothing is known.
    #[error("agent unreachable: {0}")]
    Unreachable(String),
    /// The agent refused the command before acting (wrong node, role, instance, stale epoch,
    /// mode, dirty database): nothing changed.
    #[error("{0}")]
    Refused(String),
    /// The agent acted and the action failed (a migration statement, a SQL error).
    #[error("{0}")]
    Failed(String),
    /// The request was built from a view of the node older than what the agent found under
    /// its lock (a migration planned from a version the database has left): nothing changed,
    /// and the same request built from a fresh probe may go through.
    #[error("{0}")]
    Stale(String),
}

/// A command's answer together with the status the agent checked after it.
#[derive(Debug, Clone)]
pub struct Reply<T> {
    pub value: T,
    pub observed: Observation,
}

/// The scripts a migration needs and who runs it.
#[derive(Debug, Clone)]
pub struct MigrateCall {
    /// The module's set by name and checksum, and the scripts the node's plan needs.
    pub shipment: Shipment,
    pub job_id: String,
    pub requested_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedScript {
    pub file_name: String,
    pub duration_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub applied: Vec<AppliedScript>,
}

#[derive(Debug, Clone)]
pub struct RepairCall {
    pub module: Module,
    pub version: i64,
    /// The target of the module's migrations: a repair never goes past it.
    pub max_version: Option<i64>,
    pub force: bool,
    pub reason: String,
    pub job_id: String,
    pub requested_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Purged {
    pub databases: Vec<String>,
    pub accounts: Vec<String>,
}

/// What a restart request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restart {
    /// The services were stopped and started again; false when there was nothing to restart.
    pub restarted: bool,
    pub detail: String,
}

/// A service's template rendered on a node (the first phase of a configuration apply).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Prepared {
    /// The service's config path on the node.
    pub path: String,
    pub rendered_sha256: String,
    /// From the file there to the rendered one, secrets masked; empty when the same.
    pub diff: String,
}

/// What a configuration commit does on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigWrite {
    /// Install the file staged with this hash, as this template version.
    Install {
        version: u32,
        rendered_sha256: String,
    },
    /// Put the file the last install replaced back, as this template version (0: none).
    Restore { version: u32 },
}

/// A worker's replicas of one database, as the repl node's records hold them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DatabaseHoldings {
    pub database: String,
    pub replicas: u64,
    /// Chunks with no replica on another worker: how many, and the first ten.
    pub sole_copies: u64,
    pub sole_chunks: Vec<u32>,
    pub contributions: u64,
}

/// What deleting a worker's registry row would take with it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Holdings {
    pub databases: Vec<DatabaseHoldings>,
    /// Per table, the rows Qserv's cascade would delete.
    pub cascaded: Vec<(String, u64)>,
}

/// What forgetting a worker did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Forgotten {
    pub removed: bool,
    /// On the repl node; empty when nothing was saved for the job.
    pub saved_path: String,
    pub saved_rows: u64,
}

pub type AgentResult<T> = Result<T, AgentError>;

#[tonic::async_trait]
pub trait AgentApi: Send + Sync {
    /// Asks the agent now (checking its database, for [`Scope::All`]) and returns what it found.
    async fn probe(&self, node: &Node, scope: Scope) -> AgentResult<Observation>;
    /// The mode, and with a new mode the services it releases.
    async fn set_mode(
        &self,
        node: &Node,
        auth: &Authority,
        mode: Mode,
        release: &Release,
    ) -> AgentResult<Observation>;
    /// Which of the node's services may run in `normal`, under the epoch it holds.
    async fn set_services(
        &self,
        node: &Node,
        auth: &Authority,
        release: &Release,
    ) -> AgentResult<Observation>;
    /// The Qserv databases that exist on the node.
    async fn inspect(&self, node: &Node, auth: &Authority) -> AgentResult<Vec<String>>;
    async fn ensure_accounts(
        &self,
        node: &Node,
        auth: &Authority,
    ) -> AgentResult<Reply<Vec<String>>>;
    async fn migrate(
        &self,
        node: &Node,
        auth: &Authority,
        call: MigrateCall,
    ) -> AgentResult<Reply<Migrated>>;
    /// repl only: ids newly inserted in the worker registry.
    async fn register_workers(
        &self,
        node: &Node,
        auth: &Authority,
        ids: Vec<String>,
    ) -> AgentResult<Reply<Vec<String>>>;
    /// repl only: ids removed from the worker registry.
    async fn unregister_workers(
        &self,
        node: &Node,
        auth: &Authority,
        ids: Vec<String>,
    ) -> AgentResult<Reply<Vec<String>>>;
    /// Problems found logging in with the service accounts; empty when none.
    async fn validate(&self, node: &Node, auth: &Authority) -> AgentResult<Vec<String>>;
    async fn purge(&self, node: &Node, auth: &Authority) -> AgentResult<Reply<Purged>>;
    /// Stops the named services (all, when none is named) in reverse order and starts them
    /// again in order; answers once they are ready.
    async fn restart_services(
        &self,
        node: &Node,
        auth: &Authority,
        services: &[ServiceName],
    ) -> AgentResult<Reply<Restart>>;
    /// Renders `service`'s template with the node's values and compares it with its file;
    /// with `stage`, also stages it for [`AgentApi::commit_config`].
    async fn prepare_config(
        &self,
        node: &Node,
        auth: &Authority,
        service: &ServiceName,
        template: &str,
        stage: bool,
    ) -> AgentResult<Prepared>;
    /// Writes `service`'s file as `write` says; `rolling` allows it in `normal`. The hash of
    /// the file now there.
    async fn commit_config(
        &self,
        node: &Node,
        auth: &Authority,
        service: &ServiceName,
        write: &ConfigWrite,
        rolling: bool,
    ) -> AgentResult<Reply<String>>;
    /// repl only: what deleting the worker's registry row would take with it.
    async fn worker_holdings(
        &self,
        node: &Node,
        auth: &Authority,
        worker_id: &str,
    ) -> AgentResult<Holdings>;
    /// repl only: saves the rows the deletion takes, then deletes the worker's row.
    async fn forget_worker(
        &self,
        node: &Node,
        auth: &Authority,
        worker_id: &str,
        job_id: &str,
    ) -> AgentResult<Reply<Forgotten>>;
    /// repl only: sets the worker's flags; `None` when it is not registered, else whether
    /// anything changed.
    async fn set_worker_state(
        &self,
        node: &Node,
        auth: &Authority,
        worker_id: &str,
        flags: (bool, bool),
    ) -> AgentResult<Reply<Option<bool>>>;
    /// What the database was marked with before the repair.
    async fn repair(
        &self,
        node: &Node,
        auth: &Authority,
        call: RepairCall,
    ) -> AgentResult<Reply<String>>;
}

pub type Agents = Arc<dyn AgentApi>;
