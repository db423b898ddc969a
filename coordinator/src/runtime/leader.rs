//! Which of the coordinators sharing a store leads (DESIGN §13). Each claims the lease every
//! third of its TTL; the holder runs jobs and commands agents under its fencing token. A leader
//! that cannot renew stops acting before its lease can have expired: it counts the TTL from
//! when it sent the claim, which is no later than the store's own count began.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::runtime::core::Core;
use crate::runtime::metrics::Metrics;
use crate::runtime::term::{Identity, Term};
use crate::store::{Claim, Claimant, Lease, Peer, Store, Verdict};

/// The part of the TTL a leader keeps in hand: it stops acting this long before its lease
/// could expire, to finish no command after it.
fn margin(ttl: Duration) -> Duration {
    ttl / 10
}

/// Claims the lease every third of the TTL, for ever; publishes the term and the peers. The
/// first claim is made before this returns its task, so that a coordinator serves requests
/// knowing whether it leads.
pub async fn start(store: Store, me: Identity, core: &Core) -> tokio::task::JoinHandle<()> {
    let mut lease = Lessee {
        store,
        claimant: me.claimant(&core.migrations_digest),
        me,
        disagreeing: Vec::new(),
        floor: core.token_floor.subscribe(),
        term: core.term.clone(),
        peers: core.peers.clone(),
        metrics: core.metrics.clone(),
        valid_until: None,
        store_clock: None,
    };
    let first = Instant::now();
    lease.claim(first).await;
    tokio::spawn(async move {
        let mut sent = first;
        loop {
            lease.pause(sent).await;
            sent = Instant::now();
            lease.claim(sent).await;
        }
    })
}

struct Lessee {
    store: Store,
    me: Identity,
    claimant: Claimant,
    /// The live coordinators that planned with another migration set at the last claim.
    disagreeing: Vec<String>,
    /// The highest token agents reported (see [`Core::token_floor`]).
    floor: watch::Receiver<u64>,
    term: watch::Sender<Term>,
    peers: watch::Sender<Vec<Peer>>,
    metrics: Metrics,
    /// Until when this coordinator may act as leader, if it leads.
    valid_until: Option<Instant>,
    /// The store's clock at the last claim, and when that claim returned.
    store_clock: Option<(i64, Instant)>,
}

impl Lessee {
    /// One claim, sent at `sent`; a leader whose claim outlasts its lease stops leading.
    async fn claim(&mut self, sent: Instant) {
        let ttl_ms = i64::try_from(self.me.ttl.as_millis()).unwrap_or(i64::MAX);
        let seize = self.dead_leader().await;
        let holding = match *self.term.borrow() {
            Term::Leader { token } => Some(token),
            Term::Follower { .. } | Term::Unknown => None,
        };
        let floor = *self.floor.borrow_and_update();
        let request = Claim {
            claimant: &self.claimant,
            ttl_ms,
            seize: seize.as_ref(),
            holding,
            floor,
        };
        let claim = self.store.claim_lease(&request);
        let outcome = match self.valid_until {
            Some(until) => tokio::select! {
                outcome = claim => Some(outcome),
                () = tokio::time::sleep_until(until) => None,
            },
            None => Some(claim.await),
        };
        if outcome.is_some() {
            self.metrics
                .lease_claim_seconds
                .observe(sent.elapsed().as_secs_f64());
        }
        if let Some(Ok(claimed)) = &outcome {
            self.store_clock = Some((claimed.now_ms, Instant::now()));
            self.store.health().succeeded();
        }
        match outcome {
            Some(Ok(claimed)) => self.settle(sent, claimed.verdict, claimed.standing, holding),
            Some(Err(err)) => {
                self.store.health().failed(&err);
                tracing::warn!(id = %self.me.id, error = %err, "cannot claim the leader lease");
            }
            None => {}
        }
        if self
            .valid_until
            .is_some_and(|until| Instant::now() >= until)
        {
            self.step_down();
        }
        if let Ok(list) = self.store.peers().await {
            self.peers.send_replace(list);
        }
    }

    /// Takes up the term a claim sent at `sent` decided.
    fn settle(
        &mut self,
        sent: Instant,
        verdict: Verdict,
        standing: Option<Lease>,
        held: Option<u64>,
    ) {
        let disagreeing = match &verdict {
            Verdict::Disagree(others) => others.clone(),
            Verdict::Renew(_) | Verdict::Take(_) | Verdict::Wait => Vec::new(),
        };
        if !disagreeing.is_empty() && disagreeing != self.disagreeing {
            tracing::warn!(id = %self.me.id, disagreeing = ?disagreeing, "the lease is free, but other live coordinators plan with another migration set: none takes it until they agree; give every coordinator the same --migrations-dir");
        }
        self.disagreeing = disagreeing;
        match verdict {
            Verdict::Renew(lease) | Verdict::Take(lease) => {
                self.valid_until = Some(sent + self.me.ttl - margin(self.me.ttl));
                if held.is_some_and(|token| token < lease.token) {
                    tracing::warn!(id = %self.me.id, from = held.unwrap_or(0), to = lease.token, "agents have seen a later fencing token than this term's; leading under a new term above it");
                }
                if self.enter(Term::Leader { token: lease.token }) {
                    tracing::info!(id = %self.me.id, token = lease.token, "leading: this coordinator holds the lease");
                }
            }
            Verdict::Disagree(_) => {
                self.valid_until = None;
                self.enter(Term::Unknown);
            }
            Verdict::Wait => {
                self.valid_until = None;
                let next = match standing {
                    // This process's own term under a token it does not hold: the row was
                    // changed under it. It leads no more, and claims the row's term afresh.
                    Some(lease)
                        if lease.holder == self.me.id
                            && lease.incarnation == self.claimant.incarnation =>
                    {
                        tracing::warn!(id = %self.me.id, token = lease.token, "the lease's token is no longer this term's; stopped acting as leader");
                        Term::Unknown
                    }
                    Some(lease) => Term::Follower {
                        leader: lease.holder,
                        address: lease.address,
                        token: lease.token,
                    },
                    None => Term::Unknown,
                };
                let followed = match &next {
                    Term::Follower { leader, token, .. } => Some((leader.clone(), *token)),
                    Term::Leader { .. } | Term::Unknown => None,
                };
                if self.enter(next)
                    && let Some((leader, token)) = followed
                {
                    tracing::info!(id = %self.me.id, leader = %leader, token, "following the leader");
                }
            }
        }
    }

    /// The leader's term, when the leader is certainly gone: it stopped renewing (its heartbeat
    /// has not moved for a renewal period) and its address refuses connections, which a live
    /// coordinator's listener never does (a frozen one still completes the handshake). Such a
    /// term is taken at once instead of waiting out its lease; agents then refuse its token.
    ///
    /// A term held under this coordinator's own id and address is an earlier process of this
    /// one (restarted after a crash, or by systemd): this process bound that listener before
    /// claiming, so the earlier one no longer holds it, and its term is as gone as one whose
    /// address refuses connections.
    async fn dead_leader(&mut self) -> Option<Lease> {
        let Term::Follower {
            leader,
            address,
            token,
        } = self.term.borrow().clone()
        else {
            return None;
        };
        if self.earlier_self() {
            tracing::warn!(leader = %leader, address = %address, token, "the lease is held by an earlier process of this coordinator (same id and address); taking its term over now");
        } else {
            // This process's claims keep the peer row of its own id fresh, so the silence of
            // an earlier self cannot be read there; only another coordinator's can.
            if self.leader_silence()? < self.me.ttl / 3 + SILENCE_MARGIN {
                return None;
            }
            if !refuses_connections(&address).await {
                return None;
            }
            tracing::warn!(leader = %leader, address = %address, token, "the leader stopped renewing and its address refuses connections; taking its term over now");
        }
        Some(Lease {
            holder: leader,
            incarnation: String::new(),
            address,
            token,
            expires_at_ms: 0,
        })
    }

    /// Whether the term followed is an earlier process's of this coordinator (a term of this
    /// process itself is never followed: see `settle`).
    fn earlier_self(&self) -> bool {
        matches!(&*self.term.borrow(), Term::Follower { leader, address, .. }
            if *leader == self.me.id && *address == self.me.address)
    }

    /// How long the leader's heartbeat has stood still, by the store's clock.
    fn leader_silence(&self) -> Option<Duration> {
        let Term::Follower { leader, .. } = &*self.term.borrow() else {
            return None;
        };
        let seen = self
            .peers
            .borrow()
            .iter()
            .find(|p| p.id == *leader)
            .map(|p| p.last_seen_ms)?;
        let (clock, at) = self.store_clock?;
        let now = clock.saturating_add(i64::try_from(at.elapsed().as_millis()).unwrap_or(0));
        Some(Duration::from_millis(
            u64::try_from(now.saturating_sub(seen)).unwrap_or(0),
        ))
    }

    /// Waits for the next claim, a third of the TTL after the last was sent; a leader whose
    /// lease runs out first stops leading then.
    async fn pause(&mut self, sent: Instant) {
        // A silent leader is looked at closely: it may be gone.
        let every = if self.earlier_self()
            || self
                .leader_silence()
                .is_some_and(|silence| silence >= self.me.ttl / 3)
        {
            SILENT_LEADER_ROUND.min(self.me.ttl / 3)
        } else {
            self.me.ttl / 3
        };
        let next_claim = sent + every;
        let fence = self.store.fence().clone();
        let mut floor = self.floor.clone();
        let leading = self.term.borrow().is_leader();
        let deadline = match self.valid_until {
            Some(until) if until < next_claim => until,
            _ => next_claim,
        };
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {
                if deadline < next_claim {
                    self.step_down();
                    tokio::time::sleep_until(next_claim).await;
                }
            }
            // Agents reported a token above this leader's: claim a term above it now.
            Ok(()) = floor.changed(), if leading => {}
            // A write found another term in the store: stop at once and see who leads.
            () = fence.deposed() => {
                if self.term.borrow().is_leader() {
                    tracing::warn!(id = %self.me.id, "the store refused a write under this coordinator's term: another leader took over; stopped acting as leader");
                }
                self.valid_until = None;
                self.enter(Term::Unknown);
            }
        }
    }

    fn step_down(&mut self) {
        self.valid_until = None;
        if self.enter(Term::Unknown) {
            tracing::warn!(id = %self.me.id, "the lease could not be renewed in time; stopped acting as leader");
        }
    }

    /// Moves to `next`: the store's writes are fenced with its token first (or refused, when
    /// it does not lead), so that nothing acts on the new term before its writes are allowed.
    fn enter(&mut self, next: Term) -> bool {
        self.store.fence().hold(next.leader_token());
        self.metrics.leader.set(i64::from(next.is_leader()));
        self.term.send_if_modified(|t| replace(t, next))
    }
}

/// How much longer than a renewal period a leader's heartbeat must stand still before a
/// follower checks whether it is gone.
const SILENCE_MARGIN: Duration = Duration::from_millis(300);

/// How often a follower claims while the leader's heartbeat stands still.
const SILENT_LEADER_ROUND: Duration = Duration::from_millis(200);

/// Whether nothing listens at the gRPC address `url` (a refused connection, twice).
async fn refuses_connections(url: &str) -> bool {
    let authority = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    for _ in 0..2 {
        let attempt = tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(authority.as_str()),
        )
        .await;
        match attempt {
            Ok(Err(err)) if err.kind() == std::io::ErrorKind::ConnectionRefused => {}
            _ => return false,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

fn replace(current: &mut Term, next: Term) -> bool {
    let changed = *current != next;
    *current = next;
    changed
}

/// Gives the lease up on a clean stop, so a follower takes over at once.
pub async fn release(store: &Store, me: &Identity, term: &watch::Sender<Term>) {
    store.fence().hold(0);
    if term.borrow().is_leader() {
        term.send_replace(Term::Unknown);
        if let Err(err) = store.release_lease(&me.claimant("")).await {
            tracing::warn!(error = %err, "cannot release the leader lease; a follower takes over when it expires");
        }
    }
}

/// Resolves when `term` stops being a leader's term.
pub async fn lost(term: &mut watch::Receiver<Term>) {
    let _ = term.wait_for(|t| !t.is_leader()).await;
}

/// How often a follower reads what the leader stored.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// A follower's view of what the leader stored: inventory, mode, and the job it runs. The
/// whole inventory is read again only when the instance row moved or a job runs.
async fn follow_store(core: &Arc<Core>) -> Result<(), crate::store::StoreError> {
    let unfinished = core.store.unfinished_jobs().await?;
    let stored = core.store.instance_row().await?;
    let shown = {
        let s = core.snapshot.borrow();
        (s.instance.clone(), s.mode, s.epoch)
    };
    let moved = stored
        .as_ref()
        .is_some_and(|(name, mode, epoch)| (Some(name.clone()), Some(*mode), *epoch) != shown);
    if moved || !unfinished.is_empty() {
        core.reload().await?;
    }
    let active = match unfinished.first() {
        Some(id) => core
            .store
            .job(id)
            .await?
            .and_then(|job| crate::instance::ActiveJob::of(&job)),
        None => None,
    };
    core.snapshot.send_if_modified(|s| {
        let changed = s.active_job != active;
        s.active_job = active;
        changed
    });
    Ok(())
}

/// Keeps the status's coordinators, leader and token current, and a follower's inventory and
/// mode as the leader stored them.
pub async fn mirror(core: Arc<Core>, me: Identity) {
    let mut term = core.term.subscribe();
    let mut peers = core.peers.subscribe();
    let mut tick = tokio::time::interval(FOLLOW_EVERY);
    loop {
        tokio::select! {
            changed = term.changed() => if changed.is_err() { return },
            changed = peers.changed() => if changed.is_err() { return },
            _ = tick.tick() => {
                if !core.term.borrow().is_leader()
                    && let Err(err) = follow_store(&core).await
                {
                    tracing::warn!(error = %err, "cannot read the leader's state from the store");
                }
            }
        }
        let current = core.term.borrow().clone();
        let leader = match &current {
            Term::Leader { .. } => me.id.as_str(),
            Term::Follower { leader, .. } => leader.as_str(),
            Term::Unknown => "",
        };
        let list = crate::instance::peers::shown(
            &core.peers.borrow(),
            leader,
            &core.migrations_digest,
            crate::clock::now_ms(),
            me.ttl,
        );
        let token = crate::instance::FencingToken::from_wire(current.token());
        core.snapshot.send_if_modified(|s| {
            let changed =
                s.coordinators != list || s.fencing_token != token || s.answered_by != me.id;
            s.coordinators = list;
            s.fencing_token = token;
            s.answered_by = me.id.clone();
            changed
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_an_address_nothing_listens_at_counts_as_gone() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{e}"))
            .port();
        let url = format!("https://127.0.0.1:{port}");
        assert!(
            !refuses_connections(&url).await,
            "a listener, even one that never accepts"
        );
        drop(listener);
        assert!(refuses_connections(&url).await);
        // An address that cannot be resolved proves nothing.
        assert!(!refuses_connections("https://no-such-host.invalid:7070").await);
    }

    #[test]
    fn a_follower_carries_the_leaders_token_and_unknown_carries_none() {
        let follower = Term::Follower {
            leader: "a".to_owned(),
            address: "https://a:7070".to_owned(),
            token: 7,
        };
        assert_eq!((follower.token(), follower.is_leader()), (7, false));
        assert_eq!(Term::Unknown.token(), 0);
        assert!(Term::Leader { token: 8 }.is_leader());
        // Only a leader writes to the store under a token.
        assert_eq!(follower.leader_token(), 0);
        assert_eq!(Term::Leader { token: 8 }.leader_token(), 8);
    }
}
