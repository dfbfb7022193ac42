//! The JSON shapes of the HTTP API (API.md): request bodies as clients send them, answers
//! as they receive them, and the conversions from the state machine's views. The domain
//! crate does not know these field names; they live only here.
//!
//! Times are RFC 3339 strings in UTC; money is integer minor units plus a currency.
//! Numbers that the edge validates itself (quantities, TTLs) are read as `i64`, so that a
//! zero or negative value gets its specific code rather than a type error.

use chrono::{DateTime, SecondsFormat, Utc};
use holdfast_statemachine::{
    AvailabilityPage, BookingView, CompactString, EventInfo, HoldView, PoolQuantity, PoolView,
    RefundView, SeatView, Summary,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::replica::{ClusterStatus, MemberStatus};

/// Formats Unix milliseconds as RFC 3339 in UTC (`2026-11-24T10:10:00Z`; fractional
/// seconds only when they are not zero).
pub fn rfc3339(time_ms: u64) -> String {
    let time_ms = i64::try_from(time_ms).unwrap_or(i64::MAX);
    DateTime::<Utc>::from_timestamp_millis(time_ms)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
        .to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Parses an RFC 3339 time (any offset) into Unix milliseconds; `None` if it is malformed
/// or before 1970.
pub fn parse_rfc3339_ms(text: &str) -> Option<u64> {
    let time = DateTime::parse_from_rfc3339(text).ok()?;
    u64::try_from(time.timestamp_millis()).ok()
}

// ----------------------------------------------------------------------------------------
// Requests.

/// `POST /booking/hold`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct HoldBody {
    /// The event to hold in (an id).
    pub event_id: String,
    /// The customer the hold is for (an id). A key bound to a customer may name only that
    /// customer (`403 FORBIDDEN`).
    pub customer_id: String,
    /// Seat ids to take, each named once. Seats, pool lines and `best_available.count`
    /// together name 1 to 100 items; the hold takes all of them or none.
    #[serde(default)]
    pub seats: Vec<String>,
    /// Quantities of pools to take, each pool named once.
    #[serde(default)]
    pub pools: Vec<PoolQuantityBody>,
    /// Seats for the cluster to choose, besides any named in `seats`.
    #[serde(default)]
    pub best_available: Option<BestAvailableBody>,
    /// 1–7200, default 600.
    #[serde(default)]
    pub ttl_seconds: Option<i64>,
}

/// A quantity asked of one pool.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct PoolQuantityBody {
    /// The pool (an id).
    pub pool_id: String,
    /// Units to take, 1 to 100 (`400 INVALID_QUANTITY` otherwise).
    pub quantity: i64,
}

/// Seats chosen by the cluster: `count` adjacent seats in one row.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct BestAvailableBody {
    /// Seats to choose, 1 to 100; they count among the hold's items.
    pub count: i64,
    /// Choose only in this section (an id); in any section when absent.
    #[serde(default)]
    pub section: Option<String>,
    /// Take non-adjacent seats when no row has `count` together (default false).
    #[serde(default)]
    pub allow_split: bool,
}

/// `POST /booking/extend`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct ExtendBody {
    /// The hold to extend (an id).
    pub hold_id: String,
    /// 1–7200, default 600; counted from now, capped at the hold's maximum life.
    #[serde(default)]
    pub ttl_seconds: Option<i64>,
}

/// `POST /booking/confirm`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct ConfirmBody {
    /// The hold to pay for and turn into a booking (an id).
    pub hold_id: String,
    /// How to pay; charged before the confirm is proposed, and never twice for one
    /// `Idempotency-Key`.
    pub payment: PaymentBody,
}

/// How to pay.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct PaymentBody {
    /// `card` (default).
    #[serde(default)]
    pub method: Option<String>,
    /// The provider's token; the sandbox knows `tok_visa` and `tok_declined`.
    pub token: String,
}

/// `POST /booking/cancel`: exactly one of `hold_id` and `booking_id`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct CancelBody {
    /// A hold to release (an id).
    #[serde(default)]
    pub hold_id: Option<String>,
    /// A booking to cancel (an id); when it was paid, a refund of the whole payment is
    /// recorded, which the leader's refund worker pays.
    #[serde(default)]
    pub booking_id: Option<String>,
    /// Why, at most 256 bytes without control characters; kept with a cancelled booking,
    /// ignored when a hold is released.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /admin/events`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct CreateEventBody {
    /// The new event's id: 1 to 64 bytes without white space, control characters or `/`.
    pub event_id: String,
    /// Display name, at most 256 bytes without control characters; empty when absent.
    #[serde(default)]
    pub name: String,
    /// `movie|event|hotel|appointment|other` (default `other`).
    #[serde(default)]
    pub category: Option<String>,
    /// RFC 3339.
    #[serde(default)]
    pub starts_at: Option<String>,
    /// ISO 4217, e.g. `EUR`.
    pub currency: String,
    /// Seats listed one by one, at most 50,000.
    #[serde(default)]
    pub seats: Vec<SeatBody>,
    /// Rows of seats generated from blocks; with `seats`, at most 2,000,000 seats.
    #[serde(default)]
    pub seat_blocks: Vec<SeatBlockBody>,
    /// Pools of fungible capacity (general admission, a room type for one night), at most
    /// 10,000.
    #[serde(default)]
    pub pools: Vec<PoolBody>,
    /// Where it takes place (1–128 bytes).
    #[serde(default)]
    pub venue: Option<String>,
    /// The city label searches filter on (1–128 bytes).
    #[serde(default)]
    pub city: Option<String>,
    /// RFC 3339, not before `starts_at`.
    #[serde(default)]
    pub ends_at: Option<String>,
    /// At most 4096 bytes.
    #[serde(default)]
    pub description: Option<String>,
    /// At most 16 distinct tags of 1–32 bytes.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// One seat.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct SeatBody {
    /// The seat's id, unique within the event: 1 to 64 bytes without white space, control
    /// characters or `/`.
    pub id: String,
    /// The section the seat's row is in (an id).
    pub section: String,
    /// The row's name within its section (an id).
    pub row: String,
    /// Position in the row: orders the row's seats, and seats whose numbers follow each
    /// other are adjacent for best-available.
    pub number: u32,
    /// In minor units of the event's currency, at most 1,000,000,000.
    pub price: u64,
}

/// Rows of seats with ids `SECTION-ROW-NUMBER`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct SeatBlockBody {
    /// The section (an id).
    pub section: String,
    /// Row names (ids), 1 to 1,000, created in this order, which is the order
    /// best-available tries them in: best first.
    pub rows: Vec<String>,
    /// Seats in each row, 1 to 5,000, numbered from 1.
    pub seats_per_row: i64,
    /// Price of every seat of the block, in minor units, at most 1,000,000,000.
    pub price: u64,
}

/// One pool of fungible capacity.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct PoolBody {
    /// The pool's id, unique within the event: 1 to 64 bytes without white space, control
    /// characters or `/`. Hotel searches read an id `{room type}-{YYYY-MM-DD}` as one night
    /// of a room type.
    pub id: String,
    /// Units the pool has, 0 to 100,000,000.
    pub capacity: i64,
    /// Price of one unit, in minor units, at most 1,000,000,000.
    pub price: u64,
}

/// `POST /admin/events/{event_id}/seats`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct AddSeatsBody {
    /// Seats listed one by one, at most 50,000.
    #[serde(default)]
    pub seats: Vec<SeatBody>,
    /// Rows of seats generated from blocks; the event keeps at most 2,000,000 seats.
    #[serde(default)]
    pub seat_blocks: Vec<SeatBlockBody>,
}

/// `POST /admin/events/{event_id}/pools`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct AddPoolsBody {
    /// The pools to add, 1 to 10,000.
    pub pools: Vec<PoolBody>,
}

/// `PATCH /admin/events/{event_id}/pools/{pool_id}`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct PoolCapacityBody {
    /// The pool's new capacity, 0 to 100,000,000, and not below the units held and booked
    /// (`409 CAPACITY_BELOW_USAGE`).
    pub capacity: i64,
}

/// A cluster member in `POST /cluster/init` and `POST /cluster/learners`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct MemberBody {
    /// The node's Raft id, 1 or more, unique in the cluster.
    pub id: u64,
    /// `host:port` other nodes dial for Raft and the peer service.
    pub raft_addr: String,
    /// `host:port` of the node's HTTP API.
    pub http_addr: String,
    /// The node's region, for placement checks and leader preference; at most 256 bytes,
    /// empty when absent.
    #[serde(default)]
    pub region: String,
}

/// `POST /cluster/init`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct ClusterInitBody {
    /// The cluster's first voters, 1 to 100, with unique ids and this node among them.
    pub members: Vec<MemberBody>,
}

/// `POST /cluster/membership`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct MembershipBody {
    /// The whole new voter set: 1 to 100 node ids that are already members (add a new node
    /// as a learner first). Voters left out stay on as learners.
    pub voters: Vec<u64>,
}

/// `POST /cluster/leader`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferLeaderBody {
    /// The voter to hand leadership to.
    pub node_id: u64,
}

// ----------------------------------------------------------------------------------------
// Answers.

/// The error body of every non-2xx answer.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorJson,
}

/// Inside [`ErrorBody`].
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ErrorJson {
    /// Stable UPPER_SNAKE code, e.g. `SEAT_UNAVAILABLE`.
    pub code: String,
    /// Human-readable explanation; not stable, so clients act on `code` and `details`.
    pub message: String,
    /// Structured facts that depend on the code (such as the `field` and `reason` of
    /// `INVALID_FIELD`); always an object, `{}` when there are none.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// A pool line of a hold or booking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct PoolQuantityJson {
    /// The pool.
    pub pool_id: String,
    /// Units of the pool, 1 to 100.
    pub quantity: u32,
}

fn pool_lines(pools: &[PoolQuantity]) -> Vec<PoolQuantityJson> {
    pools
        .iter()
        .map(|line| PoolQuantityJson {
            pool_id: line.pool_id.clone(),
            quantity: line.quantity,
        })
        .collect()
}

/// A hold.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HoldJson {
    /// The hold's id, as extend, confirm, cancel and `GET /holds/{hold_id}` take it.
    #[schema(value_type = String)]
    pub hold_id: CompactString,
    /// `HELD`, `CONFIRMED`, `CANCELLED` or `EXPIRED`.
    pub status: &'static str,
    /// The event it holds in.
    #[schema(value_type = String)]
    pub event_id: CompactString,
    /// The customer it is for.
    #[schema(value_type = String)]
    pub customer_id: CompactString,
    /// The seats it holds (named or chosen by best-available).
    #[schema(value_type = Vec<String>)]
    pub seats: Vec<CompactString>,
    /// The pool units it holds.
    pub pools: Vec<PoolQuantityJson>,
    /// The price of its seats and pool units together, in minor units of `currency`.
    pub amount: u64,
    /// The event's ISO 4217 currency code.
    #[schema(value_type = String)]
    pub currency: CompactString,
    /// When it was placed (RFC 3339, cluster time).
    pub created_at: String,
    /// When it ends unless extended or confirmed (RFC 3339, cluster time).
    pub expires_at: String,
    /// The latest `expires_at` extensions may reach.
    pub max_expires_at: String,
    /// The booking it became; present once it is `CONFIRMED`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub booking_id: Option<CompactString>,
    /// The log index of the write that produced this answer (the original write's for a
    /// replayed `Idempotency-Key`); only in write answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_index: Option<u64>,
}

impl HoldJson {
    /// The hold as clients see it, with the index of the write that produced it.
    pub fn from_view(view: &HoldView, applied_index: Option<u64>) -> HoldJson {
        HoldJson {
            hold_id: view.hold_id.clone(),
            status: view.status.as_str(),
            event_id: view.event_id.clone(),
            customer_id: view.customer_id.clone(),
            seats: view.seats.to_vec(),
            pools: pool_lines(&view.pools),
            amount: view.amount,
            currency: view.currency.clone(),
            created_at: rfc3339(view.created_at_ms),
            expires_at: rfc3339(view.expires_at_ms),
            max_expires_at: rfc3339(view.life_ends_at_ms),
            booking_id: view.booking_id.clone(),
            applied_index,
        }
    }
}

/// A refund owed (or paid) to a customer.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RefundJson {
    /// The refund's id; also the provider's idempotency key when it is paid, so it is never
    /// paid twice.
    pub refund_id: String,
    /// `PENDING`, `REFUNDED` or `FAILED`.
    pub status: &'static str,
    /// The whole payment's amount, in minor units of `currency`.
    pub amount: u64,
    /// ISO 4217 currency code of `amount`.
    pub currency: String,
    /// The hold whose payment it gives back.
    pub hold_id: String,
    /// The cancelled booking it is for; absent when the charge never became a booking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<String>,
    /// The name of the payment provider that took the payment (such as `sandbox` or
    /// `http`).
    pub provider: String,
    /// The provider's id of the charge it gives back.
    pub payment_id: String,
    /// When it was recorded as owed (RFC 3339, cluster time).
    pub created_at: String,
    /// When it was paid; present once `REFUNDED`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refunded_at: Option<String>,
    /// Failed attempts to pay it so far.
    pub attempts: u32,
    /// When the last failed attempt was recorded; absent before any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<String>,
    /// Why the last attempt failed (why it is `FAILED`, once it is).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl RefundJson {
    /// The refund as clients see it, with its times as RFC 3339.
    pub fn from_view(view: &RefundView) -> RefundJson {
        RefundJson {
            refund_id: view.refund_id.clone(),
            status: view.status.as_str(),
            amount: view.amount,
            currency: view.currency.clone(),
            hold_id: view.hold_id.clone(),
            booking_id: view.booking_id.clone(),
            provider: view.provider.clone(),
            payment_id: view.payment_id.clone(),
            created_at: rfc3339(view.created_at_ms),
            refunded_at: view.refunded_at_ms.map(rfc3339),
            attempts: view.attempts,
            last_attempt_at: view.last_attempt_at_ms.map(rfc3339),
            reason: view.reason.clone(),
        }
    }
}

/// `GET /refunds`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RefundPageJson {
    /// The refunds of this page, oldest first, at most the `limit` asked for.
    pub refunds: Vec<RefundJson>,
    /// Pass as `after` for the next page; present while more refunds remain (a page of a
    /// status other than `PENDING` may end early, with this to go on from).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

/// A booking.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct BookingJson {
    /// The booking's id, as `GET /bookings/{booking_id}` and cancel take it.
    #[schema(value_type = String)]
    pub booking_id: CompactString,
    /// The hold it was confirmed from.
    #[schema(value_type = String)]
    pub hold_id: CompactString,
    /// `CONFIRMED` or `CANCELLED`.
    pub status: &'static str,
    /// The event it is for.
    #[schema(value_type = String)]
    pub event_id: CompactString,
    /// The customer it belongs to.
    #[schema(value_type = String)]
    pub customer_id: CompactString,
    /// The seats it books.
    #[schema(value_type = Vec<String>)]
    pub seats: Vec<CompactString>,
    /// The pool units it books.
    pub pools: Vec<PoolQuantityJson>,
    /// The price of its seats and pool units, in minor units of `currency`.
    pub amount: u64,
    /// The event's ISO 4217 currency code.
    #[schema(value_type = String)]
    pub currency: CompactString,
    /// The payment provider's id of the charge that paid for it.
    pub payment_id: String,
    /// The name of the provider that charged it (such as `sandbox` or `http`).
    pub payment_provider: String,
    /// When it was confirmed (RFC 3339, cluster time).
    pub created_at: String,
    /// When it was cancelled; present once `CANCELLED`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<String>,
    /// The reason given to the cancel (empty when none was); present once `CANCELLED`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    /// The refund its cancel recorded; present when a paid booking was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund: Option<RefundJson>,
    /// The log index of the write that produced this answer (the original write's for a
    /// replayed `Idempotency-Key`); only in write answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_index: Option<u64>,
}

impl BookingJson {
    /// The booking as clients see it, with `applied_index` when it answers a write (the
    /// index of the write that produced it) and `None` when it answers a read.
    pub fn from_view(view: &BookingView, applied_index: Option<u64>) -> BookingJson {
        BookingJson {
            booking_id: view.booking_id.clone(),
            hold_id: view.hold_id.clone(),
            status: view.status.as_str(),
            event_id: view.event_id.clone(),
            customer_id: view.customer_id.clone(),
            seats: view.seats.clone(),
            pools: pool_lines(&view.pools),
            amount: view.amount,
            currency: view.currency.clone(),
            payment_id: view.payment.payment_id.clone(),
            payment_provider: view.payment.provider.clone(),
            created_at: rfc3339(view.created_at_ms),
            cancelled_at: view.cancelled_at_ms.map(rfc3339),
            cancel_reason: view.cancel_reason.clone(),
            refund: view.refund.as_ref().map(RefundJson::from_view),
            applied_index,
        }
    }
}

/// `GET /customers/{customer_id}/bookings`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct BookingPageJson {
    /// The customer whose bookings these are.
    pub customer_id: String,
    /// The bookings of this page, newest first, at most the `limit` asked for.
    pub bookings: Vec<BookingJson>,
    /// Pass as `after` for the next page; present while more bookings remain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

/// Seat counters of an event.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SummaryJson {
    /// Seats the event has.
    pub seats_total: u64,
    /// Seats free to hold.
    pub seats_available: u64,
    /// Seats in live holds.
    pub seats_held: u64,
    /// Seats in confirmed bookings.
    pub seats_booked: u64,
}

impl From<Summary> for SummaryJson {
    fn from(summary: Summary) -> SummaryJson {
        SummaryJson {
            seats_total: summary.seats_total,
            seats_available: summary.seats_available,
            seats_held: summary.seats_held,
            seats_booked: summary.seats_booked,
        }
    }
}

/// One seat of an availability listing.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SeatJson {
    /// The seat's id, as a hold names it.
    pub id: String,
    /// The section its row is in.
    pub section: String,
    /// Its row within the section.
    pub row: String,
    /// Its position in the row; seats whose numbers follow each other are adjacent.
    pub number: u32,
    /// In minor units of `currency`.
    pub price: u64,
    /// The event's ISO 4217 currency code.
    pub currency: String,
    /// `AVAILABLE`, `HELD` or `BOOKED`.
    pub status: &'static str,
}

impl SeatJson {
    fn from_view(view: &SeatView, currency: &str) -> SeatJson {
        SeatJson {
            id: view.id.clone(),
            section: view.section.clone(),
            row: view.row.clone(),
            number: view.number,
            price: view.price,
            currency: currency.to_string(),
            status: view.status.as_str(),
        }
    }
}

/// One pool of an availability listing.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PoolJson {
    /// The pool's id, as a hold names it.
    pub id: String,
    /// Units the pool has.
    pub capacity: u64,
    /// Units free: `capacity - held - booked`.
    pub available: u64,
    /// Units in live holds.
    pub held: u64,
    /// Units in confirmed bookings.
    pub booked: u64,
    /// Price of one unit, in minor units of `currency`.
    pub price: u64,
    /// The event's ISO 4217 currency code.
    pub currency: String,
}

impl PoolJson {
    fn from_view(view: &PoolView, currency: &str) -> PoolJson {
        PoolJson {
            id: view.id.clone(),
            capacity: view.capacity,
            available: view.available,
            held: view.held,
            booked: view.booked,
            price: view.price,
            currency: currency.to_string(),
        }
    }
}

/// `GET /availability`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AvailabilityJson {
    /// The event.
    pub event_id: String,
    /// The event's display name.
    pub name: String,
    /// `movie`, `event`, `hotel`, `appointment` or `other`.
    pub category: &'static str,
    /// When the event starts (RFC 3339); absent when it has no start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<String>,
    /// The event's ISO 4217 currency code.
    pub currency: String,
    /// The event's own version: changes only when this event changes.
    pub version: u64,
    /// The log index the serving node had applied when it read.
    pub applied_index: u64,
    /// Seat counters of the whole event, whatever the page.
    pub summary: SummaryJson,
    /// Absent with `view=summary`. Serialised once per event version (see
    /// [`crate::reads::AvailabilityCache`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<SeatJson>>)]
    pub seats: Option<SeatsJson>,
    /// Every pool of the event, whatever the page or view.
    pub pools: Vec<PoolJson>,
    /// Pass as `after` for the next page; present while more seats remain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

/// A page of seats already serialised as a JSON array, shared between answers.
#[derive(Clone, Debug)]
pub struct SeatsJson(std::sync::Arc<Box<serde_json::value::RawValue>>);

impl SeatsJson {
    /// The seats of `page` as JSON.
    pub fn from_page(page: &AvailabilityPage) -> SeatsJson {
        let currency = page.currency.as_str();
        let seats: Vec<SeatJson> = page
            .seats
            .iter()
            .map(|seat| SeatJson::from_view(seat, currency))
            .collect();
        let json = serde_json::value::to_raw_value(&seats).expect("seats serialise");
        SeatsJson(std::sync::Arc::new(json))
    }

    /// Serialised length in bytes.
    pub fn len(&self) -> usize {
        self.0.get().len()
    }

    /// Whether the serialisation is empty (never: an empty page is `[]`).
    pub fn is_empty(&self) -> bool {
        self.0.get().is_empty()
    }
}

impl Serialize for SeatsJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl AvailabilityJson {
    /// An availability answer: `seats` (with the page's `next_after`) for the full view,
    /// `None` for the summary view.
    pub fn from_page(
        info: &EventInfo,
        page: &AvailabilityPage,
        seats: Option<(SeatsJson, Option<String>)>,
        applied_index: u64,
    ) -> AvailabilityJson {
        let currency = page.currency.as_str();
        AvailabilityJson {
            event_id: page.event_id.clone(),
            name: info.name.clone(),
            category: info.category.as_str(),
            starts_at: info.starts_at_ms.map(rfc3339),
            currency: page.currency.clone(),
            version: page.version,
            applied_index,
            summary: page.summary.into(),
            pools: page
                .pools
                .iter()
                .map(|pool| PoolJson::from_view(pool, currency))
                .collect(),
            next_after: seats.as_ref().and_then(|(_, next)| next.clone()),
            seats: seats.map(|(seats, _)| seats),
        }
    }
}

/// The answer of admin inventory writes.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EventChangeJson {
    /// The event changed.
    pub event_id: String,
    /// The event's version after the change.
    pub version: u64,
    /// The log index of the write that made the change (the original write's for a
    /// replayed `Idempotency-Key`).
    pub applied_index: u64,
}

/// A member in `GET /cluster/status`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MemberJson {
    /// The member's node id.
    pub id: u64,
    /// `host:port` of its node-to-node listener.
    pub raft_addr: String,
    /// `host:port` of its HTTP API.
    pub http_addr: String,
    /// Its region, as the membership records it.
    pub region: String,
    /// Whether it votes (`false`: a learner).
    pub voter: bool,
    /// Log entries behind the leader's log; only in the leader's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
    /// Milliseconds since the member last answered the leader; only in the leader's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_contact_ms: Option<u64>,
    /// The incarnation of the member's data directory the membership records (16 hex
    /// digits); absent when not known (a member recorded by an earlier version).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<String>,
}

/// An incarnation as the JSON and the protobuf messages show it: 16 hex digits, none when
/// not known (zero).
pub(crate) fn incarnation_json(incarnation: u64) -> Option<String> {
    (incarnation != 0).then(|| format!("{incarnation:016x}"))
}

/// [`incarnation_json`] read back: zero for none or anything that is not one.
pub(crate) fn incarnation_from_text(text: &str) -> u64 {
    u64::from_str_radix(text, 16).unwrap_or(0)
}

/// `GET /cluster/status`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ClusterStatusJson {
    /// The answering node.
    pub node_id: u64,
    /// The leader as the answering node knows it; `null` when it knows none.
    pub leader_id: Option<u64>,
    /// The Raft term the answering node is in.
    pub term: u64,
    /// `leader`, `follower`, `candidate`, `learner`, `uninitialized` or `shutdown`.
    pub role: &'static str,
    /// The last log index the answering node applied.
    pub applied_index: u64,
    /// The last log index known to be committed, as the answering node can tell; never
    /// below `applied_index`.
    pub committed_index: u64,
    /// Every member, voters and learners, as the answering node's membership has them.
    pub members: Vec<MemberJson>,
    /// Present while the voters would not survive the loss of one region (members in at
    /// least three regions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement_warning: Option<String>,
    /// The incarnation of the answering node's data directory (16 hex digits); a member
    /// whose incarnation is not the one the membership records is refused by its peers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<String>,
    /// The id of the node's cluster (generated by `POST /cluster/init` when the node was
    /// started without one); absent while the node belongs to no cluster yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
}

impl From<&ClusterStatus> for ClusterStatusJson {
    fn from(status: &ClusterStatus) -> ClusterStatusJson {
        ClusterStatusJson {
            node_id: status.node_id,
            leader_id: status.leader_id,
            term: status.term,
            role: status.role.as_str(),
            applied_index: status.applied_index,
            committed_index: status.committed_index,
            members: status.members.iter().map(MemberJson::from).collect(),
            placement_warning: status.placement_warning.clone(),
            incarnation: incarnation_json(status.incarnation),
            cluster_id: status.cluster_id.clone(),
        }
    }
}

impl From<&MemberStatus> for MemberJson {
    fn from(member: &MemberStatus) -> MemberJson {
        MemberJson {
            id: member.id,
            raft_addr: member.raft_addr.clone(),
            http_addr: member.http_addr.clone(),
            region: member.region.clone(),
            voter: member.voter,
            lag: member.lag,
            last_contact_ms: member.last_contact_ms,
            incarnation: incarnation_json(member.incarnation),
        }
    }
}

/// `POST /cluster/snapshot`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SnapshotJson {
    /// The node that built the snapshot (the one asked).
    pub node_id: u64,
    /// The last log index the snapshot covers.
    pub snapshot_index: u64,
    /// From the request until the snapshot was persisted, ms.
    pub build_ms: f64,
}

/// `/healthz` and `/readyz`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HealthJson {
    /// `ok`; on `/healthz`, `read_only` when replication stopped for good on this node and
    /// it stays up to serve stale reads (`--on-storage-failure read-only`).
    pub status: &'static str,
    /// The answering node.
    pub node_id: u64,
    /// Why replication stopped (with `read_only`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_515_000_000), "2026-11-24T10:10:00Z");
        assert_eq!(rfc3339(1_795_515_000_250), "2026-11-24T10:10:00.250Z");
        assert_eq!(
            parse_rfc3339_ms("2026-11-24T11:10:00+01:00"),
            Some(1_795_515_000_000)
        );
        assert_eq!(parse_rfc3339_ms("1969-12-31T23:59:59Z"), None);
        assert_eq!(parse_rfc3339_ms("tomorrow"), None);
    }
}
