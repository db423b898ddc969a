//! The migration applier: brings a module's database to its target with smig's semantics, one
//! statement at a time, recording in the agent's own bookkeeping where it is so that a failure
//! or a crash leaves a database marked dirty instead of silently half-migrated.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use qserv_migrations::{
    Module, PlannedScript, Received, SchemaVersion, Shipment, ShipmentError, Statement, render,
    split_statements,
};
use qserv_model::Role;
use sqlx::AssertSqlSafe;
use sqlx::Connection;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};

use crate::database::admin::ensure_account;
use crate::database::bookkeeping::{self, SchemaState, read_state};
use crate::database::connection::{DbError, error_code, query_err};
use crate::database::local::{ActiveMigrations, modules_of, probe_module};
use crate::database::session::migration_session;
use crate::node::secrets::{Secrets, SecretsError};

/// How long a migration waits for another migrator's lock on the same database.
const LOCK_WAIT_SECONDS: i64 = 10;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Shipment(#[from] ShipmentError),
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
    script: PlannedScript,
    statements: Vec<Statement>,
    /// Each statement's line in the script as written (the template's own line for a
    /// `.sql.jinja`), which is what an operator can look up.
    source_lines: Vec<usize>,
}

pub struct Request {
    pub shipment: Shipment,
    pub origin: Origin,
}

/// Which job asked, and who: recorded with every applied script.
pub struct Origin {
    pub job_id: String,
    pub requested_by: String,
}

pub struct RepairRequest {
    pub module: Module,
    pub version: i64,
    /// The highest version the coordinator's migrations reach for the module.
    pub max_version: Option<i64>,
    pub force: bool,
    pub reason: String,
    pub job_id: String,
    pub requested_by: String,
}

pub struct Migrator {
    options: MySqlConnectOptions,
    secrets: Arc<Secrets>,
    role: Role,
    active: ActiveMigrations,
    running: tokio::sync::Mutex<HashMap<Module, Arc<tokio::sync::Mutex<()>>>>,
    /// `qserv_agent` was brought to this build's schema by this process (and not purged since):
    /// later calls skip the migrator's round trips.
    bookkeeping_ready: AtomicBool,
}

/// Marks a module as migrating for as long as it lives: a task that ends any way at all, a
/// panic included, never leaves the module in the active set (which would hide an interrupted
/// script from status).
struct ActiveGuard {
    active: ActiveMigrations,
    module: Module,
}

impl ActiveGuard {
    fn enter(active: &ActiveMigrations, module: Module) -> ActiveGuard {
        if let Ok(mut set) = active.lock() {
            set.insert(module);
        }
        ActiveGuard {
            active: active.clone(),
            module,
        }
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        // A poisoned lock still holds the set; clear the module either way.
        let mut set = match self.active.lock() {
            Ok(set) => set,
            Err(poisoned) => poisoned.into_inner(),
        };
        set.remove(&self.module);
    }
}

/// The per-database lock every migrator of a database takes, this agent's and smig alike.
fn lock_name(module: Module) -> String {
    format!("qserv_migrate.{}", module.database())
}

async fn take_lock(
    conn: &mut MySqlConnection,
    module: Module,
    wait_seconds: i64,
) -> Result<bool, DbError> {
    let locked: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, ?)")
        .bind(lock_name(module))
        .bind(wait_seconds)
        .fetch_one(&mut *conn)
        .await
        .map_err(query_err)?;
    Ok(locked == Some(1))
}

async fn release_lock(conn: &mut MySqlConnection, module: Module) {
    let _ = sqlx::query("SELECT RELEASE_LOCK(?)")
        .bind(lock_name(module))
        .execute(&mut *conn)
        .await;
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
            bookkeeping_ready: AtomicBool::new(false),
        }
    }

    /// Brings the bookkeeping to this build's schema once per process.
    async fn ensure_bookkeeping(&self, conn: &mut MySqlConnection) -> Result<(), DbError> {
        if self.bookkeeping_ready.load(Ordering::SeqCst) {
            return Ok(());
        }
        bookkeeping::ensure(conn, &self.options).await?;
        self.bookkeeping_ready.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// The bookkeeping database is gone (a purge): the next migration creates it again.
    pub fn forget_bookkeeping(&self) {
        self.bookkeeping_ready.store(false, Ordering::SeqCst);
    }

    fn serves(&self, module: Module) -> Result<(), MigrateError> {
        if modules_of(self.role).contains(&module) {
            Ok(())
        } else {
            Err(MigrateError::Refused(format!(
                "this agent serves no {module} database"
            )))
        }
    }

    fn migrating(&self, module: Module) -> bool {
        self.active
            .lock()
            .map(|set| set.contains(&module))
            .unwrap_or(false)
    }

    /// Runs the migration in its own task: once started it completes even if the caller (the
    /// coordinator's RPC) goes away. A second request for the module waits for the first and
    /// then finds the database at target.
    pub async fn migrate(self: &Arc<Self>, request: Request) -> Result<Outcome, MigrateError> {
        let Request { shipment, origin } = request;
        let module = shipment.module;
        self.serves(module)?;
        // Checking every text against its checksum is CPU work: off the async threads.
        let received = tokio::task::spawn_blocking(move || shipment.receive())
            .await
            .map_err(|_| {
                MigrateError::Refused(
                    "checking the scripts stopped on an internal error".to_owned(),
                )
            })??;
        let lock = {
            let mut running = self.running.lock().await;
            running.entry(module).or_default().clone()
        };
        let this = Arc::clone(self);
        let task = tokio::spawn(async move {
            let _serial = lock.lock().await;
            let _active = ActiveGuard::enter(&this.active, module);
            this.run(&received, &origin).await
        });
        match task.await {
            Ok(result) => result,
            Err(err) => {
                // The payload is never shown: it may quote a rendered statement.
                let reason = if err.is_panic() {
                    "the migration task stopped on an internal error; the database may be half-migrated: check it by hand"
                } else {
                    "the migration task was cancelled; the database may be half-migrated: check it by hand"
                };
                tracing::error!(module = %module, "migration task ended abnormally; database marked dirty");
                if let Ok(mut conn) = crate::database::connection::connect(&self.options).await {
                    mark_dirty(&mut conn, module, reason).await;
                    let _ = conn.close().await;
                }
                Err(MigrateError::Failed {
                    database: module.database().to_owned(),
                    reason: reason.to_owned(),
                })
            }
        }
    }

    async fn run(&self, received: &Received, origin: &Origin) -> Result<Outcome, MigrateError> {
        let module = received.module;
        let mut conn = migration_session(&self.options).await?;
        self.ensure_bookkeeping(&mut conn).await?;
        if !take_lock(&mut conn, module, LOCK_WAIT_SECONDS).await? {
            return Err(MigrateError::Refused(format!(
                "another migrator holds the lock on {} (GET_LOCK '{}'); try again when it is done",
                module.database(),
                lock_name(module)
            )));
        }
        let result = self.run_locked(&mut conn, received, origin).await;
        if matches!(result, Err(MigrateError::Db(_))) {
            // Perhaps someone dropped `qserv_agent` by hand: check it again next time.
            self.forget_bookkeeping();
        }
        release_lock(&mut conn, module).await;
        let _ = conn.close().await;
        result
    }

    async fn run_locked(
        &self,
        conn: &mut MySqlConnection,
        received: &Received,
        origin: &Origin,
    ) -> Result<Outcome, MigrateError> {
        let module = received.module;
        let database = module.database();
        let state = read_state(conn, module).await?;
        if let Some(reason) = state.dirty_reason(false) {
            if !state.dirty {
                mark_dirty(conn, module, &reason).await;
            }
            return Err(MigrateError::Refused(SchemaState::refusal(module, &reason)));
        }
        refuse_changed_scripts(conn, received).await?;

        let probed = probe_module(conn, module).await?;
        let from = probed.version;
        // Once the database exists it stays: only a chain that starts without it probes again
        // (the first script creates it).
        let mut exists = probed.exists;
        let plan = received.plan(from)?;
        if plan.is_empty() {
            return Ok(Outcome {
                from,
                to: from,
                applied: Vec::new(),
            });
        }
        // Rendering and splitting a large script takes a while: off the async threads, which
        // must keep answering keepalive pings meanwhile.
        let secrets = Arc::clone(&self.secrets);
        let prepared = tokio::task::spawn_blocking(move || {
            plan.into_iter()
                .map(|script| prepare(&secrets, script))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|_| {
            MigrateError::Refused("preparing the scripts stopped on an internal error".to_owned())
        })??;

        if module == Module::Repl && from.is_none() {
            // smig's replication pre-step: the database and its non-admin account come first.
            let account = self.secrets.account(Role::Repl)?;
            run_sql(conn, "CREATE DATABASE IF NOT EXISTS `qservReplica`").await?;
            ensure_account(conn, &account).await?;
        }

        let mut applied = Vec::with_capacity(prepared.len());
        for prepared in &prepared {
            let script = &prepared.script;
            let started = Instant::now();
            tracing::info!(module = %module, script = %script.file_name, statements = prepared.statements.len(), job = %origin.job_id, "applying migration script");
            if module == Module::Repl || exists || probe_module(conn, module).await?.exists {
                exists = true;
                run_sql(conn, &format!("USE `{database}`")).await?;
            }
            for (statement, line) in prepared.statements.iter().zip(&prepared.source_lines) {
                record_position(
                    conn,
                    module,
                    &script.file_name,
                    statement.index,
                    &origin.job_id,
                )
                .await?;
                if let Err(err) =
                    sqlx::Executor::execute(&mut *conn, AssertSqlSafe(statement.text.clone())).await
                {
                    let error = self.statement_error(&err, script.name.jinja);
                    let reason = format!(
                        "{} statement {} (line {line}) failed: {error}",
                        script.file_name, statement.index,
                    );
                    tracing::error!(module = %module, script = %script.file_name, statement = statement.index, line, error = %error, "migration statement failed");
                    mark_dirty(conn, module, &reason).await;
                    return Err(MigrateError::Failed {
                        database: database.to_owned(),
                        reason,
                    });
                }
            }
            set_version(conn, module, script.name.to)
                .await
                .map_err(|e| MigrateError::Failed {
                    database: database.to_owned(),
                    reason: format!(
                        "cannot record version {} after {}: {e}",
                        script.name.to, script.file_name
                    ),
                })?;
            let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
            finish_script(conn, module, script, duration_ms, origin).await?;
            applied.push(Applied {
                file_name: script.file_name.clone(),
                checksum: script.checksum.clone(),
                duration_ms,
            });
        }
        let to = probe_module(conn, module).await?.version;
        let target = received.target();
        if to != target {
            return Err(MigrateError::Failed {
                database: database.to_owned(),
                reason: format!("version reads {to:?} after migrating, expected {target:?}"),
            });
        }
        Ok(Outcome { from, to, applied })
    }

    /// What may be said of a failed statement. A rendered script may hold secrets, and the
    /// server's message quotes the statement (`near '…'`): only the error's numbers leave. Of
    /// any other script the server's words leave as a bounded excerpt that the coordinator
    /// shows to operators only (see [`qserv_proto::excerpt`]).
    fn statement_error(&self, err: &sqlx::Error, rendered: bool) -> String {
        let code = error_code(err);
        match err.as_database_error() {
            _ if rendered => format!(
                "{code}; the server's message is withheld because the script was rendered with secrets: run the statement by hand to see it"
            ),
            Some(db) => format!(
                "{code}: {}",
                qserv_proto::excerpt::quote(&self.secrets.redact(db.message()))
            ),
            None => qserv_proto::excerpt::quote(&self.secrets.redact(&err.to_string())),
        }
    }

    /// Marks a module database repaired at `version` after an operator fixed it by hand. Takes
    /// the migrators' lock without waiting, so it never races a migration of the module.
    pub async fn repair(&self, request: RepairRequest) -> Result<String, MigrateError> {
        let module = request.module;
        self.serves(module)?;
        if self.migrating(module) {
            return Err(MigrateError::Refused(format!(
                "a migration of {} is running on this node; wait for it to end, then check its outcome",
                module.database()
            )));
        }
        check_repair_version(&request)?;
        let mut conn = migration_session(&self.options).await?;
        self.ensure_bookkeeping(&mut conn).await?;
        if !take_lock(&mut conn, module, 0).await? {
            return Err(MigrateError::Refused(format!(
                "a migration of {} holds its lock (GET_LOCK '{}'); wait for it to end, then check its outcome",
                module.database(),
                lock_name(module)
            )));
        }
        let result = repair_locked(&mut conn, &request).await;
        release_lock(&mut conn, module).await;
        let _ = conn.close().await;
        if result.is_ok() {
            tracing::warn!(module = %module, version = request.version, forced = request.force, repaired_by = %request.requested_by, job = %request.job_id, "database marked repaired");
        }
        result
    }
}

/// Versions a repair may set: smig's versions start at 0, and no migration reaches past target.
fn check_repair_version(request: &RepairRequest) -> Result<(), MigrateError> {
    if request.version < 0 {
        return Err(MigrateError::Refused(format!(
            "version {} is not a schema version; versions start at 0",
            request.version
        )));
    }
    if let Some(target) = request.max_version
        && request.version > target
    {
        return Err(MigrateError::Refused(format!(
            "version {} is above {}'s target {target}; no migration of this release reaches it",
            request.version,
            request.module.database()
        )));
    }
    Ok(())
}

async fn repair_locked(
    conn: &mut MySqlConnection,
    request: &RepairRequest,
) -> Result<String, MigrateError> {
    let module = request.module;
    let state = read_state(conn, module).await?;
    let previous = state.dirty_reason(false);
    if previous.is_none() && !request.force {
        return Err(MigrateError::Refused(format!(
            "{} is not dirty; there is nothing to repair (pass --force to set its version anyway)",
            module.database()
        )));
    }
    let probe = probe_module(conn, module).await?;
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
    set_version(conn, module, request.version).await?;
    sqlx::query(
        "INSERT INTO qserv_agent.schema_state (module, dirty, repaired_by, job_id) VALUES (?, FALSE, ?, ?) \
         ON DUPLICATE KEY UPDATE dirty = FALSE, script = NULL, statement = NULL, error = NULL, \
         repaired_by = VALUES(repaired_by), job_id = VALUES(job_id)",
    )
    .bind(module.name())
    .bind(&request.requested_by)
    .bind(&request.job_id)
    .execute(&mut *conn)
    .await
    .map_err(query_err)?;
    sqlx::query(
        "INSERT INTO qserv_agent.repairs \
         (module, version, forced, reason, previous_error, job_id, repaired_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(module.name())
    .bind(request.version)
    .bind(request.force)
    .bind(&request.reason)
    .bind(previous.as_deref())
    .bind(&request.job_id)
    .bind(&request.requested_by)
    .execute(&mut *conn)
    .await
    .map_err(query_err)?;
    Ok(previous.unwrap_or_default())
}

async fn run_sql(conn: &mut MySqlConnection, sql: &str) -> Result<(), DbError> {
    // `&str` runs through the text protocol, which accepts every statement (DDL, account
    // management, stored programs), unlike prepared statements.
    sqlx::Executor::execute(&mut *conn, AssertSqlSafe(sql.to_owned()))
        .await
        .map_err(query_err)?;
    Ok(())
}

async fn refuse_changed_scripts(
    conn: &mut MySqlConnection,
    received: &Received,
) -> Result<(), MigrateError> {
    let module = received.module;
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT file_name, checksum, CAST(applied_at AS CHAR) FROM qserv_agent.applied_scripts WHERE module = ?",
    )
    .bind(module.name())
    .fetch_all(&mut *conn)
    .await
    .map_err(query_err)?;
    for (file_name, recorded, applied_at) in rows {
        if let Some(now) = received.checksums.get(&file_name)
            && *now != recorded
        {
            return Err(MigrateError::Refused(format!(
                "migration script {module}/{file_name} changed after it was applied on {applied_at} \
                 (checksum {recorded}, now {now}); restore the original script and ship changes as a new migration"
            )));
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
    sqlx::query(AssertSqlSafe(sql))
        .bind(version.to_string())
        .execute(&mut *conn)
        .await
        .map_err(query_err)?;
    Ok(())
}

async fn finish_script(
    conn: &mut MySqlConnection,
    module: Module,
    script: &PlannedScript,
    duration_ms: i64,
    origin: &Origin,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO qserv_agent.applied_scripts \
         (module, file_name, checksum, from_version, to_version, duration_ms, job_id, requested_by) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(module.name())
    .bind(&script.file_name)
    .bind(&script.checksum)
    .bind(script.name.from)
    .bind(script.name.to)
    .bind(duration_ms)
    .bind(&origin.job_id)
    .bind(&origin.requested_by)
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

/// A script rendered (with the secrets, if a template) and split into statements.
fn prepare(secrets: &Secrets, script: PlannedScript) -> Result<Prepared, MigrateError> {
    let text = if script.name.jinja {
        render(
            &script.file_name,
            &script.content,
            secrets.template_context(),
        )
        .map_err(|e| MigrateError::Refused(e.to_string()))?
    } else {
        script.content.clone()
    };
    let statements = split_statements(&text)
        .map_err(|e| MigrateError::Refused(format!("cannot split {}: {e}", script.file_name)))?;
    // Escaped values hold no line breaks, so a rendered statement starts on its template
    // line unless block tags moved it; then the template's own split tells.
    let source_lines = match split_statements(&script.content) {
        Ok(source) if source.len() == statements.len() => source.iter().map(|s| s.line).collect(),
        _ => statements.iter().map(|s| s.line).collect(),
    };
    Ok(Prepared {
        script,
        statements,
        source_lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repair(version: i64, max: Option<i64>) -> RepairRequest {
        RepairRequest {
            module: Module::Worker,
            version,
            max_version: max,
            force: false,
            reason: "fixed by hand".to_owned(),
            job_id: "j".to_owned(),
            requested_by: "op@host".to_owned(),
        }
    }

    #[test]
    fn repair_versions_stay_in_range() {
        assert!(check_repair_version(&repair(-1, Some(3))).is_err());
        assert!(check_repair_version(&repair(4, Some(3))).is_err());
        assert!(check_repair_version(&repair(0, Some(3))).is_ok());
        assert!(check_repair_version(&repair(3, Some(3))).is_ok());
        assert!(check_repair_version(&repair(9, None)).is_ok());
    }

    #[test]
    fn the_guard_clears_the_module_even_on_panic() {
        let active = ActiveMigrations::default();
        let inner = active.clone();
        let result = std::thread::spawn(move || {
            let _guard = ActiveGuard::enter(&inner, Module::Worker);
            panic!("boom");
        })
        .join();
        assert!(result.is_err());
        let set = match active.lock() {
            Ok(set) => set,
            Err(poisoned) => poisoned.into_inner(),
        };
        assert!(set.is_empty());
    }
}
