//! The coordinator's persistent state in SQLite (or any URL sqlx's SQLite driver takes): the
//! inventory, the mode and its epoch.

use std::str::FromStr;

use prometheus_client::metrics::counter::Counter;
use qserv_proto::names::{mode_name, parse_mode};
use qserv_proto::v1::Mode;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};

use crate::domain::Role;
use crate::spec::{InstanceSpec, NodeSpec};

mod audit;
mod jobs;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("cannot migrate the store {url}: {source}")]
    Migrate {
        url: String,
        source: sqlx::migrate::MigrateError,
    },
    #[error("store query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("the store holds a value this build does not understand: {0}")]
    Corrupt(String),
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
    pub epoch: u64,
    pub nodes: Vec<NodeRecord>,
}

impl Inventory {
    pub fn spec(&self) -> InstanceSpec {
        InstanceSpec {
            name: self.name.clone(),
            nodes: self.nodes.iter().map(|n| n.spec.clone()).collect(),
        }
    }
}

/// Writes made to the store since it opened, for `/metrics`: what a job costs the store shows
/// there, not only in a benchmark.
#[derive(Clone, Debug, Default)]
pub struct WriteCounters {
    pub statements: Counter,
    pub rows: Counter,
}

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    /// The same database, for job progress rows and log lines (see `open`).
    progress: SqlitePool,
    writes: WriteCounters,
}

impl Store {
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            url: url.to_owned(),
            source,
        };
        // WAL with full sync: a mode or job step acknowledged to an operator survives a crash of
        // the coordinator and of the host.
        let options = SqliteConnectOptions::from_str(url)
            .map_err(open_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(5));
        let options_normal = options.clone().synchronous(SqliteSynchronous::Normal);
        // An in-memory database lives in one connection; a pool of several would see several.
        let connections = if url.contains(":memory:") || url.contains("mode=memory") {
            1
        } else {
            4
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(connections)
            .connect_with(options)
            .await
            .map_err(open_err)?;
        qserv_migrations::STORE_MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                url: url.to_owned(),
                source,
            })?;
        // Per-node progress and log lines are many small writes; flushing each to disk would
        // cost a job more than its work (several milliseconds each, hundreds per install). In
        // WAL mode a NORMAL commit survives a crash of the coordinator, and the next FULL commit
        // (every step, mode and epoch change) flushes it for a crash of the host too: at worst a
        // host crash loses progress lines written since the last step, never a step's outcome.
        let progress = if connections == 1 {
            pool.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options_normal)
                .await
                .map_err(open_err)?
        };
        Ok(Store {
            pool,
            progress,
            writes: WriteCounters::default(),
        })
    }

    pub fn write_counters(&self) -> &WriteCounters {
        &self.writes
    }

    /// Counts one executed write statement and the rows it changed.
    fn wrote(&self, done: SqliteQueryResult) -> SqliteQueryResult {
        self.writes.statements.inc();
        self.writes.rows.inc_by(done.rows_affected());
        done
    }

    /// A write transaction that takes SQLite's write lock up front: a deferred transaction that
    /// reads first fails with SQLITE_BUSY_SNAPSHOT when another connection commits meanwhile,
    /// and the busy timeout does not retry that.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    pub fn is_open(&self) -> bool {
        !self.pool.is_closed()
    }

    /// The persisted inventory; `None` before any spec was ever loaded.
    pub async fn load(&self) -> Result<Option<Inventory>, StoreError> {
        let Some(row) = sqlx::query("SELECT name, mode, epoch FROM instance WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let mode: String = row.try_get("mode")?;
        let mode = parse_mode(&mode).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let epoch: i64 = row.try_get("epoch")?;
        let rows = sqlx::query(
            "SELECT name, role, agent, registered_id FROM nodes ORDER BY position, name",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut nodes = Vec::with_capacity(rows.len());
        for row in rows {
            let role: String = row.try_get("role")?;
            nodes.push(NodeRecord {
                spec: NodeSpec {
                    name: row.try_get("name")?,
                    role: Role::parse(&role).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    agent: row.try_get("agent")?,
                },
                registered_id: row.try_get("registered_id")?,
            });
        }
        Ok(Some(Inventory {
            name: row.try_get("name")?,
            mode,
            epoch: u64::try_from(epoch).unwrap_or_default(),
            nodes,
        }))
    }

    /// Replaces the inventory of an uninstalled instance with `spec`, in one transaction.
    pub async fn declare(&self, spec: &InstanceSpec) -> Result<Inventory, StoreError> {
        let mut tx = self.begin_write().await?;
        self.wrote(
            sqlx::query(
                "INSERT INTO instance (id, name, mode, epoch) VALUES (1, ?, ?, 0) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
             updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            )
            .bind(&spec.name)
            .bind(mode_name(Mode::Uninstalled))
            .execute(&mut *tx)
            .await?,
        );
        self.wrote(sqlx::query("DELETE FROM nodes").execute(&mut *tx).await?);
        for (position, node) in spec.nodes.iter().enumerate() {
            self.wrote(
                sqlx::query("INSERT INTO nodes (name, role, agent, position) VALUES (?, ?, ?, ?)")
                    .bind(&node.name)
                    .bind(node.role.name())
                    .bind(&node.agent)
                    .bind(i64::try_from(position).unwrap_or(i64::MAX))
                    .execute(&mut *tx)
                    .await?,
            );
        }
        tx.commit().await?;
        self.load()
            .await?
            .ok_or_else(|| StoreError::Corrupt("the instance row vanished after writing it".into()))
    }
}

impl Store {
    /// Raises the epoch without changing the mode: commands that precede a mode change (`down`
    /// stops services before the mode is stored) then carry an epoch the store already holds.
    pub async fn set_epoch(&self, epoch: u64) -> Result<(), StoreError> {
        self.wrote(sqlx::query(
            "UPDATE instance SET epoch = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = 1",
        )
        .bind(i64::try_from(epoch).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?);
        Ok(())
    }

    /// Persists a mode change; the epoch must grow with every change.
    pub async fn set_mode(&self, mode: Mode, epoch: u64) -> Result<(), StoreError> {
        self.wrote(sqlx::query(
            "UPDATE instance SET mode = ?, epoch = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = 1",
        )
        .bind(mode_name(mode))
        .bind(i64::try_from(epoch).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?);
        Ok(())
    }

    /// Records the ids workers were registered under (none: not registered), in one
    /// transaction.
    pub async fn set_registered_ids(
        &self,
        ids: &[(String, Option<String>)],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for (node, id) in ids {
            self.wrote(
                sqlx::query("UPDATE nodes SET registered_id = ? WHERE name = ?")
                    .bind(id)
                    .bind(node)
                    .execute(&mut *tx)
                    .await?,
            );
        }
        tx.commit().await?;
        Ok(())
    }

    /// Appends nodes to the inventory (`workers add`); a node already there as given is kept,
    /// so a resumed job can run this again.
    pub async fn add_nodes(&self, nodes: &[NodeSpec]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let next: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), -1) + 1 FROM nodes")
            .fetch_one(&mut *tx)
            .await?;
        for (offset, node) in nodes.iter().enumerate() {
            self.wrote(
                sqlx::query(
                    "INSERT INTO nodes (name, role, agent, position) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (name) DO NOTHING",
                )
                .bind(&node.name)
                .bind(node.role.name())
                .bind(&node.agent)
                .bind(next + i64::try_from(offset).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?,
            );
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes a node from the inventory (`workers remove`).
    pub async fn remove_node(&self, name: &str) -> Result<(), StoreError> {
        self.wrote(
            sqlx::query("DELETE FROM nodes WHERE name = ?")
                .bind(name)
                .execute(&self.pool)
                .await?,
        );
        Ok(())
    }

    /// Forgets the inventory after `delete`. The epoch keeps growing: an agent must never take a
    /// later instance's mode for an older one's.
    pub async fn forget(&self, epoch: u64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        self.wrote(sqlx::query("DELETE FROM nodes").execute(&mut *tx).await?);
        self.wrote(
            sqlx::query(
                "UPDATE instance SET name = '', mode = 'uninstalled', epoch = ? WHERE id = 1",
            )
            .bind(i64::try_from(epoch).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?,
        );
        tx.commit().await?;
        Ok(())
    }
}

/// Why a spec given at start cannot be used with the installed inventory.
pub fn spec_conflicts(installed: &Inventory, spec: &InstanceSpec) -> Vec<String> {
    let mut problems = Vec::new();
    if installed.name != spec.name {
        problems.push(format!(
            "the spec names instance '{}' but the installed instance is '{}'",
            spec.name, installed.name
        ));
    }
    for node in &spec.nodes {
        match installed.nodes.iter().find(|n| n.spec.name == node.name) {
            None => problems.push(format!(
                "node '{}' is not in the installed inventory",
                node.name
            )),
            Some(known) if known.spec != *node => problems.push(format!(
                "node '{}' is {} at {} in the spec but {} at {} in the installed inventory",
                node.name, node.role, node.agent, known.spec.role, known.spec.agent
            )),
            Some(_) => {}
        }
    }
    for known in &installed.nodes {
        if !spec.nodes.iter().any(|n| n.name == known.spec.name) {
            problems.push(format!(
                "installed node '{}' is missing from the spec",
                known.spec.name
            ));
        }
    }
    problems
}
