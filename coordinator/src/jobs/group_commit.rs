//! Node progress written in groups. A fan-out over a thousand nodes changes progress thousands
//! of times within a second, each change from its own task; one transaction per change made the
//! store's cost grow with every check each transaction carries (the lease's fence among them).
//! Here the first writer to find no write in flight writes every node that changed since the
//! last write, in one transaction, while the others wait for the write that holds their rows:
//! nothing waits longer than one write, and every caller still returns only once its change is
//! stored.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};

use crate::domain::job::{JobRecord, NodeProgress};
use crate::store::{Store, StoreError};

/// Why a grouped write failed, for every caller whose rows it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failed {
    /// Another leader holds the lease: nothing was written.
    Fenced {
        token: u64,
    },
    Other(String),
}

impl From<Failed> for StoreError {
    fn from(failed: Failed) -> StoreError {
        match failed {
            Failed::Fenced { token } => StoreError::Fenced { token },
            Failed::Other(why) => StoreError::Grouped(why),
        }
    }
}

#[derive(Debug, Default)]
struct Pending {
    /// Nodes changed since the last write began.
    nodes: BTreeSet<String>,
    /// The write that will carry the nodes now pending.
    next: u64,
    /// The last write that finished.
    done: u64,
    /// Recent writes that failed, by round, for callers that learn the outcome late.
    failed: BTreeMap<u64, Failed>,
}

/// Failed rounds remembered: a caller learns its round's outcome as soon as it gets the write
/// lock, long before this many more rounds can have run.
const FAILURES_KEPT: usize = 64;

impl Pending {
    /// The outcome of write `round`, once it finished.
    fn outcome(&self, round: u64) -> Option<Result<(), Failed>> {
        (self.done >= round).then(|| match self.failed.get(&round) {
            Some(failed) => Err(failed.clone()),
            None => Ok(()),
        })
    }
}

pub struct GroupCommit {
    store: Store,
    job_id: String,
    pending: Mutex<Pending>,
    /// Held by the one write in flight.
    writing: tokio::sync::Mutex<()>,
}

impl GroupCommit {
    pub fn new(store: Store, job_id: String) -> GroupCommit {
        GroupCommit {
            store,
            job_id,
            pending: Mutex::new(Pending {
                next: 1,
                ..Pending::default()
            }),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// Stores the progress `job` holds now for `nodes`, together with whatever else changed
    /// meanwhile; returns once a write holding them finished.
    pub async fn save(
        &self,
        job: &tokio::sync::Mutex<JobRecord>,
        nodes: impl IntoIterator<Item = String>,
    ) -> Result<(), StoreError> {
        let round = {
            let mut pending = self.lock();
            pending.nodes.extend(nodes);
            pending.next
        };
        let _writing = self.writing.lock().await;
        let (names, round_now) = {
            let mut pending = self.lock();
            if let Some(outcome) = pending.outcome(round) {
                return outcome.map_err(StoreError::from);
            }
            let names = std::mem::take(&mut pending.nodes);
            let round_now = pending.next;
            pending.next += 1;
            (names, round_now)
        };
        // The rows as the job holds them now: a node changed twice since the last write is
        // written once, in its latest state.
        let rows: Vec<NodeProgress> = job
            .lock()
            .await
            .nodes
            .iter()
            .filter(|n| names.contains(&n.name))
            .cloned()
            .collect();
        let result = if rows.is_empty() {
            Ok(())
        } else {
            self.store.save_nodes(&self.job_id, &rows).await
        };
        let failed = result.as_ref().err().map(|err| match err {
            StoreError::Fenced { token } => Failed::Fenced { token: *token },
            other => Failed::Other(other.to_string()),
        });
        let mut pending = self.lock();
        pending.done = round_now;
        if let Some(failed) = failed {
            pending.failed.insert(round_now, failed);
            while pending.failed.len() > FAILURES_KEPT {
                pending.failed.pop_first();
            }
        }
        drop(pending);
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::job::{JobSpec, NodeState};
    use crate::store::StoreTarget;

    /// A store on a fresh SQLite file, leading under its lease, with one job; and the job as a
    /// running engine holds it.
    async fn store_with_job() -> (tempfile::TempDir, Store, Arc<tokio::sync::Mutex<JobRecord>>) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let (store, _) = crate::store::suite::leading(&StoreTarget::Sqlite(url)).await;
        let id = store
            .create_job(&JobSpec::down(), "tester", 1)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let job = store
            .job(&id)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no job {id}"));
        (dir, store, Arc::new(tokio::sync::Mutex::new(job)))
    }

    /// Each of `count` tasks changes its own node and saves it, all at once.
    async fn save_concurrently(
        writes: &Arc<GroupCommit>,
        job: &Arc<tokio::sync::Mutex<JobRecord>>,
        count: usize,
    ) -> Vec<Result<(), StoreError>> {
        let tasks: Vec<_> = (0..count)
            .map(|i| {
                let (writes, job) = (Arc::clone(writes), Arc::clone(job));
                tokio::spawn(async move {
                    let name = format!("worker-{i}");
                    job.lock().await.nodes.push(NodeProgress {
                        name: name.clone(),
                        state: NodeState::Done,
                        detail: format!("step {i}"),
                        error: String::new(),
                    });
                    writes.save(&job, [name]).await
                })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap_or_else(|e| panic!("{e}")));
        }
        results
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_changes_are_stored_in_few_transactions_and_none_is_lost() {
        let (_dir, store, job) = store_with_job().await;
        let id = job.lock().await.id.clone();
        let writes = Arc::new(GroupCommit::new(store.clone(), id.clone()));
        let before = store.write_counters().statements.get();
        let results = save_concurrently(&writes, &job, 200).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let stored = store.job(&id).await.ok().flatten().map(|j| j.nodes);
        let stored = stored.unwrap_or_default();
        assert_eq!(stored.len(), 200, "every node's change is stored");
        assert!(stored.iter().all(|n| n.state == NodeState::Done));
        // Every transaction writes its fence once, then one statement per node row.
        let transactions = store.write_counters().statements.get() - before - 200;
        assert!(
            transactions < 50,
            "200 concurrent changes took {transactions} transactions"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_fenced_group_fails_every_change_it_held() {
        let (_dir, store, job) = store_with_job().await;
        let id = job.lock().await.id.clone();
        let writes = Arc::new(GroupCommit::new(store.clone(), id.clone()));
        // Another coordinator took the lease: this one's token is stale.
        store.fence().hold(99);
        let results = save_concurrently(&writes, &job, 20).await;
        // The first refusal also ends the term locally: later writes go under no token at all.
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Err(StoreError::Fenced { token: 99 | 0 }))),
            "{results:?}"
        );
        let stored = store.job(&id).await.ok().flatten().map(|j| j.nodes.len());
        assert_eq!(stored, Some(0), "nothing written");
    }

    #[test]
    fn a_round_reports_its_own_outcome_only() {
        let mut pending = Pending {
            next: 4,
            done: 3,
            failed: BTreeMap::from([(2, Failed::Other("disk full".to_owned()))]),
            ..Pending::default()
        };
        assert_eq!(pending.outcome(4), None, "not written yet");
        assert_eq!(pending.outcome(3), Some(Ok(())));
        assert_eq!(
            pending.outcome(2),
            Some(Err(Failed::Other("disk full".to_owned())))
        );
        pending.failed.insert(3, Failed::Fenced { token: 7 });
        assert_eq!(pending.outcome(3), Some(Err(Failed::Fenced { token: 7 })));
        assert!(
            pending.outcome(2).is_some_and(|o| o.is_err()),
            "a later failure does not hide an earlier one"
        );
    }
}
