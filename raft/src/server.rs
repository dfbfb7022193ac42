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

use crate::error::Error;
use crate::tls::{check_peer_identity, PeerTls};
use crate::types::{HoldfastRaft, NodeId};

/// Told of every Raft RPC this node refuses (its envelope or its bytes): the caller's
/// address and the refusal, so that the embedding node can count and log it.
pub type RefusalHook = std::sync::Arc<dyn Fn(Option<std::net::SocketAddr>, &Status) + Send + Sync>;

/// Serves one node's Raft RPCs.
#[derive(Clone)]
pub struct RaftGrpcService {
    raft: HoldfastRaft,
    cluster_id: String,
    node_id: NodeId,
    /// Served over mutual TLS: every request must come over a connection whose client
    /// certificate names the sender ([`check_peer_identity`]).
    tls_required: bool,
    on_refusal: Option<RefusalHook>,
}

impl RaftGrpcService {
    /// The Raft RPCs of node `node_id` of `cluster_id`; `tls_required` when the listener
    /// runs mutual TLS, so that a request without a client certificate is refused.
    pub fn new(
        raft: HoldfastRaft,
        cluster_id: String,
        node_id: NodeId,
        tls_required: bool,
    ) -> RaftGrpcService {
        RaftGrpcService {
            raft,
            cluster_id,
            node_id,
            tls_required,
            on_refusal: None,
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
        if request.cluster_id != self.cluster_id {
            return Err(Status::failed_precondition(format!(
                "CLUSTER_MISMATCH: request for cluster {:?} reached cluster {:?}",
                request.cluster_id, self.cluster_id
            )));
        }
        if request.to_node_id != self.node_id {
            return Err(Status::failed_precondition(format!(
                "NODE_MISMATCH: request for node {} reached node {}",
                request.to_node_id, self.node_id
            )));
        }
        let (message, _) = holdfast_statemachine::decode::from_slice(&request.payload)
            .map_err(|error| Status::invalid_argument(format!("CORRUPT_DATA: {error}")))?;
        Ok(message)
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
        reply(&self.raft.append_entries(message).await)
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let message = self.open(request)?;
        reply(&self.raft.vote(message).await)
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
    pub keepalive_interval: Duration,
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
