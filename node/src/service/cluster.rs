//! Cluster operations every edge serves, over the [`crate::replica::Replica`] seam: the
//! status, initialisation, learners, the voter set, node removal, leader transfer, an
//! on-demand snapshot and readiness. Requests are checked here; a change answers the
//! cluster's status once it is made.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::app::AppState;
use crate::error::ApiError;
use crate::replica::{ClusterStatus, MemberSpec, NodeId};
use crate::wire::{ClusterInitBody, MemberBody};

/// Members named in one cluster request at most.
pub const CLUSTER_MEMBERS_MAX: usize = 100;

/// A snapshot built on demand.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Snapshot {
    /// The node that built it.
    pub node_id: NodeId,
    /// The last log index it covers.
    pub index: u64,
    /// From the request until it was persisted.
    pub build: Duration,
}

/// One member, checked: an id of at least 1, `host:port` addresses, a valid region.
pub fn member(body: MemberBody) -> Result<MemberSpec, ApiError> {
    if body.id == 0 {
        return Err(ApiError::invalid_field("id", "node ids start at 1"));
    }
    for (field, value) in [
        ("raft_addr", &body.raft_addr),
        ("http_addr", &body.http_addr),
    ] {
        if value.is_empty() || value.len() > 256 {
            return Err(ApiError::invalid_field(field, "must be host:port"));
        }
    }
    crate::validate::text("region", &body.region)?;
    Ok(MemberSpec {
        id: body.id,
        raft_addr: body.raft_addr,
        http_addr: body.http_addr,
        region: body.region,
    })
}

/// A cluster's first members, checked: 1 to [`CLUSTER_MEMBERS_MAX`], unique ids, valid
/// addresses and regions.
pub fn init_members(body: ClusterInitBody) -> Result<Vec<MemberSpec>, ApiError> {
    if body.members.is_empty() || body.members.len() > CLUSTER_MEMBERS_MAX {
        return Err(ApiError::invalid_field(
            "members",
            format!("name 1 to {CLUSTER_MEMBERS_MAX} members"),
        ));
    }
    let members = body
        .members
        .into_iter()
        .map(member)
        .collect::<Result<Vec<_>, _>>()?;
    let ids: BTreeSet<u64> = members.iter().map(|member| member.id).collect();
    if ids.len() != members.len() {
        return Err(ApiError::invalid_field(
            "members",
            "node ids must be unique",
        ));
    }
    Ok(members)
}

/// The cluster as this node sees it.
pub fn status(state: &AppState) -> ClusterStatus {
    state.replica.status()
}

/// Initialises a fresh cluster with its first members.
pub async fn initialize(
    state: &AppState,
    body: ClusterInitBody,
) -> Result<ClusterStatus, ApiError> {
    let members = init_members(body)?;
    state.replica.initialize(members).await?;
    Ok(status(state))
}

/// Adds a learner; answers once it has caught up.
pub async fn add_learner(state: &AppState, body: MemberBody) -> Result<ClusterStatus, ApiError> {
    let member = member(body)?;
    state.replica.add_learner(member).await?;
    Ok(status(state))
}

/// Makes `voters` the voter set: 1 to [`CLUSTER_MEMBERS_MAX`] node ids, each at least 1.
pub async fn change_membership(
    state: &AppState,
    voters: &[NodeId],
) -> Result<ClusterStatus, ApiError> {
    let voters: BTreeSet<NodeId> = voters.iter().copied().collect();
    if voters.is_empty() || voters.len() > CLUSTER_MEMBERS_MAX || voters.contains(&0) {
        return Err(ApiError::invalid_field(
            "voters",
            format!("name 1 to {CLUSTER_MEMBERS_MAX} node ids, each at least 1"),
        ));
    }
    state.replica.change_membership(voters).await?;
    Ok(status(state))
}

/// Hands leadership to voter `node_id`; answers once it leads.
pub async fn transfer_leader(state: &AppState, node_id: NodeId) -> Result<ClusterStatus, ApiError> {
    if node_id == 0 {
        return Err(ApiError::invalid_field(
            "node_id",
            "a node id is at least 1",
        ));
    }
    state.replica.transfer_leader(node_id).await?;
    Ok(status(state))
}

/// Removes a node from the cluster.
pub async fn remove_node(state: &AppState, node_id: NodeId) -> Result<ClusterStatus, ApiError> {
    state.replica.remove_node(node_id).await?;
    Ok(status(state))
}

/// Builds a snapshot of this node's state now; answers once it is persisted.
pub async fn snapshot(state: &AppState) -> Result<Snapshot, ApiError> {
    let taken = state.replica.snapshot_now().await?;
    Ok(Snapshot {
        node_id: state.replica.node_id(),
        index: taken.index,
        build: taken.build,
    })
}

/// This node's id once a leader is known and it has caught up; `503 NOT_READY` or
/// `NO_LEADER` before.
pub fn ready(state: &AppState) -> Result<NodeId, ApiError> {
    state.replica.readiness()?;
    Ok(state.replica.node_id())
}
