//! How a running job reaches its watchers (`WatchJob` and the status's active job). Each
//! publication copies the whole job, so publishing every node's every change made a job over a
//! thousand nodes quadratic: node progress is coalesced to one publication per
//! [`PUBLISH_EVERY`], while a change of the job or of a step goes out at once. The store is
//! written before either, whatever the pace of publications.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use crate::instance::InstanceState;
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;

use crate::domain::job::JobRecord;
use crate::runtime::core::Core;

/// The slowest pace at which node progress reaches watchers while it changes.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// How soon a change must be seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// The job's state or a step changed: watchers decide on it.
    Now,
    /// A node's progress changed: for display, and the next publication carries it.
    Coalesced,
}

pub struct Published {
    pub job: Mutex<JobRecord>,
    view: watch::Sender<Option<JobRecord>>,
    core: Arc<Core>,
    last: std::sync::Mutex<Instant>,
    /// A publication is scheduled for the end of the current window.
    scheduled: AtomicBool,
}

impl Published {
    pub fn new(
        core: Arc<Core>,
        job: JobRecord,
        view: watch::Sender<Option<JobRecord>>,
    ) -> Arc<Published> {
        Arc::new(Published {
            job: Mutex::new(job),
            view,
            core,
            last: std::sync::Mutex::new(Instant::now()),
            scheduled: AtomicBool::new(false),
        })
    }

    pub async fn publish(self: &Arc<Self>, urgency: Urgency) {
        let due = *self.last.lock().unwrap_or_else(PoisonError::into_inner) + PUBLISH_EVERY;
        if urgency == Urgency::Now || Instant::now() >= due {
            self.publish_now(false).await;
            return;
        }
        if self.scheduled.swap(true, Ordering::SeqCst) {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep_until(due).await;
            this.scheduled.store(false, Ordering::SeqCst);
            this.publish_now(true).await;
        });
    }

    /// Copies the job to watchers under its lock, so that publications never go out of order.
    /// A late one for a job that has ended is dropped: the end went out at once, and another
    /// job may own the view by now.
    async fn publish_now(&self, late: bool) {
        let job = self.job.lock().await;
        if late && job.state.is_finished() {
            return;
        }
        let active = crate::instance::ActiveJob::of(&job);
        self.view.send_replace(Some(job.clone()));
        self.core
            .snapshot
            .send_if_modified(|s: &mut InstanceState| {
                let changed = s.active_job != active;
                s.active_job = active;
                changed
            });
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }
}
