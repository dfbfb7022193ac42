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
        path: PathBuf,
        expected: NodeId,
        found: NodeId,
    },
    /// The data directory belongs to another cluster.
    #[error("data directory {path} belongs to cluster {found:?}, not to cluster {expected:?}")]
    ClusterIdMismatch {
        path: PathBuf,
        expected: String,
        found: String,
    },
    /// Data written in a format this build cannot read.
    #[error("{what} has format version {found}; this build reads version {supported}")]
    UnsupportedFormat {
        what: String,
        found: u32,
        supported: u32,
    },
    /// Data that does not decode.
    #[error("{what} is corrupt: {message}")]
    Corrupt { what: String, message: String },
    /// A file system or RocksDB failure.
    #[error("storage failure at {path}: {message}")]
    Storage { path: PathBuf, message: String },
    /// This node is not the leader; `leader_id` and `leader` name the one it knows of.
    #[error("not the leader; leader is {leader_id:?}")]
    NotLeader {
        leader_id: Option<NodeId>,
        leader: Option<NodeInfo>,
    },
    /// The leader could not confirm its leadership with a quorum in time.
    #[error("no quorum: {message}")]
    NoQuorum { message: String },
    /// The cluster is already initialized.
    #[error("the cluster is already initialized")]
    AlreadyInitialized,
    /// A membership change that Raft refused (it would remove the quorum, a node is
    /// unknown, another change is in progress).
    #[error("membership change refused: {message}")]
    MembershipRefused { message: String },
    /// The Raft core stopped (shutdown or a storage failure).
    #[error("raft stopped: {message}")]
    Fatal { message: String },
    /// Could not listen or connect.
    #[error("transport failure: {message}")]
    Transport { message: String },
    /// A configuration value is invalid.
    #[error("invalid configuration: {message}")]
    InvalidConfig { message: String },
    /// The peer TLS files cannot be read or do not fit together.
    #[error("peer TLS: {message}")]
    PeerTls { message: String },
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
