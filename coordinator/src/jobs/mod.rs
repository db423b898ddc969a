//! The job engine: one mutating job at a time, persisted before its first step, resumed from its
//! last completed step after a coordinator restart (steps are idempotent).

mod adopt;
mod ctx;
mod delete;
mod install;
mod lifecycle;
mod upgrade;
mod workers;

use std::sync::Arc;

use qserv_proto::v1::{Job, Mode};
use tokio::sync::{Notify, watch};

pub use ctx::{JobCtx, StepError};

use crate::core::Core;
use crate::fsm::{self, Op, Rule};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Install,
    Up,
    Down,
    Delete,
    Upgrade,
    Repair,
    Adopt,
    WorkersAdd,
    WorkersRemove,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Install => "install",
            Kind::Up => "up",
            Kind::Down => "down",
            Kind::Delete => "delete",
            Kind::Upgrade => "upgrade",
            Kind::Repair => "repair",
            Kind::Adopt => "adopt",
            Kind::WorkersAdd => "workers-add",
            Kind::WorkersRemove => "workers-remove",
        }
    }

    const ALL: [Kind; 9] = [
        Kind::Install,
        Kind::Up,
        Kind::Down,
        Kind::Delete,
        Kind::Upgrade,
        Kind::Repair,
        Kind::Adopt,
        Kind::WorkersAdd,
        Kind::WorkersRemove,
    ];

    fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    fn op(self) -> Op {
        match self {
            Kind::Install => Op::Install,
            Kind::Up => Op::Up,
            Kind::Down => Op::Down,
            Kind::Delete => Op::Delete,
            Kind::Upgrade => Op::UpgradeApply,
            Kind::Repair => Op::Repair,
            Kind::Adopt => Op::Install,
            Kind::WorkersAdd => Op::WorkersAdd,
            Kind::WorkersRemove => Op::WorkersRemove,
        }
    }

    fn steps(self) -> &'static [&'static str] {
        match self {
            Kind::Install => install::STEPS,
            Kind::Up => lifecycle::UP_STEPS,
            Kind::Down => lifecycle::DOWN_STEPS,
            Kind::Delete => delete::STEPS,
            Kind::Upgrade => upgrade::APPLY_STEPS,
            Kind::Repair => upgrade::REPAIR_STEPS,
            Kind::Adopt => adopt::STEPS,
            Kind::WorkersAdd => workers::ADD_STEPS,
            Kind::WorkersRemove => workers::REMOVE_STEPS,
        }
    }

    async fn run_step(self, ctx: &JobCtx, index: usize) -> Result<(), StepError> {
        match self {
            Kind::Install => install::step(ctx, index).await,
            Kind::Up => lifecycle::up_step(ctx, index).await,
            Kind::Down => lifecycle::down_step(ctx, index).await,
            Kind::Delete => delete::step(ctx, index).await,
            Kind::Upgrade => upgrade::apply_step(ctx, index).await,
            Kind::Repair => upgrade::repair_step(ctx, index).await,
            Kind::Adopt => adopt::step(ctx, index).await,
            Kind::WorkersAdd => workers::add_step(ctx, index).await,
            Kind::WorkersRemove => workers::remove_step(ctx, index).await,
        }
    }
}

/// What a mutating command gets back.
#[derive(Debug)]
pub enum Submitted {
    Job(String),
    NoOp(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// Mode, another job, bad input: exit 3.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Internal(String),
}

pub struct Engine {
    core: Arc<Core>,
    submit_lock: tokio::sync::Mutex<()>,
    wake: Notify,
    /// The job being run, for watchers; `None` between jobs.
    current: watch::Sender<Option<Job>>,
    cancel: std::sync::Mutex<Option<(String, watch::Sender<bool>)>>,
}

impl Engine {
    pub fn new(core: Arc<Core>) -> Arc<Engine> {
        Arc::new(Engine {
            core,
            submit_lock: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            current: watch::channel(None).0,
            cancel: std::sync::Mutex::new(None),
        })
    }

    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    pub fn watch_current(&self) -> watch::Receiver<Option<Job>> {
        self.current.subscribe()
    }

    /// Checks the guard table and the one-job rule, validates, and persists the job.
    pub async fn submit(
        &self,
        kind: Kind,
        params: impl FnOnce() -> serde_json::Value,
        requested_by: &str,
        wait: bool,
        validate: impl AsyncFnOnce(&Arc<Core>) -> Result<Option<String>, SubmitError>,
    ) -> Result<Submitted, SubmitError> {
        let _serial = self.submit_lock.lock().await;
        let internal = |e: crate::store::StoreError| SubmitError::Internal(e.to_string());
        let unfinished = self.core.store.unfinished_jobs().await.map_err(internal)?;
        if let Some(running) = unfinished.first()
            && !wait
        {
            let job = self.core.store.job(running).await.map_err(internal)?;
            let kind = job.map(|j| j.kind).unwrap_or_default();
            return Err(SubmitError::Refused(format!(
                "job {running} ({kind}) is running; follow it with 'qserv jobs wait {running}', or pass --wait to queue behind it"
            )));
        }
        if unfinished.is_empty() {
            let (mode, _) = self.core.mode();
            match fsm::check(kind.op(), mode) {
                Ok(Rule::NoOp) => {
                    return Ok(Submitted::NoOp(format!(
                        "nothing to do: the instance is already {}",
                        qserv_proto::names::mode_name(if kind == Kind::Delete {
                            Mode::Uninstalled
                        } else {
                            mode
                        })
                    )));
                }
                Ok(_) => {}
                Err(refusal) => return Err(SubmitError::Refused(refusal)),
            }
            if let Some(noop) = validate(&self.core).await? {
                return Ok(Submitted::NoOp(noop));
            }
        }
        let params = params().to_string();
        let id = self
            .core
            .store
            .create_job(
                kind.name(),
                &params,
                requested_by,
                kind.steps(),
                crate::now_ms(),
            )
            .await
            .map_err(internal)?;
        tracing::info!(job = %id, kind = kind.name(), requested_by, "job created");
        self.wake.notify_one();
        Ok(Submitted::Job(id))
    }

    /// Asks the running job to stop at its next check; a queued job is cancelled at once.
    pub async fn cancel(&self, id: &str) -> Result<Option<Job>, SubmitError> {
        let internal = |e: crate::store::StoreError| SubmitError::Internal(e.to_string());
        if let Ok(guard) = self.cancel.lock()
            && let Some((running, flag)) = guard.as_ref()
            && running == id
        {
            flag.send_replace(true);
        } else if let Some(mut job) = self.core.store.job(id).await.map_err(internal)?
            && job.state == "queued"
        {
            job.state = "cancelled".to_owned();
            job.finished_at_ms = crate::now_ms();
            self.core.store.save_job(&job).await.map_err(internal)?;
        }
        self.core.store.job(id).await.map_err(internal)
    }

    /// Runs jobs one after another, forever: first those a previous process left unfinished.
    pub async fn run(self: Arc<Self>) {
        loop {
            let next = match self.core.store.unfinished_jobs().await {
                Ok(ids) => ids.into_iter().next(),
                Err(err) => {
                    tracing::error!(error = %err, "cannot read the job queue");
                    None
                }
            };
            match next {
                Some(id) => self.run_job(&id).await,
                None => self.wake.notified().await,
            }
        }
    }

    async fn run_job(&self, id: &str) {
        let Ok(Some(mut job)) = self.core.store.job(id).await else {
            tracing::error!(job = id, "job vanished from the store");
            return;
        };
        let Some(kind) = Kind::parse(&job.kind) else {
            job.state = "interrupted".to_owned();
            job.error = format!("this coordinator does not know jobs of kind '{}'", job.kind);
            job.finished_at_ms = crate::now_ms();
            let _ = self.core.store.save_job(&job).await;
            return;
        };
        let resumed = job.state == "running";
        if !resumed {
            // Queued with --wait: the mode may have changed since it was accepted.
            let (mode, _) = self.core.mode();
            let verdict = fsm::check(kind.op(), mode);
            if let Ok(Rule::NoOp) | Err(_) = verdict {
                job.state = if verdict.is_ok() {
                    "succeeded"
                } else {
                    "failed"
                }
                .to_owned();
                job.refused = verdict.is_err();
                job.error = verdict.err().unwrap_or_default();
                job.finished_at_ms = crate::now_ms();
                let _ = self.core.store.save_job(&job).await;
                return;
            }
            job.started_at_ms = crate::now_ms();
        }
        job.state = "running".to_owned();
        let (cancel_tx, cancel_rx) = watch::channel(false);
        if let Ok(mut guard) = self.cancel.lock() {
            *guard = Some((id.to_owned(), cancel_tx));
        }
        let log_seq = self
            .core
            .store
            .logs(id, 0)
            .await
            .map(|l| l.last().map_or(0, |l| l.seq))
            .unwrap_or(0);
        let ctx = JobCtx::new(
            self.core.clone(),
            job.clone(),
            self.current.clone(),
            cancel_rx,
            log_seq,
        );
        ctx.publish(&job).await;
        if resumed {
            ctx.log(
                "warn",
                "",
                "the coordinator restarted; resuming from the last completed step",
            )
            .await;
        } else {
            ctx.log(
                "info",
                "",
                format!("{} started by {}", kind.name(), job.requested_by),
            )
            .await;
        }
        let mut failure: Option<StepError> = None;
        for index in 0..job.steps.len() {
            if ctx.job.lock().await.steps[index].state == "succeeded" {
                continue;
            }
            if ctx.is_cancelled() {
                failure = Some(StepError::failed("cancelled"));
                break;
            }
            let snapshot = {
                let mut j = ctx.job.lock().await;
                j.steps[index].state = "running".to_owned();
                j.steps[index].started_at_ms = crate::now_ms();
                j.clone()
            };
            ctx.publish(&snapshot).await;
            let name = snapshot.steps[index].name.clone();
            ctx.log("info", "", format!("step {name} started")).await;
            let result = kind.run_step(&ctx, index).await;
            let snapshot = {
                let mut j = ctx.job.lock().await;
                j.steps[index].state = if result.is_ok() {
                    "succeeded"
                } else {
                    "failed"
                }
                .to_owned();
                j.steps[index].finished_at_ms = crate::now_ms();
                j.clone()
            };
            ctx.publish(&snapshot).await;
            if let Err(err) = result {
                ctx.log("error", "", format!("step {name} failed: {}", err.message))
                    .await;
                failure = Some(err);
                break;
            }
            ctx.log("info", "", format!("step {name} done")).await;
        }
        let final_job = {
            let mut j = ctx.job.lock().await;
            j.finished_at_ms = crate::now_ms();
            match failure {
                None => j.state = "succeeded".to_owned(),
                Some(err) => {
                    j.state = if ctx.is_cancelled() {
                        "cancelled"
                    } else {
                        "failed"
                    }
                    .to_owned();
                    j.error = err.message;
                    j.refused = err.refused;
                    j.timed_out = err.timed_out;
                }
            }
            j.clone()
        };
        ctx.publish(&final_job).await;
        let seconds = (final_job.finished_at_ms - final_job.started_at_ms).max(0) as f64 / 1000.0;
        self.core
            .metrics
            .job_finished(&final_job.kind, &final_job.state, seconds);
        tracing::info!(job = %final_job.id, state = %final_job.state, error = %final_job.error, "job finished");
        if let Ok(mut guard) = self.cancel.lock() {
            *guard = None;
        }
    }
}
