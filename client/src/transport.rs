//! The nodes the SDK knows, one multiplexed HTTP/2 connection each, and which one a call
//! goes to.
//!
//! Writes go to the leader, learned from cluster status and from the `x-holdfast-leader`
//! metadata every answer carries; a node that fails at the transport level is left alone
//! for a short while and the next node is tried. Reads go to a node of the caller's region
//! when one is known and healthy.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use crate::error::{number, Error, Result};
use crate::types::ClusterStatus;

/// How long a node that failed at the transport level is passed over.
const DOWN_FOR: Duration = Duration::from_millis(1500);
/// Largest answer accepted (a full availability page is far below it).
pub(crate) const MESSAGE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Most nodes the SDK keeps connections to (endpoints plus members learned).
const NODES_MAX: usize = 64;
// `Transport::pick` keeps which nodes are down in the bits of a u64.
const _: () = assert!(NODES_MAX <= 64);

/// One node: its address, its connection and what the SDK learned about it.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) url: String,
    pub(crate) channel: Channel,
    /// Node id once learned (0 until then).
    id: AtomicU64,
    region: RwLock<String>,
    down_until: Mutex<Option<Instant>>,
}

impl Node {
    pub(crate) fn id(&self) -> Option<u64> {
        match self.id.load(Ordering::Relaxed) {
            0 => None,
            id => Some(id),
        }
    }

    fn is_down(&self) -> bool {
        let down = self.down_until.lock().expect("node lock");
        down.is_some_and(|until| Instant::now() < until)
    }

    pub(crate) fn mark_down(&self) {
        *self.down_until.lock().expect("node lock") = Some(Instant::now() + DOWN_FOR);
    }

    fn mark_up(&self) {
        *self.down_until.lock().expect("node lock") = None;
    }
}

/// What an answer said about the cluster.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Meta {
    pub(crate) applied_index: Option<u64>,
}

/// Where a call should go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// The leader if known (writes, linearizable reads).
    Leader,
    /// A node of the caller's region if known (other reads).
    Near,
    /// Any node (cluster calls).
    Any,
}

/// Counters of what the SDK sent, for tests and benchmarks.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) rpcs: AtomicU64,
    pub(crate) batch_rpcs: AtomicU64,
    pub(crate) batched_operations: AtomicU64,
    pub(crate) retries: AtomicU64,
}

/// Shared by every clone of a client and by its batcher.
#[derive(Debug)]
pub(crate) struct Transport {
    nodes: RwLock<Vec<Arc<Node>>>,
    leader_id: AtomicU64,
    cursor: AtomicUsize,
    region: Option<String>,
    api_key: Option<MetadataValue<tonic::metadata::Ascii>>,
    connect_timeout: Duration,
    refreshing: AtomicBool,
    pub(crate) counters: Counters,
    /// Highest applied index any answer reported.
    pub(crate) highest_index: AtomicU64,
    /// Set once a node answered `Batch` with UNIMPLEMENTED: calls go one by one.
    pub(crate) batch_unsupported: AtomicBool,
}

/// `host:port` or a URL, as an `http://` URL without a trailing slash.
pub(crate) fn normalise(endpoint: &str) -> Result<String> {
    let endpoint = endpoint.trim().trim_end_matches('/');
    if endpoint.is_empty() {
        return Err(Error::InvalidArgument("an empty endpoint".into()));
    }
    let url = if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    };
    Endpoint::from_shared(url.clone())
        .map_err(|error| Error::InvalidArgument(format!("endpoint {endpoint}: {error}")))?;
    Ok(url)
}

impl Transport {
    pub(crate) fn new(
        endpoints: &[String],
        region: Option<String>,
        api_key: Option<&str>,
        connect_timeout: Duration,
    ) -> Result<Transport> {
        if endpoints.is_empty() {
            return Err(Error::InvalidArgument("no endpoints given".into()));
        }
        let api_key = api_key
            .map(|key| {
                MetadataValue::try_from(format!("Bearer {key}"))
                    .map_err(|_| Error::InvalidArgument("the API key is not printable".into()))
            })
            .transpose()?;
        let transport = Transport::empty(region, api_key, connect_timeout);
        for endpoint in endpoints {
            transport.add_node(&normalise(endpoint)?)?;
        }
        Ok(transport)
    }

    fn empty(
        region: Option<String>,
        api_key: Option<MetadataValue<tonic::metadata::Ascii>>,
        connect_timeout: Duration,
    ) -> Transport {
        Transport {
            nodes: RwLock::new(Vec::new()),
            leader_id: AtomicU64::new(0),
            cursor: AtomicUsize::new(0),
            region,
            api_key,
            connect_timeout,
            refreshing: AtomicBool::new(false),
            counters: Counters::default(),
            highest_index: AtomicU64::new(0),
            batch_unsupported: AtomicBool::new(false),
        }
    }

    /// A transport for the node at `url` only, with this one's key and settings.
    pub(crate) fn only(&self, url: &str) -> Result<Transport> {
        let transport = Transport::empty(
            self.region.clone(),
            self.api_key.clone(),
            self.connect_timeout,
        );
        transport.add_node(url)?;
        Ok(transport)
    }

    /// The node at `url`, connecting lazily (the first call opens the connection).
    fn add_node(&self, url: &str) -> Result<Arc<Node>> {
        let mut nodes = self.nodes.write().expect("nodes lock");
        if let Some(node) = nodes.iter().find(|node| node.url == url) {
            return Ok(node.clone());
        }
        if nodes.len() >= NODES_MAX {
            return Err(Error::InvalidArgument(format!(
                "more than {NODES_MAX} nodes"
            )));
        }
        let channel = Endpoint::from_shared(url.to_string())
            .map_err(|error| Error::InvalidArgument(format!("endpoint {url}: {error}")))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true)
            .connect_lazy();
        let node = Arc::new(Node {
            url: url.to_string(),
            channel,
            id: AtomicU64::new(0),
            region: RwLock::new(String::new()),
            down_until: Mutex::new(None),
        });
        nodes.push(node.clone());
        Ok(node)
    }

    pub(crate) fn nodes(&self) -> Vec<Arc<Node>> {
        self.nodes.read().expect("nodes lock").clone()
    }

    pub(crate) fn leader_id(&self) -> Option<u64> {
        match self.leader_id.load(Ordering::Relaxed) {
            0 => None,
            id => Some(id),
        }
    }

    /// Forgets the leader (it failed); the next write goes elsewhere and learns anew.
    pub(crate) fn forget_leader(&self, node: &Node) {
        if let Some(id) = node.id() {
            let _ = self
                .leader_id
                .compare_exchange(id, 0, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// The node a call should try next: among the nodes not marked down (all of them when
    /// every one is), the leader for [`Route::Leader`], one of the caller's region in turn
    /// for [`Route::Near`], and otherwise the current default node. Every call asks, so it
    /// looks through the list in place rather than copying it (copies cost an allocation
    /// and a reference count on every node per call).
    pub(crate) fn pick(&self, route: Route) -> Arc<Node> {
        let nodes = self.nodes.read().expect("nodes lock");
        // Bit i: node i is down (a client keeps at most NODES_MAX = 64 nodes).
        let down = nodes.iter().enumerate().fold(0u64, |down, (i, node)| {
            down | u64::from(node.is_down()) << i
        });
        let all_down = down.count_ones() as usize == nodes.len();
        let candidates = || {
            nodes
                .iter()
                .enumerate()
                .filter(move |(i, _)| all_down || down & (1 << i) == 0)
                .map(|(_, node)| node)
        };
        match route {
            Route::Leader => {
                if let Some(leader) = self.leader_id() {
                    if let Some(node) = candidates().find(|node| node.id() == Some(leader)) {
                        return Arc::clone(node);
                    }
                }
            }
            Route::Near => {
                if let Some(region) = &self.region {
                    let near = || {
                        candidates()
                            .filter(|node| *node.region.read().expect("region lock") == *region)
                    };
                    let count = near().count();
                    if count > 0 {
                        let turn = self.cursor.fetch_add(1, Ordering::Relaxed);
                        if let Some(node) = near().nth(turn % count) {
                            return Arc::clone(node);
                        }
                    }
                }
            }
            Route::Any => {}
        }
        // Stay on one node until it fails (its connection is warm); move on when it does.
        let start = self.cursor.load(Ordering::Relaxed);
        let count = candidates().count();
        let node = candidates()
            .nth(start % count.max(1))
            .expect("a client knows at least one node");
        Arc::clone(node)
    }

    /// Moves the default node on after `node` failed.
    pub(crate) fn rotate_from(&self, node: &Node) {
        let nodes = self.nodes();
        if let Some(position) = nodes.iter().position(|other| other.url == node.url) {
            self.cursor.store(position + 1, Ordering::Relaxed);
        }
    }

    /// The `authorization` metadata and a deadline on a request.
    pub(crate) fn request<T>(&self, message: T, timeout: Duration) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(timeout);
        if let Some(key) = &self.api_key {
            request.metadata_mut().insert("authorization", key.clone());
        }
        request
    }

    /// A request for a server stream: the key, but no `grpc-timeout`, which would end the
    /// stream when it passed (the stream's life is the caller's to decide).
    pub(crate) fn stream_request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(key) = &self.api_key {
            request.metadata_mut().insert("authorization", key.clone());
        }
        request
    }

    /// Learns from an answer's metadata: which node answered, who leads, the applied index.
    pub(crate) fn observe(self: &Arc<Self>, node: &Node, metadata: &MetadataMap) -> Meta {
        node.mark_up();
        if let Some(id) = number(metadata, "x-holdfast-node") {
            node.id.store(id, Ordering::Relaxed);
        }
        if let Some(leader) = number(metadata, "x-holdfast-leader") {
            let previous = self.leader_id.swap(leader, Ordering::Relaxed);
            if previous != leader && !self.knows(leader) {
                self.refresh_in_background();
            }
        }
        let applied_index = number(metadata, "x-holdfast-applied-index");
        if let Some(index) = applied_index {
            self.highest_index.fetch_max(index, Ordering::Relaxed);
        }
        Meta { applied_index }
    }

    fn knows(&self, id: u64) -> bool {
        self.nodes().iter().any(|node| node.id() == Some(id))
    }

    /// Learns members, their ids and regions, and the leader from a cluster status.
    pub(crate) fn learn(&self, answered_by: &Node, status: &ClusterStatus) {
        answered_by.id.store(status.node_id, Ordering::Relaxed);
        if let Some(leader) = status.leader_id {
            self.leader_id.store(leader, Ordering::Relaxed);
        }
        for member in &status.members {
            if member.http_addr.is_empty() {
                continue;
            }
            let Ok(url) = normalise(&member.http_addr) else {
                continue;
            };
            // Endpoints given by name stay; a member's address is added once.
            let node = self
                .nodes()
                .into_iter()
                .find(|node| node.url == url || node.id() == Some(member.id));
            let node = match node {
                Some(node) => node,
                None => match self.add_node(&url) {
                    Ok(node) => node,
                    Err(_) => continue,
                },
            };
            node.id.store(member.id, Ordering::Relaxed);
            *node.region.write().expect("region lock") = member.region.clone();
        }
    }

    /// Asks some node for the cluster status (once at a time) to place a new leader.
    fn refresh_in_background(self: &Arc<Self>) {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.refreshing.store(false, Ordering::Release);
            return;
        };
        let transport = self.clone();
        runtime.spawn(async move {
            for node in transport.nodes() {
                if let Ok(status) = transport.status_of(&node, Duration::from_secs(2)).await {
                    transport.learn(&node, &status);
                    break;
                }
            }
            transport.refreshing.store(false, Ordering::Release);
        });
    }

    /// One node's cluster status.
    pub(crate) async fn status_of(
        self: &Arc<Self>,
        node: &Arc<Node>,
        timeout: Duration,
    ) -> Result<ClusterStatus> {
        use holdfast_proto::booking::cluster_service_client::ClusterServiceClient;
        let request = self.request(holdfast_proto::booking::ClusterStatusRequest {}, timeout);
        self.counters.rpcs.fetch_add(1, Ordering::Relaxed);
        let answer = tokio::time::timeout(
            timeout,
            ClusterServiceClient::new(node.channel.clone()).status(request),
        )
        .await;
        match answer {
            Ok(Ok(response)) => {
                self.observe(node, response.metadata());
                Ok(ClusterStatus::from(response.into_inner()))
            }
            Ok(Err(status)) => {
                let error = Error::from_status(&status);
                if matches!(error, Error::Unreachable { .. }) {
                    node.mark_down();
                }
                Err(error)
            }
            Err(_) => {
                node.mark_down();
                Err(Error::DeadlineExceeded {
                    attempts: 1,
                    last: format!("{} did not answer within {timeout:?}", node.url),
                })
            }
        }
    }
}
