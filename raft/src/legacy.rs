//! Log entries of format version 1, written before members carried an incarnation: read
//! so that a data directory of an earlier build keeps its log. Their members come back
//! with incarnation zero ("not known", never checked): nothing fills it in later (adding a
//! known member again does not replace its record), so such a member stays unchecked until
//! it is replaced by a new node.

use std::collections::BTreeMap;
use std::fmt;

use holdfast_statemachine::Outcome;
use openraft::{EntryPayload, Membership};
use serde::{Deserialize, Serialize};

use crate::types::{Batch, LogEntry, NodeId, NodeInfo, SnapshotData};

/// A member as version 1 encoded it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfoV1 {
    /// Address of the node-to-node gRPC listener (`host:port`).
    pub raft_addr: String,
    /// Address of the HTTP API (`host:port`).
    pub http_addr: String,
    /// Region or zone label.
    pub region: String,
}

impl fmt::Display for NodeInfoV1 {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "raft={} http={}", self.raft_addr, self.http_addr)
    }
}

impl From<NodeInfoV1> for NodeInfo {
    fn from(node: NodeInfoV1) -> NodeInfo {
        NodeInfo {
            raft_addr: node.raft_addr,
            http_addr: node.http_addr,
            region: node.region,
            incarnation: 0,
        }
    }
}

openraft::declare_raft_types!(
    /// Holdfast's openraft types as of log format version 1: only the member type differs.
    pub TypeConfigV1:
        D = Batch,
        R = Vec<Outcome>,
        NodeId = NodeId,
        Node = NodeInfoV1,
        Entry = openraft::Entry<TypeConfigV1>,
        SnapshotData = SnapshotData,
        Responder = openraft::impls::OneshotResponder<TypeConfigV1>,
        AsyncRuntime = crate::runtime::HoldfastRuntime,
);

/// A version 1 entry as an entry of today.
pub fn upgrade_entry(entry: openraft::Entry<TypeConfigV1>) -> LogEntry {
    let payload = match entry.payload {
        EntryPayload::Blank => EntryPayload::Blank,
        EntryPayload::Normal(batch) => EntryPayload::Normal(batch),
        EntryPayload::Membership(membership) => {
            let nodes: BTreeMap<NodeId, NodeInfo> = membership
                .nodes()
                .map(|(id, node)| (*id, NodeInfo::from(node.clone())))
                .collect();
            EntryPayload::Membership(Membership::new(
                membership.get_joint_config().clone(),
                nodes,
            ))
        }
    };
    LogEntry {
        log_id: entry.log_id,
        payload,
    }
}
