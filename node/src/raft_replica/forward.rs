//! Forwarding: a follower's groups of writes to the leader, and the leader's side of them.
//!
//! A follower sends a group to the leader's peer gRPC service (`Propose`) over one cached
//! HTTP/2 connection ([`Inner::leader_client`]), at most
//! [`RaftReplicaConfig::forwards_in_flight_max`] groups at once, and with one out, another
//! only once [`RaftReplicaConfig::forward_overlap_commands`] commands wait (Nagle's rule,
//! in the batcher), and answers its callers once
//! it has applied the entry itself (read-your-writes on the follower). A forward that was
//! sent and then lost its leader answers `OUTCOME_UNKNOWN` at once. The leader
//! ([`RaftReplica::commit_forwarded`]) puts forwarded groups into its own queue, so they
//! share its entries, and never forwards them again.

use super::*;

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

/// Shortest time between two early commit notices to the followers (see
/// [`RaftReplica::commit_forwarded`]).
const COMMIT_NUDGE_EVERY_MS: u64 = 2;

impl RaftReplica {
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
}

impl Inner {
    /// A gRPC client to the peer service of leader `expected` (the current leader when
    /// `None`), cached until it fails.
    pub(super) async fn leader_client(
        &self,
        expected: Option<NodeId>,
    ) -> Result<PeerClient, NodeError> {
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
    pub(super) fn peer_envelope(&self, to: NodeId) -> PeerEnvelope {
        PeerEnvelope::new(&self.node.cluster_id(), self.node_id(), to)
    }

    pub(super) fn forget_leader_client(&self) {
        *self
            .leader_client
            .lock()
            .expect("leader client lock poisoned") = None;
    }

    /// Sends a batch to leader `leader_id` and waits (bounded) until this node applied it.
    /// Not connected: `NO_LEADER` (nothing was sent). Sent, and the leader changed or fell
    /// silent before it answered: `OUTCOME_UNKNOWN` at once, not after the deadline.
    pub(super) async fn forward(
        &self,
        leader_id: NodeId,
        proposals: &[Proposal],
        out: Option<super::batcher::ForwardOut>,
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
        crate::metrics::count_forward(proposals.len());
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
        // Answered (or failed): the batcher may send the next group while this one waits
        // to be applied here.
        drop(out);
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
}
