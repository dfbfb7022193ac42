//! Leader preference by region: with `--leader-regions eu,us` (the same list on every
//! node), a leader outside the most preferred region it could be in hands its leadership
//! to a healthy voter of a more preferred region (see [`super::transfer`]).
//!
//! Hysteresis keeps it from flapping: the leader must have led for the hold-off
//! (`--leader-preference-delay-ms`, 30 s by default), the candidate must have been caught
//! up for that long on every look, and after a failed transfer the leader waits the
//! hold-off again. Only a strictly more preferred region counts, so two voters of the
//! same region never trade leadership back and forth.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::{Inner, RaftReplica};
use crate::replica::NodeId;

/// How often the leader looks.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// The rank of `region` in `preferred` (0 is the most preferred); regions not listed
/// come after every listed one.
pub fn region_rank(preferred: &[String], region: &str) -> usize {
    preferred
        .iter()
        .position(|listed| listed == region)
        .unwrap_or(preferred.len())
}

/// What the preference loop remembers between looks.
#[derive(Default)]
struct Watch {
    /// When this node last became leader (`None` while it does not lead).
    leading_since: Option<Instant>,
    /// Since when each voter has been caught up on every look.
    healthy_since: BTreeMap<NodeId, Instant>,
    /// No transfer before this (after a failed one).
    quiet_until: Option<Instant>,
}

impl Inner {
    /// One look: the voter to hand leadership to now, if any.
    fn preferred_successor(&self, watch: &mut Watch, now: Instant) -> Option<NodeId> {
        let preferred = &self.config.leader_regions;
        let hold_off = self.config.leader_preference_delay;
        if !self.is_leader() || self.handing_over() {
            watch.leading_since = None;
            watch.healthy_since.clear();
            return None;
        }
        let leading_since = *watch.leading_since.get_or_insert(now);
        let metrics = self.node.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let my_rank = membership
            .get_node(&metrics.id)
            .map_or(preferred.len(), |info| region_rank(preferred, &info.region));
        // Caught up and answering now (an idle cluster's dead voter still looks caught up).
        let lease_ms = self.node.raft().config().election_timeout_max;
        let contact = self.node.peer_contact_ms();
        let mut healthy = self.healthy_voters();
        healthy.retain(|id| contact.get(id).is_some_and(|ms| *ms <= lease_ms));
        watch.healthy_since.retain(|id, _| healthy.contains(id));
        for id in &healthy {
            watch.healthy_since.entry(*id).or_insert(now);
        }
        if now.duration_since(leading_since) < hold_off
            || watch.quiet_until.is_some_and(|until| now < until)
        {
            return None;
        }
        membership
            .voter_ids()
            .filter(|id| *id != metrics.id)
            .filter_map(|id| {
                let rank = region_rank(preferred, &membership.get_node(&id)?.region);
                let since = watch.healthy_since.get(&id)?;
                (rank < my_rank && now.duration_since(*since) >= hold_off).then_some((rank, id))
            })
            .min()
            .map(|(_, id)| id)
    }
}

/// Runs the leader preference until `stopped` turns true (or the replica is dropped);
/// does nothing without preferred regions.
pub async fn run_leader_preference(replica: RaftReplica, mut stopped: watch::Receiver<bool>) {
    let inner = std::sync::Arc::downgrade(&replica.inner);
    drop(replica);
    let mut watch = Watch::default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(LOOK_EVERY) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if inner.config.leader_regions.is_empty() {
            return;
        }
        let Some(to) = inner.preferred_successor(&mut watch, Instant::now()) else {
            continue;
        };
        tracing::info!(
            to,
            "moving leadership to a voter of a more preferred region"
        );
        match inner.leader_transfer(to).await {
            Ok(()) => metrics::counter!("holdfast_leader_transfers_total", "reason" => "region_preference").increment(1),
            Err(error) => {
                tracing::warn!(to, %error, "leader preference: the transfer failed");
                watch.quiet_until = Some(Instant::now() + inner.config.leader_preference_delay);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::region_rank;

    #[test]
    fn ranks_follow_the_list_and_unlisted_regions_come_last() {
        let preferred = vec!["eu".to_owned(), "us".to_owned()];
        assert_eq!(region_rank(&preferred, "eu"), 0);
        assert_eq!(region_rank(&preferred, "us"), 1);
        assert_eq!(region_rank(&preferred, "ap"), 2);
        assert_eq!(region_rank(&[], "eu"), 0);
    }
}
