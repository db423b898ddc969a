//! Qserv's own work in flight: queries the czar executes, ingest transactions the replication
//! system holds open. Stopping the services under either breaks it (a transaction left in
//! `STARTED` cannot be finished), so `down` and `restart` ask first.

/// How many of something are open, and the oldest id among them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    pub open: u64,
    /// The lowest id among them (ids grow with time); `None` when there are none.
    pub oldest: Option<u64>,
}

/// Counts and oldest ids; `None` where the table does not exist (on this node, or on any).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Activity {
    pub queries: Option<Count>,
    pub transactions: Option<Count>,
}

/// Both combined by `f`, else whichever there is.
fn combine<T>(a: Option<T>, b: Option<T>, f: impl FnOnce(T, T) -> T) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(f(a, b)),
        (a, b) => a.or(b),
    }
}

impl Count {
    fn add(self, other: Count) -> Count {
        Count {
            open: self.open + other.open,
            oldest: combine(self.oldest, other.oldest, u64::min),
        }
    }
}

impl Activity {
    /// Two nodes' activity as one instance's.
    pub fn merge(self, other: Activity) -> Activity {
        Activity {
            queries: combine(self.queries, other.queries, Count::add),
            transactions: combine(self.transactions, other.transactions, Count::add),
        }
    }

    /// What runs, in an operator's words; `None` when nothing does.
    pub fn describe(self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(c) = self.queries.filter(|c| c.open > 0) {
            parts.push(format!(
                "{} quer{} executing{}",
                c.open,
                if c.open == 1 { "y" } else { "ies" },
                oldest(c)
            ));
        }
        if let Some(c) = self.transactions.filter(|c| c.open > 0) {
            parts.push(format!(
                "{} ingest transaction{} open{}",
                c.open,
                if c.open == 1 { "" } else { "s" },
                oldest(c)
            ));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

fn oldest(c: Count) -> String {
    c.oldest
        .map(|id| format!(" (oldest {id})"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(open: u64, oldest: Option<u64>) -> Option<Count> {
        Some(Count { open, oldest })
    }

    #[test]
    fn activity_sums_and_keeps_the_oldest() {
        let a = Activity {
            queries: count(2, Some(40)),
            transactions: None,
        };
        let b = Activity {
            queries: count(1, Some(7)),
            transactions: count(0, None),
        };
        let m = a.merge(b);
        assert_eq!(m.queries, count(3, Some(7)));
        assert_eq!(m.transactions, count(0, None));
        assert_eq!(
            m.describe().as_deref(),
            Some("3 queries executing (oldest 7)")
        );
        assert_eq!(
            Activity::default().describe(),
            None,
            "no tables: nothing to wait for"
        );
    }
}
