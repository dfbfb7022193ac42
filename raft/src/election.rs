//! Prompt elections: how a cluster gets a new leader soon after its leader falls silent.
//!
//! openraft 0.9 lets a follower stand for election only a lease plus its election timeout
//! after it last heard from its leader (`election_timeout_max` + a timeout drawn once, from
//! `election_timeout_min..election_timeout_max`), checked on a tick of one and a half
//! heartbeats, and its voters refuse every candidate while that lease runs. With
//! Holdfast's timers that put the first candidate 1.25–1.9 s after the silence began, and
//! when that candidate's log was shorter than a voter's it was refused and the next one
//! stood a whole timeout later: failovers of 3–5 s with 30–80 ms between regions
//! (BENCHMARKS.md, "Failover").
//!
//! Three nudges, all through openraft's own `trigger().elect()` (an election is always safe
//! in Raft; these only choose when one starts):
//! - [`prompt_elections`]: a voter that has followed a leader and heard nothing from it for
//!   the lease plus a short random stagger (up to half the shortest election timeout) stands at once, polled every [`POLL`]. The lease has run out on the other
//!   voters too (they heard the same leader), so they can grant the vote; the stagger makes
//!   it unlikely that two stand together.
//! - [`Elections::answered_a_candidate`]: a voter that refuses a candidate because its own
//!   log is longer stands at once when the lease has run out, also when it stood itself
//!   and the refused candidate will not vote for it (a split vote). The refused candidate
//!   cannot win; this one can.
//! - Retries: a voter whose election (its own, or the one it voted in) brought no leader
//!   within one to two heartbeat intervals, drawn at random, stands again — openraft would
//!   wait a whole election timeout, on a coarse tick. A heartbeat interval exceeds a vote's
//!   round trip (see [`crate::node::raft_config`]), so a candidate that could win has won by
//!   then. A voter that saw a candidate with a longer log than its own within the lease
//!   holds back and leaves the retry to openraft's timer, which waits longer for it: it
//!   cannot win, and would only push the terms up.
//!
//! A node only stands when it has heard no AppendEntries call for a whole lease, so a live
//! leader is never disturbed by these nudges, and not while a leader transfer asked it to
//! leave the election to the transfer's target ([`Elections::hold`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use crate::types::{HoldfastRaft, LogId, Vote};

/// How often [`prompt_elections`] looks at the leader's silence.
pub const POLL: Duration = Duration::from_millis(20);

/// When a node last heard from a leader (an AppendEntries call arrived), on tokio's
/// monotonic clock (simulated time in the simulations). Starts as "heard at creation", as
/// openraft gives a restarted node's leader a lease from the start.
#[derive(Debug)]
pub struct LeaderHeard {
    epoch: tokio::time::Instant,
    /// Milliseconds from `epoch` to the last call.
    last_ms: AtomicU64,
}

impl Default for LeaderHeard {
    fn default() -> Self {
        LeaderHeard {
            epoch: tokio::time::Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl LeaderHeard {
    /// A clock that has never been touched: silent for any span.
    fn never() -> LeaderHeard {
        LeaderHeard {
            epoch: tokio::time::Instant::now(),
            last_ms: AtomicU64::new(u64::MAX),
        }
    }

    /// Notes that an AppendEntries call arrived now.
    pub fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Whether no AppendEntries call arrived within `within`.
    pub fn silent_for(&self, within: Duration) -> bool {
        let last = self.last_ms.load(Ordering::Relaxed);
        last == u64::MAX || self.now_ms().saturating_sub(last) >= within.as_millis() as u64
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// One node's election nudges: its Raft and when it last heard from a leader.
#[derive(Clone)]
pub struct Elections {
    raft: HoldfastRaft,
    heard: Arc<LeaderHeard>,
    /// When this node last saw a candidate with a longer log than its own (a clock like
    /// `heard`'s).
    outlogged: Arc<LeaderHeard>,
    /// Until when (milliseconds on `heard`'s clock) a leader transfer asked this node not
    /// to stand on its own.
    held_until_ms: Arc<AtomicU64>,
}

impl Elections {
    /// The nudges of the node that runs `raft`.
    pub fn new(raft: HoldfastRaft) -> Elections {
        Elections {
            raft,
            heard: Arc::default(),
            outlogged: Arc::new(LeaderHeard::never()),
            held_until_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    /// When this node last heard from a leader.
    pub fn heard(&self) -> &LeaderHeard {
        &self.heard
    }

    /// Leaves elections to others for `span` (a leader transfer to another voter is under
    /// way): none of these nudges makes this node stand meanwhile. openraft's own timer
    /// still runs; the transfer is timed to finish before it fires.
    pub fn hold(&self, span: Duration) {
        let until = self
            .heard
            .now_ms()
            .saturating_add(u64::try_from(span.as_millis()).unwrap_or(u64::MAX));
        self.held_until_ms.fetch_max(until, Ordering::Relaxed);
    }

    fn held(&self) -> bool {
        self.heard.now_ms() < self.held_until_ms.load(Ordering::Relaxed)
    }

    /// The leader's lease: how long voters refuse other candidates after they last heard
    /// from it (openraft 0.9: `election_timeout_max`).
    fn lease(&self) -> Duration {
        Duration::from_millis(self.raft.config().election_timeout_max)
    }

    /// Where this node stands when it may have to stand for election: `None` while it leads,
    /// is no voter, or heard from a leader within `silence`.
    fn standing(&self, silence: Duration) -> Option<Standing> {
        let standing = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            let voter = metrics
                .membership_config
                .membership()
                .voter_ids()
                .any(|id| id == metrics.id);
            if !voter || metrics.state == ServerState::Leader || self.held() {
                return None;
            }
            if metrics.vote.is_committed() {
                if metrics.state != ServerState::Follower
                    || metrics.current_leader == Some(metrics.id)
                {
                    return None;
                }
                Standing::Following
            } else {
                Standing::Undecided(metrics.vote)
            }
        };
        self.heard.silent_for(silence).then_some(standing)
    }

    /// This node just answered a vote request of `candidate` (its vote) whose last log id is
    /// `candidate_log`; this node's is `own_log`. A candidate with a longer log makes it
    /// hold back its retries. One with a shorter log, refused, makes it stand now if it has
    /// heard no leader for a whole lease and follows no one else's candidacy (see the
    /// module's documentation): that candidate cannot win.
    pub fn answered_a_candidate(
        &self,
        candidate: Vote,
        candidate_log: Option<LogId>,
        own_log: Option<LogId>,
    ) {
        if candidate_log > own_log {
            self.outlogged.touch();
            return;
        }
        if candidate_log == own_log {
            return;
        }
        let me = self.raft.metrics().borrow().id;
        let stand = match self.standing(self.lease()) {
            Some(Standing::Following) => true,
            // Its own candidacy, which the refused candidate will not vote for (it voted
            // for itself, and openraft orders votes of one term by node id). A node that
            // voted for another candidate leaves it be: that one may have won.
            Some(Standing::Undecided(own)) => {
                own.leader_id().voted_for() == Some(me)
                    && candidate.partial_cmp(&own) == Some(std::cmp::Ordering::Greater)
            }
            None => false,
        };
        if stand {
            tracing::info!(
                "refused a candidate with a shorter log after the leader's lease ran out: standing for election"
            );
            let raft = self.raft.clone();
            tokio::spawn(async move {
                let _ = raft.trigger().elect().await;
            });
        }
    }
}

/// Where a voter without a live leader stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Standing {
    /// It follows a leader that fell silent.
    Following,
    /// It stands for election or voted for a candidate: no leader came of that vote yet.
    Undecided(Vote),
}

/// Stands for election when the leader has been silent for its lease plus a random stagger,
/// and again when an election brought no leader within a retry interval (see the module's
/// documentation), until `stop` turns true or Raft shuts down. The staggers are drawn from
/// a generator seeded with `seed`, drawn from [`crate::runtime::RaftRng`] where the node
/// starts: with the task drawing from `RaftRng` itself, a simulation's seed no longer
/// replayed the same run.
pub async fn prompt_elections(elections: Elections, seed: u64, mut stop: watch::Receiver<bool>) {
    let config = elections.raft.config().clone();
    let lease = elections.lease();
    let stagger_spread = (config.election_timeout_min / 2).max(1);
    let heartbeat = config.heartbeat_interval.max(1);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut draw = |from: u64, spread: u64| Duration::from_millis(from + rng.gen_range(0..spread));
    let mut stagger = draw(0, stagger_spread);
    let mut retry = draw(heartbeat, heartbeat);
    // The vote seen undecided and since when.
    let mut undecided: Option<(Vote, tokio::time::Instant)> = None;
    loop {
        // `biased`: an unbiased select draws from tokio's own generator, which a
        // simulation does not seed.
        tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => return,
            () = tokio::time::sleep(POLL) => {}
        }
        let stand = match elections.standing(lease) {
            None => {
                undecided = None;
                false
            }
            Some(Standing::Following) => {
                undecided = None;
                elections.heard.silent_for(lease + stagger)
            }
            Some(Standing::Undecided(vote)) => {
                let now = tokio::time::Instant::now();
                let since = match undecided {
                    Some((seen, since)) if seen == vote => since,
                    _ => {
                        undecided = Some((vote, now));
                        now
                    }
                };
                now - since >= retry && elections.outlogged.silent_for(lease)
            }
        };
        if !stand {
            continue;
        }
        tracing::info!(
            stagger_ms = stagger.as_millis() as u64,
            retry_ms = retry.as_millis() as u64,
            undecided = undecided.is_some(),
            "no leader heard for its lease: standing for election"
        );
        if elections.raft.trigger().elect().await.is_err() {
            return; // Raft has shut down.
        }
        stagger = draw(0, stagger_spread);
        retry = draw(heartbeat, heartbeat);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn silence_is_measured_from_the_last_call_or_from_creation() {
        let heard = LeaderHeard::default();
        assert!(!heard.silent_for(Duration::from_millis(100)));
        tokio::time::advance(Duration::from_millis(150)).await;
        assert!(heard.silent_for(Duration::from_millis(100)));
        heard.touch();
        assert!(!heard.silent_for(Duration::from_millis(100)));
        tokio::time::advance(Duration::from_millis(99)).await;
        assert!(!heard.silent_for(Duration::from_millis(100)));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(heard.silent_for(Duration::from_millis(100)));
    }
}
