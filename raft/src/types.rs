//! The openraft type configuration of Holdfast.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

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
    /// The incarnation of the member's data directory (see `data_dir.rs`); zero when not
    /// known (a member recorded before incarnations existed), which is never checked.
    /// Raft RPCs to and from a member with another incarnation are refused.
    #[serde(default)]
    pub incarnation: u64,
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "raft={} http={} region={}",
            self.raft_addr, self.http_addr, self.region
        )?;
        if self.incarnation != 0 {
            write!(formatter, " incarnation={:016x}", self.incarnation)?;
        }
        Ok(())
    }
}

/// The application data of one Raft entry: state machine entries committed together.
///
/// Grouping lets the node commit many client commands with one log append and one fsync.
/// The entries are applied in order; each gets its own [`Outcome`].
///
/// The entries are shared: the log store's cache, openraft's replication streams and the
/// state machine all read the same ones, and a clone of a batch is a reference count. They
/// are an `Arc<Vec<Entry>>`, encoded exactly as a `Vec<Entry>`, so that neither a new batch
/// nor a decoded one copies its entries into a new allocation (an `Arc<[Entry]>` does:
/// tens of kilobytes per batch, on every node).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The state machine entries, applied in this order (one [`Outcome`] each). May be
    /// empty.
    pub entries: Arc<Vec<Entry>>,
}

impl Batch {
    /// A batch of `entries`, applied in order.
    pub fn new(entries: Vec<Entry>) -> Batch {
        Batch {
            entries: Arc::new(entries),
        }
    }

    /// A batch of one entry.
    pub fn single(entry: Entry) -> Batch {
        Batch::new(vec![entry])
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
        SnapshotData = SnapshotData,
        Responder = openraft::impls::OneshotResponder<TypeConfig>,
        AsyncRuntime = crate::runtime::HoldfastRuntime,
);

/// A snapshot as openraft streams it: a file on disk, or bytes in memory in a simulation
/// (see [`crate::memory`]).
#[derive(Debug)]
pub enum SnapshotData {
    /// An open snapshot file: the current snapshot being sent, or an unlinked temporary
    /// file that a received snapshot's chunks are written to.
    File(tokio::fs::File),
    /// The snapshot's bytes, for a store on a [`crate::memory::MemoryDisk`].
    Memory(std::io::Cursor<Vec<u8>>),
}

impl tokio::io::AsyncRead for SnapshotData {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            SnapshotData::File(file) => Pin::new(file).poll_read(context, buffer),
            SnapshotData::Memory(cursor) => Pin::new(cursor).poll_read(context, buffer),
        }
    }
}

impl tokio::io::AsyncWrite for SnapshotData {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            SnapshotData::File(file) => Pin::new(file).poll_write(context, buffer),
            SnapshotData::Memory(cursor) => Pin::new(cursor).poll_write(context, buffer),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            SnapshotData::File(file) => Pin::new(file).poll_flush(context),
            SnapshotData::Memory(cursor) => Pin::new(cursor).poll_flush(context),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            SnapshotData::File(file) => Pin::new(file).poll_shutdown(context),
            SnapshotData::Memory(cursor) => Pin::new(cursor).poll_shutdown(context),
        }
    }
}

impl tokio::io::AsyncSeek for SnapshotData {
    fn start_seek(self: Pin<&mut Self>, position: std::io::SeekFrom) -> std::io::Result<()> {
        match self.get_mut() {
            SnapshotData::File(file) => Pin::new(file).start_seek(position),
            SnapshotData::Memory(cursor) => Pin::new(cursor).start_seek(position),
        }
    }

    fn poll_complete(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<std::io::Result<u64>> {
        match self.get_mut() {
            SnapshotData::File(file) => Pin::new(file).poll_complete(context),
            SnapshotData::Memory(cursor) => Pin::new(cursor).poll_complete(context),
        }
    }
}

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
