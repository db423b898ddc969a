//! The coordinators sharing the store as the status shows them, and whether they plan with
//! the same migration set: coordinators that do not would plan and apply different upgrades
//! behind one address, so one that disagrees with the leader is shown and never leads.

use std::time::Duration;

use crate::store::Peer;

/// A coordinator sharing the store, as the status shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorPeer {
    pub id: String,
    pub address: String,
    pub leader: bool,
    pub last_seen_ms: i64,
    /// The digest of the migration set it plans with (empty when it did not say).
    pub migrations: String,
    /// Live, and planning with another migration set than the leader's: it does not lead
    /// until they agree.
    pub disagrees: bool,
}

/// How long after its last claim a coordinator still counts as running, for the status: a few
/// renewal periods, so that clocks a little apart do not make it flicker.
fn live_for(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis().saturating_mul(3)).unwrap_or(i64::MAX)
}

/// `peers` for the status: `leader` is the leading coordinator's id (empty when none is
/// known), `own` this coordinator's migration digest, used when no leader is known.
pub fn shown(
    peers: &[Peer],
    leader: &str,
    own: &str,
    now_ms: i64,
    ttl: Duration,
) -> Vec<CoordinatorPeer> {
    let reference = peers
        .iter()
        .find(|p| p.id == leader && !p.migrations.is_empty())
        .map_or(own, |p| p.migrations.as_str());
    peers
        .iter()
        .map(|p| {
            let live = p.last_seen_ms.saturating_add(live_for(ttl)) > now_ms;
            CoordinatorPeer {
                id: p.id.clone(),
                address: p.address.clone(),
                leader: p.id == leader,
                last_seen_ms: p.last_seen_ms,
                migrations: p.migrations.clone(),
                disagrees: live && !p.migrations.is_empty() && p.migrations != reference,
            }
        })
        .collect()
}

/// The digest as operators compare it: its first 12 hex digits.
pub fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// A warning for each coordinator that plans with another migration set than the leader.
pub fn warnings(coordinators: &[CoordinatorPeer]) -> Vec<String> {
    let leader = coordinators.iter().find(|c| c.leader);
    coordinators
        .iter()
        .filter(|c| c.disagrees)
        .map(|c| {
            let against = leader.map_or_else(
                || "the coordinator that answered".to_owned(),
                |l| format!("leader {} ({})", l.id, short(&l.migrations)),
            );
            format!(
                "coordinator {} plans with another migration set ({}) than {against}: it does not lead until they agree; give every coordinator the same --migrations-dir",
                c.id,
                short(&c.migrations)
            )
        })
        .collect()
}

/// Why this coordinator (digest `own`) may not answer for the migration set: it follows a
/// leader that plans with another. `None` when it leads, or agrees.
pub fn own_disagreement(coordinators: &[CoordinatorPeer], own: &str) -> Option<String> {
    let leader = coordinators.iter().find(|c| c.leader)?;
    (!leader.migrations.is_empty() && leader.migrations != own).then(|| {
        format!(
            "this coordinator plans with another migration set ({}) than the leader {} at {} ({}): ask the leader, or give every coordinator the same --migrations-dir",
            short(own),
            leader.id,
            leader.address,
            short(&leader.migrations)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(2);

    fn peer(id: &str, last_seen_ms: i64, migrations: &str) -> Peer {
        Peer {
            id: id.to_owned(),
            address: format!("https://{id}:7070"),
            last_seen_ms,
            incarnation: "1".to_owned(),
            migrations: migrations.to_owned(),
        }
    }

    #[test]
    fn a_live_follower_with_another_set_than_the_leader_is_shown_and_warned_of() {
        let peers = [
            peer("a", 10_000, "aaaaaaaaaaaaaaaa"),
            peer("b", 10_000, "bbbbbbbbbbbbbbbb"),
            peer("old", 1_000, "cccccccccccccccc"),
            peer("quiet", 10_000, ""),
        ];
        let shown = shown(&peers, "a", "bbbbbbbbbbbbbbbb", 10_500, TTL);
        let flags: Vec<(&str, bool)> = shown.iter().map(|c| (c.id.as_str(), c.disagrees)).collect();
        assert_eq!(
            flags,
            [("a", false), ("b", true), ("old", false), ("quiet", false)],
            "compared with the leader's set; gone and silent coordinators are not counted"
        );
        let warned = warnings(&shown);
        assert_eq!(warned.len(), 1);
        assert!(
            warned[0].contains("coordinator b")
                && warned[0].contains("bbbbbbbbbbbb")
                && warned[0].contains("leader a (aaaaaaaaaaaa)"),
            "{warned:?}"
        );
        assert!(
            own_disagreement(&shown, "bbbbbbbbbbbbbbbb").is_some_and(|w| w.contains("leader a"))
        );
        assert_eq!(own_disagreement(&shown, "aaaaaaaaaaaaaaaa"), None);
    }

    #[test]
    fn without_a_leader_the_answering_coordinators_set_is_the_reference() {
        let peers = [peer("a", 10_000, "x"), peer("b", 10_000, "y")];
        let shown = shown(&peers, "", "x", 10_000, TTL);
        assert!(!shown[0].disagrees && shown[1].disagrees);
        assert!(warnings(&shown)[0].contains("the coordinator that answered"));
        assert_eq!(own_disagreement(&shown, "y"), None, "nobody leads");
    }
}
