//! Outcomes: what applying an entry produced. Domain refusals (a seat is taken, a hold has
//! expired) are values of [`Rejection`], not errors: they are replicated, remembered for
//! idempotency and answered to the client like any other result.

use crate::codes::ErrorCode;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::command::{Category, PaymentRecord, PoolQuantity};

/// The result of applying one entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// `CreateEvent` succeeded; the new event's version is 1.
    EventCreated(EventChange),
    /// An admin command changed an event: `AddSeats`, `AddPools`, `SetPoolCapacity`,
    /// `RemoveSeat`, `RemovePool` or `UpdateEvent`.
    InventoryChanged(EventChange),
    /// `Hold` succeeded: the new hold, active.
    ///
    /// Boxed, as every answer larger than a refusal is: outcomes travel in lists of up to a
    /// thousand (one per command of an entry), are moved several times on their way to
    /// their callers, and a list of unboxed views would be a quarter of a megabyte to
    /// allocate and copy for each entry.
    Held(Box<HoldView>),
    /// `ExtendHold` succeeded: the hold with its new expiry.
    Extended(Box<HoldView>),
    /// `ReleaseHold` succeeded: the hold, released, its items available again.
    Released(Box<HoldView>),
    /// `Confirm` succeeded: the new booking, or the booking this payment already bought
    /// for this hold (a retry whose request id was forgotten).
    ///
    /// Boxed, as every booking answer is (see [`Outcome::Held`]).
    Confirmed(Box<BookingView>),
    /// `CancelBooking` succeeded: the booking, cancelled, with the refund recorded for it
    /// when its payment was more than 0.
    BookingCancelled(Box<BookingView>),
    /// `MarkRefunded` succeeded: the refund, now `Refunded`.
    RefundMarked(Box<RefundView>),
    /// A failed attempt to pay a refund was recorded; the view says whether the refund is
    /// still `Pending` (to be tried again) or `Failed` for good.
    RefundAttemptRecorded(Box<RefundView>),
    /// `ExpireHolds` ended these holds, earliest expiry first.
    HoldsExpired {
        /// The holds ended, at most `max_holds`; empty when none was due.
        hold_ids: Vec<String>,
    },
    /// `AckOutbox` was applied.
    OutboxAcknowledged {
        /// The outbox's acknowledged mark now; it stays below the `up_to` asked for while a
        /// webhook has not acknowledged that far.
        acknowledged_up_to: u64,
        /// Events the outbox still holds.
        remaining: u64,
    },
    /// `RetireNode` recorded the id.
    NodeRetired {
        /// The retired Raft node id.
        node_id: u64,
    },
    /// The command was refused; the rejection says why and carries its stable code.
    Rejected(Rejection),
    /// A confirm was refused after its payment had been charged: the refund that the
    /// state machine recorded in the same entry, so a charge never stands without a booking.
    ConfirmRefused {
        /// Why the confirm was refused.
        rejection: Rejection,
        /// The refund owed for the charge: recorded by this entry, or the one recorded
        /// already for the same payment.
        refund: RefundView,
    },
    /// An event was cancelled with everything held or booked on it.
    EventCancelled(EventCancellation),
    /// `AddWebhook` succeeded: the new webhook, without its secret.
    WebhookAdded(crate::webhooks::WebhookView),
    /// `RemoveWebhook` succeeded: the webhook as it was.
    WebhookRemoved(crate::webhooks::WebhookView),
    /// `AckWebhook` was applied.
    WebhookAcknowledged {
        /// The webhook, as the command named it.
        webhook_id: String,
        /// Its mark now: the highest outbox index it acknowledged (marks never move back).
        delivered_up_to: u64,
    },
    /// A piece of a backup was staged; `done` once the backup replaced the state.
    RestoreProgress(RestoreProgress),
    /// A charge intent is recorded (or was already): charge this amount and currency.
    ChargeIntentRecorded {
        /// The intent, with the amount (minor units) and currency to charge.
        intent: crate::intents::ChargeIntent,
        /// This command recorded it (not an earlier one with the same key).
        new: bool,
    },
    /// A charge intent is gone; `dropped` when this command removed it.
    ChargeIntentDropped {
        /// The key the command named.
        charge_key: String,
        /// This command removed the intent (else none was recorded under the key).
        dropped: bool,
    },
    /// The id key is set: ids from now on are spelled with it.
    IdKeySet,
}

/// How far a restore has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreProgress {
    /// The restore, as its pieces name it.
    pub restore_id: u64,
    /// Bytes staged so far (all of them once `done`).
    pub received_bytes: u64,
    /// The length of the whole backup, in bytes.
    pub total_bytes: u64,
    /// The backup replaced the state.
    pub done: bool,
}

impl Outcome {
    /// The refusal inside this outcome, if it is one.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            Outcome::Rejected(rejection) | Outcome::ConfirmRefused { rejection, .. } => {
                Some(rejection)
            }
            _ => None,
        }
    }

    /// Whether the outcome is a success.
    pub fn is_success(&self) -> bool {
        self.rejection().is_none()
    }
}

/// An event that was created or whose inventory changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventChange {
    /// The event.
    pub event_id: String,
    /// The event's version after the change (1 when created): the ETag of its availability.
    pub version: u64,
}

/// What cancelling an event did, counted (an event may have many bookings; each one's
/// cancellation and refund is in the outbox and in its booking).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCancellation {
    /// The cancelled event.
    pub event_id: String,
    /// The event's version after the cancellation.
    pub version: u64,
    /// Active holds released, each with a `hold.released` outbox event.
    pub holds_released: u64,
    /// Confirmed bookings cancelled.
    pub bookings_cancelled: u64,
    /// Refunds recorded for them: one per booking whose payment was more than 0.
    pub refunds_recorded: u64,
    /// Sum of the refunds recorded, in minor units of the event's currency.
    pub refund_amount: u64,
}

/// Lifecycle of a hold. A hold leaves `Active` exactly once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldStatus {
    /// Holding its items until it is confirmed, released or expires (`HELD`).
    Active,
    /// Turned into a booking (`CONFIRMED`).
    Confirmed,
    /// Released by `ReleaseHold` or with its event's cancellation (`CANCELLED`).
    Released,
    /// Ended by an `ExpireHolds` entry once its time had passed (`EXPIRED`).
    Expired,
}

impl HoldStatus {
    /// The wire name (`HELD` for an active hold).
    pub fn as_str(self) -> &'static str {
        match self {
            HoldStatus::Active => "HELD",
            HoldStatus::Confirmed => "CONFIRMED",
            HoldStatus::Released => "CANCELLED",
            HoldStatus::Expired => "EXPIRED",
        }
    }
}

/// A hold as clients see it.
///
/// Ids are [`CompactString`]s, inline up to 24 bytes, and a list of up to two seats is
/// inline too, so the answer to a typical hold is built without an allocation. They
/// serialise as plain strings and a sequence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldView {
    /// `h_` and the hold's number: its 16-hex-digit keyed spelling once the cluster's id
    /// key is set (`SetIdKey`), the number itself before.
    pub hold_id: CompactString,
    /// Where the hold is in its lifecycle.
    pub status: HoldStatus,
    /// The event the items are on.
    pub event_id: CompactString,
    /// Whose hold it is.
    pub customer_id: CompactString,
    /// Ids of the held seats: those named first, then those best-available chose.
    pub seats: SmallVec<[CompactString; 2]>,
    /// Units held from each pool, in the request's order.
    pub pools: Vec<PoolQuantity>,
    /// Total price in minor units of `currency`: the seats' prices plus each pool's unit
    /// price times its quantity. A confirm's payment must equal it.
    pub amount: u64,
    /// The event's ISO 4217 code.
    pub currency: CompactString,
    /// Cluster time of the entry that made it, in Unix milliseconds.
    pub created_at_ms: u64,
    /// From this time on (Unix milliseconds) the hold counts as expired: the making
    /// entry's time plus its TTL, capped at `life_ends_at_ms`; extensions move it later.
    pub expires_at_ms: u64,
    /// The latest `expires_at_ms` any extension may reach.
    pub life_ends_at_ms: u64,
    /// The booking it became, once `Confirmed`.
    pub booking_id: Option<CompactString>,
}

/// Lifecycle of a booking.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BookingStatus {
    /// Paid for; its items are booked (`CONFIRMED`).
    Confirmed,
    /// Cancelled: its items are available again, and a refund is recorded when it was paid
    /// more than 0 (`CANCELLED`).
    Cancelled,
}

impl BookingStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Confirmed => "CONFIRMED",
            BookingStatus::Cancelled => "CANCELLED",
        }
    }
}

/// A booking as clients see it.
///
/// Ids are [`CompactString`]s, as in [`HoldView`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingView {
    /// `b_` and the booking's number, spelled as [`HoldView::hold_id`] is.
    pub booking_id: CompactString,
    /// The hold it was confirmed from.
    pub hold_id: CompactString,
    /// Confirmed or cancelled.
    pub status: BookingStatus,
    /// The event the items are on.
    pub event_id: CompactString,
    /// Whose booking it is.
    pub customer_id: CompactString,
    /// Ids of the booked seats.
    pub seats: Vec<CompactString>,
    /// Units booked from each pool.
    pub pools: Vec<PoolQuantity>,
    /// The hold's amount, in minor units of `currency`; the payment's amount equals it.
    pub amount: u64,
    /// The event's ISO 4217 code.
    pub currency: CompactString,
    /// The charge that paid for it.
    pub payment: PaymentRecord,
    /// Cluster time of the confirm, in Unix milliseconds.
    pub created_at_ms: u64,
    /// Cluster time of the cancellation, once cancelled.
    pub cancelled_at_ms: Option<u64>,
    /// The reason given when it was cancelled.
    pub cancel_reason: Option<String>,
    /// The refund recorded when it was cancelled (none for a payment of 0).
    pub refund: Option<RefundView>,
}

/// Whether a refund owed has been paid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefundStatus {
    /// Owed, not paid yet (possibly after failed attempts).
    Pending,
    /// Paid out (`MarkRefunded`).
    Refunded,
    /// Given up: the provider refused it, or every attempt allowed failed. The reason is
    /// in [`RefundView::reason`]; an operator settles it outside Holdfast.
    Failed,
}

impl RefundStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "PENDING",
            RefundStatus::Refunded => "REFUNDED",
            RefundStatus::Failed => "FAILED",
        }
    }

    /// Parses the wire name.
    pub fn parse(text: &str) -> Option<RefundStatus> {
        Some(match text {
            "PENDING" => RefundStatus::Pending,
            "REFUNDED" => RefundStatus::Refunded,
            "FAILED" => RefundStatus::Failed,
            _ => return None,
        })
    }
}

/// One page of refunds, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundPage {
    /// At most the limit asked for, capped at [`crate::limits::REFUNDS_PAGE_MAX`].
    pub refunds: Vec<RefundView>,
    /// The `after` of the next page, while more remain.
    pub next_after: Option<String>,
}

/// A refund owed to a customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundView {
    /// `r_` and the refund's number, spelled as [`HoldView::hold_id`] is.
    pub refund_id: String,
    /// Pending, refunded or failed.
    pub status: RefundStatus,
    /// The hold whose payment is owed back.
    pub hold_id: String,
    /// The cancelled booking it refunds; none for a confirm refused after its charge.
    pub booking_id: Option<String>,
    /// The provider that took the payment.
    pub provider: String,
    /// The provider's id of the payment to give back.
    pub payment_id: String,
    /// The whole payment, in minor units of `currency`.
    pub amount: u64,
    /// The event's ISO 4217 code; empty when a refused confirm named a hold the state
    /// does not have.
    pub currency: String,
    /// Cluster time it was recorded, in Unix milliseconds.
    pub created_at_ms: u64,
    /// Cluster time it was marked paid; set exactly when `Refunded`.
    pub refunded_at_ms: Option<u64>,
    /// Failed attempts to pay it so far.
    pub attempts: u32,
    /// When the last failed attempt was recorded.
    pub last_attempt_at_ms: Option<u64>,
    /// Why the last attempt failed (why it `Failed`, once it has).
    pub reason: Option<String>,
}

/// A pool that cannot give what was asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolShortage {
    /// The pool.
    pub pool_id: String,
    /// Units the hold asked for.
    pub requested: u32,
    /// Units free when it asked.
    pub available: u64,
}

/// A refusal. Each has a stable code ([`Rejection::code`]) that the HTTP edge maps to a
/// status; none of them changes the state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    /// `INVALID_FIELD`: a field is malformed or out of its bounds.
    InvalidField {
        /// The field, as the API names it (`seats`, `payment`, `request_id` …).
        field: String,
        /// What is wrong with it, for people.
        reason: String,
    },
    /// `INVALID_QUANTITY`: a count or quantity is zero or past its bound.
    InvalidQuantity {
        /// The field, as the API names it (`pools.quantity`, `max_holds` …).
        field: String,
        /// The bounds it must keep, for people.
        reason: String,
    },
    /// `INVALID_TTL`: a time to live outside [`crate::limits::HOLD_TTL_SECONDS_MIN`] to
    /// [`crate::limits::HOLD_TTL_SECONDS_MAX`] seconds.
    InvalidTtl {
        /// The time to live asked for, in seconds.
        ttl_seconds: u32,
    },
    /// `TOO_MANY_ITEMS`: more than a command may carry or an event may have (hold items,
    /// seats, pools or webhook event types).
    TooManyItems {
        /// How many there would be (for the per-event bounds, counting those the event has).
        items: u64,
        /// The bound, one of the constants in [`crate::limits`].
        max: u64,
    },
    /// `EVENT_NOT_FOUND`: no event has this id.
    EventNotFound {
        /// The id asked for.
        event_id: String,
    },
    /// `SEAT_NOT_FOUND`: seats the event does not have (or has removed).
    SeatNotFound {
        /// The missing ids, at most the first 20.
        seats: Vec<String>,
    },
    /// `POOL_NOT_FOUND`: pools the event does not have.
    PoolNotFound {
        /// The missing ids, at most the first 20.
        pools: Vec<String>,
    },
    /// `HOLD_NOT_FOUND`: no hold has this id, or it ended more than
    /// [`crate::Config::ended_hold_retention_ms`] ago and was forgotten.
    HoldNotFound {
        /// The id asked for.
        hold_id: String,
    },
    /// `BOOKING_NOT_FOUND`: no booking has this id.
    BookingNotFound {
        /// The id asked for.
        booking_id: String,
    },
    /// `REFUND_NOT_FOUND`: no refund has this id.
    RefundNotFound {
        /// The id asked for.
        refund_id: String,
    },
    /// `WEBHOOK_NOT_FOUND`: no webhook has this id.
    WebhookNotFound {
        /// The id asked for.
        webhook_id: String,
    },
    /// `SEAT_UNAVAILABLE`: seats named in a hold are held or booked already.
    SeatUnavailable {
        /// Those seats, at most the first 20.
        seats: Vec<String>,
    },
    /// `POOL_EXHAUSTED`: pools with fewer units free than the hold asks for.
    PoolExhausted {
        /// Every pool line that cannot be met.
        pools: Vec<PoolShortage>,
    },
    /// `NO_ADJACENT_SEATS`: best-available found no row with `count` adjacent free seats
    /// (nor, with `allow_split`, that many free seats at all).
    NoAdjacentSeats {
        /// Seats asked for.
        count: u32,
        /// The section the search was limited to, if any.
        section: Option<String>,
    },
    /// `HOLD_NOT_ACTIVE`: the hold was confirmed or released already.
    HoldNotActive {
        /// The hold.
        hold_id: String,
        /// What it is now.
        status: HoldStatus,
    },
    /// `HOLD_EXPIRED`: the hold's time has passed, whether or not an `ExpireHolds` entry
    /// has ended it yet.
    HoldExpired {
        /// The hold.
        hold_id: String,
        /// Its expiry, in Unix milliseconds.
        expired_at_ms: u64,
    },
    /// `HOLD_LIMIT_REACHED`: the customer has as many active holds on the event as
    /// [`crate::Config::holds_per_customer_per_event_max`] allows.
    HoldLimitReached {
        /// The customer.
        customer_id: String,
        /// The bound.
        max: u32,
    },
    /// `BOOKING_NOT_ACTIVE`: the booking was cancelled already.
    BookingNotActive {
        /// The booking.
        booking_id: String,
    },
    /// `REFUND_NOT_PENDING`: the refund was paid out or given up already.
    RefundNotPending {
        /// The refund.
        refund_id: String,
    },
    /// A failed attempt was reported for a number the refund is not at: another report
    /// (an earlier leader's, or a retried proposal) got there first.
    RefundAttemptStale {
        /// The refund.
        refund_id: String,
        /// Failed attempts recorded so far; the next report must be number `attempts + 1`.
        attempts: u32,
    },
    /// `PAYMENT_AMOUNT_MISMATCH`: a confirm's payment differs from the hold's amount.
    PaymentAmountMismatch {
        /// The hold's amount, in minor units.
        expected: u64,
        /// The payment's amount, in minor units.
        charged: u64,
    },
    /// `ITEM_IN_USE`: a seat or pool to remove is held or booked.
    ItemInUse {
        /// The seat or pool.
        item_id: String,
    },
    /// `ITEM_EXISTS`: seats or pools with these ids exist already, or a command names them
    /// twice.
    ItemExists {
        /// Those ids, at most the first 20.
        item_ids: Vec<String>,
    },
    /// `CAPACITY_BELOW_USAGE`: a pool's new capacity is below the units in use.
    CapacityBelowUsage {
        /// The pool.
        pool_id: String,
        /// Units held plus booked: the lowest capacity allowed now.
        in_use: u64,
    },
    /// `EVENT_EXISTS`: an event with this id exists already.
    EventExists {
        /// The id.
        event_id: String,
    },
    /// `LIMIT_REACHED`: a bound of the whole replicated state was reached.
    LimitReached {
        /// What is full: `events`, `webhooks`, `charge intents` or `seat positions`.
        what: String,
        /// The bound.
        max: u64,
    },
    /// `IDEMPOTENCY_KEY_REUSED`: the request id was used before with another command, or
    /// the charge key with another hold.
    IdempotencyKeyReused {
        /// The request id or charge key.
        request_id: String,
    },
    /// Every slot of the idempotency table holds a key inside its retention window.
    /// Answered as `OVERLOADED` and not remembered, so a retry is applied afresh.
    IdempotencyTableFull {
        /// Request ids remembered.
        entries: u64,
    },
    /// The event was cancelled: nothing more can be held on it, and it cannot be cancelled
    /// again.
    EventCancelled {
        /// The event.
        event_id: String,
    },
    /// A webhook is configured and lagging: the outbox's claims (events held plus events
    /// promised) would pass its bound. Decided before the command applies, never remembered
    /// for its request id, so a retry after the webhook caught up is evaluated afresh.
    OutboxFull {
        /// The claims before this command ([`crate::StateMachine::outbox_claims`]).
        claims: u64,
        /// The bound, [`crate::Config::outbox_events_max`].
        max: u64,
    },
    /// A restore piece that cannot be taken: the cluster holds data, the pieces came out
    /// of order, or the whole does not match its checksum (see `restore.rs`).
    RestoreRefused {
        /// What was wrong, for people.
        reason: String,
    },
}

impl Rejection {
    /// Whether this refuses the request itself — malformed, or naming nothing that exists
    /// — rather than answering it from the state. Such a refusal changes nothing and is not
    /// remembered under the request id, so cheap bad requests cannot fill the idempotency
    /// table; a retry is judged afresh. Answers that depend on the state (a seat taken, a
    /// hold expired) are remembered, so that a retry gets the first answer.
    pub fn refuses_the_request_itself(&self) -> bool {
        matches!(
            self,
            Rejection::InvalidField { .. }
                | Rejection::InvalidQuantity { .. }
                | Rejection::InvalidTtl { .. }
                | Rejection::TooManyItems { .. }
                | Rejection::EventNotFound { .. }
                | Rejection::SeatNotFound { .. }
                | Rejection::PoolNotFound { .. }
                | Rejection::HoldNotFound { .. }
                | Rejection::BookingNotFound { .. }
                | Rejection::RefundNotFound { .. }
                | Rejection::WebhookNotFound { .. }
        )
    }

    /// The stable code of this refusal, as the API names it.
    pub fn code(&self) -> ErrorCode {
        match self {
            Rejection::InvalidField { .. } => ErrorCode::InvalidField,
            Rejection::InvalidQuantity { .. } => ErrorCode::InvalidQuantity,
            Rejection::InvalidTtl { .. } => ErrorCode::InvalidTtl,
            Rejection::TooManyItems { .. } => ErrorCode::TooManyItems,
            Rejection::EventNotFound { .. } => ErrorCode::EventNotFound,
            Rejection::SeatNotFound { .. } => ErrorCode::SeatNotFound,
            Rejection::PoolNotFound { .. } => ErrorCode::PoolNotFound,
            Rejection::HoldNotFound { .. } => ErrorCode::HoldNotFound,
            Rejection::BookingNotFound { .. } => ErrorCode::BookingNotFound,
            Rejection::RefundNotFound { .. } => ErrorCode::RefundNotFound,
            Rejection::WebhookNotFound { .. } => ErrorCode::WebhookNotFound,
            Rejection::SeatUnavailable { .. } => ErrorCode::SeatUnavailable,
            Rejection::PoolExhausted { .. } => ErrorCode::PoolExhausted,
            Rejection::NoAdjacentSeats { .. } => ErrorCode::NoAdjacentSeats,
            Rejection::HoldNotActive { .. } => ErrorCode::HoldNotActive,
            Rejection::HoldExpired { .. } => ErrorCode::HoldExpired,
            Rejection::HoldLimitReached { .. } => ErrorCode::HoldLimitReached,
            Rejection::BookingNotActive { .. } => ErrorCode::BookingNotActive,
            Rejection::RefundNotPending { .. } => ErrorCode::RefundNotPending,
            Rejection::RefundAttemptStale { .. } => ErrorCode::RefundAttemptStale,
            Rejection::PaymentAmountMismatch { .. } => ErrorCode::PaymentAmountMismatch,
            Rejection::ItemInUse { .. } => ErrorCode::ItemInUse,
            Rejection::ItemExists { .. } => ErrorCode::ItemExists,
            Rejection::CapacityBelowUsage { .. } => ErrorCode::CapacityBelowUsage,
            Rejection::EventExists { .. } => ErrorCode::EventExists,
            Rejection::LimitReached { .. } => ErrorCode::LimitReached,
            Rejection::IdempotencyKeyReused { .. } => ErrorCode::IdempotencyKeyReused,
            Rejection::IdempotencyTableFull { .. } => ErrorCode::Overloaded,
            Rejection::EventCancelled { .. } => ErrorCode::EventCancelled,
            Rejection::OutboxFull { .. } => ErrorCode::OutboxFull,
            Rejection::RestoreRefused { .. } => ErrorCode::RestoreRefused,
        }
    }

    pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Rejection {
        Rejection::InvalidField {
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}

/// One event's availability counters, kept up to date on every change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Seats of the event, removed ones not counted: the sum of the three below.
    pub seats_total: u64,
    /// Seats free to hold.
    pub seats_available: u64,
    /// Seats in active holds.
    pub seats_held: u64,
    /// Seats in confirmed bookings.
    pub seats_booked: u64,
}

/// An event's description, without its inventory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventInfo {
    /// The event's id.
    pub event_id: String,
    /// Display name.
    pub name: String,
    /// The event's category.
    pub category: Category,
    /// Start in Unix milliseconds, if it has one.
    pub starts_at_ms: Option<u64>,
    /// ISO 4217 code the event's prices are in.
    pub currency: String,
    /// Bumped by every change to the event: the ETag of its availability.
    pub version: u64,
    /// Seat counters.
    pub summary: Summary,
    /// How many pools the event has.
    pub pools: u64,
}

/// What a seat is doing now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeatStatus {
    /// Free to hold (`AVAILABLE`).
    Available,
    /// In an active hold (`HELD`).
    Held,
    /// In a confirmed booking (`BOOKED`).
    Booked,
}

impl SeatStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SeatStatus::Available => "AVAILABLE",
            SeatStatus::Held => "HELD",
            SeatStatus::Booked => "BOOKED",
        }
    }
}

/// One seat in an availability listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatView {
    /// The seat's id.
    pub id: String,
    /// The section its row is in.
    pub section: String,
    /// Its row's name.
    pub row: String,
    /// Its number in the row.
    pub number: u32,
    /// In minor units of the event's currency.
    pub price: u64,
    /// Available, held or booked now.
    pub status: SeatStatus,
}

/// One pool in an availability listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolView {
    /// The pool's id.
    pub id: String,
    /// Units it has.
    pub capacity: u64,
    /// Units neither held nor booked: `capacity - held - booked`.
    pub available: u64,
    /// Units in active holds.
    pub held: u64,
    /// Units in confirmed bookings.
    pub booked: u64,
    /// Price of one unit, in minor units of the event's currency.
    pub price: u64,
}

/// A page of an event's availability.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailabilityPage {
    /// The event.
    pub event_id: String,
    /// ISO 4217 code the prices are in.
    pub currency: String,
    /// The event's version as read: the ETag of this page.
    pub version: u64,
    /// Seat counters of the whole event, not only of this page.
    pub summary: Summary,
    /// The page's seats in creation order, removed ones skipped: at most the limit asked
    /// for, capped at [`crate::limits::AVAILABILITY_PAGE_SEATS_MAX`].
    pub seats: Vec<SeatView>,
    /// Every pool of the event, by id, on every page.
    pub pools: Vec<PoolView>,
    /// The seat id to pass as `after` for the next page, while more seats remain.
    pub next_after: Option<String>,
}

/// A page of a customer's bookings, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingPage {
    /// At most the limit asked for, capped at [`crate::limits::HISTORY_PAGE_MAX`].
    pub bookings: Vec<BookingView>,
    /// The booking id to pass as `after` for the next page, while older bookings remain.
    pub next_after: Option<String>,
}

/// Something a consumer of the outbox is told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutboxKind {
    /// A confirm made a booking (`booking.confirmed`).
    BookingConfirmed {
        /// The new booking.
        booking_id: String,
        /// The hold it was confirmed from.
        hold_id: String,
        /// The event.
        event_id: String,
        /// The customer.
        customer_id: String,
        /// What was paid, in minor units of `currency`.
        amount: u64,
        /// The event's ISO 4217 code.
        currency: String,
    },
    /// A booking was cancelled, by itself or with its event (`booking.cancelled`).
    BookingCancelled {
        /// The booking.
        booking_id: String,
        /// The event.
        event_id: String,
        /// The customer.
        customer_id: String,
        /// The reason given to `CancelBooking` or `CancelEvent`.
        reason: String,
    },
    /// An `ExpireHolds` entry ended a hold whose time had passed (`hold.expired`).
    HoldExpired {
        /// The hold.
        hold_id: String,
        /// The event.
        event_id: String,
        /// The customer.
        customer_id: String,
    },
    /// Money is owed back, for a cancelled booking or a confirm refused after its charge
    /// (`refund.recorded`).
    RefundOwed {
        /// The new refund.
        refund_id: String,
        /// The hold whose payment is owed back.
        hold_id: String,
        /// The cancelled booking; none for a refused confirm.
        booking_id: Option<String>,
        /// In minor units of `currency`.
        amount: u64,
        /// The event's ISO 4217 code; may be empty, as [`RefundView::currency`].
        currency: String,
    },
    /// A refund was paid out (`refund.paid`).
    RefundPaid {
        /// The refund.
        refund_id: String,
    },
    /// A refund was given up (see [`RefundStatus::Failed`]).
    RefundFailed {
        /// The refund.
        refund_id: String,
        /// Why the last attempt failed.
        reason: String,
    },
    /// A hold was placed. Every hold makes one, so its ids are [`CompactString`]s: inline
    /// up to 24 bytes, copied from the hold's answer without an allocation.
    HoldPlaced {
        /// The new hold.
        hold_id: CompactString,
        /// The event.
        event_id: CompactString,
        /// The customer.
        customer_id: CompactString,
        /// The hold's amount, in minor units of `currency`.
        amount: u64,
        /// The event's ISO 4217 code.
        currency: CompactString,
        /// When it expires unless extended, in Unix milliseconds.
        expires_at_ms: u64,
    },
    /// A hold was released before its time: by its customer, or with its event's
    /// cancellation.
    HoldReleased {
        /// The hold.
        hold_id: CompactString,
        /// The event.
        event_id: CompactString,
        /// The customer.
        customer_id: CompactString,
    },
}

/// One ordered outbox event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEvent {
    /// Position in the outbox, starting at 1, never reused.
    pub index: u64,
    /// Cluster time of the entry that emitted it, in Unix milliseconds.
    pub time_ms: u64,
    /// What happened.
    pub kind: OutboxKind,
}
