//! What a running job's steps work with: progress per node, log lines, cancellation, and the
//! patterns every step uses: decide on fresh observations, wait for nodes with backoff, act on
//! nodes in parallel, tell agents the mode until they acknowledge it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::instance::Mode;
use crate::instance::{self, InstanceState};
use backon::{BackoffBuilder, ExponentialBuilder};
use futures::StreamExt;
use tokio::sync::watch;
use tokio::time::Instant;

use super::group_commit::GroupCommit;
use super::publish::{Published, Urgency};
use crate::agents::api::{AgentError, Scope};
pub use crate::domain::job::Level;
use crate::domain::job::{JobRecord, JobSpec, LogRecord, NodeProgress, NodeState};
use crate::domain::{Node, Role};
use crate::runtime::core::Core;

/// Folds `rows` into a job's node progress; returns the rows that changed.
fn merge_progress(nodes: &mut Vec<NodeProgress>, rows: Vec<NodeProgress>) -> Vec<NodeProgress> {
    let mut changed = Vec::new();
    for row in rows {
        match nodes.iter_mut().find(|n| n.name == row.name) {
            Some(node) if *node == row => {}
            Some(node) => {
                *node = row.clone();
                changed.push(row);
            }
            None => {
                nodes.push(row.clone());
                changed.push(row);
            }
        }
    }
    changed
}

/// The longest pause between two rounds of checks while a job waits for nodes: what a node
/// that becomes ready waits at most before a job sees it.
const WAIT_ROUND_MAX: Duration = Duration::from_millis(250);
/// The least time the probes of a round of a wait get, however close its deadline.
const ROUND_FLOOR: Duration = Duration::from_secs(1);
/// At most this many agent calls of one fan-out run at once when no limit is asked for.
const MAX_CONCURRENT_CALLS: usize = 256;
/// How long a step keeps re-telling unreachable agents the mode before leaving them to their
/// monitors (which keep trying).
const PUSH_PATIENCE: Duration = Duration::from_secs(10);

/// Why a step stopped the job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// A precondition failed before anything changed (exit 3).
    #[error("{0}")]
    Refused(String),
    /// The step ran and failed (exit 4).
    #[error("{0}")]
    Failed(String),
    /// The step ran out of time (exit 6).
    #[error("{0}")]
    TimedOut(String),
    #[error("cancelled")]
    Cancelled,
    #[error("the coordinator's store failed: {0}")]
    Store(String),
}

impl From<crate::store::StoreError> for StepError {
    fn from(err: crate::store::StoreError) -> StepError {
        StepError::Store(err.to_string())
    }
}

impl From<crate::runtime::core::EpochExhausted> for StepError {
    fn from(err: crate::runtime::core::EpochExhausted) -> StepError {
        StepError::Refused(err.to_string())
    }
}

/// How a fan-out runs: how many nodes at once (0: all), and whether a failure stops nodes
/// that have not started.
#[derive(Debug, Clone, Copy)]
pub struct FanOut {
    pub limit: usize,
    pub fail_fast: bool,
}

impl FanOut {
    pub const ALL: FanOut = FanOut {
        limit: 0,
        fail_fast: false,
    };
}

/// When a wait gives up, and the limit the operator stated (for the message).
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub at: Instant,
    pub stated: Duration,
}

impl From<Duration> for Deadline {
    /// `limit` from now.
    fn from(limit: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + limit,
            stated: limit,
        }
    }
}

pub struct JobCtx {
    pub core: Arc<Core>,
    pub spec: JobSpec,
    pub id: String,
    pub requested_by: String,
    /// When the job was submitted (ms since the epoch).
    created_at_ms: i64,
    published: Arc<Published>,
    /// Node progress, written in groups.
    progress_writes: Arc<GroupCommit>,
    cancel: watch::Receiver<bool>,
    log_seq: AtomicU64,
}

impl JobCtx {
    pub fn new(
        core: Arc<Core>,
        spec: JobSpec,
        job: JobRecord,
        view: watch::Sender<Option<JobRecord>>,
        cancel: watch::Receiver<bool>,
        log_seq: u64,
    ) -> JobCtx {
        JobCtx {
            core: core.clone(),
            spec,
            id: job.id.clone(),
            requested_by: job.requested_by.clone(),
            created_at_ms: job.created_at_ms,
            progress_writes: Arc::new(GroupCommit::new(core.store.clone(), job.id.clone())),
            published: Published::new(core.clone(), job, view),
            cancel,
            log_seq: AtomicU64::new(log_seq),
        }
    }

    /// `limit` after the job was submitted: an operator's `--timeout` counts from when they
    /// asked, not from when the job had its turn (or was resumed by another coordinator).
    pub fn after_submission(&self, limit: Duration) -> Deadline {
        let limit_ms = i64::try_from(limit.as_millis()).unwrap_or(i64::MAX);
        let left_ms = self
            .created_at_ms
            .saturating_add(limit_ms)
            .saturating_sub(crate::clock::now_ms())
            .max(0);
        Deadline {
            at: Instant::now() + Duration::from_millis(u64::try_from(left_ms).unwrap_or(0)),
            stated: limit,
        }
    }

    pub fn is_cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    pub async fn record(&self) -> JobRecord {
        self.published.job.lock().await.clone()
    }

    /// Changes the job in memory, then stores what changed (`change` returns it, `save` writes
    /// it) before anyone is told: a CLI that saw a job end may be followed at once by a
    /// coordinator restart, which must not find the job still running.
    pub async fn update<T, F, S, Fut>(
        &self,
        urgency: Urgency,
        change: F,
        save: S,
    ) -> Result<(), crate::store::StoreError>
    where
        F: FnOnce(&mut JobRecord) -> Option<T>,
        S: FnOnce(T) -> Fut,
        Fut: Future<Output = Result<(), crate::store::StoreError>>,
    {
        let Some(changed) = change(&mut *self.published.job.lock().await) else {
            return Ok(());
        };
        match save(changed).await {
            Ok(()) => {}
            // Another leader runs the job now: what this one did after losing its term is not
            // the job's progress, and watchers must not see it.
            Err(err @ crate::store::StoreError::Fenced { .. }) => {
                tracing::warn!(job = %self.id, error = %err, "job progress not published");
                return Err(err);
            }
            Err(err) => {
                self.core.store.health().failed(&err);
                tracing::error!(job = %self.id, error = %err, "cannot persist job progress");
                self.published.publish(urgency).await;
                return Err(err);
            }
        }
        self.published.publish(urgency).await;
        Ok(())
    }

    /// Tells watchers the job as it stands.
    pub async fn publish(&self) {
        self.published.publish(Urgency::Now).await;
    }

    /// Ends the job: `change` sets its outcome in memory, which is then stored and only then
    /// published. While the store refuses the write (a full disk, its host gone) watchers are
    /// told the end cannot be stored, and the write is tried again with backoff: a job that
    /// ran is neither run again for want of its outcome nor left unsaid. Gives up only when
    /// another leader has taken the job over.
    pub async fn finish(&self, change: impl FnOnce(&mut JobRecord)) {
        let header = {
            let mut job = self.published.job.lock().await;
            change(&mut job);
            job.clone()
        };
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(10))
            .with_jitter()
            .without_max_times()
            .build();
        loop {
            match self.core.store.save_job_header(&header).await {
                Ok(()) => break,
                Err(err @ crate::store::StoreError::Fenced { .. }) => {
                    tracing::warn!(job = %self.id, error = %err, "the end of the job is not this coordinator's to store");
                    return;
                }
                Err(err) => {
                    self.core.store.health().failed(&err);
                    let why = self.core.store.write_problem(&err);
                    let delay = delays.next().unwrap_or(Duration::from_secs(10));
                    tracing::error!(job = %self.id, error = %why, retry_in_ms = delay.as_millis(), "cannot store the end of the job; trying again");
                    self.published.job.lock().await.unstored = Some(why);
                    self.published.publish(Urgency::Now).await;
                    tokio::time::sleep(delay).await;
                }
            }
        }
        self.published.job.lock().await.unstored = None;
        self.published.publish(Urgency::Now).await;
    }

    /// Sets several nodes' progress; the rows that changed are written together with those
    /// other tasks changed meanwhile (see [`GroupCommit`]).
    pub async fn progress(&self, rows: Vec<NodeProgress>) {
        let writes = Arc::clone(&self.progress_writes);
        let published = Arc::clone(&self.published);
        self.update(
            Urgency::Coalesced,
            move |job| {
                let changed = merge_progress(&mut job.nodes, rows);
                (!changed.is_empty()).then_some(changed)
            },
            move |changed| async move {
                writes
                    .save(&published.job, changed.into_iter().map(|n| n.name))
                    .await
            },
        )
        .await
        // Progress not stored is shown all the same; a step whose end cannot be stored stops
        // the job.
        .ok();
    }

    /// Marks `nodes` pending with `what`.
    pub async fn nodes_pending(&self, nodes: &[Node], what: &str) {
        self.progress(
            nodes
                .iter()
                .map(|n| NodeProgress {
                    name: n.name.clone(),
                    state: NodeState::Pending,
                    detail: what.to_owned(),
                    error: String::new(),
                })
                .collect(),
        )
        .await;
    }

    /// Sets a node's state and detail in the job's progress.
    pub async fn node(
        &self,
        name: &str,
        state: NodeState,
        detail: impl Into<String>,
        error: impl Into<String>,
    ) {
        self.progress(vec![NodeProgress {
            name: name.to_owned(),
            state,
            detail: detail.into(),
            error: error.into(),
        }])
        .await;
    }

    pub async fn log(&self, level: Level, node: &str, message: impl Into<String>) {
        let line = LogRecord {
            seq: self
                .log_seq
                .fetch_add(1, Ordering::SeqCst)
                .saturating_add(1),
            at_ms: crate::clock::now_ms(),
            level,
            node: node.to_owned(),
            message: message.into(),
        };
        tracing::info!(job = %self.id, node, level = level.name(), message = %line.message, "job log");
        if let Err(err) = self.core.store.append_log(&self.id, &line).await {
            self.core.store.health().failed(&err);
            tracing::error!(job = %self.id, error = %err, "cannot persist a job log line");
        }
    }

    /// The inventory's nodes, in order.
    pub fn nodes(&self) -> Vec<Node> {
        self.core.nodes()
    }

    pub fn node_named(&self, name: &str) -> Option<Node> {
        self.nodes().into_iter().find(|n| n.name == name)
    }

    pub fn repl(&self) -> Option<Node> {
        self.nodes().into_iter().find(|n| n.role == Role::Repl)
    }

    /// The status with every one of `nodes` (and the repl node, which holds the registry)
    /// checked now: what a decision of this step may rest on.
    pub async fn fresh_view(&self, nodes: &[Node]) -> InstanceState {
        self.fresh_view_until(nodes, Scope::All, None).await
    }

    /// [`JobCtx::fresh_view`] of `scope` (the registry only with [`Scope::All`]), with every
    /// probe given up at `until`.
    async fn fresh_view_until(
        &self,
        nodes: &[Node],
        scope: Scope,
        until: Option<Instant>,
    ) -> InstanceState {
        let mut wanted = nodes.to_vec();
        if scope == Scope::All
            && let Some(repl) = self.repl()
            && !wanted.contains(&repl)
        {
            wanted.push(repl);
        }
        let results = crate::runtime::fresh::probe_until(&self.core, &wanted, scope, until).await;
        crate::runtime::fresh::view(&self.core, &results)
    }

    /// Waits until `lacks` finds nothing missing on any of `nodes` (each is then shown `done`
    /// with the detail `done`), deciding on fresh checks. Each round checks again the nodes
    /// that still lack something; once none does, one more round checks every node, and only a
    /// round in which every node passed ends the wait. Rounds follow an exponential, jittered
    /// schedule capped at [`WAIT_ROUND_MAX`], and a status change wakes the next round early.
    /// Progress names what each node lacks, written when that changes.
    pub async fn wait_until(
        &self,
        nodes: &[Node],
        deadline: impl Into<Deadline>,
        done: &str,
        lacks: impl Fn(&instance::NodeState, &InstanceState) -> Option<String>,
    ) -> Result<InstanceState, StepError> {
        self.wait(Scope::All, nodes, deadline.into(), done, |node, view| {
            lacks(node, view).map_or(Check::Done, Check::Lacks)
        })
        .await
    }

    /// [`JobCtx::wait_until`] on the nodes' services only (their databases are not checked),
    /// where a node can also fail the wait at once: what it reports will not pass by waiting
    /// (a service that exited).
    pub async fn wait_services(
        &self,
        nodes: &[Node],
        deadline: impl Into<Deadline>,
        done: &str,
        check: impl Fn(&instance::NodeState) -> Check,
    ) -> Result<InstanceState, StepError> {
        self.wait(Scope::Services, nodes, deadline.into(), done, |node, _| {
            check(node)
        })
        .await
    }

    async fn wait(
        &self,
        scope: Scope,
        nodes: &[Node],
        deadline: Deadline,
        done: &str,
        check: impl Fn(&instance::NodeState, &InstanceState) -> Check,
    ) -> Result<InstanceState, StepError> {
        let Deadline {
            at: deadline,
            stated: timeout,
        } = deadline;
        let mut updates = self.core.snapshot.subscribe();
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(WAIT_ROUND_MAX)
            .with_jitter()
            .without_max_times()
            .build();
        let mut attempt: u32 = 0;
        let mut checking: Vec<Node> = nodes.to_vec();
        loop {
            attempt = attempt.saturating_add(1);
            self.core.metrics.wait_checks.inc();
            updates.borrow_and_update();
            // A round that starts just before the deadline still gives its probes a moment:
            // the reasons it reports are then the nodes', not the deadline's.
            let probes_until = deadline.max(Instant::now() + ROUND_FLOOR);
            let view = self
                .fresh_view_until(&checking, scope, Some(probes_until))
                .await;
            let mut failed = Vec::new();
            let missing: Vec<(String, String)> = checking
                .iter()
                .filter_map(|node| {
                    let reason = match view.node(&node.name).map(|status| check(status, &view)) {
                        Some(Check::Done) => return None,
                        Some(Check::Lacks(why)) => why,
                        Some(Check::Fails(why)) => {
                            failed.push(format!("{}: {why}", node.name));
                            why
                        }
                        None => "not in the inventory".to_owned(),
                    };
                    Some((node.name.clone(), reason))
                })
                .collect();
            let lacking_by_name: HashMap<&str, &str> = missing
                .iter()
                .map(|(n, r)| (n.as_str(), r.as_str()))
                .collect();
            let rows = checking
                .iter()
                .map(|node| {
                    let lacking = lacking_by_name.get(node.name.as_str());
                    NodeProgress {
                        name: node.name.clone(),
                        state: if lacking.is_some() {
                            NodeState::Waiting
                        } else {
                            NodeState::Done
                        },
                        detail: lacking.map_or_else(|| done.to_owned(), |r| (*r).to_owned()),
                        error: String::new(),
                    }
                })
                .collect();
            self.progress(rows).await;
            if !failed.is_empty() {
                return Err(StepError::Failed(failed.join("; ")));
            }
            if missing.is_empty() {
                if checking.len() == nodes.len() {
                    return Ok(view);
                }
                checking = nodes.to_vec();
                continue;
            }
            checking = nodes
                .iter()
                .filter(|n| lacking_by_name.contains_key(n.name.as_str()))
                .cloned()
                .collect();
            if self.is_cancelled() {
                return Err(StepError::Cancelled);
            }
            let delay = backoff.next().unwrap_or(WAIT_ROUND_MAX);
            tracing::debug!(job = %self.id, attempt, missing = missing.len(), delay_ms = delay.as_millis(), "nodes not ready yet");
            if Instant::now() >= deadline {
                let list: Vec<String> = missing.iter().map(|(n, r)| format!("{n}: {r}")).collect();
                return Err(StepError::TimedOut(format!(
                    "timed out after {} waiting for {}",
                    humantime::format_duration(timeout),
                    list.join("; ")
                )));
            }
            let until = (Instant::now() + delay).min(deadline);
            let mut cancel = self.cancel.clone();
            tokio::select! {
                () = changed_for(&mut updates, &checking, &check) => {}
                _ = cancel.changed() => {}
                () = tokio::time::sleep_until(until) => {}
            }
        }
    }

    /// Runs `action` on every node under `policy`; each node's progress follows its outcome
    /// (`action` gives a detail on success, an error on failure). Fails with every failed node
    /// listed, after all started ones have finished.
    pub async fn fan_out<T, F, Fut>(
        &self,
        what: &str,
        nodes: &[Node],
        policy: FanOut,
        action: F,
    ) -> Result<Vec<(String, T)>, StepError>
    where
        F: Fn(Node) -> Fut,
        Fut: Future<Output = Result<(String, T), String>>,
    {
        let limit = if policy.limit == 0 {
            MAX_CONCURRENT_CALLS
        } else {
            policy.limit
        };
        let failed = AtomicBool::new(false);
        self.nodes_pending(nodes, what).await;
        let runs = nodes.iter().cloned().map(|node| {
            let failed = &failed;
            let action = &action;
            async move {
                let name = node.name.clone();
                if policy.fail_fast && failed.load(Ordering::SeqCst) {
                    self.node(
                        &name,
                        NodeState::Skipped,
                        "not started: an earlier node failed (--fail-fast)",
                        "",
                    )
                    .await;
                    return (name, Err("skipped".to_owned()));
                }
                if self.is_cancelled() {
                    self.node(
                        &name,
                        NodeState::Skipped,
                        "not started: the job was cancelled",
                        "",
                    )
                    .await;
                    return (name, Err("cancelled".to_owned()));
                }
                self.node(&name, NodeState::Running, what, "").await;
                let result = action(node).await;
                match &result {
                    Ok((detail, _)) => {
                        self.node(&name, NodeState::Done, detail.clone(), "").await;
                        self.log(Level::Info, &name, format!("{what}: {detail}"))
                            .await;
                    }
                    Err(error) => {
                        failed.store(true, Ordering::SeqCst);
                        self.node(&name, NodeState::Failed, what, error.clone())
                            .await;
                        self.log(Level::Error, &name, format!("{what} failed: {error}"))
                            .await;
                    }
                }
                (name, result.map(|(_, value)| value))
            }
        });
        let results: Vec<(String, Result<T, String>)> =
            futures::stream::iter(runs).buffered(limit).collect().await;
        if self.is_cancelled() {
            return Err(StepError::Cancelled);
        }
        let problems: Vec<String> = results
            .iter()
            .filter_map(|(name, r)| r.as_ref().err().map(|e| format!("{name}: {e}")))
            .collect();
        if !problems.is_empty() {
            return Err(StepError::Failed(format!(
                "{what} failed on {}",
                problems.join("; ")
            )));
        }
        Ok(results
            .into_iter()
            .filter_map(|(name, r)| r.ok().map(|v| (name, v)))
            .collect())
    }

    /// Tells every agent the mode under the store's current epoch (with the services the
    /// running job releases), retrying those that cannot be reached for a while; any left are
    /// told by their monitors when they come back.
    pub async fn push_mode(&self, mode: Mode) {
        self.push(self.nodes(), Push::Mode(mode)).await;
    }

    /// Tells `nodes` which of their services may run now, as the running job releases them.
    pub async fn push_release(&self, nodes: Vec<Node>) {
        self.push(nodes, Push::Release).await;
    }

    /// Tells every node `what` at once, retrying one that cannot be reached for a while.
    async fn push(&self, nodes: Vec<Node>, what: Push) {
        let authority = self.core.authority();
        let pushes = nodes.into_iter().map(|node| {
            let authority = authority.clone();
            async move {
                let mut backoff = ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(2))
                    .with_jitter()
                    .without_max_times()
                    .build();
                let deadline = Instant::now() + PUSH_PATIENCE;
                loop {
                    let release = self.core.release_for(node.role);
                    let agents = &self.core.agents;
                    let told = match what {
                        Push::Mode(mode) => agents.set_mode(&node, &authority, mode, &release).await,
                        Push::Release => agents.set_services(&node, &authority, &release).await,
                    };
                    let error = match told {
                        Ok(observed) => {
                            self.core.observe(&node.name, &observed);
                            return;
                        }
                        Err(AgentError::Refused(why)) => {
                            self.log(Level::Error, &node.name, format!("the agent refused {}: {why}", what.said()))
                                .await;
                            return;
                        }
                        Err(err) => err,
                    };
                    let delay = backoff.next().unwrap_or(Duration::from_secs(2));
                    if Instant::now() + delay >= deadline {
                        self.log(
                            Level::Warn,
                            &node.name,
                            format!("cannot tell the agent {} now ({error}); its monitor will when it is back", what.said()),
                        )
                        .await;
                        return;
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        });
        futures::future::join_all(pushes).await;
    }
}

/// Returns once the snapshot shows one of `waiting` no longer lacking something (done, or
/// failed). The snapshot only says when to look again: a node's monitor reports many changes a
/// wait has no use for (a service going from stopped to starting), and a round of probes on
/// each would load the very nodes being waited for. Never returns if the snapshot is gone.
async fn changed_for(
    updates: &mut watch::Receiver<InstanceState>,
    waiting: &[Node],
    check: &impl Fn(&instance::NodeState, &InstanceState) -> Check,
) {
    loop {
        if updates.changed().await.is_err() {
            return std::future::pending().await;
        }
        let snapshot = updates.borrow_and_update();
        let moved = waiting.iter().any(|node| {
            snapshot
                .node(&node.name)
                .is_some_and(|seen| !matches!(check(seen, &snapshot), Check::Lacks(_)))
        });
        if moved {
            return;
        }
    }
}

/// What a node shows to a wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Done,
    /// Not yet: why.
    Lacks(String),
    /// Never will by waiting: why.
    Fails(String),
}

/// What [`JobCtx::push`] tells the agents.
#[derive(Clone, Copy)]
enum Push {
    Mode(Mode),
    Release,
}

impl Push {
    fn said(self) -> String {
        match self {
            Push::Mode(mode) => format!("mode {}", mode.name()),
            Push::Release => "the services released".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, state: NodeState, detail: &str) -> NodeProgress {
        NodeProgress {
            name: name.to_owned(),
            state,
            detail: detail.to_owned(),
            error: String::new(),
        }
    }

    #[test]
    fn only_rows_that_changed_are_returned() {
        let mut nodes = vec![
            row("a", NodeState::Waiting, "database not ready"),
            row("b", NodeState::Waiting, "database not ready"),
        ];
        let changed = merge_progress(
            &mut nodes,
            vec![
                row("a", NodeState::Waiting, "database not ready"),
                row("b", NodeState::Done, "available"),
                row("c", NodeState::Pending, "migrate"),
            ],
        );
        assert_eq!(
            changed,
            vec![
                row("b", NodeState::Done, "available"),
                row("c", NodeState::Pending, "migrate")
            ]
        );
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[1], row("b", NodeState::Done, "available"));
        assert!(
            merge_progress(&mut nodes, vec![row("c", NodeState::Pending, "migrate")]).is_empty()
        );
    }
}
