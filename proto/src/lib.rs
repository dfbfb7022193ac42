//! Wire types of Holdfast: the protobuf messages and tonic services for node-to-node Raft
//! RPC ([`raft`]) and for the client-facing booking service ([`booking`]).
//!
//! The code is generated at build time from `proto/holdfast/*.proto` by `protox` and
//! `tonic-prost-build`; no `protoc` binary is needed.

/// Node-to-node Raft RPC: an envelope around bincode-encoded openraft messages.
pub mod raft {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("holdfast.raft.v1");
}

/// The client-facing booking service (mirrors the HTTP API of API.md).
pub mod booking {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("holdfast.booking.v1");
}

/// Version of the envelope's `payload` encoding in [`raft::RaftRequest`] and
/// [`raft::RaftReply`]. Bumped whenever the encoding of a payload changes.
pub const RAFT_WIRE_FORMAT_VERSION: u32 = 1;

/// Version of the encoding of commands and outcomes in [`booking::ProposeRequest`] and
/// [`booking::ProposeResponse`].
pub const PROPOSE_WIRE_FORMAT_VERSION: u32 = 1;
