//! repl: forgetting a worker with a way back. Deleting a `config_worker` row lets Qserv's
//! foreign keys erase the worker's replicas and ingest contributions; `forget` first saves every
//! such row as SQL the `mariadb` client loads back into `qservReplica`, and deletes in the same
//! transaction that read them. `unregister` deletes only a row that takes nothing with it.

use std::io::Write;
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use qserv_migrations::quote_literal;
use qserv_model::Role;
use qserv_proto::names::file_part;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{AssertSqlSafe, Connection, Row};

use crate::database::admin::AdminError;
use crate::database::admin::repl_only;
use crate::database::cascade::{
    REPLICA_DATABASE, ROOT, ROWS_PER_INSERT, Reached, ident, insert_statement, literal_expr, reach,
};
use crate::database::connection::{DbError, connect, query_err};
use crate::database::holdings::{cascade_keys, cascaded_counts, table_exists};

/// The saved file's first lines carry its row count, for a resumed call to report.
const ROWS_HEADER: &str = "-- rows: ";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forgotten {
    pub removed: bool,
    pub saved: Option<PathBuf>,
    pub rows: u64,
}

/// repl: removes ids from `config_worker`, each only when Qserv's cascade would delete nothing
/// with it (checked under the row's lock, so no replica slips in between); returns those that
/// were there.
pub async fn unregister(
    options: &MySqlConnectOptions,
    role: Role,
    ids: &[String],
) -> Result<Vec<String>, AdminError> {
    repl_only(role)?;
    let mut conn = connect(options).await?;
    let mut removed = Vec::new();
    let mut result = Ok(());
    for id in ids {
        match unregister_one(&mut conn, id).await {
            Ok(true) => removed.push(id.clone()),
            Ok(false) => {}
            Err(err) => {
                result = Err(err);
                break;
            }
        }
    }
    closed(conn, result).await.map(|()| removed)
}

/// Ends the session: a transaction a failure left open is rolled back, then the connection is
/// closed.
async fn closed<T>(
    mut conn: MySqlConnection,
    result: Result<T, AdminError>,
) -> Result<T, AdminError> {
    if result.is_err() {
        let _ = exec(&mut conn, "ROLLBACK").await;
    }
    let _ = conn.close().await;
    result
}

async fn unregister_one(conn: &mut MySqlConnection, id: &str) -> Result<bool, AdminError> {
    let Some(reached) = lock_worker(conn, id).await? else {
        return Ok(false);
    };
    let held: Vec<String> = cascaded_counts(conn, &reached, " LOCK IN SHARE MODE")
        .await?
        .into_iter()
        .map(|(table, n)| format!("{table} {n}"))
        .collect();
    if !held.is_empty() {
        exec(conn, "ROLLBACK").await?;
        return Err(AdminError::Refused(format!(
            "worker {id} still has rows Qserv's foreign keys would delete with it ({}); nothing was deleted: re-replicate first, or remove it with --forget-replicas",
            held.join(", ")
        )));
    }
    delete_and_commit(conn, id).await?;
    Ok(true)
}

async fn exec(conn: &mut MySqlConnection, sql: &'static str) -> Result<(), DbError> {
    sqlx::Executor::execute(&mut *conn, sql)
        .await
        .map_err(query_err)?;
    Ok(())
}

/// Starts a transaction holding the worker's row: no replica or contribution can be added under
/// it meanwhile (their foreign key checks wait for the lock). `None`, with no transaction open,
/// when there is no registry or no such row; else the tables its deletion reaches.
async fn lock_worker(
    conn: &mut MySqlConnection,
    id: &str,
) -> Result<Option<Vec<Reached>>, DbError> {
    if !table_exists(conn, ROOT).await? {
        return Ok(None);
    }
    exec(conn, "SET NAMES utf8mb4").await?;
    exec(
        conn,
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    )
    .await?;
    exec(conn, "START TRANSACTION").await?;
    let locked: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM qservReplica.config_worker WHERE name = ? FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(query_err)?;
    if locked.is_none() {
        exec(conn, "ROLLBACK").await?;
        return Ok(None);
    }
    let keys = cascade_keys(conn).await?;
    Ok(Some(reach(&quote_literal(id), &keys)))
}

async fn delete_and_commit(conn: &mut MySqlConnection, id: &str) -> Result<(), DbError> {
    sqlx::query("DELETE FROM qservReplica.config_worker WHERE name = ?")
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(query_err)?;
    exec(conn, "COMMIT").await
}

/// Where the rows of `worker` forgotten by job `job` are saved.
pub fn saved_path(dir: &Path, job: &str, worker: &str) -> PathBuf {
    dir.join(format!("{}-{}.sql", file_part(job), file_part(worker)))
}

/// Saves every row the deletion of `worker`'s row would take (and the row), then deletes it,
/// in one transaction that holds the rows it read: a crash before the commit leaves the rows
/// and, at most, a file the next call replaces; after it, the rows are gone and the file is
/// there for the next call to report.
pub async fn forget(
    options: &MySqlConnectOptions,
    role: Role,
    worker: &str,
    dir: &Path,
    job: &str,
) -> Result<Forgotten, AdminError> {
    repl_only(role)?;
    let path = saved_path(dir, job, worker);
    let mut conn = connect(options).await?;
    let result = forget_on(&mut conn, worker, &path).await;
    closed(conn, result).await
}

async fn forget_on(
    conn: &mut MySqlConnection,
    worker: &str,
    path: &Path,
) -> Result<Forgotten, AdminError> {
    let Some(reached) = lock_worker(conn, worker).await? else {
        return Ok(gone(path).await);
    };
    let rows = save(conn, worker, &reached, path).await?;
    delete_and_commit(conn, worker).await?;
    tracing::warn!(worker, path = %path.display(), rows, "worker row deleted; its cascaded rows were saved first");
    Ok(Forgotten {
        removed: true,
        saved: Some(path.to_owned()),
        rows,
    })
}

/// The worker's row is gone already: what an earlier call of the job saved, if anything.
async fn gone(path: &Path) -> Forgotten {
    let target = path.to_owned();
    let rows = tokio::task::spawn_blocking(move || saved_rows(&target))
        .await
        .ok()
        .flatten();
    Forgotten {
        removed: false,
        saved: rows.map(|_| path.to_owned()),
        rows: rows.unwrap_or(0),
    }
}

/// The row count a saved file declares in its first lines; `None` when there is no file (one
/// at this path is whole: it is renamed there only once written and synced).
fn saved_rows(path: &Path) -> Option<u64> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).ok()?;
    std::io::BufReader::new(file)
        .lines()
        .take(8)
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix(ROWS_HEADER)
                .and_then(|n| n.trim().parse().ok())
        })
}

async fn columns_of(
    conn: &mut MySqlConnection,
    table: &str,
) -> Result<Vec<(String, String)>, DbError> {
    let rows = sqlx::query(
        "SELECT CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR) FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
    )
    .bind(REPLICA_DATABASE)
    .bind(table)
    .fetch_all(&mut *conn)
    .await
    .map_err(query_err)?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0).map_err(query_err)?,
                r.try_get(1).map_err(query_err)?,
            ))
        })
        .collect()
}

/// Reads the rows under shared locks, so that none changes before the delete commits, then
/// writes them to `path`.
async fn save(
    conn: &mut MySqlConnection,
    worker: &str,
    reached: &[Reached],
    path: &Path,
) -> Result<u64, AdminError> {
    let mut body = Vec::new();
    let mut total: u64 = 0;
    for table in reached {
        let columns = columns_of(conn, &table.table).await?;
        let names: Vec<String> = columns.iter().map(|(n, _)| n.clone()).collect();
        let exprs: Vec<String> = columns.iter().map(|(n, t)| literal_expr(n, t)).collect();
        let sql = format!(
            "SELECT {} FROM {}.{} WHERE {} LOCK IN SHARE MODE",
            exprs.join(", "),
            ident(REPLICA_DATABASE),
            ident(&table.table),
            table.condition
        );
        let mut batch: Vec<Vec<String>> = Vec::new();
        let mut rows = sqlx::query(AssertSqlSafe(sql)).fetch(&mut *conn);
        while let Some(row) = rows.try_next().await.map_err(query_err)? {
            let mut values = Vec::with_capacity(names.len());
            for i in 0..names.len() {
                values.push(row.try_get::<String, _>(i).map_err(query_err)?);
            }
            batch.push(values);
            total += 1;
            if batch.len() == ROWS_PER_INSERT {
                body.push(insert_statement(&table.table, &names, &batch));
                batch.clear();
            }
        }
        if !batch.is_empty() {
            body.push(insert_statement(&table.table, &names, &batch));
        }
    }
    let header = format!(
        "-- qservReplica rows of worker {}, saved before its config_worker row was deleted.\n\
         -- Load back with: mariadb qservReplica < {}\n{ROWS_HEADER}{total}\n",
        quote_literal(worker),
        path.display()
    );
    let target = path.to_owned();
    tokio::task::spawn_blocking(move || write_saved(&target, &header, &body))
        .await
        .map_err(|e| AdminError::Refused(format!("saving the worker's rows was interrupted: {e}")))?
        .map_err(|e| {
            AdminError::Refused(format!(
                "cannot save the worker's rows to {}: {e}; nothing was deleted",
                path.display()
            ))
        })?;
    Ok(total)
}

/// Writes through a temporary file, synced, then renamed, with the directory synced: the file
/// exists whole or not at all, and survives a crash once this returns.
fn write_saved(path: &Path, header: &str, body: &[String]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("sql.partial");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    out.write_all(header.as_bytes())?;
    writeln!(out, "SET NAMES utf8mb4;\nSTART TRANSACTION;")?;
    for statement in body {
        out.write_all(statement.as_bytes())?;
    }
    writeln!(out, "COMMIT;")?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_file_is_whole_and_says_its_rows() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("forgotten").join("j1-w.sql");
        assert_eq!(saved_rows(&path), None, "nothing saved yet");
        let header = format!("-- worker 'w'\n{ROWS_HEADER}3\n");
        let body = vec!["INSERT INTO `t` (`a`) VALUES\n  (1),\n  (2),\n  (3);\n".to_owned()];
        write_saved(&path, &header, &body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(saved_rows(&path), Some(3));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(text.starts_with("-- worker 'w'"));
        assert!(text.contains("START TRANSACTION;\nINSERT INTO `t`"));
        assert!(text.trim_end().ends_with("COMMIT;"));
        assert!(
            !path.with_extension("sql.partial").exists(),
            "no temporary file is left"
        );
        // A second save for the same job replaces the first.
        write_saved(&path, &format!("{ROWS_HEADER}1\n"), &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(saved_rows(&path), Some(1));
    }
}
