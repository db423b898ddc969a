//! What both store backends read, once: the queries whose text SQLite and MariaDB share, and
//! the decoding of their rows into the store's types. Only how a row is fetched differs.

use crate::domain::{Epoch, Mode};
use sqlx::Row;
use sqlx::mysql::MySqlRow;
use sqlx::sqlite::SqliteRow;

use super::{Inventory, Lease, NodeRecord, Peer, StoreError, corrupt};
use crate::domain::Role;
use crate::domain::audit::{AuditRecord, Outcome};
use crate::domain::config::ConfigVersion;
use crate::domain::job::{
    JobRecord, JobState, Level, LogRecord, NodeProgress, NodeState, StepRecord, StepState,
    StoredSpec,
};
use crate::domain::spec::NodeSpec;
use qserv_model::ServiceName;

pub(crate) const INSTANCE_SQL: &str =
    "SELECT name, mode, epoch, services FROM instance WHERE id = 1";
pub(crate) const NODES_SQL: &str =
    "SELECT name, role, agent, registered_id FROM nodes ORDER BY position, name";
pub(crate) const JOB_SQL: &str = "SELECT id, kind, params, requested_by, state, error, refused, \
     timed_out, created_at_ms, started_at_ms, finished_at_ms, cancel_requested, note FROM jobs WHERE id = ?";
pub(crate) const STEPS_SQL: &str = "SELECT name, state, started_at_ms, finished_at_ms \
     FROM job_steps WHERE job_id = ? ORDER BY idx";
pub(crate) const JOB_NODES_SQL: &str =
    "SELECT node, state, detail, error FROM job_nodes WHERE job_id = ? ORDER BY node";
pub(crate) const LOGS_SQL: &str = "SELECT seq, at_ms, level, node, message FROM job_logs \
     WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?";
pub(crate) const AUDIT_PAGE_SQL: &str = "SELECT at_ms, identity, role, operation, params, \
     result, job_id FROM audit WHERE at_ms >= ? ORDER BY id DESC LIMIT ?";
pub(crate) const PEERS_SQL: &str =
    "SELECT id, address, last_seen_ms, incarnation, migrations FROM coordinators ORDER BY id";

/// The versions of a service's template, oldest first, for [`config_version`].
pub(crate) const CONFIG_HISTORY_SQL: &str = "SELECT service, version, sha256, by_identity, at_ms, \
     message FROM config_versions WHERE service = ? ORDER BY version";
/// One version of a service's template and its text, for [`config_version`].
pub(crate) const CONFIG_VERSION_SQL: &str = "SELECT service, version, sha256, by_identity, at_ms, \
     message, content FROM config_versions WHERE service = ? AND version = ?";

/// The lease row, for [`lease`].
pub(crate) const LEASE_SQL: &str =
    "SELECT holder, incarnation, address, token, expires_at_ms FROM leader_lease WHERE id = 1";

/// A row of either backend, read by column name.
pub(crate) trait Columns {
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    fn maybe_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    fn flag(&self, column: &str) -> Result<bool, sqlx::Error>;
}

macro_rules! columns {
    ($($row:ty),*) => {$(
        impl Columns for $row {
            fn text(&self, column: &str) -> Result<String, sqlx::Error> {
                self.try_get(column)
            }
            fn maybe_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(column)
            }
            fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
                self.try_get(column)
            }
            fn flag(&self, column: &str) -> Result<bool, sqlx::Error> {
                self.try_get(column)
            }
        }
    )*};
}

columns!(SqliteRow, MySqlRow);

impl Columns for super::shared::Row {
    fn text(&self, column: &str) -> Result<String, sqlx::Error> {
        (**self).text(column)
    }
    fn maybe_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
        (**self).maybe_text(column)
    }
    fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
        (**self).int(column)
    }
    fn flag(&self, column: &str) -> Result<bool, sqlx::Error> {
        (**self).flag(column)
    }
}

/// A count the store keeps as a signed integer; a negative one (never written) reads as 0.
fn count(row: &impl Columns, column: &str) -> Result<u64, StoreError> {
    Ok(u64::try_from(row.int(column)?).unwrap_or_default())
}

/// A row of [`CONFIG_HISTORY_SQL`] or [`CONFIG_VERSION_SQL`], without the text.
pub(crate) fn config_version(row: &impl Columns) -> Result<ConfigVersion, StoreError> {
    let service = row.text("service")?;
    let version = row.int("version")?;
    Ok(ConfigVersion {
        service: ServiceName::parse(&service).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        version: u32::try_from(version)
            .map_err(|_| corrupt("config version", &version.to_string()))?,
        sha256: row.text("sha256")?,
        by: row.text("by_identity")?,
        at_ms: row.int("at_ms")?,
        message: row.text("message")?,
    })
}

/// A row of [`INSTANCE_SQL`]: the instance's name, mode and epoch.
pub(crate) fn instance(row: &impl Columns) -> Result<(String, Mode, Option<Epoch>), StoreError> {
    let mode = row.text("mode")?;
    Ok((
        row.text("name")?,
        Mode::parse(&mode).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        Epoch::from_wire(count(row, "epoch")?),
    ))
}

/// The inventory from a row of [`INSTANCE_SQL`] and the rows of [`NODES_SQL`].
pub(crate) fn inventory<R: Columns>(head: &R, nodes: &[R]) -> Result<Inventory, StoreError> {
    let (name, mode, epoch) = instance(head)?;
    let services = serde_json::from_str(&head.text("services")?).map_err(|e| {
        StoreError::Corrupt(format!("the instance's service order cannot be read: {e}"))
    })?;
    let nodes = nodes
        .iter()
        .map(|row| {
            let role = row.text("role")?;
            Ok(NodeRecord {
                spec: NodeSpec {
                    name: row.text("name")?,
                    role: Role::parse(&role).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    agent: row.text("agent")?,
                },
                registered_id: row.maybe_text("registered_id")?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(Inventory {
        name,
        mode,
        epoch,
        nodes,
        services,
    })
}

/// A job from a row of [`JOB_SQL`] and the rows of [`STEPS_SQL`] and [`JOB_NODES_SQL`].
pub(crate) fn job<R: Columns>(head: &R, steps: &[R], nodes: &[R]) -> Result<JobRecord, StoreError> {
    let state = head.text("state")?;
    let steps = steps
        .iter()
        .map(|row| {
            let state = row.text("state")?;
            Ok(StepRecord {
                name: row.text("name")?,
                state: StepState::parse(&state).ok_or_else(|| corrupt("step state", &state))?,
                started_at_ms: row.int("started_at_ms")?,
                finished_at_ms: row.int("finished_at_ms")?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    let nodes = nodes
        .iter()
        .map(|row| {
            let state = row.text("state")?;
            Ok(NodeProgress {
                name: row.text("node")?,
                state: NodeState::parse(&state).ok_or_else(|| corrupt("node state", &state))?,
                detail: row.text("detail")?,
                error: row.text("error")?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(JobRecord {
        id: head.text("id")?,
        kind: head.text("kind")?,
        params: StoredSpec::read(&head.text("params")?),
        requested_by: head.text("requested_by")?,
        state: JobState::parse(&state).ok_or_else(|| corrupt("job state", &state))?,
        error: head.text("error")?,
        refused: head.flag("refused")?,
        timed_out: head.flag("timed_out")?,
        created_at_ms: head.int("created_at_ms")?,
        started_at_ms: head.int("started_at_ms")?,
        finished_at_ms: head.int("finished_at_ms")?,
        cancel_requested: head.flag("cancel_requested")?,
        note: head.text("note")?,
        steps,
        nodes,
        unstored: None,
    })
}

/// A row of [`LOGS_SQL`].
pub(crate) fn log_line(row: &impl Columns) -> Result<LogRecord, StoreError> {
    let level = row.text("level")?;
    Ok(LogRecord {
        seq: count(row, "seq")?,
        at_ms: row.int("at_ms")?,
        level: Level::parse(&level).ok_or_else(|| corrupt("log level", &level))?,
        node: row.text("node")?,
        message: row.text("message")?,
    })
}

/// The rows of [`AUDIT_PAGE_SQL`], asked with a limit one above `limit`: at most `limit`
/// entries, oldest first, and whether more matched.
pub(crate) fn audit_page<R: Columns>(
    mut rows: Vec<R>,
    limit: u32,
) -> Result<(Vec<AuditRecord>, bool), StoreError> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let truncated = rows.len() > limit;
    rows.truncate(limit);
    rows.reverse();
    let entries = rows
        .iter()
        .map(|row| {
            let result = row.text("result")?;
            let job_id = row.text("job_id")?;
            Ok(AuditRecord {
                at_ms: row.int("at_ms")?,
                identity: row.text("identity")?,
                role: row.text("role")?,
                operation: row.text("operation")?,
                params: row.text("params")?,
                outcome: Outcome::parse(&result)
                    .ok_or_else(|| corrupt("audit outcome", &result))?,
                job_id: (!job_id.is_empty()).then_some(job_id),
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok((entries, truncated))
}

/// A row of the lease table.
pub(crate) fn lease(row: &impl Columns) -> Result<Lease, StoreError> {
    Ok(Lease {
        holder: row.text("holder")?,
        incarnation: row.text("incarnation")?,
        address: row.text("address")?,
        token: count(row, "token")?,
        expires_at_ms: row.int("expires_at_ms")?,
    })
}

/// A row of [`PEERS_SQL`].
pub(crate) fn peer(row: &impl Columns) -> Result<Peer, StoreError> {
    Ok(Peer {
        id: row.text("id")?,
        address: row.text("address")?,
        last_seen_ms: row.int("last_seen_ms")?,
        incarnation: row.text("incarnation")?,
        migrations: row.text("migrations")?,
    })
}
