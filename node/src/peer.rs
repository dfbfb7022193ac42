//! The node-to-node gRPC listener: the Raft RPCs of `holdfast-raft` plus the peer side of
//! the booking service that followers use to forward writes, linearizable reads and
//! cluster operations to the leader.
//!
//! **Invariant:** this listener is for cluster members only; it accepts raw state machine
//! commands (a confirm with its payment record), so it must never be exposed where clients
//! can reach it. Clients use the HTTP API. With peer TLS on (`--peer-ca`, `--peer-cert`,
//! `--peer-key`) it accepts only connections whose client certificate comes from the
//! cluster CA, and every call must carry the peer envelope (cluster id, sender, addressee
//! as gRPC metadata, [`PeerEnvelope`]) that matches this node and the sender's certificate;
//! forwarded writes, reads and cluster calls are taken only from members.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::task::{Context, Poll};

use holdfast_proto::booking::peer_service_client::PeerServiceClient;
use holdfast_proto::booking::peer_service_server::{PeerService as PeerRpc, PeerServiceServer};
use holdfast_proto::booking::*;
use holdfast_proto::PROPOSE_WIRE_FORMAT_VERSION;
use holdfast_raft::tls::check_peer_identity;
use holdfast_raft::{PeerTls, RaftNode};
use tonic::metadata::{AsciiMetadataValue, BinaryMetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::raft_replica::{decode, encode_outcome, LeaderContact, RaftReplica};
use crate::replica::{ClusterStatus, MemberSpec, NodeError, Proposal, Replica, WallClock};

/// gRPC metadata of the peer envelope: the sender's cluster id (binary, any bytes).
const CLUSTER_ID_KEY: &str = "holdfast-cluster-id-bin";
/// gRPC metadata of the peer envelope: the sender's node id.
const FROM_NODE_KEY: &str = "holdfast-from-node";
/// gRPC metadata of the peer envelope: the node id the sender meant to reach.
const TO_NODE_KEY: &str = "holdfast-to-node";

/// The envelope every `PeerService` call carries as gRPC metadata, the counterpart of the
/// `RaftRequest` envelope of the Raft RPCs: cluster id, sender and addressee. An
/// interceptor of every peer client adds it.
#[derive(Clone)]
pub struct PeerEnvelope {
    cluster_id: BinaryMetadataValue,
    from: AsciiMetadataValue,
    to: AsciiMetadataValue,
}

impl PeerEnvelope {
    /// The envelope of calls from node `from` of `cluster_id` to node `to`.
    pub fn new(cluster_id: &str, from: u64, to: u64) -> PeerEnvelope {
        PeerEnvelope {
            cluster_id: BinaryMetadataValue::from_bytes(cluster_id.as_bytes()),
            from: AsciiMetadataValue::from(from),
            to: AsciiMetadataValue::from(to),
        }
    }
}

impl tonic::service::Interceptor for PeerEnvelope {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let metadata = request.metadata_mut();
        metadata.insert_bin(CLUSTER_ID_KEY, self.cluster_id.clone());
        metadata.insert(FROM_NODE_KEY, self.from.clone());
        metadata.insert(TO_NODE_KEY, self.to.clone());
        Ok(request)
    }
}

/// A client of another node's peer service: every call carries the [`PeerEnvelope`].
pub type PeerClient = PeerServiceClient<InterceptedService<Channel, PeerEnvelope>>;

/// A peer client over `channel` with the envelope and explicit message limits.
pub fn peer_client(
    channel: Channel,
    envelope: PeerEnvelope,
    message_bytes_max: usize,
) -> PeerClient {
    PeerServiceClient::with_interceptor(channel, envelope)
        .max_decoding_message_size(message_bytes_max)
        .max_encoding_message_size(message_bytes_max)
}

/// The peer booking service of one node.
#[derive(Clone)]
pub struct PeerService {
    replica: RaftReplica,
    /// Served over mutual TLS: a call must come over a connection whose client
    /// certificate names its sender.
    tls_required: bool,
}

impl PeerService {
    /// The peer service over `replica`; `tls_required` when its listener runs mutual TLS.
    pub fn new(replica: RaftReplica, tls_required: bool) -> PeerService {
        PeerService {
            replica,
            tls_required,
        }
    }

    /// Checks a call's envelope: the cluster is this one, the addressee is this node, and
    /// the sender is the node its certificate names. Answers the sender's id. A refusal is
    /// counted and logged (see [`refused`]).
    #[allow(clippy::result_large_err)]
    fn open<T>(&self, request: &Request<T>) -> Result<u64, Status> {
        self.check_envelope(request, false)
            .inspect_err(|status| refused(request, status))
    }

    /// [`PeerService::open`] that also takes a caller that belongs to no cluster yet (its
    /// envelope names none): such a node asks whether the listed members form a cluster,
    /// and asks to join one, before it has a cluster id. On a node of no cluster yet, only
    /// these calls are answered, from anyone.
    #[allow(clippy::result_large_err)]
    fn open_from_any_new_node<T>(&self, request: &Request<T>) -> Result<u64, Status> {
        self.check_envelope(request, true)
            .inspect_err(|status| refused(request, status))
    }

    #[allow(clippy::result_large_err)]
    fn check_envelope<T>(&self, request: &Request<T>, new_caller: bool) -> Result<u64, Status> {
        let metadata = request.metadata();
        let node = self.replica.node();
        let theirs = metadata
            .get_bin(CLUSTER_ID_KEY)
            .and_then(|value| value.to_bytes().ok())
            .unwrap_or_default();
        let ours = node.cluster().get();
        // A node of a cluster answers its own cluster. The status probe and the join
        // request also take a caller of no cluster yet (a fresh node asking), and a node of
        // no cluster yet answers the probe from anyone (a leader about to add it); nothing
        // else reaches a node that belongs to no cluster.
        let accepted = match ours.as_deref() {
            Some(ours) => *theirs == *ours.as_bytes() || (new_caller && theirs.is_empty()),
            None => new_caller,
        };
        if !accepted {
            return Err(Status::failed_precondition(format!(
                "CLUSTER_MISMATCH: the request is not for cluster {:?}",
                ours.as_deref().unwrap_or_default()
            )));
        }
        let node_id = |key: &str| {
            metadata
                .get(key)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse::<u64>().ok())
        };
        let Some(from) = node_id(FROM_NODE_KEY) else {
            return Err(Status::invalid_argument(
                "PEER_ENVELOPE_MISSING: the request names no sender node",
            ));
        };
        if node_id(TO_NODE_KEY) != Some(node.node_id()) {
            return Err(Status::failed_precondition(format!(
                "NODE_MISMATCH: the request is not for node {}",
                node.node_id()
            )));
        }
        check_peer_identity(request, from, self.tls_required)?;
        Ok(from)
    }

    /// [`PeerService::open`], and the sender must be a member (voter or learner) of this
    /// cluster: only members forward writes, reads and cluster changes.
    #[allow(clippy::result_large_err)]
    fn open_from_member<T>(&self, request: &Request<T>) -> Result<u64, Status> {
        let from = self.open(request)?;
        let metrics = self.replica.node().metrics();
        let is_member = metrics
            .borrow()
            .membership_config
            .membership()
            .get_node(&from)
            .is_some();
        if !is_member {
            let status = Status::permission_denied(format!(
                "NOT_A_MEMBER: node {from} is not a member of this cluster"
            ));
            refused(request, &status);
            return Err(status);
        }
        Ok(from)
    }
}

/// When a refused peer call was last logged (Unix ms): at most one line every few seconds,
/// however many calls a misconfigured or hostile peer makes.
static LAST_REFUSAL_LOGGED_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
const REFUSAL_LOG_EVERY_MS: u64 = 5_000;

/// Counts a refused peer call in `holdfast_peer_refusals_total{reason}` (the code that
/// opens the status's message, e.g. `CLUSTER_MISMATCH`) and logs it, rate limited, with
/// the caller's address: an operator sees a peer of another cluster, a stale member or a
/// probe at the peer port.
fn refused<T>(request: &Request<T>, status: &Status) {
    refused_from(request.remote_addr(), status);
}

/// [`refused`] by the caller's address: also told of refused Raft RPCs.
pub(crate) fn refused_from(remote: Option<std::net::SocketAddr>, status: &Status) {
    let code = status.message().split(':').next().unwrap_or_default();
    let reason = if !code.is_empty()
        && code.len() <= 40
        && code
            .bytes()
            .all(|byte| byte.is_ascii_uppercase() || byte == b'_')
    {
        code.to_owned()
    } else {
        "OTHER".to_owned()
    };
    metrics::counter!("holdfast_peer_refusals_total", "reason" => reason.clone()).increment(1);
    let now = crate::replica::wall_clock_ms();
    let last = LAST_REFUSAL_LOGGED_MS.load(std::sync::atomic::Ordering::Relaxed);
    if now.saturating_sub(last) >= REFUSAL_LOG_EVERY_MS
        && LAST_REFUSAL_LOGGED_MS
            .compare_exchange(
                last,
                now,
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
            )
            .is_ok()
    {
        tracing::warn!(
            ?remote,
            reason,
            message = status.message(),
            "a peer call was refused (more in holdfast_peer_refusals_total)"
        );
    }
}

pub(crate) fn member_to_proto(member: &MemberSpec) -> Member {
    Member {
        id: member.id,
        raft_addr: member.raft_addr.clone(),
        http_addr: member.http_addr.clone(),
        region: member.region.clone(),
        voter: false,
        lag: None,
        last_contact_ms: None,
        incarnation: String::new(),
    }
}

fn member_from_proto(member: Member) -> MemberSpec {
    MemberSpec {
        id: member.id,
        raft_addr: member.raft_addr,
        http_addr: member.http_addr,
        region: member.region,
    }
}

fn error_to_proto(error: &NodeError) -> Error {
    Error {
        code: error.code().to_string(),
        message: error.to_string(),
        details_json: String::new(),
        retry_after_seconds: matches!(
            error,
            NodeError::NoLeader
                | NodeError::Overloaded { .. }
                | NodeError::NoQuorum { .. }
                | NodeError::OutcomeUnknown { .. }
        )
        .then_some(1),
    }
}

/// A cluster status as its message (the peer service's and `ClusterService`'s): an
/// incarnation or cluster id not known is empty.
pub(crate) fn status_to_proto(status: ClusterStatus) -> ClusterStatusResponse {
    ClusterStatusResponse {
        node_id: status.node_id,
        leader_id: status.leader_id,
        term: status.term,
        role: status.role.as_str().to_string(),
        applied_index: status.applied_index,
        committed_index: status.committed_index,
        members: status
            .members
            .into_iter()
            .map(|member| Member {
                id: member.id,
                raft_addr: member.raft_addr,
                http_addr: member.http_addr,
                region: member.region,
                voter: member.voter,
                lag: member.lag,
                last_contact_ms: member.last_contact_ms,
                incarnation: crate::wire::incarnation_json(member.incarnation).unwrap_or_default(),
            })
            .collect(),
        placement_warning: status.placement_warning,
        incarnation: crate::wire::incarnation_json(status.incarnation).unwrap_or_default(),
        cluster_id: status.cluster_id.unwrap_or_default(),
    }
}

/// Turns the leader's answer to a forwarded cluster operation into the caller's result.
pub(crate) fn cluster_change_answer(
    answer: Result<Response<ClusterChangeResponse>, Status>,
) -> Result<(), NodeError> {
    match answer {
        Ok(response) => match response.into_inner().error {
            None => Ok(()),
            Some(error) => Err(NodeError::from_code(&error.code, error.message)),
        },
        Err(status) => Err(NodeError::Internal {
            message: format!("forwarding to the leader failed: {status}"),
        }),
    }
}

#[tonic::async_trait]
impl PeerRpc for PeerService {
    async fn propose(
        &self,
        request: Request<ProposeRequest>,
    ) -> Result<Response<ProposeResponse>, Status> {
        self.open_from_member(&request)?;
        let request = request.into_inner();
        if request.format_version != PROPOSE_WIRE_FORMAT_VERSION {
            return Err(Status::failed_precondition(format!(
                "UNSUPPORTED_FORMAT: propose format version {}; this node reads {PROPOSE_WIRE_FORMAT_VERSION}",
                request.format_version
            )));
        }
        let mut proposals = Vec::with_capacity(request.commands.len());
        for command in request.commands {
            let decoded = decode(&command.command)
                .map_err(|error| Status::invalid_argument(error.to_string()))?;
            proposals.push(Proposal {
                request_id: command.request_id,
                command: decoded,
            });
        }
        let answer = match self.replica.commit_forwarded(proposals).await {
            Ok((log_index, outcomes)) => ProposeResponse {
                header: None,
                log_index,
                outcomes: outcomes.iter().map(encode_outcome).collect(),
                error: None,
            },
            Err(error) => ProposeResponse {
                header: None,
                log_index: 0,
                outcomes: Vec::new(),
                error: Some(error_to_proto(&error)),
            },
        };
        Ok(Response::new(answer))
    }

    async fn read_index(
        &self,
        request: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexResponse>, Status> {
        self.open_from_member(&request)?;
        let answer = match self.replica.read_index().await {
            Ok(read_index) => ReadIndexResponse {
                header: None,
                read_index,
                error: None,
            },
            Err(error) => ReadIndexResponse {
                header: None,
                read_index: 0,
                error: Some(error_to_proto(&error)),
            },
        };
        Ok(Response::new(answer))
    }

    async fn cluster_status(
        &self,
        request: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        self.open_from_any_new_node(&request)?;
        Ok(Response::new(status_to_proto(self.replica.status())))
    }

    async fn init_cluster(
        &self,
        request: Request<InitRequest>,
    ) -> Result<Response<ClusterChangeResponse>, Status> {
        self.open(&request)?;
        let members = request
            .into_inner()
            .members
            .into_iter()
            .map(member_from_proto)
            .collect();
        let result = self.replica.initialize(members).await;
        Ok(Response::new(self.change_response(result)))
    }

    async fn add_learner(
        &self,
        request: Request<AddLearnerRequest>,
    ) -> Result<Response<ClusterChangeResponse>, Status> {
        self.open_from_member(&request)?;
        let learner = request
            .into_inner()
            .learner
            .ok_or_else(|| Status::invalid_argument("learner is required"))?;
        let result = self
            .replica
            .leader_add_learner(member_from_proto(learner))
            .await;
        Ok(Response::new(self.change_response(result)))
    }

    async fn change_membership(
        &self,
        request: Request<ChangeMembershipRequest>,
    ) -> Result<Response<ClusterChangeResponse>, Status> {
        self.open_from_member(&request)?;
        let voters: BTreeSet<u64> = request.into_inner().voters.into_iter().collect();
        let result = self.replica.leader_change_membership(voters).await;
        Ok(Response::new(self.change_response(result)))
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<ClusterChangeResponse>, Status> {
        self.open_from_member(&request)?;
        let result = self
            .replica
            .leader_remove_node(request.into_inner().id)
            .await;
        Ok(Response::new(self.change_response(result)))
    }

    async fn transfer_leader(
        &self,
        request: Request<TransferLeaderRequest>,
    ) -> Result<Response<ClusterChangeResponse>, Status> {
        self.open_from_member(&request)?;
        let to = request.into_inner().node_id;
        let result = self.replica.leader_transfer(to).await;
        Ok(Response::new(self.change_response(result)))
    }

    async fn join(
        &self,
        request: Request<JoinRequest>,
    ) -> Result<Response<ClusterChangeResponse>, Status> {
        let from = self.open_from_any_new_node(&request)?;
        let message = request.into_inner();
        let learner = message
            .learner
            .ok_or_else(|| Status::invalid_argument("learner is required"))?;
        if learner.id != from {
            return Err(Status::permission_denied(format!(
                "JOIN_REFUSED: node {from} may join only as itself, not as node {}",
                learner.id
            )));
        }
        let result = self
            .replica
            .join(member_from_proto(learner), message.voter)
            .await;
        Ok(Response::new(self.change_response(result)))
    }

    async fn clock(
        &self,
        request: Request<ClockRequest>,
    ) -> Result<Response<ClockResponse>, Status> {
        self.open_from_member(&request)?;
        Ok(Response::new(ClockResponse {
            wall_ms: self.replica.wall_ms(),
        }))
    }

    async fn elect(
        &self,
        request: Request<ElectRequest>,
    ) -> Result<Response<ClusterChangeResponse>, Status> {
        self.open_from_member(&request)?;
        let last_log_index = request.into_inner().last_log_index;
        let result = self.replica.elect_on_request(last_log_index).await;
        Ok(Response::new(self.change_response(result)))
    }

    async fn hold_elections(
        &self,
        request: Request<HoldElectionsRequest>,
    ) -> Result<Response<HoldElectionsResponse>, Status> {
        self.open_from_member(&request)?;
        let hold_ms = request.into_inner().hold_ms;
        self.replica
            .hold_elections(std::time::Duration::from_millis(hold_ms));
        Ok(Response::new(HoldElectionsResponse {}))
    }
}

impl PeerService {
    fn change_response(&self, result: Result<(), NodeError>) -> ClusterChangeResponse {
        ClusterChangeResponse {
            status: Some(status_to_proto(self.replica.status())),
            error: result.err().map(|error| error_to_proto(&error)),
        }
    }
}

/// A tower layer that records leader contact whenever an AppendEntries request arrives, for
/// `bounded` reads on followers.
#[derive(Clone)]
pub struct ContactLayer {
    contact: Arc<LeaderContact>,
}

impl ContactLayer {
    /// A layer that touches `contact`, the record the replica's `bounded` reads consult.
    pub fn new(contact: Arc<LeaderContact>) -> ContactLayer {
        ContactLayer { contact }
    }
}

impl<S> tower::Layer<S> for ContactLayer {
    type Service = ContactService<S>;

    fn layer(&self, inner: S) -> ContactService<S> {
        ContactService {
            inner,
            contact: self.contact.clone(),
        }
    }
}

/// The service [`ContactLayer`] wraps around `S`: it passes every request through
/// unchanged, and first records leader contact when the request's path ends in
/// `/AppendEntries` (heartbeats included), whatever the call then answers.
#[derive(Clone)]
pub struct ContactService<S> {
    inner: S,
    contact: Arc<LeaderContact>,
}

impl<S, Body> tower::Service<http::Request<Body>> for ContactService<S>
where
    S: tower::Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path().ends_with("/AppendEntries") {
            self.contact.touch();
        }
        self.inner.call(request)
    }
}

/// `response` with its `Date` header set from the node's wall clock ([`WallClock`]),
/// before hyper would set it from the operating system's. The same time in production; in
/// a simulation the host's simulated clock, so that the bytes a node sends do not depend
/// on when the run happens. (An HTTP/2 date is Huffman-coded, so its length varies with
/// the time; a different length can split a stream into a different number of writes, and
/// each write is a message whose latency the simulation draws from its seeded generator:
/// one more write changed every later draw, and the run.)
fn dated<Body>(clock: &dyn WallClock, mut response: http::Response<Body>) -> http::Response<Body> {
    let now = std::time::UNIX_EPOCH + std::time::Duration::from_millis(clock.now_ms());
    if let Ok(date) = http::HeaderValue::from_str(&httpdate::fmt_http_date(now)) {
        response.headers_mut().insert(http::header::DATE, date);
    }
    response
}

/// A socket the peer listener can serve: what tonic's server needs of a connection. TCP
/// in production (through the fault switch), turmoil's TCP in the simulations.
pub trait PeerConnection:
    tokio::io::AsyncRead
    + tokio::io::AsyncWrite
    + tonic::transport::server::Connected
    + Unpin
    + Send
    + 'static
{
}

impl<T> PeerConnection for T where
    T: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static
{
}

/// Serves the Raft RPCs and the peer booking service on `incoming` until `shutdown`, with
/// mutual TLS when the node has peer TLS ([`RaftNode::peer_tls`]).
pub async fn serve_peers<Incoming, Io, IoError>(
    node: &RaftNode,
    replica: RaftReplica,
    contact: Arc<LeaderContact>,
    clock: Arc<dyn WallClock>,
    message_bytes_max: usize,
    incoming: Incoming,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error>
where
    Incoming: futures::Stream<Item = Result<Io, IoError>> + Send + 'static,
    Io: PeerConnection,
    IoError: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tls: Option<&PeerTls> = node.peer_tls();
    let peer = PeerServiceServer::new(PeerService::new(replica, tls.is_some()))
        .max_decoding_message_size(message_bytes_max)
        .max_encoding_message_size(message_bytes_max);
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls.server_config())?;
    }
    builder
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(5)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(5)))
        .max_concurrent_streams(Some(256))
        .tcp_nodelay(true)
        .layer(ContactLayer::new(contact))
        .layer(tower::util::MapResponseLayer::new(
            move |response: http::Response<tonic::body::Body>| dated(&*clock, response),
        ))
        .add_service(node.grpc_service_observed(std::sync::Arc::new(refused_from)))
        .add_service(peer)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct FixedClock(u64);

    impl WallClock for FixedClock {
        fn now_ms(&self) -> u64 {
            self.0
        }
    }

    #[test]
    fn peer_answers_are_dated_by_the_nodes_clock() {
        // 2026-01-01T00:00:00.750Z: what a simulation's host reads, not the machine's time.
        let clock = FixedClock(1_767_225_600_750);
        let response = dated(&clock, http::Response::new(()));
        assert_eq!(
            response.headers().get(http::header::DATE).unwrap(),
            "Thu, 01 Jan 2026 00:00:00 GMT"
        );
    }
}
