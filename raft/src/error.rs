//! The errors of `holdfast-raft`, each with a stable code string.

use holdfast_statemachine::ErrorCode;
use std::path::PathBuf;

use crate::types::{NodeId, NodeInfo};

/// Everything that can go wrong in the Raft layer. Domain refusals (a seat is taken) are
/// not here: they are [`holdfast_statemachine::Outcome`] values.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data directory belongs to another node.
    #[error("data directory {path} belongs to node {found}, not to node {expected}")]
    NodeIdMismatch {
        /// The data directory.
        path: PathBuf,
        /// The node id this node was started with.
        expected: NodeId,
        /// The node id the directory's meta file records.
        found: NodeId,
    },
    /// The data directory belongs to another cluster.
    #[error("data directory {path} belongs to cluster {found:?}, not to cluster {expected:?}")]
    ClusterIdMismatch {
        /// The data directory.
        path: PathBuf,
        /// The cluster id this node was started with.
        expected: String,
        /// The cluster id the directory's meta file records.
        found: String,
    },
    /// Data written in a format this build cannot read.
    #[error("{what} has format version {found}; this build reads version {supported}")]
    UnsupportedFormat {
        /// What was read: the meta file, the Raft log, a snapshot.
        what: String,
        /// The format version found in the data.
        found: u32,
        /// The format version this build reads.
        supported: u32,
    },
    /// Data that does not decode.
    #[error("{what} is corrupt: {message}")]
    Corrupt {
        /// What was read: the meta file, the Raft log, a snapshot.
        what: String,
        /// Why it does not decode.
        message: String,
    },
    /// A file system or RocksDB failure.
    #[error("storage failure at {path}: {message}")]
    Storage {
        /// The file or directory that failed (or a label such as `tempdir`).
        path: PathBuf,
        /// The underlying error.
        message: String,
    },
    /// This node is not the leader; `leader_id` and `leader` name the one it knows of.
    #[error("not the leader; leader is {leader_id:?}")]
    NotLeader {
        /// The leader's id, if this node knows one.
        leader_id: Option<NodeId>,
        /// The leader's member record (its addresses), if this node knows it.
        leader: Option<NodeInfo>,
    },
    /// The leader could not confirm its leadership with a quorum in time.
    #[error("no quorum: {message}")]
    NoQuorum {
        /// What did not answer in time, or openraft's account of the missing quorum.
        message: String,
    },
    /// The cluster is already initialized.
    #[error("the cluster is already initialized")]
    AlreadyInitialized,
    /// A membership change that Raft refused (it would remove the quorum, a node is
    /// unknown, another change is in progress).
    #[error("membership change refused: {message}")]
    MembershipRefused {
        /// openraft's reason.
        message: String,
    },
    /// The Raft core stopped (shutdown or a storage failure).
    #[error("raft stopped: {message}")]
    Fatal {
        /// openraft's fatal error, or what stopped or did not finish in time.
        message: String,
    },
    /// Could not listen or connect.
    #[error("transport failure: {message}")]
    Transport {
        /// The underlying bind, address or serve error.
        message: String,
    },
    /// A configuration value is invalid.
    #[error("invalid configuration: {message}")]
    InvalidConfig {
        /// Which value is wrong and what it must be.
        message: String,
    },
    /// The peer TLS files cannot be read or do not fit together.
    #[error("peer TLS: {message}")]
    PeerTls {
        /// Which file or certificate, and what is wrong with it.
        message: String,
    },
}

impl Error {
    /// The stable code of this error, from the registry (`holdfast_statemachine::codes`).
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::NodeIdMismatch { .. } => ErrorCode::DataDirNodeMismatch,
            Error::ClusterIdMismatch { .. } => ErrorCode::DataDirClusterMismatch,
            Error::UnsupportedFormat { .. } => ErrorCode::UnsupportedFormat,
            Error::Corrupt { .. } => ErrorCode::CorruptData,
            Error::Storage { .. } => ErrorCode::StorageFailure,
            Error::NotLeader { .. } => ErrorCode::NotLeader,
            Error::NoQuorum { .. } => ErrorCode::NoQuorum,
            Error::AlreadyInitialized => ErrorCode::AlreadyInitialized,
            Error::MembershipRefused { .. } => ErrorCode::MembershipRefused,
            Error::Fatal { .. } => ErrorCode::RaftStopped,
            Error::Transport { .. } => ErrorCode::TransportFailure,
            Error::InvalidConfig { .. } => ErrorCode::InvalidConfig,
            Error::PeerTls { .. } => ErrorCode::PeerTlsInvalid,
        }
    }

    pub(crate) fn storage(path: impl Into<PathBuf>, error: impl std::fmt::Display) -> Error {
        Error::Storage {
            path: path.into(),
            message: error.to_string(),
        }
    }
}
