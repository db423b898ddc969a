//! The checks that keep the agent's view of its database current: every 500 ms, and at once
//! when a decision needs a fresh view. Every change is published under a new sequence number.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use backon::{BackoffBuilder, ExponentialBuilder};
use qserv_migrations::Module;
use qserv_model::AgentState;
use tokio::sync::{Mutex, watch};

use crate::database::local::{LocalDb, Observation};
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

/// The agent's checks of its database, shared by the periodic loop and by fresh checks (the
/// `Probe` RPC, and every command that changes the database or the mode, which checks again
/// before it replies).
pub struct Prober {
    db: Mutex<Checker>,
    modules: Vec<Module>,
    status: watch::Sender<AgentState>,
    metrics: Metrics,
}

struct Checker {
    db: LocalDb,
    failed_attempts: u32,
}

/// Changes the published status; every change gets the next sequence number (and so does a
/// forced publication, which a fresh check always is), so that a reader can tell a newer status
/// from an older one. Returns the status as published.
pub fn publish(
    status: &watch::Sender<AgentState>,
    force: bool,
    change: impl FnOnce(&mut AgentState) -> bool,
) -> AgentState {
    let mut published = None;
    status.send_if_modified(|s| {
        let changed = change(s) || force;
        if changed {
            s.seq = s.seq.saturating_add(1);
        }
        published = Some(s.clone());
        changed
    });
    published.unwrap_or_default()
}

impl Prober {
    pub fn new(
        db: LocalDb,
        modules: Vec<Module>,
        status: watch::Sender<AgentState>,
        metrics: Metrics,
    ) -> Prober {
        Prober {
            db: Mutex::new(Checker {
                db,
                failed_attempts: 0,
            }),
            modules,
            status,
            metrics,
        }
    }

    /// Checks the database now and publishes what was found under a new sequence number.
    pub async fn check_now(&self) -> AgentState {
        self.check(true).await.0
    }

    /// One round of checks; returns the published status and whether the database is ready.
    async fn check(&self, force: bool) -> (AgentState, bool) {
        let mut checker = self.db.lock().await;
        let started = Instant::now();
        let result = checker.db.observe(&self.modules).await;
        self.metrics
            .db_check_seconds
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(observation) => {
                if checker.failed_attempts > 0 {
                    tracing::info!(
                        after_attempts = checker.failed_attempts,
                        "local database is ready again"
                    );
                }
                checker.failed_attempts = 0;
                record(&self.metrics, &observation);
                let status = publish(&self.status, force, |s| apply_ready(s, observation));
                (status, true)
            }
            Err(err) => {
                checker.failed_attempts = checker.failed_attempts.saturating_add(1);
                let attempts = checker.failed_attempts;
                self.metrics.db_check_failures.inc();
                self.metrics.db_ready.set(0);
                if attempts == 1 || attempts.is_power_of_two() {
                    tracing::warn!(error = %err, attempt = attempts, "local database is not ready");
                }
                let error = err.to_string();
                let status = publish(&self.status, force, |s| apply_failed(s, error, attempts));
                (status, false)
            }
        }
    }

    /// Runs the checks forever. Receivers are woken only when something other than the
    /// observation time changed.
    pub async fn run(self: Arc<Self>) {
        let mut backoff = reconnect_backoff();
        loop {
            let started = Instant::now();
            let (_, ready) = self.check(false).await;
            let delay = if ready {
                backoff = reconnect_backoff();
                CHECK_INTERVAL.saturating_sub(started.elapsed())
            } else {
                backoff.next().unwrap_or(CHECK_INTERVAL)
            };
            tokio::time::sleep(delay).await;
        }
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

/// Folds a successful observation into the state; true when anything but the time changed.
fn apply_ready(state: &mut AgentState, observation: Observation) -> bool {
    let mut next = state.clone();
    next.db_ready = true;
    next.db_server_version = observation.server_version;
    next.db_error.clear();
    next.db_failed_attempts = 0;
    next.worker_id = observation.worker_id;
    next.registry = observation.registry;
    next.activity = observation.activity;
    next.schemas = observation.modules;
    replace(state, next)
}

/// Marks the database not ready. The schema and id stay as last seen: they describe data on disk
/// that does not change because the server stopped answering.
fn apply_failed(state: &mut AgentState, error: String, failed_attempts: u32) -> bool {
    let mut next = state.clone();
    next.db_ready = false;
    next.db_error = error;
    next.db_failed_attempts = failed_attempts;
    replace(state, next)
}

fn replace(status: &mut AgentState, mut next: AgentState) -> bool {
    next.observed_at_ms = status.observed_at_ms;
    next.seq = status.seq;
    let changed = *status != next;
    *status = next;
    status.observed_at_ms = now_ms();
    changed
}
