//! openraft glue for Holdfast: the type configuration, a RocksDB log store, a durable
//! state machine store around [`holdfast_statemachine::StateMachine`] with file
//! snapshots, and a tonic network.
//!
//! Bird's-eye view:
//! - [`types`]: the openraft type configuration. One Raft entry carries a [`Batch`] of
//!   state machine entries (group commit) and answers with one [`Outcome`] per entry.
//! - [`data_dir`]: the layout of a node's data directory and the `holdfast.meta` file
//!   that names its format, cluster and node.
//! - [`log_store`]: vote, log, committed index and last purged id in RocksDB, every write
//!   fsynced before it is acknowledged.
//! - [`state_store`]: the in-memory state machine, its applied log id and membership, and
//!   its snapshots on disk.
//! - [`memory`]: an in-memory disk with the same durability contract, for simulations
//!   (it can lose unsynced writes in a simulated power loss).
//! - [`runtime`]: openraft's runtime (tokio) with a random generator a simulation seeds.
//! - [`network`] and [`server`]: node-to-node RPC over tonic, behind the [`transport`] seam,
//!   with mutual TLS between members ([`tls`]) and bounded decoding of every message.
//! - [`node`]: [`RaftNode`], which ties them together and is what `holdfast-node` uses.
//! - [`testing`]: an in-process cluster over loopback gRPC, for tests and benchmarks.
//!
//! [`Outcome`]: holdfast_statemachine::Outcome

#![warn(missing_docs)]

mod applied;
pub mod data_dir;
pub mod election;
pub mod error;
mod legacy;
mod log_cache;
pub mod log_store;
pub mod memory;
pub mod metrics;
pub mod network;
pub mod node;
pub mod runtime;
pub mod server;
pub mod state_store;
pub mod testing;
pub mod tls;
pub mod transport;
pub mod types;

pub use data_dir::{DataDir, DATA_DIR_FORMAT_VERSION};
pub use error::Error;
pub use log_store::{LogStore, LOG_ENTRY_FORMAT_VERSION};
pub use memory::{MemoryDisk, MemoryLogStore};
pub use network::{NetworkConfig, NetworkFactory};
pub use node::{ProposeResult, RaftNode, RaftNodeConfig};
pub use state_store::{AppliedState, StateMachineStore, SNAPSHOT_FILE_FORMAT_VERSION};
pub use tls::{ClusterCa, PeerTls};
pub use transport::{TcpTransport, Transport};
pub use types::{Batch, HoldfastRaft, NodeId, NodeInfo, TypeConfig};
