//! The clock guard: cluster time cannot be pushed ahead by one clock.
//!
//! The leader stamps every entry with cluster time (`ClusterClock`), which follows its wall
//! clock. A leader whose clock runs hours ahead would expire every hold and forget every
//! idempotency key at once, and the state machine alone cannot tell that from a cluster
//! that was down overnight. So the leader samples its voters' clocks (peer `Clock` calls,
//! every half second, each corrected by half its round trip, as NTP does) and takes the
//! median of its own and the fresh samples as the time a quorum agrees on (TigerBeetle's
//! cluster clock is the anchor; with a majority of correct clocks the median lies among
//! them). It stamps at most `--clock-tolerance-ms` (1 s) ahead of that time; when its own
//! clock runs further ahead it logs it, counts it (`holdfast_clock_guard_engaged_total`),
//! exports the skew (`holdfast_clock_skew_ms`) and stamps the agreed time instead.
//!
//! Without a quorum of fresh samples (the first moments of a leadership) the leader stamps
//! at most the tolerance ahead of the last applied time plus the monotonic time since, and
//! the batcher waits (bounded) for the first samples before it proposes. Cluster time never
//! goes back either way: a ceiling below the last stamp leaves the last stamp carried on.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::{Inner, RaftReplica};
use crate::peer::PeerClient;
use crate::replica::NodeId;

/// How often the leader samples its voters' clocks.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// A sample older than this is not used.
const SAMPLE_FRESH_FOR: Duration = Duration::from_secs(5);
/// Longest wait for one clock sample.
const SAMPLE_TIMEOUT: Duration = Duration::from_millis(500);

/// One voter's clock as the leader last measured it. Kept as its reading and the
/// monotonic instant it stands for, never as an offset from the leader's own wall clock:
/// an offset would follow the leader's clock when that clock jumps, and until the next
/// sample the voters would seem to agree with it.
#[derive(Clone, Copy, Debug)]
struct Sample {
    /// Its wall clock, in Unix milliseconds, at `read_at`.
    their_ms: u64,
    /// The middle of the round trip that read it (also how old the sample is).
    read_at: Instant,
}

impl Sample {
    /// Its wall clock now, carried on from the reading by the monotonic clock.
    fn now_ms(&self, now: Instant) -> u64 {
        self.their_ms
            .saturating_add(now.saturating_duration_since(self.read_at).as_millis() as u64)
    }
}

/// The leader's view of its voters' clocks.
#[derive(Debug, Default)]
pub struct ClockSamples {
    samples: Mutex<BTreeMap<NodeId, Sample>>,
    /// When a warning was last logged (they are rate limited).
    warned_at: Mutex<Option<Instant>>,
    /// Without a quorum's samples: the term, and the applied time carried on when the
    /// fallback was first needed in it (a fixed anchor, so that stamps cannot ratchet
    /// cluster time forward by the tolerance one batch after another).
    fallback_anchor: Mutex<Option<(u64, u64, Instant)>>,
}

/// The median of `own_ms` and the voters' clocks, when at least a majority of the
/// `voters` voters took part (the leader is one of them).
pub fn agreed_time(own_ms: u64, others_ms: &[u64], voters: usize) -> Option<u64> {
    let mut clocks: Vec<u64> = Vec::with_capacity(others_ms.len() + 1);
    clocks.push(own_ms);
    clocks.extend_from_slice(others_ms);
    if clocks.len() * 2 <= voters {
        return None;
    }
    clocks.sort_unstable();
    Some(clocks[(clocks.len() - 1) / 2])
}

impl Inner {
    /// The highest time this leader may stamp now with wall clock `wall_ms`, or `None` for
    /// no limit (a single voter: its clock is the quorum's).
    pub(super) fn clock_ceiling(
        &self,
        wall_ms: u64,
        applied_carried_ms: u64,
        stamping: bool,
    ) -> Option<u64> {
        let tolerance = self.config.clock_tolerance.as_millis() as u64;
        let (voters, term): (Vec<NodeId>, u64) = {
            let metrics = self.node.metrics();
            let metrics = metrics.borrow();
            (
                metrics.membership_config.membership().voter_ids().collect(),
                metrics.current_term,
            )
        };
        if voters.len() <= 1 {
            return None;
        }
        let now = Instant::now();
        let others: Vec<u64> = {
            let samples = self
                .clock_samples
                .samples
                .lock()
                .expect("clock samples lock");
            voters
                .iter()
                .filter(|id| **id != self.node_id())
                .filter_map(|id| samples.get(id))
                .filter(|sample| now.saturating_duration_since(sample.read_at) <= SAMPLE_FRESH_FOR)
                .map(|sample| sample.now_ms(now))
                .collect()
        };
        let Some(agreed) = agreed_time(wall_ms, &others, voters.len()) else {
            // No quorum to compare with: stay near the log's own time as it was when this
            // term first needed it, carried on by the monotonic clock (a fresh cluster,
            // whose log has no time yet, takes the wall clock).
            if applied_carried_ms == 0 {
                return None;
            }
            let mut anchor = self
                .clock_samples
                .fallback_anchor
                .lock()
                .expect("clock anchor lock");
            let (_, anchor_ms, anchor_at) = *anchor
                .filter(|(anchor_term, _, _)| *anchor_term == term)
                .get_or_insert((term, applied_carried_ms, now));
            *anchor = Some((term, anchor_ms, anchor_at));
            let carried =
                anchor_ms.saturating_add(now.duration_since(anchor_at).as_millis() as u64);
            return Some(carried.saturating_add(tolerance));
        };
        let skew = wall_ms as i64 - agreed as i64;
        let ceiling = agreed.saturating_add(tolerance);
        if !stamping {
            return Some(ceiling);
        }
        metrics::gauge!("holdfast_clock_skew_ms").set(skew as f64);
        if wall_ms > ceiling {
            metrics::counter!("holdfast_clock_guard_engaged_total").increment(1);
            let mut warned_at = self
                .clock_samples
                .warned_at
                .lock()
                .expect("clock warn lock");
            if warned_at.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(10)) {
                *warned_at = Some(now);
                tracing::warn!(
                    skew_ms = skew,
                    tolerance_ms = tolerance,
                    "this leader's clock is ahead of the time its quorum agrees on: stamping the agreed time"
                );
            }
        }
        Some(ceiling)
    }

    /// Whether fresh samples from a quorum of voters are at hand (always, for a single
    /// voter).
    pub(super) fn clock_ready(&self) -> bool {
        let wall_ms = self.clock.wall_ms();
        self.clock_ceiling(wall_ms, 0, false).is_some() || self.voter_count() <= 1
    }

    fn voter_count(&self) -> usize {
        self.node
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .count()
    }

    /// Waits (bounded) until the clock guard has a quorum's samples.
    pub(super) async fn await_clock_ready(&self) {
        let deadline = Instant::now() + self.config.leader_wait;
        while !self.clock_ready() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Measures voter `id`'s clock once.
    async fn sample(&self, client: &mut PeerClient) -> Option<Sample> {
        let sent = Instant::now();
        let mut request = tonic::Request::new(holdfast_proto::booking::ClockRequest {});
        request.set_timeout(SAMPLE_TIMEOUT);
        let answer = tokio::time::timeout(SAMPLE_TIMEOUT, client.clock(request))
            .await
            .ok()?
            .ok()?
            .into_inner();
        let round_trip = sent.elapsed();
        Some(Sample {
            their_ms: answer.wall_ms,
            read_at: sent + round_trip / 2,
        })
    }
}

/// Samples the voters' clocks while this node leads, until `stopped`: every
/// [`SAMPLE_EVERY`], and at once when this node becomes leader (its batcher waits for a
/// quorum's samples before it proposes, so a new leader's first writes wait one round trip
/// to its nearest voters, not up to a sampling period). Each sample is kept as it arrives:
/// a voter that does not answer (its region cut off) delays no other voter's sample.
pub async fn run_clock_sampler(replica: RaftReplica, mut stopped: watch::Receiver<bool>) {
    let inner = std::sync::Arc::downgrade(&replica.inner);
    let mut metrics = replica.inner.node.metrics();
    drop(replica);
    let mut clients: BTreeMap<NodeId, PeerClient> = BTreeMap::new();
    loop {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let leading = inner.is_leader();
        if leading {
            let me = inner.node_id();
            let voters: Vec<NodeId> = inner
                .node
                .metrics()
                .borrow()
                .membership_config
                .membership()
                .voter_ids()
                .filter(|id| *id != me)
                .collect();
            clients.retain(|id, _| voters.contains(id));
            let inner_ref = &inner;
            let mut rounds: futures::stream::FuturesUnordered<_> = voters
                .into_iter()
                .map(|id| {
                    let cached = clients.remove(&id);
                    async move {
                        let mut client = match cached {
                            Some(client) => client,
                            None => inner_ref.member_client(id, SAMPLE_TIMEOUT).await.ok()?,
                        };
                        let sample = inner_ref.sample(&mut client).await?;
                        Some((id, client, sample))
                    }
                })
                .collect();
            while let Some(answer) = futures::StreamExt::next(&mut rounds).await {
                if let Some((id, client, sample)) = answer {
                    clients.insert(id, client);
                    inner
                        .clock_samples
                        .samples
                        .lock()
                        .expect("clock samples lock")
                        .insert(id, sample);
                }
            }
        } else {
            clients.clear();
            inner
                .clock_samples
                .samples
                .lock()
                .expect("clock samples lock")
                .clear();
        }
        drop(inner);
        // A follower wakes when it becomes leader; a leader samples again after a period.
        let became_leader = async {
            if leading
                || metrics
                    .wait_for(|metrics| {
                        metrics.state == openraft::ServerState::Leader
                            && metrics.current_leader == Some(metrics.id)
                    })
                    .await
                    .is_err()
            {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(SAMPLE_EVERY) => {}
            _ = became_leader => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::agreed_time;

    #[test]
    fn the_agreed_time_is_the_median_of_a_majority() {
        // A leader two hours ahead, two followers right: the followers' time.
        let hours = 2 * 3_600_000;
        assert_eq!(agreed_time(1_000 + hours, &[1_000, 1_010], 3), Some(1_010));
        // One follower wrong: the leader and the other follower carry it.
        assert_eq!(agreed_time(1_000, &[1_005, 1_000 + hours], 3), Some(1_005));
        // Five voters, two wrong the same way: still the correct majority's median.
        assert_eq!(
            agreed_time(1_000, &[1_002, 1_004, 1_000 + hours, 1_000 + hours], 5),
            Some(1_004)
        );
        // Without a majority of clocks there is no agreed time.
        assert_eq!(agreed_time(1_000, &[], 3), None);
        assert_eq!(agreed_time(1_000, &[1_000], 5), None);
        assert_eq!(agreed_time(1_000, &[], 1), Some(1_000));
    }
}
