use super::*;

const TTL: i64 = 5_000;

fn claimant(id: &str, incarnation: &str) -> Claimant {
    Claimant {
        id: id.to_owned(),
        address: format!("https://{id}:7070"),
        incarnation: incarnation.to_owned(),
        migrations: "set-1".to_owned(),
    }
}

fn lease(holder: &str, incarnation: &str, token: u64, expires_at_ms: i64) -> Lease {
    Lease {
        holder: holder.to_owned(),
        incarnation: incarnation.to_owned(),
        address: format!("https://{holder}:7070"),
        token,
        expires_at_ms,
    }
}

fn peer(id: &str, last_seen_ms: i64, migrations: &str) -> Peer {
    Peer {
        id: id.to_owned(),
        address: format!("https://{id}:7070"),
        last_seen_ms,
        incarnation: "p".to_owned(),
        migrations: migrations.to_owned(),
    }
}

fn by<'a>(me: &'a Claimant) -> Claim<'a> {
    Claim {
        claimant: me,
        ttl_ms: TTL,
        seize: None,
        holding: None,
        floor: 0,
    }
}

/// `me`'s claim while it leads under `token`.
fn leading<'a>(me: &'a Claimant, token: u64) -> Claim<'a> {
    Claim {
        holding: Some(token),
        ..by(me)
    }
}

#[test]
fn the_first_claim_takes_token_one() {
    let a = claimant("a", "1");
    assert_eq!(
        claim(None, &[], 1_000, &by(&a)),
        Verdict::Take(lease("a", "1", 1, 6_000))
    );
}

#[test]
fn the_holding_process_renews_under_the_same_token() {
    let a = claimant("a", "1");
    let held = lease("a", "1", 4, 6_000);
    let claim_ = leading(&a, 4);
    assert_eq!(
        claim(Some(&held), &[], 5_999, &claim_),
        Verdict::Renew(lease("a", "1", 4, 10_999))
    );
}

#[test]
fn another_coordinator_waits_until_the_lease_expires_then_takes_the_next_token() {
    let b = claimant("b", "1");
    let held = lease("a", "1", 4, 6_000);
    assert_eq!(claim(Some(&held), &[], 5_999, &by(&b)), Verdict::Wait);
    assert_eq!(
        claim(Some(&held), &[], 6_000, &by(&b)),
        Verdict::Take(lease("b", "1", 5, 11_000))
    );
}

#[test]
fn a_second_process_with_the_same_id_is_another_claimant() {
    let restarted = claimant("b", "2");
    let held = lease("b", "1", 17, 6_000);
    assert_eq!(
        claim(Some(&held), &[], 1_000, &by(&restarted)),
        Verdict::Wait,
        "the frozen first b's term stands until it expires"
    );
    assert_eq!(
        claim(Some(&held), &[], 6_000, &by(&restarted)),
        Verdict::Take(lease("b", "2", 18, 11_000)),
        "then a new token, never the first process's"
    );
}

#[test]
fn a_leader_whose_token_was_changed_under_it_stops_renewing() {
    let a = claimant("a", "1");
    let changed = lease("a", "1", 18, 6_000);
    let leading = leading(&a, 17);
    assert_eq!(claim(Some(&changed), &[], 1_000, &leading), Verdict::Wait);
    // Once it stopped leading, the row's term is taken as a new one of its own.
    assert_eq!(
        claim(Some(&changed), &[], 1_000, &by(&a)),
        Verdict::Renew(lease("a", "1", 18, 6_000))
    );
}

#[test]
fn a_term_found_dead_is_taken_at_once_but_only_that_term() {
    let b = claimant("b", "1");
    let held = lease("a", "1", 4, 6_000);
    let dead = lease("a", "1", 4, 0);
    let seizing = Claim {
        seize: Some(&dead),
        ..by(&b)
    };
    assert_eq!(
        claim(Some(&held), &[], 1_000, &seizing),
        Verdict::Take(lease("b", "1", 5, 6_000))
    );
    let older = lease("a", "1", 3, 0);
    let stale = Claim {
        seize: Some(&older),
        ..by(&b)
    };
    assert_eq!(
        claim(Some(&held), &[], 1_000, &stale),
        Verdict::Wait,
        "a newer term of a is alive"
    );
}

#[test]
fn a_lapsed_holder_starts_a_new_term() {
    let a = claimant("a", "1");
    let held = lease("a", "1", 4, 6_000);
    let claim_ = leading(&a, 4);
    assert_eq!(
        claim(Some(&held), &[], 6_500, &claim_)
            .written()
            .map(|l| l.token),
        Some(5)
    );
}

#[test]
fn a_new_term_starts_above_every_token_an_agent_reported() {
    let a = claimant("a", "1");
    let floored = Claim {
        floor: 33,
        ..by(&a)
    };
    // A fresh store after a delete: agents remember the old store's tokens.
    assert_eq!(
        claim(None, &[], 1_000, &floored).written().map(|l| l.token),
        Some(34)
    );
    // A sitting term below what agents saw is replaced by one above it.
    let held = lease("a", "1", 2, 6_000);
    let leading = Claim {
        holding: Some(2),
        ..floored
    };
    assert_eq!(
        claim(Some(&held), &[], 1_000, &leading),
        Verdict::Take(lease("a", "1", 34, 6_000))
    );
    // Agents that saw this term's own token change nothing.
    let seen_own = Claim {
        floor: 2,
        ..leading
    };
    assert_eq!(
        claim(Some(&held), &[], 1_000, &seen_own),
        Verdict::Renew(lease("a", "1", 2, 6_000))
    );
}

#[test]
fn no_new_term_while_a_live_coordinator_plans_with_another_migration_set() {
    let b = claimant("b", "1");
    let peers = [
        peer("a", 900, "set-2"),
        peer("b", 900, "set-1"),
        peer("c", 900, ""),
    ];
    assert_eq!(
        claim(None, &peers, 1_000, &by(&b)),
        Verdict::Disagree(vec!["a".to_owned()])
    );
    // A sitting leader's term goes on: stopping it would leave nobody leading.
    let held = lease("b", "1", 3, 6_000);
    assert!(matches!(
        claim(Some(&held), &peers, 1_000, &by(&b)),
        Verdict::Renew(_)
    ));
    // Once a is gone (no claim for a TTL), b leads with its own set.
    assert!(matches!(
        claim(None, &peers, 900 + TTL, &by(&b)),
        Verdict::Take(_)
    ));
}
