//! Qserv schema migrations and the rules of Qserv's `smig`, in one place.
//!
//! The coordinator uses this crate to plan (targets, paths, checksums) and the agent to apply;
//! nothing else parses script names or interprets `QMetadata`.

mod dir;
mod literal;
mod module;
mod set;
mod shipment;
mod sql;
mod template;
mod version;

pub use literal::{escape_literal, quote_literal};
pub use module::{Module, UnknownModule};
pub use set::{MAX_SCRIPT_BYTES, MigrationError, MigrationSet, Script, ScriptName, checksum};
pub use shipment::{
    ManifestEntry, PlannedScript, Received, Shipment, ShipmentError, manifest_digest, plan_start,
};
pub use sql::{SplitError, Statement, split_statements};
pub use template::{TemplateError, render};
pub use version::{SchemaVersion, VersionError, version_from_probe};

/// Migrations of the coordinator's own SQLite store, embedded in the binary.
pub static STORE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./store");

/// The same schema for a store on MariaDB (one server or a Galera cluster).
pub static STORE_MYSQL_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./store-mysql");

/// Migrations of the agent's bookkeeping database (`qserv_agent`) on each node's MariaDB,
/// embedded in the binary: the agent owns no DDL of its own.
pub static AGENT_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./agent");

/// The scripts shipped with this build: (module folder, file name, content).
pub(crate) const BUNDLED: &[(&str, &str, &str)] = include!(concat!(env!("OUT_DIR"), "/bundled.rs"));
