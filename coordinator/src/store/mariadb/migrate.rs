//! Brings the MariaDB store to schema, and finishes a migration that was interrupted.
//!
//! DDL commits on its own in MariaDB, so sqlx records a migration as begun before running it and
//! as done after. One that fails in between (a Galera certification conflict aborting its DDL,
//! two coordinators starting together on different Galera nodes, a coordinator killed half-way)
//! stays marked as begun, and sqlx refuses to go on until someone edits `_sqlx_migrations` by
//! hand. The store's migrations only create tables, indexes and columns, so such a migration is
//! finished here instead: each of its statements runs again, and "already exists" means that
//! statement had run.

use std::time::Duration;

use sqlx::migrate::{MigrateError, Migration};
use sqlx::mysql::{MySqlConnection, MySqlPool};
use sqlx::{Connection, Row};

use super::{StoreError, error_number};

/// Runs of the migrator before a failure stops the coordinator.
const ATTEMPTS: usize = 5;
/// Runs of the migrator while other coordinators migrate the same store at once.
const CONTENDED_ATTEMPTS: usize = 25;
/// Serializes finishing an interrupted migration among coordinators on one server.
const LOCK: &str = "qserv_store_finish_migration";

/// Serializes bringing the store to schema among coordinators on one server: without it, one
/// that starts while another migrates takes that migration for an interrupted one. (Galera
/// nodes hold such locks each for themselves; there, the runs conflict and are run again.)
const MIGRATE_LOCK: &str = "qserv_store_migrate";

/// Applies every store migration not yet applied, finishing an interrupted one first.
pub(super) async fn migrate(pool: &MySqlPool, url: &str) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT GET_LOCK(?, 60)")
        .bind(MIGRATE_LOCK)
        .execute(&mut *conn)
        .await?;
    let migrated = migrate_locked(pool, url).await;
    let released = sqlx::query("SELECT RELEASE_LOCK(?)")
        .bind(MIGRATE_LOCK)
        .execute(&mut *conn)
        .await;
    migrated?;
    released?;
    Ok(())
}

async fn migrate_locked(pool: &MySqlPool, url: &str) -> Result<(), StoreError> {
    let migrator = &qserv_migrations::STORE_MYSQL_MIGRATOR;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let failed = match migrator.run(pool).await {
            Ok(()) => return Ok(()),
            Err(MigrateError::Dirty(version)) => {
                match finish(pool, migrator.iter().find(|m| m.version == version)).await {
                    Ok(()) => continue,
                    // Running again would meet the same statement.
                    Err(err @ StoreError::Unfinished(_)) => return Err(err),
                    Err(err) => err,
                }
            }
            Err(source) if attempt < CONTENDED_ATTEMPTS && contended(&source) => {
                // Two coordinators starting together on an empty store: the other recorded
                // the same migration first (1062), or won the lock or certification (1213).
                tracing::info!(error = %source, attempt, "another coordinator is bringing the store to schema at the same time; reading it again");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(source) => StoreError::Migrate {
                url: url.to_owned(),
                source,
            },
        };
        if attempt >= ATTEMPTS {
            return Err(failed);
        }
        tracing::warn!(error = %failed, attempt, "bringing the store to schema failed; trying again");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Whether a migrator run failed because another coordinator ran it at the same time.
fn contended(err: &MigrateError) -> bool {
    let (MigrateError::Execute(err) | MigrateError::ExecuteMigration(err, _)) = err else {
        return false;
    };
    error_number(err).is_some_and(|n| matches!(n, 1062 | 1213))
}

/// Why an interrupted migration could not be finished.
#[derive(Debug, thiserror::Error)]
pub enum Unfinished {
    #[error(
        "store migration {0} was begun by a coordinator of another version; start that version, or restore the store"
    )]
    Unknown(i64),
    #[error(
        "store migration {version} was begun with other statements than this build's (checksum differs); start the coordinator version that began it"
    )]
    Changed { version: i64 },
    #[error(
        "store migration {version} ({description}) was interrupted and statement {index} cannot run again: {reason}; finish it by hand, then mark it done: UPDATE _sqlx_migrations SET success = 1 WHERE version = {version}"
    )]
    Statement {
        version: i64,
        description: String,
        index: usize,
        reason: String,
    },
}

async fn finish(pool: &MySqlPool, migration: Option<&Migration>) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT GET_LOCK(?, 60)")
        .bind(LOCK)
        .execute(&mut *conn)
        .await?;
    let finished = finish_locked(&mut conn, migration).await;
    let released = sqlx::query("SELECT RELEASE_LOCK(?)")
        .bind(LOCK)
        .execute(&mut *conn)
        .await;
    finished?;
    released?;
    Ok(())
}

async fn finish_locked(
    conn: &mut MySqlConnection,
    migration: Option<&Migration>,
) -> Result<(), StoreError> {
    let begun = sqlx::query(
        "SELECT version, checksum FROM _sqlx_migrations WHERE success = FALSE ORDER BY version LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    // Finished meanwhile by another coordinator.
    let Some(begun) = begun else { return Ok(()) };
    let version: i64 = begun.try_get("version")?;
    let checksum: Vec<u8> = begun.try_get("checksum")?;
    let Some(migration) = migration.filter(|m| m.version == version) else {
        return Err(Unfinished::Unknown(version).into());
    };
    if *migration.checksum != *checksum {
        return Err(Unfinished::Changed { version }.into());
    }
    let statements = qserv_migrations::split_statements(migration.sql.as_str())
        .map_err(|e| StoreError::Corrupt(format!("store migration {version}: {e}")))?;
    for statement in &statements {
        match sqlx::query(sqlx::AssertSqlSafe(statement.text.clone()))
            .execute(&mut *conn)
            .await
        {
            Ok(_) => {}
            Err(err) if error_number(&err).is_some_and(already_done) => {
                tracing::debug!(
                    version,
                    statement = statement.index,
                    "statement of the interrupted migration had run"
                );
            }
            Err(err) => {
                return Err(Unfinished::Statement {
                    version,
                    description: migration.description.to_string(),
                    index: statement.index,
                    reason: err.to_string(),
                }
                .into());
            }
        }
    }
    let mut tx = conn.begin().await?;
    sqlx::query("UPDATE _sqlx_migrations SET success = TRUE WHERE version = ?")
        .bind(version)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::warn!(version, description = %migration.description, "finished a store migration that was interrupted");
    Ok(())
}

/// Whether a statement that creates something failed only because it exists already.
fn already_done(number: u16) -> bool {
    matches!(
        number,
        // ER_DUP_KEY, ER_TABLE_EXISTS_ERROR, ER_DUP_FIELDNAME, ER_DUP_KEYNAME, ER_DUP_ENTRY,
        // ER_FK_DUP_NAME
        1022 | 1050 | 1060 | 1061 | 1062 | 1826
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exists_errors_count_as_done() {
        for done in [1050, 1060, 1061, 1062] {
            assert!(already_done(done), "{done}");
        }
        // Lock wait timeout, deadlock, no such table, syntax error.
        for failed in [1205, 1213, 1146, 1064] {
            assert!(!already_done(failed), "{failed}");
        }
    }

    /// Every store migration must be finishable: statements that create, and split cleanly.
    #[test]
    fn every_store_migration_only_creates() {
        for migration in qserv_migrations::STORE_MYSQL_MIGRATOR.iter() {
            let statements = qserv_migrations::split_statements(migration.sql.as_str())
                .unwrap_or_else(|e| panic!("migration {}: {e}", migration.version));
            assert!(!statements.is_empty(), "migration {}", migration.version);
            for statement in statements {
                let text = statement.text.trim_start().to_ascii_uppercase();
                assert!(
                    text.starts_with("CREATE TABLE ")
                        || text.starts_with("CREATE INDEX ")
                        || text.starts_with("CREATE UNIQUE INDEX ")
                        || (text.starts_with("ALTER TABLE ") && text.contains(" ADD COLUMN "))
                        || text.starts_with("INSERT INTO "),
                    "migration {} statement {} would not be safe to run again: {}",
                    migration.version,
                    statement.index,
                    statement.text
                );
            }
        }
    }
}
