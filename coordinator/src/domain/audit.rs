//! The audit trail's record: who asked for what, and what came of it. The store keeps the
//! outcome as one line of text (`accepted`, `refused: …`); this is the only place that writes
//! and reads that text.

/// What came of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A job was created.
    Accepted,
    /// A job was created over a refusal the caller overrode (`--force`), named here.
    AcceptedForced(String),
    /// Nothing needed doing.
    NoOp(String),
    /// A precondition did not hold.
    Refused(String),
    /// The caller may not do this.
    Denied(String),
    /// The coordinator could not take the request.
    Error(String),
}

/// Builds the outcome that carries a reason.
type Reason = fn(String) -> Outcome;

const FORCED: &str = "accepted, forced over: ";
const NO_OP: &str = "no-op: ";
const REFUSED: &str = "refused: ";
const DENIED: &str = "denied: ";
const ERROR: &str = "error: ";

impl Outcome {
    pub fn text(&self) -> String {
        match self {
            Outcome::Accepted => "accepted".to_owned(),
            Outcome::AcceptedForced(what) => format!("{FORCED}{what}"),
            Outcome::NoOp(why) => format!("{NO_OP}{why}"),
            Outcome::Refused(why) => format!("{REFUSED}{why}"),
            Outcome::Denied(why) => format!("{DENIED}{why}"),
            Outcome::Error(why) => format!("{ERROR}{why}"),
        }
    }

    /// The outcome [`Outcome::text`] wrote, or `None` for text it never writes.
    pub fn parse(text: &str) -> Option<Outcome> {
        if text == "accepted" {
            return Some(Outcome::Accepted);
        }
        let kinds: [(&str, Reason); 5] = [
            (FORCED, Outcome::AcceptedForced),
            (NO_OP, Outcome::NoOp),
            (REFUSED, Outcome::Refused),
            (DENIED, Outcome::Denied),
            (ERROR, Outcome::Error),
        ];
        kinds.into_iter().find_map(|(prefix, outcome)| {
            text.strip_prefix(prefix)
                .map(|rest| outcome(rest.to_owned()))
        })
    }
}

/// One entry of the audit trail, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub at_ms: i64,
    /// Empty when the caller could not be named (a refusal before authentication).
    pub identity: String,
    pub role: String,
    pub operation: String,
    /// The job document, `{}` for a request refused before it became a job.
    pub params: String,
    pub outcome: Outcome,
    pub job_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_outcome_reads_back_as_written() {
        for outcome in [
            Outcome::Accepted,
            Outcome::AcceptedForced("2 queries executing".to_owned()),
            Outcome::NoOp("the instance is already normal".to_owned()),
            Outcome::Refused("mode is normal".to_owned()),
            Outcome::Denied("permission denied: viewer may not install".to_owned()),
            Outcome::Error("the store refuses writes".to_owned()),
        ] {
            assert_eq!(Outcome::parse(&outcome.text()), Some(outcome));
        }
        assert_eq!(Outcome::parse("accepted, maybe"), None);
    }

    proptest! {
        #[test]
        fn any_reason_survives_the_store(reason in "\\PC*") {
            let outcome = Outcome::Refused(reason);
            prop_assert_eq!(Outcome::parse(&outcome.text()), Some(outcome));
        }
    }
}
