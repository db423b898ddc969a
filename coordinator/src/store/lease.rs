//! The leader lease several coordinators sharing a store compete for (DESIGN §13): one row,
//! taken and renewed in a transaction by the store's clock. Its fencing token grows with every
//! new term, so a deposed leader's commands carry a lower one than its successor's.

/// The lease as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub holder: String,
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
}

/// What a claim by `holder` at store time `now_ms` makes of the lease `held`: renewed when
/// `holder` holds it unexpired, taken with the next token when it is free or expired (also by
/// its holder: a lapsed term never continues), `None` while another coordinator holds it.
/// `seize` names a term its claimant found dead (see `leader`): that term, and only that term
/// (same holder and token), counts as expired.
pub fn claim(
    held: Option<&Lease>,
    holder: &str,
    address: &str,
    now_ms: i64,
    ttl_ms: i64,
    seize: Option<&Lease>,
) -> Option<Lease> {
    let expires_at_ms = now_ms.saturating_add(ttl_ms);
    let seized = |lease: &Lease| {
        seize.is_some_and(|dead| dead.holder == lease.holder && dead.token == lease.token)
    };
    match held {
        None => Some(Lease {
            holder: holder.to_owned(),
            address: address.to_owned(),
            token: 1,
            expires_at_ms,
        }),
        Some(lease) if lease.expires_at_ms > now_ms && !seized(lease) => (lease.holder == holder)
            .then(|| Lease {
                holder: holder.to_owned(),
                address: address.to_owned(),
                token: lease.token,
                expires_at_ms,
            }),
        Some(lease) => Some(Lease {
            holder: holder.to_owned(),
            address: address.to_owned(),
            token: lease.token.saturating_add(1),
            expires_at_ms,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, token: u64, expires_at_ms: i64) -> Lease {
        Lease {
            holder: holder.to_owned(),
            address: format!("https://{holder}:7070"),
            token,
            expires_at_ms,
        }
    }

    #[test]
    fn the_first_claim_takes_token_one() {
        let taken = claim(None, "a", "https://a:7070", 1_000, 5_000, None);
        assert_eq!(taken, Some(lease("a", 1, 6_000)));
    }

    #[test]
    fn the_holder_renews_under_the_same_token() {
        let held = lease("a", 4, 6_000);
        assert_eq!(
            claim(Some(&held), "a", "https://a:7070", 5_999, 5_000, None),
            Some(lease("a", 4, 10_999))
        );
    }

    #[test]
    fn another_coordinator_waits_until_the_lease_expires_then_takes_the_next_token() {
        let held = lease("a", 4, 6_000);
        assert_eq!(
            claim(Some(&held), "b", "https://b:7070", 5_999, 5_000, None),
            None
        );
        assert_eq!(
            claim(Some(&held), "b", "https://b:7070", 6_000, 5_000, None),
            Some(lease("b", 5, 11_000))
        );
    }

    #[test]
    fn a_term_found_dead_is_taken_at_once_but_only_that_term() {
        let held = lease("a", 4, 6_000);
        let dead = lease("a", 4, 0);
        assert_eq!(
            claim(
                Some(&held),
                "b",
                "https://b:7070",
                1_000,
                5_000,
                Some(&dead)
            ),
            Some(lease("b", 5, 6_000))
        );
        let older = lease("a", 3, 0);
        assert_eq!(
            claim(
                Some(&held),
                "b",
                "https://b:7070",
                1_000,
                5_000,
                Some(&older)
            ),
            None,
            "a newer term of a is alive"
        );
    }

    #[test]
    fn a_lapsed_holder_starts_a_new_term() {
        let held = lease("a", 4, 6_000);
        assert_eq!(
            claim(Some(&held), "a", "https://a:7070", 6_500, 5_000, None).map(|l| l.token),
            Some(5)
        );
    }
}
