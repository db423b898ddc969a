//! Whether the store takes writes, as the latest write found: what `/readyz` reports and what a
//! change the coordinator cannot make names. A full state disk or a store host gone is then an
//! error that says so, not a coordinator that seems unreachable.

use std::sync::{Arc, Mutex, PoisonError};

use super::StoreError;

#[derive(Clone, Debug, Default)]
pub struct WriteHealth {
    problem: Arc<Mutex<Option<String>>>,
}

impl WriteHealth {
    /// A write failed. A fenced write is not a problem of the store: another leader holds it.
    pub fn failed(&self, err: &StoreError) {
        if matches!(err, StoreError::Fenced { .. }) {
            return;
        }
        *self.problem.lock().unwrap_or_else(PoisonError::into_inner) = Some(cause(err));
    }

    /// A write went through.
    pub fn succeeded(&self) {
        *self.problem.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Why the latest write failed; `None` when it went through.
    pub fn problem(&self) -> Option<String> {
        self.problem
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What the server said, without the driver's wrapping ("database or disk is full").
pub fn cause(err: &StoreError) -> String {
    match err {
        StoreError::Query(sqlx::Error::Database(db)) => db.message().to_owned(),
        StoreError::Query(sqlx::Error::Io(io)) => io.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_write_decides() {
        let health = WriteHealth::default();
        assert_eq!(health.problem(), None);
        health.failed(&StoreError::Corrupt("x".to_owned()));
        assert!(health.problem().is_some_and(|p| p.contains("x")));
        health.failed(&StoreError::Fenced { token: 3 });
        assert!(health.problem().is_some(), "a fenced write changes nothing");
        health.succeeded();
        assert_eq!(health.problem(), None);
    }
}
