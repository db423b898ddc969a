//! The audit trail of refused requests, bounded: a flood of denied calls can neither grow the
//! number of tasks nor queue store writes without limit. One writer drains a small queue; what
//! does not fit is counted, and the count is itself recorded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::domain::audit::{AuditRecord, Outcome};
use crate::store::Store;

/// Refusals waiting to be written; beyond this they are only counted.
const QUEUE: usize = 64;

#[derive(Clone)]
pub struct DenialAudit {
    tx: mpsc::Sender<AuditRecord>,
    dropped: Arc<AtomicU64>,
}

impl DenialAudit {
    /// Starts the writer; it ends when every `DenialAudit` is gone.
    pub fn start(store: Store) -> DenialAudit {
        let (tx, mut rx) = mpsc::channel::<AuditRecord>(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&dropped);
        tokio::spawn(async move {
            while let Some(entry) = rx.recv().await {
                write(&store, &entry).await;
                let lost = counted.swap(0, Ordering::SeqCst);
                if lost > 0 {
                    write(&store, &summary(&entry, lost)).await;
                }
            }
        });
        DenialAudit { tx, dropped }
    }

    /// Queues `entry`, or counts it when the queue is full.
    pub fn record(&self, entry: AuditRecord) {
        if self.tx.try_send(entry).is_err() {
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn write(store: &Store, entry: &AuditRecord) {
    if let Err(err) = store.record_audit(entry).await {
        tracing::error!(error = %err, "cannot record an audit entry");
    }
}

/// The entry that stands for `lost` refusals that arrived faster than they could be written.
fn summary(last: &AuditRecord, lost: u64) -> AuditRecord {
    AuditRecord {
        at_ms: last.at_ms,
        identity: String::new(),
        role: String::new(),
        operation: "refusals".to_owned(),
        params: "{}".to_owned(),
        outcome: Outcome::Denied(format!(
            "{lost} more refused requests arrived faster than they could be recorded"
        )),
        job_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_what_was_lost() {
        let last = AuditRecord {
            at_ms: 7,
            identity: "alice".to_owned(),
            role: "viewer".to_owned(),
            operation: "install".to_owned(),
            params: "{}".to_owned(),
            outcome: Outcome::Denied("viewer may not install".to_owned()),
            job_id: None,
        };
        let entry = summary(&last, 12);
        assert_eq!(entry.at_ms, 7);
        assert!(entry.outcome.text().contains("12 more refused requests"));
    }
}
