//! The booking domain of Holdfast: a pure, synchronous, deterministic state machine.
//!
//! Every replica applies the same log of [`Entry`] values with [`StateMachine::apply`] and
//! ends in the same state, down to the bytes of [`StateMachine::snapshot_bytes`]. The crate
//! does no I/O, reads no clock and draws no random numbers: time, ids and the client's
//! request id arrive inside each entry.
//!
//! ```
//! use holdfast_statemachine::*;
//!
//! let mut state = StateMachine::default();
//! let create = CreateEvent {
//!     event_id: "film".into(), name: "Film".into(), category: Category::Movie,
//!     starts_at_ms: None, currency: "EUR".into(), seats: vec![],
//!     seat_blocks: vec![SeatBlock { section: "A".into(), rows: vec!["1".into()], seats_per_row: 10, price: 900 }],
//!     pools: vec![], listing: Listing::default(),
//! };
//! state.apply(&Entry { time_ms: 1_000, request_id: None, command: Command::CreateEvent(create) });
//! let hold = HoldRequest {
//!     event_id: "film".into(), customer_id: "c-1".into(), seats: vec!["A-1-5".into()],
//!     pools: vec![], best_available: None, ttl_seconds: Some(60),
//! };
//! let outcome = state.apply(&Entry { time_ms: 2_000, request_id: Some("hold:k1".into()), command: Command::Hold(hold) });
//! assert!(matches!(outcome, Outcome::Held(ref view) if view.amount == 900));
//! ```

#![warn(missing_docs)]

mod bookings;
mod chunkdeque;
pub mod codes;
mod command;
mod cowvec;
pub mod decode;
pub mod encode;
mod fastcode;
mod holds;
mod idempotency;
mod idmap;
mod ids;
mod intents;
mod invariants;
mod inventory;
pub mod limits;
mod listing;
mod outbox;
mod outcome;
mod prefetch;
mod probetable;
mod restore;
mod search;
mod shardedmap;
mod snapshot;
mod state;
mod timequeue;
mod webhooks;

pub use codes::{ErrorCode, GrpcCode};
pub use command::*;
/// The string type of ids in answers ([`HoldView`], [`BookingView`]).
pub use compact_str::CompactString;
pub use intents::ChargeIntent;
pub use invariants::InvariantViolation;
pub use limits::{Config, Faults};
pub use outbox::OutboxStatus;
pub use outcome::*;
pub use restore::{sha256 as restore_sha256, RESTORE_BYTES_MAX};
pub use search::{EventListing, PoolTotals, SearchPage, SearchQuery};
/// The list type of a [`HoldView`]'s seats.
pub use smallvec::SmallVec;
pub use snapshot::{
    snapshot_format_version, FrozenState, SnapshotError, SNAPSHOT_FORMAT_VERSION,
    SNAPSHOT_FORMAT_VERSION_OLDEST_READ, SNAPSHOT_MAGIC,
};
pub use state::StateMachine;
pub use webhooks::{
    validate_webhook_secret, validate_webhook_url, EventType, WebhookTarget, WebhookView,
};
