//! The service controller: starts the local Qserv services when the mode is `normal` and stops
//! them otherwise.
//!
//! - `none` only reports (services `none`): for deployments where something else starts Qserv
//!   and gates it with `qserv-agent gate`.
//! - `exec` runs `--service-cmd` through `sh -c` in its own process group, recorded in the state
//!   directory, restarts it with backoff if it dies in `normal`, and stops it with SIGTERM, then
//!   SIGKILL after `--service-stop-timeout`. A group left running by an agent that was killed is
//!   taken over, not started twice.
//! - `systemd` starts and stops `--service-unit` through `systemctl`.
//!
//! A restart request (`RestartServices`, for a rolling restart in `normal`) stops the services
//! and starts them at once, and is answered when they were started again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use qserv_model::{AgentState, Mode, Services};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::controllers::service_group;
use crate::node::state::ModeState;

#[derive(Debug, Clone)]
pub enum ControllerKind {
    None,
    Exec { command: String },
    Systemd { unit: String },
}

/// What a restart request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restarted {
    /// Stopped and started again.
    Done,
    /// Nothing to restart, and why (not in `normal`, or a controller that runs nothing).
    Nothing(String),
    /// Stopped, and could not be started again.
    Failed(String),
}

/// A restart request, answered on the channel it carries.
pub type RestartRequest = oneshot::Sender<Restarted>;

fn restart_backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .without_max_times()
        .build()
}

fn publish(status: &watch::Sender<AgentState>, state: Services, error: String) {
    crate::controllers::probe::publish(status, false, |s| {
        let changed = s.services != state || s.services_error != error;
        s.services = state;
        s.services_error = error;
        changed
    });
}

pub async fn run(
    kind: ControllerKind,
    grace: Duration,
    state_dir: PathBuf,
    desired: watch::Receiver<ModeState>,
    status: watch::Sender<AgentState>,
    restarts: mpsc::Receiver<RestartRequest>,
) {
    match kind {
        ControllerKind::None => {
            publish(&status, Services::None, String::new());
            let mut restarts = restarts;
            while let Some(reply) = restarts.recv().await {
                let _ = reply.send(Restarted::Nothing(
                    "this agent's service controller is 'none': whatever runs the services restarts them".to_owned(),
                ));
            }
        }
        ControllerKind::Exec { command } => {
            let record = service_group::record_path(&state_dir);
            run_exec(&command, grace, &record, desired, status, restarts).await;
        }
        ControllerKind::Systemd { unit } => run_systemd(&unit, desired, status, restarts).await,
    }
}

/// Why a restart in `mode` has nothing to do, if it has not.
fn nothing_to_restart(mode: Option<Mode>) -> Option<Restarted> {
    (mode != Some(Mode::Normal)).then(|| {
        Restarted::Nothing(format!(
            "the agent holds mode {}: its services are stopped",
            Mode::name_or_unknown(mode)
        ))
    })
}

/// The services the exec controller is responsible for.
enum Running {
    /// Started by this agent: it can wait for the shell.
    Child(Child),
    /// Left running by an earlier agent that was killed: only its group is known.
    Adopted(i32),
}

impl Running {
    fn pgid(&self) -> Option<i32> {
        match self {
            Running::Child(child) => child.id().and_then(|id| i32::try_from(id).ok()),
            Running::Adopted(pgid) => Some(*pgid),
        }
    }

    /// Resolves when the services ended: the shell exited, or no process of an adopted group
    /// is left.
    async fn ended(&mut self) -> String {
        match self {
            Running::Child(child) => match child.wait().await {
                Ok(code) => format!("the service command exited ({code})"),
                Err(err) => format!("cannot wait for the service command: {err}"),
            },
            Running::Adopted(pgid) => {
                while service_group::alive(*pgid) {
                    tokio::time::sleep(ADOPTED_POLL).await;
                }
                "the services left by an earlier agent ended".to_owned()
            }
        }
    }
}

/// How often an adopted group, which cannot be waited for, is checked.
const ADOPTED_POLL: Duration = Duration::from_millis(500);

/// Starts the service command and records its group.
fn start(
    command: &str,
    record: &Path,
    status: &watch::Sender<AgentState>,
) -> Result<Running, String> {
    match spawn(command) {
        Ok(started) => {
            let started = Running::Child(started);
            if let Some(pgid) = started.pgid()
                && let Err(err) = service_group::save(record, pgid)
            {
                tracing::warn!(error = %err, "cannot record the services' process group; an agent restarted after a crash may not find them");
            }
            tracing::info!(pgid = started.pgid(), "started services");
            publish(status, Services::Running, String::new());
            Ok(started)
        }
        Err(err) => {
            let error = format!("cannot start the service command: {err}");
            tracing::warn!(error = %error, "services not started");
            publish(status, Services::Stopped, error.clone());
            Err(error)
        }
    }
}

async fn run_exec(
    command: &str,
    grace: Duration,
    record: &Path,
    mut desired: watch::Receiver<ModeState>,
    status: watch::Sender<AgentState>,
    mut restarts: mpsc::Receiver<RestartRequest>,
) {
    let mut running: Option<Running> = service_group::find_running(record).map(|pgid| {
        tracing::warn!(pgid, "found services an earlier agent left running; taking them over instead of starting a second copy");
        publish(&status, Services::Running, String::new());
        Running::Adopted(pgid)
    });
    if running.is_none() {
        service_group::clear(record);
    }
    let mut backoff = restart_backoff();
    let mut restart_at: Option<Instant> = None;
    loop {
        let want_running = desired.borrow_and_update().mode == Some(Mode::Normal);
        if want_running && running.is_none() && restart_at.is_none_or(|t| Instant::now() >= t) {
            restart_at = None;
            match start(command, record, &status) {
                Ok(started) => running = Some(started),
                Err(_) => restart_at = Some(Instant::now() + backoff.next().unwrap_or(grace)),
            }
        } else if !want_running {
            if let Some(services) = running.take() {
                stop(services, grace).await;
                service_group::clear(record);
                tracing::info!("stopped services");
            }
            backoff = restart_backoff();
            restart_at = None;
            publish(&status, Services::Stopped, String::new());
        }

        let ended = async {
            match running.as_mut() {
                Some(services) => services.ended().await,
                None => std::future::pending().await,
            }
        };
        let retry = async {
            match restart_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = desired.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            error = ended => {
                // What the shell left behind in its group goes too, before a new copy starts.
                if let Some(pgid) = running.take().and_then(|r| r.pgid()) {
                    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
                }
                service_group::clear(record);
                let delay = backoff.next().unwrap_or(Duration::from_secs(30));
                tracing::warn!(error = %error, restart_in_ms = delay.as_millis() as u64, "services died");
                restart_at = Some(Instant::now() + delay);
                publish(&status, Services::Stopped, error);
            }
            () = retry => {}
            Some(reply) = restarts.recv() => {
                let mode = desired.borrow().mode;
                let outcome = match nothing_to_restart(mode) {
                    Some(nothing) => nothing,
                    None => {
                        if let Some(services) = running.take() {
                            stop(services, grace).await;
                            service_group::clear(record);
                            publish(&status, Services::Stopped, String::new());
                            tracing::info!("stopped services to restart them");
                        }
                        backoff = restart_backoff();
                        match start(command, record, &status) {
                            Ok(started) => {
                                running = Some(started);
                                restart_at = None;
                                Restarted::Done
                            }
                            Err(error) => {
                                restart_at = Some(Instant::now() + backoff.next().unwrap_or(grace));
                                Restarted::Failed(error)
                            }
                        }
                    }
                };
                let _ = reply.send(outcome);
            }
        }
    }
    if let Some(services) = running.take() {
        stop(services, grace).await;
        service_group::clear(record);
    }
}

/// The service runs in a process group of its own, with the agent's environment less every
/// `QSERV_*` variable (the database password among them).
fn spawn(command: &str) -> std::io::Result<Child> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .process_group(0)
        .kill_on_drop(true);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("QSERV_") {
            cmd.env_remove(key);
        }
    }
    cmd.spawn()
}

/// SIGTERM to the whole process group, then SIGKILL if anything of it is still there after
/// `grace`.
async fn stop(services: Running, grace: Duration) {
    let Some(pgid) = services.pgid() else {
        return;
    };
    let group = Pid::from_raw(pgid);
    let _ = killpg(group, Signal::SIGTERM);
    let gone = async {
        match services {
            Running::Child(mut child) => {
                let _ = child.wait().await;
            }
            Running::Adopted(pgid) => {
                while service_group::alive(pgid) {
                    tokio::time::sleep(ADOPTED_POLL / 5).await;
                }
            }
        }
    };
    if tokio::time::timeout(grace, gone).await.is_err() {
        tracing::warn!(
            pgid,
            grace_ms = grace.as_millis() as u64,
            "services ignored SIGTERM; killing"
        );
    }
    // Children that outlived the shell still belong to the group.
    let _ = killpg(group, Signal::SIGKILL);
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
    } else {
        Err(format!(
            "systemctl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

async fn run_systemd(
    unit: &str,
    mut desired: watch::Receiver<ModeState>,
    status: watch::Sender<AgentState>,
    mut restarts: mpsc::Receiver<RestartRequest>,
) {
    let mut verb = None;
    loop {
        let want_running = desired.borrow_and_update().mode == Some(Mode::Normal);
        let asked = verb.take();
        let verb_now = asked.unwrap_or(if want_running { "start" } else { "stop" });
        let error = systemctl(&[verb_now, unit]).await.err().unwrap_or_default();
        let active = systemctl(&["is-active", unit]).await.unwrap_or_default() == "active";
        let state = if active {
            Services::Running
        } else {
            Services::Stopped
        };
        publish(&status, state, error);
        // Re-check periodically: someone may start or stop the unit behind the agent's back.
        tokio::select! {
            changed = desired.changed() => if changed.is_err() { break },
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
            Some(reply) = restarts.recv() => {
                let mode = desired.borrow().mode;
                let outcome = match nothing_to_restart(mode) {
                    Some(nothing) => nothing,
                    None => match systemctl(&["restart", unit]).await {
                        Ok(_) => Restarted::Done,
                        Err(error) => Restarted::Failed(error),
                    },
                };
                // The loop's next round reads the unit's state back.
                verb = Some("start");
                let _ = reply.send(outcome);
            }
        }
    }
}
