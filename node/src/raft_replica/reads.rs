//! Reads: linearizable reads by read index, and the staleness check of `bounded` reads.
//!
//! The leader confirms its leadership with a quorum ([`Inner::leader_read_index`], shared by
//! concurrent reads); a follower asks the leader for the read index over the peer service;
//! either then waits, bounded, until it has applied that index.

use super::*;

impl Inner {
    /// The read index for linearizable reads, confirmed with a quorum. Concurrent reads
    /// share confirmations: a read waits for the running one to finish and then uses the
    /// next one that started after it arrived (never one that started before: that one
    /// may predate a write the read must see), so a burst of reads costs one quorum round
    /// trip instead of one each. A failed confirmation is shared the same way.
    pub(super) async fn leader_read_index(&self) -> Result<u64, NodeError> {
        let arrived = Instant::now();
        let mut last = self.read_confirmation.lock().await;
        if let Some((started, answer)) = &*last {
            if *started >= arrived {
                return answer.clone();
            }
        }
        let started = Instant::now();
        let answer = self.confirm_read_index().await;
        *last = Some((started, answer.clone()));
        answer
    }

    async fn confirm_read_index(&self) -> Result<u64, NodeError> {
        // A confirmation would renew the followers' lease on a leader handing over: wait
        // (bounded) for the handover, and refuse rather than confirm during one.
        self.handover_finished().await;
        if self.handing_over() {
            return Err(NodeError::NoLeader);
        }
        if !self.is_leader() {
            return Err(NodeError::NoLeader);
        }
        let read_log_id = self.node.ensure_linearizable().await.map_err(raft_error)?;
        let applied = self.node.state().applied_index();
        Ok(read_log_id.map_or(applied, |log_id| log_id.index.max(applied)))
    }

    pub(super) async fn linearizable(&self) -> Result<(), NodeError> {
        let deadline = self.config.linearizable_timeout;
        self.handover_finished().await;
        if self.handing_over() {
            return Err(NodeError::NoQuorum {
                message: "this leader is handing its leadership over".into(),
            });
        }
        let read_index = if self.is_leader() {
            self.leader_read_index().await?
        } else {
            let mut client = self
                .leader_client(None)
                .await
                .map_err(|_| NodeError::NoQuorum {
                    message: "no leader is reachable to confirm the read".into(),
                })?;
            let mut request = tonic::Request::new(ReadIndexRequest {});
            request.set_timeout(deadline);
            let response = match client.read_index(request).await {
                Ok(response) => response.into_inner(),
                Err(status) => {
                    self.forget_leader_client();
                    return Err(NodeError::NoQuorum {
                        message: format!(
                            "the leader did not confirm the read: {}",
                            status.message()
                        ),
                    });
                }
            };
            if let Some(error) = response.error {
                return Err(NodeError::NoQuorum {
                    message: error.message,
                });
            }
            self.contact.touch();
            response.read_index
        };
        if !self
            .node
            .wait_applied(read_index, deadline)
            .await
            .map_err(raft_error)?
        {
            return Err(NodeError::NoQuorum {
                message: format!(
                    "this node did not apply the read index {read_index} within {deadline:?}"
                ),
            });
        }
        Ok(())
    }

    pub(super) fn heard_from_leader_within(&self, max_staleness_ms: u64) -> bool {
        if self.is_leader() {
            let metrics = self.node.metrics();
            let quorum_ack = metrics.borrow().millis_since_quorum_ack;
            return quorum_ack.is_some_and(|age| age <= max_staleness_ms);
        }
        self.leader_id().is_some()
            && self
                .contact
                .age_ms()
                .is_some_and(|age| age <= max_staleness_ms)
    }
}
