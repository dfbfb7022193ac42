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
    pub event_id: String,
    pub customer_id: String,
    #[serde(default)]
    pub seats: Vec<String>,
    #[serde(default)]
    pub pools: Vec<PoolQuantityBody>,
    #[serde(default)]
    pub best_available: Option<BestAvailableBody>,
    /// 1–7200, default 600.
    #[serde(default)]
    pub ttl_seconds: Option<i64>,
}

/// A quantity asked of one pool.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct PoolQuantityBody {
    pub pool_id: String,
    pub quantity: i64,
}

/// Seats chosen by the cluster: `count` adjacent seats in one row.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct BestAvailableBody {
    pub count: i64,
    #[serde(default)]
    pub section: Option<String>,
    /// Take non-adjacent seats when no row has `count` together (default false).
    #[serde(default)]
    pub allow_split: bool,
}

/// `POST /booking/extend`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct ExtendBody {
    pub hold_id: String,
    /// 1–7200, default 600; counted from now, capped at the hold's maximum life.
    #[serde(default)]
    pub ttl_seconds: Option<i64>,
}

/// `POST /booking/confirm`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct ConfirmBody {
    pub hold_id: String,
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
    #[serde(default)]
    pub hold_id: Option<String>,
    #[serde(default)]
    pub booking_id: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /admin/events`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct CreateEventBody {
    pub event_id: String,
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
    #[serde(default)]
    pub seats: Vec<SeatBody>,
    #[serde(default)]
    pub seat_blocks: Vec<SeatBlockBody>,
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
    pub id: String,
    pub section: String,
    pub row: String,
    pub number: u32,
    pub price: u64,
}

/// Rows of seats with ids `SECTION-ROW-NUMBER`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct SeatBlockBody {
    pub section: String,
    pub rows: Vec<String>,
    pub seats_per_row: i64,
    pub price: u64,
}

/// One pool of fungible capacity.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct PoolBody {
    pub id: String,
    pub capacity: i64,
    pub price: u64,
}

/// `POST /admin/events/{event_id}/seats`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct AddSeatsBody {
    #[serde(default)]
    pub seats: Vec<SeatBody>,
    #[serde(default)]
    pub seat_blocks: Vec<SeatBlockBody>,
}

/// `POST /admin/events/{event_id}/pools`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct AddPoolsBody {
    pub pools: Vec<PoolBody>,
}

/// `PATCH /admin/events/{event_id}/pools/{pool_id}`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct PoolCapacityBody {
    pub capacity: i64,
}

/// A cluster member in `POST /cluster/init` and `POST /cluster/learners`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct MemberBody {
    pub id: u64,
    pub raft_addr: String,
    pub http_addr: String,
    #[serde(default)]
    pub region: String,
}

/// `POST /cluster/init`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct ClusterInitBody {
    pub members: Vec<MemberBody>,
}

/// `POST /cluster/membership`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct MembershipBody {
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
    pub error: ErrorJson,
}

/// Inside [`ErrorBody`].
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ErrorJson {
    /// Stable UPPER_SNAKE code, e.g. `SEAT_UNAVAILABLE`.
    pub code: String,
    pub message: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// A pool line of a hold or booking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct PoolQuantityJson {
    pub pool_id: String,
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
    #[schema(value_type = String)]
    pub hold_id: CompactString,
    /// `HELD`, `CONFIRMED`, `CANCELLED` or `EXPIRED`.
    pub status: &'static str,
    #[schema(value_type = String)]
    pub event_id: CompactString,
    #[schema(value_type = String)]
    pub customer_id: CompactString,
    #[schema(value_type = Vec<String>)]
    pub seats: Vec<CompactString>,
    pub pools: Vec<PoolQuantityJson>,
    pub amount: u64,
    #[schema(value_type = String)]
    pub currency: CompactString,
    pub created_at: String,
    pub expires_at: String,
    /// The latest `expires_at` extensions may reach.
    pub max_expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub booking_id: Option<CompactString>,
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
    pub refund_id: String,
    /// `PENDING`, `REFUNDED` or `FAILED`.
    pub status: &'static str,
    pub amount: u64,
    pub currency: String,
    pub hold_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<String>,
    pub provider: String,
    pub payment_id: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refunded_at: Option<String>,
    /// Failed attempts to pay it so far.
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<String>,
    /// Why the last attempt failed (why it is `FAILED`, once it is).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl RefundJson {
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
    pub refunds: Vec<RefundJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

/// A booking.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct BookingJson {
    #[schema(value_type = String)]
    pub booking_id: CompactString,
    #[schema(value_type = String)]
    pub hold_id: CompactString,
    /// `CONFIRMED` or `CANCELLED`.
    pub status: &'static str,
    #[schema(value_type = String)]
    pub event_id: CompactString,
    #[schema(value_type = String)]
    pub customer_id: CompactString,
    #[schema(value_type = Vec<String>)]
    pub seats: Vec<CompactString>,
    pub pools: Vec<PoolQuantityJson>,
    pub amount: u64,
    #[schema(value_type = String)]
    pub currency: CompactString,
    pub payment_id: String,
    pub payment_provider: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund: Option<RefundJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_index: Option<u64>,
}

impl BookingJson {
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
    pub customer_id: String,
    pub bookings: Vec<BookingJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

/// Seat counters of an event.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SummaryJson {
    pub seats_total: u64,
    pub seats_available: u64,
    pub seats_held: u64,
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
    pub id: String,
    pub section: String,
    pub row: String,
    pub number: u32,
    pub price: u64,
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
    pub id: String,
    pub capacity: u64,
    pub available: u64,
    pub held: u64,
    pub booked: u64,
    pub price: u64,
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
    pub event_id: String,
    pub name: String,
    pub category: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<String>,
    pub currency: String,
    /// The event's own version: changes only when this event changes.
    pub version: u64,
    pub applied_index: u64,
    pub summary: SummaryJson,
    /// Absent with `view=summary`. Serialised once per event version (see
    /// [`crate::reads::AvailabilityCache`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<SeatJson>>)]
    pub seats: Option<SeatsJson>,
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
    pub event_id: String,
    /// The event's version after the change.
    pub version: u64,
    pub applied_index: u64,
}

/// A member in `GET /cluster/status`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MemberJson {
    pub id: u64,
    pub raft_addr: String,
    pub http_addr: String,
    pub region: String,
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
    pub node_id: u64,
    pub leader_id: Option<u64>,
    pub term: u64,
    /// `leader`, `follower`, `candidate`, `learner`, `uninitialized` or `shutdown`.
    pub role: &'static str,
    pub applied_index: u64,
    pub committed_index: u64,
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
