//! The service controller: keeps each of the node's services where the mode and the release
//! want it (DESIGN §15). In `normal` a service runs when the coordinator released it (`up`
//! releases the instance's services wave by wave, and an agent restarted in `normal` starts
//! what it held released); outside `normal` none runs. Each service has its own supervisor
//! (`supervisor.rs`); this module decides what each should do and restarts them in order.
//!
//! A restart request (`RestartServices`, for a rolling restart in `normal`) stops the services
//! it names (all, when it names none) in reverse order and starts them again in order, each
//! waiting until the one before is ready; it is answered once they are, or with the first that
//! is not.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use qserv_model::{AgentState, Mode, ServiceName, ServiceState, ServiceStatus};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::controllers::probe::{now_ms, publish};
use crate::controllers::supervisor::{Supervisor, summarize};
use crate::node::secrets::Secrets;
use crate::node::services::{Launch, Readiness, ServiceDef};
use crate::node::state::ModeState;

/// What a restart request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restarted {
    /// Stopped and started again, and ready.
    Done,
    /// Nothing to restart, and why (not in `normal`, or nothing the agent starts).
    Nothing(String),
    /// Stopped, and one did not come back: which, and why.
    Failed(String),
}

/// A restart request, answered on the channel it carries.
#[derive(Debug)]
pub struct RestartRequest {
    /// The services to restart; all the agent starts when empty.
    pub services: Vec<ServiceName>,
    pub reply: oneshot::Sender<Restarted>,
}

/// How long a restarted service may take to become ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The state a service shows before its supervisor said anything.
fn initial(def: &ServiceDef) -> ServiceStatus {
    let state = match (&def.launch, &def.ready) {
        (Launch::External, Readiness::Running) => ServiceState::External,
        _ => ServiceState::Stopped,
    };
    ServiceStatus {
        external: def.launch == Launch::External,
        ..ServiceStatus::new(def.name.clone(), state, now_ms())
    }
}

pub struct Controller {
    pub defs: Vec<ServiceDef>,
    pub state_dir: PathBuf,
    pub secrets: Arc<Secrets>,
    pub status: watch::Sender<AgentState>,
}

impl Controller {
    pub async fn run(
        self,
        mut desired: watch::Receiver<ModeState>,
        mut restarts: mpsc::Receiver<RestartRequest>,
    ) {
        publish(&self.status, false, |s| {
            s.service_states = self.defs.iter().map(initial).collect();
            summarize(s);
            true
        });
        let mut supervisors = JoinSet::new();
        let mut wants = Vec::with_capacity(self.defs.len());
        for (slot, def) in self.defs.iter().enumerate() {
            let (want, wanted) = watch::channel(false);
            wants.push(want);
            let supervisor = Supervisor {
                def: def.clone(),
                slot,
                state_dir: self.state_dir.clone(),
                secrets: self.secrets.clone(),
                status: self.status.clone(),
            };
            supervisors.spawn(supervisor.run(wanted));
        }
        loop {
            let held = desired.borrow_and_update().clone();
            for (def, want) in self.defs.iter().zip(&wants) {
                let run = wanted(&held, &def.name);
                want.send_if_modified(|w| std::mem::replace(w, run) != run);
            }
            tokio::select! {
                changed = desired.changed() => if changed.is_err() { break },
                Some(request) = restarts.recv() => {
                    let held = desired.borrow().clone();
                    let outcome = self.restart(&held, &request.services, &wants).await;
                    let _ = request.reply.send(outcome);
                }
            }
        }
        // Dropping the wants ends every supervisor, which stops its service first.
        drop(wants);
        while supervisors.join_next().await.is_some() {}
    }

    async fn restart(
        &self,
        held: &ModeState,
        names: &[ServiceName],
        wants: &[watch::Sender<bool>],
    ) -> Restarted {
        if held.mode != Some(Mode::Normal) {
            return Restarted::Nothing(format!(
                "the agent holds mode {}: its services are stopped",
                Mode::name_or_unknown(held.mode)
            ));
        }
        let targets = match restart_targets(&self.defs, held, names) {
            Ok(targets) if targets.is_empty() => {
                return Restarted::Nothing(
                    "this node runs no service the agent starts: whatever runs them restarts them"
                        .to_owned(),
                );
            }
            Ok(targets) => targets,
            Err(why) => return Restarted::Failed(why),
        };
        for &slot in targets.iter().rev() {
            wants[slot].send_replace(false);
            let deadline = Instant::now() + self.defs[slot].stop_timeout + Duration::from_secs(5);
            let stopped = self
                .wait(slot, deadline, |s| {
                    matches!(s.state, ServiceState::Stopped | ServiceState::Failed)
                })
                .await;
            if let Err(seen) = stopped {
                restore(&targets, wants);
                return Restarted::Failed(format!(
                    "{} did not stop within its stop-timeout (it is {})",
                    seen.name, seen.state
                ));
            }
        }
        for (i, &slot) in targets.iter().enumerate() {
            wants[slot].send_replace(true);
            let started = self
                .wait(slot, Instant::now() + START_TIMEOUT, |s| {
                    s.state.is_ready() || s.state == ServiceState::Failed
                })
                .await;
            let failure = match started {
                Ok(seen) if seen.state.is_ready() => None,
                Ok(seen) => Some(format!(
                    "{} failed to start again: {}",
                    seen.name, seen.detail
                )),
                Err(seen) => Some(format!(
                    "{} was not ready {} s after it was started again: {}",
                    seen.name,
                    START_TIMEOUT.as_secs(),
                    seen.detail
                )),
            };
            if let Some(why) = failure {
                restore(&targets[i..], wants);
                return Restarted::Failed(why);
            }
        }
        Restarted::Done
    }

    /// Waits until service `slot` is `done`; the last state seen when the deadline passes.
    async fn wait(
        &self,
        slot: usize,
        deadline: Instant,
        done: impl Fn(&ServiceStatus) -> bool,
    ) -> Result<ServiceStatus, ServiceStatus> {
        let mut seen = self.status.subscribe();
        loop {
            let last = seen.borrow_and_update().service_states.get(slot).cloned();
            let Some(last) = last else {
                return Err(initial(&self.defs[slot]));
            };
            if done(&last) {
                return Ok(last);
            }
            match tokio::time::timeout_at(deadline, seen.changed()).await {
                Ok(Ok(())) => {}
                _ => return Err(last),
            }
        }
    }
}

/// Whether a service runs under the held mode and release.
fn wanted(held: &ModeState, name: &ServiceName) -> bool {
    held.mode == Some(Mode::Normal) && held.release.allows(name)
}

/// The slots to restart, in start order: the named ones (all when none is named) that the agent
/// starts itself and that are released.
fn restart_targets(
    defs: &[ServiceDef],
    held: &ModeState,
    names: &[ServiceName],
) -> Result<Vec<usize>, String> {
    for name in names {
        match defs.iter().find(|d| &d.name == name) {
            None => return Err(format!("this node runs no service '{name}'")),
            Some(def) if def.launch == Launch::External => {
                return Err(format!(
                    "'{name}' is started by someone else: restart it where it is started"
                ));
            }
            Some(_) => {}
        }
    }
    Ok(defs
        .iter()
        .enumerate()
        .filter(|(_, d)| names.is_empty() || names.contains(&d.name))
        .filter(|(_, d)| d.launch != Launch::External && wanted(held, &d.name))
        .map(|(slot, _)| slot)
        .collect())
}

/// After a restart stopped half way, what it stopped is wanted again: the mode is `normal`.
fn restore(slots: &[usize], wants: &[watch::Sender<bool>]) {
    for &slot in slots {
        wants[slot].send_if_modified(|w| !std::mem::replace(w, true));
    }
}

#[cfg(test)]
mod tests {
    use qserv_model::Release;

    use super::*;

    fn def(name: &str, launch: Launch) -> ServiceDef {
        ServiceDef {
            name: ServiceName::parse(name).unwrap_or_else(|e| panic!("{e}")),
            launch,
            ready: Readiness::Running,
            stop_timeout: Duration::from_secs(1),
            version: None,
            config: None,
        }
    }

    fn name(n: &str) -> ServiceName {
        ServiceName::parse(n).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_restart_takes_the_released_services_the_agent_starts_in_order() {
        let defs = vec![
            def("proxy", Launch::Exec("p".to_owned())),
            def("ext", Launch::External),
            def("czar-http", Launch::Exec("h".to_owned())),
        ];
        let mut held = ModeState {
            mode: Some(Mode::Normal),
            ..ModeState::default()
        };
        assert_eq!(restart_targets(&defs, &held, &[]), Ok(vec![0, 2]));
        assert_eq!(
            restart_targets(&defs, &held, &[name("czar-http")]),
            Ok(vec![2])
        );
        held.release = Release::Only([name("proxy")].into());
        assert_eq!(restart_targets(&defs, &held, &[]), Ok(vec![0]));
        let external = restart_targets(&defs, &held, &[name("ext")]);
        assert!(external.is_err_and(|e| e.contains("started by someone else")));
        let unknown = restart_targets(&defs, &held, &[name("cmsd")]);
        assert_eq!(unknown, Err("this node runs no service 'cmsd'".to_owned()));
    }

    #[test]
    fn services_run_only_in_normal_and_when_released() {
        let proxy = name("proxy");
        let mut held = ModeState::default();
        assert!(!wanted(&held, &proxy));
        held.mode = Some(Mode::Normal);
        assert!(wanted(&held, &proxy));
        held.release = Release::none();
        assert!(!wanted(&held, &proxy));
        held.mode = Some(Mode::Maintenance);
        held.release = Release::All;
        assert!(!wanted(&held, &proxy));
    }
}
