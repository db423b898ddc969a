//! This coordinator among those sharing a store: who it is, and its part in the leader
//! lease's current term. The leadership loop (`leader`) changes the term; everything that acts
//! reads it.

use std::time::Duration;

use crate::store::Claimant;

/// This coordinator's part in its current term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// No lease known: at start, or after a leader could not renew in time.
    Unknown,
    Leader {
        token: u64,
    },
    Follower {
        leader: String,
        address: String,
        token: u64,
    },
}

impl Term {
    pub fn is_leader(&self) -> bool {
        matches!(self, Term::Leader { .. })
    }

    /// The token this coordinator's own writes carry: its term's while it leads, else 0.
    pub fn leader_token(&self) -> u64 {
        match self {
            Term::Leader { token } => *token,
            Term::Follower { .. } | Term::Unknown => 0,
        }
    }

    /// The token commands carry: this leader's, or 0 (which no agent that ever saw a leader
    /// takes).
    pub fn token(&self) -> u64 {
        match self {
            Term::Leader { token } | Term::Follower { token, .. } => *token,
            Term::Unknown => 0,
        }
    }
}

/// Who this coordinator is among those sharing the store.
#[derive(Debug, Clone)]
pub struct Identity {
    pub id: String,
    /// The gRPC address other coordinators and the CLI reach it at.
    pub address: String,
    pub ttl: Duration,
    /// This process among any that ever ran as `id` (see [`qserv_proto::incarnation`]).
    pub incarnation: String,
}

impl Identity {
    /// This process as a claimant of the lease, planning with the migration set `migrations`.
    pub(crate) fn claimant(&self, migrations: &str) -> Claimant {
        Claimant {
            id: self.id.clone(),
            address: self.address.clone(),
            incarnation: self.incarnation.clone(),
            migrations: migrations.to_owned(),
        }
    }
}
