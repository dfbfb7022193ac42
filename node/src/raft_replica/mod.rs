//! [`RaftReplica`]: the [`Replica`] seam over a [`RaftNode`]: group commit on the leader,
//! write forwarding from followers, the read levels of API.md, and cluster operations.
//!
//! Writes. Every proposal enters one bounded queue (admission control: a full queue answers
//! `OVERLOADED` at once). One batcher task drains the queue: it takes whatever is waiting,
//! up to [`RaftReplicaConfig::batch_entries_max`] entries, and commits them as one Raft
//! entry (one log append, one fsync, one replication round for many client commands),
//! with a bounded number of batches in flight so that Raft pipelines them. On the leader the
//! batch is stamped with cluster time and proposed; on a follower it is forwarded to the
//! leader's peer gRPC service, which stamps and proposes it. Outcomes go back to each
//! caller in order.
//!
//! Reads. `stale` reads the local state. `linearizable` confirms leadership with a quorum
//! (read index) — on the leader directly, on a follower through the leader's `ReadIndex`
//! RPC — and then waits until the local node has applied that index. `bounded` reads
//! locally when this node heard from the leader within `max_staleness_ms` (a follower
//! counts the last AppendEntries it received; the leader its last quorum acknowledgement),
//! and otherwise takes the linearizable path. `min_index` waits, bounded, for that index.
//!
//! By concern: `batcher.rs` (the queue, the batcher, group commit on the leader),
//! `forward.rs` (a follower's forwarding and the leader's side of it), `reads.rs` (read
//! index and staleness), `membership.rs` (membership changes and their safety checks),
//! `transfer.rs` (leader transfer), `preference.rs` and `placement.rs` (regions),
//! `clock_guard.rs` (cluster time), `bootstrap.rs` (self-bootstrap); this file holds the
//! seam's implementation, the node's view of who leads, and the cluster status.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use holdfast_proto::booking::{
    AddLearnerRequest, ChangeMembershipRequest, ClusterStatusRequest, ClusterStatusResponse,
    ProposeRequest, ProposedCommand, ReadIndexRequest, RemoveNodeRequest, TransferLeaderRequest,
};
use holdfast_proto::PROPOSE_WIRE_FORMAT_VERSION;
use holdfast_raft::{Batch, NodeInfo, RaftNode, Transport};
use holdfast_statemachine::{Command, Entry, Outcome, StateMachine};
use openraft::{ChangeMembers, ServerState};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::time::Instant;
use tonic::transport::Endpoint;

mod batcher;
mod bootstrap;
mod clock_guard;
mod forward;
mod membership;
mod placement;
mod preference;
mod reads;
mod transfer;

use batcher::{run_batcher, Pending};
pub use bootstrap::{run_bootstrap, Bootstrap};
pub use clock_guard::{agreed_time, run_clock_sampler};
pub use placement::{region_loss_risk, PlacementPolicy};
pub use preference::{region_rank, run_leader_preference};

use crate::peer::{peer_client, PeerClient, PeerEnvelope};

use crate::replica::{
    AppliedTime, Backup, ClusterClock, ClusterStatus, CommittedOutcome, MemberSpec, MemberStatus,
    NodeError, NodeId, Proposal, ReadConsistency, ReadMeta, ReadRequest, Replica,
    RequestIndexTable, Role, SnapshotTaken, MIN_INDEX_WAIT_DEFAULT,
};

/// The peer service of node `target` at `raft_addr` (over mutual TLS when `tls` is given):
/// connect within a second (or `timeout`, if shorter), every call within `timeout`.
fn peer_endpoint(
    tls: Option<&holdfast_raft::PeerTls>,
    raft_addr: &str,
    target: NodeId,
    timeout: Duration,
) -> Result<Endpoint, tonic::transport::Error> {
    Ok(holdfast_raft::tls::peer_endpoint(tls, raft_addr, target)?
        .connect_timeout(timeout.min(Duration::from_secs(1)))
        .timeout(timeout))
}

/// How long a membership change waits for a new voter to answer its probe.
const MEMBER_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest wait for a snapshot asked for through `POST /cluster/snapshot`.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(120);

/// Settings of a [`RaftReplica`].
#[derive(Clone, Debug)]
pub struct RaftReplicaConfig {
    /// Proposals waiting for the batcher at once; more are shed with `503 OVERLOADED`.
    pub proposals_queued_max: usize,
    /// State machine entries in one Raft entry at most.
    pub batch_entries_max: usize,
    /// Encoded bytes of the commands in one Raft entry (or one forwarded batch) at most,
    /// so that every entry fits an AppendEntries message (`message_bytes_max`). A single
    /// write larger than this is refused (`INVALID_FIELD`) before it is proposed.
    pub entry_bytes_max: usize,
    /// Raft entries proposed and not yet committed at once. Small on purpose: while they
    /// commit, new commands gather into the next entry, so one entry (one append, one
    /// fsync per node, one replication round) carries many commands. One by default:
    /// measured with 64 HTTP clients on three nodes, a second entry in flight carried few
    /// commands and made the p99 four times longer (BENCHMARKS.md, 2026-12-05).
    pub batches_in_flight_max: usize,
    /// Batches a follower has forwarded to the leader and not yet had answered, at once.
    /// Larger than `batches_in_flight_max`: the leader coalesces them into its own entries.
    pub forwards_in_flight_max: usize,
    /// While a forward is out, a follower sends another (up to `forwards_in_flight_max`)
    /// only once this many commands wait; fewer gather until the one out is answered
    /// (Nagle's rule: few large forwards rather than many small ones).
    pub forward_overlap_commands: usize,
    /// Deadline of a forwarded write or read-index request to the leader.
    pub forward_timeout: Duration,
    /// How long a follower tries to open a connection to the leader's peer service.
    pub forward_connect_timeout: Duration,
    /// A node believes in a leader only while it heard from it this recently (a follower:
    /// its last AppendEntries; the leader itself: its last quorum acknowledgement). Writes
    /// are forwarded only to a leader the node believes in, and a forwarded write whose
    /// leader changes or falls silent this long is answered at once (`OUTCOME_UNKNOWN`)
    /// instead of waiting for [`Self::forward_timeout`].
    pub leader_contact_max: Duration,
    /// How long a write waits, unsent, for a leader this node believes in (for instance
    /// during an election) before it is refused with `NO_LEADER`.
    pub leader_wait: Duration,
    /// How long the leader waits for a batch to commit before answering that its outcome
    /// is unknown (`OUTCOME_UNKNOWN`; a retry with the same idempotency key is safe).
    pub commit_timeout: Duration,
    /// How long a follower waits to apply a write it forwarded before answering anyway.
    pub forwarded_apply_wait: Duration,
    /// How long a read waits for `min_index` (API.md: 5 s).
    pub min_index_wait: Duration,
    /// How long a linearizable read may take to confirm leadership (API.md: 2 s).
    pub linearizable_timeout: Duration,
    /// How long `POST /cluster/learners` waits for the learner to catch up.
    pub learner_catch_up_timeout: Duration,
    /// A voter whose replicated index is this far behind the leader's counts as unhealthy
    /// when checking that a membership change keeps a working majority.
    pub healthy_lag_entries_max: u64,
    /// Request ids whose first log index is remembered (see [`RequestIndexTable`]).
    pub request_index_entries_max: usize,
    /// Retention of that table, in log milliseconds.
    pub request_index_retention_ms: u64,
    /// Largest gRPC message between nodes.
    pub message_bytes_max: usize,
    /// What a membership change that leaves the voters unable to survive a region's loss
    /// does (see [`placement`]).
    pub placement: PlacementPolicy,
    /// Regions the leader should be in, most preferred first (empty: no preference; see
    /// [`preference`]).
    pub leader_regions: Vec<String>,
    /// Hysteresis of the leader preference: how long a leader leads, and a candidate stays
    /// caught up, before leadership moves.
    pub leader_preference_delay: Duration,
    /// How far ahead of the time its quorum's clocks agree on a leader may stamp (see
    /// [`clock_guard`]).
    pub clock_tolerance: Duration,
}

impl Default for RaftReplicaConfig {
    fn default() -> Self {
        RaftReplicaConfig {
            proposals_queued_max: 16_384,
            batch_entries_max: 512,
            entry_bytes_max: 8 * 1024 * 1024,
            batches_in_flight_max: 1,
            forwards_in_flight_max: 8,
            forward_overlap_commands: 128,
            forward_timeout: Duration::from_secs(8),
            forward_connect_timeout: Duration::from_millis(500),
            leader_contact_max: Duration::from_millis(
                holdfast_raft::node::election_timeout_max_ms(
                    holdfast_raft::node::ELECTION_TIMEOUT_MS_DEFAULT,
                ),
            ),
            leader_wait: Duration::from_secs(2),
            commit_timeout: Duration::from_secs(5),
            forwarded_apply_wait: Duration::from_secs(2),
            min_index_wait: MIN_INDEX_WAIT_DEFAULT,
            linearizable_timeout: Duration::from_secs(2),
            learner_catch_up_timeout: Duration::from_secs(120),
            healthy_lag_entries_max: 10_000,
            request_index_entries_max: 1_000_000,
            request_index_retention_ms: 15 * 60 * 1000,
            message_bytes_max: 64 * 1024 * 1024,
            placement: PlacementPolicy::Warn,
            leader_regions: Vec::new(),
            leader_preference_delay: Duration::from_secs(30),
            clock_tolerance: Duration::from_secs(1),
        }
    }
}

/// When this node last heard from a leader, in milliseconds since `epoch`. Updated by the
/// peer gRPC server on every AppendEntries it receives (heartbeats included).
#[derive(Debug)]
pub struct LeaderContact {
    epoch: Instant,
    last_ms: AtomicU64,
}

impl Default for LeaderContact {
    fn default() -> Self {
        LeaderContact {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(u64::MAX),
        }
    }
}

impl LeaderContact {
    /// Records contact now.
    pub fn touch(&self) {
        self.last_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Milliseconds since this record's epoch (a monotonic clock).
    pub fn epoch_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Milliseconds since the last contact, if there was one.
    pub fn age_ms(&self) -> Option<u64> {
        let last = self.last_ms.load(Ordering::Relaxed);
        (last != u64::MAX).then(|| (self.epoch.elapsed().as_millis() as u64).saturating_sub(last))
    }
}

/// The Raft-backed replica.
#[derive(Clone)]
pub struct RaftReplica {
    inner: Arc<Inner>,
}

struct Inner {
    node: Arc<RaftNode>,
    transport: Arc<dyn Transport>,
    config: RaftReplicaConfig,
    clock: ClusterClock,
    queue: mpsc::Sender<Pending>,
    request_index: Mutex<RequestIndexTable>,
    leader_client: Mutex<Option<(NodeId, PeerClient)>>,
    contact: Arc<LeaderContact>,
    /// The last read-index confirmation: when it started and what it answered.
    read_confirmation: tokio::sync::Mutex<Option<(Instant, Result<u64, NodeError>)>>,
    /// Set while this leader hands its leadership over (see [`transfer`]).
    handing_over: AtomicBool,
    /// One leader transfer at a time.
    transfer: tokio::sync::Mutex<()>,
    /// The voters' clocks as this leader last sampled them (see [`clock_guard`]).
    clock_samples: clock_guard::ClockSamples,
    /// The last term in which the batcher waited for the first clock samples.
    clock_awaited_term: AtomicU64,
    /// When the leader last sent followers its commit index early (ms of `contact`'s
    /// epoch), for forwarded writes.
    commit_nudged_ms: AtomicU64,
    /// Set once the state has its id key (or handed out ids without one): no more asking.
    ids_keyed: AtomicBool,
}

impl RaftReplica {
    /// `503 NOT_READY` once Raft stopped for good: nothing this node proposes or waits for
    /// can happen any more (it is up read-only, serving `stale` reads of what it has).
    fn refuse_when_stopped(&self) -> Result<(), NodeError> {
        match self.fatal() {
            Some(reason) => Err(NodeError::NotReady {
                message: format!(
                    "raft stopped: {reason}; this node serves stale reads only (writes and \
                     consistent reads go to another node)"
                ),
            }),
            None => Ok(()),
        }
    }

    /// Wraps a started [`RaftNode`] and starts the batcher task.
    pub fn new(
        node: Arc<RaftNode>,
        transport: Arc<dyn Transport>,
        config: RaftReplicaConfig,
        contact: Arc<LeaderContact>,
        clock: ClusterClock,
    ) -> RaftReplica {
        let (queue, receiver) = mpsc::channel(config.proposals_queued_max.max(1));
        let request_index = RequestIndexTable::new(
            config.request_index_retention_ms,
            config.request_index_entries_max,
        );
        let inner = Arc::new(Inner {
            node,
            transport,
            clock,
            queue,
            request_index: Mutex::new(request_index),
            leader_client: Mutex::new(None),
            contact,
            read_confirmation: tokio::sync::Mutex::new(None),
            handing_over: AtomicBool::new(false),
            transfer: tokio::sync::Mutex::new(()),
            clock_samples: clock_guard::ClockSamples::default(),
            clock_awaited_term: AtomicU64::new(0),
            commit_nudged_ms: AtomicU64::new(0),
            ids_keyed: AtomicBool::new(false),
            config,
        });
        tokio::spawn(run_batcher(Arc::downgrade(&inner), receiver));
        RaftReplica { inner }
    }

    /// The Raft node underneath.
    pub fn node(&self) -> &Arc<RaftNode> {
        &self.inner.node
    }

    /// The read index for a follower's linearizable read: confirms leadership with a
    /// quorum and answers the index the follower must apply before reading.
    pub async fn read_index(&self) -> Result<u64, NodeError> {
        self.inner.leader_read_index().await
    }

    /// Leader-side `POST /cluster/learners` (a follower forwards here).
    pub async fn leader_add_learner(&self, member: MemberSpec) -> Result<(), NodeError> {
        self.inner.leader_add_learner(member).await
    }

    /// Leader-side `POST /cluster/membership`.
    pub async fn leader_change_membership(
        &self,
        voters: BTreeSet<NodeId>,
    ) -> Result<(), NodeError> {
        self.inner.leader_change_membership(voters).await
    }

    /// Leader-side `DELETE /cluster/nodes/{id}`.
    pub async fn leader_remove_node(&self, node_id: NodeId) -> Result<(), NodeError> {
        self.inner.leader_remove_node(node_id).await
    }

    /// This node's wall clock, for a leader's clock guard (peer `Clock`).
    pub fn wall_ms(&self) -> u64 {
        self.inner.clock.wall_ms()
    }

    /// Leader-side `POST /cluster/leader`: hands leadership to voter `to`.
    pub async fn leader_transfer(&self, to: NodeId) -> Result<(), NodeError> {
        self.inner.leader_transfer(to).await
    }

    /// Target side of a leader transfer: starts an election now if this voter has the
    /// leader's log up to `last_log_index`.
    pub async fn elect_on_request(&self, last_log_index: u64) -> Result<(), NodeError> {
        self.inner.elect_on_request(last_log_index).await
    }

    /// Other voters' side of a leader transfer: leaves the election to its target for
    /// `hold` (capped at [`transfer::HOLD_MAX`]).
    pub fn hold_elections(&self, hold: Duration) {
        self.inner.node.hold_elections(hold.min(transfer::HOLD_MAX));
    }
}

fn raft_error(error: holdfast_raft::Error) -> NodeError {
    use holdfast_raft::Error;
    match error {
        Error::NotLeader { leader_id, leader } => NodeError::NotLeader {
            leader_id,
            leader_http_addr: leader.map(|info| info.http_addr),
        },
        Error::NoQuorum { message } => NodeError::NoQuorum { message },
        Error::AlreadyInitialized => NodeError::AlreadyInitialized,
        Error::MembershipRefused { message } => NodeError::MembershipRefused { message },
        other => NodeError::Internal {
            message: other.to_string(),
        },
    }
}

/// Where a batch goes: this node leads, or another node it believes in does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Here,
    Leader(NodeId),
}

/// How often a waiting write or a forwarded one looks at the leader again.
const LEADER_POLL: Duration = Duration::from_millis(20);

/// How long a follower waits for the leader to answer a forwarded leader transfer (catch
/// up, a lease of silence, an election).
const TRANSFER_FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn encode_command(command: &Command) -> Vec<u8> {
    bincode::serde::encode_to_vec(command, bincode::config::standard())
        .expect("encoding a command into memory cannot fail")
}

/// Decodes a command or an outcome from a peer, with a limit that follows the length of
/// `bytes` (see `holdfast_statemachine::decode`): a forged length is an error, never an
/// allocation the node cannot afford.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, NodeError> {
    holdfast_statemachine::decode::from_slice(bytes)
        .map(|(value, _)| value)
        .map_err(|error| NodeError::Internal {
            message: format!("undecodable peer message: {error}"),
        })
}

pub(crate) fn encode_outcome(outcome: &Outcome) -> Vec<u8> {
    bincode::serde::encode_to_vec(outcome, bincode::config::standard())
        .expect("encoding an outcome into memory cannot fail")
}

impl Inner {
    fn node_id(&self) -> NodeId {
        self.node.node_id()
    }

    fn is_leader(&self) -> bool {
        let metrics = self.node.metrics();
        let metrics = metrics.borrow();
        metrics.current_leader == Some(metrics.id) && metrics.state == ServerState::Leader
    }

    fn leader_id(&self) -> Option<NodeId> {
        self.node.metrics().borrow().current_leader
    }

    /// The leader this node believes in right now: itself while it leads and its quorum
    /// acknowledged it within [`RaftReplicaConfig::leader_contact_max`], or the leader it
    /// knows when it heard from it that recently. `None` while there is no such leader
    /// (an election, or a leader that fell silent: its region may be cut off).
    fn believed_leader(&self) -> Option<Target> {
        let max_ms = self.config.leader_contact_max.as_millis() as u64;
        let (leader, me, leading, quorum_ack) = {
            let metrics = self.node.metrics();
            let metrics = metrics.borrow();
            (
                metrics.current_leader?,
                metrics.id,
                metrics.state == ServerState::Leader,
                metrics.millis_since_quorum_ack,
            )
        };
        if leader == me {
            if self.handing_over() {
                return None;
            }
            // No acknowledgement yet (a fresh leader) counts as contact.
            return (leading && quorum_ack.is_none_or(|age| age <= max_ms)).then_some(Target::Here);
        }
        self.contact
            .age_ms()
            .is_some_and(|age| age <= max_ms)
            .then_some(Target::Leader(leader))
    }

    /// Waits, bounded by [`RaftReplicaConfig::leader_wait`], for a leader this node
    /// believes in (not at all on a leader that lost contact with its quorum).
    async fn await_believed_leader(&self) -> Option<Target> {
        let deadline = Instant::now() + self.config.leader_wait;
        loop {
            if let Some(target) = self.believed_leader() {
                return Some(target);
            }
            // A leader that lost its quorum's acknowledgements (cut off with a minority)
            // refuses at once: waiting would not bring the quorum back sooner.
            if (self.is_leader() && !self.handing_over()) || Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(LEADER_POLL).await;
        }
    }

    /// Resolves once this node no longer believes in `leader_id` (it changed, or it fell
    /// silent for longer than [`RaftReplicaConfig::leader_contact_max`]).
    async fn leader_lost(&self, leader_id: NodeId) {
        while self.believed_leader() == Some(Target::Leader(leader_id)) {
            tokio::time::sleep(LEADER_POLL).await;
        }
    }

    fn applied_time(&self) -> AppliedTime {
        self.node.read_stale(|state| AppliedTime {
            time_ms: state.machine.now_ms(),
            applied_at: state.applied_at,
        })
    }
}

/// The commit index as the leader knows it: the highest index a majority of voters has
/// matched. A follower reports 0 here (openraft 0.9 does not publish a follower's commit
/// index), and the caller raises it to the applied index.
fn committed_index(
    metrics: &openraft::RaftMetrics<NodeId, NodeInfo>,
    voters: &BTreeSet<NodeId>,
) -> u64 {
    let Some(replication) = &metrics.replication else {
        return 0;
    };
    let mut matched: Vec<u64> = voters
        .iter()
        .map(|id| {
            if *id == metrics.id {
                metrics.last_log_index.unwrap_or(0)
            } else {
                replication
                    .get(id)
                    .copied()
                    .flatten()
                    .map_or(0, |log_id| log_id.index)
            }
        })
        .collect();
    if matched.is_empty() {
        return 0;
    }
    matched.sort_unstable_by(|a, b| b.cmp(a));
    matched[matched.len() / 2]
}

#[async_trait]
impl Replica for RaftReplica {
    fn node_id(&self) -> NodeId {
        self.inner.node_id()
    }

    fn cluster_time_ms(&self) -> u64 {
        let inner = &self.inner;
        inner
            .clock
            .now_ms_guarded(inner.applied_time(), |wall, applied| {
                if inner.is_leader() {
                    return inner.clock_ceiling(wall, applied, false);
                }
                // Elsewhere, time is the log's: the applied time carried on by the
                // monotonic clock, plus what a leader may stamp ahead of it. A follower
                // whose own clock runs ahead never judges a hold expired early (display,
                // the confirm pre-check).
                (applied > 0).then(|| {
                    applied.saturating_add(inner.config.clock_tolerance.as_millis() as u64)
                })
            })
    }

    async fn propose(&self, proposals: Vec<Proposal>) -> Result<Vec<CommittedOutcome>, NodeError> {
        self.refuse_when_stopped()?;
        self.inner.submit(proposals, false).await
    }

    fn fatal(&self) -> Option<String> {
        self.inner.node.fatal()
    }

    async fn prepare_read(&self, request: ReadRequest) -> Result<(), NodeError> {
        if !matches!(request.consistency, ReadConsistency::Stale) || request.min_index.is_some() {
            self.refuse_when_stopped()?;
        }
        match request.consistency {
            ReadConsistency::Stale => {}
            ReadConsistency::Linearizable => self.inner.linearizable().await?,
            ReadConsistency::Bounded { max_staleness_ms } => {
                if !self.inner.heard_from_leader_within(max_staleness_ms) {
                    self.inner.linearizable().await?;
                }
            }
        }
        if let Some(min_index) = request.min_index {
            let reached = self
                .inner
                .node
                .wait_applied(min_index, self.inner.config.min_index_wait)
                .await
                .map_err(raft_error)?;
            if !reached {
                return Err(NodeError::IndexNotReached {
                    min_index,
                    applied_index: self.inner.node.state().applied_index(),
                });
            }
        }
        Ok(())
    }

    fn with_state(&self, read: &mut dyn FnMut(&StateMachine, ReadMeta)) {
        let node_id = self.inner.node_id();
        let leader_id = self.inner.leader_id();
        self.inner.node.read_stale(|state| {
            read(
                &state.machine,
                ReadMeta {
                    applied_index: state.applied_index(),
                    node_id,
                    leader_id,
                },
            )
        });
    }

    fn status(&self) -> ClusterStatus {
        let metrics = self.inner.node.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let last = metrics.last_log_index.unwrap_or(0);
        let lag = |id: &NodeId| {
            let replication = metrics.replication.as_ref()?;
            if *id == metrics.id {
                return Some(0);
            }
            let matched = replication.get(id)?.map_or(0, |log_id| log_id.index);
            Some(last.saturating_sub(matched))
        };
        let leading = metrics.state == ServerState::Leader;
        let contact = if leading {
            self.inner.node.peer_contact_ms()
        } else {
            BTreeMap::new()
        };
        let members: Vec<MemberStatus> = membership
            .nodes()
            .map(|(id, info)| MemberStatus {
                id: *id,
                raft_addr: info.raft_addr.clone(),
                http_addr: info.http_addr.clone(),
                region: info.region.clone(),
                voter: voters.contains(id),
                lag: lag(id),
                last_contact_ms: if *id == metrics.id && leading {
                    Some(0)
                } else {
                    contact.get(id).copied()
                },
                incarnation: info.incarnation,
            })
            .collect();
        let role = match metrics.state {
            _ if members.is_empty() => Role::Uninitialized,
            ServerState::Leader => Role::Leader,
            ServerState::Follower => Role::Follower,
            ServerState::Candidate => Role::Candidate,
            ServerState::Learner => Role::Learner,
            ServerState::Shutdown => Role::Shutdown,
        };
        let applied_index = metrics.last_applied.map_or(0, |log_id| log_id.index);
        ClusterStatus {
            node_id: metrics.id,
            leader_id: metrics.current_leader,
            term: metrics.current_term,
            role,
            applied_index,
            committed_index: committed_index(&metrics, &voters).max(applied_index),
            members,
            placement_warning: self.inner.placement_warning(),
            incarnation: self.inner.node.incarnation(),
            cluster_id: self.inner.node.cluster().get().map(|id| id.to_string()),
        }
    }

    fn replication_lag(&self) -> Vec<(NodeId, u64)> {
        let metrics = self.inner.node.metrics().borrow().clone();
        let last = metrics.last_log_index.unwrap_or(0);
        let Some(replication) = &metrics.replication else {
            return Vec::new();
        };
        replication
            .iter()
            .filter(|(id, _)| **id != metrics.id)
            .map(|(id, matched)| {
                (
                    *id,
                    last.saturating_sub(matched.map_or(0, |log_id| log_id.index)),
                )
            })
            .collect()
    }

    fn readiness(&self) -> Result<(), NodeError> {
        let metrics = self.inner.node.metrics().borrow().clone();
        if let Err(fatal) = &metrics.running_state {
            return Err(NodeError::NotReady {
                message: format!("raft stopped: {fatal}"),
            });
        }
        if metrics.current_leader.is_none() {
            return Err(NodeError::NoLeader);
        }
        let applied = metrics.last_applied.map_or(0, |log_id| log_id.index);
        let last = metrics.last_log_index.unwrap_or(0);
        if last.saturating_sub(applied) > 1_000 {
            return Err(NodeError::NotReady {
                message: format!("catching up: applied {applied} of {last}"),
            });
        }
        Ok(())
    }

    async fn initialize(&self, members: Vec<MemberSpec>) -> Result<(), NodeError> {
        if members.is_empty() {
            return Err(NodeError::InvalidField {
                field: "members".into(),
                reason: "must name at least one node".into(),
            });
        }
        if !members
            .iter()
            .any(|member| member.id == self.inner.node_id())
        {
            return Err(NodeError::InvalidField {
                field: "members".into(),
                reason: format!("must include this node ({})", self.inner.node_id()),
            });
        }
        // A node that belongs to no cluster yet (started without an id on a fresh
        // directory) gives the new cluster a random id, recorded before any member hears
        // of it; the others take it from the first Raft call that reaches them.
        let ours = self
            .inner
            .node
            .cluster()
            .generate_unless_known()
            .map_err(|error| NodeError::Internal {
                message: format!("cannot record the new cluster id: {error}"),
            })?;
        if !ours {
            // A cluster's leader reached this node first and it took that cluster's id.
            return Err(NodeError::AlreadyInitialized);
        }
        let incarnations = self.inner.initial_incarnations(&members).await;
        let members: BTreeMap<NodeId, NodeInfo> = members
            .into_iter()
            .map(|member| {
                (
                    member.id,
                    NodeInfo {
                        incarnation: incarnations.get(&member.id).copied().unwrap_or(0),
                        raft_addr: member.raft_addr,
                        http_addr: member.http_addr,
                        region: member.region,
                    },
                )
            })
            .collect();
        self.inner
            .node
            .initialize(members)
            .await
            .map_err(raft_error)
    }

    async fn add_learner(&self, member: MemberSpec) -> Result<(), NodeError> {
        if self.inner.is_leader() {
            return self.inner.leader_add_learner(member).await;
        }
        let mut client = self.inner.leader_client(None).await?;
        let request = AddLearnerRequest {
            learner: Some(crate::peer::member_to_proto(&member)),
        };
        let mut request = tonic::Request::new(request);
        request.set_timeout(self.inner.config.learner_catch_up_timeout);
        crate::peer::cluster_change_answer(client.add_learner(request).await)
    }

    async fn change_membership(&self, voters: BTreeSet<NodeId>) -> Result<(), NodeError> {
        if self.inner.is_leader() {
            return self.inner.leader_change_membership(voters).await;
        }
        let mut client = self.inner.leader_client(None).await?;
        let request = ChangeMembershipRequest {
            voters: voters.into_iter().collect(),
        };
        crate::peer::cluster_change_answer(client.change_membership(request).await)
    }

    async fn transfer_leader(&self, to: NodeId) -> Result<(), NodeError> {
        if self.inner.is_leader() {
            return self.inner.leader_transfer(to).await;
        }
        let mut client = self.inner.leader_client(None).await?;
        let mut request = tonic::Request::new(TransferLeaderRequest { node_id: to });
        request.set_timeout(TRANSFER_FORWARD_TIMEOUT);
        crate::peer::cluster_change_answer(client.transfer_leader(request).await)
    }

    async fn backup(&self) -> Result<Backup, NodeError> {
        self.prepare_read(ReadRequest::LINEARIZABLE).await?;
        let state = self.inner.node.state().clone();
        let (index, bytes) = tokio::task::spawn_blocking(move || state.backup_bytes())
            .await
            .map_err(|error| NodeError::Internal {
                message: format!("encoding the backup failed: {error}"),
            })?;
        Ok(Backup { index, bytes })
    }

    async fn snapshot_now(&self) -> Result<SnapshotTaken, NodeError> {
        let (index, build) = self
            .inner
            .node
            .snapshot_now(SNAPSHOT_TIMEOUT)
            .await
            .map_err(|error| NodeError::Internal {
                message: error.to_string(),
            })?;
        Ok(SnapshotTaken { index, build })
    }

    async fn remove_node(&self, node_id: NodeId) -> Result<(), NodeError> {
        if self.inner.is_leader() {
            return self.inner.leader_remove_node(node_id).await;
        }
        let mut client = self.inner.leader_client(None).await?;
        let answer = client.remove_node(RemoveNodeRequest { id: node_id }).await;
        // The leader's NODE_NOT_FOUND names this id: keep it a 404, not an internal error.
        if let Ok(response) = &answer {
            if response
                .get_ref()
                .error
                .as_ref()
                .is_some_and(|error| error.code == "NODE_NOT_FOUND")
            {
                return Err(NodeError::NodeNotFound { node_id });
            }
        }
        crate::peer::cluster_change_answer(answer)
    }
}
