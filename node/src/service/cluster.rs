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

/// Longest member address, in bytes.
pub const ADDRESS_BYTES_MAX: usize = 256;
/// A member address as `/openapi.json` gives it; [`is_address`] is the check.
pub const ADDRESS_PATTERN: &str = concat!(
    "^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):",
    "(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})$"
);

/// `host:port`: a DNS name or IPv4 address (letters, digits, `.` and `-`) or an IPv6
/// address in brackets, then a port from 1 to 65535 without leading zeros; at most
/// [`ADDRESS_BYTES_MAX`] bytes.
pub fn is_address(value: &str) -> bool {
    let Some((host, port)) = value.rsplit_once(':') else {
        return false;
    };
    let host_ok = match host
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
    {
        Some(inner) => {
            !inner.is_empty()
                && inner
                    .bytes()
                    .all(|byte| byte.is_ascii_hexdigit() || byte == b':' || byte == b'.')
        }
        None => {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'.' || byte == b'-')
        }
    };
    let port_ok = !port.starts_with('0')
        && port.bytes().all(|byte| byte.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|port| port > 0);
    value.len() <= ADDRESS_BYTES_MAX && host_ok && port_ok
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
        if !is_address(value) {
            return Err(ApiError::invalid_field(
                field,
                "must be host:port (a DNS name, an IPv4 address or a bracketed IPv6 address, and a port 1 to 65535)",
            ));
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

#[cfg(test)]
mod tests {
    use super::is_address;

    #[test]
    fn addresses_are_host_and_port() {
        for good in [
            "127.0.0.1:7101",
            "holdfast-0.holdfast.default.svc:7101",
            "[::1]:1",
            "node-3:65535",
        ] {
            assert!(is_address(good), "{good}");
        }
        for bad in [
            "",
            "7101",
            ":7101",
            "host:",
            "host:0",
            "host:07101",
            "host:65536",
            "host:+1",
            "ho st:1",
            "a/b:1",
            "[]:1",
            "[zz]:1",
            "host:１",
        ] {
            assert!(!is_address(bad), "{bad}");
        }
        assert!(!is_address(&format!("{}:1", "a".repeat(300))));
    }
}
