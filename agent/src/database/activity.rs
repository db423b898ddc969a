//! Work in flight through Qserv on this node: queries the czar executes, ingest transactions
//! the replication system holds open. Stopping the services under either breaks it (a
//! transaction left in `STARTED` cannot be finished), so `down` and `restart` ask first.

use sqlx::Row;
use sqlx::mysql::MySqlConnection;

use crate::database::connection::{DbError, query_err};

pub use qserv_model::{Activity, Count};

/// `QInfo` has an index on `status`, so this reads the executing rows only, however many
/// finished queries the table keeps. Ids are cast to one signed type (queryId is BIGINT,
/// transaction.id INT UNSIGNED).
const EXECUTING_QUERIES: &str = "SELECT COUNT(*), CAST(MIN(queryId) AS SIGNED) \
     FROM qservMeta.QInfo WHERE status = 'EXECUTING'";

/// `transaction` has an index on `state`.
const OPEN_TRANSACTIONS: &str = "SELECT COUNT(*), CAST(MIN(id) AS SIGNED) \
     FROM qservReplica.`transaction` \
     WHERE state IN ('IS_STARTING', 'STARTED', 'IS_FINISHING', 'IS_ABORTING')";

pub async fn executing_queries(conn: &mut MySqlConnection) -> Result<Count, DbError> {
    count(conn, EXECUTING_QUERIES).await
}

pub async fn open_transactions(conn: &mut MySqlConnection) -> Result<Count, DbError> {
    count(conn, OPEN_TRANSACTIONS).await
}

async fn count(conn: &mut MySqlConnection, sql: &'static str) -> Result<Count, DbError> {
    let row = sqlx::query(sql)
        .fetch_one(&mut *conn)
        .await
        .map_err(query_err)?;
    let open: i64 = row.try_get(0).map_err(query_err)?;
    let oldest: Option<i64> = row.try_get(1).map_err(query_err)?;
    Ok(Count {
        open: u64::try_from(open).unwrap_or(0),
        oldest: oldest.and_then(|v| u64::try_from(v).ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The states of `qservReplica.transaction` in which an ingest is open (Qserv's names).
    const OPEN_TRANSACTION_STATES: [&str; 4] =
        ["IS_STARTING", "STARTED", "IS_FINISHING", "IS_ABORTING"];

    #[test]
    fn the_states_counted_are_the_ones_the_query_names() {
        for state in OPEN_TRANSACTION_STATES {
            assert!(OPEN_TRANSACTIONS.contains(&format!("'{state}'")), "{state}");
        }
        assert!(!OPEN_TRANSACTIONS.contains("'FINISHED'"));
    }
}
