//! What kind of failure an error status reports, carried in its metadata beside the message, so
//! that a caller decides on a typed kind and never on a message's wording.

use tonic::Status;
use tonic::metadata::MetadataValue;

/// The metadata key of the kind.
pub const KEY: &str = "x-qserv-failure";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The agent answered; its local database did not. The agent is reachable.
    LocalDatabase,
}

impl Failure {
    pub fn name(self) -> &'static str {
        match self {
            Failure::LocalDatabase => "local-database",
        }
    }

    pub fn parse(text: &str) -> Option<Failure> {
        [Failure::LocalDatabase]
            .into_iter()
            .find(|f| f.name() == text)
    }

    /// `status` marked with this kind.
    pub fn mark(self, mut status: Status) -> Status {
        status
            .metadata_mut()
            .insert(KEY, MetadataValue::from_static(self.name()));
        status
    }

    /// The kind a status carries, if any.
    pub fn of(status: &Status) -> Option<Failure> {
        status
            .metadata()
            .get(KEY)
            .and_then(|v| v.to_str().ok())
            .and_then(Failure::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marked_status_says_its_kind_whatever_its_message() {
        let status = Failure::LocalDatabase.mark(Status::unavailable("anything at all"));
        assert_eq!(Failure::of(&status), Some(Failure::LocalDatabase));
        assert_eq!(
            Failure::of(&Status::unavailable("local database: down")),
            None
        );
        assert_eq!(
            Failure::parse("local-database"),
            Some(Failure::LocalDatabase)
        );
        assert_eq!(Failure::parse("other"), None);
    }
}
