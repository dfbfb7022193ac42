//! An in-process cluster over real loopback gRPC, for tests, benchmarks and later crates.
//!
//! Each node runs on its own tokio runtime, so [`Cluster::crash`] can stop a node the way a
//! process crash does: its runtime is dropped with every task in it, without any shutdown
//! path running. [`Cluster::restart`] then reopens the same data directory on the same port.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::SnapshotPolicy;
use tokio::runtime::Runtime;

use crate::error::Error;
use crate::node::{ProposeResult, RaftNode, RaftNodeConfig};
use crate::transport::TcpTransport;
use crate::types::{Batch, NodeId, NodeInfo};

/// How to build a test cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// The cluster id of every node, also openraft's cluster name (default `test-cluster`).
    pub cluster_id: String,
    /// Voters started and initialized by [`Cluster::start`] (ids 1..=voters).
    pub voters: u64,
    /// openraft settings of every node.
    pub raft: openraft::Config,
    /// Worker threads of each node's runtime.
    pub worker_threads_per_node: usize,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            cluster_id: "test-cluster".into(),
            voters: 3,
            raft: openraft::Config {
                cluster_name: "test-cluster".into(),
                heartbeat_interval: 100,
                election_timeout_min: 500,
                election_timeout_max: 1_000,
                max_payload_entries: 256,
                snapshot_policy: SnapshotPolicy::Never,
                max_in_snapshot_log_to_keep: 0,
                snapshot_max_chunk_size: 64 * 1024,
                ..Default::default()
            },
            worker_threads_per_node: 1,
        }
    }
}

struct LiveNode {
    node: Arc<RaftNode>,
    runtime: Runtime,
}

/// N Raft nodes in this process, each with its own data directory, runtime and
/// `127.0.0.1` port.
pub struct Cluster {
    options: ClusterOptions,
    base_dir: tempfile::TempDir,
    members: BTreeMap<NodeId, NodeInfo>,
    live: BTreeMap<NodeId, LiveNode>,
}

impl Cluster {
    /// Starts `options.voters` nodes, initializes them as one cluster and waits for a
    /// leader.
    pub async fn start(options: ClusterOptions) -> Result<Cluster, Error> {
        let base_dir = tempfile::tempdir().map_err(|error| Error::storage("tempdir", error))?;
        let mut cluster = Cluster {
            options,
            base_dir,
            members: BTreeMap::new(),
            live: BTreeMap::new(),
        };
        for node_id in 1..=cluster.options.voters {
            cluster.start_node(node_id).await?;
        }
        let first = cluster.node(1);
        first.initialize(cluster.members.clone()).await?;
        cluster.leader(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    /// Data directory of `node_id`.
    pub fn data_dir(&self, node_id: NodeId) -> PathBuf {
        self.base_dir.path().join(format!("node-{node_id}"))
    }

    /// Addresses of every node ever started.
    pub fn members(&self) -> &BTreeMap<NodeId, NodeInfo> {
        &self.members
    }

    /// Ids of the running nodes.
    pub fn live_ids(&self) -> Vec<NodeId> {
        self.live.keys().copied().collect()
    }

    /// A running node. Panics if it is not running.
    pub fn node(&self, node_id: NodeId) -> Arc<RaftNode> {
        Arc::clone(
            &self
                .live
                .get(&node_id)
                .unwrap_or_else(|| panic!("node {node_id} is not running"))
                .node,
        )
    }

    /// Starts (or restarts) node `node_id` on its data directory without adding it to the
    /// membership. A new node gets a fresh port; a restarted one reuses its port.
    pub async fn start_node(&mut self, node_id: NodeId) -> Result<Arc<RaftNode>, Error> {
        assert!(
            !self.live.contains_key(&node_id),
            "node {node_id} is already running"
        );
        let listener = self.bind(node_id).await?;
        let address = listener.local_addr().map_err(|error| Error::Transport {
            message: error.to_string(),
        })?;
        let info = NodeInfo {
            raft_addr: address.to_string(),
            http_addr: String::new(),
            region: "local".into(),
            incarnation: 0,
        };
        let mut config = RaftNodeConfig::new(
            node_id,
            &self.options.cluster_id,
            self.data_dir(node_id),
            info,
        );
        config.raft = self.options.raft.clone();
        config.raft.cluster_name = self.options.cluster_id.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.options.worker_threads_per_node)
            .max_blocking_threads(8)
            .thread_name(format!("raft-node-{node_id}"))
            .enable_all()
            .build()
            .map_err(|error| Error::storage("runtime", error))?;
        let node = runtime
            .spawn(async move {
                let listener = tokio::net::TcpListener::from_std(listener).map_err(|error| {
                    Error::Transport {
                        message: error.to_string(),
                    }
                })?;
                let node = RaftNode::open(config, Arc::new(TcpTransport)).await?;
                node.serve_tcp(listener);
                Ok::<_, Error>(Arc::new(node))
            })
            .await
            .map_err(|error| Error::Fatal {
                message: error.to_string(),
            })??;
        // What the membership records: with the incarnation of the directory it opened.
        self.members.insert(node_id, node.node_info().clone());
        self.live.insert(
            node_id,
            LiveNode {
                node: Arc::clone(&node),
                runtime,
            },
        );
        Ok(node)
    }

    async fn bind(&self, node_id: NodeId) -> Result<std::net::TcpListener, Error> {
        let address: SocketAddr = match self.members.get(&node_id) {
            Some(info) => info.raft_addr.parse().expect("harness addresses parse"),
            None => "127.0.0.1:0".parse().expect("loopback address parses"),
        };
        // A restarted node takes its old port back; the old socket may need a moment.
        let mut attempts = 0;
        loop {
            match std::net::TcpListener::bind(address) {
                Ok(listener) => {
                    listener
                        .set_nonblocking(true)
                        .map_err(|error| Error::Transport {
                            message: error.to_string(),
                        })?;
                    return Ok(listener);
                }
                Err(error) if attempts < 50 => {
                    attempts += 1;
                    tracing::debug!(%error, %address, "port busy, retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => {
                    return Err(Error::Transport {
                        message: format!("bind {address}: {error}"),
                    })
                }
            }
        }
    }

    /// Stops a node as a crash would: its runtime is dropped with every task in it; no
    /// shutdown runs. Its data directory stays.
    pub async fn crash(&mut self, node_id: NodeId) {
        let live = self
            .live
            .remove(&node_id)
            .unwrap_or_else(|| panic!("node {node_id} is not running"));
        drop(live.node);
        // A runtime cannot be dropped on an async thread; it also waits for blocking tasks
        // (an fsync in progress), as a real crash would not, which does not weaken the test:
        // nothing is acknowledged before its fsync returns either way.
        tokio::task::spawn_blocking(move || drop(live.runtime))
            .await
            .expect("dropping a node runtime");
    }

    /// Restarts a crashed or stopped node on its data directory and port.
    pub async fn restart(&mut self, node_id: NodeId) -> Result<Arc<RaftNode>, Error> {
        // The crashed node's database lock is released once its tasks are gone; retry
        // briefly in case a blocking thread is still letting go of it.
        let mut attempts = 0;
        loop {
            match self.start_node(node_id).await {
                Err(Error::Storage { message, .. })
                    if message.contains("lock") && attempts < 50 =>
                {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    /// Shuts a node down cleanly and drops its runtime.
    pub async fn stop(&mut self, node_id: NodeId) -> Result<(), Error> {
        let live = self
            .live
            .remove(&node_id)
            .unwrap_or_else(|| panic!("node {node_id} is not running"));
        let node = Arc::clone(&live.node);
        let result = live
            .runtime
            .spawn(async move { node.shutdown().await })
            .await
            .map_err(|error| Error::Fatal {
                message: error.to_string(),
            })?;
        drop(live.node);
        tokio::task::spawn_blocking(move || drop(live.runtime))
            .await
            .expect("dropping a node runtime");
        result
    }

    /// Starts node `node_id` and adds it as a learner through the leader, waiting until it
    /// has caught up.
    pub async fn add_learner(&mut self, node_id: NodeId) -> Result<Arc<RaftNode>, Error> {
        let leader = self.node(self.leader(Duration::from_secs(30)).await?);
        let node = self.start_node(node_id).await?;
        let info = self.members[&node_id].clone();
        leader.add_learner(node_id, info, true).await?;
        Ok(node)
    }

    /// Waits until the running nodes agree on one leader that is running, and returns it.
    pub async fn leader(&self, timeout: Duration) -> Result<NodeId, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(leader) = self.agreed_leader() {
                return Ok(leader);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::NoQuorum {
                    message: format!("no leader within {timeout:?}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn agreed_leader(&self) -> Option<NodeId> {
        let mut leader = None;
        for (node_id, live) in &self.live {
            let metrics = live.node.metrics().borrow().clone();
            if metrics.state.is_leader() {
                leader = Some(*node_id);
            }
        }
        let leader = leader?;
        let leader_metrics = self.live[&leader].node.metrics().borrow().clone();
        let membership = leader_metrics.membership_config.membership().clone();
        // Every running member (voter or learner) must follow the same leader in the same
        // term; a node that was started but not added yet does not count.
        let agreed = self
            .live
            .iter()
            .filter(|(node_id, _)| membership.get_node(node_id).is_some())
            .all(|(_, live)| {
                let metrics = live.node.metrics().borrow().clone();
                metrics.current_leader == Some(leader)
                    && metrics.current_term == leader_metrics.current_term
            });
        agreed.then_some(leader)
    }

    /// Proposes `batch` to the current leader, retrying while leadership moves, for up to
    /// `timeout`.
    pub async fn propose(&self, batch: Batch, timeout: Duration) -> Result<ProposeResult, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let leader = self.leader(timeout).await?;
            match self.node(leader).propose(batch.clone()).await {
                Ok(result) => return Ok(result),
                Err(error @ (Error::NotLeader { .. } | Error::Fatal { .. }))
                    if tokio::time::Instant::now() < deadline =>
                {
                    tracing::debug!(%error, "proposal refused, retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Waits until every running node has applied at least `index`.
    pub async fn wait_all_applied(&self, index: u64, timeout: Duration) -> Result<(), Error> {
        for (node_id, live) in &self.live {
            if !live.node.wait_applied(index, timeout).await? {
                return Err(Error::NoQuorum {
                    message: format!("node {node_id} did not apply {index} within {timeout:?}"),
                });
            }
        }
        Ok(())
    }

    /// Shuts every node down.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        for node_id in self.live_ids() {
            self.stop(node_id).await?;
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Runtimes must not be dropped on an async thread: move them to a plain thread.
        let live = std::mem::take(&mut self.live);
        if !live.is_empty() {
            let _ = std::thread::spawn(move || drop(live)).join();
        }
    }
}

/// State machine entries for tests and benchmarks: an event with a large pool, and holds
/// of one unit each by distinct customers (so every hold succeeds and is visible).
pub mod workload {
    use holdfast_statemachine::{
        Category, Command, CreateEvent, Entry, HoldRequest, PoolQuantity, PoolSpec,
    };

    /// The event that [`create_event`] creates and every [`hold`] holds in.
    pub const EVENT_ID: &str = "load-event";
    /// The event's one general-admission pool.
    pub const POOL_ID: &str = "GA";
    const BASE_TIME_MS: u64 = 1_800_000_000_000;

    /// Creates [`EVENT_ID`] with pool [`POOL_ID`] of `capacity` units.
    pub fn create_event(capacity: u64) -> Entry {
        Entry {
            time_ms: BASE_TIME_MS,
            request_id: None,
            command: Command::CreateEvent(CreateEvent {
                event_id: EVENT_ID.into(),
                name: "Load test".into(),
                category: Category::Event,
                starts_at_ms: None,
                currency: "EUR".into(),
                seats: vec![],
                seat_blocks: vec![],
                pools: vec![PoolSpec {
                    id: POOL_ID.into(),
                    capacity,
                    price: 100,
                }],
                listing: Default::default(),
            }),
        }
    }

    /// Holds one unit of the pool for customer `c-{sequence}`, with the longest TTL. The
    /// entry's time advances by one millisecond per thousand holds, so holds never expire
    /// within a test.
    pub fn hold(sequence: u64) -> Entry {
        Entry {
            time_ms: BASE_TIME_MS + sequence / 1_000,
            request_id: None,
            command: Command::Hold(HoldRequest {
                event_id: EVENT_ID.into(),
                customer_id: format!("c-{sequence}"),
                seats: vec![],
                pools: vec![PoolQuantity {
                    pool_id: POOL_ID.into(),
                    quantity: 1,
                }],
                best_available: None,
                ttl_seconds: Some(7_200),
            }),
        }
    }
}
