//! One service's supervisor: keeps it running or stopped as the controller wants, probes its readiness, and publishes its `ServiceStatus` in the
//! agent's state. Exec services are restarted with backoff when they die while wanted; systemd
//! units are left to systemd's own restart policy; services started by someone else are only
//! probed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use qserv_model::{AgentState, ServiceState, ServiceStatus, Services};
use tokio::process::Command;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::controllers::output;
use crate::controllers::probe::{now_ms, publish};
use crate::controllers::process::{self, Running};
use crate::controllers::readiness;
use crate::controllers::service_group;
use crate::node::secrets::Secrets;
use crate::node::services::{Launch, Readiness, ServiceDef};

/// Probe period while a service is not ready yet (a failed connect on the same host costs next
/// to nothing, and every wave of `up` waits on it), and once it is.
const PROBE_STARTING: Duration = Duration::from_millis(20);
const PROBE_READY: Duration = Duration::from_secs(1);
/// How often a unit's state is read back from systemd.
const UNIT_CHECK: Duration = Duration::from_secs(2);

fn restart_backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .without_max_times()
        .build()
}

async fn at(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

pub struct Supervisor {
    pub def: ServiceDef,
    /// This service's index in `AgentState::service_states`.
    pub slot: usize,
    pub state_dir: PathBuf,
    pub secrets: Arc<Secrets>,
    pub status: watch::Sender<AgentState>,
}

/// The one-word summary and the first failure, from the services' states.
pub fn summarize(state: &mut AgentState) {
    state.services = Services::summarize(&state.service_states);
    state.services_error = state
        .service_states
        .iter()
        .find(|s| s.state == ServiceState::Failed)
        .map(|s| format!("{}: {}", s.name, s.detail))
        .unwrap_or_default();
}

impl Supervisor {
    pub async fn run(self, want: watch::Receiver<bool>) {
        match self.def.launch.clone() {
            Launch::Exec(command) => self.run_exec(&command, want).await,
            Launch::Unit(unit) => self.run_unit(&unit, want).await,
            Launch::External => self.run_external(want).await,
        }
    }

    /// Publishes this service's state; `since_ms` moves only when the state does.
    fn set(&self, state: ServiceState, exit_code: Option<i32>, detail: String) {
        publish(&self.status, false, |s| {
            let Some(slot) = s.service_states.get_mut(self.slot) else {
                return false;
            };
            let next = ServiceStatus {
                name: slot.name.clone(),
                state,
                since_ms: if slot.state == state {
                    slot.since_ms
                } else {
                    now_ms()
                },
                exit_code,
                detail,
                external: slot.external,
                config_version: slot.config_version,
                config_drift: slot.config_drift,
            };
            if *slot == next {
                return false;
            }
            *slot = next;
            summarize(s);
            true
        });
    }

    /// What a probe result means for a service that runs.
    fn probed(&self, result: Result<(), String>) -> bool {
        match result {
            Ok(()) if self.def.ready == Readiness::Running => {
                self.set(ServiceState::Running, None, String::new());
                true
            }
            Ok(()) => {
                self.set(ServiceState::Ready, None, String::new());
                true
            }
            Err(why) => {
                self.set(ServiceState::Starting, None, format!("not ready: {why}"));
                false
            }
        }
    }

    async fn run_exec(self, command: &str, mut want: watch::Receiver<bool>) {
        let name = self.def.name.clone();
        let record = service_group::record_path(&self.state_dir, &name);
        let log = output::path(&self.state_dir, &name);
        let mut running = self.adopt(&record);
        let mut backoff = restart_backoff();
        let mut retry_at: Option<Instant> = None;
        let mut next_probe = running.as_ref().map(|_| Instant::now());
        if running.is_none() {
            service_group::clear(&record);
        }
        loop {
            let run = *want.borrow_and_update();
            if !run {
                if let Some(services) = running.take() {
                    self.stop(services, &record).await;
                    next_probe = None;
                } else {
                    // A service that failed and is no longer wanted is simply stopped.
                    self.set(ServiceState::Stopped, None, String::new());
                }
                backoff = restart_backoff();
                retry_at = None;
            }
            if run && running.is_none() && retry_at.is_none_or(|t| Instant::now() >= t) {
                retry_at = None;
                match self.start(command, &record, &log) {
                    Some(started) => {
                        running = Some(started);
                        next_probe = Some(Instant::now());
                    }
                    None => retry_at = Some(Instant::now() + backoff.next().unwrap_or(PROBE_READY)),
                }
            }
            let ended = async {
                match running.as_mut() {
                    Some(services) => services.ended().await,
                    None => std::future::pending().await,
                }
            };
            let ready = &self.def.ready;
            let probe = async {
                at(next_probe).await;
                readiness::probe(ready).await
            };
            tokio::select! {
                changed = want.changed() => if changed.is_err() { break },
                ended = ended => {
                    if let Some(services) = running.take() {
                        services.kill();
                    }
                    service_group::clear(&record);
                    next_probe = None;
                    let delay = backoff.next().unwrap_or(Duration::from_secs(30));
                    retry_at = Some(Instant::now() + delay);
                    let tail = output::tail(&log, &self.secrets);
                    let detail = if tail.is_empty() {
                        ended.why.clone()
                    } else {
                        format!("{}; last output:\n{tail}", ended.why)
                    };
                    tracing::warn!(service = %name, why = %ended.why, restart_in_ms = delay.as_millis() as u64, "service ended");
                    self.set(ServiceState::Failed, ended.code, detail);
                }
                () = at(retry_at) => {}
                result = probe => {
                    let ok = self.probed(result);
                    next_probe = Some(Instant::now() + if ok { PROBE_READY } else { PROBE_STARTING });
                    if output::bound(&log) {
                        tracing::info!(service = %name, max_bytes = output::MAX_BYTES, "service output file cut back");
                    }
                }
            }
        }
        if let Some(services) = running.take() {
            self.stop(services, &record).await;
        }
    }

    /// The group an earlier agent, killed, left running: taken over instead of started twice.
    fn adopt(&self, record: &Path) -> Option<Running> {
        let single = service_group::single_service_record(&self.state_dir);
        let pgid = service_group::find_running(record).or_else(|| {
            // An agent of the single-service versions kept one record for its one service.
            let pgid = service_group::find_running(&single)?;
            let _ = service_group::save(record, pgid);
            service_group::clear(&single);
            Some(pgid)
        })?;
        tracing::warn!(service = %self.def.name, pgid, "found the service running, left by an earlier agent; taking it over instead of starting a second copy");
        self.set(ServiceState::Starting, None, String::new());
        Some(Running::Adopted(pgid))
    }

    fn start(&self, command: &str, record: &Path, log: &Path) -> Option<Running> {
        let started = output::open_for_start(log).and_then(|file| process::spawn(command, file));
        match started {
            Ok(started) => {
                if let Some(pgid) = started.pgid()
                    && let Err(err) = service_group::save(record, pgid)
                {
                    tracing::warn!(service = %self.def.name, error = %err, "cannot record the service's process group; an agent restarted after a crash may not find it");
                }
                tracing::info!(service = %self.def.name, pgid = started.pgid(), "started service");
                self.set(ServiceState::Starting, None, String::new());
                Some(started)
            }
            Err(err) => {
                let detail = format!("cannot start it: {err}");
                tracing::warn!(service = %self.def.name, error = %detail, "service not started");
                self.set(ServiceState::Failed, None, detail);
                None
            }
        }
    }

    async fn stop(&self, services: Running, record: &Path) {
        let grace = self.def.stop_timeout;
        if services.stop(grace).await {
            tracing::warn!(service = %self.def.name, grace_ms = grace.as_millis() as u64, "service ignored SIGTERM; killed");
        }
        service_group::clear(record);
        tracing::info!(service = %self.def.name, "stopped service");
        self.set(ServiceState::Stopped, None, String::new());
    }

    async fn run_unit(self, unit: &str, mut want: watch::Receiver<bool>) {
        let mut asked = true;
        loop {
            let run = *want.borrow_and_update();
            let mut error = String::new();
            if asked {
                let verb = if run { "start" } else { "stop" };
                error = systemctl(&[verb, unit]).await.err().unwrap_or_default();
            }
            let active = systemctl(&["is-active", unit]).await.unwrap_or_else(|e| e);
            let pause = if active == "active" {
                let ok = self.probed(readiness::probe(&self.def.ready).await);
                if ok { UNIT_CHECK } else { PROBE_STARTING }
            } else if run {
                let detail = if error.is_empty() {
                    format!("unit {unit} is {active}")
                } else {
                    error
                };
                self.set(ServiceState::Failed, None, detail);
                UNIT_CHECK
            } else {
                self.set(ServiceState::Stopped, None, String::new());
                UNIT_CHECK
            };
            tokio::select! {
                changed = want.changed() => {
                    if changed.is_err() { break }
                    asked = true;
                }
                () = tokio::time::sleep(pause) => asked = false,
            }
        }
    }

    async fn run_external(self, mut want: watch::Receiver<bool>) {
        loop {
            let pause = if self.def.ready == Readiness::Running {
                self.set(ServiceState::External, None, String::new());
                // Nothing to probe: only a change of what is wanted (or the end) wakes it.
                Duration::from_secs(3600)
            } else {
                match readiness::probe(&self.def.ready).await {
                    Ok(()) => {
                        self.set(ServiceState::Ready, None, String::new());
                        PROBE_READY
                    }
                    Err(why) => {
                        let detail = format!("started by someone else, and not ready: {why}");
                        self.set(ServiceState::Stopped, None, detail);
                        PROBE_STARTING
                    }
                }
            };
            tokio::select! {
                changed = want.changed() => if changed.is_err() { break },
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}

async fn systemctl(args: &[&str]) -> Result<String, String> {
    let out = Command::new("systemctl")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("cannot run systemctl: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() {
        Ok(text)
    } else if args.first() == Some(&"is-active") {
        // is-active answers the state on stdout with a non-zero status for every inactive one.
        Err(text)
    } else {
        Err(format!(
            "systemctl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
