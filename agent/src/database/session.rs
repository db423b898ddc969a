//! Sessions that apply migrations: set up as Qserv's own tools (the `mariadb` client, smig) set
//! theirs up, so that what a script creates is byte for byte what Qserv would create. Views
//! record the connection's collation and `sql_mode`; triggers and routines record `sql_mode`.

use sqlx::AssertSqlSafe;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};

use crate::database::connection::{DbError, connect, query_err};

/// The connection character set; its collation is whatever the server makes its default.
const CHARSET: &str = "utf8mb4";

/// A connection with the server's defaults: none of sqlx's own session settings (a collation
/// of its choosing, `PIPES_AS_CONCAT`, UTC time zone), then `SET NAMES` without `COLLATE` so the
/// server picks its default collation for the character set (`character_set_collations`
/// included), as a client that names only a character set gets.
pub async fn migration_session(options: &MySqlConnectOptions) -> Result<MySqlConnection, DbError> {
    let options = options
        .clone()
        .set_names(false)
        .pipes_as_concat(false)
        .no_engine_substitution(false)
        .timezone(None);
    let mut conn = connect(&options).await?;
    sqlx::Executor::execute(&mut conn, AssertSqlSafe(format!("SET NAMES {CHARSET}")))
        .await
        .map_err(query_err)?;
    let sql_mode: String = sqlx::query_scalar("SELECT CAST(@@SESSION.sql_mode AS CHAR)")
        .fetch_one(&mut conn)
        .await
        .map_err(query_err)?;
    refuse_unsafe_mode(&sql_mode)?;
    Ok(conn)
}

/// Template values and account passwords are escaped with backslashes; a server that reads
/// backslashes literally would see a quote in a value end its literal.
fn refuse_unsafe_mode(sql_mode: &str) -> Result<(), DbError> {
    if sql_mode
        .split(',')
        .any(|m| m.trim().eq_ignore_ascii_case("NO_BACKSLASH_ESCAPES"))
    {
        return Err(DbError::Session(
            "the server's sql_mode includes NO_BACKSLASH_ESCAPES, under which escaped values in migrations would be read wrongly; remove it from sql_mode in the server's configuration".to_owned(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backslash_mode_is_refused() {
        assert!(refuse_unsafe_mode("STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES").is_err());
        assert!(refuse_unsafe_mode("STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO").is_ok());
        assert!(refuse_unsafe_mode("").is_ok());
    }
}
