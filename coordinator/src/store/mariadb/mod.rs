//! The store on MariaDB: one server, or the hosts of one Galera cluster, which several
//! coordinators share. The first host that answers (and, in Galera, is ready for writes) serves
//! every query; when it fails the store moves to the next. A Galera certification conflict (or
//! an InnoDB deadlock) rolled the transaction back, so it runs again.

use std::future::Future;
use std::str::FromStr;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError, MySqlPool, MySqlPoolOptions};
use sqlx::{MySql, Transaction};

use super::shared::{self, Dialect, Rows, Script, Sql, Stmt};
use super::{Fence, StoreError, WriteCounters};

mod migrate;
mod session;

pub use migrate::Unfinished;

/// How long a host may take to give a connection before the store tries the next.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// For how long, from its first run, a transaction that keeps losing conflicts is run again
/// before the error is returned. Each loss means another transaction won, so the store as a
/// whole moves on; a count of runs would not do: on a loaded host, two writers of the same rows
/// through two nodes have seen one of them lose 17 times in a row while the other ran. Wall
/// time rather than the pauses alone, since a lock wait can take the server's whole
/// `innodb_lock_wait_timeout` before it is reported.
const CONFLICT_PATIENCE: Duration = Duration::from_secs(10);
/// Fresh connections a query is given, beyond one per host, after the one it ran on was lost
/// while its host still answers: connections are killed one after another when a server
/// restarts or an administrator kills a user's sessions.
const LOST_CONNECTION_RETRIES: usize = 4;
/// The longest pause before connecting again to hosts that all failed.
const RECONNECT_MAX: Duration = Duration::from_millis(400);

/// Where the store lives and how to log in; the password never appears in a URL or a message.
#[derive(Clone)]
pub struct MariaTarget {
    /// `mysql://USER@HOST:PORT/DB`, one per Galera host.
    pub urls: Vec<String>,
    pub password: Option<String>,
}

pub struct MariaStore {
    hosts: Vec<(String, MySqlConnectOptions)>,
    current: RwLock<InUse>,
    writes: WriteCounters,
    fence: Fence,
}

/// The host in use and its pool. The generation tells a query whose pool was replaced while
/// it ran (and maybe failed only because the old pool closed) from one that found the host
/// failing: the index alone cannot, when the replacement is a new pool to the same host.
#[derive(Clone)]
struct InUse {
    index: usize,
    generation: u64,
    pool: MySqlPool,
}

/// What to do about a failed query.
enum Failure {
    /// The transaction was rolled back by a conflict: run it again on the same host.
    Conflict,
    /// The host cannot serve: move to another.
    Host,
    /// The query itself failed.
    Fatal,
}

fn classify(err: &StoreError) -> Failure {
    let StoreError::Query(err) = err else {
        return Failure::Fatal;
    };
    match err {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // ER_LOCK_DEADLOCK (1213), which is also how Galera reports a certification
            // conflict, and ER_LOCK_WAIT_TIMEOUT (1205).
            Some("40001") => Failure::Conflict,
            Some("HY000") if db.message().contains("Lock wait timeout") => Failure::Conflict,
            // ER_UNKNOWN_COM_ERROR (1047): a Galera node that left the primary component.
            Some("08S01") => Failure::Host,
            _ => Failure::Fatal,
        },
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Failure::Host,
        _ => Failure::Fatal,
    }
}

/// A host's URL without anything secret, for messages.
fn shown(url: &str) -> String {
    url.split_once('?').map_or(url, |(base, _)| base).to_owned()
}

impl MariaStore {
    pub async fn open(
        target: &MariaTarget,
        writes: WriteCounters,
        fence: Fence,
    ) -> Result<MariaStore, StoreError> {
        let mut hosts = Vec::new();
        for url in &target.urls {
            let mut options =
                MySqlConnectOptions::from_str(url).map_err(|source| StoreError::Open {
                    url: shown(url),
                    source,
                })?;
            if let Some(password) = &target.password {
                options = options.password(password);
            }
            // The store's text is compared byte for byte (utf8mb4_bin columns); the session
            // must not convert it.
            options = options.charset("utf8mb4");
            hosts.push((shown(url), options));
        }
        let (index, pool) = connect_any(&hosts, 0).await?;
        migrate::migrate(&pool, &hosts[index].0).await?;
        tracing::info!(host = %hosts[index].0, "store on MariaDB");
        Ok(MariaStore {
            hosts,
            current: RwLock::new(InUse {
                index,
                generation: 0,
                pool,
            }),
            writes,
            fence,
        })
    }

    fn now(&self) -> InUse {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs `op` (one transaction, or one statement) on the host in use: again after a
    /// conflict, and on the next host that answers when this one fails.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn(MySqlPool) -> Fut + Send + Sync,
        Fut: Future<Output = Result<T, StoreError>> + Send,
        T: Send,
    {
        let mut conflicts = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(5))
            .with_max_delay(Duration::from_millis(200))
            .with_jitter()
            .without_max_times()
            .build();
        let first_run = std::time::Instant::now();
        let mut reconnect = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(RECONNECT_MAX)
            .with_jitter()
            .without_max_times()
            .build();
        let mut moves = 0;
        let mut replaced = 0;
        loop {
            let used = self.now();
            let err = match op(used.pool.clone()).await {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            match classify(&err) {
                Failure::Fatal => return Err(err),
                Failure::Conflict => match conflicts
                    .next()
                    .filter(|_| first_run.elapsed() < CONFLICT_PATIENCE)
                {
                    Some(delay) => {
                        self.writes.conflicts.inc();
                        tracing::debug!(error = %err, "store transaction conflicted; running it again");
                        tokio::time::sleep(delay).await;
                    }
                    None => return Err(err),
                },
                Failure::Host => {
                    // Another query moved on while this one ran: try its pool first.
                    if self.now().generation != used.generation && replaced < self.hosts.len() {
                        replaced += 1;
                        continue;
                    }
                    moves += 1;
                    if moves > self.hosts.len() + LOST_CONNECTION_RETRIES {
                        return Err(err);
                    }
                    tracing::warn!(host = %self.hosts[used.index].0, error = %err, "store host failed; trying the others");
                    let (next, pool) = match connect_any(&self.hosts, used.index + 1).await {
                        Ok(found) => found,
                        // A new session can be killed as it starts, as the old ones were.
                        Err(_) if moves < self.hosts.len() + LOST_CONNECTION_RETRIES => {
                            tokio::time::sleep(reconnect.next().unwrap_or(RECONNECT_MAX)).await;
                            continue;
                        }
                        Err(unreachable) => return Err(unreachable),
                    };
                    self.writes.failovers.inc();
                    let unused = {
                        let mut current =
                            self.current.write().unwrap_or_else(PoisonError::into_inner);
                        if current.generation == used.generation {
                            let next = InUse {
                                index: next,
                                generation: used.generation + 1,
                                pool,
                            };
                            std::mem::replace(&mut *current, next).pool
                        } else {
                            // Another query moved on meanwhile; its choice stands.
                            pool
                        }
                    };
                    tokio::spawn(async move { unused.close().await });
                }
            }
        }
    }
}

/// The first host from `start` on (wrapping) that gives a connection and, in Galera, is ready.
async fn connect_any(
    hosts: &[(String, MySqlConnectOptions)],
    start: usize,
) -> Result<(usize, MySqlPool), StoreError> {
    let mut last = None;
    for offset in 0..hosts.len() {
        let index = (start + offset) % hosts.len();
        let (url, options) = &hosts[index];
        let pool = MySqlPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(|conn, _| Box::pin(session::prepare(conn)))
            .connect_lazy_with(options.clone());
        match ready(&pool).await {
            Ok(()) => return Ok((index, pool)),
            Err(err) => {
                tracing::warn!(host = %url, error = %err, "store host not usable");
                last = Some(StoreError::Unreachable {
                    url: url.clone(),
                    reason: err.to_string(),
                });
            }
        }
    }
    Err(last.unwrap_or(StoreError::Unreachable {
        url: String::new(),
        reason: "no store host given".to_owned(),
    }))
}

/// Begins a transaction on a connection from `pool`, in a task of its own. A BEGIN can wait
/// (for Galera to form a new view after a node died); a caller dropped meanwhile would leave
/// the session inside a transaction the pool does not know about, and every later read
/// through it would see the snapshot of that moment. The task lets the BEGIN finish, and a
/// transaction nobody took is rolled back when it drops there.
async fn begin(pool: &MySqlPool) -> Result<Transaction<'static, MySql>, sqlx::Error> {
    let pool = pool.clone();
    tokio::spawn(async move { pool.begin().await })
        .await
        .map_err(|_| sqlx::Error::WorkerCrashed)?
}

/// The server's error number of a failed statement.
fn error_number(err: &sqlx::Error) -> Option<u16> {
    let sqlx::Error::Database(db) = err else {
        return None;
    };
    db.try_downcast_ref::<MySqlDatabaseError>()
        .map(MySqlDatabaseError::number)
}

/// The host answers and, when it is a Galera node, is part of the primary component.
async fn ready(pool: &MySqlPool) -> Result<(), sqlx::Error> {
    let setting = |name: &'static str, show: &'static str| async move {
        let row: Option<(String, String)> = sqlx::query_as(show).fetch_optional(pool).await?;
        Ok::<bool, sqlx::Error>(row.is_some_and(|(key, value)| {
            key.eq_ignore_ascii_case(name) && value.eq_ignore_ascii_case("ON")
        }))
    };
    if !setting("wsrep_on", "SHOW GLOBAL VARIABLES LIKE 'wsrep_on'").await? {
        return Ok(());
    }
    if setting("wsrep_ready", "SHOW GLOBAL STATUS LIKE 'wsrep_ready'").await? {
        Ok(())
    } else {
        Err(sqlx::Error::Protocol(
            "the Galera node is not ready for writes (wsrep_ready is OFF)".to_owned(),
        ))
    }
}

/// MariaDB's spelling of the statements the dialects disagree on.
static DIALECT: Dialect = Dialect {
    next_job_seq: "SELECT CAST(COALESCE(MAX(seq), 0) + 1 AS SIGNED) AS next FROM jobs FOR UPDATE",
    job_state_for_update: "SELECT state FROM jobs WHERE id = ? FOR UPDATE",
    upsert_job_node: "INSERT INTO job_nodes (job_id, node, state, detail, error) \
         VALUES (?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE state = VALUES(state), \
         detail = VALUES(detail), error = VALUES(error)",
    last_log_seq: "SELECT CAST(COALESCE(MAX(seq), 0) AS SIGNED) AS last FROM job_logs \
         WHERE job_id = ?",
    declare_instance: "INSERT INTO instance (id, name, mode, epoch, services) \
         VALUES (1, ?, ?, 0, ?) ON DUPLICATE KEY UPDATE name = VALUES(name), \
         services = VALUES(services), updated_at = CURRENT_TIMESTAMP(3)",
    set_epoch: "UPDATE instance SET epoch = ?, updated_at = CURRENT_TIMESTAMP(3) WHERE id = 1",
    set_mode: "UPDATE instance SET mode = ?, epoch = ?, updated_at = CURRENT_TIMESTAMP(3) \
         WHERE id = 1",
    next_node_position: "SELECT CAST(COALESCE(MAX(position), -1) + 1 AS SIGNED) AS next \
         FROM nodes FOR UPDATE",
    add_node: "INSERT IGNORE INTO nodes (name, role, agent, position) VALUES (?, ?, ?, ?)",
    now_ms: "SELECT CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) AS now_ms",
    lease_for_update: "SELECT holder, incarnation, address, token, expires_at_ms \
         FROM leader_lease WHERE id = 1 FOR UPDATE",
    upsert_lease: "INSERT INTO leader_lease (id, holder, incarnation, address, token, \
         expires_at_ms) VALUES (1, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE \
         holder = VALUES(holder), incarnation = VALUES(incarnation), \
         address = VALUES(address), token = VALUES(token), \
         expires_at_ms = VALUES(expires_at_ms)",
    upsert_coordinator: "INSERT INTO coordinators (id, address, last_seen_ms, incarnation, \
         migrations) VALUES (?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE \
         address = VALUES(address), last_seen_ms = VALUES(last_seen_ms), \
         incarnation = VALUES(incarnation), migrations = VALUES(migrations)",
};

#[async_trait::async_trait]
impl Sql for MariaStore {
    fn dialect(&self) -> &'static Dialect {
        &DIALECT
    }

    fn is_open(&self) -> bool {
        !self.now().pool.is_closed()
    }

    async fn read(&self, reads: &[Stmt]) -> Result<Vec<Rows>, StoreError> {
        self.run(|pool| async move {
            let mut conn = pool.acquire().await?;
            shared::read_all(&mut *conn, reads).await
        })
        .await
    }

    /// Runs again, whole, after a conflict; on another host when this one fails.
    async fn transact<T: Send>(&self, script: &Script<'_, T>) -> Result<(T, Vec<u64>), StoreError> {
        self.run(|pool| async move {
            let mut tx = begin(&pool).await?;
            let done = shared::run(&mut *tx, script, &self.fence, &self.writes).await?;
            tx.commit().await?;
            Ok(done)
        })
        .await
    }
}
