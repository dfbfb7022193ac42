//! [`LocalReplica`]: one in-process state machine behind a lock.
//!
//! **Not replicated and not durable**: everything is lost when the process stops. It is
//! the single-node development mode (`holdfast serve --single-node`) and what the HTTP
//! tests run against. It follows the [`Replica`] contract otherwise: proposals are stamped
//! with cluster time and applied in order, reads honour `min_index` (waiting, bounded),
//! and the proposal queue is bounded.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use holdfast_statemachine::{Config, Entry, StateMachine};
use tokio::sync::{watch, Semaphore};

use crate::replica::{
    AppliedTime, ClusterClock, ClusterStatus, CommittedOutcome, MemberSpec, MemberStatus,
    NodeError, NodeId, Proposal, ReadMeta, ReadRequest, Replica, RequestIndexTable, Role,
    MIN_INDEX_WAIT_DEFAULT,
};

/// Settings of a [`LocalReplica`].
#[derive(Clone, Debug)]
pub struct LocalReplicaConfig {
    /// This node's id: it is both the node and the leader in every answer (default 1).
    pub node_id: NodeId,
    /// Shown in `/cluster/status`.
    pub http_addr: String,
    /// The single member's region in `/cluster/status` (free text, default `local`).
    pub region: String,
    /// The state machine's limits.
    pub state_config: Config,
    /// Proposals waiting at once; more are shed with `503 OVERLOADED`.
    pub proposals_queued_max: usize,
    /// How long a read waits for `min_index`.
    pub min_index_wait: Duration,
    /// Request ids whose first log index is remembered (see [`RequestIndexTable`]).
    pub request_index_entries_max: usize,
}

impl Default for LocalReplicaConfig {
    fn default() -> Self {
        LocalReplicaConfig {
            node_id: 1,
            http_addr: String::new(),
            region: "local".into(),
            state_config: Config::default(),
            proposals_queued_max: 4096,
            min_index_wait: MIN_INDEX_WAIT_DEFAULT,
            request_index_entries_max: 1_000_000,
        }
    }
}

struct Applied {
    machine: StateMachine,
    applied_index: u64,
    request_index: RequestIndexTable,
}

/// One in-process state machine, applying proposals immediately. Not replicated, not
/// durable: see the module documentation.
pub struct LocalReplica {
    config: LocalReplicaConfig,
    applied: RwLock<Applied>,
    clock: ClusterClock,
    queue: Semaphore,
    applied_index_tx: watch::Sender<u64>,
}

impl LocalReplica {
    /// A fresh, empty state.
    pub fn new(config: LocalReplicaConfig) -> LocalReplica {
        let request_index = RequestIndexTable::new(
            config.state_config.idempotency_retention_ms,
            config.request_index_entries_max,
        );
        let applied = Applied {
            machine: StateMachine::new(config.state_config.clone()),
            applied_index: 0,
            request_index,
        };
        LocalReplica {
            queue: Semaphore::new(config.proposals_queued_max.max(1)),
            applied: RwLock::new(applied),
            clock: ClusterClock::default(),
            applied_index_tx: watch::channel(0).0,
            config,
        }
    }

    /// A fresh replica behind an `Arc`, ready for [`crate::AppState`].
    pub fn shared(config: LocalReplicaConfig) -> Arc<LocalReplica> {
        Arc::new(LocalReplica::new(config))
    }

    /// The index of the last applied entry.
    pub fn applied_index(&self) -> u64 {
        self.applied
            .read()
            .expect("state lock poisoned")
            .applied_index
    }

    fn apply_all(&self, proposals: Vec<Proposal>) -> Vec<CommittedOutcome> {
        let mut applied = self.applied.write().expect("state lock poisoned");
        let applied = &mut *applied;
        let mut answers = Vec::with_capacity(proposals.len());
        for proposal in proposals {
            let time_ms = self.clock.stamp(AppliedTime {
                time_ms: applied.machine.now_ms(),
                applied_at: None,
            });
            let entry = Entry {
                time_ms,
                request_id: proposal.request_id,
                command: proposal.command,
            };
            applied.applied_index += 1;
            let outcome = applied.machine.apply(&entry);
            let index = match &entry.request_id {
                Some(request_id) => applied.request_index.record(
                    request_id,
                    applied.applied_index,
                    applied.machine.now_ms(),
                ),
                None => applied.applied_index,
            };
            answers.push(CommittedOutcome { outcome, index });
        }
        self.applied_index_tx.send_replace(applied.applied_index);
        answers
    }
}

#[async_trait]
impl Replica for LocalReplica {
    fn node_id(&self) -> NodeId {
        self.config.node_id
    }

    async fn propose(&self, proposals: Vec<Proposal>) -> Result<Vec<CommittedOutcome>, NodeError> {
        let _permit = self
            .queue
            .try_acquire()
            .map_err(|_| NodeError::Overloaded {
                message: format!(
                    "{} proposals are already waiting",
                    self.config.proposals_queued_max
                ),
            })?;
        Ok(self.apply_all(proposals))
    }

    async fn prepare_read(&self, request: ReadRequest) -> Result<(), NodeError> {
        // One node is always its own leader and always up to date: only `min_index`
        // can make a read wait.
        let Some(min_index) = request.min_index else {
            return Ok(());
        };
        let mut applied = self.applied_index_tx.subscribe();
        let reached = tokio::time::timeout(
            self.config.min_index_wait,
            applied.wait_for(|&index| index >= min_index),
        )
        .await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(NodeError::IndexNotReached {
                min_index,
                applied_index: self.applied_index(),
            }),
        }
    }

    fn with_state(&self, read: &mut dyn FnMut(&StateMachine, ReadMeta)) {
        let applied = self.applied.read().expect("state lock poisoned");
        let meta = ReadMeta {
            applied_index: applied.applied_index,
            node_id: self.config.node_id,
            leader_id: Some(self.config.node_id),
        };
        read(&applied.machine, meta);
    }

    fn status(&self) -> ClusterStatus {
        let applied_index = self.applied_index();
        ClusterStatus {
            node_id: self.config.node_id,
            leader_id: Some(self.config.node_id),
            term: 1,
            role: Role::Leader,
            applied_index,
            committed_index: applied_index,
            members: vec![MemberStatus {
                id: self.config.node_id,
                raft_addr: String::new(),
                http_addr: self.config.http_addr.clone(),
                region: self.config.region.clone(),
                voter: true,
                lag: Some(0),
                last_contact_ms: None,
                incarnation: 0,
            }],
            placement_warning: None,
            incarnation: 0,
            cluster_id: None,
        }
    }

    fn readiness(&self) -> Result<(), NodeError> {
        Ok(())
    }

    async fn initialize(&self, _members: Vec<MemberSpec>) -> Result<(), NodeError> {
        // A single-node replica is its own initialised cluster from the start.
        Err(NodeError::AlreadyInitialized)
    }

    async fn add_learner(&self, member: MemberSpec) -> Result<(), NodeError> {
        Err(NodeError::MembershipRefused {
            message: format!(
                "node {} cannot be added: this node runs in single-node mode without replication",
                member.id
            ),
        })
    }

    async fn change_membership(&self, voters: BTreeSet<NodeId>) -> Result<(), NodeError> {
        if voters.len() == 1 && voters.contains(&self.config.node_id) {
            return Ok(());
        }
        Err(NodeError::MembershipRefused {
            message: format!(
                "single-node mode: the only possible voter set is [{}]",
                self.config.node_id
            ),
        })
    }

    async fn remove_node(&self, node_id: NodeId) -> Result<(), NodeError> {
        if node_id == self.config.node_id {
            return Err(NodeError::MembershipRefused {
                message: "removing the only voter would leave no majority".into(),
            });
        }
        Err(NodeError::NodeNotFound { node_id })
    }
}
