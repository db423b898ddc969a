//! Keeps the store bounded: finished jobs, their steps, nodes and logs, and audit entries older
//! than `--retain` are deleted at start and every hour after.

use std::time::Duration;

use crate::store::Store;

const EVERY: Duration = Duration::from_secs(3600);

/// The oldest moment kept, in Unix milliseconds.
pub fn cutoff_ms(now_ms: i64, retain: Duration) -> i64 {
    now_ms.saturating_sub(i64::try_from(retain.as_millis()).unwrap_or(i64::MAX))
}

pub async fn run(store: Store, retain: Duration) {
    loop {
        match store.prune(cutoff_ms(crate::clock::now_ms(), retain)).await {
            Ok((0, 0)) => {}
            Ok((jobs, audit)) => {
                tracing::info!(jobs, audit, retain = %humantime::format_duration(retain), "pruned what is past retention");
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot prune the store; trying again in an hour")
            }
        }
        tokio::time::sleep(EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_is_retain_before_now_and_never_wraps() {
        assert_eq!(cutoff_ms(100_000, Duration::from_secs(60)), 40_000);
        assert_eq!(cutoff_ms(10, Duration::from_secs(u64::MAX)), 10 - i64::MAX);
    }
}
