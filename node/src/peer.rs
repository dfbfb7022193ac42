//! The node-to-node gRPC listener: the Raft RPCs of `holdfast-raft` plus the peer side of
//! the booking service that followers use to forward writes, linearizable reads and
//! cluster operations to the leader.
//!
//! **Invariant:** this listener is for cluster members only; it accepts raw state machine
//! commands (a confirm with its payment record), so it must never be exposed where clients
//! can reach it. Clients use the HTTP API.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::task::{Context, Poll};

use holdfast_proto::booking::peer_service_server::{PeerService as PeerRpc, PeerServiceServer};
use holdfast_proto::booking::*;
use holdfast_proto::PROPOSE_WIRE_FORMAT_VERSION;
use holdfast_raft::RaftNode;
use tonic::{Request, Response, Status};

use crate::raft_replica::{decode, encode_outcome, LeaderContact, RaftReplica};
use crate::replica::{ClusterStatus, MemberSpec, NodeError, Proposal, Replica};

/// The peer booking service of one node.
#[derive(Clone)]
pub struct PeerService {
    replica: RaftReplica,
}

impl PeerService {
    pub fn new(replica: RaftReplica) -> PeerService {
        PeerService { replica }
    }
}

pub(crate) fn member_to_proto(member: &MemberSpec) -> Member {
    Member {
        id: member.id,
        raft_addr: member.raft_addr.clone(),
        http_addr: member.http_addr.clone(),
        region: member.region.clone(),
        voter: false,
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
            NodeError::NoLeader | NodeError::Overloaded { .. } | NodeError::NoQuorum { .. }
        )
        .then_some(1),
    }
}

fn status_to_proto(status: ClusterStatus) -> ClusterStatusResponse {
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
            })
            .collect(),
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
        _: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexResponse>, Status> {
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
        _: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        Ok(Response::new(status_to_proto(self.replica.status())))
    }

    async fn init_cluster(
        &self,
        request: Request<InitRequest>,
    ) -> Result<Response<ClusterChangeResponse>, Status> {
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
        let voters: BTreeSet<u64> = request.into_inner().voters.into_iter().collect();
        let result = self.replica.leader_change_membership(voters).await;
        Ok(Response::new(self.change_response(result)))
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<ClusterChangeResponse>, Status> {
        let result = self
            .replica
            .leader_remove_node(request.into_inner().id)
            .await;
        Ok(Response::new(self.change_response(result)))
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

/// Serves the Raft RPCs and the peer booking service on `incoming` until `shutdown`.
pub async fn serve_peers<Incoming, Io, IoError>(
    node: &RaftNode,
    replica: RaftReplica,
    contact: Arc<LeaderContact>,
    message_bytes_max: usize,
    incoming: Incoming,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error>
where
    Incoming: futures::Stream<Item = Result<Io, IoError>> + Send + 'static,
    Io: PeerConnection,
    IoError: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let peer = PeerServiceServer::new(PeerService::new(replica))
        .max_decoding_message_size(message_bytes_max)
        .max_encoding_message_size(message_bytes_max);
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(5)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(5)))
        .max_concurrent_streams(Some(256))
        .tcp_nodelay(true)
        .layer(ContactLayer::new(contact))
        .add_service(node.grpc_service())
        .add_service(peer)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
