//! What every store session sets before its first statement.

use sqlx::mysql::MySqlConnection;

use super::error_number;

/// A transaction that waits 2 s for its coordinator's next statement is rolled back and its
/// session dropped by the server. A coordinator that froze or lost its network in the
/// middle of a transaction would otherwise keep that transaction's locks, the lease row's
/// among them, for as long as the server keeps the silent session (hours): no other
/// coordinator could claim the lease meanwhile. No store transaction waits on anything but
/// the server, so a healthy coordinator never comes near this; a stalled one finds its
/// session gone and runs the transaction again on a new one.
const IDLE_TRANSACTION_LIMIT: &str = "SET SESSION idle_transaction_timeout = 2";

/// Sets up a new session: transactions that fall silent end ([`IDLE_TRANSACTION_LIMIT`]),
/// and reads are causal on Galera.
pub(super) async fn prepare(conn: &mut MySqlConnection) -> Result<(), sqlx::Error> {
    optional(conn, IDLE_TRANSACTION_LIMIT).await?;
    // In Galera a node applies what another committed a moment later. Every statement of
    // the store first waits until this node has applied all that was committed before it
    // (reads, inserts, updates, deletes): a coordinator that moved to another node then sees
    // and references its own last writes, and a follower reads what the leader wrote.
    optional(conn, "SET SESSION wsrep_sync_wait = 7").await
}

/// Runs a `SET SESSION` that a server without the variable (no Galera, or MySQL rather than
/// MariaDB) may not know.
async fn optional(conn: &mut MySqlConnection, statement: &'static str) -> Result<(), sqlx::Error> {
    match sqlx::raw_sql(statement).execute(&mut *conn).await {
        // ER_UNKNOWN_SYSTEM_VARIABLE
        Err(err) if error_number(&err) == Some(1193) => Ok(()),
        done => done.map(|_| ()),
    }
}
