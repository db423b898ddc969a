//! The migration applier: brings a module's database to its target with smig's semantics, one
//! statement at a time, recording in the agent's own bookkeeping where it is so that a failure
//! or a crash leaves a database marked dirty instead of silently half-migrated.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use qserv_migrations::{
    MigrationError, MigrationSet, Module, SchemaVersion, Statement, checksum, render,
    split_statements,
};
use qserv_proto::v1::Role;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{Connection, Row};

use crate::admin::ensure_account;
use crate::db::{
    AGENT_DATABASE, ActiveMigrations, DbError, connect, modules_of, probe_module, query_err,
};
use crate::secrets::{Secrets, SecretsError};

/// How long to wait for another migrator's lock on the same database.
const LOCK_WAIT_SECONDS: i64 = 10;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Plan(#[from] MigrationError),
    /// The database may not be migrated as it is (dirty, changed script, locked, wrong role).
    #[error("{0}")]
    Refused(String),
    /// A statement failed; the database is now dirty.
    #[error("{database} is dirty: {reason}")]
    Failed { database: String, reason: String },
}

#[derive(Debug, Clone)]
pub struct Applied {
    pub file_name: String,
    pub checksum: String,
    pub duration_ms: i64,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub from: SchemaVersion,
    pub to: SchemaVersion,
    pub applied: Vec<Applied>,
}

/// One prepared script: rendered and split before anything runs, so a template or quoting
/// mistake anywhere in the path changes nothing.
struct Prepared {
    file_name: String,
    checksum: String,
    from: SchemaVersion,
    to: i64,
    statements: Vec<Statement>,
}

pub struct Migrator {
    options: MySqlConnectOptions,
    secrets: Arc<Secrets>,
    role: Role,
    active: ActiveMigrations,
    running: tokio::sync::Mutex<HashMap<Module, Arc<tokio::sync::Mutex<()>>>>,
}

/// Marks a module database repaired at `version` after an operator fixed it by hand: the
/// version row is set, the dirty flag cleared, and who did it recorded.
pub async fn repair(
    options: &MySqlConnectOptions,
    module: Module,
    version: i64,
    job_id: &str,
    who: &str,
) -> Result<String, MigrateError> {
    let mut conn = connect(options).await?;
    ensure_bookkeeping(&mut conn).await?;
    let probe = probe_module(&mut conn, module).await?;
    if !probe.exists {
        return Err(MigrateError::Refused(format!(
            "{} does not exist on this node; there is nothing to repair",
            module.database()
        )));
    }
    if !probe.tables.iter().any(|t| t == "QMetadata") {
        return Err(MigrateError::Refused(format!(
            "{} has no QMetadata table; create it as the migration that owns it would, then repair",
            module.database()
        )));
    }
    let previous: Option<String> = sqlx::query_scalar(
        "SELECT COALESCE(error, script) FROM qserv_agent.schema_state WHERE module = ?",
    )
    .bind(module.name())
    .fetch_optional(&mut conn)
    .await
    .map_err(query_err)?
    .flatten();
    set_version(&mut conn, module, version).await?;
    sqlx::query(
        "INSERT INTO qserv_agent.schema_state (module, dirty, repaired_by, job_id) VALUES (?, FALSE, ?, ?) \
         ON DUPLICATE KEY UPDATE dirty = FALSE, script = NULL, statement = NULL, error = NULL, \
         repaired_by = VALUES(repaired_by), job_id = VALUES(job_id)",
    )
    .bind(module.name())
    .bind(who)
    .bind(job_id)
    .execute(&mut conn)
    .await
    .map_err(query_err)?;
    let _ = conn.close().await;
    tracing::warn!(module = %module, version, repaired_by = who, job = job_id, "database marked repaired");
    Ok(previous.unwrap_or_default())
}

pub struct Request {
    pub module: Module,
    pub scripts: Vec<(String, String)>,
    pub job_id: String,
    pub requested_by: String,
}

impl Migrator {
    pub fn new(
        options: MySqlConnectOptions,
        secrets: Arc<Secrets>,
        role: Role,
        active: ActiveMigrations,
    ) -> Migrator {
        Migrator {
            options,
            secrets,
            role,
            active,
            running: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Runs the migration in its own task: once started it completes even if the caller (the
    /// coordinator's RPC) goes away. A second request for the module waits for the first and
    /// then finds the database at target.
    pub async fn migrate(self: &Arc<Self>, request: Request) -> Result<Outcome, MigrateError> {
        if !modules_of(self.role).contains(&request.module) {
            return Err(MigrateError::Refused(format!(
                "this agent serves no {} database",
                request.module
            )));
        }
        let lock = {
            let mut running = self.running.lock().await;
            running.entry(request.module).or_default().clone()
        };
        let this = Arc::clone(self);
        let task = tokio::spawn(async move {
            let _guard = lock.lock().await;
            let module = request.module;
            if let Ok(mut active) = this.active.lock() {
                active.insert(module);
            }
            let result = this.run(request).await;
            if let Ok(mut active) = this.active.lock() {
                active.remove(&module);
            }
            result
        });
        task.await
            .map_err(|e| MigrateError::Refused(format!("the migration task failed: {e}")))?
    }

    async fn run(&self, mut request: Request) -> Result<Outcome, MigrateError> {
        let module = request.module;
        let set = MigrationSet::for_module(module, std::mem::take(&mut request.scripts))?;
        let mut conn = connect(&self.options).await?;
        let lock_name = format!("qserv_migrate.{}", module.database());
        let locked: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, ?)")
            .bind(&lock_name)
            .bind(LOCK_WAIT_SECONDS)
            .fetch_one(&mut conn)
            .await
            .map_err(query_err)?;
        if locked != Some(1) {
            return Err(MigrateError::Refused(format!(
                "another migrator holds the lock on {} (GET_LOCK '{lock_name}'); try again when it is done",
                module.database()
            )));
        }
        let result = self.run_locked(&mut conn, module, &set, &request).await;
        let _ = sqlx::query("SELECT RELEASE_LOCK(?)")
            .bind(&lock_name)
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
        result
    }

    async fn run_locked(
        &self,
        conn: &mut MySqlConnection,
        module: Module,
        set: &MigrationSet,
        request: &Request,
    ) -> Result<Outcome, MigrateError> {
        let database = module.database();
        ensure_bookkeeping(conn).await?;
        refuse_if_dirty(conn, module).await?;
        refuse_changed_scripts(conn, module, set).await?;

        let from = probe_module(conn, module).await?.version;
        // An uninitialized repl database gets its database and account first (below), after which
        // smig reads it as version 0; a migration set without a None script starts from there.
        let plan_from = if module == Module::Repl
            && from.is_none()
            && !set.scripts(module).iter().any(|s| s.name.from.is_none())
        {
            Some(0)
        } else {
            from
        };
        let plan = set.plan(module, plan_from)?;
        if plan.is_empty() {
            return Ok(Outcome {
                from,
                to: from,
                applied: Vec::new(),
            });
        }
        let mut prepared = Vec::with_capacity(plan.len());
        for script in plan {
            let text = if script.name.jinja {
                render(
                    &script.file_name,
                    &script.content,
                    self.secrets.template_context(),
                )
                .map_err(|e| MigrateError::Refused(e.to_string()))?
            } else {
                script.content.clone()
            };
            let statements = split_statements(&text).map_err(|e| {
                MigrateError::Refused(format!("cannot split {}: {e}", script.file_name))
            })?;
            prepared.push(Prepared {
                file_name: script.file_name.clone(),
                checksum: checksum(&script.content),
                from: script.name.from,
                to: script.name.to,
                statements,
            });
        }

        if module == Module::Repl && from.is_none() {
            // smig's replication pre-step: the database and its non-admin account come first.
            let account = self.secrets.account(Role::Repl)?;
            run_sql(conn, "CREATE DATABASE IF NOT EXISTS `qservReplica`").await?;
            ensure_account(conn, &account).await?;
        }

        let mut applied = Vec::with_capacity(prepared.len());
        for script in &prepared {
            let started = Instant::now();
            tracing::info!(module = %module, script = %script.file_name, statements = script.statements.len(), job = %request.job_id, "applying migration script");
            if module == Module::Repl || probe_module(conn, module).await?.exists {
                run_sql(conn, &format!("USE `{database}`")).await?;
            }
            for statement in &script.statements {
                record_position(
                    conn,
                    module,
                    &script.file_name,
                    statement.index,
                    &request.job_id,
                )
                .await?;
                if let Err(err) = sqlx::Executor::execute(&mut *conn, statement.text.as_str()).await
                {
                    // Only the position is logged: a rendered statement may carry a password.
                    // The server's message can quote the statement, which may hold a password.
                    let error = self.secrets.redact(&server_error(&err));
                    let reason = format!(
                        "{} statement {} (line {}) failed: {error}",
                        script.file_name, statement.index, statement.line,
                    );
                    tracing::error!(module = %module, script = %script.file_name, statement = statement.index, line = statement.line, error = %error, "migration statement failed");
                    mark_dirty(conn, module, &reason).await;
                    return Err(MigrateError::Failed {
                        database: database.to_owned(),
                        reason,
                    });
                }
            }
            set_version(conn, module, script.to)
                .await
                .map_err(|e| MigrateError::Failed {
                    database: database.to_owned(),
                    reason: format!(
                        "cannot record version {} after {}: {e}",
                        script.to, script.file_name
                    ),
                })?;
            let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
            finish_script(conn, module, script, duration_ms, request).await?;
            applied.push(Applied {
                file_name: script.file_name.clone(),
                checksum: script.checksum.clone(),
                duration_ms,
            });
        }
        let to = probe_module(conn, module).await?.version;
        let target = set.target(module);
        if to != target {
            return Err(MigrateError::Failed {
                database: database.to_owned(),
                reason: format!("version reads {to:?} after migrating, expected {target:?}"),
            });
        }
        Ok(Outcome { from, to, applied })
    }
}

fn server_error(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} ({code})", db.message()),
            None => db.message().to_owned(),
        },
        other => other.to_string(),
    }
}

async fn run_sql(conn: &mut MySqlConnection, sql: &str) -> Result<(), DbError> {
    // `&str` runs through the text protocol, which accepts every statement (DDL, account
    // management, stored programs), unlike prepared statements.
    sqlx::Executor::execute(&mut *conn, sql)
        .await
        .map_err(query_err)?;
    Ok(())
}

async fn ensure_bookkeeping(conn: &mut MySqlConnection) -> Result<(), DbError> {
    run_sql(
        conn,
        &format!("CREATE DATABASE IF NOT EXISTS `{AGENT_DATABASE}`"),
    )
    .await?;
    run_sql(
        conn,
        "CREATE TABLE IF NOT EXISTS `qserv_agent`.`schema_state` (
           module VARCHAR(16) NOT NULL PRIMARY KEY,
           dirty BOOLEAN NOT NULL DEFAULT FALSE,
           script VARCHAR(255) NULL COMMENT 'script in progress',
           statement INT NULL COMMENT 'statement in progress, 1-based',
           error TEXT NULL,
           job_id VARCHAR(64) NULL,
           repaired_by VARCHAR(255) NULL,
           updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
         ) ENGINE = InnoDB",
    )
    .await?;
    run_sql(
        conn,
        "CREATE TABLE IF NOT EXISTS `qserv_agent`.`applied_scripts` (
           id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
           module VARCHAR(16) NOT NULL,
           file_name VARCHAR(255) NOT NULL,
           checksum CHAR(64) NOT NULL,
           from_version BIGINT NULL,
           to_version BIGINT NOT NULL,
           duration_ms BIGINT NOT NULL,
           job_id VARCHAR(64) NOT NULL,
           requested_by VARCHAR(255) NOT NULL,
           applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
           KEY (module, file_name)
         ) ENGINE = InnoDB",
    )
    .await
}

/// A dirty database is never migrated further; a script left in progress by a crash or a lost
/// connection counts as dirty too, since its DDL may have half-applied.
async fn refuse_if_dirty(conn: &mut MySqlConnection, module: Module) -> Result<(), MigrateError> {
    let row = sqlx::query(
        "SELECT dirty, script, statement, COALESCE(error, '') FROM qserv_agent.schema_state WHERE module = ?",
    )
    .bind(module.name())
    .fetch_optional(&mut *conn)
    .await
    .map_err(query_err)?;
    let Some(row) = row else { return Ok(()) };
    let dirty: bool = row.try_get(0).map_err(query_err)?;
    let script: Option<String> = row.try_get(1).map_err(query_err)?;
    let statement: Option<i32> = row.try_get(2).map_err(query_err)?;
    let mut error: String = row.try_get(3).map_err(query_err)?;
    if !dirty {
        let Some(script) = script else { return Ok(()) };
        error = format!(
            "interrupted in {script} at statement {}",
            statement.unwrap_or_default()
        );
        mark_dirty(conn, module, &error).await;
    }
    Err(MigrateError::Refused(format!(
        "{} is dirty ({error}); fix it by hand, then run 'qserv upgrade repair NODE --module {module} --version V'",
        module.database()
    )))
}

async fn refuse_changed_scripts(
    conn: &mut MySqlConnection,
    module: Module,
    set: &MigrationSet,
) -> Result<(), MigrateError> {
    let rows = sqlx::query(
        "SELECT file_name, checksum, CAST(applied_at AS CHAR) FROM qserv_agent.applied_scripts WHERE module = ?",
    )
    .bind(module.name())
    .fetch_all(&mut *conn)
    .await
    .map_err(query_err)?;
    for row in rows {
        let file_name: String = row.try_get(0).map_err(query_err)?;
        let recorded: String = row.try_get(1).map_err(query_err)?;
        let applied_at: String = row.try_get(2).map_err(query_err)?;
        if let Some(script) = set
            .scripts(module)
            .iter()
            .find(|s| s.file_name == file_name)
        {
            let now = checksum(&script.content);
            if now != recorded {
                return Err(MigrateError::Refused(format!(
                    "migration script {module}/{file_name} changed after it was applied on {applied_at} \
                     (checksum {recorded}, now {now}); restore the original script and ship changes as a new migration"
                )));
            }
        }
    }
    Ok(())
}

async fn record_position(
    conn: &mut MySqlConnection,
    module: Module,
    script: &str,
    statement: usize,
    job_id: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO qserv_agent.schema_state (module, dirty, script, statement, error, job_id) \
         VALUES (?, FALSE, ?, ?, NULL, ?) \
         ON DUPLICATE KEY UPDATE dirty = FALSE, script = VALUES(script), statement = VALUES(statement), \
         error = NULL, job_id = VALUES(job_id)",
    )
    .bind(module.name())
    .bind(script)
    .bind(i64::try_from(statement).unwrap_or(i64::MAX))
    .bind(job_id)
    .execute(&mut *conn)
    .await
    .map_err(query_err)?;
    Ok(())
}

/// Best effort: when the server itself died, the position recorded before the statement already
/// marks the database as interrupted.
async fn mark_dirty(conn: &mut MySqlConnection, module: Module, reason: &str) {
    let result = sqlx::query(
        "INSERT INTO qserv_agent.schema_state (module, dirty, error) VALUES (?, TRUE, ?) \
         ON DUPLICATE KEY UPDATE dirty = TRUE, error = VALUES(error)",
    )
    .bind(module.name())
    .bind(reason)
    .execute(&mut *conn)
    .await;
    if let Err(err) = result {
        tracing::warn!(module = %module, error = %err, "cannot record the dirty flag; the in-progress marker stands");
    }
}

async fn set_version(
    conn: &mut MySqlConnection,
    module: Module,
    version: i64,
) -> Result<(), DbError> {
    let sql = format!(
        "INSERT INTO `{}`.QMetadata (metakey, value) VALUES ('version', ?) \
         ON DUPLICATE KEY UPDATE value = VALUES(value)",
        module.database()
    );
    sqlx::query(&sql)
        .bind(version.to_string())
        .execute(&mut *conn)
        .await
        .map_err(query_err)?;
    Ok(())
}

async fn finish_script(
    conn: &mut MySqlConnection,
    module: Module,
    script: &Prepared,
    duration_ms: i64,
    request: &Request,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO qserv_agent.applied_scripts \
         (module, file_name, checksum, from_version, to_version, duration_ms, job_id, requested_by) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(module.name())
    .bind(&script.file_name)
    .bind(&script.checksum)
    .bind(script.from)
    .bind(script.to)
    .bind(duration_ms)
    .bind(&request.job_id)
    .bind(&request.requested_by)
    .execute(&mut *conn)
    .await
    .map_err(query_err)?;
    sqlx::query(
        "UPDATE qserv_agent.schema_state SET script = NULL, statement = NULL, error = NULL WHERE module = ?",
    )
    .bind(module.name())
    .execute(&mut *conn)
    .await
    .map_err(query_err)?;
    Ok(())
}
