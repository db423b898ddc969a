//! The store in SQLite (the embedded default; any URL sqlx's SQLite driver takes).

use std::str::FromStr;

use crate::domain::{Epoch, Mode};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteQueryResult, SqliteSynchronous,
};

use super::{
    Declared, FENCE_SQL, Fence, Inventory, InventoryStore, StoreError, WriteCounters, rows,
};
use crate::domain::spec::{InstanceSpec, NodeSpec};

mod audit;
mod jobs;
mod lease;
mod tx;

pub(crate) use tx::WriteTx;

pub struct SqliteStore {
    pool: SqlitePool,
    /// The same database, for job progress rows and log lines (see `open`).
    progress: SqlitePool,
    writes: WriteCounters,
    fence: Fence,
}

impl SqliteStore {
    pub async fn open(
        url: &str,
        writes: WriteCounters,
        fence: Fence,
    ) -> Result<SqliteStore, StoreError> {
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
        if !(url.contains(":memory:") || url.contains("mode=memory")) {
            private_file(options.get_filename()).map_err(|e| StoreError::Open {
                url: url.to_owned(),
                source: sqlx::Error::Io(e),
            })?;
        }
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
        Ok(SqliteStore {
            pool,
            progress,
            writes,
            fence,
        })
    }

    /// Counts one executed write statement and the rows it changed.
    fn wrote(&self, done: SqliteQueryResult) -> SqliteQueryResult {
        self.writes.statements.inc();
        self.writes.rows.inc_by(done.rows_affected());
        done
    }

    /// Makes the transaction on `conn` conditional on this coordinator's term: it fails, and
    /// must be rolled back, when the lease carries another token.
    pub(crate) async fn fenced(&self, conn: &mut SqliteConnection) -> Result<(), StoreError> {
        let token = self.fence.token();
        let done = sqlx::query(FENCE_SQL)
            .bind(i64::try_from(token).unwrap_or(i64::MAX))
            .execute(conn)
            .await?;
        if self.wrote(done).rows_affected() == 0 {
            return Err(self.fence.refused(token));
        }
        Ok(())
    }

    /// A write transaction that takes SQLite's write lock up front: a deferred transaction that
    /// reads first fails with SQLITE_BUSY_SNAPSHOT when another connection commits meanwhile,
    /// and the busy timeout does not retry that.
    pub(crate) async fn begin_write(&self) -> Result<WriteTx, sqlx::Error> {
        WriteTx::begin(&self.pool, "BEGIN IMMEDIATE").await
    }

    /// A write transaction for job progress and log lines (see `open`).
    pub(crate) async fn begin_progress(&self) -> Result<WriteTx, sqlx::Error> {
        WriteTx::begin(&self.progress, "BEGIN IMMEDIATE").await
    }
}

/// Creates the store file readable by this user only, or makes an existing one so: it holds the
/// audit trail and every job's parameters. SQLite gives its `-wal` and `-shm` files the mode
/// of the database file.
fn private_file(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "the store was readable by others; making it 0600");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            let side = std::path::PathBuf::from(side);
            if side.exists() {
                std::fs::set_permissions(&side, std::fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl InventoryStore for SqliteStore {
    fn is_open(&self) -> bool {
        !self.pool.is_closed()
    }

    /// The persisted inventory; `None` before any spec was ever loaded.
    async fn load(&self) -> Result<Option<Inventory>, StoreError> {
        let Some(head) = sqlx::query(rows::INSTANCE_SQL)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let nodes = sqlx::query(rows::NODES_SQL).fetch_all(&self.pool).await?;
        rows::inventory(&head, &nodes).map(Some)
    }

    async fn instance_row(&self) -> Result<Option<(String, Mode, Option<Epoch>)>, StoreError> {
        let row = sqlx::query(rows::INSTANCE_SQL)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::instance).transpose()
    }

    async fn declare(&self, spec: &InstanceSpec, when: Declared) -> Result<Inventory, StoreError> {
        let mut tx = self.begin_write().await?;
        if when == Declared::ByJob {
            self.fenced(&mut tx).await?;
        }
        self.wrote(
            sqlx::query(
                "INSERT INTO instance (id, name, mode, epoch) VALUES (1, ?, ?, 0) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
             updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            )
            .bind(&spec.name)
            .bind(Mode::Uninstalled.name())
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

    /// Raises the epoch without changing the mode: commands that precede a mode change (`down`
    /// stops services before the mode is stored) then carry an epoch the store already holds.
    async fn set_epoch(&self, epoch: Epoch) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        self.fenced(&mut tx).await?;
        self.wrote(sqlx::query(
            "UPDATE instance SET epoch = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = 1",
        )
        .bind(i64::try_from(Epoch::to_wire(epoch.into())).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?);
        tx.commit().await?;
        Ok(())
    }

    /// Persists a mode change; the epoch must grow with every change.
    async fn set_mode(&self, mode: Mode, epoch: Option<Epoch>) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        self.fenced(&mut tx).await?;
        self.wrote(sqlx::query(
            "UPDATE instance SET mode = ?, epoch = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = 1",
        )
        .bind(mode.name())
        .bind(i64::try_from(Epoch::to_wire(epoch)).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?);
        tx.commit().await?;
        Ok(())
    }

    /// Records the ids workers were registered under (none: not registered), in one
    /// transaction.
    async fn set_registered_ids(&self, ids: &[(String, Option<String>)]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        self.fenced(&mut tx).await?;
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
    async fn add_nodes(&self, nodes: &[NodeSpec]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        self.fenced(&mut tx).await?;
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
    async fn remove_node(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        self.fenced(&mut tx).await?;
        self.wrote(
            sqlx::query("DELETE FROM nodes WHERE name = ?")
                .bind(name)
                .execute(&mut *tx)
                .await?,
        );
        tx.commit().await?;
        Ok(())
    }

    /// Forgets the inventory after `delete`. The epoch keeps growing: an agent must never take a
    /// later instance's mode for an older one's.
    async fn forget(&self, epoch: Epoch) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        self.fenced(&mut tx).await?;
        self.wrote(sqlx::query("DELETE FROM nodes").execute(&mut *tx).await?);
        self.wrote(
            sqlx::query(
                "UPDATE instance SET name = '', mode = 'uninstalled', epoch = ? WHERE id = 1",
            )
            .bind(i64::try_from(Epoch::to_wire(epoch.into())).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?,
        );
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &std::path::Path) -> u32 {
        std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn the_store_file_is_readable_by_its_owner_only() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("coordinator.db");
        let url = format!("sqlite://{}", path.display());
        let store = crate::store::Store::open(&url)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode(&path), 0o600);
        let wal = dir.path().join("coordinator.db-wal");
        if wal.exists() {
            assert_eq!(mode(&wal), 0o600);
        }
        drop(store);

        // One made readable by others before is made private when opened.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("{e}"));
        let _store = crate::store::Store::open(&url)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode(&path), 0o600);
    }
}
