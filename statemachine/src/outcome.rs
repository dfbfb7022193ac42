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
    EventCreated(EventChange),
    InventoryChanged(EventChange),
    Held(HoldView),
    Extended(HoldView),
    Released(HoldView),
    /// Boxed, as is every booking answer: a booking is more than twice the size of the
    /// next largest answer, and every outcome is moved a few times on its way out.
    Confirmed(Box<BookingView>),
    BookingCancelled(Box<BookingView>),
    RefundMarked(RefundView),
    /// A failed attempt to pay a refund was recorded; the view says whether the refund is
    /// still `Pending` (to be tried again) or `Failed` for good.
    RefundAttemptRecorded(RefundView),
    HoldsExpired {
        hold_ids: Vec<String>,
    },
    OutboxAcknowledged {
        acknowledged_up_to: u64,
        remaining: u64,
    },
    NodeRetired {
        node_id: u64,
    },
    Rejected(Rejection),
    /// A confirm was refused after its payment had been charged: the refund that the
    /// state machine recorded in the same entry, so a charge never stands without a booking.
    ConfirmRefused {
        rejection: Rejection,
        refund: RefundView,
    },
    /// An event was cancelled with everything held or booked on it.
    EventCancelled(EventCancellation),
    WebhookAdded(crate::webhooks::WebhookView),
    WebhookRemoved(crate::webhooks::WebhookView),
    WebhookAcknowledged {
        webhook_id: String,
        delivered_up_to: u64,
    },
    /// A piece of a backup was staged; `done` once the backup replaced the state.
    RestoreProgress(RestoreProgress),
    /// A charge intent is recorded (or was already): charge this amount and currency.
    ChargeIntentRecorded {
        intent: crate::intents::ChargeIntent,
        /// This command recorded it (not an earlier one with the same key).
        new: bool,
    },
    /// A charge intent is gone; `dropped` when this command removed it.
    ChargeIntentDropped {
        charge_key: String,
        dropped: bool,
    },
    /// The id key is set: ids from now on are spelled with it.
    IdKeySet,
}

/// How far a restore has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreProgress {
    pub restore_id: u64,
    /// Bytes staged so far (all of them once `done`).
    pub received_bytes: u64,
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
    pub event_id: String,
    pub version: u64,
}

/// What cancelling an event did, counted (an event may have many bookings; each one's
/// cancellation and refund is in the outbox and in its booking).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCancellation {
    pub event_id: String,
    /// The event's version after the cancellation.
    pub version: u64,
    pub holds_released: u64,
    pub bookings_cancelled: u64,
    pub refunds_recorded: u64,
    /// Sum of the refunds recorded, in minor units of the event's currency.
    pub refund_amount: u64,
}

/// Lifecycle of a hold. A hold leaves `Active` exactly once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldStatus {
    Active,
    Confirmed,
    Released,
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
    pub hold_id: CompactString,
    pub status: HoldStatus,
    pub event_id: CompactString,
    pub customer_id: CompactString,
    pub seats: SmallVec<[CompactString; 2]>,
    pub pools: Vec<PoolQuantity>,
    pub amount: u64,
    pub currency: CompactString,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    /// The latest `expires_at_ms` any extension may reach.
    pub life_ends_at_ms: u64,
    pub booking_id: Option<CompactString>,
}

/// Lifecycle of a booking.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BookingStatus {
    Confirmed,
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
    pub booking_id: CompactString,
    pub hold_id: CompactString,
    pub status: BookingStatus,
    pub event_id: CompactString,
    pub customer_id: CompactString,
    pub seats: Vec<CompactString>,
    pub pools: Vec<PoolQuantity>,
    pub amount: u64,
    pub currency: CompactString,
    pub payment: PaymentRecord,
    pub created_at_ms: u64,
    pub cancelled_at_ms: Option<u64>,
    pub cancel_reason: Option<String>,
    pub refund: Option<RefundView>,
}

/// Whether a refund owed has been paid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefundStatus {
    /// Owed, not paid yet (possibly after failed attempts).
    Pending,
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
    pub refunds: Vec<RefundView>,
    /// The `after` of the next page, while more remain.
    pub next_after: Option<String>,
}

/// A refund owed to a customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundView {
    pub refund_id: String,
    pub status: RefundStatus,
    pub hold_id: String,
    pub booking_id: Option<String>,
    pub provider: String,
    pub payment_id: String,
    pub amount: u64,
    pub currency: String,
    pub created_at_ms: u64,
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
    pub pool_id: String,
    pub requested: u32,
    pub available: u64,
}

/// A refusal. Each has a stable code ([`Rejection::code`]) that the HTTP edge maps to a
/// status; none of them changes the state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    InvalidField {
        field: String,
        reason: String,
    },
    InvalidQuantity {
        field: String,
        reason: String,
    },
    InvalidTtl {
        ttl_seconds: u32,
    },
    TooManyItems {
        items: u64,
        max: u64,
    },
    EventNotFound {
        event_id: String,
    },
    SeatNotFound {
        seats: Vec<String>,
    },
    PoolNotFound {
        pools: Vec<String>,
    },
    HoldNotFound {
        hold_id: String,
    },
    BookingNotFound {
        booking_id: String,
    },
    RefundNotFound {
        refund_id: String,
    },
    WebhookNotFound {
        webhook_id: String,
    },
    SeatUnavailable {
        seats: Vec<String>,
    },
    PoolExhausted {
        pools: Vec<PoolShortage>,
    },
    NoAdjacentSeats {
        count: u32,
        section: Option<String>,
    },
    HoldNotActive {
        hold_id: String,
        status: HoldStatus,
    },
    HoldExpired {
        hold_id: String,
        expired_at_ms: u64,
    },
    HoldLimitReached {
        customer_id: String,
        max: u32,
    },
    BookingNotActive {
        booking_id: String,
    },
    RefundNotPending {
        refund_id: String,
    },
    /// A failed attempt was reported for a number the refund is not at: another report
    /// (an earlier leader's, or a retried proposal) got there first.
    RefundAttemptStale {
        refund_id: String,
        attempts: u32,
    },
    PaymentAmountMismatch {
        expected: u64,
        charged: u64,
    },
    ItemInUse {
        item_id: String,
    },
    ItemExists {
        item_ids: Vec<String>,
    },
    CapacityBelowUsage {
        pool_id: String,
        in_use: u64,
    },
    EventExists {
        event_id: String,
    },
    LimitReached {
        what: String,
        max: u64,
    },
    IdempotencyKeyReused {
        request_id: String,
    },
    /// Every slot of the idempotency table holds a key inside its retention window.
    IdempotencyTableFull {
        entries: u64,
    },
    /// The event was cancelled: nothing more can be held on it, and it cannot be cancelled
    /// again.
    EventCancelled {
        event_id: String,
    },
    /// A webhook is configured and lagging: the outbox's claims (events held plus events
    /// promised) would pass its bound. Decided before the command applies, never remembered
    /// for its request id, so a retry after the webhook caught up is evaluated afresh.
    OutboxFull {
        claims: u64,
        max: u64,
    },
    /// A restore piece that cannot be taken: the cluster holds data, the pieces came out
    /// of order, or the whole does not match its checksum (see `restore.rs`).
    RestoreRefused {
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
    pub seats_total: u64,
    pub seats_available: u64,
    pub seats_held: u64,
    pub seats_booked: u64,
}

/// An event's description, without its inventory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventInfo {
    pub event_id: String,
    pub name: String,
    pub category: Category,
    pub starts_at_ms: Option<u64>,
    pub currency: String,
    pub version: u64,
    pub summary: Summary,
    pub pools: u64,
}

/// What a seat is doing now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeatStatus {
    Available,
    Held,
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
    pub id: String,
    pub section: String,
    pub row: String,
    pub number: u32,
    pub price: u64,
    pub status: SeatStatus,
}

/// One pool in an availability listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolView {
    pub id: String,
    pub capacity: u64,
    pub available: u64,
    pub held: u64,
    pub booked: u64,
    pub price: u64,
}

/// A page of an event's availability.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailabilityPage {
    pub event_id: String,
    pub currency: String,
    pub version: u64,
    pub summary: Summary,
    pub seats: Vec<SeatView>,
    pub pools: Vec<PoolView>,
    /// The seat id to pass as `after` for the next page, while more seats remain.
    pub next_after: Option<String>,
}

/// A page of a customer's bookings, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingPage {
    pub bookings: Vec<BookingView>,
    pub next_after: Option<String>,
}

/// Something a consumer of the outbox is told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutboxKind {
    BookingConfirmed {
        booking_id: String,
        hold_id: String,
        event_id: String,
        customer_id: String,
        amount: u64,
        currency: String,
    },
    BookingCancelled {
        booking_id: String,
        event_id: String,
        customer_id: String,
        reason: String,
    },
    HoldExpired {
        hold_id: String,
        event_id: String,
        customer_id: String,
    },
    RefundOwed {
        refund_id: String,
        hold_id: String,
        booking_id: Option<String>,
        amount: u64,
        currency: String,
    },
    RefundPaid {
        refund_id: String,
    },
    /// A refund was given up (see [`RefundStatus::Failed`]).
    RefundFailed {
        refund_id: String,
        reason: String,
    },
    /// A hold was placed. Every hold makes one, so its ids are [`CompactString`]s: inline
    /// up to 24 bytes, copied from the hold's answer without an allocation.
    HoldPlaced {
        hold_id: CompactString,
        event_id: CompactString,
        customer_id: CompactString,
        amount: u64,
        currency: CompactString,
        expires_at_ms: u64,
    },
    /// A hold was released before its time: by its customer, or with its event's
    /// cancellation.
    HoldReleased {
        hold_id: CompactString,
        event_id: CompactString,
        customer_id: CompactString,
    },
}

/// One ordered outbox event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEvent {
    /// Position in the outbox, starting at 1, never reused.
    pub index: u64,
    pub time_ms: u64,
    pub kind: OutboxKind,
}
