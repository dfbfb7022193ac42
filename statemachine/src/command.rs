//! Commands: what a log entry asks the state machine to do. Every command travels inside an
//! [`Entry`] that carries the leader's cluster time and the client's request id, so that
//! applying it needs nothing from outside.

use serde::{Deserialize, Serialize};

/// One replicated log entry's payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Cluster time stamped by the leader, in Unix milliseconds. The state machine uses
    /// `max(previous time, time_ms)`, so a leader with a slow clock never moves time back.
    pub time_ms: u64,
    /// The client's request id (the idempotency key scoped by route), when it sent one.
    pub request_id: Option<String>,
    /// What to do.
    pub command: Command,
}

/// Every operation of the booking domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Create an event with its initial inventory.
    CreateEvent(CreateEvent),
    /// Add seats to an event.
    AddSeats {
        event_id: String,
        seats: Vec<SeatSpec>,
        seat_blocks: Vec<SeatBlock>,
    },
    /// Add pools to an event.
    AddPools {
        event_id: String,
        pools: Vec<PoolSpec>,
    },
    /// Change a pool's capacity (never below what is held and booked).
    SetPoolCapacity {
        event_id: String,
        pool_id: String,
        capacity: u64,
    },
    /// Remove a seat that is neither held nor booked.
    RemoveSeat { event_id: String, seat_id: String },
    /// Remove a pool that has nothing held or booked.
    RemovePool { event_id: String, pool_id: String },
    /// Take a set of items for one customer, all or nothing.
    Hold(HoldRequest),
    /// Push a hold's expiry later, within its maximum life.
    ExtendHold { hold_id: String, ttl_seconds: u32 },
    /// Release an active hold: its items become available again.
    ReleaseHold { hold_id: String },
    /// Turn a hold into a booking, recording the payment that was charged for it.
    Confirm {
        hold_id: String,
        payment: PaymentRecord,
    },
    /// Cancel a confirmed booking: frees its items and records a refund owed.
    CancelBooking { booking_id: String, reason: String },
    /// Record that a refund owed has been paid out.
    MarkRefunded { refund_id: String },
    /// Free every active hold whose time has passed, at most `max_holds` of them.
    ExpireHolds { max_holds: u32 },
    /// Acknowledge outbox events up to and including `up_to`; they are trimmed.
    AckOutbox { up_to: u64 },
    /// Record that a Raft node id left the cluster, so that it is never used again.
    RetireNode { node_id: u64 },
    /// Change an event's listing metadata (the fields that are `Some`).
    UpdateEvent(EventUpdate),
    /// Cancel an event: release every active hold, cancel every confirmed booking with its
    /// refund recorded, and refuse holds from then on. One entry, so no hold or confirm can
    /// slip in between.
    CancelEvent { event_id: String, reason: String },
    /// Record a failed attempt to pay a pending refund: `attempt` is its number (one more
    /// than the attempts recorded, or the command is refused as stale, so a repeated or late
    /// report counts once), and `give_up` turns the refund `Failed` with `reason`.
    RefundAttemptFailed {
        refund_id: String,
        attempt: u32,
        reason: String,
        give_up: bool,
    },
    /// Add a webhook that the notifier delivers outbox events to (from the next event on).
    AddWebhook {
        url: String,
        secret: String,
        /// Empty means every type.
        events: Vec<crate::webhooks::EventType>,
    },
    /// Remove a webhook.
    RemoveWebhook { webhook_id: String },
    /// Record that a webhook acknowledged every event up to and including `up_to`; the
    /// outbox is trimmed below what every webhook acknowledged.
    AckWebhook { webhook_id: String, up_to: u64 },
    /// One piece of a backup being restored into an empty cluster (see `restore.rs`):
    /// pieces are staged in order and the last one replaces the whole state at once.
    RestoreChunk(RestoreChunk),
    /// Record that `provider` is about to charge for a live hold under `charge_key` (see
    /// `intents.rs`); the confirm proposed with `charge_key` as its request id resolves it.
    RecordChargeIntent {
        charge_key: String,
        hold_id: String,
        provider: String,
    },
    /// Drop a charge intent whose provider made no charge under its key.
    DropChargeIntent { charge_key: String },
    /// Set the key that spells hold, booking and refund ids (see `ids.rs`): once, before
    /// any of them exists. The node proposes a random one on a new cluster.
    SetIdKey { key: [u64; 2] },
}

/// One piece of a backup's state bytes, as `holdfastctl restore` sends them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreChunk {
    /// Chosen by the client for this restore; every piece of it carries the same id.
    pub restore_id: u64,
    /// Where in the state bytes this piece starts.
    pub offset: u64,
    /// The length of the whole state bytes.
    pub total_bytes: u64,
    /// SHA-256 of the whole state bytes, checked before they replace the state.
    pub sha256: [u8; 32],
    /// The piece.
    pub data: Vec<u8>,
}

/// Category of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Category {
    Movie,
    Event,
    Hotel,
    Appointment,
    Other,
}

impl Category {
    /// The lower-case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Movie => "movie",
            Category::Event => "event",
            Category::Hotel => "hotel",
            Category::Appointment => "appointment",
            Category::Other => "other",
        }
    }

    /// Parses the wire name.
    pub fn parse(text: &str) -> Option<Category> {
        Some(match text {
            "movie" => Category::Movie,
            "event" => Category::Event,
            "hotel" => Category::Hotel,
            "appointment" => Category::Appointment,
            "other" => Category::Other,
            _ => return None,
        })
    }
}

/// An event with its initial inventory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateEvent {
    pub event_id: String,
    pub name: String,
    pub category: Category,
    /// Start of the event in Unix milliseconds, if it has one.
    pub starts_at_ms: Option<u64>,
    /// ISO 4217 currency code, three upper-case letters.
    pub currency: String,
    pub seats: Vec<SeatSpec>,
    pub seat_blocks: Vec<SeatBlock>,
    pub pools: Vec<PoolSpec>,
    /// What a listing shows besides the name, category and start.
    pub listing: Listing,
}

/// The metadata a listing shows about an event, beside its name, category and start.
/// Bounded: see [`crate::limits::LISTING_TEXT_BYTES_MAX`] and its neighbours.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// Where it takes place (a cinema, an arena, a hotel's own name).
    pub venue: Option<String>,
    /// The city label searches filter on (compared case-insensitively).
    pub city: Option<String>,
    /// End of the event in Unix milliseconds, not before its start.
    pub ends_at_ms: Option<u64>,
    pub description: Option<String>,
    /// Free labels, in the order given, without duplicates.
    pub tags: Vec<String>,
}

/// A change to an event's listing: each field that is `Some` replaces the current value
/// (`Some(None)` clears an optional one); `None` leaves it as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventUpdate {
    pub event_id: String,
    pub name: Option<String>,
    pub starts_at_ms: Option<Option<u64>>,
    pub ends_at_ms: Option<Option<u64>>,
    pub venue: Option<Option<String>>,
    pub city: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
}

/// One seat, listed by itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatSpec {
    pub id: String,
    pub section: String,
    pub row: String,
    pub number: u32,
    pub price: u64,
}

/// Rows of seats in one section, expanded to seat ids `SECTION-ROW-NUMBER`, numbers from 1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatBlock {
    pub section: String,
    pub rows: Vec<String>,
    pub seats_per_row: u32,
    pub price: u64,
}

/// Fungible capacity: general admission, a room type for one night, an appointment slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSpec {
    pub id: String,
    pub capacity: u64,
    pub price: u64,
}

/// A quantity taken from one pool.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PoolQuantity {
    pub pool_id: String,
    pub quantity: u32,
}

/// Seats chosen by the state machine instead of named by the client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BestAvailable {
    pub count: u32,
    /// Only seats of this section, when given.
    pub section: Option<String>,
    /// When no row has `count` adjacent seats, take the best seats that are not adjacent
    /// instead of refusing.
    pub allow_split: bool,
}

/// A request to hold items.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRequest {
    pub event_id: String,
    pub customer_id: String,
    pub seats: Vec<String>,
    pub pools: Vec<PoolQuantity>,
    pub best_available: Option<BestAvailable>,
    /// Time to live in seconds; [`crate::limits::HOLD_TTL_SECONDS_DEFAULT`] when absent.
    pub ttl_seconds: Option<u32>,
}

/// The payment charged before a confirm was proposed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
    pub provider: String,
    pub payment_id: String,
    pub amount: u64,
}

impl PaymentRecord {
    /// Whether the state records this payment (on a booking, or on a refund owed back):
    /// provider and payment id 1 to 256 bytes, without control characters. A confirm with
    /// a payment it does not record is refused and records no refund either, so a node
    /// that charged checks this before it proposes, and gives an unrecordable charge back
    /// through the provider itself.
    pub fn is_recordable(&self) -> bool {
        crate::inventory::validate_text("payment.provider", &self.provider).is_ok()
            && crate::inventory::validate_text("payment.payment_id", &self.payment_id).is_ok()
            && !self.provider.is_empty()
            && !self.payment_id.is_empty()
    }
}
