//! What the agent reads from its local database: readiness, server version, the worker's id and
//! each module's schema version with smig's semantics.

use qserv_migrations::{Module, SchemaVersion, version_from_probe};
use qserv_model::{RegistryRow, Role, SchemaState};
use sqlx::AssertSqlSafe;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{ConnectOptions, Connection, Row};

use crate::database::activity::Activity;
use crate::database::bookkeeping::read_state;
use crate::database::connection::{CHECK_TIMEOUT, DbError, query_err};

/// Modules whose migration is running in this process right now. A script recorded as in
/// progress while its module is not in here was interrupted (agent crash, lost server) and the
/// database counts as dirty.
pub type ActiveMigrations = std::sync::Arc<std::sync::Mutex<std::collections::HashSet<Module>>>;

/// The result of one successful round of checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub server_version: String,
    pub worker_id: Option<String>,
    /// repl: the rows of `qservReplica.config_worker`.
    pub registry: Vec<RegistryRow>,
    pub modules: Vec<SchemaState>,
    /// czar and repl: queries and ingests in flight.
    pub activity: Activity,
}

/// The admin connection to the local database, reopened when it breaks.
pub struct LocalDb {
    options: MySqlConnectOptions,
    conn: Option<MySqlConnection>,
    active: ActiveMigrations,
}

impl LocalDb {
    pub fn new(options: MySqlConnectOptions, active: ActiveMigrations) -> LocalDb {
        // Statement logging would put SQL text (later: rendered migrations) in the logs.
        LocalDb {
            options: options.disable_statement_logging(),
            conn: None,
            active,
        }
    }

    /// Runs one round of checks for the modules of `role`; on any failure the connection is
    /// dropped so the next round starts from a fresh one.
    pub async fn observe(&mut self, modules: &[Module]) -> Result<Observation, DbError> {
        let result = tokio::time::timeout(CHECK_TIMEOUT, self.observe_inner(modules)).await;
        let result = result.unwrap_or(Err(DbError::Timeout(CHECK_TIMEOUT)));
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    async fn observe_inner(&mut self, modules: &[Module]) -> Result<Observation, DbError> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            slot => slot.insert(
                MySqlConnection::connect_with(&self.options)
                    .await
                    .map_err(|e| DbError::Connect(e.to_string()))?,
            ),
        };
        let row = sqlx::query("SELECT 1, VERSION()")
            .fetch_one(&mut *conn)
            .await
            .map_err(query_err)?;
        let server_version: String = row.try_get(1).map_err(query_err)?;
        let mut observed = Vec::with_capacity(modules.len());
        let mut worker_id = None;
        let mut registry = Vec::new();
        let mut activity = Activity::default();
        for &module in modules {
            let probe = probe_module(conn, module).await?;
            let has = |t: &str| probe.tables.iter().any(|name| name == t);
            let version = probe.version;
            if module == Module::Worker && has("Id") {
                worker_id = sqlx::query_scalar::<_, String>(
                    "SELECT id FROM qservw_worker.Id ORDER BY created, id LIMIT 1",
                )
                .fetch_optional(&mut *conn)
                .await
                .map_err(query_err)?;
            }
            if module == Module::Repl && has("config_worker") {
                let rows = sqlx::query(
                    "SELECT name, is_enabled <> 0, is_read_only <> 0 FROM qservReplica.config_worker ORDER BY name",
                )
                .fetch_all(&mut *conn)
                .await
                .map_err(query_err)?;
                for row in rows {
                    registry.push(RegistryRow {
                        name: row.try_get(0).map_err(query_err)?,
                        is_enabled: row.try_get::<i64, _>(1).map_err(query_err)? != 0,
                        is_read_only: row.try_get::<i64, _>(2).map_err(query_err)? != 0,
                    });
                }
            }
            if module == Module::Czar && has("QInfo") {
                activity.queries = Some(crate::database::activity::executing_queries(conn).await?);
            }
            if module == Module::Repl && has("transaction") {
                activity.transactions =
                    Some(crate::database::activity::open_transactions(conn).await?);
            }
            let migrating = self
                .active
                .lock()
                .map(|a| a.contains(&module))
                .unwrap_or(false);
            let reason = read_state(conn, module).await?.dirty_reason(migrating);
            observed.push(SchemaState {
                module,
                version,
                dirty: reason.is_some(),
                dirty_reason: reason.unwrap_or_default(),
            });
        }
        Ok(Observation {
            server_version,
            worker_id,
            registry,
            modules: observed,
            activity,
        })
    }
}

/// What smig needs to know of a module's database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleProbe {
    pub exists: bool,
    /// Which of QMetadata, Id, config_worker, QInfo and transaction exist.
    pub tables: Vec<String>,
    pub version: SchemaVersion,
}

/// Reads a module's schema version with smig's semantics.
pub async fn probe_module(
    conn: &mut MySqlConnection,
    module: Module,
) -> Result<ModuleProbe, DbError> {
    let tables = tables_of(conn, module.database()).await?;
    let has_qmetadata = tables.iter().any(|t| t == "QMetadata");
    let exists = !tables.is_empty() || database_exists(conn, module.database()).await?;
    let version_row = if has_qmetadata {
        let sql = format!(
            "SELECT value FROM `{}`.QMetadata WHERE metakey = 'version'",
            module.database()
        );
        sqlx::query_scalar::<_, Option<String>>(AssertSqlSafe(sql))
            .fetch_optional(&mut *conn)
            .await
            .map_err(query_err)?
            .flatten()
    } else {
        None
    };
    let version = version_from_probe(exists, has_qmetadata, version_row.as_deref())
        .map_err(|e| DbError::Query(format!("{}: {e}", module.database())))?;
    Ok(ModuleProbe {
        exists,
        tables,
        version,
    })
}

/// Tables of interest in `database`; empty when the database is missing or holds none of them.
async fn tables_of(conn: &mut MySqlConnection, database: &str) -> Result<Vec<String>, DbError> {
    // Both columns constant lets MariaDB answer from the one directory, not by opening every
    // table of the server (workers hold many thousands of chunk tables).
    let rows = sqlx::query(
        "SELECT TABLE_NAME FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN ('QMetadata', 'Id', 'config_worker', 'QInfo', 'transaction')",
    )
    .bind(database)
    .fetch_all(&mut *conn)
    .await
    .map_err(query_err)?;
    rows.iter()
        .map(|row| row.try_get::<String, _>(0).map_err(query_err))
        .collect()
}

async fn database_exists(conn: &mut MySqlConnection, database: &str) -> Result<bool, DbError> {
    let found: Option<String> = sqlx::query_scalar(
        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
    )
    .bind(database)
    .fetch_optional(&mut *conn)
    .await
    .map_err(query_err)?;
    Ok(found.is_some())
}

/// A short reason for `/readyz`, which anyone who reaches the HTTP port can read: never the
/// server's own text (it names users, hosts and statements).
pub fn readiness_reason(error: &str) -> &'static str {
    let has = |needle: &str| error.contains(needle);
    if has("1045") || has("1044") || has("Access denied") {
        "access denied"
    } else if has("no answer within") {
        "database not answering in time"
    } else if has("cannot connect")
        || has("error communicating")
        || has("onnection")
        || has("os error")
        || has("2006")
        || has("2013")
    {
        "database unreachable"
    } else {
        "database check failed"
    }
}

/// The modules whose databases live beside an agent of this role.
pub fn modules_of(role: Role) -> Vec<Module> {
    vec![role.module()]
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn readiness_reasons_say_little() {
        assert_eq!(
            readiness_reason(
                "cannot connect: error returned from database: 1045 (28000): Access denied for user 'root'@'localhost'"
            ),
            "access denied"
        );
        assert_eq!(
            readiness_reason(
                "cannot connect: error communicating with database: Connection refused (os error 111)"
            ),
            "database unreachable"
        );
        assert_eq!(
            readiness_reason(&DbError::Timeout(Duration::from_secs(2)).to_string()),
            "database not answering in time"
        );
        assert_eq!(
            readiness_reason("query failed: Table 'x' doesn't exist"),
            "database check failed"
        );
    }
}
