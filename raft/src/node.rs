//! [`RaftNode`]: one Holdfast Raft member, with its stores, network and RPC server.
//!
//! ```no_run
//! # async fn example() -> Result<(), holdfast_raft::Error> {
//! use std::sync::Arc;
//! use holdfast_raft::*;
//!
//! let config = RaftNodeConfig::new(1, "cluster-a", "/var/lib/holdfast".into(), NodeInfo {
//!     raft_addr: "10.0.0.1:7101".into(), http_addr: "10.0.0.1:7001".into(), region: "eu".into(),
//!     incarnation: 0, // the data directory's, filled in by `open`
//! });
//! let node = RaftNode::open(config, Arc::new(TcpTransport)).await?;
//! let listener = tokio::net::TcpListener::bind("10.0.0.1:7101").await.unwrap();
//! node.serve_tcp(listener);
//! // Once, on one node of a fresh cluster:
//! node.initialize([(1, node.node_info().clone())].into()).await?;
//! let result = node.propose(Batch::default()).await?;
//! println!("committed at {} with {} outcomes", result.log_id.index, result.outcomes.len());
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use holdfast_statemachine::{Outcome, StateMachine};
use openraft::error::{
    CheckIsLeaderError, ClientWriteError, ForwardToLeader, InitializeError, RaftError,
};
use openraft::{RaftMetrics, SnapshotPolicy};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::data_dir::{ClusterId, DataDir};
use crate::election::{prompt_elections, Elections};
use crate::error::Error;
use crate::log_store::LogStore;
use crate::memory::MemoryDisk;
use crate::network::{NetworkConfig, NetworkFactory};
use crate::server::{serve_tcp, RaftGrpcService, ServerConfig};
use crate::state_store::{AppliedState, StateMachineStore};
use crate::tls::PeerTls;
use crate::transport::Transport;
use crate::types::{Batch, HoldfastRaft, LogId, NodeId, NodeInfo};

/// How often a long [`RaftNode::wait_applied`] looks whether Raft stopped.
const STOPPED_POLL: Duration = Duration::from_millis(100);

/// Everything needed to start a node.
#[derive(Clone, Debug)]
pub struct RaftNodeConfig {
    /// This node's Raft id. It must be the one the data directory records, and the one the
    /// peer certificate names when peer TLS is on.
    pub node_id: NodeId,
    /// The cluster this node belongs to, or `""` to resume the one the data directory
    /// records or, on a fresh directory, to learn one later (see [`ClusterId`]).
    pub cluster_id: String,
    /// The node's data directory ([`crate::data_dir`]), created on first start.
    pub data_dir: PathBuf,
    /// This node's addresses; `raft_addr` is what peers dial and what it never dials.
    pub node_info: NodeInfo,
    /// openraft's timers, snapshot policy and batching limits.
    pub raft: openraft::Config,
    /// The client side of the Raft RPCs: deadlines, reconnects, the largest message (also
    /// the server's limit; at least twice `raft.snapshot_max_chunk_size`) and peer TLS.
    pub network: NetworkConfig,
    /// HTTP/2 settings of the listener that [`RaftNode::serve_tcp`] starts.
    pub server: ServerConfig,
    /// Limits of the booking state machine, used when the node starts with no snapshot.
    pub state_machine: holdfast_statemachine::Config,
    /// How long [`RaftNode::ensure_linearizable`] may take before it answers `NO_QUORUM`.
    pub linearizable_read_timeout: Duration,
    /// Simulations only: keep the log and snapshots on this in-memory disk instead of in
    /// `data_dir` (which is then not touched). See [`crate::memory`].
    pub memory_disk: Option<MemoryDisk>,
    /// Tests only: while set, the log store's writes fail (a dying disk).
    pub refuse_writes: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl RaftNodeConfig {
    /// A configuration with Holdfast's defaults.
    pub fn new(
        node_id: NodeId,
        cluster_id: &str,
        data_dir: PathBuf,
        node_info: NodeInfo,
    ) -> RaftNodeConfig {
        RaftNodeConfig {
            node_id,
            cluster_id: cluster_id.to_owned(),
            data_dir,
            node_info,
            raft: default_raft_config(cluster_id),
            network: NetworkConfig::default(),
            server: ServerConfig::default(),
            state_machine: holdfast_statemachine::Config::default(),
            linearizable_read_timeout: Duration::from_secs(2),
            memory_disk: None,
            refuse_writes: None,
        }
    }
}

/// Heartbeat interval of [`default_raft_config`], in milliseconds.
pub const HEARTBEAT_MS_DEFAULT: u64 = 250;
/// Shortest election timeout of [`default_raft_config`], in milliseconds (the longest is
/// one and a half times it: [`election_timeout_max_ms`]).
pub const ELECTION_TIMEOUT_MS_DEFAULT: u64 = 500;

/// The longest election timeout for a shortest one of `min_ms`: one and a half times it.
/// It is also the leader's lease (openraft 0.9): how long a voter refuses other candidates
/// after it last heard from its leader.
pub fn election_timeout_max_ms(min_ms: u64) -> u64 {
    min_ms.saturating_add(min_ms / 2)
}

/// openraft settings for Holdfast: heartbeats every 250 ms, election timeouts of
/// 0.5–0.75 s and a leader's lease of 0.75 s (see [`raft_config`]), a snapshot every
/// 10,000 entries (a node shortens it by its id: [`staggered_snapshots`]), 1 MiB snapshot
/// chunks.
pub fn default_raft_config(cluster_id: &str) -> openraft::Config {
    raft_config(
        cluster_id,
        HEARTBEAT_MS_DEFAULT,
        ELECTION_TIMEOUT_MS_DEFAULT,
    )
}

/// openraft settings with the given timers: heartbeats every `heartbeat_ms`, elections
/// after `election_timeout_min_ms` to one and a half times that without a leader.
///
/// Two constraints set them:
/// - openraft 0.9 gives an AppendEntries RPC (heartbeats included) one heartbeat interval
///   before it counts as failed, so the interval must exceed the slowest round trip between
///   voters plus an fsync. 100 ms failed every call across 30–80 ms links between regions
///   (the `region-loss` simulation never converged); 250 ms covers round trips up to about
///   200 ms. Raise it for regions farther apart.
/// - The election timeouts bound failover: openraft 0.9 voters refuse votes while the lease
///   of the leader they last heard from runs (`election_timeout_max`), and start their own
///   election only a lease plus a timeout after they last heard from it, checked on a tick
///   of one and a half heartbeats: 1.25–1.9 s with the defaults. Holdfast's prompt
///   elections ([`crate::election`]) stand right after the lease instead, so a new leader
///   comes about 0.8–1.1 s after the old one fell silent (BENCHMARKS.md, "Failover"). The
///   range is narrow (one and a half times, not twice): the lease is its longest timeout,
///   and every failover waits the lease out.
pub fn raft_config(
    cluster_id: &str,
    heartbeat_ms: u64,
    election_timeout_min_ms: u64,
) -> openraft::Config {
    openraft::Config {
        // Only a label in openraft's logs; the checked id is the node's `ClusterId`.
        cluster_name: if cluster_id.is_empty() {
            "holdfast".to_owned()
        } else {
            cluster_id.to_owned()
        },
        heartbeat_interval: heartbeat_ms,
        election_timeout_min: election_timeout_min_ms,
        election_timeout_max: election_timeout_max_ms(election_timeout_min_ms),
        max_payload_entries: 256,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(10_000),
        max_in_snapshot_log_to_keep: 1_000,
        snapshot_max_chunk_size: 1024 * 1024,
        ..Default::default()
    }
}

/// `config` with its snapshot interval shortened by a tenth per node id modulo 3
/// (`LogsSinceLast(10_000)` becomes 10,000, 9,000 or 8,000 entries), so that the members
/// of a cluster, which apply the same entries, do not all snapshot at the same entry: while
/// one encodes and writes its snapshot (CPU and disk, see `state_store.rs`), a quorum of
/// the others commits at full speed. Snapshots stay at most the configured interval apart.
pub fn staggered_snapshots(mut config: openraft::Config, node_id: NodeId) -> openraft::Config {
    if let SnapshotPolicy::LogsSinceLast(every) = config.snapshot_policy {
        let shorter = every / 10 * (node_id % 3);
        config.snapshot_policy = SnapshotPolicy::LogsSinceLast(every - shorter);
    }
    config
}

/// What a committed [`Batch`] produced.
#[derive(Clone, Debug)]
pub struct ProposeResult {
    /// The Raft entry that carried the batch.
    pub log_id: LogId,
    /// One outcome per entry of the batch, in order.
    pub outcomes: Vec<Outcome>,
}

/// One running Raft member.
pub struct RaftNode {
    raft: HoldfastRaft,
    state: StateMachineStore,
    node_id: NodeId,
    node_info: NodeInfo,
    cluster: ClusterId,
    message_bytes_max: usize,
    /// Mutual TLS of the peer port, if on.
    tls: Option<PeerTls>,
    server_config: ServerConfig,
    linearizable_read_timeout: Duration,
    stop_server: watch::Sender<bool>,
    server: Mutex<Option<JoinHandle<Result<(), Error>>>>,
    peer_contact: crate::network::PeerContact,
    /// Election nudges, shared by its Raft servers ([`crate::election`]).
    elections: Elections,
}

impl RaftNode {
    /// Opens the data directory (checking that it belongs to this node and cluster),
    /// restores the state from the last snapshot, and starts Raft, which replays the log
    /// up to the committed index. Does not listen: see [`RaftNode::serve_tcp`] and
    /// [`RaftNode::grpc_service`].
    pub async fn open(
        config: RaftNodeConfig,
        transport: Arc<dyn Transport>,
    ) -> Result<RaftNode, Error> {
        let message_bytes_max = config.network.message_bytes_max;
        let chunk_bytes = config.raft.snapshot_max_chunk_size;
        if chunk_bytes.saturating_mul(2) > message_bytes_max as u64 {
            return Err(Error::InvalidConfig {
                message: format!(
                    "snapshot_max_chunk_size {chunk_bytes} must be at most half of message_bytes_max {message_bytes_max}"
                ),
            });
        }
        if let Some(tls) = &config.network.tls {
            tls.check_names_node(config.node_id)?;
        }
        let raft_config = config
            .raft
            .clone()
            .validate()
            .map_err(|error| Error::InvalidConfig {
                message: error.to_string(),
            })?;
        let mut initial = Some(StateMachine::new(config.state_machine.clone()));
        // The stores first: the log store confirms the directory's incarnation (see
        // `DataDir::confirm_incarnation`), which the network then carries. Simulations keep
        // no directory: their nodes have no incarnation (zero, unchecked).
        let disk_stores = match &config.memory_disk {
            Some(_) => None,
            None => {
                let mut data_dir =
                    DataDir::open(&config.data_dir, &config.cluster_id, config.node_id)?;
                let refuse_writes = config.refuse_writes.clone();
                let initial = initial.take().expect("the initial state is taken once");
                let opened = tokio::task::spawn_blocking(move || {
                    let mut log_store = LogStore::open(&data_dir.log_path())?;
                    data_dir.confirm_incarnation(&log_store)?;
                    if let Some(switch) = refuse_writes {
                        log_store = log_store.refusing_writes_when(switch);
                    }
                    let state = StateMachineStore::open(&data_dir.snapshot_dir(), initial)?;
                    Ok::<_, Error>((data_dir, log_store, state))
                })
                .await
                .map_err(|error| Error::storage(&config.data_dir, error))??;
                Some(opened)
            }
        };
        let mut node_info = config.node_info.clone();
        node_info.incarnation = disk_stores
            .as_ref()
            .map_or(0, |(data_dir, _, _)| data_dir.incarnation());
        let cluster = match &disk_stores {
            Some((data_dir, _, _)) => data_dir.cluster().clone(),
            None => ClusterId::fixed(&config.cluster_id),
        };
        let network = NetworkFactory::new(
            config.node_id,
            node_info.incarnation,
            config.node_info.raft_addr.clone(),
            cluster.clone(),
            config.network.clone(),
            transport,
        );
        let peer_contact = network.contact();
        let raft_config = Arc::new(raft_config);
        let fatal = |error: openraft::error::Fatal<NodeId>| Error::Fatal {
            message: error.to_string(),
        };
        let (raft, state) = match (&config.memory_disk, disk_stores) {
            (_, Some((_, log_store, state))) => {
                let raft = openraft::Raft::new(
                    config.node_id,
                    raft_config,
                    network,
                    log_store,
                    state.clone(),
                )
                .await
                .map_err(fatal)?;
                (raft, state)
            }
            (Some(disk), None) => {
                let initial = initial.take().expect("the initial state is taken once");
                let state = StateMachineStore::open_in_memory(disk, initial)?;
                let raft = openraft::Raft::new(
                    config.node_id,
                    raft_config,
                    network,
                    disk.log_store(),
                    state.clone(),
                )
                .await
                .map_err(fatal)?;
                (raft, state)
            }
            (None, None) => unreachable!("a node without a memory disk opens its directory"),
        };
        let (stop_server, _) = watch::channel(false);
        let elections = Elections::new(raft.clone());
        let seed = rand::RngCore::next_u64(&mut crate::runtime::RaftRng);
        tokio::spawn(prompt_elections(
            elections.clone(),
            seed,
            stop_server.subscribe(),
        ));
        Ok(RaftNode {
            raft,
            state,
            node_id: config.node_id,
            node_info,
            cluster,
            message_bytes_max,
            tls: config.network.tls.clone(),
            server_config: config.server,
            linearizable_read_timeout: config.linearizable_read_timeout,
            stop_server,
            server: Mutex::new(None),
            peer_contact,
            elections,
        })
    }

    /// This node's Raft id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// This node's member record: its addresses, region and its data directory's
    /// incarnation (what [`RaftNode::initialize`] and a learner probe record).
    pub fn node_info(&self) -> &NodeInfo {
        &self.node_info
    }

    /// The incarnation of this node's data directory (zero in simulations, which have
    /// none).
    pub fn incarnation(&self) -> u64 {
        self.node_info.incarnation
    }

    /// The id of this node's cluster, `""` while it belongs to none yet (a node started
    /// without one on a fresh directory; see [`ClusterId`]).
    pub fn cluster_id(&self) -> String {
        self.cluster.to_wire()
    }

    /// This node's cluster id handle, to learn or generate the id (see [`ClusterId`]).
    pub fn cluster(&self) -> &ClusterId {
        &self.cluster
    }

    /// Milliseconds since each peer last answered this node's Raft calls (a leader hears
    /// from every reachable follower at least every heartbeat).
    pub fn peer_contact_ms(&self) -> BTreeMap<NodeId, u64> {
        self.peer_contact.millis_since()
    }

    /// The openraft handle, for anything this wrapper does not cover.
    pub fn raft(&self) -> &HoldfastRaft {
        &self.raft
    }

    /// The state machine store: local (possibly stale) reads go through
    /// [`StateMachineStore::read`].
    pub fn state(&self) -> &StateMachineStore {
        &self.state
    }

    /// Runs `read` on the local state without any freshness guarantee.
    pub fn read_stale<T>(&self, read: impl FnOnce(&AppliedState) -> T) -> T {
        self.state.read(read)
    }

    /// Raft metrics: role, term, leader, last log and applied index, membership,
    /// replication progress.
    pub fn metrics(&self) -> watch::Receiver<RaftMetrics<NodeId, NodeInfo>> {
        self.raft.metrics()
    }

    /// The peer port's mutual TLS, when it is on.
    pub fn peer_tls(&self) -> Option<&PeerTls> {
        self.tls.as_ref()
    }

    /// The current leader as this node knows it.
    pub fn leader(&self) -> Option<(NodeId, Option<NodeInfo>)> {
        let metrics = self.raft.metrics().borrow().clone();
        let leader_id = metrics.current_leader?;
        let info = metrics
            .membership_config
            .membership()
            .get_node(&leader_id)
            .cloned();
        Some((leader_id, info))
    }

    /// The tonic service for the Raft RPCs, to be added to a server of the caller's choice
    /// (for example together with the Booking service).
    pub fn grpc_service(
        &self,
    ) -> holdfast_proto::raft::raft_service_server::RaftServiceServer<RaftGrpcService> {
        self.raft_grpc_service().into_server(self.message_bytes_max)
    }

    /// [`RaftNode::grpc_service`] that tells `hook` of every request it refuses.
    pub fn grpc_service_observed(
        &self,
        hook: crate::server::RefusalHook,
    ) -> holdfast_proto::raft::raft_service_server::RaftServiceServer<RaftGrpcService> {
        self.raft_grpc_service()
            .with_refusal_hook(hook)
            .into_server(self.message_bytes_max)
    }

    fn raft_grpc_service(&self) -> RaftGrpcService {
        RaftGrpcService::new(
            self.raft.clone(),
            self.cluster.clone(),
            self.node_id(),
            self.incarnation(),
            self.tls.is_some(),
            self.elections.clone(),
        )
    }

    /// Serves the Raft RPCs on `listener` in a background task until [`RaftNode::shutdown`].
    pub fn serve_tcp(&self, listener: tokio::net::TcpListener) {
        let mut stop = self.stop_server.subscribe();
        let shutdown = async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        let task = tokio::spawn(serve_tcp(
            self.grpc_service(),
            self.server_config.clone(),
            self.tls.clone(),
            listener,
            shutdown,
        ));
        *self.server.lock().expect("server lock poisoned") = Some(task);
    }

    /// Leaves elections to other voters for `span`: this node does not stand on its own
    /// initiative meanwhile, beyond openraft's own election timer (a leader transfer to
    /// another voter is under way; see [`crate::election`]).
    pub fn hold_elections(&self, span: Duration) {
        self.elections.hold(span);
    }

    /// Makes the given nodes the first voters of a new cluster. Call once, on one node.
    pub async fn initialize(&self, members: BTreeMap<NodeId, NodeInfo>) -> Result<(), Error> {
        self.raft
            .initialize(members)
            .await
            .map_err(|error| match error {
                RaftError::APIError(InitializeError::NotAllowed(_)) => Error::AlreadyInitialized,
                RaftError::APIError(InitializeError::NotInMembers(error)) => Error::InvalidConfig {
                    message: error.to_string(),
                },
                RaftError::Fatal(fatal) => Error::Fatal {
                    message: fatal.to_string(),
                },
            })
    }

    /// Commits `batch` through Raft (this node must be the leader) and returns its
    /// outcomes once it is committed on a majority (each of which fsynced it) and applied
    /// here.
    pub async fn propose(&self, batch: Batch) -> Result<ProposeResult, Error> {
        let response = self
            .raft
            .client_write(batch)
            .await
            .map_err(client_write_error)?;
        Ok(ProposeResult {
            log_id: response.log_id,
            outcomes: response.data,
        })
    }

    /// Confirms with a quorum that this node is still the leader and waits until it has
    /// applied everything committed before the call: a read of the local state after it
    /// returns is linearizable. Returns the read log id. Fails with [`Error::NotLeader`]
    /// on a follower and [`Error::NoQuorum`] when a quorum does not answer in time.
    pub async fn ensure_linearizable(&self) -> Result<Option<LogId>, Error> {
        match tokio::time::timeout(
            self.linearizable_read_timeout,
            self.raft.ensure_linearizable(),
        )
        .await
        {
            Err(_) => Err(Error::NoQuorum {
                message: format!(
                    "leadership not confirmed within {:?}",
                    self.linearizable_read_timeout
                ),
            }),
            Ok(Ok(read_log_id)) => Ok(read_log_id),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward)))) => {
                Err(not_leader(forward))
            }
            Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(error)))) => {
                Err(Error::NoQuorum {
                    message: error.to_string(),
                })
            }
            Ok(Err(RaftError::Fatal(fatal))) => Err(Error::Fatal {
                message: fatal.to_string(),
            }),
        }
    }

    /// A linearizable read: [`RaftNode::ensure_linearizable`], then `read` on local state.
    pub async fn read_linearizable<T>(
        &self,
        read: impl FnOnce(&AppliedState) -> T,
    ) -> Result<T, Error> {
        self.ensure_linearizable().await?;
        Ok(self.state.read(read))
    }

    /// Waits until this node has applied at least `index` (read-your-writes with
    /// `min_index`). Returns `false` when `timeout` passed first, and fails with
    /// [`Error::Fatal`] if Raft stopped (a stopped Raft applies nothing more: a waiter
    /// looks at Raft's running state every 100 ms of a long wait, so a shutdown
    /// or a storage failure does not hold it to its timeout).
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<bool, Error> {
        let Some(mut applied) = self.state.applied_waiter(index) else {
            return Ok(true);
        };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let slice = deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .min(STOPPED_POLL);
            match tokio::time::timeout(slice, &mut applied).await {
                Ok(Ok(())) => return Ok(true),
                // The store was dropped: nothing more will be applied here.
                Ok(Err(_)) => return self.running().map(|()| false),
                Err(_) => {
                    self.running()?;
                    if tokio::time::Instant::now() >= deadline {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// Why Raft stopped (a fatal error, or a shutdown), if it did: such a node neither
    /// applies nor votes any more.
    pub fn fatal(&self) -> Option<String> {
        match &self.raft.metrics().borrow().running_state {
            Err(fatal) => Some(fatal.to_string()),
            Ok(()) => None,
        }
    }

    /// `Err(Fatal)` if Raft stopped.
    fn running(&self) -> Result<(), Error> {
        match self.fatal() {
            Some(fatal) => Err(Error::Fatal {
                message: format!("raft stopped: {fatal}"),
            }),
            None => Ok(()),
        }
    }

    /// Adds a learner. With `wait_caught_up` openraft answers once the membership entry is
    /// committed, which is not yet the learner having caught up: callers that need that
    /// wait for the leader's replication metrics to show the learner at the returned index
    /// (as `holdfast-node` does).
    pub async fn add_learner(
        &self,
        node_id: NodeId,
        info: NodeInfo,
        wait_caught_up: bool,
    ) -> Result<LogId, Error> {
        let response = self
            .raft
            .add_learner(node_id, info, wait_caught_up)
            .await
            .map_err(client_write_error)?;
        Ok(response.log_id)
    }

    /// Makes `voters` the voter set (through joint consensus). Nodes that leave the voter
    /// set stay as learners when `keep_removed_as_learners`.
    pub async fn change_membership(
        &self,
        voters: BTreeSet<NodeId>,
        keep_removed_as_learners: bool,
    ) -> Result<LogId, Error> {
        let response = self
            .raft
            .change_membership(voters, keep_removed_as_learners)
            .await
            .map_err(client_write_error)?;
        Ok(response.log_id)
    }

    /// Asks Raft to build a snapshot now (it purges the log behind it by its policy).
    pub async fn trigger_snapshot(&self) -> Result<(), Error> {
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|fatal| Error::Fatal {
                message: fatal.to_string(),
            })
    }

    /// Builds a snapshot of everything applied so far and waits, at most `timeout`, until
    /// it is persisted; returns the index it covers and how long it took.
    pub async fn snapshot_now(&self, timeout: Duration) -> Result<(u64, Duration), Error> {
        let started = tokio::time::Instant::now();
        let mut metrics = self.raft.metrics();
        let applied = metrics
            .borrow()
            .last_applied
            .map_or(0, |log_id| log_id.index);
        self.trigger_snapshot().await?;
        let covered = |metrics: &RaftMetrics<NodeId, NodeInfo>| {
            metrics
                .snapshot
                .is_some_and(|log_id| log_id.index >= applied)
        };
        tokio::time::timeout(timeout, async {
            while !covered(&metrics.borrow_and_update()) {
                if metrics.changed().await.is_err() {
                    return Err(Error::Fatal {
                        message: "raft stopped while building the snapshot".into(),
                    });
                }
            }
            Ok(())
        })
        .await
        .map_err(|_| Error::Fatal {
            message: format!("the snapshot was not built within {timeout:?}"),
        })??;
        let index = metrics.borrow().snapshot.map_or(0, |log_id| log_id.index);
        Ok((index, started.elapsed()))
    }

    /// Stops the RPC server and Raft. Everything acknowledged is already durable, so this
    /// only ends tasks.
    pub async fn shutdown(&self) -> Result<(), Error> {
        let _ = self.stop_server.send(true);
        let task = self.server.lock().expect("server lock poisoned").take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
        self.raft.shutdown().await.map_err(|error| Error::Fatal {
            message: error.to_string(),
        })
    }
}

fn not_leader(forward: ForwardToLeader<NodeId, NodeInfo>) -> Error {
    Error::NotLeader {
        leader_id: forward.leader_id,
        leader: forward.leader_node,
    }
}

fn client_write_error(error: RaftError<NodeId, ClientWriteError<NodeId, NodeInfo>>) -> Error {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => not_leader(forward),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(error)) => {
            Error::MembershipRefused {
                message: error.to_string(),
            }
        }
        RaftError::Fatal(fatal) => Error::Fatal {
            message: fatal.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_members_of_a_three_node_cluster_snapshot_at_different_entries() {
        let every = |node_id| match staggered_snapshots(default_raft_config("c"), node_id)
            .snapshot_policy
        {
            SnapshotPolicy::LogsSinceLast(every) => every,
            SnapshotPolicy::Never => panic!("snapshots switched off"),
        };
        assert_eq!([every(1), every(2), every(3)], [9_000, 8_000, 10_000]);
        // Never more than the configured interval apart.
        assert!((1..=100).all(|node_id| every(node_id) <= 10_000));
        let mut never = default_raft_config("c");
        never.snapshot_policy = SnapshotPolicy::Never;
        assert!(matches!(
            staggered_snapshots(never, 2).snapshot_policy,
            SnapshotPolicy::Never
        ));
    }
}
