//! The store's operations, written once for both backends. Each operation is a [`Script`]:
//! reads, then a decision on what they returned that does no I/O, then writes, in one
//! transaction. A backend ([`Sql`]) only runs scripts: SQLite takes its write lock up front,
//! MariaDB runs a script again after a Galera conflict and on another host after a failure.
//! The statements whose text differs between the dialects are in [`Dialect`]; every other
//! statement is shared.

mod audit;
mod config;
mod inventory;
mod jobs;
mod lease;

use sqlx::mysql::MySqlConnection;
use sqlx::sqlite::SqliteConnection;

use super::rows::Columns;
use super::{FENCE_SQL, Fence, StoreError, WriteCounters};

/// A value bound to a statement's next `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bind {
    Int(i64),
    Text(String),
    MaybeText(Option<String>),
    Flag(bool),
}

impl From<i64> for Bind {
    fn from(value: i64) -> Bind {
        Bind::Int(value)
    }
}

impl From<&str> for Bind {
    fn from(value: &str) -> Bind {
        Bind::Text(value.to_owned())
    }
}

impl From<&String> for Bind {
    fn from(value: &String) -> Bind {
        Bind::Text(value.clone())
    }
}

impl From<bool> for Bind {
    fn from(value: bool) -> Bind {
        Bind::Flag(value)
    }
}

impl From<Option<&str>> for Bind {
    fn from(value: Option<&str>) -> Bind {
        Bind::MaybeText(value.map(str::to_owned))
    }
}

/// A count or an index as the store keeps it (a signed integer).
pub(crate) fn int(value: impl TryInto<i64>) -> Bind {
    Bind::Int(value.try_into().unwrap_or(i64::MAX))
}

/// One statement and its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stmt {
    pub sql: &'static str,
    pub binds: Vec<Bind>,
}

pub(crate) fn stmt(sql: &'static str, binds: Vec<Bind>) -> Stmt {
    Stmt { sql, binds }
}

/// A row of either backend, read by column name.
pub(crate) type Row = Box<dyn Columns + Send + Sync>;

/// The rows one read returned.
pub(crate) type Rows = Vec<Row>;

/// How durable a write must be. SQLite flushes every change of a mode, epoch or step, but
/// not each progress line (see `SqliteStore::open`); MariaDB treats both alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    Full,
    Progress,
}

/// What a script writes once its reads are in, and what it answers.
pub(crate) struct Plan<T> {
    pub writes: Vec<Stmt>,
    pub value: T,
}

type Decide<'a, T> = dyn Fn(&[Rows]) -> Result<Plan<T>, StoreError> + Send + Sync + 'a;

/// One write transaction. It may run more than once (after a conflict), so `decide` is a
/// function of the reads alone.
pub(crate) struct Script<'a, T> {
    /// Made only while the lease carries this coordinator's token (see `Fence`).
    pub fenced: bool,
    pub durability: Durability,
    pub reads: Vec<Stmt>,
    pub decide: Box<Decide<'a, T>>,
}

impl Script<'static, ()> {
    /// Writes alone, under the fence.
    pub(crate) fn writes(writes: Vec<Stmt>) -> Script<'static, ()> {
        Script {
            fenced: true,
            durability: Durability::Full,
            reads: Vec::new(),
            decide: Box::new(move |_| {
                Ok(Plan {
                    writes: writes.clone(),
                    value: (),
                })
            }),
        }
    }
}

impl<'a, T> Script<'a, T> {
    /// Reads, then what to write and answer given what they returned; under the fence.
    pub(crate) fn read_then(
        reads: Vec<Stmt>,
        decide: impl Fn(&[Rows]) -> Result<Plan<T>, StoreError> + Send + Sync + 'a,
    ) -> Script<'a, T> {
        Script {
            fenced: true,
            durability: Durability::Full,
            reads,
            decide: Box::new(decide),
        }
    }

    /// Made whoever leads: retention, a lease's claim and release, a spec given at start.
    pub(crate) fn without_fence(mut self) -> Script<'a, T> {
        self.fenced = false;
        self
    }

    pub(crate) fn progress(mut self) -> Script<'a, T> {
        self.durability = Durability::Progress;
        self
    }
}

/// The statements whose text differs between SQLite and MariaDB. A read that a write depends
/// on locks its rows on MariaDB (`FOR UPDATE`), so that a writer through another Galera node
/// conflicts instead of both going through; SQLite's transactions hold the write lock already.
pub(crate) struct Dialect {
    /// One column, `next`: the next job's sequence number.
    pub next_job_seq: &'static str,
    /// One column, `state`: a job's state, before a cancellation decides on it.
    pub job_state_for_update: &'static str,
    /// A node's progress, inserted or replaced.
    pub upsert_job_node: &'static str,
    /// One column, `last`: the sequence number of a job's last log line, 0 for none.
    pub last_log_seq: &'static str,
    /// The instance row, named anew (mode and epoch kept when it exists).
    pub declare_instance: &'static str,
    pub set_epoch: &'static str,
    pub set_mode: &'static str,
    /// One column, `next`: the position after the inventory's last node.
    pub next_node_position: &'static str,
    /// A node appended unless one of its name is there.
    pub add_node: &'static str,
    /// One column, `now_ms`: the store's clock.
    pub now_ms: &'static str,
    /// The lease row, locked until the claim commits.
    pub lease_for_update: &'static str,
    pub upsert_lease: &'static str,
    pub upsert_coordinator: &'static str,
}

/// A store backend: where scripts run.
#[async_trait::async_trait]
pub(crate) trait Sql: Send + Sync + 'static {
    fn dialect(&self) -> &'static Dialect;
    /// The store can still be reached (for `/readyz`).
    fn is_open(&self) -> bool;
    /// Reads outside any transaction, one after the other.
    async fn read(&self, reads: &[Stmt]) -> Result<Vec<Rows>, StoreError>;
    /// Runs `script` in one transaction; its answer, and the rows each write changed.
    async fn transact<T: Send>(&self, script: &Script<'_, T>) -> Result<(T, Vec<u64>), StoreError>;
}

/// A connection of either backend, as a script sees it.
#[async_trait::async_trait]
pub(crate) trait Session: Send {
    async fn fetch(&mut self, stmt: &Stmt) -> Result<Rows, StoreError>;
    /// The rows the write changed.
    async fn execute(&mut self, stmt: &Stmt) -> Result<u64, StoreError>;
}

macro_rules! sessions {
    ($($conn:ty),*) => {$(
        #[async_trait::async_trait]
        impl Session for $conn {
            async fn fetch(&mut self, stmt: &Stmt) -> Result<Rows, StoreError> {
                let rows = bind(sqlx::query(stmt.sql), &stmt.binds).fetch_all(self).await?;
                Ok(rows.into_iter().map(|r| Box::new(r) as Row).collect())
            }

            async fn execute(&mut self, stmt: &Stmt) -> Result<u64, StoreError> {
                let done = bind(sqlx::query(stmt.sql), &stmt.binds).execute(self).await?;
                Ok(done.rows_affected())
            }
        }
    )*};
}

/// Binds `values` to `query`'s `?`s in order, for either backend.
fn bind<'q, DB>(
    query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>,
    values: &'q [Bind],
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
where
    DB: sqlx::Database,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    values.iter().fold(query, |query, value| match value {
        Bind::Int(v) => query.bind(*v),
        Bind::Text(v) => query.bind(v.as_str()),
        Bind::MaybeText(v) => query.bind(v.as_deref()),
        Bind::Flag(v) => query.bind(*v),
    })
}
sessions!(MySqlConnection, SqliteConnection);

/// Reads, one after the other, on `session`.
pub(crate) async fn read_all(
    session: &mut dyn Session,
    reads: &[Stmt],
) -> Result<Vec<Rows>, StoreError> {
    let mut out = Vec::with_capacity(reads.len());
    for read in reads {
        out.push(session.fetch(read).await?);
    }
    Ok(out)
}

/// Runs `script` on `session`, inside the transaction its backend began (and will commit):
/// first, for a fenced script, the write that makes the transaction conditional on this
/// coordinator's term; then the reads, the decision and the writes. Every write is counted in
/// `writes`.
pub(crate) async fn run<T>(
    session: &mut dyn Session,
    script: &Script<'_, T>,
    fence: &Fence,
    writes: &WriteCounters,
) -> Result<(T, Vec<u64>), StoreError> {
    let write = async |session: &mut dyn Session, stmt: &Stmt| {
        let rows = session.execute(stmt).await?;
        writes.statements.inc();
        writes.rows.inc_by(rows);
        Ok::<u64, StoreError>(rows)
    };
    if script.fenced {
        // The lease row is written, not only read, so that Galera certifies it against a
        // concurrent takeover; no row changed means another term holds the lease.
        let token = fence.token();
        if write(session, &stmt(FENCE_SQL, vec![int(token)])).await? == 0 {
            return Err(fence.refused(token));
        }
    }
    let read = read_all(session, &script.reads).await?;
    let plan = (script.decide)(&read)?;
    let mut changed = Vec::with_capacity(plan.writes.len());
    for stmt in &plan.writes {
        changed.push(write(session, stmt).await?);
    }
    Ok((plan.value, changed))
}

/// The first row of a read, if any.
pub(crate) fn first(rows: &[Rows], read: usize) -> Option<&Row> {
    rows.get(read).and_then(|r| r.first())
}

/// The rows of a read.
pub(crate) fn all(rows: &[Rows], read: usize) -> &[Row] {
    rows.get(read).map_or(&[], Vec::as_slice)
}

/// One read's single integer column, which every read of the kind returns.
pub(crate) fn scalar(rows: &[Rows], read: usize, column: &str) -> Result<i64, StoreError> {
    match first(rows, read) {
        Some(row) => Ok(row.int(column)?),
        None => Err(StoreError::Corrupt(format!(
            "a read of '{column}' returned no row"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_decides_the_same_writes_each_time_it_runs() -> Result<(), StoreError> {
        let script = Script::writes(vec![stmt(
            "DELETE FROM nodes WHERE name = ?",
            vec!["wörker-1".into()],
        )]);
        let first = (script.decide)(&[])?;
        let again = (script.decide)(&[])?;
        assert_eq!(first.writes, again.writes);
        assert!(script.fenced && script.durability == Durability::Full);
        let retention = Script::writes(Vec::new()).without_fence().progress();
        assert!(!retention.fenced && retention.durability == Durability::Progress);
        Ok(())
    }

    #[test]
    fn a_read_that_returned_nothing_is_named() {
        let err = scalar(&[Vec::new()], 0, "next")
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("'next'")));
        assert!(first(&[], 3).is_none() && all(&[], 3).is_empty());
    }

    #[test]
    fn counts_bind_as_signed_integers_without_wrapping() {
        assert_eq!(int(7_usize), Bind::Int(7));
        assert_eq!(int(u64::MAX), Bind::Int(i64::MAX));
    }
}
