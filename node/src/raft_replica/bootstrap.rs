//! Self-bootstrap (`--bootstrap-members FILE`): nodes started with the same member list
//! form their cluster by themselves, and a node started later joins it, with no operator
//! call — what a StatefulSet needs (rqlite's `-bootstrap-expect` with DNS names is the
//! model; here the names are written once, in the list, as `POST /cluster/init` takes them).
//!
//! Every node runs [`run_bootstrap`] until it is part of an initialised cluster:
//! - **The listed member with the lowest id** initialises the cluster with the whole list,
//!   but only once every other listed member has answered that it is not part of a cluster
//!   yet. So a first node whose data directory was lost never starts a second cluster
//!   beside the one its peers still run: it sees them initialised and waits to be caught up
//!   by their leader (it is still a member there), or joins when it is not.
//! - **The other listed members** wait: the first one's election and log reach them.
//! - **A node that is not listed** (a StatefulSet scaled up) asks a listed member to let it
//!   join (`PeerService.Join`): it is added as a learner, answered once caught up, and then
//!   made a voter (unless `--bootstrap-join-as learner`). The member forwards to the leader.
//!
//! Every attempt is repeated once a second until it succeeds; nothing here ever removes a
//! member or changes an initialised cluster's voters beyond adding the joining node.

use std::collections::BTreeSet;
use std::time::Duration;

use holdfast_proto::booking::JoinRequest;
use tokio::sync::watch;

use super::RaftReplica;
use crate::replica::{MemberSpec, NodeError, NodeId, Replica, Role};

/// How often an unfinished bootstrap tries again.
const ATTEMPT_INTERVAL: Duration = Duration::from_secs(1);
/// How long one probe of another member may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a node bootstraps from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bootstrap {
    /// The cluster's first members, as `POST /cluster/init` takes them.
    pub members: Vec<MemberSpec>,
    /// This node as a member (its advertised addresses and region), for joining.
    pub this: MemberSpec,
    /// Whether a joining node becomes a voter (else it stays a learner).
    pub join_as_voter: bool,
}

/// What one look at the listed members found.
enum Found {
    /// Every other listed member answered and none is part of a cluster.
    AllFresh,
    /// Some member is part of a cluster; `with_us` when its members include this node,
    /// recorded with `incarnation` (0: not known).
    Cluster { with_us: bool, incarnation: u64 },
    /// Not everyone answered yet.
    Waiting,
}

/// Runs until this node is part of an initialised cluster (or the node stops).
pub async fn run_bootstrap(
    replica: RaftReplica,
    bootstrap: Bootstrap,
    mut stopped: watch::Receiver<bool>,
) {
    let this = bootstrap.this.id;
    let listed = bootstrap.members.iter().any(|member| member.id == this);
    let first = bootstrap.members.iter().map(|member| member.id).min() == Some(this);
    let mut last_note = String::new();
    loop {
        if replica.status().role != Role::Uninitialized {
            tracing::info!(
                node_id = this,
                "bootstrap: this node is part of the cluster"
            );
            return;
        }
        let note = match attempt(&replica, &bootstrap, listed, first).await {
            Ok(true) => return,
            Ok(false) => String::new(),
            Err(note) => note,
        };
        if !note.is_empty() && note != last_note {
            if note.starts_with("REFUSED") {
                tracing::error!(node_id = this, "bootstrap: {note}");
            } else {
                tracing::info!(node_id = this, "bootstrap: {note}");
            }
        }
        last_note = note;
        tokio::select! {
            _ = tokio::time::sleep(ATTEMPT_INTERVAL) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
}

/// One attempt: `Ok(true)` when done, `Ok(false)` to wait quietly, `Err` with what is
/// awaited.
async fn attempt(
    replica: &RaftReplica,
    bootstrap: &Bootstrap,
    listed: bool,
    first: bool,
) -> Result<bool, String> {
    if listed && !first {
        return Err("waiting for the first listed member to initialise the cluster".into());
    }
    match survey(replica, bootstrap).await {
        Found::Waiting => Err("waiting for every listed member to answer".into()),
        Found::AllFresh if listed => match replica.initialize(bootstrap.members.clone()).await {
            Ok(()) | Err(NodeError::AlreadyInitialized) => {
                tracing::info!(
                    members = bootstrap.members.len(),
                    "bootstrap: initialised the cluster"
                );
                Ok(true)
            }
            Err(error) => Err(format!("initialising failed: {error}")),
        },
        Found::Cluster {
            with_us: true,
            incarnation,
        } if incarnation != 0 && incarnation != replica.inner.node.incarnation() => {
            let id = bootstrap.this.id;
            Err(format!(
                "REFUSED: the cluster knows node {id} with data directory incarnation \
                 {incarnation:016x}, and this node's directory is {:016x}: it was wiped or \
                 replaced, so it has forgotten its votes and log, and its peers refuse it under \
                 id {id}. Remove node {id} (DELETE /cluster/nodes/{id}) and start this node \
                 under a new id",
                replica.inner.node.incarnation()
            ))
        }
        Found::Cluster { with_us: true, .. } => {
            Err("a cluster with this node exists: waiting for its leader to catch us up".into())
        }
        Found::AllFresh | Found::Cluster { with_us: false, .. } => join(replica, bootstrap).await,
    }
}

/// Asks every other listed member whether it is part of a cluster.
async fn survey(replica: &RaftReplica, bootstrap: &Bootstrap) -> Found {
    let this = bootstrap.this.id;
    let mut fresh = 0;
    let others: Vec<&MemberSpec> = bootstrap
        .members
        .iter()
        .filter(|member| member.id != this)
        .collect();
    for member in &others {
        let Ok(status) = replica
            .inner
            .status_at(member.id, &member.raft_addr, PROBE_TIMEOUT)
            .await
        else {
            continue;
        };
        if status.role == Role::Uninitialized.as_str() {
            fresh += 1;
        } else {
            let us = status.members.iter().find(|member| member.id == this);
            return Found::Cluster {
                with_us: us.is_some(),
                incarnation: us.map_or(0, |member| {
                    crate::wire::incarnation_from_text(&member.incarnation)
                }),
            };
        }
    }
    if fresh == others.len() {
        Found::AllFresh
    } else {
        Found::Waiting
    }
}

/// Asks the listed members, one after another, to let this node join.
async fn join(replica: &RaftReplica, bootstrap: &Bootstrap) -> Result<bool, String> {
    let this = &bootstrap.this;
    let mut last = String::from("no listed member answered");
    for member in bootstrap
        .members
        .iter()
        .filter(|member| member.id != this.id)
    {
        let timeout = replica.inner.config.learner_catch_up_timeout + PROBE_TIMEOUT;
        let mut client = match replica
            .inner
            .client_at(member.id, &member.raft_addr, timeout)
            .await
        {
            Ok(client) => client,
            Err(error) => {
                last = error.to_string();
                continue;
            }
        };
        let request = JoinRequest {
            learner: Some(crate::peer::member_to_proto(this)),
            voter: bootstrap.join_as_voter,
        };
        match crate::peer::cluster_change_answer(client.join(request).await) {
            Ok(()) => {
                tracing::info!(
                    via = member.id,
                    voter = bootstrap.join_as_voter,
                    "bootstrap: joined the cluster"
                );
                return Ok(true);
            }
            Err(error) => last = format!("node {} refused the join: {error}", member.id),
        }
    }
    Err(last)
}

impl RaftReplica {
    /// `PeerService.Join` on a member: adds `member` as a learner (answered once it caught
    /// up) and, when `voter`, makes it a voter. Forwarded to the leader like the operator's
    /// calls; a node that is a member already (as asked) is answered at once.
    pub(crate) async fn join(&self, member: MemberSpec, voter: bool) -> Result<(), NodeError> {
        let id: NodeId = member.id;
        let known = |replica: &RaftReplica| {
            replica
                .status()
                .members
                .into_iter()
                .find(|known| known.id == id)
        };
        match known(self) {
            Some(known) if known.voter || !voter => return Ok(()),
            Some(_) => {}
            None => self.add_learner(member).await?,
        }
        if voter {
            let mut voters: BTreeSet<NodeId> = self
                .status()
                .members
                .iter()
                .filter(|member| member.voter)
                .map(|member| member.id)
                .collect();
            voters.insert(id);
            self.change_membership(voters).await?;
        }
        Ok(())
    }
}
