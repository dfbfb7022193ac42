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
        /// The event to add to.
        event_id: String,
        /// Seats listed one by one, at most [`crate::limits::SEATS_PER_COMMAND_MAX`].
        seats: Vec<SeatSpec>,
        /// Blocks of seats; with `seats`, at least one seat or block. Every new id must be
        /// new to the event (`ITEM_EXISTS`), and the event may then hold at most
        /// [`crate::limits::SEATS_PER_EVENT_MAX`] seats.
        seat_blocks: Vec<SeatBlock>,
    },
    /// Add pools to an event.
    AddPools {
        /// The event to add to.
        event_id: String,
        /// At least one; ids new to the event, and at most
        /// [`crate::limits::POOLS_PER_EVENT_MAX`] pools in the event afterwards.
        pools: Vec<PoolSpec>,
    },
    /// Change a pool's capacity (never below what is held and booked).
    SetPoolCapacity {
        /// The event the pool belongs to.
        event_id: String,
        /// The pool to change.
        pool_id: String,
        /// The new capacity in units: at most [`crate::limits::POOL_CAPACITY_MAX`], and at
        /// least the units held plus booked (`CAPACITY_BELOW_USAGE` otherwise).
        capacity: u64,
    },
    /// Remove a seat that is neither held nor booked.
    RemoveSeat {
        /// The event the seat belongs to.
        event_id: String,
        /// The seat to remove; a held or booked one is refused with `ITEM_IN_USE`.
        seat_id: String,
    },
    /// Remove a pool that has nothing held or booked.
    RemovePool {
        /// The event the pool belongs to.
        event_id: String,
        /// The pool to remove; one with units held or booked is refused with
        /// `ITEM_IN_USE`.
        pool_id: String,
    },
    /// Take a set of items for one customer, all or nothing.
    Hold(HoldRequest),
    /// Push a hold's expiry later, within its maximum life.
    ExtendHold {
        /// The active, unexpired hold to extend.
        hold_id: String,
        /// The new time to live, counted from this entry's time, in seconds
        /// ([`crate::limits::HOLD_TTL_SECONDS_MIN`] to
        /// [`crate::limits::HOLD_TTL_SECONDS_MAX`]). The expiry becomes the earlier of that
        /// and the hold's `life_ends_at_ms`, and never moves earlier than it was.
        ttl_seconds: u32,
    },
    /// Release an active hold: its items become available again.
    ReleaseHold {
        /// The hold to release. One whose time has passed but that no `ExpireHolds` has
        /// ended yet is released all the same.
        hold_id: String,
    },
    /// Turn a hold into a booking, recording the payment that was charged for it.
    Confirm {
        /// The active, unexpired hold to book.
        hold_id: String,
        /// The charge made for it; its amount must equal the hold's. If the confirm is
        /// refused, a recordable, non-zero charge the state does not know yet is recorded
        /// as a refund owed in the same entry ([`crate::Outcome::ConfirmRefused`]).
        payment: PaymentRecord,
    },
    /// Cancel a confirmed booking: frees its items and records a refund owed.
    CancelBooking {
        /// The confirmed booking to cancel (`BOOKING_NOT_ACTIVE` if cancelled already).
        booking_id: String,
        /// Why, kept on the booking and in its outbox event: at most
        /// [`crate::limits::TEXT_BYTES_MAX`] bytes, no control characters.
        reason: String,
    },
    /// Record that a refund owed has been paid out.
    MarkRefunded {
        /// The refund, which must still be `Pending`.
        refund_id: String,
    },
    /// Free every active hold whose time has passed, at most `max_holds` of them.
    ExpireHolds {
        /// 1 to [`crate::limits::EXPIRE_HOLDS_PER_ENTRY_MAX`]; the earliest expiries go first.
        max_holds: u32,
    },
    /// Acknowledge outbox events up to and including `up_to`; they are trimmed.
    AckOutbox {
        /// An outbox index no later than the last one emitted. While webhooks exist, the
        /// outbox is trimmed no further than the lowest index every webhook acknowledged.
        up_to: u64,
    },
    /// Record that a Raft node id left the cluster, so that it is never used again.
    RetireNode {
        /// The Raft node id.
        node_id: u64,
    },
    /// Change an event's listing metadata (the fields that are `Some`).
    UpdateEvent(EventUpdate),
    /// Cancel an event: release every active hold, cancel every confirmed booking with its
    /// refund recorded, and refuse holds from then on. One entry, so no hold or confirm can
    /// slip in between.
    CancelEvent {
        /// The event to cancel (`EVENT_CANCELLED` if it is already).
        event_id: String,
        /// Why, kept on every booking it cancels: at most
        /// [`crate::limits::TEXT_BYTES_MAX`] bytes, no control characters.
        reason: String,
    },
    /// Record a failed attempt to pay a pending refund: `attempt` is its number (one more
    /// than the attempts recorded, or the command is refused as stale, so a repeated or late
    /// report counts once), and `give_up` turns the refund `Failed` with `reason`.
    RefundAttemptFailed {
        /// The refund, which must still be `Pending`.
        refund_id: String,
        /// The attempt's number, counted from 1.
        attempt: u32,
        /// Why the attempt failed: at most [`crate::limits::TEXT_BYTES_MAX`] bytes, no
        /// control characters.
        reason: String,
        /// Stop trying: the refund becomes `Failed` and leaves the pending refunds.
        give_up: bool,
    },
    /// Add a webhook that the notifier delivers outbox events to (from the next event on).
    AddWebhook {
        /// Where to deliver, as [`crate::validate_webhook_url`] checks it.
        url: String,
        /// The key the notifier signs deliveries with (HMAC-SHA256), as
        /// [`crate::validate_webhook_secret`] checks it; never shown back.
        secret: String,
        /// Empty means every type.
        events: Vec<crate::webhooks::EventType>,
    },
    /// Remove a webhook.
    RemoveWebhook {
        /// The webhook's id (`wh_` and a number).
        webhook_id: String,
    },
    /// Record that a webhook acknowledged every event up to and including `up_to`; the
    /// outbox is trimmed below what every webhook acknowledged.
    AckWebhook {
        /// The webhook's id (`wh_` and a number).
        webhook_id: String,
        /// An outbox index no later than the last one emitted; a lower mark than the one
        /// recorded changes nothing.
        up_to: u64,
    },
    /// One piece of a backup being restored into an empty cluster (see `restore.rs`):
    /// pieces are staged in order and the last one replaces the whole state at once.
    RestoreChunk(RestoreChunk),
    /// Record that `provider` is about to charge for a live hold under `charge_key` (see
    /// `intents.rs`); the confirm proposed with `charge_key` as its request id resolves it.
    RecordChargeIntent {
        /// The charge's idempotency key at the provider: 1 to
        /// [`crate::limits::REQUEST_ID_BYTES_MAX`] bytes. Recorded again for the same hold,
        /// it answers the intent already recorded; for another hold it is refused with
        /// `IDEMPOTENCY_KEY_REUSED`.
        charge_key: String,
        /// The hold to be paid for, which must be active and unexpired.
        hold_id: String,
        /// The provider about to charge: at most [`crate::limits::TEXT_BYTES_MAX`] bytes,
        /// no control characters.
        provider: String,
    },
    /// Drop a charge intent whose provider made no charge under its key.
    DropChargeIntent {
        /// The intent's key; dropping one that is not recorded changes nothing.
        charge_key: String,
    },
    /// Set the key that spells hold, booking and refund ids (see `ids.rs`): once, before
    /// any of them exists. The node proposes a random one on a new cluster.
    SetIdKey {
        /// The two 64-bit keys that seed the id permutation's rounds, alternately.
        key: [u64; 2],
    },
}

impl Command {
    /// Whether applying the command may take long: its work grows with an event's
    /// inventory or the state's size rather than with the command's own (creating an event
    /// or adding seats, up to millions of them; cancelling an event, every hold and booking
    /// of it; a restore's last piece, the whole state). A node applies such a command off
    /// its async workers, so that heartbeats and answers do not wait for it.
    pub fn may_take_long(&self) -> bool {
        matches!(
            self,
            Command::CreateEvent(_)
                | Command::AddSeats { .. }
                | Command::CancelEvent { .. }
                | Command::RestoreChunk(_)
        )
    }
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
    /// A film screening (`movie`).
    Movie,
    /// A concert, match or show (`event`).
    Event,
    /// Rooms, as pools `{room type}-{night}`; the only category a search by nights finds
    /// (`hotel`).
    Hotel,
    /// Bookable time slots (`appointment`).
    Appointment,
    /// Anything else (`other`).
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
    /// The new event's id: 1 to [`crate::limits::ID_BYTES_MAX`] bytes without spaces,
    /// control characters or `/`, and not taken (`EVENT_EXISTS`).
    pub event_id: String,
    /// Display name: at most [`crate::limits::TEXT_BYTES_MAX`] bytes, no control
    /// characters.
    pub name: String,
    /// What kind of event it is; searches filter on it.
    pub category: Category,
    /// Start of the event in Unix milliseconds, if it has one.
    pub starts_at_ms: Option<u64>,
    /// ISO 4217 currency code, three upper-case letters.
    pub currency: String,
    /// Seats listed one by one, at most [`crate::limits::SEATS_PER_COMMAND_MAX`].
    pub seats: Vec<SeatSpec>,
    /// Blocks of seats; with `seats`, at most [`crate::limits::SEATS_PER_EVENT_MAX`]
    /// seats, every id distinct.
    pub seat_blocks: Vec<SeatBlock>,
    /// Pools, at most [`crate::limits::POOLS_PER_EVENT_MAX`], ids distinct.
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
    /// Free text: 1 to [`crate::limits::LISTING_TEXT_BYTES_MAX`] bytes, no control
    /// characters.
    pub description: Option<String>,
    /// Free labels, in the order given, without duplicates.
    pub tags: Vec<String>,
}

/// A change to an event's listing: each field that is `Some` replaces the current value
/// (`Some(None)` clears an optional one); `None` leaves it as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventUpdate {
    /// The event to change.
    pub event_id: String,
    /// A new name, bounded as [`CreateEvent::name`].
    pub name: Option<String>,
    /// A new start in Unix milliseconds, or none; not after the event's end.
    pub starts_at_ms: Option<Option<u64>>,
    /// A new end in Unix milliseconds ([`Listing::ends_at_ms`]), or none.
    pub ends_at_ms: Option<Option<u64>>,
    /// A new venue ([`Listing::venue`]), or none.
    pub venue: Option<Option<String>>,
    /// A new city ([`Listing::city`]), or none.
    pub city: Option<Option<String>>,
    /// A new description ([`Listing::description`]), or none.
    pub description: Option<Option<String>>,
    /// The new list of tags, replacing the whole list ([`Listing::tags`]).
    pub tags: Option<Vec<String>>,
}

/// One seat, listed by itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatSpec {
    /// The seat's id, unique within the event: 1 to [`crate::limits::ID_BYTES_MAX`]
    /// bytes without spaces, control characters or `/`.
    pub id: String,
    /// The section the seat's row is in, bounded as `id` is.
    pub section: String,
    /// The row's name within its section, bounded as `id` is.
    pub row: String,
    /// Position in the row: orders the row's seats, and seats whose numbers follow each
    /// other are adjacent for best-available.
    pub number: u32,
    /// In minor units of the event's currency, at most [`crate::limits::PRICE_MAX`].
    pub price: u64,
}

/// Rows of seats in one section, expanded to seat ids `SECTION-ROW-NUMBER`, numbers from 1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatBlock {
    /// The section, an id (1 to [`crate::limits::ID_BYTES_MAX`] bytes, no spaces, control
    /// characters or `/`).
    pub section: String,
    /// Row names, ids too: 1 to [`crate::limits::SEAT_BLOCK_ROWS_MAX`] of them. New rows
    /// are created in this order, the order best-available tries them in: best first.
    pub rows: Vec<String>,
    /// Seats in each row, 1 to [`crate::limits::SEAT_BLOCK_SEATS_PER_ROW_MAX`].
    pub seats_per_row: u32,
    /// Price of every seat of the block, in minor units, at most
    /// [`crate::limits::PRICE_MAX`].
    pub price: u64,
}

/// Fungible capacity: general admission, a room type for one night, an appointment slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSpec {
    /// The pool's id, unique within the event: 1 to [`crate::limits::ID_BYTES_MAX`] bytes
    /// without spaces, control characters or `/`.
    pub id: String,
    /// Units it has, at most [`crate::limits::POOL_CAPACITY_MAX`].
    pub capacity: u64,
    /// Price of one unit, in minor units, at most [`crate::limits::PRICE_MAX`].
    pub price: u64,
}

/// A quantity taken from one pool.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PoolQuantity {
    /// The pool, named at most once per hold.
    pub pool_id: String,
    /// Units taken: in a hold request 1 to [`crate::limits::HOLD_POOL_QUANTITY_MAX`].
    pub quantity: u32,
}

/// Seats chosen by the state machine instead of named by the client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BestAvailable {
    /// Seats to choose, at least 1; counted in the hold's
    /// [`crate::limits::HOLD_ITEMS_MAX`] items. Rows are tried in creation order: the first
    /// row with `count` adjacent free seats that strand no single seat gives the block
    /// nearest its centre; failing that, the first row with any such block.
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
    /// The event to hold on; a cancelled event refuses holds (`EVENT_CANCELLED`).
    pub event_id: String,
    /// Whose hold it is: an id (1 to [`crate::limits::ID_BYTES_MAX`] bytes). A customer
    /// may have at most [`crate::Config::holds_per_customer_per_event_max`] active holds
    /// on one event.
    pub customer_id: String,
    /// Seats named by id, each at most once; all must be available (`SEAT_UNAVAILABLE`
    /// otherwise). Seats, pool lines and the best-available count together are at most
    /// [`crate::limits::HOLD_ITEMS_MAX`], and at least one.
    pub seats: Vec<String>,
    /// Units taken from pools, each pool at most once; each must have its quantity free
    /// (`POOL_EXHAUSTED` otherwise).
    pub pools: Vec<PoolQuantity>,
    /// Seats for the state machine to choose, besides those named.
    pub best_available: Option<BestAvailable>,
    /// Time to live in seconds; [`crate::limits::HOLD_TTL_SECONDS_DEFAULT`] when absent.
    pub ttl_seconds: Option<u32>,
}

/// The payment charged before a confirm was proposed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
    /// The payment provider that charged.
    pub provider: String,
    /// The provider's id of the charge; with `provider` it names the payment, which pays
    /// for at most one booking.
    pub payment_id: String,
    /// What was charged, in minor units of the event's currency; a confirm needs it equal
    /// to the hold's amount (`PAYMENT_AMOUNT_MISMATCH`). A zero amount is never refunded.
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
