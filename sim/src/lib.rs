//! Turmoil simulations of a Holdfast cluster running the real node code.
//!
//! A run ([`run::run`]) starts real nodes (`holdfast_node::runtime::start_with`: Raft, the
//! state machine, the peer gRPC service and the HTTP API) as turmoil hosts, each on its own
//! in-memory disk ([`holdfast_raft::MemoryDisk`]) and its own clock ([`clock::SimClock`]);
//! simulated customers drive the HTTP API ([`workload`]), a webhook receiver on its own host
//! records the nodes' notifications ([`webhook`]), the harness injects the seed's
//! faults ([`faults`]), and the checkers ([`check`]) judge the recorded [`history`] and the
//! replicas' final states. The same seed replays the same run.

#![warn(missing_docs)]

pub mod check;
pub mod client;
pub mod clock;
pub mod faults;
pub mod history;
pub mod net;
pub mod run;
pub mod webhook;
pub mod workload;

pub use faults::{Scenario, Timeline};
pub use run::{run, Breakage, RunConfig, RunReport};
