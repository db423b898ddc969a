//! Coordinators sharing a store: the MariaDB server that holds it, and who leads.

use serde_json::Value;

use crate::MariaDb;

/// A MariaDB server with an empty `qserv_store` database and a `coordinator` account that may
/// use it, logging in with `password`.
pub fn store_server(password: &str) -> MariaDb {
    let server = MariaDb::start();
    server.execute("CREATE DATABASE qserv_store");
    server.execute(&format!(
        "CREATE USER coordinator@'%' IDENTIFIED BY '{}'",
        password.replace('\'', "''")
    ));
    server.execute("GRANT ALL ON qserv_store.* TO coordinator@'%'");
    server
}

/// The leading coordinator's id in a `qserv -o json status`.
pub fn leader_of(status: &Value) -> Option<String> {
    status["coordinators"]
        .as_array()?
        .iter()
        .find(|c| c["leader"] == true)
        .and_then(|c| c["id"].as_str())
        .map(str::to_owned)
}
