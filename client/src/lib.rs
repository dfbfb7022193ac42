//! The Rust SDK of Holdfast, a replicated booking cluster.
//!
//! [`Client`] speaks gRPC to the nodes' HTTP ports over one multiplexed HTTP/2 connection
//! per node and covers every call of the API (API.md): availability and event search,
//! holds (seats, pools, best available), extend, confirm, cancel, lookups, history, admin
//! inventory, cluster status and membership.
//!
//! What it does for the caller:
//! - **Failover.** [`ClientBuilder::connect`] succeeds if any endpoint answers; it learns
//!   the other members and the leader from the cluster status. A node that fails or does
//!   not answer within the attempt timeout is left for another within the call's deadline.
//! - **Leader tracking.** Writes go straight to the leader, learned from cluster status and
//!   from the `x-holdfast-leader` metadata of every answer; reads go to a node of the
//!   caller's region ([`ClientBuilder::region`]), linearizable reads to the leader.
//! - **Retries that never apply twice.** Every write carries an idempotency key (generated
//!   when the caller gives none) and is retried with the same key, with exponential
//!   backoff and jitter, within the call's deadline — including answers that say the
//!   outcome is unknown. Unkeyed calls (admin and cluster changes) are retried only when
//!   the request certainly never left.
//! - **Automatic batching.** Concurrent holds, extends, confirms and cancels from any
//!   number of tasks are gathered into the node's `Batch` call while batches are in flight;
//!   each keeps its own key and gets its own answer, and a lone caller sends at once.
//! - **Sessions.** [`Client::session`] reads its own writes on any node with `min_index`.
//! - **The change stream.** [`Client::watch_changes`] follows the outbox from an index as a
//!   `Stream` of typed [`Change`]s, resuming on another node after a disconnect from the
//!   last index it yielded plus one.
//! - **Typed errors** ([`Error`], [`ErrorCode`]) mirroring the API's stable codes, per-call
//!   deadlines ([`Client::with_timeout`]) and `tracing` spans (`holdfast`, `holdfast.batch`).
//!
//! ```no_run
//! # async fn demo() -> holdfast_client::Result<()> {
//! use holdfast_client::{Client, ConfirmRequest, Error, ErrorCode, HoldRequest};
//!
//! let client = Client::connect(["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]).await?;
//! match client.hold(HoldRequest::seats("concert", "c-42", ["A-1"])).await {
//!     Ok(hold) => {
//!         let booking = client.confirm(ConfirmRequest::new(&hold.hold_id, "tok_visa")).await?;
//!         println!("booked {}", booking.booking_id);
//!     }
//!     Err(Error::Api(refusal)) if refusal.code == ErrorCode::SeatUnavailable => {
//!         println!("someone was faster");
//!     }
//!     Err(other) => return Err(other),
//! }
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod batch;
mod changes;
mod client;
mod error;
mod transport;
mod types;

pub use batch::BATCH_OPERATIONS_MAX;
pub use changes::{Change, ChangeData, ChangeStream, CHANGE_STREAM_REOPENS_MAX};
pub use client::{Client, ClientBuilder, ClientStats, NodeReport, RetryPolicy};
pub use error::{ApiError, Error, ErrorCode, Result};
pub use types::*;
