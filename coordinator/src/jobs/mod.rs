//! The job engine: one mutating job at a time, admitted on fresh facts when it is submitted and
//! again when a queued job starts, persisted before its first step, resumed from its last
//! completed step after a coordinator restart (steps are idempotent).

mod adopt;
mod config;
mod ctx;
mod delete;
mod drain;
mod group_commit;
mod install;
mod lifecycle;
mod publish;
mod restart;
mod upgrade;
mod waves;
mod workers;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{Notify, watch};

use crate::domain::job::{
    AdoptStep, ConfigApplyStep, DeleteStep, DownStep, InstallStep, JobRecord, JobSpec, JobState,
    LogRecord, RepairStep, RestartStep, StepState, StoredSpec, UpStep, UpgradeStep, WorkersAddStep,
    WorkersRemoveStep, WorkersReplaceStep, WorkersStateStep,
};
pub use ctx::{JobCtx, Level, StepError};
use publish::Urgency;

use crate::agents::api::Scope;
use crate::instance::admission::{self, Facts, Verdict};
use crate::runtime::core::Core;
use crate::runtime::term::Term;
use crate::store::StoreError;

/// How long a new leader waits for each agent to take its token before leaving it to the
/// agent's monitor.
const TELL_TOKEN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// What a mutating command gets back.
#[derive(Debug)]
pub enum Submitted {
    /// The job's id, and what `--force` overrode to create it.
    Job(String, Option<String>),
    NoOp(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// Mode, another job, bad input: exit 3.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Internal(String),
    /// This coordinator lost its term while admitting: nothing was stored; the caller may
    /// retry against the leader.
    #[error("{0}")]
    Deposed(String),
}

impl From<StoreError> for SubmitError {
    fn from(err: StoreError) -> SubmitError {
        match err {
            StoreError::Fenced { .. } => SubmitError::Deposed(err.to_string()),
            _ => SubmitError::Internal(err.to_string()),
        }
    }
}

pub struct Engine {
    core: Arc<Core>,
    submit_lock: tokio::sync::Mutex<()>,
    wake: Notify,
    /// The job being run, for watchers; `None` between jobs.
    current: watch::Sender<Option<JobRecord>>,
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

    pub fn watch_current(&self) -> watch::Receiver<Option<JobRecord>> {
        self.current.subscribe()
    }

    /// The facts admission of `spec` rests on: the store's mode and inventory, and fresh probes
    /// of the nodes it needs, all at once and each within its own deadline.
    pub async fn facts(&self, spec: &JobSpec) -> Result<Facts, StoreError> {
        let inventory = self.core.store.load().await?.filter(|i| !i.name.is_empty());
        let (mode, _) = self.core.mode();
        let (known, new) = admission::needs(spec, inventory.as_ref());
        let (results, newcomers) = futures::future::join(
            crate::runtime::fresh::probe(&self.core, &known),
            futures::future::join_all(new.iter().map(|node| async move {
                (
                    node.name.clone(),
                    self.core.agents.probe(node, Scope::All).await,
                )
            })),
        )
        .await;
        let status = crate::runtime::fresh::view(&self.core, &results);
        let holdings = self.holdings(spec, &known, &status).await;
        Ok(Facts {
            mode,
            inventory,
            status,
            newcomers: newcomers.into_iter().collect::<BTreeMap<_, _>>(),
            holdings,
        })
    }

    /// For a worker about to leave the registry (without `--forget-replicas`): what its row
    /// would take with it, read now on the repl node.
    async fn holdings(
        &self,
        spec: &JobSpec,
        known: &[crate::domain::Node],
        status: &crate::instance::InstanceState,
    ) -> Option<Result<crate::agents::api::Holdings, crate::agents::api::AgentError>> {
        let name = match spec {
            JobSpec::WorkersRemove(p) if !p.forget_replicas => &p.name,
            JobSpec::WorkersReplace(p) if !p.forget_replicas => &p.old,
            _ => return None,
        };
        let node = status.node(name)?;
        let id = node.registry_id().map(str::to_owned)?;
        let repl = known.iter().find(|n| n.role == crate::domain::Role::Repl)?;
        Some(
            self.core
                .agents
                .worker_holdings(repl, &self.core.authority(), &id)
                .await,
        )
    }

    /// Admits `spec` (always, whether or not it will wait behind a running job) and persists
    /// it as a queued job. The agents are asked outside the lock that orders submissions, so
    /// that no agent, however slow, holds anyone else's command; a job is admitted again when
    /// it starts, on facts of that moment.
    pub async fn submit(
        &self,
        spec: JobSpec,
        requested_by: &str,
        wait: bool,
    ) -> Result<Submitted, SubmitError> {
        self.refuse_if_busy(wait).await?;
        let facts = self.facts(&spec).await.map_err(|e| self.store_error(e))?;
        let verdict = admission::admit(&spec, &facts).map_err(SubmitError::Refused)?;
        let _serial = self.submit_lock.lock().await;
        let busy = self.refuse_if_busy(wait).await?;
        // Behind a running job the mode may change: whether it is a no-op is decided when the
        // job starts.
        if let Verdict::NoOp(message) = verdict
            && !busy
        {
            return Ok(Submitted::NoOp(message));
        }
        let id = self
            .core
            .store
            .create_job(&spec, requested_by, crate::clock::now_ms())
            .await
            .map_err(|e| self.store_error(e))?;
        tracing::info!(job = %id, kind = spec.kind(), requested_by, "job created");
        self.wake.notify_one();
        Ok(Submitted::Job(id, admission::overridden(&spec, &facts)))
    }

    /// Whether a job has not ended yet; refused when one has not and the request does not wait.
    async fn refuse_if_busy(&self, wait: bool) -> Result<bool, SubmitError> {
        let unfinished = self
            .core
            .store
            .unfinished_jobs()
            .await
            .map_err(|e| self.store_error(e))?;
        let Some(running) = unfinished.first() else {
            return Ok(false);
        };
        if wait {
            return Ok(true);
        }
        // A job whose end cannot be stored looks running in the store; the store is the news.
        if let Some(problem) = self.core.store.unwritable() {
            return Err(SubmitError::Internal(problem));
        }
        let kind = self
            .core
            .store
            .job(running)
            .await
            .map_err(|e| self.store_error(e))?
            .map(|j| j.kind)
            .unwrap_or_default();
        Err(SubmitError::Refused(format!(
            "job {running} ({kind}) is running; follow it with 'qserv jobs wait {running}', or pass --wait to queue behind it"
        )))
    }

    /// Cancels a queued job at once (it never starts, whichever coordinator runs the queue),
    /// or asks the running one to stop at its next check.
    pub async fn cancel(&self, id: &str) -> Result<Option<JobRecord>, SubmitError> {
        let was = self
            .core
            .store
            .cancel_job(id, crate::clock::now_ms())
            .await
            .map_err(|e| self.store_error(e))?;
        if was == Some(JobState::Running)
            && let Ok(guard) = self.cancel.lock()
            && let Some((running, flag)) = guard.as_ref()
            && running == id
        {
            flag.send_replace(true);
        }
        Ok(self.core.store.job(id).await?)
    }

    /// A store failure as the operator is told it: which store, and why.
    fn store_error(&self, err: StoreError) -> SubmitError {
        match err {
            StoreError::Fenced { .. } => SubmitError::from(err),
            err => {
                self.core.store.health().failed(&err);
                SubmitError::Internal(self.core.store.write_problem(&err))
            }
        }
    }

    /// Runs jobs one after another while this coordinator leads: first those a previous
    /// leader (or process) left unfinished. A job in flight when the lease is lost is dropped
    /// where it stands; the store still says which steps completed, and the next leader resumes
    /// it from there.
    pub async fn run(self: Arc<Self>) {
        let mut term = self.core.term.subscribe();
        // A job that comes back first in the queue after running made no progress the store
        // kept (it cannot be written, say): the next try waits, longer each time.
        let mut stalls = stall_backoff();
        let mut last: Option<String> = None;
        loop {
            if term.wait_for(Term::is_leader).await.is_err() {
                return;
            }
            self.take_charge().await;
            loop {
                let next = match self.core.store.unfinished_jobs().await {
                    Ok(ids) => Ok(ids.into_iter().next()),
                    Err(err) => {
                        tracing::error!(error = %err, "cannot read the job queue");
                        Err(())
                    }
                };
                let stalled = match &next {
                    Ok(Some(id)) => last.as_ref() == Some(id),
                    Ok(None) => false,
                    Err(()) => true,
                };
                if stalled {
                    let delay = stalls.next().unwrap_or(STALL_MAX);
                    tracing::warn!(job = ?last, retry_in_ms = delay.as_millis(), "the job queue made no progress; trying again later");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = crate::runtime::leader::lost(&mut term) => break,
                    }
                } else {
                    stalls = stall_backoff();
                }
                let kept = match next {
                    Ok(Some(id)) => {
                        last = Some(id.clone());
                        tokio::select! {
                            () = self.run_job(&id) => true,
                            () = crate::runtime::leader::lost(&mut term) => {
                                self.abandon(&id);
                                false
                            }
                        }
                    }
                    Ok(None) => {
                        last = None;
                        tokio::select! {
                            () = self.wake.notified() => true,
                            () = crate::runtime::leader::lost(&mut term) => false,
                        }
                    }
                    Err(()) => true,
                };
                if !kept {
                    break;
                }
            }
        }
    }

    /// On becoming leader: the store's mode and inventory as the previous leader left them,
    /// and every agent told this term's fencing token at once, so that a deposed leader that
    /// wakes up finds its commands refused.
    async fn take_charge(&self) {
        if let Err(err) = self.core.reload().await {
            tracing::error!(error = %err, "cannot read the inventory on taking the lead");
        }
        let (mode, _) = self.core.mode();
        if mode == crate::instance::Mode::Uninstalled {
            return;
        }
        let authority = self.core.authority();
        let nodes = self.core.nodes();
        let tells = nodes.iter().map(|node| {
            let authority = authority.clone();
            async move {
                // The mode the agents hold already: its release stays as it is.
                let release = self.core.release_for(node.role);
                let told = tokio::time::timeout(
                    TELL_TOKEN_TIMEOUT,
                    self.core.agents.set_mode(node, &authority, mode, &release),
                )
                .await;
                if !matches!(told, Ok(Ok(_))) {
                    tracing::warn!(node = %node.name, "cannot tell the agent this leader's token now; its monitor will");
                }
            }
        });
        futures::future::join_all(tells).await;
    }

    /// Forgets a job dropped on losing the lease.
    fn abandon(&self, id: &str) {
        if let Ok(mut guard) = self.cancel.lock() {
            *guard = None;
        }
        tracing::warn!(
            job = id,
            "lost the leader lease during the job; the next leader resumes it from its last completed step"
        );
    }

    /// Ends a job that never ran a step; one cancelled meanwhile stays cancelled.
    async fn end_unrun(&self, mut job: JobRecord, state: JobState, error: String, refused: bool) {
        job.state = state;
        job.error = error;
        job.refused = refused;
        job.finished_at_ms = crate::clock::now_ms();
        if let Err(err) = self.core.store.save_job_header(&job).await {
            self.core.store.health().failed(&err);
            tracing::error!(job = %job.id, error = %err, "cannot persist the end of a job");
            return;
        }
        self.publish_stored(&job.id).await;
        tracing::info!(job = %job.id, state = job.state.name(), error = %job.error, "job ended without running");
    }

    /// Ends a queued job that found nothing to do when its turn came: it succeeded, its steps
    /// were skipped, and its note says why (not its error: nothing failed).
    async fn end_nothing_to_do(&self, mut job: JobRecord, message: String) {
        for (index, step) in job.steps.iter_mut().enumerate() {
            step.state = StepState::Skipped;
            if let Err(err) = self.core.store.save_step(&job.id, index, step).await {
                tracing::error!(job = %job.id, error = %err, "cannot persist a skipped step");
            }
        }
        let line = LogRecord {
            seq: self.core.store.last_log_seq(&job.id).await.unwrap_or(0) + 1,
            at_ms: crate::clock::now_ms(),
            level: Level::Info,
            node: String::new(),
            message: message.clone(),
        };
        if let Err(err) = self.core.store.append_log(&job.id, &line).await {
            tracing::error!(job = %job.id, error = %err, "cannot persist a job log line");
        }
        job.note = message;
        self.end_unrun(job, JobState::Succeeded, String::new(), false)
            .await;
    }

    /// Tells watchers the job as the store has it.
    async fn publish_stored(&self, id: &str) {
        match self.core.store.job(id).await {
            Ok(Some(job)) => {
                self.current.send_replace(Some(job));
            }
            Ok(None) => {}
            Err(err) => tracing::error!(job = id, error = %err, "cannot read a job back"),
        }
    }

    fn set_cancel(&self, flag: Option<(String, watch::Sender<bool>)>) {
        if let Ok(mut guard) = self.cancel.lock() {
            *guard = flag;
        }
    }

    pub async fn run_job(&self, id: &str) {
        let Ok(Some(mut job)) = self.core.store.job(id).await else {
            tracing::error!(job = id, "cannot read the job from the store");
            return;
        };
        let spec = match &job.params {
            StoredSpec::Spec(spec) => spec.clone(),
            StoredSpec::Unreadable(err) => {
                let why = format!("{err}; run the command again");
                self.end_unrun(job, JobState::Interrupted, why, false).await;
                return;
            }
        };
        // Registered before the job can start, so that a cancel that finds it running always
        // reaches it; a cancel already stored reaches a resumed job through its record.
        let (cancel_tx, cancel_rx) = watch::channel(job.cancel_requested);
        self.set_cancel(Some((id.to_owned(), cancel_tx)));
        let resumed = job.state == JobState::Running;
        if !resumed && !self.start(&mut job, &spec).await {
            self.set_cancel(None);
            return;
        }
        job.state = JobState::Running;
        let log_seq = self.core.store.last_log_seq(id).await.unwrap_or(0);
        let ctx = JobCtx::new(
            self.core.clone(),
            spec,
            job,
            self.current.clone(),
            cancel_rx,
            log_seq,
        );
        ctx.publish().await;
        if resumed {
            ctx.log(
                Level::Warn,
                "",
                "the coordinator restarted; resuming from the last completed step",
            )
            .await;
        } else {
            ctx.log(
                Level::Info,
                "",
                format!("{} started by {}", ctx.spec.kind(), ctx.requested_by),
            )
            .await;
        }
        let failure = self.run_steps(&ctx).await.err();
        let cancelled = ctx.is_cancelled();
        ctx.finish(move |j| {
            j.finished_at_ms = crate::clock::now_ms();
            match failure {
                None => j.state = JobState::Succeeded,
                Some(err) if cancelled || err == StepError::Cancelled => {
                    j.state = JobState::Cancelled;
                    j.error = crate::domain::job::cancel_summary(&j.nodes);
                }
                Some(err) => {
                    j.state = JobState::Failed;
                    j.refused = matches!(err, StepError::Refused(_));
                    j.timed_out = matches!(err, StepError::TimedOut(_));
                    j.error = err.to_string();
                }
            }
        })
        .await;
        let done = ctx.record().await;
        let seconds = (done.finished_at_ms - done.started_at_ms).max(0) as f64 / 1000.0;
        self.core
            .metrics
            .job_finished(&done.kind, done.state.name(), seconds);
        tracing::info!(job = %done.id, state = done.state.name(), error = %done.error, "job finished");
        self.set_cancel(None);
    }

    /// Admits a queued job again on facts of this moment and starts it; false when it does not
    /// start (refused, nothing to do, cancelled meanwhile, the store failing), having ended it
    /// where that is the outcome.
    async fn start(&self, job: &mut JobRecord, spec: &JobSpec) -> bool {
        let verdict = match self.facts(spec).await {
            Ok(facts) => admission::admit(spec, &facts),
            Err(err) => Err(format!("cannot read the store: {err}")),
        };
        match verdict {
            Err(why) => {
                let why = format!("refused when it was to start: {why}");
                self.end_unrun(job.clone(), JobState::Failed, why, true)
                    .await;
                return false;
            }
            Ok(Verdict::NoOp(message)) => {
                self.end_nothing_to_do(job.clone(), message).await;
                return false;
            }
            Ok(Verdict::Run) => {}
        }
        let now = crate::clock::now_ms();
        match self.core.store.start_job(&job.id, now).await {
            Ok(true) => {
                job.started_at_ms = now;
                true
            }
            Ok(false) => {
                tracing::info!(job = %job.id, "the job was cancelled before it started; not starting it");
                self.publish_stored(&job.id).await;
                false
            }
            Err(err) => {
                self.core.store.health().failed(&err);
                tracing::error!(job = %job.id, error = %err, "cannot start the job");
                false
            }
        }
    }

    async fn run_steps(&self, ctx: &JobCtx) -> Result<(), StepError> {
        let steps = ctx.record().await.steps;
        for (index, step) in steps.iter().enumerate() {
            if step.state == StepState::Succeeded {
                continue;
            }
            if ctx.is_cancelled() {
                return Err(StepError::Cancelled);
            }
            set_step(ctx, index, StepState::Running).await?;
            ctx.log(Level::Info, "", format!("step {} started", step.name))
                .await;
            let result = run_step(ctx, &step.name).await;
            let state = match &result {
                Ok(()) => StepState::Succeeded,
                Err(StepError::Cancelled) => StepState::Cancelled,
                Err(_) => StepState::Failed,
            };
            let stored = set_step(ctx, index, state).await;
            let result = result.and(stored);
            match result {
                Ok(()) => {
                    ctx.log(Level::Info, "", format!("step {} done", step.name))
                        .await;
                }
                Err(err) => {
                    ctx.log(
                        Level::Error,
                        "",
                        format!("step {} failed: {err}", step.name),
                    )
                    .await;
                    return Err(err);
                }
            }
        }
        Ok(())
    }
}

/// Records a step's state; the job cannot go on without it, for a resumed job would not
/// know where it stood.
async fn set_step(ctx: &JobCtx, index: usize, state: StepState) -> Result<(), StepError> {
    let store = ctx.core.store.clone();
    let id = ctx.id.clone();
    ctx.update(
        Urgency::Now,
        |j| {
            let step = j.steps.get_mut(index)?;
            step.state = state;
            match state {
                StepState::Running => step.started_at_ms = crate::clock::now_ms(),
                StepState::Succeeded | StepState::Failed => {
                    step.finished_at_ms = crate::clock::now_ms();
                }
                StepState::Cancelled => step.finished_at_ms = crate::clock::now_ms(),
                StepState::Pending | StepState::Skipped => {}
            }
            Some(step.clone())
        },
        move |step| async move { store.save_step(&id, index, &step).await },
    )
    .await
    .map_err(StepError::from)
}

/// The pauses of a job queue that makes no progress.
fn stall_backoff() -> backon::ExponentialBackoff {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(std::time::Duration::from_millis(200))
        .with_max_delay(STALL_MAX)
        .with_jitter()
        .without_max_times()
        .build()
}

/// The longest pause of a stalled job queue.
const STALL_MAX: std::time::Duration = std::time::Duration::from_secs(10);

fn unknown_step(kind: &str, name: &str) -> StepError {
    StepError::Failed(format!(
        "this coordinator knows no step '{name}' of {kind} jobs; the job was made by another version"
    ))
}

/// Runs the step of the job's kind named `name`.
async fn run_step(ctx: &JobCtx, name: &str) -> Result<(), StepError> {
    let kind = ctx.spec.kind();
    let unknown = || unknown_step(kind, name);
    match &ctx.spec {
        JobSpec::Install(params) => {
            install::run(ctx, params, InstallStep::parse(name).ok_or_else(unknown)?).await
        }
        JobSpec::Adopt(params) => {
            adopt::run(ctx, params, AdoptStep::parse(name).ok_or_else(unknown)?).await
        }
        JobSpec::Up(params) => {
            lifecycle::up(ctx, params, UpStep::parse(name).ok_or_else(unknown)?).await
        }
        JobSpec::Down(params) => {
            lifecycle::down(ctx, params, DownStep::parse(name).ok_or_else(unknown)?).await
        }
        JobSpec::Delete(_) => delete::run(ctx, DeleteStep::parse(name).ok_or_else(unknown)?).await,
        JobSpec::Upgrade(params) => {
            upgrade::apply(ctx, params, UpgradeStep::parse(name).ok_or_else(unknown)?).await
        }
        JobSpec::Repair(params) => {
            upgrade::repair(ctx, params, RepairStep::parse(name).ok_or_else(unknown)?).await
        }
        JobSpec::WorkersAdd(params) => {
            workers::add(
                ctx,
                params,
                WorkersAddStep::parse(name).ok_or_else(unknown)?,
            )
            .await
        }
        JobSpec::WorkersRemove(params) => {
            workers::remove(
                ctx,
                params,
                WorkersRemoveStep::parse(name).ok_or_else(unknown)?,
            )
            .await
        }
        JobSpec::Restart(params) => {
            restart::run(ctx, params, RestartStep::parse(name).ok_or_else(unknown)?).await
        }
        JobSpec::WorkersReplace(params) => {
            workers::replace(
                ctx,
                params,
                WorkersReplaceStep::parse(name).ok_or_else(unknown)?,
            )
            .await
        }
        JobSpec::WorkersState(params) => {
            workers::set_state(
                ctx,
                params,
                WorkersStateStep::parse(name).ok_or_else(unknown)?,
            )
            .await
        }
        JobSpec::ConfigApply(params) => {
            config::apply(
                ctx,
                params,
                ConfigApplyStep::parse(name).ok_or_else(unknown)?,
            )
            .await
        }
    }
}

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;
