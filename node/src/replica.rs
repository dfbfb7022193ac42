//! The replication seam: everything the HTTP edge needs from "the replicated state machine",
//! and nothing about how it is replicated.
//!
//! The handlers only ever talk to a [`Replica`]. Today there is one implementation,
//! [`crate::local::LocalReplica`] (one in-process state machine, no replication, no
//! durability); the Raft-backed implementation plugs in behind the same trait without
//! touching the handlers.
//!
//! Contract of an implementation, in short:
//! - [`Replica::propose`] commits [`Proposal`]s in order and answers once they are applied
//!   (on a follower it forwards to the leader), stamping each with cluster time
//!   ([`ClusterClock`]); it answers one [`CommittedOutcome`] per proposal.
//! - [`Replica::prepare_read`] makes the local state good enough for the asked
//!   [`ReadRequest`] (or fails with `NO_QUORUM`, `INDEX_NOT_REACHED`, ...), then
//!   [`Replica::with_state`] runs a short closure over the applied state.
//! - Cluster operations answer [`NodeError`]s with stable codes.

use holdfast_statemachine::ErrorCode;
use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use async_trait::async_trait;
use holdfast_statemachine::{Command, Outcome, StateMachine};

/// Raft node ids (the same numbers `holdfast-raft` uses). Never reused within a cluster.
pub type NodeId = u64;

/// One command to commit, before the leader stamps it with cluster time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// `"<route>:<Idempotency-Key>"` when the client sent a key; `None` otherwise.
    pub request_id: Option<String>,
    /// What to do.
    pub command: Command,
}

/// What one committed proposal produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOutcome {
    /// The state machine's answer (a replay of the first answer for a known request id).
    pub outcome: Outcome,
    /// The log index that first produced this answer: the entry's own index, or, when the
    /// state machine replayed a remembered request id, the index of the original entry
    /// (see [`RequestIndexTable`]), so that a retried request gets an identical body.
    pub index: u64,
}

/// How fresh a read must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadConsistency {
    /// Whatever this node has applied.
    Stale,
    /// This node's state, if it heard from the leader within `max_staleness_ms`; otherwise
    /// the implementation catches up with (or forwards to) the leader first.
    Bounded {
        /// How long ago, in milliseconds, this node may last have heard from the leader
        /// for its own state to do.
        max_staleness_ms: u64,
    },
    /// Read-index through the leader: sees every write acknowledged before the read began.
    /// Fails with [`NodeError::NoQuorum`] rather than answer stale data.
    Linearizable,
}

/// A read's consistency requirements, parsed from the query string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadRequest {
    /// How fresh the state must be (`consistency`, with `max_staleness_ms` for `bounded`).
    pub consistency: ReadConsistency,
    /// Wait (bounded) until this node has applied at least this log index.
    pub min_index: Option<u64>,
}

impl ReadRequest {
    /// A `stale` read without `min_index`.
    pub const STALE: ReadRequest = ReadRequest {
        consistency: ReadConsistency::Stale,
        min_index: None,
    };
    /// A `linearizable` read without `min_index`.
    pub const LINEARIZABLE: ReadRequest = ReadRequest {
        consistency: ReadConsistency::Linearizable,
        min_index: None,
    };
}

/// Where a read was served, for the `X-Holdfast-*` response headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadMeta {
    /// The last log index applied to the state the read saw (`X-Holdfast-Applied-Index`).
    pub applied_index: u64,
    /// The node that served the read (`X-Holdfast-Node`).
    pub node_id: NodeId,
    /// The leader as the serving node knew it then (`X-Holdfast-Leader`); `None` when it
    /// knew none.
    pub leader_id: Option<NodeId>,
}

/// This node's role in the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Leads the cluster: takes writes and serves linearizable reads.
    Leader,
    /// A voter that follows a leader (or waits to hear from one).
    Follower,
    /// A voter standing for election.
    Candidate,
    /// A member that replicates the log but does not vote.
    Learner,
    /// Not (yet) part of an initialised cluster.
    Uninitialized,
    /// Raft has stopped on this node (shutting down, or stopped for good).
    Shutdown,
}

impl Role {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::Learner => "learner",
            Role::Uninitialized => "uninitialized",
            Role::Shutdown => "shutdown",
        }
    }
}

/// A cluster member as operators name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSpec {
    /// The member's node id: 1 or more, unique within the cluster.
    pub id: NodeId,
    /// `host:port` of its node-to-node gRPC listener (Raft and the peer service).
    pub raft_addr: String,
    /// `host:port` of its client HTTP API, which followers name when they point clients
    /// at the leader.
    pub http_addr: String,
    /// Its region, for placement checks and leader preference (free text).
    pub region: String,
}

/// A member in the cluster status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    /// The member's node id.
    pub id: NodeId,
    /// `host:port` of its node-to-node gRPC listener.
    pub raft_addr: String,
    /// `host:port` of its client HTTP API.
    pub http_addr: String,
    /// Its region, as the membership records it.
    pub region: String,
    /// Whether it votes (`false`: a learner).
    pub voter: bool,
    /// Log entries this member is behind the leader's log (known on the leader only).
    pub lag: Option<u64>,
    /// Milliseconds since this member last answered the leader (known on the leader only).
    pub last_contact_ms: Option<u64>,
    /// The incarnation of its data directory the membership records (0: not known).
    pub incarnation: u64,
}

/// `GET /cluster/status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterStatus {
    /// The answering node.
    pub node_id: NodeId,
    /// The leader as the answering node knows it; `None` when it knows none.
    pub leader_id: Option<NodeId>,
    /// The Raft term the answering node is in (0 before any election).
    pub term: u64,
    /// The answering node's role.
    pub role: Role,
    /// The last log index the answering node applied.
    pub applied_index: u64,
    /// The last log index known to be committed, as this node can tell; never below
    /// `applied_index`.
    pub committed_index: u64,
    /// Every member in the membership this node has, voters and learners.
    pub members: Vec<MemberStatus>,
    /// Set while the voters would not survive the loss of one region (members in at
    /// least three regions; see `raft_replica::placement`).
    pub placement_warning: Option<String>,
    /// The incarnation of the answering node's data directory (0: a node without one).
    pub incarnation: u64,
    /// The id of the node's cluster; none while it belongs to none yet.
    pub cluster_id: Option<String>,
}

/// A consistent copy of the replicated state (see [`Replica::backup`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backup {
    /// The last log entry the copy includes.
    pub index: u64,
    /// The state machine's snapshot bytes (`StateMachine::from_snapshot_bytes` reads them).
    pub bytes: Vec<u8>,
}

/// A snapshot built on request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotTaken {
    /// The last log index it covers.
    pub index: u64,
    /// From the request to the snapshot being persisted.
    pub build: Duration,
}

/// System failures of the replication layer (domain refusals are [`Outcome`]s instead).
/// Each has a stable code; [`crate::error::ApiError`] maps them to HTTP statuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// No leader is known: writes and linearizable reads cannot proceed.
    #[error("no leader is known")]
    NoLeader,
    /// This node is not the leader and could not forward (a Raft-backed implementation
    /// should forward writes itself; this is for when it cannot).
    #[error("this node is not the leader (leader {leader_id:?})")]
    NotLeader {
        /// The leader, if this node knows one.
        leader_id: Option<NodeId>,
        /// That leader's client HTTP address, if known, for the client to go to.
        leader_http_addr: Option<String>,
    },
    /// Leadership could not be confirmed with a quorum in time.
    #[error("no quorum: {message}")]
    NoQuorum {
        /// Why leadership could not be confirmed, for the client.
        message: String,
    },
    /// A write was handed to Raft and did not commit in time, or was forwarded to a leader
    /// that gave no answer: it may or may not have committed. Retrying with the same
    /// idempotency key is safe and tells which.
    #[error("outcome unknown: {message}")]
    OutcomeUnknown {
        /// How the answer was lost (the leader did not answer a forwarded write, or the
        /// write did not commit in time), with the advice to retry with the same key.
        message: String,
    },
    /// The node is starting, catching up, or stopping.
    #[error("not ready: {message}")]
    NotReady {
        /// Why the node cannot serve yet (such as catching up, or Raft stopped).
        message: String,
    },
    /// `min_index` was not applied within the wait.
    #[error("index {min_index} not applied within the wait (applied {applied_index})")]
    IndexNotReached {
        /// The index the read asked for.
        min_index: u64,
        /// The index this node had applied when the wait ran out (below `min_index`).
        applied_index: u64,
    },
    /// The bounded proposal queue is full.
    #[error("overloaded: {message}")]
    Overloaded {
        /// Which bound was reached (such as how many proposals are already waiting).
        message: String,
    },
    /// `POST /cluster/init` on a node that is already part of a cluster.
    #[error("the cluster is already initialized")]
    AlreadyInitialized,
    /// A membership change that is invalid or would lose the majority.
    #[error("membership change refused: {message}")]
    MembershipRefused {
        /// Why the change was refused.
        message: String,
    },
    /// A node id that is not a member.
    #[error("node {node_id} is not a member")]
    NodeNotFound {
        /// The id that names no member (0 when a peer's message did not carry it).
        node_id: NodeId,
    },
    /// A leader transfer that did not complete (the target did not take over in time).
    #[error("leader transfer failed: {message}")]
    TransferFailed {
        /// Why leadership did not move, and who leads now if known.
        message: String,
    },
    /// A malformed cluster request.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The request field at fault, as the client names it.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Anything else; the message is logged and shown.
    #[error("internal error: {message}")]
    Internal {
        /// What failed; logged and shown to the client.
        message: String,
    },
}

impl NodeError {
    /// The error a peer reported by its code (the inverse of [`NodeError::code`] for the
    /// codes a leader sends back to a forwarding follower); codes without a system error of
    /// their own are internal, keeping the peer's message.
    pub fn from_code(code: &str, message: String) -> NodeError {
        match ErrorCode::parse(code) {
            Some(ErrorCode::NoLeader) => NodeError::NoLeader,
            Some(ErrorCode::NoQuorum) => NodeError::NoQuorum { message },
            Some(ErrorCode::OutcomeUnknown) => NodeError::OutcomeUnknown { message },
            Some(ErrorCode::Overloaded) => NodeError::Overloaded { message },
            Some(ErrorCode::NotReady) => NodeError::NotReady { message },
            Some(ErrorCode::AlreadyInitialized) => NodeError::AlreadyInitialized,
            Some(ErrorCode::MembershipRefused) => NodeError::MembershipRefused { message },
            Some(ErrorCode::LeaderTransferFailed) => NodeError::TransferFailed { message },
            Some(ErrorCode::InvalidField) => NodeError::InvalidField {
                field: "request".into(),
                reason: message,
            },
            Some(ErrorCode::IndexNotReached) => NodeError::NotReady { message },
            Some(ErrorCode::NodeNotFound) => {
                let node_id = message
                    .split_whitespace()
                    .find_map(|word| word.parse().ok())
                    .unwrap_or_default();
                NodeError::NodeNotFound { node_id }
            }
            _ => NodeError::Internal { message },
        }
    }

    /// The stable wire code.
    pub fn code(&self) -> ErrorCode {
        match self {
            NodeError::NoLeader | NodeError::NotLeader { .. } => ErrorCode::NoLeader,
            NodeError::NoQuorum { .. } => ErrorCode::NoQuorum,
            NodeError::OutcomeUnknown { .. } => ErrorCode::OutcomeUnknown,
            NodeError::NotReady { .. } => ErrorCode::NotReady,
            NodeError::IndexNotReached { .. } => ErrorCode::IndexNotReached,
            NodeError::Overloaded { .. } => ErrorCode::Overloaded,
            NodeError::AlreadyInitialized => ErrorCode::AlreadyInitialized,
            NodeError::MembershipRefused { .. } => ErrorCode::MembershipRefused,
            NodeError::TransferFailed { .. } => ErrorCode::LeaderTransferFailed,
            NodeError::NodeNotFound { .. } => ErrorCode::NodeNotFound,
            NodeError::InvalidField { .. } => ErrorCode::InvalidField,
            NodeError::Internal { .. } => ErrorCode::Internal,
        }
    }
}

/// The replicated booking state machine, as the HTTP edge sees it.
///
/// Object safe (used as `Arc<dyn Replica>`); the generic convenience [`read`] is built on
/// [`Replica::prepare_read`] + [`Replica::with_state`].
#[async_trait]
pub trait Replica: Send + Sync + 'static {
    /// This node's id.
    fn node_id(&self) -> NodeId;

    /// Commits `proposals` in order (one log entry or one batch, as the implementation
    /// likes) and answers once they are applied on this node, one [`CommittedOutcome`] per
    /// proposal, in order. The implementation stamps cluster time (see [`ClusterClock`]).
    /// A follower forwards to the leader. Fails with [`NodeError::Overloaded`] when its
    /// bounded queue is full and [`NodeError::NoLeader`] when there is no leader; either
    /// way nothing was committed (a timeout after handing the entry to Raft, or a lost
    /// answer to a forwarded write, is [`NodeError::OutcomeUnknown`]: a keyed retry is
    /// safe).
    /// Must be bounded in time: the HTTP edge puts no timeout of its own around it,
    /// because dropping a confirm between charge and commit is worse than waiting.
    async fn propose(&self, proposals: Vec<Proposal>) -> Result<Vec<CommittedOutcome>, NodeError>;

    /// Waits until the local state satisfies `request` (read-index for `linearizable`,
    /// freshness for `bounded`, `min_index`). Bounded in time.
    async fn prepare_read(&self, request: ReadRequest) -> Result<(), NodeError>;

    /// Runs `read` over the applied state, with where it was served. Keep `read` short:
    /// applying waits meanwhile. Never blocks on the network.
    fn with_state(&self, read: &mut dyn FnMut(&StateMachine, ReadMeta));

    /// The cluster as this node sees it.
    fn status(&self) -> ClusterStatus;

    /// On the leader: how many log entries each follower and learner is behind, by node id.
    /// Empty elsewhere, and for replicas without followers.
    fn replication_lag(&self) -> Vec<(NodeId, u64)> {
        Vec::new()
    }

    /// `/readyz`: a leader is known and this node has caught up.
    fn readiness(&self) -> Result<(), NodeError>;

    /// Why replication stopped for good on this node (a storage failure, say), if it did:
    /// such a node applies nothing more; it serves `stale` reads of what it has, if it
    /// stays up at all (`--on-storage-failure read-only`).
    fn fatal(&self) -> Option<String> {
        None
    }

    /// `POST /cluster/init` on one node of a fresh cluster.
    async fn initialize(&self, members: Vec<MemberSpec>) -> Result<(), NodeError>;

    /// `POST /cluster/learners`: adds a learner and returns once it has caught up.
    async fn add_learner(&self, member: MemberSpec) -> Result<(), NodeError>;

    /// `POST /cluster/membership`: makes `voters` the voter set. Refuses sets that would
    /// lose the majority or name unknown nodes.
    async fn change_membership(&self, voters: BTreeSet<NodeId>) -> Result<(), NodeError>;

    /// `DELETE /cluster/nodes/{id}`: removes a node from the cluster (voter or learner).
    async fn remove_node(&self, node_id: NodeId) -> Result<(), NodeError>;

    /// `POST /cluster/leader`: hands leadership to voter `to` and answers once it leads.
    /// Replicas without Raft refuse.
    async fn transfer_leader(&self, to: NodeId) -> Result<(), NodeError> {
        let _ = to;
        Err(NodeError::InvalidField {
            field: "node_id".into(),
            reason: "this node is not replicated: it has no leader to move".into(),
        })
    }

    /// `POST /cluster/snapshot`: builds a snapshot of this node's applied state now and
    /// answers once it is persisted. Replicas without snapshots refuse.
    async fn snapshot_now(&self) -> Result<SnapshotTaken, NodeError> {
        Err(NodeError::InvalidField {
            field: "node".into(),
            reason: "this node keeps no snapshots (it is not replicated)".into(),
        })
    }

    /// `GET /cluster/backup`: the replicated state's snapshot bytes as of a linearizable
    /// point (everything acknowledged before the call is in it), with the index of the last
    /// entry they include. By default encoded under the state's read lock; a replica with a
    /// snapshot copy encodes that instead, so apply goes on meanwhile.
    async fn backup(&self) -> Result<Backup, NodeError> {
        self.prepare_read(ReadRequest::LINEARIZABLE).await?;
        let mut backup = None;
        self.with_state(&mut |machine, meta| {
            backup = Some(Backup {
                index: meta.applied_index,
                bytes: machine.snapshot_bytes(),
            });
        });
        Ok(backup.expect("Replica::with_state must call its closure exactly once"))
    }

    /// Cluster time as this node would stamp it now (see [`ClusterClock::now_ms`]), in
    /// milliseconds since the Unix epoch: what the expiry ticker compares due holds with.
    /// By default the system clock, never behind the applied time.
    fn cluster_time_ms(&self) -> u64 {
        let mut applied_ms = 0;
        self.with_state(&mut |machine, _| applied_ms = machine.now_ms());
        wall_clock_ms().max(applied_ms)
    }
}

/// Runs `read` over the state after [`Replica::prepare_read`]: the generic way to read.
pub async fn read<T>(
    replica: &dyn Replica,
    request: ReadRequest,
    read: impl FnOnce(&StateMachine) -> T,
) -> Result<(T, ReadMeta), NodeError> {
    replica.prepare_read(request).await?;
    Ok(read_now(replica, read))
}

/// Runs `read` over the state as it is now (a `stale` read without waiting).
pub fn read_now<T>(replica: &dyn Replica, read: impl FnOnce(&StateMachine) -> T) -> (T, ReadMeta) {
    let mut read = Some(read);
    let mut answer = None;
    replica.with_state(&mut |state, meta| {
        if let Some(read) = read.take() {
            answer = Some((read(state), meta));
        }
    });
    answer.expect("Replica::with_state must call its closure exactly once")
}

/// Commits one proposal: [`Replica::propose`] with a batch of one.
pub async fn propose_one(
    replica: &dyn Replica,
    proposal: Proposal,
) -> Result<CommittedOutcome, NodeError> {
    let mut outcomes = replica.propose(vec![proposal]).await?;
    match (outcomes.pop(), outcomes.is_empty()) {
        (Some(outcome), true) => Ok(outcome),
        _ => Err(NodeError::Internal {
            message: "the replica answered a different number of outcomes than proposals".into(),
        }),
    }
}

/// Milliseconds since the Unix epoch by the system clock (0 if the clock is before 1970).
pub fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// Where a node reads the wall clock. The seam exists for simulations, which give every
/// host its own clock (turmoil's simulated time plus an offset that the fault schedule
/// moves); a node in production uses [`SystemClock`]. Monotonic time is always
/// `tokio::time::Instant`, which a simulation drives as well.
pub trait WallClock: Send + Sync + fmt::Debug + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The operating system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now_ms(&self) -> u64 {
        wall_clock_ms()
    }
}

/// Test-only ways to break the cluster clock, so that the simulations can prove their
/// checkers notice (see `holdfast-sim`). All off by default; nothing in production sets
/// them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClockFaults {
    /// Stamp entries with the local wall clock alone, forgetting the last stamp and the
    /// monotonic time since: a leader whose clock steps back then stalls cluster time,
    /// and holds outlive their time to live.
    pub local_wall_clock_only: bool,
}

/// The last state machine time a node applied, and when it applied it (by the monotonic
/// clock), if it knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppliedTime {
    /// The state machine time of the last applied entry, in milliseconds since the Unix
    /// epoch (0 before any).
    pub time_ms: u64,
    /// When that entry was applied, by the monotonic clock; `None` when not known (the
    /// cluster clock then carries `time_ms` on as it is, without the time since).
    pub applied_at: Option<Instant>,
}

/// The leader's cluster clock: the largest of its wall clock, its last stamp plus the
/// monotonic time since, and the last applied time plus the monotonic time since it was
/// applied. Cluster time therefore never stalls behind a slow wall clock (not even across
/// a leader change: a new leader carries on from what it applied), and never goes
/// backwards.
#[derive(Debug)]
pub struct ClusterClock {
    wall: Arc<dyn WallClock>,
    faults: ClockFaults,
    last: Mutex<Option<(u64, Instant)>>,
}

impl Default for ClusterClock {
    fn default() -> Self {
        ClusterClock::new(Arc::new(SystemClock), ClockFaults::default())
    }
}

impl ClusterClock {
    /// A cluster clock over `wall`.
    pub fn new(wall: Arc<dyn WallClock>, faults: ClockFaults) -> ClusterClock {
        ClusterClock {
            wall,
            faults,
            last: Mutex::new(None),
        }
    }

    /// The wall clock underneath, in milliseconds since the Unix epoch.
    pub fn wall_ms(&self) -> u64 {
        self.wall.now_ms()
    }

    /// Cluster time now, without stamping anything: what the expiry ticker compares due
    /// holds with.
    pub fn now_ms(&self, applied: AppliedTime) -> u64 {
        self.now_ms_guarded(applied, |_, _| None)
    }

    /// [`ClusterClock::now_ms`] with the wall clock held to at most what `ceiling` answers
    /// for (the wall clock, the applied time carried on to now).
    pub fn now_ms_guarded(
        &self,
        applied: AppliedTime,
        ceiling: impl FnOnce(u64, u64) -> Option<u64>,
    ) -> u64 {
        let monotonic = Instant::now();
        let wall_ms = self.guarded_wall(monotonic, applied, ceiling);
        let last = *self.last.lock().expect("cluster clock lock poisoned");
        cluster_time(wall_ms, monotonic, last, applied)
    }

    /// [`ClusterClock::stamp`] with the wall clock held to at most what `ceiling` answers
    /// for (the wall clock, the applied time carried on to now): the clock guard.
    pub fn stamp_guarded(
        &self,
        applied: AppliedTime,
        ceiling: impl FnOnce(u64, u64) -> Option<u64>,
    ) -> u64 {
        if self.faults.local_wall_clock_only {
            return self.wall.now_ms();
        }
        let monotonic = Instant::now();
        let wall_ms = self.guarded_wall(monotonic, applied, ceiling);
        self.stamp_with(wall_ms, monotonic, applied)
    }

    fn guarded_wall(
        &self,
        monotonic: Instant,
        applied: AppliedTime,
        ceiling: impl FnOnce(u64, u64) -> Option<u64>,
    ) -> u64 {
        let wall_ms = self.wall.now_ms();
        let applied_carried = applied.applied_at.map_or(applied.time_ms, |applied_at| {
            applied
                .time_ms
                .saturating_add(monotonic.saturating_duration_since(applied_at).as_millis() as u64)
        });
        match ceiling(wall_ms, applied_carried) {
            Some(ceiling) => wall_ms.min(ceiling),
            None => wall_ms,
        }
    }

    /// The time to stamp on the next entry.
    pub fn stamp(&self, applied: AppliedTime) -> u64 {
        if self.faults.local_wall_clock_only {
            return self.wall.now_ms();
        }
        self.stamp_with(self.wall.now_ms(), Instant::now(), applied)
    }

    /// [`ClusterClock::stamp`] with explicit clocks, for tests.
    pub fn stamp_with(&self, wall_ms: u64, monotonic: Instant, applied: AppliedTime) -> u64 {
        let mut last = self.last.lock().expect("cluster clock lock poisoned");
        let time_ms = cluster_time(wall_ms, monotonic, *last, applied);
        *last = Some((time_ms, monotonic));
        time_ms
    }
}

fn cluster_time(
    wall_ms: u64,
    monotonic: Instant,
    last: Option<(u64, Instant)>,
    applied: AppliedTime,
) -> u64 {
    let since = |time_ms: u64, seen_at: Instant| {
        time_ms.saturating_add(monotonic.saturating_duration_since(seen_at).as_millis() as u64)
    };
    let carried = last.map_or(0, |(time_ms, seen_at)| since(time_ms, seen_at));
    let applied_carried = applied.applied_at.map_or(applied.time_ms, |applied_at| {
        since(applied.time_ms, applied_at)
    });
    wall_ms.max(carried).max(applied_carried)
}

/// Remembers, per request id, the log index that first answered it, so that a replayed
/// request (same idempotency key) reports the original index and its body is identical.
///
/// Derived, per-node state with the same retention as the state machine's idempotency
/// table, bounded by `entries_max` (oldest forgotten first). If it forgets an id the
/// state machine still remembers (after a restart or snapshot install), a replay reports
/// its own index: the answer is still the original one, only `applied_index` differs.
///
/// Recorded for every committed write under one lock, so it is built for that: an id is
/// kept as its 128-bit fingerprint (seeded XXH3, the seed drawn when the table is made),
/// so recording one allocates nothing and forgetting one reads nothing but its slot; a
/// fast seeded hash (foldhash, as the state machine's tables); and room for up to
/// [`REQUEST_INDEX_PRESIZED_MAX`] ids reserved up front, so that growing never rehashes a
/// large table while commits wait behind the lock (it was 11 % of a leader's CPU and a
/// stall of tens of milliseconds at each doubling under the SDK's batches). Memory is
/// touched only as ids arrive. Two of a million ids share a fingerprint with a probability
/// of about 10^-27; if they did, a replay of one would report the other's index (its answer
/// is the state machine's, unaffected).
#[derive(Debug)]
pub struct RequestIndexTable {
    first_index: hashbrown::HashMap<u128, u64>,
    order: VecDeque<(u64, u128)>,
    retention_ms: u64,
    entries_max: usize,
    seed: u64,
}

/// The most ids a [`RequestIndexTable`] reserves room for when it is made.
pub const REQUEST_INDEX_PRESIZED_MAX: usize = 1 << 20;

impl RequestIndexTable {
    /// A table keeping ids for `retention_ms` of log time, at most `entries_max` of them.
    pub fn new(retention_ms: u64, entries_max: usize) -> RequestIndexTable {
        let entries_max = entries_max.max(1);
        let presized = entries_max.min(REQUEST_INDEX_PRESIZED_MAX);
        RequestIndexTable {
            first_index: hashbrown::HashMap::with_capacity(presized),
            order: VecDeque::with_capacity(presized),
            retention_ms,
            entries_max,
            seed: rand::random(),
        }
    }

    /// Records that `request_id` was applied at `index` at log time `now_ms`, and returns
    /// the index that first answered it.
    pub fn record(&mut self, request_id: &str, index: u64, now_ms: u64) -> u64 {
        while let Some(&(stored_at, _)) = self.order.front() {
            if stored_at.saturating_add(self.retention_ms) > now_ms {
                break;
            }
            self.forget_oldest();
        }
        let id = xxhash_rust::xxh3::xxh3_128_with_seed(request_id.as_bytes(), self.seed);
        if let Some(&first) = self.first_index.get(&id) {
            return first;
        }
        if self.order.len() >= self.entries_max {
            self.forget_oldest();
        }
        self.first_index.insert(id, index);
        self.order.push_back((now_ms, id));
        index
    }

    fn forget_oldest(&mut self) {
        if let Some((_, id)) = self.order.pop_front() {
            self.first_index.remove(&id);
        }
    }

    /// Ids remembered now.
    pub fn len(&self) -> usize {
        self.first_index.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.first_index.is_empty()
    }
}

/// How long [`crate::local::LocalReplica`] and the Raft-backed replica wait for `min_index`
/// by default (API.md: 5 s).
pub const MIN_INDEX_WAIT_DEFAULT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_clock_never_goes_back_and_never_stalls() {
        let clock = ClusterClock::default();
        let start = Instant::now();
        let applied = |time_ms| AppliedTime {
            time_ms,
            applied_at: None,
        };
        assert_eq!(clock.stamp_with(1_000, start, applied(0)), 1_000);
        // The wall clock jumps back: time carries on from the last stamp.
        assert_eq!(
            clock.stamp_with(500, start + Duration::from_millis(10), applied(0)),
            1_010
        );
        // The applied time is ahead (another leader's clock was fast).
        assert_eq!(
            clock.stamp_with(500, start + Duration::from_millis(20), applied(5_000)),
            5_000
        );
        assert_eq!(
            clock.stamp_with(9_000, start + Duration::from_millis(30), applied(5_000)),
            9_000
        );
    }

    #[test]
    fn a_new_leader_carries_on_from_the_applied_time_plus_the_time_since() {
        // This node never stamped; it applied time 10_000 at `start`, and its own wall
        // clock is a minute slow. Three seconds later (an election) it leads.
        let clock = ClusterClock::default();
        let start = Instant::now();
        let applied = AppliedTime {
            time_ms: 100_000,
            applied_at: Some(start),
        };
        let later = start + Duration::from_secs(3);
        assert_eq!(clock.stamp_with(100_000 - 60_000, later, applied), 103_000);
    }

    #[test]
    fn the_local_wall_clock_fault_stalls_behind_a_slow_clock() {
        let faults = ClockFaults {
            local_wall_clock_only: true,
        };
        let clock = ClusterClock::new(Arc::new(SystemClock), faults);
        let applied = AppliedTime {
            time_ms: u64::MAX / 2,
            applied_at: Some(Instant::now()),
        };
        assert!(clock.stamp(applied) < applied.time_ms);
        assert!(ClusterClock::default().stamp(applied) >= applied.time_ms);
    }

    #[test]
    fn request_index_table_reports_first_index_and_forgets_old_ids() {
        let mut table = RequestIndexTable::new(1_000, 2);
        assert_eq!(table.record("a", 1, 0), 1);
        assert_eq!(table.record("a", 5, 10), 1);
        assert_eq!(table.record("b", 6, 20), 6);
        // Full: "a" is forgotten to make room.
        assert_eq!(table.record("c", 7, 30), 7);
        assert_eq!(table.len(), 2);
        assert_eq!(table.record("a", 8, 40), 8);
        // Retention passed for everything stored before 2_000 - 1_000.
        assert_eq!(table.record("d", 9, 2_000), 9);
        assert_eq!(table.len(), 1);
    }
}
