//! The client side of node-to-node Raft RPC over tonic.
//!
//! **Invariant:** every RPC has a deadline (openraft's TTL for that RPC, capped by
//! [`NetworkConfig::rpc_deadline_max`]), sent to the server as `grpc-timeout` and enforced
//! locally as well.
//! **Invariant:** a connection that timed out or failed is dropped and rebuilt on the next
//! RPC, never reused: a stalled HTTP/2 connection would otherwise stall every RPC after it.
//! Reconnects back off exponentially. HTTP/2 keepalive pings detect dead peers between RPCs.
//! **Invariant:** a node never connects to itself (by id or by address).

use std::sync::Arc;
use std::time::Duration;

use holdfast_proto::raft::raft_service_client::RaftServiceClient;
use holdfast_proto::raft::{RaftReply, RaftRequest};
use holdfast_proto::RAFT_WIRE_FORMAT_VERSION;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::AnyError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use crate::data_dir::ClusterId;
use crate::tls::{peer_endpoint, PeerTls};
use crate::transport::Transport;
use crate::types::{NodeId, NodeInfo, TypeConfig};

/// Room kept in a gRPC message for the envelope (cluster id, node ids, framing) around an
/// encoded openraft message.
const ENVELOPE_BYTES_MAX: usize = 64 * 1024;

/// Limits and timers of the Raft network.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
    /// Upper bound of any single RPC's deadline.
    pub rpc_deadline_max: Duration,
    /// Interval of HTTP/2 keepalive pings.
    pub keepalive_interval: Duration,
    /// A connection whose ping is not answered within this is closed.
    pub keepalive_timeout: Duration,
    /// First delay before reconnecting after a failed connect.
    pub reconnect_backoff_min: Duration,
    /// Largest delay between reconnect attempts.
    pub reconnect_backoff_max: Duration,
    /// Largest encoded or decoded gRPC message. Must exceed openraft's
    /// `snapshot_max_chunk_size` and the largest single Raft entry; an AppendEntries whose
    /// entries together are larger is sent in parts (see [`Connection::append_entries`]).
    pub message_bytes_max: usize,
    /// Mutual TLS towards peers (`None`: plain TCP, for a node without peer TLS and the
    /// simulations).
    pub tls: Option<PeerTls>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            connect_timeout: Duration::from_millis(1_000),
            rpc_deadline_max: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(5),
            keepalive_timeout: Duration::from_secs(5),
            reconnect_backoff_min: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_millis(2_000),
            message_bytes_max: 64 * 1024 * 1024,
            tls: None,
        }
    }
}

struct Shared {
    node_id: NodeId,
    /// The incarnation of this node's data directory (0 without one).
    incarnation: u64,
    node_address: String,
    cluster: ClusterId,
    config: NetworkConfig,
    transport: Arc<dyn Transport>,
    contact: PeerContact,
}

/// When this node last got an answer from each peer it calls (a leader calls every
/// follower at least every heartbeat), for operators: the cluster status's last contact.
#[derive(Clone, Debug, Default)]
pub struct PeerContact {
    answered_at: Arc<std::sync::Mutex<std::collections::BTreeMap<NodeId, Instant>>>,
}

impl PeerContact {
    fn record(&self, peer: NodeId) {
        self.answered_at
            .lock()
            .expect("peer contact lock poisoned")
            .insert(peer, Instant::now());
    }

    /// Milliseconds since each peer last answered this node.
    pub fn millis_since(&self) -> std::collections::BTreeMap<NodeId, u64> {
        let now = Instant::now();
        self.answered_at
            .lock()
            .expect("peer contact lock poisoned")
            .iter()
            .map(|(peer, at)| (*peer, now.duration_since(*at).as_millis() as u64))
            .collect()
    }
}

/// Creates one [`Connection`] per peer for openraft.
#[derive(Clone)]
pub struct NetworkFactory {
    shared: Arc<Shared>,
}

impl NetworkFactory {
    /// A factory for node `node_id` (listening on `node_address`) of `cluster_id`, whose
    /// data directory is `incarnation`.
    pub fn new(
        node_id: NodeId,
        incarnation: u64,
        node_address: String,
        cluster: ClusterId,
        config: NetworkConfig,
        transport: Arc<dyn Transport>,
    ) -> NetworkFactory {
        NetworkFactory {
            shared: Arc::new(Shared {
                node_id,
                incarnation,
                node_address,
                cluster,
                config,
                transport,
                contact: PeerContact::default(),
            }),
        }
    }

    /// When each peer last answered this node's Raft calls.
    pub fn contact(&self) -> PeerContact {
        self.shared.contact.clone()
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> Connection {
        Connection {
            shared: Arc::clone(&self.shared),
            target,
            target_address: node.raft_addr.clone(),
            target_incarnation: node.incarnation,
            incarnation_refusal_logged: false,
            client: None,
            connect_failures: 0,
            reconnect_at: None,
            entry_bytes_hint: 0,
        }
    }
}

/// The connection to one peer, rebuilt after failures.
pub struct Connection {
    shared: Arc<Shared>,
    target: NodeId,
    target_address: String,
    /// The incarnation the membership records for the target (0: not known).
    target_incarnation: u64,
    /// Whether this connection logged that the target refused it as another incarnation
    /// (once, not at every heartbeat).
    incarnation_refusal_logged: bool,
    client: Option<RaftServiceClient<Channel>>,
    connect_failures: u32,
    reconnect_at: Option<Instant>,
    /// The encoded bytes per entry of the last AppendEntries that carried entries: the
    /// next one's buffer is sized from it.
    entry_bytes_hint: usize,
}

#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("refusing to connect to itself ({0})")]
    ConnectToSelf(String),
    #[error("backing off before reconnecting to {0}")]
    BackingOff(String),
    #[error("cannot connect to {address}: {message}")]
    Connect { address: String, message: String },
    #[error("invalid peer address {address:?}: {message}")]
    BadAddress { address: String, message: String },
    #[error("rpc failed: {0}")]
    Status(tonic::Status),
    #[error("rpc timed out after {0:?}")]
    Timeout(Duration),
    #[error("bad reply: {0}")]
    Decode(String),
}

/// Opens the message of a Raft RPC refused because one side's data directory is not the
/// incarnation the other's membership records (see `server.rs`).
pub const INCARNATION_MISMATCH: &str = "INCARNATION_MISMATCH";

#[derive(Clone, Copy)]
enum RpcKind {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

impl RpcKind {
    fn openraft_type(self) -> RPCTypes {
        match self {
            RpcKind::AppendEntries => RPCTypes::AppendEntries,
            RpcKind::Vote => RPCTypes::Vote,
            RpcKind::InstallSnapshot => RPCTypes::InstallSnapshot,
        }
    }
}

impl Connection {
    fn endpoint(&self) -> Result<Endpoint, CallError> {
        let config = &self.shared.config;
        let endpoint = peer_endpoint(config.tls.as_ref(), &self.target_address, self.target)
            .map_err(|error| CallError::BadAddress {
                address: self.target_address.clone(),
                message: error.to_string(),
            })?;
        Ok(endpoint
            .connect_timeout(config.connect_timeout)
            .timeout(config.rpc_deadline_max)
            .http2_keep_alive_interval(config.keepalive_interval)
            .keep_alive_timeout(config.keepalive_timeout)
            .keep_alive_while_idle(true)
            .tcp_nodelay(true))
    }

    async fn client(&mut self) -> Result<RaftServiceClient<Channel>, CallError> {
        if self.target == self.shared.node_id || self.target_address == self.shared.node_address {
            return Err(CallError::ConnectToSelf(self.target_address.clone()));
        }
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        if let Some(reconnect_at) = self.reconnect_at {
            if Instant::now() < reconnect_at {
                return Err(CallError::BackingOff(self.target_address.clone()));
            }
        }
        let endpoint = self.endpoint()?;
        match self.shared.transport.connect(endpoint).await {
            Ok(channel) => {
                let limit = self.shared.config.message_bytes_max;
                let client = RaftServiceClient::new(channel)
                    .max_decoding_message_size(limit)
                    .max_encoding_message_size(limit);
                self.client = Some(client.clone());
                self.connect_failures = 0;
                self.reconnect_at = None;
                Ok(client)
            }
            Err(error) => {
                self.connect_failures = self.connect_failures.saturating_add(1);
                self.reconnect_at = Some(Instant::now() + self.reconnect_delay());
                Err(CallError::Connect {
                    address: self.target_address.clone(),
                    message: error.to_string(),
                })
            }
        }
    }

    fn reconnect_delay(&self) -> Duration {
        let config = &self.shared.config;
        let exponent = self.connect_failures.saturating_sub(1).min(16);
        config
            .reconnect_backoff_min
            .saturating_mul(1 << exponent)
            .min(config.reconnect_backoff_max)
    }

    async fn call(
        &mut self,
        kind: RpcKind,
        payload: Vec<u8>,
        deadline: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let mut client = self.client().await?;
        let deadline = deadline.min(self.shared.config.rpc_deadline_max);
        let mut request = tonic::Request::new(RaftRequest {
            format_version: RAFT_WIRE_FORMAT_VERSION,
            cluster_id: self.shared.cluster.to_wire(),
            from_node_id: self.shared.node_id,
            to_node_id: self.target,
            payload,
            from_incarnation: self.shared.incarnation,
            to_incarnation: self.target_incarnation,
        });
        request.set_timeout(deadline);
        let call = async {
            match kind {
                RpcKind::AppendEntries => client.append_entries(request).await,
                RpcKind::Vote => client.vote(request).await,
                RpcKind::InstallSnapshot => client.install_snapshot(request).await,
            }
        };
        let reply = match tokio::time::timeout(deadline, call).await {
            Err(_) => {
                // A stalled connection is rebuilt, not reused.
                self.client = None;
                return Err(CallError::Timeout(deadline));
            }
            Ok(Err(status)) => {
                self.client = None;
                if status.message().starts_with(INCARNATION_MISMATCH) {
                    if !self.incarnation_refusal_logged {
                        self.incarnation_refusal_logged = true;
                        tracing::error!(
                            node_id = self.target,
                            address = %self.target_address,
                            message = status.message(),
                            "a member refuses this node's Raft calls: its data directory is not \
                             the one it joined with; remove it and add it under a new id"
                        );
                    }
                } else {
                    self.incarnation_refusal_logged = false;
                }
                return Err(CallError::Status(status));
            }
            Ok(Ok(reply)) => {
                self.shared.contact.record(self.target);
                reply.into_inner()
            }
        };
        decode_reply(reply)
    }

    async fn rpc<Request, Response, E>(
        &mut self,
        kind: RpcKind,
        request: &Request,
        option: &RPCOption,
    ) -> Result<Response, RPCError<NodeId, NodeInfo, RaftError<NodeId, E>>>
    where
        Request: Serialize,
        Response: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let payload = encode_payload(request, 0)?;
        self.rpc_encoded(kind, payload, option).await
    }

    async fn rpc_encoded<Response, E>(
        &mut self,
        kind: RpcKind,
        payload: Vec<u8>,
        option: &RPCOption,
    ) -> Result<Response, RPCError<NodeId, NodeInfo, RaftError<NodeId, E>>>
    where
        Response: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let deadline = option.hard_ttl();
        let reply = self
            .call(kind, payload, deadline)
            .await
            .map_err(|error| match error {
                CallError::Timeout(timeout) => RPCError::Timeout(Timeout {
                    action: kind.openraft_type(),
                    id: self.shared.node_id,
                    target: self.target,
                    timeout,
                }),
                CallError::Decode(_) => RPCError::Network(NetworkError::new(&error)),
                _ => RPCError::Unreachable(Unreachable::new(&error)),
            })?;
        let (result, _): (Result<Response, RaftError<NodeId, E>>, usize) =
            holdfast_statemachine::decode::from_slice(&reply)
                .map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        result.map_err(|error| RPCError::RemoteError(RemoteError::new(self.target, error)))
    }

    /// The largest payload one RPC may carry.
    fn payload_bytes_max(&self) -> usize {
        self.shared
            .config
            .message_bytes_max
            .saturating_sub(ENVELOPE_BYTES_MAX)
    }
}

/// `value` encoded as a payload, into a buffer of `capacity` bytes to begin with.
// openraft's own error type, as the RPC methods answer it.
#[allow(clippy::result_large_err)]
fn encode_payload<T: Serialize, E: std::error::Error>(
    value: &T,
    capacity: usize,
) -> Result<Vec<u8>, RPCError<NodeId, NodeInfo, RaftError<NodeId, E>>> {
    crate::log_store::encode_after(&[], value, capacity)
        .map_err(|error| RPCError::Network(NetworkError::new(&error)))
}

/// Room for what an AppendEntries request carries besides its entries (vote, previous log
/// id, commit index), when sizing its buffer.
const APPEND_ENTRIES_FRAME_BYTES: usize = 256;

fn decode_reply(reply: RaftReply) -> Result<Vec<u8>, CallError> {
    if reply.format_version != RAFT_WIRE_FORMAT_VERSION {
        return Err(CallError::Decode(format!(
            "reply has wire format version {}; this build reads version {RAFT_WIRE_FORMAT_VERSION}",
            reply.format_version
        )));
    }
    Ok(reply.payload)
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        // openraft sends up to `max_payload_entries` entries at once, however large they
        // are; the receiver refuses a message above `message_bytes_max`. When the entries do
        // not fit, send the longest prefix that does and answer `PartialSuccess` up to it:
        // openraft then sends the rest in the next RPC (its documented contract for
        // partial sends). The follower commits no further than what it received.
        let limit = self.payload_bytes_max();
        let capacity = self
            .entry_bytes_hint
            .saturating_mul(request.entries.len())
            .saturating_add(APPEND_ENTRIES_FRAME_BYTES)
            .min(limit);
        let mut payload = encode_payload(&request, capacity)?;
        if let Some(per_entry) = payload.len().checked_div(request.entries.len()) {
            self.entry_bytes_hint = per_entry.saturating_add(per_entry / 8);
        }
        if payload.len() <= limit {
            return self
                .rpc_encoded(RpcKind::AppendEntries, payload, &option)
                .await;
        }
        let mut part = request;
        while payload.len() > limit {
            if part.entries.len() <= 1 {
                return Err(RPCError::Network(NetworkError::new(&AnyError::error(
                    format!(
                        "one Raft entry encodes to {} bytes, more than an RPC carries ({limit})",
                        payload.len()
                    ),
                ))));
            }
            let keep = part.entries.len() / 2;
            part.entries.truncate(keep);
            payload = encode_payload(&part, capacity)?;
        }
        let last_sent = part.entries.last().map(|entry| entry.log_id);
        let response: AppendEntriesResponse<NodeId> = self
            .rpc_encoded(RpcKind::AppendEntries, payload, &option)
            .await?;
        Ok(match response {
            AppendEntriesResponse::Success => AppendEntriesResponse::PartialSuccess(last_sent),
            other => other,
        })
    }

    async fn install_snapshot(
        &mut self,
        request: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, NodeInfo, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.rpc(RpcKind::InstallSnapshot, &request, &option).await
    }

    async fn vote(
        &mut self,
        request: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        self.rpc(RpcKind::Vote, &request, &option).await
    }

    fn backoff(&self) -> openraft::network::Backoff {
        // openraft waits this long between attempts to an unreachable peer.
        let config = self.shared.config.clone();
        openraft::network::Backoff::new((0u32..).map(move |attempt| {
            config
                .reconnect_backoff_min
                .saturating_mul(1 << attempt.min(16))
                .min(config.reconnect_backoff_max)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::ConnectFuture;

    struct RefusingTransport;

    impl Transport for RefusingTransport {
        fn connect(&self, _endpoint: Endpoint) -> ConnectFuture {
            panic!("no connection may be attempted");
        }
    }

    #[tokio::test]
    async fn a_node_never_connects_to_itself() {
        let address = "127.0.0.1:7101".to_owned();
        let mut factory = NetworkFactory::new(
            1,
            0,
            address.clone(),
            ClusterId::fixed("cluster"),
            NetworkConfig::default(),
            Arc::new(RefusingTransport),
        );
        let own_info = NodeInfo {
            raft_addr: address.clone(),
            ..NodeInfo::default()
        };
        let other_id_same_address = NodeInfo {
            raft_addr: address,
            ..NodeInfo::default()
        };
        for (target, info) in [(1, own_info), (2, other_id_same_address)] {
            let mut connection = factory.new_client(target, &info).await;
            let request = VoteRequest::new(openraft::Vote::new(1, 1), None);
            let option = RPCOption::new(Duration::from_millis(100));
            let error = connection.vote(request, option).await.unwrap_err();
            assert!(matches!(error, RPCError::Unreachable(_)), "{error}");
        }
    }

    /// A peer whose first AppendEntries never answers (a stalled connection); later calls
    /// answer at once.
    struct StallingPeer {
        calls: std::sync::atomic::AtomicU32,
    }

    #[tonic::async_trait]
    impl holdfast_proto::raft::raft_service_server::RaftService for StallingPeer {
        async fn append_entries(
            &self,
            _: tonic::Request<RaftRequest>,
        ) -> Result<tonic::Response<RaftReply>, tonic::Status> {
            if self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                std::future::pending::<()>().await;
            }
            Err(tonic::Status::unavailable("answered"))
        }
        async fn vote(
            &self,
            _: tonic::Request<RaftRequest>,
        ) -> Result<tonic::Response<RaftReply>, tonic::Status> {
            Err(tonic::Status::unavailable("answered"))
        }
        async fn install_snapshot(
            &self,
            _: tonic::Request<RaftRequest>,
        ) -> Result<tonic::Response<RaftReply>, tonic::Status> {
            Err(tonic::Status::unavailable("answered"))
        }
    }

    /// TCP, counting the connections it opens.
    #[derive(Default)]
    struct CountingTransport {
        connects: Arc<std::sync::atomic::AtomicU32>,
    }

    impl Transport for CountingTransport {
        fn connect(&self, endpoint: Endpoint) -> ConnectFuture {
            self.connects
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move { endpoint.connect().await })
        }
    }

    #[tokio::test]
    async fn a_stalled_rpc_ends_at_its_deadline_and_the_connection_is_rebuilt() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let peer = StallingPeer {
            calls: std::sync::atomic::AtomicU32::new(0),
        };
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(
                    holdfast_proto::raft::raft_service_server::RaftServiceServer::new(peer),
                )
                .serve_with_incoming(incoming),
        );
        let transport = CountingTransport::default();
        let connects = Arc::clone(&transport.connects);
        let config = NetworkConfig {
            rpc_deadline_max: Duration::from_millis(300),
            ..NetworkConfig::default()
        };
        let mut factory = NetworkFactory::new(
            1,
            0,
            "127.0.0.1:7101".into(),
            ClusterId::fixed("cluster"),
            config,
            Arc::new(transport),
        );
        let info = NodeInfo {
            raft_addr: address,
            ..NodeInfo::default()
        };
        let mut connection = factory.new_client(2, &info).await;

        // The stalled call asks for 60 s and ends with a timeout at the cap, 300 ms (the
        // test's outer bound only guards against hanging); its connection is dropped.
        let stalled = tokio::time::timeout(
            Duration::from_secs(30),
            connection.call(RpcKind::AppendEntries, Vec::new(), Duration::from_secs(60)),
        )
        .await
        .expect("the RPC deadline ends the call");
        // Whichever fires first at the cap: the local deadline or the channel's own
        // timeout (also set to the cap, and answered as a cancelled status).
        let ended_at_deadline = match &stalled {
            Err(CallError::Timeout(deadline)) => *deadline == Duration::from_millis(300),
            Err(CallError::Status(status)) => matches!(
                status.code(),
                tonic::Code::Cancelled | tonic::Code::DeadlineExceeded
            ),
            _ => false,
        };
        assert!(ended_at_deadline, "{stalled:?}");
        assert!(
            connection.client.is_none(),
            "a stalled connection is not kept"
        );

        // The next call opens a new connection and reaches the peer.
        let next = connection
            .call(RpcKind::AppendEntries, Vec::new(), Duration::from_secs(5))
            .await;
        assert!(
            matches!(next, Err(CallError::Status(ref status)) if status.message() == "answered"),
            "{next:?}"
        );
        assert_eq!(connects.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn reconnects_back_off() {
        let mut factory = NetworkFactory::new(
            1,
            0,
            "127.0.0.1:7101".into(),
            ClusterId::fixed("cluster"),
            NetworkConfig::default(),
            Arc::new(crate::transport::TcpTransport),
        );
        // Port 1 on loopback refuses connections.
        let info = NodeInfo {
            raft_addr: "127.0.0.1:1".into(),
            ..NodeInfo::default()
        };
        let mut connection = factory.new_client(2, &info).await;
        let Err(first) = connection.client().await else {
            panic!("connection to a closed port succeeded");
        };
        assert!(matches!(first, CallError::Connect { .. }), "{first}");
        let Err(second) = connection.client().await else {
            panic!("reconnected without backing off");
        };
        assert!(matches!(second, CallError::BackingOff(_)), "{second}");
    }
}
