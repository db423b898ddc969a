//! The leader lease several coordinators sharing a store compete for (DESIGN §13): one row,
//! taken and renewed in a transaction by the store's clock. Its fencing token grows with every
//! new term, so a deposed leader's commands carry a lower one than its successor's.
//!
//! A term belongs to one process, not to an id: a coordinator restarted with the same `--id`
//! (or a second one started beside a frozen first) is another claimant and takes a new token.

/// The lease as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub holder: String,
    /// The holding process (see [`Claimant::incarnation`]).
    pub incarnation: String,
    pub address: String,
    pub token: u64,
    pub expires_at_ms: i64,
}

/// A coordinator sharing the store, as of its last claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub id: String,
    pub address: String,
    pub last_seen_ms: i64,
    /// The process that claimed last under this id.
    pub incarnation: String,
    /// The digest of its migration set; empty when it did not say.
    pub migrations: String,
}

/// One coordinator process claiming the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimant {
    pub id: String,
    pub address: String,
    /// Random for each start of the process.
    pub incarnation: String,
    /// The digest of the migration set it plans with.
    pub migrations: String,
}

/// A claim: who, for how long, and what it knows.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub claimant: &'a Claimant,
    pub ttl_ms: i64,
    /// A term its claimant found dead (see `leader`): that term, and only that term (same
    /// holder and token), counts as expired.
    pub seize: Option<&'a Lease>,
    /// The token of the term this process leads under, if it leads.
    pub holding: Option<u64>,
    /// The highest token any agent reported: a term under it cannot command them, so a new
    /// term takes one above it.
    pub floor: u64,
}

/// What a claim makes of the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The claimant's term goes on.
    Renew(Lease),
    /// The claimant starts a new term.
    Take(Lease),
    /// Another term stands (maybe a lost one of this process); the claimant follows it.
    Wait,
    /// The lease is free, but these live coordinators plan with another migration set: none
    /// leads until they agree.
    Disagree(Vec<String>),
}

impl Verdict {
    /// The lease written by this verdict, if any.
    pub fn written(&self) -> Option<&Lease> {
        match self {
            Verdict::Renew(lease) | Verdict::Take(lease) => Some(lease),
            Verdict::Wait | Verdict::Disagree(_) => None,
        }
    }
}

/// The live coordinators other than `me` that plan with another migration set than `me`.
/// A peer is live while its last claim is younger than a TTL; one that never said which set
/// it plans with is not counted.
pub fn disagreeing(peers: &[Peer], me: &Claimant, now_ms: i64, ttl_ms: i64) -> Vec<String> {
    peers
        .iter()
        .filter(|p| p.id != me.id && p.last_seen_ms.saturating_add(ttl_ms) > now_ms)
        .filter(|p| !p.migrations.is_empty() && p.migrations != me.migrations)
        .map(|p| p.id.clone())
        .collect()
}

/// What `claim` at store time `now_ms` makes of the lease `held`, with `peers` the coordinators
/// as the store last saw them.
///
/// - The claimant's own term (same id and process, unexpired) is renewed under its token,
///   unless the row's token is no longer the one the claimant leads under (changed by hand, or
///   by a takeover of another process): then it waits, and claims it as a new term only once
///   it no longer leads. A term whose token agents have seen exceeded is not renewed but
///   replaced by one above what they saw.
/// - Another process's unexpired term is followed.
/// - A free, expired or seized lease is taken under a token above both the last term's and
///   every token an agent reported, when no live coordinator plans with another migration set.
pub fn claim(held: Option<&Lease>, peers: &[Peer], now_ms: i64, claim: &Claim<'_>) -> Verdict {
    let me = claim.claimant;
    let expires_at_ms = now_ms.saturating_add(claim.ttl_ms);
    let lease = |token: u64| Lease {
        holder: me.id.clone(),
        incarnation: me.incarnation.clone(),
        address: me.address.clone(),
        token,
        expires_at_ms,
    };
    let new_term = |last: u64| {
        let against = disagreeing(peers, me, now_ms, claim.ttl_ms);
        if against.is_empty() {
            Verdict::Take(lease(last.max(claim.floor).saturating_add(1)))
        } else {
            Verdict::Disagree(against)
        }
    };
    let Some(held) = held else {
        return new_term(0);
    };
    let seized = claim
        .seize
        .is_some_and(|dead| dead.holder == held.holder && dead.token == held.token);
    if held.expires_at_ms <= now_ms || seized {
        return new_term(held.token);
    }
    let own = held.holder == me.id && held.incarnation == me.incarnation;
    if !own || claim.holding.is_some_and(|token| token != held.token) {
        return Verdict::Wait;
    }
    if held.token < claim.floor {
        // Agents have seen a later token than this term's: its commands would be refused.
        return Verdict::Take(lease(claim.floor.saturating_add(1)));
    }
    Verdict::Renew(lease(held.token))
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
