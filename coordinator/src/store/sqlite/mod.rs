//! The store in SQLite (the embedded default; any URL sqlx's SQLite driver takes).

use std::str::FromStr;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::shared::{self, Dialect, Durability, Rows, Script, Sql, Stmt};
use super::{Fence, StoreError, WriteCounters, rows};

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

/// SQLite's spelling of the statements the dialects disagree on.
static DIALECT: Dialect = Dialect {
    next_job_seq: "SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM jobs",
    job_state_for_update: "SELECT state FROM jobs WHERE id = ?",
    upsert_job_node: "INSERT INTO job_nodes (job_id, node, state, detail, error) \
         VALUES (?, ?, ?, ?, ?) ON CONFLICT (job_id, node) DO UPDATE SET state = excluded.state, \
         detail = excluded.detail, error = excluded.error",
    last_log_seq: "SELECT COALESCE(MAX(seq), 0) AS last FROM job_logs WHERE job_id = ?",
    declare_instance: "INSERT INTO instance (id, name, mode, epoch, services) \
         VALUES (1, ?, ?, 0, ?) \
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, services = excluded.services, \
         updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
    set_epoch: "UPDATE instance SET epoch = ?, \
         updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = 1",
    set_mode: "UPDATE instance SET mode = ?, epoch = ?, \
         updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = 1",
    next_node_position: "SELECT COALESCE(MAX(position), -1) + 1 AS next FROM nodes",
    add_node: "INSERT INTO nodes (name, role, agent, position) VALUES (?, ?, ?, ?) \
         ON CONFLICT (name) DO NOTHING",
    now_ms: "SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) AS now_ms",
    lease_for_update: rows::LEASE_SQL,
    upsert_lease: "INSERT INTO leader_lease (id, holder, incarnation, address, token, \
         expires_at_ms) VALUES (1, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET \
         holder = excluded.holder, incarnation = excluded.incarnation, \
         address = excluded.address, token = excluded.token, \
         expires_at_ms = excluded.expires_at_ms",
    upsert_coordinator: "INSERT INTO coordinators (id, address, last_seen_ms, incarnation, \
         migrations) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET \
         address = excluded.address, last_seen_ms = excluded.last_seen_ms, \
         incarnation = excluded.incarnation, migrations = excluded.migrations",
};

#[async_trait::async_trait]
impl Sql for SqliteStore {
    fn dialect(&self) -> &'static Dialect {
        &DIALECT
    }

    fn is_open(&self) -> bool {
        !self.pool.is_closed()
    }

    async fn read(&self, reads: &[Stmt]) -> Result<Vec<Rows>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        shared::read_all(&mut *conn, reads).await
    }

    async fn transact<T: Send>(&self, script: &Script<'_, T>) -> Result<(T, Vec<u64>), StoreError> {
        let mut tx = match script.durability {
            Durability::Full => self.begin_write().await?,
            Durability::Progress => self.begin_progress().await?,
        };
        let done = shared::run(&mut *tx, script, &self.fence, &self.writes).await?;
        tx.commit().await?;
        Ok(done)
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
