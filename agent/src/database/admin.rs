//! Operations on the local database for install, validate and delete: what exists, service
//! accounts, the worker registry, and purging everything Qserv put there.

use qserv_migrations::Module;
use qserv_model::Role;
use sqlx::AssertSqlSafe;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{Connection, Row};

use qserv_migrations::quote_literal;

use crate::database::connection::{AGENT_DATABASE, DbError, connect, error_code, query_err};
use crate::database::local::modules_of;
use crate::database::session::migration_session;
use crate::node::secrets::{Account, Secrets, SecretsError};

/// Hosts every service account is created for: local socket clients and the network.
const ACCOUNT_HOSTS: [&str; 2] = ["localhost", "%"];

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error("{0}")]
    Refused(String),
}

async fn run(conn: &mut MySqlConnection, sql: &str) -> Result<(), DbError> {
    // `&str` runs through the text protocol, which accepts every statement (DDL, account
    // management, stored programs), unlike prepared statements.
    sqlx::Executor::execute(&mut *conn, AssertSqlSafe(sql.to_owned()))
        .await
        .map_err(query_err)?;
    Ok(())
}

/// The Qserv databases (of any module) and service accounts present on this server.
pub async fn inspect(
    options: &MySqlConnectOptions,
    secrets: &Secrets,
    role: Role,
) -> Result<(Vec<String>, Vec<String>), AdminError> {
    let mut conn = connect(options).await?;
    let mut databases = Vec::new();
    for module in Module::ALL {
        let found: Option<String> = sqlx::query_scalar(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
        )
        .bind(module.database())
        .fetch_optional(&mut conn)
        .await
        .map_err(query_err)?;
        databases.extend(found);
    }
    let mut accounts = Vec::new();
    if let Ok(account) = secrets.account(role) {
        let rows = sqlx::query(
            "SELECT CAST(CONCAT(User, '@', Host) AS CHAR) FROM mysql.user WHERE User = ?",
        )
        .bind(&account.user)
        .fetch_all(&mut conn)
        .await
        .map_err(query_err)?;
        for row in rows {
            accounts.push(row.try_get::<String, _>(0).map_err(query_err)?);
        }
    }
    let _ = conn.close().await;
    Ok((databases, accounts))
}

/// Runs a statement that holds a password: a failure says which statement and the server's
/// error number, never the server's message, which quotes the statement.
async fn run_secret(conn: &mut MySqlConnection, what: &str, sql: &str) -> Result<(), DbError> {
    sqlx::Executor::execute(&mut *conn, AssertSqlSafe(sql.to_owned()))
        .await
        .map_err(|e| DbError::Query(format!("{what} failed: {}", error_code(&e))))?;
    Ok(())
}

/// Creates (or re-creates the password and grants of) an account; idempotent. Runs in a
/// migration session, where the password's escaping is known to hold.
pub async fn ensure_account(conn: &mut MySqlConnection, account: &Account) -> Result<(), DbError> {
    let user = quote_literal(&account.user);
    let password = quote_literal(&account.password);
    for host in ACCOUNT_HOSTS {
        let who = format!("{user}@{}", quote_literal(host));
        run_secret(
            conn,
            &format!("CREATE USER {who}"),
            &format!("CREATE USER IF NOT EXISTS {who} IDENTIFIED BY {password}"),
        )
        .await?;
        // An account left from an earlier install keeps its name but gets today's password.
        run_secret(
            conn,
            &format!("ALTER USER {who}"),
            &format!("ALTER USER {who} IDENTIFIED BY {password}"),
        )
        .await?;
        run(
            conn,
            &format!("GRANT ALL ON `{}`.* TO {who}", account.database),
        )
        .await?;
    }
    Ok(())
}

pub async fn ensure_accounts(
    options: &MySqlConnectOptions,
    secrets: &Secrets,
    role: Role,
) -> Result<Vec<String>, AdminError> {
    let account = secrets.account(role)?;
    let mut conn = migration_session(options).await?;
    ensure_account(&mut conn, &account).await?;
    let _ = conn.close().await;
    Ok(vec![account.user])
}

/// repl: inserts the ids not yet in `config_worker`, enabled and writable; returns those inserted.
pub async fn register_workers(
    options: &MySqlConnectOptions,
    role: Role,
    ids: &[String],
) -> Result<Vec<String>, AdminError> {
    change_registry(
        options,
        role,
        ids,
        "INSERT IGNORE INTO qservReplica.config_worker (name, is_enabled, is_read_only) VALUES (?, 1, 0)",
    )
    .await
}

/// Only the repl node's database holds the worker registry.
pub fn repl_only(role: Role) -> Result<(), AdminError> {
    if role == Role::Repl {
        Ok(())
    } else {
        Err(AdminError::Refused(
            "only the repl node's agent holds the worker registry".to_owned(),
        ))
    }
}

/// Runs `sql` (one `?`: the id) for each id; returns the ids whose row it changed.
async fn change_registry(
    options: &MySqlConnectOptions,
    role: Role,
    ids: &[String],
    sql: &'static str,
) -> Result<Vec<String>, AdminError> {
    repl_only(role)?;
    let mut conn = connect(options).await?;
    let mut changed = Vec::new();
    for id in ids {
        let result = sqlx::query(sql)
            .bind(id)
            .execute(&mut conn)
            .await
            .map_err(query_err)?;
        if result.rows_affected() > 0 {
            changed.push(id.clone());
        }
    }
    let _ = conn.close().await;
    Ok(changed)
}

/// Logs in as the role's service account and checks it sees its database and version table.
pub async fn validate(
    options: &MySqlConnectOptions,
    secrets: &Secrets,
    role: Role,
) -> Result<Vec<String>, AdminError> {
    let account = secrets.account(role)?;
    let as_account = options
        .clone()
        .username(&account.user)
        .password(&account.password);
    let mut problems = Vec::new();
    let mut conn = match connect(&as_account).await {
        Ok(conn) => conn,
        Err(err) => {
            problems.push(format!("account {} cannot log in: {err}", account.user));
            return Ok(problems);
        }
    };
    for module in modules_of(role) {
        let sql = format!(
            "SELECT value FROM `{}`.QMetadata WHERE metakey = 'version'",
            module.database()
        );
        if let Err(err) = sqlx::query(AssertSqlSafe(sql))
            .fetch_optional(&mut conn)
            .await
        {
            problems.push(format!(
                "account {} cannot read {}.QMetadata: {err}",
                account.user,
                module.database()
            ));
        }
    }
    let _ = conn.close().await;
    Ok(problems)
}

/// Drops the role's Qserv database, its service account and the agent's bookkeeping.
pub async fn purge(
    options: &MySqlConnectOptions,
    secrets: &Secrets,
    role: Role,
) -> Result<(Vec<String>, Vec<String>), AdminError> {
    let mut conn = connect(options).await?;
    let (existing, _) = inspect(options, secrets, role).await?;
    let mut dropped = Vec::new();
    for module in modules_of(role) {
        if existing.iter().any(|d| d == module.database()) {
            run(
                &mut conn,
                &format!("DROP DATABASE IF EXISTS `{}`", module.database()),
            )
            .await?;
            dropped.push(module.database().to_owned());
        }
    }
    run(
        &mut conn,
        &format!("DROP DATABASE IF EXISTS `{AGENT_DATABASE}`"),
    )
    .await?;
    let mut accounts = Vec::new();
    if let Ok(account) = secrets.account(role) {
        for host in ACCOUNT_HOSTS {
            run(
                &mut conn,
                &format!(
                    "DROP USER IF EXISTS {}@{}",
                    quote_literal(&account.user),
                    quote_literal(host)
                ),
            )
            .await?;
        }
        accounts.push(account.user);
    }
    let _ = conn.close().await;
    Ok((dropped, accounts))
}
