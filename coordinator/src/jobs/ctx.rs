//! What a running job's steps work with: progress per node, log lines, cancellation, and the two
//! patterns every step uses (wait for nodes with backoff, act on nodes in parallel).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use qserv_proto::v1::{ActiveJob, InstanceStatus, Job, JobNode, LogLine, NodeStatus};
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;

use crate::core::Core;

/// A node of the inventory as jobs see it: (name, role, agent address).
pub type NodeRef = (String, qserv_proto::v1::Role, String);

/// Why a step stopped the job.
#[derive(Debug, Clone)]
pub struct StepError {
    pub message: String,
    /// A precondition failed before anything changed (exit 3).
    pub refused: bool,
    /// The step ran out of time (exit 6).
    pub timed_out: bool,
}

impl StepError {
    pub fn failed(message: impl Into<String>) -> StepError {
        StepError {
            message: message.into(),
            refused: false,
            timed_out: false,
        }
    }

    pub fn refused(message: impl Into<String>) -> StepError {
        StepError {
            refused: true,
            ..StepError::failed(message)
        }
    }

    pub fn timed_out(message: impl Into<String>) -> StepError {
        StepError {
            timed_out: true,
            ..StepError::failed(message)
        }
    }
}

impl From<crate::store::StoreError> for StepError {
    fn from(err: crate::store::StoreError) -> StepError {
        StepError::failed(err.to_string())
    }
}

pub struct JobCtx {
    pub core: Arc<Core>,
    pub params: serde_json::Value,
    pub job: Mutex<Job>,
    view: watch::Sender<Option<Job>>,
    cancel: watch::Receiver<bool>,
    log_seq: AtomicU64,
}

impl JobCtx {
    pub fn new(
        core: Arc<Core>,
        job: Job,
        view: watch::Sender<Option<Job>>,
        cancel: watch::Receiver<bool>,
        log_seq: u64,
    ) -> JobCtx {
        let params = serde_json::from_str(&job.params_json).unwrap_or(serde_json::Value::Null);
        JobCtx {
            core,
            params,
            job: Mutex::new(job),
            view,
            cancel,
            log_seq: AtomicU64::new(log_seq),
        }
    }

    pub fn is_cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Publishes the job (watchers, the status snapshot) and writes it through to the store.
    pub async fn publish(&self, job: &Job) {
        // Stored before anyone is told: a CLI that saw a job end may be followed at once by a
        // coordinator restart, which must not find the job still running.
        if let Err(err) = self.core.store.save_job(job).await {
            tracing::error!(job = %job.id, error = %err, "cannot persist job progress");
        }
        self.view.send_replace(Some(job.clone()));
        let active = (!matches!(
            job.state.as_str(),
            "succeeded" | "failed" | "cancelled" | "interrupted"
        ))
        .then(|| ActiveJob {
            id: job.id.clone(),
            kind: job.kind.clone(),
            state: job.state.clone(),
            progress: job
                .nodes
                .iter()
                .map(|n| {
                    let text = if n.detail.is_empty() {
                        n.state.clone()
                    } else {
                        format!("{}: {}", n.state, n.detail)
                    };
                    (n.name.clone(), text)
                })
                .collect(),
        });
        self.core
            .snapshot
            .send_if_modified(|s: &mut InstanceStatus| {
                let changed = s.active_job != active;
                s.active_job = active;
                changed
            });
    }

    /// Sets a node's state and detail in the job's progress.
    pub async fn node(
        &self,
        name: &str,
        state: &str,
        detail: impl Into<String>,
        error: impl Into<String>,
    ) {
        let mut job = self.job.lock().await;
        let detail = detail.into();
        let error = error.into();
        match job.nodes.iter_mut().find(|n| n.name == name) {
            Some(node) => {
                if node.state == state && node.detail == detail && node.error == error {
                    return;
                }
                node.state = state.to_owned();
                node.detail = detail;
                node.error = error;
            }
            None => job.nodes.push(JobNode {
                name: name.to_owned(),
                state: state.to_owned(),
                detail,
                error,
            }),
        }
        let snapshot = job.clone();
        drop(job);
        self.publish(&snapshot).await;
    }

    pub async fn log(&self, level: &str, node: &str, message: impl Into<String>) {
        let message = message.into();
        let line = LogLine {
            seq: self.log_seq.fetch_add(1, Ordering::SeqCst) + 1,
            at_ms: crate::now_ms(),
            level: level.to_owned(),
            node: node.to_owned(),
            message,
        };
        let id = self.job.lock().await.id.clone();
        tracing::info!(job = %id, node, level, message = %line.message, "job log");
        if let Err(err) = self.core.store.append_log(&id, &line).await {
            tracing::error!(job = %id, error = %err, "cannot persist a job log line");
        }
    }

    /// Waits until `lacks` finds nothing missing on any of `nodes`, re-checking on every status
    /// change and at least on an exponential, jittered schedule capped at 1 s, so that a node
    /// that becomes available is noticed within a second. Progress names what each node lacks.
    pub async fn wait_for_nodes(
        &self,
        nodes: &[String],
        timeout: Duration,
        lacks: impl Fn(&NodeStatus, &InstanceStatus) -> Option<String>,
    ) -> Result<(), StepError> {
        let deadline = Instant::now() + timeout;
        let mut updates = self.core.snapshot.subscribe();
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_millis(500))
            .with_jitter()
            .without_max_times()
            .build();
        let mut attempt: u32 = 0;
        loop {
            attempt = attempt.saturating_add(1);
            let missing: Vec<(String, String)> = {
                let status = updates.borrow_and_update();
                nodes
                    .iter()
                    .filter_map(|name| {
                        let reason = match status.nodes.iter().find(|n| &n.name == name) {
                            Some(node) => lacks(node, &status)?,
                            None => "not in the inventory".to_owned(),
                        };
                        Some((name.clone(), reason))
                    })
                    .collect()
            };
            for name in nodes {
                if !missing.iter().any(|(n, _)| n == name) {
                    self.node(name, "done", "available", "").await;
                }
            }
            if missing.is_empty() {
                return Ok(());
            }
            if self.is_cancelled() {
                return Err(StepError::failed("cancelled"));
            }
            let delay = backoff.next().unwrap_or(Duration::from_millis(500));
            for (name, reason) in &missing {
                let detail = format!(
                    "waiting: {reason}, attempt {attempt}, next try in {:.1} s",
                    delay.as_secs_f64()
                );
                self.node(name, "waiting", detail, "").await;
            }
            if Instant::now() >= deadline {
                let list: Vec<String> = missing.iter().map(|(n, r)| format!("{n}: {r}")).collect();
                return Err(StepError::timed_out(format!(
                    "timed out after {} waiting for {}",
                    humantime::format_duration(timeout),
                    list.join("; ")
                )));
            }
            let wake = Instant::now() + delay;
            let until = wake.min(deadline);
            tokio::select! {
                _ = updates.changed() => {}
                () = tokio::time::sleep_until(until) => {}
            }
        }
    }

    /// Runs `action` on every node at once; each node's progress follows its outcome. Fails
    /// with every failed node listed, after all have finished.
    pub async fn on_nodes<F, Fut>(
        &self,
        what: &str,
        nodes: &[NodeRef],
        action: F,
    ) -> Result<Vec<(String, String)>, StepError>
    where
        F: Fn(NodeRef) -> Fut,
        Fut: Future<Output = Result<String, String>>,
    {
        let runs = nodes.iter().map(|node| {
            let name = node.0.clone();
            let fut = action(node.clone());
            async move {
                self.node(&name, "running", what, "").await;
                let result = fut.await;
                match &result {
                    Ok(detail) => {
                        self.node(&name, "done", detail.clone(), "").await;
                        self.log("info", &name, format!("{what}: {detail}")).await;
                    }
                    Err(error) => {
                        self.node(&name, "failed", what, error.clone()).await;
                        self.log("error", &name, format!("{what} failed: {error}"))
                            .await;
                    }
                }
                (name, result)
            }
        });
        let results = futures::future::join_all(runs).await;
        let failed: Vec<String> = results
            .iter()
            .filter_map(|(name, r)| r.as_ref().err().map(|e| format!("{name}: {e}")))
            .collect();
        if !failed.is_empty() {
            return Err(StepError::failed(format!(
                "{what} failed on {}",
                failed.join("; ")
            )));
        }
        Ok(results
            .into_iter()
            .filter_map(|(name, r)| r.ok().map(|d| (name, d)))
            .collect())
    }
}
