//! The local MariaDB: the checks behind the agent's published state, Qserv's accounts and
//! databases, migrations with their bookkeeping, and the replication registry's rows.

pub mod activity;
pub mod admin;
pub mod bookkeeping;
pub mod cascade;
pub mod connection;
pub mod forget;
pub mod holdings;
pub mod local;
pub mod migrate;
pub mod session;
