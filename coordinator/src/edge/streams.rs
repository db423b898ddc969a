//! Open server streams (status watches, followed jobs and logs) per caller, capped so that one
//! client cannot hold an unbounded number of tasks and connections open.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tonic::Status;

#[derive(Clone)]
pub struct StreamSlots {
    open: Arc<Mutex<HashMap<String, usize>>>,
    limit: usize,
}

/// One open stream of one caller; freed when dropped with the stream.
pub struct Slot {
    open: Arc<Mutex<HashMap<String, usize>>>,
    who: String,
}

fn lock(open: &Mutex<HashMap<String, usize>>) -> MutexGuard<'_, HashMap<String, usize>> {
    // The map stays consistent whatever panicked while holding it: counts only.
    match open.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl StreamSlots {
    pub fn new(limit: usize) -> StreamSlots {
        StreamSlots {
            open: Arc::default(),
            limit,
        }
    }

    /// A slot for `who`, or `ResourceExhausted` when they hold the limit already.
    pub fn take(&self, who: &str) -> Result<Slot, Status> {
        let mut open = lock(&self.open);
        let count = open.entry(who.to_owned()).or_default();
        if *count >= self.limit {
            return Err(Status::resource_exhausted(format!(
                "{who} already has {} open streams (watches, followed jobs or logs), the most one client may hold; close some, or raise the coordinator's --max-streams-per-client",
                self.limit
            )));
        }
        *count += 1;
        Ok(Slot {
            open: Arc::clone(&self.open),
            who: who.to_owned(),
        })
    }

    #[cfg(test)]
    fn held(&self, who: &str) -> usize {
        lock(&self.open).get(who).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        if let Some(count) = open.get_mut(&self.who) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.who);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_caller_and_freed_on_drop() {
        let slots = StreamSlots::new(2);
        let a1 = slots.take("alice");
        let a2 = slots.take("alice");
        assert!(a1.is_ok() && a2.is_ok());
        let refused = slots.take("alice").err().map(|s| s.code());
        assert_eq!(refused, Some(tonic::Code::ResourceExhausted));
        assert!(slots.take("bob").is_ok(), "others are not affected");
        drop(a1);
        assert_eq!(slots.held("alice"), 1);
        assert!(slots.take("alice").is_ok());
        drop(a2);
    }
}
