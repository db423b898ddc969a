//! repl: what a worker holds in Qserv's replication records (what deleting its `config_worker`
//! row would let Qserv's foreign keys erase), and the worker's state flags.

use qserv_migrations::quote_literal;
use qserv_model::Role;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{AssertSqlSafe, Connection, Row};

use crate::database::admin::{AdminError, repl_only};
use crate::database::cascade::{CascadeKey, REPLICA_DATABASE, ROOT, Reached, ident, reach};
use crate::database::connection::{DbError, connect, query_err};

/// At most this many sole-copy chunks are named per database.
const SOLE_CHUNKS_SHOWN: u32 = 10;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatabaseHoldings {
    pub database: String,
    pub replicas: u64,
    pub sole_copies: u64,
    pub sole_chunks: Vec<u32>,
    pub contributions: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holdings {
    pub databases: Vec<DatabaseHoldings>,
    /// Per table below the worker's own row, the rows the cascade would delete.
    pub cascaded: Vec<(String, u64)>,
}

/// The foreign keys of `qservReplica` whose deletion rule is CASCADE.
pub(crate) async fn cascade_keys(conn: &mut MySqlConnection) -> Result<Vec<CascadeKey>, DbError> {
    let rows = sqlx::query(
        "SELECT CAST(rc.TABLE_NAME AS CHAR), CAST(rc.REFERENCED_TABLE_NAME AS CHAR), \
                CAST(rc.CONSTRAINT_NAME AS CHAR), CAST(k.COLUMN_NAME AS CHAR), \
                CAST(k.REFERENCED_COLUMN_NAME AS CHAR) \
         FROM information_schema.REFERENTIAL_CONSTRAINTS rc \
         JOIN information_schema.KEY_COLUMN_USAGE k \
           ON k.CONSTRAINT_SCHEMA = rc.CONSTRAINT_SCHEMA AND k.CONSTRAINT_NAME = rc.CONSTRAINT_NAME \
          AND k.TABLE_NAME = rc.TABLE_NAME \
         WHERE rc.CONSTRAINT_SCHEMA = ? AND rc.DELETE_RULE = 'CASCADE' \
         ORDER BY rc.TABLE_NAME, rc.CONSTRAINT_NAME, k.ORDINAL_POSITION",
    )
    .bind(REPLICA_DATABASE)
    .fetch_all(&mut *conn)
    .await
    .map_err(query_err)?;
    let mut keys: Vec<(String, CascadeKey)> = Vec::new();
    for row in rows {
        let child: String = row.try_get(0).map_err(query_err)?;
        let parent: String = row.try_get(1).map_err(query_err)?;
        let name: String = row.try_get(2).map_err(query_err)?;
        let column: String = row.try_get(3).map_err(query_err)?;
        let referenced: String = row.try_get(4).map_err(query_err)?;
        match keys.last_mut() {
            Some((last, key)) if *last == name && key.child == child => {
                key.columns.push((column, referenced));
            }
            _ => keys.push((
                name,
                CascadeKey {
                    child,
                    parent,
                    columns: vec![(column, referenced)],
                },
            )),
        }
    }
    Ok(keys.into_iter().map(|(_, k)| k).collect())
}

pub(crate) async fn table_exists(conn: &mut MySqlConnection, table: &str) -> Result<bool, DbError> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
    )
    .bind(REPLICA_DATABASE)
    .bind(table)
    .fetch_optional(&mut *conn)
    .await
    .map_err(query_err)?;
    Ok(found.is_some())
}

async fn count_where(
    conn: &mut MySqlConnection,
    reached: &Reached,
    lock: &str,
) -> Result<u64, DbError> {
    let sql = format!(
        "SELECT COUNT(*) FROM {}.{} WHERE {}{lock}",
        ident(REPLICA_DATABASE),
        ident(&reached.table),
        reached.condition
    );
    let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_one(&mut *conn)
        .await
        .map_err(query_err)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Per table below the worker's own row (`reached[0]`), the rows the cascade would delete,
/// where there are any; `lock` is appended to each count (a locking read, or nothing).
pub(crate) async fn cascaded_counts(
    conn: &mut MySqlConnection,
    reached: &[Reached],
    lock: &str,
) -> Result<Vec<(String, u64)>, DbError> {
    let mut cascaded = Vec::new();
    for table in reached.iter().skip(1) {
        let n = count_where(conn, table, lock).await?;
        if n > 0 {
            cascaded.push((table.table.clone(), n));
        }
    }
    Ok(cascaded)
}

/// What deleting `worker`'s row would take with it.
pub async fn holdings(
    options: &MySqlConnectOptions,
    role: Role,
    worker: &str,
) -> Result<Holdings, AdminError> {
    repl_only(role)?;
    let mut conn = connect(options).await?;
    let result = holdings_on(&mut conn, worker).await;
    let _ = conn.close().await;
    Ok(result?)
}

async fn holdings_on(conn: &mut MySqlConnection, worker: &str) -> Result<Holdings, DbError> {
    if !table_exists(conn, ROOT).await? {
        return Ok(Holdings::default());
    }
    let keys = cascade_keys(conn).await?;
    let reached = reach(&quote_literal(worker), &keys);
    let cascaded = cascaded_counts(conn, &reached, "").await?;
    let mut databases: Vec<DatabaseHoldings> = Vec::new();
    let has = |t: &str| reached.iter().any(|r| r.table == t);
    if has("replica") {
        let rows = sqlx::query(
            "SELECT CAST(r.`database` AS CHAR), COUNT(*), \
                    CAST(SUM(NOT EXISTS (SELECT 1 FROM qservReplica.replica o \
                        WHERE o.`database` = r.`database` AND o.chunk = r.chunk \
                          AND o.worker <> r.worker)) AS SIGNED) \
             FROM qservReplica.replica r WHERE r.worker = ? GROUP BY r.`database` ORDER BY 1",
        )
        .bind(worker)
        .fetch_all(&mut *conn)
        .await
        .map_err(query_err)?;
        for row in rows {
            let database: String = row.try_get(0).map_err(query_err)?;
            let replicas: i64 = row.try_get(1).map_err(query_err)?;
            let sole: i64 = row.try_get(2).map_err(query_err)?;
            let sole_chunks: Vec<i64> = sqlx::query_scalar(
                "SELECT CAST(r.chunk AS SIGNED) FROM qservReplica.replica r \
                 WHERE r.worker = ? AND r.`database` = ? AND NOT EXISTS \
                   (SELECT 1 FROM qservReplica.replica o WHERE o.`database` = r.`database` \
                      AND o.chunk = r.chunk AND o.worker <> r.worker) \
                 ORDER BY r.chunk LIMIT ?",
            )
            .bind(worker)
            .bind(&database)
            .bind(SOLE_CHUNKS_SHOWN)
            .fetch_all(&mut *conn)
            .await
            .map_err(query_err)?;
            databases.push(DatabaseHoldings {
                database,
                replicas: u64::try_from(replicas).unwrap_or(0),
                sole_copies: u64::try_from(sole).unwrap_or(0),
                sole_chunks: sole_chunks
                    .into_iter()
                    .filter_map(|c| u32::try_from(c).ok())
                    .collect(),
                contributions: 0,
            });
        }
    }
    if has("transaction_contrib") {
        let rows = sqlx::query(
            "SELECT CAST(`database` AS CHAR), COUNT(*) FROM qservReplica.transaction_contrib \
             WHERE worker = ? GROUP BY `database` ORDER BY 1",
        )
        .bind(worker)
        .fetch_all(&mut *conn)
        .await
        .map_err(query_err)?;
        for row in rows {
            let database: String = row.try_get(0).map_err(query_err)?;
            let n: i64 = row.try_get(1).map_err(query_err)?;
            let n = u64::try_from(n).unwrap_or(0);
            match databases.iter_mut().find(|d| d.database == database) {
                Some(d) => d.contributions = n,
                None => databases.push(DatabaseHoldings {
                    database,
                    contributions: n,
                    ..DatabaseHoldings::default()
                }),
            }
        }
        databases.sort_by(|a, b| a.database.cmp(&b.database));
    }
    Ok(Holdings {
        databases,
        cascaded,
    })
}

/// Sets a worker's flags; `None` when it is not registered, else whether anything changed.
pub async fn set_state(
    options: &MySqlConnectOptions,
    role: Role,
    worker: &str,
    enabled: bool,
    read_only: bool,
) -> Result<Option<bool>, AdminError> {
    repl_only(role)?;
    let mut conn = connect(options).await?;
    let current: Option<(i64, i64)> = sqlx::query_as(
        "SELECT CAST(is_enabled <> 0 AS SIGNED), CAST(is_read_only <> 0 AS SIGNED) \
         FROM qservReplica.config_worker WHERE name = ?",
    )
    .bind(worker)
    .fetch_optional(&mut conn)
    .await
    .map_err(query_err)?;
    let Some((was_enabled, was_read_only)) = current else {
        let _ = conn.close().await;
        return Ok(None);
    };
    let changed = (was_enabled != 0) != enabled || (was_read_only != 0) != read_only;
    if changed {
        sqlx::query(
            "UPDATE qservReplica.config_worker SET is_enabled = ?, is_read_only = ? WHERE name = ?",
        )
        .bind(enabled)
        .bind(read_only)
        .bind(worker)
        .execute(&mut conn)
        .await
        .map_err(query_err)?;
    }
    let _ = conn.close().await;
    Ok(Some(changed))
}
