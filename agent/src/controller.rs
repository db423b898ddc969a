//! The service controller: starts the local Qserv services when the mode is `normal` and stops
//! them otherwise.
//!
//! - `none` only reports (services `unknown`): for deployments where something else starts Qserv
//!   and gates it with `qserv-agent gate`.
//! - `exec` runs `--service-cmd` through `sh -c` in its own process group, restarts it with
//!   backoff if it dies in `normal`, and stops it with SIGTERM, then SIGKILL after a grace period.
//! - `systemd` starts and stops `--service-unit` through `systemctl`.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use qserv_proto::v1::{AgentStatus, Mode, ServiceState};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::state::ModeState;

#[derive(Debug, Clone)]
pub enum ControllerKind {
    None,
    Exec { command: String },
    Systemd { unit: String },
}

fn restart_backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .without_max_times()
        .build()
}

fn publish(status: &watch::Sender<AgentStatus>, state: ServiceState, error: String) {
    crate::probe::publish(status, false, |s| {
        let changed = s.services != i32::from(state) || s.services_error != error;
        s.services = state.into();
        s.services_error = error;
        changed
    });
}

pub async fn run(
    kind: ControllerKind,
    grace: Duration,
    desired: watch::Receiver<ModeState>,
    status: watch::Sender<AgentStatus>,
) {
    match kind {
        ControllerKind::None => publish(&status, ServiceState::None, String::new()),
        ControllerKind::Exec { command } => run_exec(&command, grace, desired, status).await,
        ControllerKind::Systemd { unit } => run_systemd(&unit, desired, status).await,
    }
}

async fn run_exec(
    command: &str,
    grace: Duration,
    mut desired: watch::Receiver<ModeState>,
    status: watch::Sender<AgentStatus>,
) {
    let mut child: Option<Child> = None;
    let mut backoff = restart_backoff();
    let mut restart_at: Option<Instant> = None;
    let mut last_error = String::new();
    loop {
        let want_running = desired.borrow_and_update().mode == Mode::Normal;
        if want_running && child.is_none() && restart_at.is_none_or(|t| Instant::now() >= t) {
            restart_at = None;
            match spawn(command) {
                Ok(started) => {
                    tracing::info!(pid = started.id(), "started services");
                    child = Some(started);
                    publish(&status, ServiceState::Running, String::new());
                }
                Err(err) => {
                    last_error = format!("cannot start the service command: {err}");
                    tracing::warn!(error = %last_error, "services not started");
                    restart_at = Some(Instant::now() + backoff.next().unwrap_or(grace));
                    publish(&status, ServiceState::Stopped, last_error.clone());
                }
            }
        } else if !want_running {
            if let Some(running) = child.take() {
                stop(running, grace).await;
                tracing::info!("stopped services");
            }
            backoff = restart_backoff();
            restart_at = None;
            last_error.clear();
            publish(&status, ServiceState::Stopped, String::new());
        }

        let exited = async {
            match child.as_mut() {
                Some(running) => running.wait().await,
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
            result = exited => {
                child = None;
                last_error = match result {
                    Ok(code) => format!("the service command exited ({code})"),
                    Err(err) => format!("cannot wait for the service command: {err}"),
                };
                let delay = backoff.next().unwrap_or(Duration::from_secs(30));
                tracing::warn!(error = %last_error, restart_in_ms = delay.as_millis() as u64, "services died");
                restart_at = Some(Instant::now() + delay);
                publish(&status, ServiceState::Stopped, last_error.clone());
            }
            () = retry => {}
        }
    }
    if let Some(running) = child.take() {
        stop(running, grace).await;
    }
}

fn spawn(command: &str) -> std::io::Result<Child> {
    Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
}

/// SIGTERM to the whole process group, then SIGKILL if it is still there after `grace`.
async fn stop(mut child: Child, grace: Duration) {
    let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) else {
        return;
    };
    let group = Pid::from_raw(pid);
    let _ = killpg(group, Signal::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        tracing::warn!(
            pid,
            grace_ms = grace.as_millis() as u64,
            "services ignored SIGTERM; killing"
        );
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.wait().await;
    } else {
        // Children that outlived the shell still belong to the group.
        let _ = killpg(group, Signal::SIGKILL);
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
    status: watch::Sender<AgentStatus>,
) {
    loop {
        let want_running = desired.borrow_and_update().mode == Mode::Normal;
        let verb = if want_running { "start" } else { "stop" };
        let error = systemctl(&[verb, unit]).await.err().unwrap_or_default();
        let active = systemctl(&["is-active", unit]).await.unwrap_or_default() == "active";
        let state = if active {
            ServiceState::Running
        } else {
            ServiceState::Stopped
        };
        publish(&status, state, error);
        // Re-check periodically: someone may start or stop the unit behind the agent's back.
        tokio::select! {
            changed = desired.changed() => if changed.is_err() { break },
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}
