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
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;
use tonic::transport::Endpoint;

mod bootstrap;
mod clock_guard;
mod membership;
mod placement;
mod preference;
mod transfer;

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

/// Proposals of one caller, waiting for the batcher.
struct Pending {
    proposals: Vec<Proposal>,
    reply: oneshot::Sender<Result<Vec<CommittedOutcome>, NodeError>>,
    /// Forwarded by a follower: committed only while this node leads, never forwarded
    /// again (no forwarding loops).
    forwarded: bool,
    /// The encoded size of the proposals ([`proposal_bytes`]), counted against
    /// [`RaftReplicaConfig::entry_bytes_max`].
    bytes: usize,
}

/// Room for what a state machine entry adds to its command in a Raft entry (time, request
/// id framing) and for the entry's own framing.
const ENTRY_OVERHEAD_BYTES: usize = 64;

/// The bytes `proposal` adds to a Raft entry: its command encoded as the log encodes it,
/// its request id, and [`ENTRY_OVERHEAD_BYTES`].
fn proposal_bytes(proposal: &Proposal) -> usize {
    let mut size = bincode::enc::write::SizeWriter::default();
    bincode::serde::encode_into_writer(&proposal.command, &mut size, bincode::config::standard())
        .expect("counting the bytes of a command cannot fail");
    size.bytes_written + proposal.request_id.as_ref().map_or(0, String::len) + ENTRY_OVERHEAD_BYTES
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

    /// Commits a batch that a follower forwarded. Only the leader does this; anywhere else
    /// it fails with `NO_LEADER` rather than forward again (no forwarding loops).
    ///
    /// The batch joins this node's own bounded queue (full → `OVERLOADED`), so the leader
    /// coalesces forwarded batches with its own commands into few Raft entries. Answers the
    /// highest log index among the outcomes (the entry the follower must apply) and the
    /// outcomes in order.
    pub async fn commit_forwarded(
        &self,
        proposals: Vec<Proposal>,
    ) -> Result<(u64, Vec<Outcome>), NodeError> {
        if !self.inner.is_leader() {
            return Err(NodeError::NoLeader);
        }
        let answers = self.inner.submit(proposals, true).await?;
        // The follower answers its client once it has applied the entry, and learns that
        // it committed from the next AppendEntries: send one now rather than at the next
        // heartbeat (up to a heartbeat interval later).
        // At most one every couple of milliseconds: under load the next entry carries it.
        let now_ms = self.inner.contact.epoch_ms();
        let last = self.inner.commit_nudged_ms.load(Ordering::Relaxed);
        if last + COMMIT_NUDGE_EVERY_MS <= now_ms
            && self
                .inner
                .commit_nudged_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let _ = self.inner.node.raft().trigger().heartbeat().await;
        }
        let index = answers.iter().map(|answer| answer.index).max().unwrap_or(0);
        Ok((
            index,
            answers.into_iter().map(|answer| answer.outcome).collect(),
        ))
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

async fn run_batcher(inner: std::sync::Weak<Inner>, mut receiver: mpsc::Receiver<Pending>) {
    let (in_flight, forwards_in_flight) = match inner.upgrade() {
        Some(inner) => (
            Arc::new(Semaphore::new(inner.config.batches_in_flight_max.max(1))),
            Arc::new(Semaphore::new(inner.config.forwards_in_flight_max.max(1))),
        ),
        None => return,
    };
    // Proposals taken from the queue that did not fit the last group.
    let mut carried: Option<Pending> = None;
    loop {
        let first = match carried.take() {
            Some(pending) => pending,
            None => match receiver.recv().await {
                Some(pending) => pending,
                None => return,
            },
        };
        let Some(strong) = inner.upgrade() else {
            return;
        };
        // A slot first, then the group: what arrives while the batches in flight commit
        // joins this group. (Formed before the wait, a group would leave behind everything
        // that arrived during it for one more commit, and carry few commands itself: with
        // 64 HTTP clients a third of the commands per entry, and a p99 four times longer.)
        let slots = if strong.is_leader() {
            &in_flight
        } else {
            &forwards_in_flight
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let batch_max = strong.config.batch_entries_max.max(1);
        let bytes_max = strong.config.entry_bytes_max;
        let mut entries = first.proposals.len();
        let mut bytes = first.bytes;
        let mut group = vec![first];
        // A group ends at `batch_max` commands or before it would pass `bytes_max` bytes;
        // the proposals that did not fit open the next group.
        while entries < batch_max {
            let next = match carried.take() {
                Some(pending) => pending,
                None => match receiver.try_recv() {
                    Ok(pending) => pending,
                    Err(_) => break,
                },
            };
            if bytes.saturating_add(next.bytes) > bytes_max {
                carried = Some(next);
                break;
            }
            entries += next.proposals.len();
            bytes += next.bytes;
            group.push(next);
        }
        tokio::spawn(async move {
            strong.commit_group(group).await;
            drop(permit);
        });
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

/// Turns a forwarding failure (transport or deadline) into the answer the client gets: the
/// batch was sent, so the write may or may not have committed (`OUTCOME_UNKNOWN`, never
/// "not committed"); a keyed retry is the safe next step.
fn forward_status(status: tonic::Status) -> NodeError {
    match status.code() {
        // The leader answers its refusals in the reply; a failed call is the transport
        // (a reset connection is `Unknown`) or a deadline, after the batch was sent.
        tonic::Code::Unavailable
        | tonic::Code::DeadlineExceeded
        | tonic::Code::Cancelled
        | tonic::Code::Unknown
        | tonic::Code::Aborted
        | tonic::Code::Internal => NodeError::OutcomeUnknown {
                message: format!(
                    "the leader did not answer a forwarded write ({}); retry with the same Idempotency-Key",
                    status.message()
                ),
        },
        _ => NodeError::Internal {
            message: format!("forwarding to the leader failed: {status}"),
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

/// Shortest time between two early commit notices to the followers (see
/// [`RaftReplica::commit_forwarded`]).
const COMMIT_NUDGE_EVERY_MS: u64 = 2;

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

    async fn commit_group(&self, mut group: Vec<Pending>) {
        // Only to a leader this node believes in; unsent batches wait (bounded) for one
        // and are refused with NO_LEADER (not committed: never sent) when none comes.
        let (target, leader) = loop {
            let Some(target) = self.await_believed_leader().await else {
                for pending in group {
                    let _ = pending.reply.send(Err(NodeError::NoLeader));
                }
                return;
            };
            let leader = target == Target::Here;
            if leader {
                // A new leader stamps nothing before it can compare its clock with a
                // quorum's (looked at by the first batch of each term only: voters that
                // cannot be sampled, e.g. of an older version, leave it stamping near the
                // log's time instead).
                let term = self.node.metrics().borrow().current_term;
                if self.clock_awaited_term.swap(term, Ordering::Relaxed) != term
                    && !self.clock_ready()
                {
                    self.await_clock_ready().await;
                }
            }
            // A leader transfer that began meanwhile: wait for the next leader instead.
            if leader && self.handing_over() {
                continue;
            }
            break (target, leader);
        };
        if !leader {
            // Batches forwarded to this node while it led are not forwarded again.
            let (forwarded, own): (Vec<Pending>, Vec<Pending>) =
                group.into_iter().partition(|pending| pending.forwarded);
            for pending in forwarded {
                let _ = pending.reply.send(Err(NodeError::NoLeader));
            }
            group = own;
            if group.is_empty() {
                return;
            }
        }
        let proposals: Vec<Proposal> = group
            .iter()
            .flat_map(|p| p.proposals.iter().cloned())
            .collect();
        let result = match target {
            Target::Here => self.commit_as_leader(proposals).await,
            Target::Leader(leader_id) => self.forward(leader_id, proposals).await,
        };
        match result {
            Ok((index, outcomes)) => {
                let now_ms = self.node.read_stale(|state| state.machine.now_ms());
                let mut outcomes = outcomes.into_iter();
                let mut table = self
                    .request_index
                    .lock()
                    .expect("request index lock poisoned");
                for pending in group {
                    let answers: Vec<CommittedOutcome> = pending
                        .proposals
                        .iter()
                        .map(|proposal| {
                            let outcome = outcomes.next().expect("one outcome per proposal");
                            // A refusal the state machine does not remember under the
                            // id is not the id's first index either.
                            let remembered = !matches!(
                                &outcome,
                                Outcome::Rejected(rejection)
                                    if rejection.refuses_the_request_itself()
                            );
                            let index = match &proposal.request_id {
                                Some(id) if remembered => table.record(id, index, now_ms),
                                _ => index,
                            };
                            CommittedOutcome { outcome, index }
                        })
                        .collect();
                    let _ = pending.reply.send(Ok(answers));
                }
            }
            Err(error) => {
                for pending in group {
                    let _ = pending.reply.send(Err(error.clone()));
                }
            }
        }
    }

    /// Puts proposals into the bounded queue for the batcher and waits for their answers.
    async fn submit(
        &self,
        proposals: Vec<Proposal>,
        forwarded: bool,
    ) -> Result<Vec<CommittedOutcome>, NodeError> {
        if proposals.is_empty() {
            return Ok(Vec::new());
        }
        let bytes = proposals.iter().map(proposal_bytes).sum::<usize>();
        if bytes > self.config.entry_bytes_max {
            return Err(NodeError::InvalidField {
                field: "command".into(),
                reason: format!(
                    "encodes to {bytes} bytes; one Raft entry carries at most {}",
                    self.config.entry_bytes_max
                ),
            });
        }
        let (reply, answer) = oneshot::channel();
        self.queue
            .try_send(Pending {
                proposals,
                reply,
                forwarded,
                bytes,
            })
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => NodeError::Overloaded {
                    message: format!("{} proposals are waiting", self.config.proposals_queued_max),
                },
                mpsc::error::TrySendError::Closed(_) => NodeError::NotReady {
                    message: "the node is shutting down".into(),
                },
            })?;
        answer.await.unwrap_or_else(|_| {
            Err(NodeError::Internal {
                message: "the batcher stopped".into(),
            })
        })
    }

    /// Stamps and proposes a batch on this node, which must be the leader.
    async fn commit_as_leader(
        &self,
        proposals: Vec<Proposal>,
    ) -> Result<(u64, Vec<Outcome>), NodeError> {
        if !self.is_leader() {
            return Err(NodeError::NoLeader);
        }
        let time_ms = self
            .clock
            .stamp_guarded(self.applied_time(), |wall, applied| {
                self.clock_ceiling(wall, applied, true)
            });
        let count = proposals.len();
        // A new cluster's first write keys its ids (see `holdfast_statemachine`'s `ids.rs`):
        // the key goes in ahead of the batch, so no hold, booking or refund is ever made
        // with a sequential id. Its answer is not one of the proposals'.
        let key_ids = self.wants_id_key();
        let mut entries = Vec::with_capacity(count + usize::from(key_ids));
        if key_ids {
            use rand::Rng;
            entries.push(Entry {
                time_ms,
                request_id: None,
                command: Command::SetIdKey {
                    key: holdfast_raft::runtime::RaftRng.gen(),
                },
            });
        }
        entries.extend(proposals.into_iter().map(|proposal| Entry {
            time_ms,
            request_id: proposal.request_id,
            command: proposal.command,
        }));
        let commit = self.node.propose(Batch::new(entries));
        let result = match tokio::time::timeout(self.config.commit_timeout, commit).await {
            Ok(result) => result.map_err(|error| match raft_error(error) {
                NodeError::NotLeader { .. } => NodeError::NoLeader,
                other => other,
            })?,
            Err(_) => {
                return Err(NodeError::OutcomeUnknown {
                    message: format!(
                        "the write was not committed within {:?}; its outcome is unknown: retry with the same Idempotency-Key",
                        self.config.commit_timeout
                    ),
                })
            }
        };
        let mut outcomes = result.outcomes;
        if key_ids && !outcomes.is_empty() {
            outcomes.remove(0);
        }
        if outcomes.len() != count {
            return Err(NodeError::Internal {
                message: "the state machine answered a different number of outcomes".into(),
            });
        }
        Ok((result.log_id.index, outcomes))
    }

    /// A gRPC client to the peer service of leader `expected` (the current leader when
    /// `None`), cached until it fails.
    async fn leader_client(&self, expected: Option<NodeId>) -> Result<PeerClient, NodeError> {
        let (leader_id, info) = self.node.leader().ok_or(NodeError::NoLeader)?;
        if leader_id == self.node_id() || expected.is_some_and(|expected| expected != leader_id) {
            return Err(NodeError::NoLeader);
        }
        {
            let cached = self
                .leader_client
                .lock()
                .expect("leader client lock poisoned");
            if let Some((id, client)) = cached.as_ref() {
                if *id == leader_id {
                    return Ok(client.clone());
                }
            }
        }
        let info = info.ok_or(NodeError::NoLeader)?;
        let endpoint = peer_endpoint(
            self.node.peer_tls(),
            &info.raft_addr,
            leader_id,
            self.config.forward_timeout,
        )
        .map_err(|error| NodeError::Internal {
            message: error.to_string(),
        })?
        .connect_timeout(self.config.forward_connect_timeout)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true)
        .tcp_nodelay(true);
        let channel = self.transport.connect(endpoint).await.map_err(|error| {
            tracing::debug!(%error, leader_id, "cannot reach the leader");
            NodeError::NoLeader
        })?;
        let client = peer_client(
            channel,
            self.peer_envelope(leader_id),
            self.config.message_bytes_max,
        );
        *self
            .leader_client
            .lock()
            .expect("leader client lock poisoned") = Some((leader_id, client.clone()));
        Ok(client)
    }

    /// The envelope of this node's calls to node `to`'s peer service.
    fn peer_envelope(&self, to: NodeId) -> PeerEnvelope {
        PeerEnvelope::new(&self.node.cluster_id(), self.node_id(), to)
    }

    fn forget_leader_client(&self) {
        *self
            .leader_client
            .lock()
            .expect("leader client lock poisoned") = None;
    }

    /// Sends a batch to leader `leader_id` and waits (bounded) until this node applied it.
    /// Not connected: `NO_LEADER` (nothing was sent). Sent, and the leader changed or fell
    /// silent before it answered: `OUTCOME_UNKNOWN` at once, not after the deadline.
    async fn forward(
        &self,
        leader_id: NodeId,
        proposals: Vec<Proposal>,
    ) -> Result<(u64, Vec<Outcome>), NodeError> {
        let mut client = self.leader_client(Some(leader_id)).await?;
        let request = ProposeRequest {
            format_version: PROPOSE_WIRE_FORMAT_VERSION,
            commands: proposals
                .iter()
                .map(|proposal| ProposedCommand {
                    request_id: proposal.request_id.clone(),
                    command: encode_command(&proposal.command),
                })
                .collect(),
        };
        let mut request = tonic::Request::new(request);
        request.set_timeout(self.config.forward_timeout);
        let answer = tokio::select! {
            answer = client.propose(request) => answer,
            () = self.leader_lost(leader_id) => {
                self.forget_leader_client();
                return Err(NodeError::OutcomeUnknown {
                    message: format!(
                        "leader {leader_id} changed or fell silent before it answered a forwarded write; retry with the same Idempotency-Key"
                    ),
                });
            }
        };
        let response = match answer {
            Ok(response) => response.into_inner(),
            Err(status) => {
                self.forget_leader_client();
                return Err(forward_status(status));
            }
        };
        if let Some(error) = response.error {
            return Err(NodeError::from_code(&error.code, error.message));
        }
        if response.outcomes.len() != proposals.len() {
            return Err(NodeError::Internal {
                message: "the leader answered a different number of outcomes".into(),
            });
        }
        let outcomes = response
            .outcomes
            .iter()
            .map(|bytes| decode(bytes))
            .collect::<Result<Vec<Outcome>, _>>()?;
        // Read-your-writes on this node: wait (bounded) until it applied the entry too.
        let _ = self
            .node
            .wait_applied(response.log_index, self.config.forwarded_apply_wait)
            .await;
        Ok((response.log_index, outcomes))
    }

    /// The read index for linearizable reads, confirmed with a quorum. Concurrent reads
    /// share confirmations: a read waits for the running one to finish and then uses the
    /// next one that started after it arrived (never one that started before: that one
    /// may predate a write the read must see), so a burst of reads costs one quorum round
    /// trip instead of one each. A failed confirmation is shared the same way.
    async fn leader_read_index(&self) -> Result<u64, NodeError> {
        let arrived = Instant::now();
        let mut last = self.read_confirmation.lock().await;
        if let Some((started, answer)) = &*last {
            if *started >= arrived {
                return answer.clone();
            }
        }
        let started = Instant::now();
        let answer = self.confirm_read_index().await;
        *last = Some((started, answer.clone()));
        answer
    }

    async fn confirm_read_index(&self) -> Result<u64, NodeError> {
        // A confirmation would renew the followers' lease on a leader handing over: wait
        // (bounded) for the handover, and refuse rather than confirm during one.
        self.handover_finished().await;
        if self.handing_over() {
            return Err(NodeError::NoLeader);
        }
        if !self.is_leader() {
            return Err(NodeError::NoLeader);
        }
        let read_log_id = self.node.ensure_linearizable().await.map_err(raft_error)?;
        let applied = self.node.state().applied_index();
        Ok(read_log_id.map_or(applied, |log_id| log_id.index.max(applied)))
    }

    async fn linearizable(&self) -> Result<(), NodeError> {
        let deadline = self.config.linearizable_timeout;
        self.handover_finished().await;
        if self.handing_over() {
            return Err(NodeError::NoQuorum {
                message: "this leader is handing its leadership over".into(),
            });
        }
        let read_index = if self.is_leader() {
            self.leader_read_index().await?
        } else {
            let mut client = self
                .leader_client(None)
                .await
                .map_err(|_| NodeError::NoQuorum {
                    message: "no leader is reachable to confirm the read".into(),
                })?;
            let mut request = tonic::Request::new(ReadIndexRequest {});
            request.set_timeout(deadline);
            let response = match client.read_index(request).await {
                Ok(response) => response.into_inner(),
                Err(status) => {
                    self.forget_leader_client();
                    return Err(NodeError::NoQuorum {
                        message: format!(
                            "the leader did not confirm the read: {}",
                            status.message()
                        ),
                    });
                }
            };
            if let Some(error) = response.error {
                return Err(NodeError::NoQuorum {
                    message: error.message,
                });
            }
            self.contact.touch();
            response.read_index
        };
        if !self
            .node
            .wait_applied(read_index, deadline)
            .await
            .map_err(raft_error)?
        {
            return Err(NodeError::NoQuorum {
                message: format!(
                    "this node did not apply the read index {read_index} within {deadline:?}"
                ),
            });
        }
        Ok(())
    }

    fn heard_from_leader_within(&self, max_staleness_ms: u64) -> bool {
        if self.is_leader() {
            let metrics = self.node.metrics();
            let quorum_ack = metrics.borrow().millis_since_quorum_ack;
            return quorum_ack.is_some_and(|age| age <= max_staleness_ms);
        }
        self.leader_id().is_some()
            && self
                .contact
                .age_ms()
                .is_some_and(|age| age <= max_staleness_ms)
    }

    /// Whether the state still wants its id key (a new cluster); once it does not, never
    /// asked again.
    fn wants_id_key(&self) -> bool {
        if self.ids_keyed.load(Ordering::Relaxed) {
            return false;
        }
        let wants = self.node.read_stale(|state| state.machine.wants_id_key());
        if !wants {
            self.ids_keyed.store(true, Ordering::Relaxed);
        }
        wants
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
        match &self.inner.node.metrics().borrow().running_state {
            Err(fatal) => Some(fatal.to_string()),
            Ok(()) => None,
        }
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
