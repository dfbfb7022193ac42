//! The server side of node-to-node Raft RPC: decodes the envelope, checks that the request
//! is meant for this node of this cluster, and hands the openraft message to [`Raft`].
//!
//! [`Raft`]: openraft::Raft

use std::time::Duration;

use holdfast_proto::raft::raft_service_server::{RaftService, RaftServiceServer};
use holdfast_proto::raft::{RaftReply, RaftRequest};
use holdfast_proto::RAFT_WIRE_FORMAT_VERSION;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status};

use crate::data_dir::ClusterId;
use crate::election::Elections;
use crate::error::Error;
use crate::network::INCARNATION_MISMATCH;
use crate::tls::{check_peer_identity, PeerTls};
use crate::types::{HoldfastRaft, NodeId};

/// Told of every Raft RPC this node refuses (its envelope or its bytes): the caller's
/// address and the refusal, so that the embedding node can count and log it.
pub type RefusalHook = std::sync::Arc<dyn Fn(Option<std::net::SocketAddr>, &Status) + Send + Sync>;

/// Serves one node's Raft RPCs.
#[derive(Clone)]
pub struct RaftGrpcService {
    raft: HoldfastRaft,
    /// This node's cluster; a node that belongs to none yet takes the id of the first
    /// cluster that calls it.
    cluster: ClusterId,
    node_id: NodeId,
    /// The incarnation of this node's data directory (0 without one).
    incarnation: u64,
    /// Served over mutual TLS: every request must come over a connection whose client
    /// certificate names the sender ([`check_peer_identity`]).
    tls_required: bool,
    on_refusal: Option<RefusalHook>,
    /// This node's election nudges, told of every AppendEntries call ([`crate::election`]).
    elections: Elections,
}

impl RaftGrpcService {
    /// The Raft RPCs of node `node_id` of `cluster_id`, whose data directory is
    /// `incarnation`; `tls_required` when the listener runs mutual TLS, so that a request
    /// without a client certificate is refused.
    pub fn new(
        raft: HoldfastRaft,
        cluster: ClusterId,
        node_id: NodeId,
        incarnation: u64,
        tls_required: bool,
        elections: Elections,
    ) -> RaftGrpcService {
        RaftGrpcService {
            raft,
            cluster,
            node_id,
            incarnation,
            tls_required,
            on_refusal: None,
            elections,
        }
    }

    /// Calls `hook` with every refused request.
    pub fn with_refusal_hook(mut self, hook: RefusalHook) -> RaftGrpcService {
        self.on_refusal = Some(hook);
        self
    }

    /// The tonic service with explicit message size limits.
    pub fn into_server(self, message_bytes_max: usize) -> RaftServiceServer<RaftGrpcService> {
        RaftServiceServer::new(self)
            .max_decoding_message_size(message_bytes_max)
            .max_encoding_message_size(message_bytes_max)
    }

    /// Checks the envelope (format, cluster, addressee, and that the sender is who its
    /// certificate says) and decodes the openraft message, with a bounded decode.
    #[allow(clippy::result_large_err)]
    fn open<T: DeserializeOwned>(&self, request: Request<RaftRequest>) -> Result<T, Status> {
        let remote = request.remote_addr();
        self.checked(request).inspect_err(|status| {
            if let Some(hook) = &self.on_refusal {
                hook(remote, status);
            }
        })
    }

    #[allow(clippy::result_large_err)]
    fn checked<T: DeserializeOwned>(&self, request: Request<RaftRequest>) -> Result<T, Status> {
        check_peer_identity(&request, request.get_ref().from_node_id, self.tls_required)?;
        let request = request.into_inner();
        if request.format_version != RAFT_WIRE_FORMAT_VERSION {
            return Err(Status::failed_precondition(format!(
                "UNSUPPORTED_FORMAT: raft wire format version {}; this node reads version {RAFT_WIRE_FORMAT_VERSION}",
                request.format_version
            )));
        }
        // A node of a cluster refuses another cluster's request before anything else.
        let of_a_cluster = self.cluster.get().is_some();
        if of_a_cluster {
            self.check_cluster(&request.cluster_id)?;
        }
        if request.to_node_id != self.node_id {
            return Err(Status::failed_precondition(format!(
                "NODE_MISMATCH: request for node {} reached node {}",
                request.to_node_id, self.node_id
            )));
        }
        self.check_incarnations(&request)?;
        let (message, _) = holdfast_statemachine::decode::from_slice(&request.payload)
            .map_err(|error| Status::invalid_argument(format!("CORRUPT_DATA: {error}")))?;
        // A node of no cluster yet joins the caller's last, so that only a well-formed
        // request meant for it, whose payload decodes, gets that far.
        if !of_a_cluster {
            self.check_cluster(&request.cluster_id)?;
        }
        Ok(message)
    }
}

impl RaftGrpcService {
    /// Refuses a request from another cluster. A node that belongs to no cluster yet (its
    /// directory is fresh and it was given no id) joins the cluster of the first call that
    /// reaches it: a leader initialising it, or replicating to it as a new learner. Without
    /// a cluster it has no log, no vote and no membership, so nothing it had is mixed in;
    /// with peer TLS only holders of the cluster CA's certificates reach it at all.
    #[allow(clippy::result_large_err)]
    fn check_cluster(&self, theirs: &str) -> Result<(), Status> {
        let adopted = match self.cluster.get() {
            Some(ours) => Ok(*ours == *theirs),
            None if theirs.is_empty() => Ok(false),
            None => self.cluster.adopt_from_peer(theirs),
        };
        match adopted {
            Ok(true) => Ok(()),
            Ok(false) => Err(Status::failed_precondition(format!(
                "CLUSTER_MISMATCH: request for cluster {theirs:?} reached cluster {:?}",
                self.cluster.to_wire()
            ))),
            Err(error @ Error::InvalidConfig { .. }) => Err(Status::failed_precondition(format!(
                "CLUSTER_MISMATCH: cannot join cluster {theirs:?}: {error}"
            ))),
            Err(error) => Err(Status::unavailable(format!(
                "STORAGE_FAILURE: cannot record cluster {theirs:?} in the data directory: {error}"
            ))),
        }
    }

    /// Refuses a request meant for another incarnation of this node (its data directory
    /// was wiped or replaced after it joined: it has forgotten its votes and the entries it
    /// acknowledged, so it must not vote or acknowledge under its old id), and one from a
    /// member that is not the incarnation this node's membership records. Zero on either
    /// side means "not known" and is not checked.
    #[allow(clippy::result_large_err)]
    fn check_incarnations(&self, request: &RaftRequest) -> Result<(), Status> {
        let node_id = self.node_id;
        if request.to_incarnation != 0 && request.to_incarnation != self.incarnation {
            return Err(Status::failed_precondition(format!(
                "{INCARNATION_MISMATCH}: node {node_id} was added to the cluster with data \
                 directory incarnation {:016x}, and answers with {:016x}: its data directory was \
                 wiped or replaced, so it has forgotten its votes and log. It cannot rejoin under \
                 id {node_id}: remove node {node_id} from the membership and add this node \
                 under a new id",
                request.to_incarnation, self.incarnation
            )));
        }
        let recorded = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&request.from_node_id)
            .map_or(0, |node| node.incarnation);
        if recorded != 0 && request.from_incarnation != recorded {
            return Err(Status::failed_precondition(format!(
                "{INCARNATION_MISMATCH}: node {} calls with data directory incarnation \
                 {:016x}, but the membership records {recorded:016x}: its data directory was \
                 wiped or replaced; remove it and add it under a new id",
                request.from_node_id, request.from_incarnation
            )));
        }
        Ok(())
    }
}

fn reply<T: Serialize>(result: &T) -> Result<Response<RaftReply>, Status> {
    let payload = bincode::serde::encode_to_vec(result, bincode::config::standard())
        .map_err(|error| Status::internal(error.to_string()))?;
    Ok(Response::new(RaftReply {
        format_version: RAFT_WIRE_FORMAT_VERSION,
        payload,
    }))
}

#[tonic::async_trait]
impl RaftService for RaftGrpcService {
    async fn append_entries(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let message = self.open(request)?;
        self.elections.heard().touch();
        reply(&self.raft.append_entries(message).await)
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let message: openraft::raft::VoteRequest<NodeId> = self.open(request)?;
        let (candidate, candidate_log) = (message.vote, message.last_log_id);
        let answer = self.raft.vote(message).await;
        if let Ok(response) = &answer {
            self.elections
                .answered_a_candidate(candidate, candidate_log, response.last_log_id);
        }
        reply(&answer)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let message = self.open(request)?;
        reply(&self.raft.install_snapshot(message).await)
    }
}

/// Server-side HTTP/2 settings of the Raft listener.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Interval of the server's HTTP/2 keepalive pings (default 5 s).
    pub keepalive_interval: Duration,
    /// A connection whose ping is not answered within this is closed (default 5 s).
    pub keepalive_timeout: Duration,
    /// Bound on concurrent streams per connection.
    pub concurrent_streams_max: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            keepalive_interval: Duration::from_secs(5),
            keepalive_timeout: Duration::from_secs(5),
            concurrent_streams_max: 256,
        }
    }
}

/// Serves `service` over the connections of `incoming` until `shutdown` completes, with
/// mutual TLS when `tls` is given. This is the listener seam: production passes a TCP
/// listener, a simulation its own stream (and no TLS).
pub async fn serve_incoming<Incoming, Io, IoError, Shutdown>(
    service: RaftServiceServer<RaftGrpcService>,
    config: ServerConfig,
    tls: Option<&PeerTls>,
    incoming: Incoming,
    shutdown: Shutdown,
) -> Result<(), Error>
where
    Incoming: futures::Stream<Item = Result<Io, IoError>> + Send + 'static,
    Io: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    IoError: Into<Box<dyn std::error::Error + Send + Sync>>,
    Shutdown: std::future::Future<Output = ()> + Send,
{
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls.server_config())
            .map_err(|error| Error::PeerTls {
                message: error.to_string(),
            })?;
    }
    builder
        .http2_keepalive_interval(Some(config.keepalive_interval))
        .http2_keepalive_timeout(Some(config.keepalive_timeout))
        .max_concurrent_streams(Some(config.concurrent_streams_max))
        .tcp_nodelay(true)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|error| Error::Transport {
            message: error.to_string(),
        })
}

/// Serves `service` on a bound TCP listener until `shutdown` completes.
pub async fn serve_tcp<Shutdown>(
    service: RaftServiceServer<RaftGrpcService>,
    config: ServerConfig,
    tls: Option<PeerTls>,
    listener: tokio::net::TcpListener,
    shutdown: Shutdown,
) -> Result<(), Error>
where
    Shutdown: std::future::Future<Output = ()> + Send,
{
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    serve_incoming(service, config, tls.as_ref(), incoming, shutdown).await
}
