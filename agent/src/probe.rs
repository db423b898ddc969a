//! The loop that keeps the agent's view of its database current and publishes every change.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use backon::{BackoffBuilder, ExponentialBuilder};
use qserv_migrations::Module;
use qserv_proto::v1::{AgentStatus, DatabaseStatus, ModuleSchema};
use tokio::sync::watch;

use crate::db::{LocalDb, Observation};
use crate::metrics::{Metrics, ModuleLabel};

/// Period of the checks while the database is healthy.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// Retry delays after a failed check: quick at first, never longer than the healthy period, so a
/// database that comes back is seen as fast as a change would be.
fn reconnect_backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(CHECK_INTERVAL)
        .with_jitter()
        .without_max_times()
        .build()
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// Runs the checks forever, publishing into `status`. Receivers are woken only when something
/// other than the observation time changed.
pub async fn run(
    mut db: LocalDb,
    modules: Vec<Module>,
    status: watch::Sender<AgentStatus>,
    metrics: Metrics,
) {
    let mut backoff = reconnect_backoff();
    let mut failed_attempts: u32 = 0;
    loop {
        let started = Instant::now();
        let result = db.observe(&modules).await;
        metrics
            .db_check_seconds
            .observe(started.elapsed().as_secs_f64());
        let delay = match result {
            Ok(observation) => {
                if failed_attempts > 0 {
                    tracing::info!(
                        after_attempts = failed_attempts,
                        "local database is ready again"
                    );
                }
                failed_attempts = 0;
                backoff = reconnect_backoff();
                record(&metrics, &observation);
                status.send_if_modified(|s| apply_ready(s, observation));
                CHECK_INTERVAL.saturating_sub(started.elapsed())
            }
            Err(err) => {
                failed_attempts = failed_attempts.saturating_add(1);
                metrics.db_check_failures.inc();
                metrics.db_ready.set(0);
                let delay = backoff.next().unwrap_or(CHECK_INTERVAL);
                if failed_attempts == 1 || failed_attempts.is_power_of_two() {
                    tracing::warn!(error = %err, attempt = failed_attempts, next_try_ms = delay.as_millis() as u64, "local database is not ready");
                }
                let error = err.to_string();
                status.send_if_modified(|s| apply_failed(s, error, failed_attempts));
                delay
            }
        };
        tokio::time::sleep(delay).await;
    }
}

fn record(metrics: &Metrics, observation: &Observation) {
    metrics.db_ready.set(1);
    for m in &observation.modules {
        let label = ModuleLabel {
            module: m.module.name().to_owned(),
        };
        metrics
            .schema_version
            .get_or_create(&label)
            .set(m.version.unwrap_or(-1));
        metrics
            .schema_dirty
            .get_or_create(&label)
            .set(i64::from(m.dirty));
    }
}

/// Folds a successful observation into the status; true when anything but the time changed.
fn apply_ready(status: &mut AgentStatus, observation: Observation) -> bool {
    let mut next = status.clone();
    next.database = Some(DatabaseStatus {
        ready: true,
        server_version: observation.server_version,
        error: String::new(),
        failed_attempts: 0,
    });
    next.worker_id = observation.worker_id;
    next.registry = observation.registry;
    next.schemas = observation
        .modules
        .into_iter()
        .map(|m| ModuleSchema {
            module: m.module.name().to_owned(),
            database: m.module.database().to_owned(),
            version: m.version,
            dirty: m.dirty,
            dirty_reason: m.dirty_reason,
        })
        .collect();
    replace(status, next)
}

/// Marks the database not ready. The schema and id stay as last seen: they describe data on disk
/// that does not change because the server stopped answering.
fn apply_failed(status: &mut AgentStatus, error: String, failed_attempts: u32) -> bool {
    let mut next = status.clone();
    let db = next.database.get_or_insert_with(DatabaseStatus::default);
    db.ready = false;
    db.error = error;
    db.failed_attempts = failed_attempts;
    replace(status, next)
}

fn replace(status: &mut AgentStatus, mut next: AgentStatus) -> bool {
    next.observed_at_ms = status.observed_at_ms;
    let changed = *status != next;
    *status = next;
    status.observed_at_ms = now_ms();
    changed
}
