//! The openraft type configuration of Holdfast.

use std::fmt;

use holdfast_statemachine::{Entry, Outcome};
use serde::{Deserialize, Serialize};

/// Raft node ids. Never reused within a cluster.
pub type NodeId = u64;

/// What a cluster member is: where to reach it and where it lives.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Address of the node-to-node gRPC listener (`host:port`).
    pub raft_addr: String,
    /// Address of the HTTP API (`host:port`).
    pub http_addr: String,
    /// Region or zone label, for placement and operators.
    pub region: String,
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "raft={} http={} region={}",
            self.raft_addr, self.http_addr, self.region
        )
    }
}

/// The application data of one Raft entry: state machine entries committed together.
///
/// Grouping lets the node commit many client commands with one log append and one fsync.
/// The entries are applied in order; each gets its own [`Outcome`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub entries: Vec<Entry>,
}

impl Batch {
    /// A batch of one entry.
    pub fn single(entry: Entry) -> Batch {
        Batch {
            entries: vec![entry],
        }
    }
}

impl fmt::Display for Batch {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Batch({} entries)", self.entries.len())
    }
}

openraft::declare_raft_types!(
    /// Holdfast's openraft types: a [`Batch`] per entry, answered by one [`Outcome`] per
    /// state machine entry; snapshots are files, streamed in chunks.
    pub TypeConfig:
        D = Batch,
        R = Vec<Outcome>,
        NodeId = NodeId,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        Responder = openraft::impls::OneshotResponder<TypeConfig>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The Raft handle of a Holdfast node.
pub type HoldfastRaft = openraft::Raft<TypeConfig>;

/// A log id of this configuration.
pub type LogId = openraft::LogId<NodeId>;
/// A vote of this configuration.
pub type Vote = openraft::Vote<NodeId>;
/// A storage error of this configuration.
pub type StorageError = openraft::StorageError<NodeId>;
/// A stored membership of this configuration.
pub type StoredMembership = openraft::StoredMembership<NodeId, NodeInfo>;
/// Snapshot metadata of this configuration.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, NodeInfo>;
/// A log entry of this configuration.
pub type LogEntry = openraft::Entry<TypeConfig>;
