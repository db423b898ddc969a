//! Write transactions that cannot outlive their failure.
//!
//! sqlx counts a connection's transaction depth itself. When a `COMMIT` fails with
//! `SQLITE_FULL` (a full state disk) SQLite may already have rolled back, the `ROLLBACK` that
//! follows then fails, and the count stays at one: that connection refused every later
//! `BEGIN` ("non-zero transaction depth") or held its lock ("database is locked") until the
//! coordinator was restarted. Here the connection that saw a failure, or was left without a
//! commit, is closed instead of going back to the pool (closing rolls back whatever is open),
//! so the pool opens a fresh one and the store recovers by itself once space is back.

use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{Sqlite, SqliteConnection, SqlitePool};

pub(crate) struct WriteTx {
    conn: PoolConnection<Sqlite>,
    committed: bool,
}

impl WriteTx {
    /// Begins a transaction on a connection of `pool` with `begin` (`BEGIN IMMEDIATE` takes the
    /// write lock up front).
    pub(crate) async fn begin(
        pool: &SqlitePool,
        begin: &'static str,
    ) -> Result<WriteTx, sqlx::Error> {
        let mut conn = pool.acquire().await?;
        if let Err(err) = sqlx::raw_sql(begin).execute(&mut *conn).await {
            conn.close_on_drop();
            return Err(err);
        }
        Ok(WriteTx {
            conn,
            committed: false,
        })
    }

    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        sqlx::raw_sql("COMMIT").execute(&mut *self.conn).await?;
        self.committed = true;
        Ok(())
    }
}

impl Deref for WriteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.conn
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if !self.committed {
            self.conn.close_on_drop();
        }
    }
}
