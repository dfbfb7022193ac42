//! Membership on the leader: adding learners (probed first, their incarnation recorded),
//! changing the voters (keeping a majority of the current ones), removing nodes, and the
//! peer probes these use. See `Replica::add_learner` and the cluster routes.

use super::*;

impl Inner {
    pub(super) fn retired(&self, node_id: NodeId) -> bool {
        self.node
            .read_stale(|state| state.machine.is_node_retired(node_id))
    }

    pub(super) async fn leader_add_learner(&self, member: MemberSpec) -> Result<(), NodeError> {
        if !self.is_leader() {
            return Err(NodeError::NoLeader);
        }
        self.refuse_during_handover()?;
        if self.retired(member.id) {
            return Err(NodeError::MembershipRefused {
                message: format!(
                    "node id {} was removed before; ids are never reused",
                    member.id
                ),
            });
        }
        let membership = self.node.metrics().borrow().membership_config.clone();
        let members = membership.membership().nodes().count();
        let known = membership.membership().get_node(&member.id).is_some();
        if !known && members >= crate::cluster::CLUSTER_MEMBERS_MAX {
            return Err(NodeError::MembershipRefused {
                message: format!(
                    "the cluster has {members} members, the most it takes: remove one first"
                ),
            });
        }
        let incarnation = self.probe_new_member(&member).await?;
        if let Some(existing) = membership.membership().get_node(&member.id) {
            if existing.raft_addr != member.raft_addr {
                return Err(NodeError::MembershipRefused {
                    message: format!(
                        "node {} is already a member at {}",
                        member.id, existing.raft_addr
                    ),
                });
            }
            if existing.incarnation != 0 && existing.incarnation != incarnation {
                return Err(NodeError::MembershipRefused {
                    message: format!(
                        "node {id} is a member with data directory incarnation {:016x}, but the \
                         node answering at {} is incarnation {incarnation:016x}: its data \
                         directory was wiped or replaced, and it has forgotten its votes and \
                         log. Remove node {id} and add this node under a new id",
                        existing.incarnation,
                        member.raft_addr,
                        id = member.id,
                    ),
                });
            }
        }
        let info = NodeInfo {
            raft_addr: member.raft_addr,
            http_addr: member.http_addr,
            region: member.region,
            incarnation,
        };
        let learner = member.id;
        let caught_up = async {
            let log_id = self
                .node
                .add_learner(learner, info, true)
                .await
                .map_err(raft_error)?;
            // openraft answers once the membership entry is committed; the learner has
            // caught up when the leader has replicated to it everything up to that entry
            // (by snapshot install when the log behind it is purged).
            let mut metrics = self.node.metrics();
            loop {
                let matched = metrics
                    .borrow_and_update()
                    .replication
                    .as_ref()
                    .and_then(|replication| replication.get(&learner).copied().flatten())
                    .map_or(0, |matched| matched.index);
                if matched >= log_id.index {
                    return Ok(());
                }
                if metrics.changed().await.is_err() {
                    return Err(NodeError::NotReady {
                        message: "raft stopped while the learner caught up".into(),
                    });
                }
            }
        };
        match tokio::time::timeout(self.config.learner_catch_up_timeout, caught_up).await {
            Ok(result) => result,
            Err(_) => Err(NodeError::NotReady {
                message: format!(
                    "learner {} was added but did not catch up within {:?}",
                    member.id, self.config.learner_catch_up_timeout
                ),
            }),
        }
    }

    /// Voters whose replication is close to the leader's log (the leader counts itself).
    pub(super) fn healthy_voters(&self) -> BTreeSet<NodeId> {
        let metrics = self.node.metrics().borrow().clone();
        let last = metrics.last_log_index.unwrap_or(0);
        let mut healthy = BTreeSet::from([metrics.id]);
        if let Some(replication) = &metrics.replication {
            for (id, matched) in replication {
                let matched = matched.map_or(0, |log_id| log_id.index);
                if last.saturating_sub(matched) <= self.config.healthy_lag_entries_max {
                    healthy.insert(*id);
                }
            }
        }
        healthy
    }

    /// A new peer connection to member `node_id` (calls time out after `timeout`).
    pub(super) async fn member_client(
        &self,
        node_id: NodeId,
        timeout: Duration,
    ) -> Result<PeerClient, NodeError> {
        let membership = self.node.metrics().borrow().membership_config.clone();
        let info = membership
            .membership()
            .get_node(&node_id)
            .cloned()
            .ok_or(NodeError::NodeNotFound { node_id })?;
        self.client_at(node_id, &info.raft_addr, timeout).await
    }

    /// A peer client of node `node_id` at `raft_addr`, member or not (yet).
    pub(super) async fn client_at(
        &self,
        node_id: NodeId,
        raft_addr: &str,
        timeout: Duration,
    ) -> Result<PeerClient, NodeError> {
        let endpoint = peer_endpoint(self.node.peer_tls(), raft_addr, node_id, timeout)
            .map_err(|error| NodeError::Internal {
                message: error.to_string(),
            })?
            .connect_timeout(self.config.forward_connect_timeout);
        let channel =
            self.transport
                .connect(endpoint)
                .await
                .map_err(|error| NodeError::Internal {
                    message: format!("cannot reach node {node_id}: {error}"),
                })?;
        Ok(peer_client(
            channel,
            self.peer_envelope(node_id),
            self.config.message_bytes_max,
        ))
    }

    /// Refuses to add a node that does not answer at its peer address as node `member.id`
    /// of this cluster (the envelope names both, and with peer TLS its certificate must
    /// name it), or that belongs to another cluster: a learner that cannot be reached
    /// would otherwise be in the membership, unreplicated, until an operator removes it.
    /// Answers the incarnation of the node's data directory, which the membership records.
    pub(super) async fn probe_new_member(&self, member: &MemberSpec) -> Result<u64, NodeError> {
        let status = self
            .status_at(member.id, &member.raft_addr, MEMBER_PROBE_TIMEOUT)
            .await
            .map_err(|why| NodeError::MembershipRefused {
                message: format!(
                    "node {} did not answer at {} as a node of this cluster ({why}): \
                     start it first, with this cluster's id and certificates",
                    member.id, member.raft_addr
                ),
            })?;
        let ours = status
            .members
            .iter()
            .any(|other| other.id == self.node_id());
        if status.role != Role::Uninitialized.as_str() && !ours {
            return Err(NodeError::MembershipRefused {
                message: format!(
                    "node {} at {} is a member of another cluster",
                    member.id, member.raft_addr
                ),
            });
        }
        Ok(crate::wire::incarnation_from_text(&status.incarnation))
    }

    /// The incarnations of the members a new cluster starts with, as each answers within
    /// [`MEMBER_PROBE_TIMEOUT`] (this node's own without asking). A member that does not
    /// answer is recorded without one (zero: not checked), with a warning.
    pub(super) async fn initial_incarnations(
        &self,
        members: &[MemberSpec],
    ) -> BTreeMap<NodeId, u64> {
        let asks = members.iter().map(|member| async move {
            if member.id == self.node_id() {
                return (member.id, self.node.incarnation());
            }
            match self
                .status_at(member.id, &member.raft_addr, MEMBER_PROBE_TIMEOUT)
                .await
            {
                Ok(status) => (
                    member.id,
                    crate::wire::incarnation_from_text(&status.incarnation),
                ),
                Err(why) => {
                    tracing::warn!(
                        node_id = member.id,
                        address = %member.raft_addr,
                        why,
                        "a member did not answer when the cluster was initialised: its data \
                         directory's incarnation is not recorded, so a wipe of it will not be \
                         detected"
                    );
                    (member.id, 0)
                }
            }
        });
        futures::future::join_all(asks).await.into_iter().collect()
    }

    /// The cluster status node `node_id` answers at `raft_addr` (its peer service, under
    /// this cluster's envelope and, with peer TLS, a certificate naming it) within
    /// `timeout`; why not, otherwise.
    pub(super) async fn status_at(
        &self,
        node_id: NodeId,
        raft_addr: &str,
        timeout: Duration,
    ) -> Result<ClusterStatusResponse, String> {
        let ask = async {
            let mut client = self
                .client_at(node_id, raft_addr, timeout)
                .await
                .map_err(|error| error.to_string())?;
            client
                .cluster_status(ClusterStatusRequest {})
                .await
                .map(tonic::Response::into_inner)
                .map_err(|status| status.message().to_string())
        };
        tokio::time::timeout(timeout, ask)
            .await
            .unwrap_or_else(|_| Err("no answer in time".into()))
    }

    /// Whether member `node_id` answers a status request over the peer network within
    /// [`MEMBER_PROBE_TIMEOUT`].
    pub(super) async fn answers_probe(&self, node_id: NodeId) -> bool {
        let probe = async {
            let mut client = self
                .member_client(node_id, MEMBER_PROBE_TIMEOUT)
                .await
                .ok()?;
            client.cluster_status(ClusterStatusRequest {}).await.ok()
        };
        matches!(
            tokio::time::timeout(MEMBER_PROBE_TIMEOUT, probe).await,
            Ok(Some(_))
        )
    }

    pub(super) async fn leader_change_membership(
        &self,
        voters: BTreeSet<NodeId>,
    ) -> Result<(), NodeError> {
        if !self.is_leader() {
            return Err(NodeError::NoLeader);
        }
        self.refuse_during_handover()?;
        if voters.is_empty() {
            // Only `remove_node` of the last voter gets here (the edge refuses an empty
            // list): a change the cluster refuses, not a malformed request.
            return Err(NodeError::MembershipRefused {
                message: "the change would leave no voter".into(),
            });
        }
        let membership = self.node.metrics().borrow().membership_config.clone();
        let known: BTreeSet<NodeId> = membership.membership().nodes().map(|(id, _)| *id).collect();
        if let Some(unknown) = voters.iter().find(|id| !known.contains(id)) {
            return Err(NodeError::MembershipRefused {
                message: format!("node {unknown} is not a member; add it as a learner first"),
            });
        }
        // A change keeps a majority of the current voters, or only removes some: one call
        // cannot hand the cluster to nodes that never voted in it (replace voters a few at
        // a time instead).
        let current: BTreeSet<NodeId> = membership.membership().voter_ids().collect();
        let kept = voters.intersection(&current).count();
        if kept * 2 <= current.len() && !voters.is_subset(&current) {
            return Err(NodeError::MembershipRefused {
                message: format!(
                    "the new voters keep {kept} of the {} current voters: a change must keep a majority of them (or only remove voters); replace voters a few at a time",
                    current.len()
                ),
            });
        }
        self.check_placement(&current, &voters)?;
        let mut healthy = self.healthy_voters();
        // Caught up is not enough: a node that died a moment ago still looks caught up.
        // Every other new voter must answer a status probe now.
        let probes = voters
            .iter()
            .filter(|id| **id != self.node_id() && healthy.contains(id))
            .map(|&id| async move { (id, self.answers_probe(id).await) });
        for (id, answered) in futures::future::join_all(probes).await {
            if !answered {
                healthy.remove(&id);
            }
        }
        let healthy_new = voters.iter().filter(|id| healthy.contains(id)).count();
        if healthy_new * 2 <= voters.len() {
            return Err(NodeError::MembershipRefused {
                message: format!("only {healthy_new} of the {} new voters are caught up: the change would lose the majority", voters.len()),
            });
        }
        self.node
            .change_membership(voters, true)
            .await
            .map(|_| ())
            .map_err(raft_error)
    }

    pub(super) async fn leader_remove_node(&self, node_id: NodeId) -> Result<(), NodeError> {
        if !self.is_leader() {
            return Err(NodeError::NoLeader);
        }
        self.refuse_during_handover()?;
        let membership = self.node.metrics().borrow().membership_config.clone();
        let membership = membership.membership();
        if membership.get_node(&node_id).is_none() {
            return Err(NodeError::NodeNotFound { node_id });
        }
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        if voters.contains(&node_id) {
            let remaining: BTreeSet<NodeId> =
                voters.iter().copied().filter(|id| *id != node_id).collect();
            self.leader_change_membership(remaining).await?;
        }
        let remove = ChangeMembers::RemoveNodes(BTreeSet::from([node_id]));
        self.node
            .raft()
            .change_membership(remove, false)
            .await
            .map_err(|error| NodeError::MembershipRefused {
                message: error.to_string(),
            })?;
        // Remember the id so it is never admitted again.
        self.commit_as_leader(vec![Proposal {
            request_id: None,
            command: Command::RetireNode { node_id },
        }])
        .await?;
        Ok(())
    }
}
