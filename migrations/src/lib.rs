//! Qserv schema migrations and the rules of Qserv's `smig`, in one place.
//!
//! The coordinator uses this crate to plan (targets, paths, checksums) and the agent to apply;
//! nothing else parses script names or interprets `QMetadata`.

mod module;
mod set;
mod sql;
mod template;
mod version;

pub use module::{Module, UnknownModule};
pub use set::{MAX_SCRIPT_BYTES, MigrationError, MigrationSet, Script, ScriptName, checksum};
pub use sql::{SplitError, Statement, split_statements};
pub use template::{TemplateError, render};
pub use version::{SchemaVersion, VersionError, version_from_probe};

/// Migrations of the coordinator's own SQLite store, embedded in the binary.
pub static STORE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./store");

/// The scripts shipped with this build: (module folder, file name, content).
pub(crate) const BUNDLED: &[(&str, &str, &str)] = include!(concat!(env!("OUT_DIR"), "/bundled.rs"));
