//! Planned leadership transfer (`POST /cluster/leader`, `holdfastctl leader transfer`).
//!
//! openraft 0.9 has no transfer call, and a voter refuses to vote while the lease of the
//! leader it last heard from runs (`election_timeout_max`), so the leader makes room for
//! the target itself:
//!
//! 1. It stops taking writes and linearizable reads (they wait, bounded, as in an
//!    election, and then go to the new leader) and waits until the target has every entry
//!    of its log.
//! 2. It asks the other voters to leave elections to the target for a while
//!    (`HoldElections`: Holdfast's prompt elections would otherwise make one of them stand
//!    as soon as the silence outlasts the lease), then falls silent (no heartbeats) for one
//!    lease plus one heartbeat interval, so every voter's lease on it has run out, while
//!    the voters' own openraft election timers (a lease plus at least
//!    `election_timeout_min`) have not.
//! 3. It asks the target, over the peer service, to start an election now, unless the
//!    target already stood on its own once its lease ran out (prompt elections). The
//!    target, with the longest log, wins; the old leader steps down on the new term.
//!
//! Writes pause for about a lease and a heartbeat (1 s with the default timers). Whatever happens, the
//! leader's heartbeats are switched back on and writes resume; a target that did not take
//! over is reported as `LEADER_TRANSFER_FAILED`, naming the leader the cluster has.

use std::sync::atomic::Ordering;
use std::time::Duration;

use openraft::ServerState;
use tokio::time::Instant;

use super::{Inner, LEADER_POLL};
use crate::replica::{NodeError, NodeId};

/// How long the target may take to catch up with the leader's log before a transfer
/// gives up.
const CATCH_UP_MAX: Duration = Duration::from_secs(3);

/// The longest a voter leaves elections to a transfer's target when asked to
/// (`HoldElections`): a bound on what a peer's request can make it do.
pub(super) const HOLD_MAX: Duration = Duration::from_secs(10);

/// Times the leader catches up the target and falls silent before giving up because
/// entries already on their way kept appending.
const HANDOVER_ROUNDS_MAX: u32 = 3;

/// Undoes a handover however the transfer ends: heartbeats on, writes flowing.
struct Handover<'a> {
    inner: &'a Inner,
}

impl Drop for Handover<'_> {
    fn drop(&mut self) {
        let raft = self.inner.node.raft().clone();
        raft.runtime_config().heartbeat(true);
        // A heartbeat now: a leader that kept its leadership has its quorum's
        // acknowledgement again at once, so writes are not refused meanwhile.
        tokio::spawn(async move {
            let _ = raft.trigger().heartbeat().await;
        });
        self.inner.handing_over.store(false, Ordering::Release);
    }
}

impl Inner {
    /// Whether this leader is handing its leadership over right now (it takes no writes).
    pub(super) fn handing_over(&self) -> bool {
        self.handing_over.load(Ordering::Acquire)
    }

    /// Waits (bounded by `leader_wait`) until no handover is under way here.
    pub(super) async fn handover_finished(&self) {
        let deadline = Instant::now() + self.config.leader_wait;
        while self.handing_over() && Instant::now() < deadline {
            tokio::time::sleep(LEADER_POLL).await;
        }
    }

    /// Refuses cluster changes while leadership is being handed over.
    pub(super) fn refuse_during_handover(&self) -> Result<(), NodeError> {
        if self.handing_over() {
            return Err(NodeError::MembershipRefused {
                message: "a leader transfer is under way; try again in a few seconds".into(),
            });
        }
        Ok(())
    }

    /// Leader side of a transfer to voter `to`; answers once `to` leads.
    pub(super) async fn leader_transfer(&self, to: NodeId) -> Result<(), NodeError> {
        if !self.is_leader() {
            return Err(NodeError::NoLeader);
        }
        if to == self.node_id() {
            return Ok(());
        }
        let membership = self.node.metrics().borrow().membership_config.clone();
        if !membership.membership().voter_ids().any(|id| id == to) {
            return Err(NodeError::MembershipRefused {
                message: format!("node {to} is not a voter: only a voter can lead"),
            });
        }
        let Ok(_one_at_a_time) = self.transfer.try_lock() else {
            return Err(NodeError::MembershipRefused {
                message: "another leader transfer is under way".into(),
            });
        };
        let raft = self.node.raft();
        let heartbeat = Duration::from_millis(raft.config().heartbeat_interval);
        let lease = Duration::from_millis(raft.config().election_timeout_max);
        // A voter that stopped answering would only leave the cluster without a leader.
        let contact_ms = self.node.peer_contact_ms().get(&to).copied();
        if contact_ms.is_none_or(|ms| ms > lease.as_millis() as u64) {
            return Err(NodeError::MembershipRefused {
                message: format!(
                    "node {to} has not answered this leader recently ({}): it cannot take over",
                    contact_ms.map_or_else(|| "never".to_owned(), |ms| format!("{ms} ms ago"))
                ),
            });
        }
        // Connected before falling silent: no handshake inside the silence.
        let mut target = self.member_client(to, heartbeat * 2).await?;

        self.handing_over.store(true, Ordering::Release);
        let _handover = Handover { inner: self };
        let mut rounds = 0;
        let last = loop {
            let last = self.await_caught_up(to).await?;
            // The other voters would stand on their own once the silence outlasts the
            // lease (prompt elections, `holdfast_raft::election`): they leave it to the
            // target for the silence and the election that follows.
            self.hold_other_voters(to, lease + heartbeat * 4, heartbeat)
                .await;
            raft.runtime_config().heartbeat(false);
            // The voters' leases and election timers run from the last AppendEntries they
            // received: one more now, so both are measured from here.
            let _ = raft.trigger().heartbeat().await;
            // The target itself stands once its lease on this leader runs out (prompt
            // elections; the other voters hold back): that is the handover done.
            let silent_until = Instant::now() + lease + heartbeat;
            while Instant::now() < silent_until && self.leader_id() != Some(to) {
                tokio::time::sleep(LEADER_POLL).await;
            }
            if self.leader_id() == Some(to) {
                tracing::info!(from = self.node_id(), to, "leadership handed over");
                return Ok(());
            }
            let metrics = self.node.metrics().borrow().clone();
            if metrics.state != ServerState::Leader {
                // The target's candidacy (a newer term) ended this leadership before the
                // election's outcome reached this node: wait for it.
                return self
                    .await_leader(
                        to,
                        lease * 2,
                        "this node lost its leadership during the handover",
                    )
                    .await;
            }
            if metrics.last_log_index.unwrap_or(0) == last {
                break last;
            }
            // A batch that was already on its way when the handover began appended (and
            // its AppendEntries renewed the voters' leases): catch up and fall silent
            // again, a bounded number of times.
            rounds += 1;
            raft.runtime_config().heartbeat(true);
            if rounds >= HANDOVER_ROUNDS_MAX {
                return Err(self.transfer_failed(to, "the log kept growing during the handover"));
            }
        };
        let asked = self.ask_to_elect(&mut target, to, last).await;
        // Heartbeats back on from here: if the target does not win, this leader goes on.
        raft.runtime_config().heartbeat(true);
        asked?;

        self.await_leader(to, lease * 2, "it did not win its election in time")
            .await
    }

    /// Waits up to `within` for `to` to lead; fails with `why` (and who leads) otherwise.
    async fn await_leader(&self, to: NodeId, within: Duration, why: &str) -> Result<(), NodeError> {
        let deadline = Instant::now() + within;
        loop {
            match self.leader_id() {
                Some(leader) if leader == to => {
                    tracing::info!(from = self.node_id(), to, "leadership handed over");
                    return Ok(());
                }
                // A third voter won: the transfer is over, and failed.
                Some(leader) if leader != self.node_id() => {
                    return Err(self.transfer_failed(to, why));
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(self.transfer_failed(to, why));
            }
            tokio::time::sleep(LEADER_POLL).await;
        }
    }

    /// Asks every voter but this one and `to` not to stand on its own for `hold`, all at
    /// once, each bounded by `timeout`. Best effort: a voter not reached may stand when the
    /// leader falls silent, and the transfer then reports who won.
    async fn hold_other_voters(&self, to: NodeId, hold: Duration, timeout: Duration) {
        let me = self.node_id();
        let others: Vec<NodeId> = {
            let metrics = self.node.metrics();
            let metrics = metrics.borrow();
            metrics
                .membership_config
                .membership()
                .voter_ids()
                .filter(|id| *id != me && *id != to)
                .collect()
        };
        let hold_ms = u64::try_from(hold.as_millis()).unwrap_or(u64::MAX);
        let asks = others.into_iter().map(|id| async move {
            let asked = tokio::time::timeout(timeout, async {
                let mut client = self.member_client(id, timeout).await?;
                client
                    .hold_elections(holdfast_proto::booking::HoldElectionsRequest { hold_ms })
                    .await
                    .map_err(|status| NodeError::Internal {
                        message: status.message().to_owned(),
                    })?;
                Ok::<_, NodeError>(())
            })
            .await;
            if !matches!(asked, Ok(Ok(()))) {
                tracing::warn!(
                    voter = id,
                    "could not ask a voter to leave a transfer's election to its target"
                );
            }
        });
        futures::future::join_all(asks).await;
    }

    /// Waits until `to` has every entry of this leader's log and all of it is committed;
    /// answers the last index.
    async fn await_caught_up(&self, to: NodeId) -> Result<u64, NodeError> {
        let deadline = Instant::now() + CATCH_UP_MAX;
        loop {
            let metrics = self.node.metrics().borrow().clone();
            if metrics.state != ServerState::Leader {
                return Err(NodeError::NoLeader);
            }
            let last = metrics.last_log_index.unwrap_or(0);
            let matched = metrics
                .replication
                .as_ref()
                .and_then(|replication| replication.get(&to).cloned().flatten())
                .map_or(0, |log_id| log_id.index);
            let committed = self.node.state().applied_index() >= last;
            if matched == last && committed {
                return Ok(last);
            }
            if Instant::now() >= deadline {
                return Err(self.transfer_failed(
                    to,
                    &format!(
                        "it has {matched} of this leader's {last} entries after {CATCH_UP_MAX:?}"
                    ),
                ));
            }
            tokio::time::sleep(LEADER_POLL).await;
        }
    }

    /// Asks `to` over the peer service to start an election now (quickly: the voters'
    /// own election timers run).
    async fn ask_to_elect(
        &self,
        client: &mut crate::peer::PeerClient,
        to: NodeId,
        last_log_index: u64,
    ) -> Result<(), NodeError> {
        let heartbeat = Duration::from_millis(self.node.raft().config().heartbeat_interval);
        let mut request =
            tonic::Request::new(holdfast_proto::booking::ElectRequest { last_log_index });
        request.set_timeout(heartbeat * 2);
        match client.elect(request).await {
            Ok(answer) => match answer.into_inner().error {
                None => Ok(()),
                Some(error) => {
                    Err(self.transfer_failed(to, &format!("it refused: {}", error.message)))
                }
            },
            Err(status) => {
                Err(self
                    .transfer_failed(to, &format!("it could not be asked: {}", status.message())))
            }
        }
    }

    fn transfer_failed(&self, to: NodeId, why: &str) -> NodeError {
        let leader = self
            .leader_id()
            .map_or_else(|| "none yet".to_owned(), |id| id.to_string());
        tracing::warn!(to, why, "leader transfer failed");
        NodeError::TransferFailed {
            message: format!("leadership did not move to node {to}: {why} (leader now: {leader})"),
        }
    }

    /// Target side: starts an election now if this voter has the leader's whole log.
    pub(super) async fn elect_on_request(&self, last_log_index: u64) -> Result<(), NodeError> {
        if self.is_leader() {
            return Ok(());
        }
        let metrics = self.node.metrics().borrow().clone();
        if !metrics
            .membership_config
            .membership()
            .voter_ids()
            .any(|id| id == metrics.id)
        {
            return Err(NodeError::MembershipRefused {
                message: format!("node {} is not a voter", metrics.id),
            });
        }
        let have = metrics.last_log_index.unwrap_or(0);
        if have < last_log_index {
            return Err(NodeError::MembershipRefused {
                message: format!(
                    "node {} has {have} of the leader's {last_log_index} entries",
                    metrics.id
                ),
            });
        }
        self.node
            .raft()
            .trigger()
            .elect()
            .await
            .map_err(|error| NodeError::Internal {
                message: error.to_string(),
            })
    }
}
