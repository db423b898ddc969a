//! The agent's connections to its local database and how their failures are told: the
//! pieces every module of `database` shares, so that none of them depends on another for them.

use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{ConnectOptions, Connection};

/// The database where the agent keeps its own bookkeeping (migration progress, dirty flags), so
/// that Qserv's own tables carry nothing but Qserv's data.
pub const AGENT_DATABASE: &str = "qserv_agent";

/// How long connecting or one round of checks may take before the database counts as not ready.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("query failed: {0}")]
    Query(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The server's settings make a session unsafe for the work asked.
    #[error("{0}")]
    Session(String),
}

/// A fresh admin connection for an operation (migrations hold session state such as locks and
/// the default database, so they never share the checker's connection).
pub async fn connect(options: &MySqlConnectOptions) -> Result<MySqlConnection, DbError> {
    let options = options.clone().disable_statement_logging();
    tokio::time::timeout(CHECK_TIMEOUT, MySqlConnection::connect_with(&options))
        .await
        .map_err(|_| DbError::Timeout(CHECK_TIMEOUT))?
        .map_err(|e| DbError::Connect(e.to_string()))
}

pub fn query_err(err: sqlx::Error) -> DbError {
    DbError::Query(err.to_string())
}

/// The server's error number and SQLSTATE, without its message: the message quotes the
/// statement, and a statement may hold a password.
pub fn error_code(err: &sqlx::Error) -> String {
    let Some(db) = err.as_database_error() else {
        return "the connection to the server failed".to_owned();
    };
    let number = db
        .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .map(|e| e.number());
    match (number, db.code()) {
        (Some(n), Some(state)) => format!("MariaDB error {n} ({state})"),
        (Some(n), None) => format!("MariaDB error {n}"),
        (None, Some(state)) => format!("SQLSTATE {state}"),
        (None, None) => "MariaDB error".to_owned(),
    }
}
