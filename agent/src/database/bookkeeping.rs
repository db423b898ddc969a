//! The agent's own bookkeeping database (`qserv_agent`): its schema belongs to the migrations
//! crate, and this module is the one reader of a module's migration state, for status and for
//! the refusal to migrate a dirty database alike.

use qserv_migrations::{AGENT_MIGRATOR, Module};
use sqlx::AssertSqlSafe;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{Connection, Row};

use crate::database::connection::{AGENT_DATABASE, DbError, connect, query_err};

/// Brings `qserv_agent` to the schema this build expects; cheap when it is there. `conn` is
/// the caller's session (the database is created there); sqlx's migrator needs the database
/// selected, which a session that runs Qserv's scripts must not have, so it gets its own.
pub async fn ensure(
    conn: &mut MySqlConnection,
    options: &MySqlConnectOptions,
) -> Result<(), DbError> {
    sqlx::Executor::execute(
        &mut *conn,
        AssertSqlSafe(format!("CREATE DATABASE IF NOT EXISTS `{AGENT_DATABASE}`")),
    )
    .await
    .map_err(query_err)?;
    let mut own = connect(&options.clone().database(AGENT_DATABASE)).await?;
    let result = AGENT_MIGRATOR
        .run_direct(None, &mut own, false)
        .await
        .map_err(|e| DbError::Query(format!("cannot migrate {AGENT_DATABASE}: {e}")));
    let _ = own.close().await;
    result
}

/// Where a module's migration stands, as the bookkeeping records it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaState {
    /// Marked dirty by a failed statement (or an interruption found earlier).
    pub dirty: bool,
    pub error: String,
    /// The script and statement a migration recorded before running it; cleared when the
    /// script finished.
    pub in_progress: Option<(String, i64)>,
}

impl SchemaState {
    /// Why the database may not be migrated, or `None` when it is clean. A script left in
    /// progress counts as dirty unless this process is running it right now: a crash or a
    /// lost server may have half-applied its DDL.
    pub fn dirty_reason(&self, migrating: bool) -> Option<String> {
        if self.dirty {
            return Some(self.error.clone());
        }
        match &self.in_progress {
            Some((script, statement)) if !migrating => {
                Some(format!("interrupted in {script} at statement {statement}"))
            }
            _ => None,
        }
    }

    /// The refusal every command that needs a clean database gives.
    pub fn refusal(module: Module, reason: &str) -> String {
        format!(
            "{} is dirty ({reason}); fix it by hand, then run 'qserv upgrade repair NODE --module {module} --version V --reason TEXT'",
            module.database()
        )
    }
}

/// Reads a module's state; clean when the bookkeeping does not exist yet.
pub async fn read_state(
    conn: &mut MySqlConnection,
    module: Module,
) -> Result<SchemaState, DbError> {
    let has_state: Option<String> = sqlx::query_scalar(
        "SELECT TABLE_NAME FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'schema_state'",
    )
    .bind(AGENT_DATABASE)
    .fetch_optional(&mut *conn)
    .await
    .map_err(query_err)?;
    if has_state.is_none() {
        return Ok(SchemaState::default());
    }
    let row = sqlx::query(
        "SELECT dirty, COALESCE(error, ''), script, statement FROM qserv_agent.schema_state WHERE module = ?",
    )
    .bind(module.name())
    .fetch_optional(&mut *conn)
    .await
    .map_err(query_err)?;
    let Some(row) = row else {
        return Ok(SchemaState::default());
    };
    let script: Option<String> = row.try_get(2).map_err(query_err)?;
    let statement: Option<i64> = row.try_get(3).map_err(query_err)?;
    Ok(SchemaState {
        dirty: row.try_get(0).map_err(query_err)?,
        error: row.try_get(1).map_err(query_err)?,
        in_progress: script.map(|s| (s, statement.unwrap_or_default())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interrupted_counts_as_dirty_unless_running_here() {
        let interrupted = SchemaState {
            in_progress: Some(("migrate-1-to-2.sql".to_owned(), 3)),
            ..SchemaState::default()
        };
        assert_eq!(
            interrupted.dirty_reason(false).as_deref(),
            Some("interrupted in migrate-1-to-2.sql at statement 3")
        );
        assert_eq!(interrupted.dirty_reason(true), None);
        let dirty = SchemaState {
            dirty: true,
            error: "x failed".to_owned(),
            in_progress: None,
        };
        assert_eq!(dirty.dirty_reason(true).as_deref(), Some("x failed"));
        assert_eq!(SchemaState::default().dirty_reason(false), None);
    }
}
