//! The SDK's own request and answer types.
//!
//! Answers serialise to exactly API.md's JSON shapes (field names and status strings), so
//! `holdfastctl -o json` prints what the HTTP API would have answered. Times are RFC 3339
//! strings in UTC as the node sends them; money is integer minor units with the currency.

use std::time::Duration;

use holdfast_proto::booking as pb;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

// ---- reads ------------------------------------------------------------------------------

/// How fresh a read must be (API.md, "Reads").
///
/// ```
/// use holdfast_client::Consistency;
/// use std::time::Duration;
/// let level = Consistency::Bounded { max_staleness: Duration::from_millis(500) };
/// assert_eq!(level.as_str(), "bounded");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// Whatever the answering node has applied (the default; any node answers).
    #[default]
    Stale,
    /// At most this far behind the leader, or forwarded to it.
    Bounded {
        /// How stale the answer may be.
        max_staleness: Duration,
    },
    /// Confirmed with a quorum: never stale.
    Linearizable,
}

impl Consistency {
    /// The API's name of the level.
    ///
    /// ```
    /// assert_eq!(holdfast_client::Consistency::Linearizable.as_str(), "linearizable");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            Consistency::Stale => "stale",
            Consistency::Bounded { .. } => "bounded",
            Consistency::Linearizable => "linearizable",
        }
    }

    /// Parses `stale`, `bounded` (1 s) or `linearizable`.
    ///
    /// ```
    /// use holdfast_client::Consistency;
    /// assert_eq!(Consistency::parse("stale"), Some(Consistency::Stale));
    /// ```
    pub fn parse(text: &str) -> Option<Consistency> {
        match text {
            "stale" => Some(Consistency::Stale),
            "bounded" => Some(Consistency::Bounded {
                max_staleness: Duration::from_secs(1),
            }),
            "linearizable" => Some(Consistency::Linearizable),
            _ => None,
        }
    }
}

/// A read's level and the applied index it must see (`min_index`).
///
/// ```
/// use holdfast_client::{Consistency, ReadOptions};
/// let read = ReadOptions::at(Consistency::Linearizable);
/// let read = ReadOptions { min_index: Some(812), ..read };
/// assert_eq!(read.min_index, Some(812));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadOptions {
    /// The read level.
    pub consistency: Consistency,
    /// The answering node waits until it has applied this index (read-your-writes).
    pub min_index: Option<u64>,
}

impl ReadOptions {
    /// A read at `consistency` without `min_index`.
    ///
    /// ```
    /// use holdfast_client::{Consistency, ReadOptions};
    /// assert_eq!(ReadOptions::at(Consistency::Stale), ReadOptions::default());
    /// ```
    pub fn at(consistency: Consistency) -> ReadOptions {
        ReadOptions {
            consistency,
            min_index: None,
        }
    }

    pub(crate) fn to_proto(self) -> pb::Read {
        pb::Read {
            consistency: Some(self.consistency.as_str().to_string()),
            max_staleness_ms: match self.consistency {
                Consistency::Bounded { max_staleness } => {
                    Some(max_staleness.as_millis().min(u128::from(u64::MAX)) as u64)
                }
                _ => None,
            },
            min_index: self.min_index,
        }
    }
}

// ---- availability -------------------------------------------------------------------------

/// An event's seat and pool counts.
///
/// ```
/// let summary = holdfast_client::Summary::default();
/// assert_eq!(summary.seats_available, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Seats of the event.
    pub seats_total: u64,
    /// Seats free to hold.
    pub seats_available: u64,
    /// Seats held, not yet confirmed.
    pub seats_held: u64,
    /// Seats booked.
    pub seats_booked: u64,
}

impl From<pb::Summary> for Summary {
    fn from(summary: pb::Summary) -> Summary {
        Summary {
            seats_total: summary.seats_total,
            seats_available: summary.seats_available,
            seats_held: summary.seats_held,
            seats_booked: summary.seats_booked,
        }
    }
}

/// Where a seat stands.
///
/// ```
/// use holdfast_client::SeatStatus;
/// assert_eq!(SeatStatus::parse("HELD"), SeatStatus::Held);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SeatStatus {
    /// Free to hold.
    Available,
    /// Held by a customer.
    Held,
    /// Booked.
    Booked,
    /// A status this SDK does not know.
    #[serde(other)]
    Unknown,
}

impl SeatStatus {
    /// The status of the API's string.
    ///
    /// ```
    /// assert_eq!(holdfast_client::SeatStatus::parse("BOOKED"), holdfast_client::SeatStatus::Booked);
    /// ```
    pub fn parse(text: &str) -> SeatStatus {
        match text {
            "AVAILABLE" => SeatStatus::Available,
            "HELD" => SeatStatus::Held,
            "BOOKED" => SeatStatus::Booked,
            _ => SeatStatus::Unknown,
        }
    }
}

/// One seat of an availability page.
///
/// ```no_run
/// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
/// let page = client.availability("E").await?;
/// for seat in page.seats.iter().filter(|seat| seat.status == holdfast_client::SeatStatus::Available) {
///     println!("{} costs {} {}", seat.id, seat.price, seat.currency);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seat {
    /// The seat's id (`A-1`).
    pub id: String,
    /// Its section.
    pub section: String,
    /// Its row.
    pub row: String,
    /// Its number in the row.
    pub number: u32,
    /// Price in minor units.
    pub price: u64,
    /// ISO currency.
    pub currency: String,
    /// Where it stands.
    pub status: SeatStatus,
}

impl From<pb::Seat> for Seat {
    fn from(seat: pb::Seat) -> Seat {
        Seat {
            status: SeatStatus::parse(&seat.status),
            id: seat.id,
            section: seat.section,
            row: seat.row,
            number: seat.number,
            price: seat.price,
            currency: seat.currency,
        }
    }
}

/// A pool of interchangeable units (general admission, a hotel room type).
///
/// ```no_run
/// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
/// for pool in client.availability("E").await?.pools {
///     println!("{}: {} of {} free", pool.id, pool.available, pool.capacity);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// The pool's id.
    pub id: String,
    /// Units in the pool.
    pub capacity: u64,
    /// Units free.
    pub available: u64,
    /// Units held.
    pub held: u64,
    /// Units booked.
    pub booked: u64,
    /// Price of one unit in minor units.
    pub price: u64,
    /// ISO currency.
    pub currency: String,
}

impl From<pb::Pool> for Pool {
    fn from(pool: pb::Pool) -> Pool {
        Pool {
            id: pool.id,
            capacity: pool.capacity,
            available: pool.available,
            held: pool.held,
            booked: pool.booked,
            price: pool.price,
            currency: pool.currency,
        }
    }
}

/// One page of an event's availability (`GET /availability`).
///
/// ```no_run
/// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
/// let page = client.availability("E").await?;
/// println!("{} of {} seats free", page.summary.seats_available, page.summary.seats_total);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    /// The event.
    pub event_id: String,
    /// Its name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Its category.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub category: String,
    /// When it starts (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<String>,
    /// Its currency.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub currency: String,
    /// The event's own version (the HTTP ETag).
    #[serde(default)]
    pub version: u64,
    /// The answering node's applied index.
    pub applied_index: u64,
    /// Counts.
    pub summary: Summary,
    /// Seats of this page, by id.
    pub seats: Vec<Seat>,
    /// Every pool.
    pub pools: Vec<Pool>,
    /// The seat id to continue after, while more remain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

impl From<pb::Availability> for Availability {
    fn from(page: pb::Availability) -> Availability {
        Availability {
            event_id: page.event_id,
            name: page.name,
            category: page.category,
            starts_at: page.starts_at,
            currency: page.currency,
            version: page.version,
            applied_index: page.applied_index,
            summary: page.summary.unwrap_or_default().into(),
            seats: page.seats.into_iter().map(Seat::from).collect(),
            pools: page.pools.into_iter().map(Pool::from).collect(),
            next_after: page.next_after,
        }
    }
}

/// Which part of an event's availability to read.
///
/// ```
/// use holdfast_client::AvailabilityQuery;
/// let query = AvailabilityQuery::new("E").section("A").limit(500);
/// assert_eq!(query.section.as_deref(), Some("A"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AvailabilityQuery {
    /// The event.
    pub event_id: String,
    /// Only this section's seats.
    pub section: Option<String>,
    /// Counts only (`view=summary`) instead of every seat.
    pub summary_only: bool,
    /// At most this many seats (the node caps it at 5,000).
    pub limit: Option<u32>,
    /// Seats after this id (paging).
    pub after: Option<String>,
}

impl AvailabilityQuery {
    /// The full first page of `event_id`.
    ///
    /// ```
    /// let query = holdfast_client::AvailabilityQuery::new("E");
    /// assert!(!query.summary_only);
    /// ```
    pub fn new(event_id: impl Into<String>) -> AvailabilityQuery {
        AvailabilityQuery {
            event_id: event_id.into(),
            ..AvailabilityQuery::default()
        }
    }

    /// Only the seats of `section`.
    ///
    /// ```
    /// let query = holdfast_client::AvailabilityQuery::new("E").section("B");
    /// ```
    pub fn section(mut self, section: impl Into<String>) -> AvailabilityQuery {
        self.section = Some(section.into());
        self
    }

    /// Counts only.
    ///
    /// ```
    /// let query = holdfast_client::AvailabilityQuery::new("E").summary();
    /// assert!(query.summary_only);
    /// ```
    pub fn summary(mut self) -> AvailabilityQuery {
        self.summary_only = true;
        self
    }

    /// At most `limit` seats.
    ///
    /// ```
    /// let query = holdfast_client::AvailabilityQuery::new("E").limit(100);
    /// ```
    pub fn limit(mut self, limit: u32) -> AvailabilityQuery {
        self.limit = Some(limit);
        self
    }

    /// The seats after `seat_id` (the previous page's `next_after`).
    ///
    /// ```
    /// let query = holdfast_client::AvailabilityQuery::new("E").after("A-40");
    /// ```
    pub fn after(mut self, seat_id: impl Into<String>) -> AvailabilityQuery {
        self.after = Some(seat_id.into());
        self
    }

    pub(crate) fn to_proto(&self, read: ReadOptions) -> pb::AvailabilityRequest {
        pb::AvailabilityRequest {
            event_id: self.event_id.clone(),
            view: Some(if self.summary_only { "summary" } else { "full" }.into()),
            section: self.section.clone(),
            limit: self.limit,
            after: self.after.clone(),
            read: Some(read.to_proto()),
        }
    }
}

// ---- holds --------------------------------------------------------------------------------

/// Units of a pool.
///
/// ```
/// let ga = holdfast_client::PoolQuantity { pool_id: "GA".into(), quantity: 2 };
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolQuantity {
    /// The pool.
    pub pool_id: String,
    /// How many units.
    pub quantity: u64,
}

impl From<pb::PoolQuantity> for PoolQuantity {
    fn from(pool: pb::PoolQuantity) -> PoolQuantity {
        PoolQuantity {
            pool_id: pool.pool_id,
            quantity: u64::try_from(pool.quantity).unwrap_or(0),
        }
    }
}

fn pools_to_proto(pools: &[PoolQuantity]) -> Vec<pb::PoolQuantity> {
    pools
        .iter()
        .map(|pool| pb::PoolQuantity {
            pool_id: pool.pool_id.clone(),
            quantity: i64::try_from(pool.quantity).unwrap_or(i64::MAX),
        })
        .collect()
}

/// `count` adjacent seats in one row, chosen by the node.
///
/// ```
/// let best = holdfast_client::BestAvailable { count: 4, section: Some("A".into()), allow_split: false };
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BestAvailable {
    /// How many seats.
    pub count: u32,
    /// Only in this section.
    pub section: Option<String>,
    /// Whether seats may be split over rows when no row has `count` together.
    pub allow_split: bool,
}

/// A hold to place: seats by id, pool units and/or best available seats, all or none.
///
/// ```
/// use holdfast_client::HoldRequest;
/// use std::time::Duration;
/// let request = HoldRequest::seats("E", "c-42", ["A-1", "A-2"])
///     .pool("GA", 2)
///     .ttl(Duration::from_secs(300));
/// assert_eq!(request.seats.len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HoldRequest {
    /// The idempotency key; the SDK generates one when `None`.
    pub idempotency_key: Option<String>,
    /// The event.
    pub event_id: String,
    /// The customer.
    pub customer_id: String,
    /// Seats by id.
    pub seats: Vec<String>,
    /// Pool units.
    pub pools: Vec<PoolQuantity>,
    /// Seats chosen by the node.
    pub best_available: Option<BestAvailable>,
    /// The hold's time to live (1 s – 2 h; the node's default is 10 min).
    pub ttl: Option<Duration>,
}

impl HoldRequest {
    /// A hold of nothing yet for `customer_id` at `event_id`; add seats or pools.
    ///
    /// ```
    /// let request = holdfast_client::HoldRequest::new("E", "c-1").seat("A-1");
    /// ```
    pub fn new(event_id: impl Into<String>, customer_id: impl Into<String>) -> HoldRequest {
        HoldRequest {
            event_id: event_id.into(),
            customer_id: customer_id.into(),
            ..HoldRequest::default()
        }
    }

    /// A hold of `seats`.
    ///
    /// ```
    /// let request = holdfast_client::HoldRequest::seats("E", "c-1", ["A-1"]);
    /// ```
    pub fn seats<S: Into<String>>(
        event_id: impl Into<String>,
        customer_id: impl Into<String>,
        seats: impl IntoIterator<Item = S>,
    ) -> HoldRequest {
        HoldRequest {
            seats: seats.into_iter().map(Into::into).collect(),
            ..HoldRequest::new(event_id, customer_id)
        }
    }

    /// Adds a seat.
    ///
    /// ```
    /// let request = holdfast_client::HoldRequest::new("E", "c-1").seat("A-1").seat("A-2");
    /// ```
    pub fn seat(mut self, seat_id: impl Into<String>) -> HoldRequest {
        self.seats.push(seat_id.into());
        self
    }

    /// Adds `quantity` units of `pool_id`.
    ///
    /// ```
    /// let request = holdfast_client::HoldRequest::new("E", "c-1").pool("GA", 3);
    /// ```
    pub fn pool(mut self, pool_id: impl Into<String>, quantity: u64) -> HoldRequest {
        self.pools.push(PoolQuantity {
            pool_id: pool_id.into(),
            quantity,
        });
        self
    }

    /// Asks the node for `count` adjacent seats, in `section` if given.
    ///
    /// ```
    /// let request = holdfast_client::HoldRequest::new("E", "c-1").best_available(4, Some("A"));
    /// ```
    pub fn best_available(mut self, count: u32, section: Option<&str>) -> HoldRequest {
        self.best_available = Some(BestAvailable {
            count,
            section: section.map(str::to_string),
            allow_split: false,
        });
        self
    }

    /// Sets the time to live.
    ///
    /// ```
    /// let request = holdfast_client::HoldRequest::new("E", "c-1").ttl(std::time::Duration::from_secs(60));
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> HoldRequest {
        self.ttl = Some(ttl);
        self
    }

    /// Uses `key` as the idempotency key instead of a generated one.
    ///
    /// ```
    /// let request = holdfast_client::HoldRequest::new("E", "c-1").seat("A-1").idempotency_key("order-17");
    /// ```
    pub fn idempotency_key(mut self, key: impl Into<String>) -> HoldRequest {
        self.idempotency_key = Some(key.into());
        self
    }

    pub(crate) fn into_proto(self, key: String) -> Result<pb::HoldRequest> {
        if self.seats.is_empty() && self.pools.is_empty() && self.best_available.is_none() {
            return Err(Error::InvalidArgument(
                "a hold needs seats, pools or best_available".into(),
            ));
        }
        Ok(pb::HoldRequest {
            idempotency_key: Some(key),
            event_id: self.event_id,
            customer_id: self.customer_id,
            seats: self.seats,
            pools: pools_to_proto(&self.pools),
            best_available: self.best_available.as_ref().map(|best| pb::BestAvailable {
                count: i64::from(best.count),
                section: best.section.clone(),
                allow_split: best.allow_split,
            }),
            ttl_seconds: self.ttl.map(seconds),
        })
    }
}

fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// Where a hold stands.
///
/// ```
/// assert_eq!(holdfast_client::HoldStatus::parse("HELD"), holdfast_client::HoldStatus::Held);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HoldStatus {
    /// Holding its items.
    Held,
    /// Confirmed into a booking.
    Confirmed,
    /// Released.
    Cancelled,
    /// Its time passed.
    Expired,
    /// A status this SDK does not know.
    #[serde(other)]
    Unknown,
}

impl HoldStatus {
    /// The status of the API's string.
    ///
    /// ```
    /// assert_eq!(holdfast_client::HoldStatus::parse("EXPIRED"), holdfast_client::HoldStatus::Expired);
    /// ```
    pub fn parse(text: &str) -> HoldStatus {
        match text {
            "HELD" => HoldStatus::Held,
            "CONFIRMED" => HoldStatus::Confirmed,
            "CANCELLED" => HoldStatus::Cancelled,
            "EXPIRED" => HoldStatus::Expired,
            _ => HoldStatus::Unknown,
        }
    }
}

/// A hold as the node answers it.
///
/// ```no_run
/// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
/// let hold = client.hold(holdfast_client::HoldRequest::seats("E", "c-1", ["A-1"])).await?;
/// println!("{} until {}: {} {}", hold.hold_id, hold.expires_at, hold.amount, hold.currency);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// Its id.
    pub hold_id: String,
    /// Where it stands.
    pub status: HoldStatus,
    /// The event.
    pub event_id: String,
    /// The customer.
    pub customer_id: String,
    /// Held seats.
    pub seats: Vec<String>,
    /// Held pool units.
    pub pools: Vec<PoolQuantity>,
    /// Total price in minor units.
    pub amount: u64,
    /// ISO currency.
    pub currency: String,
    /// When it was placed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_at: String,
    /// When it expires.
    pub expires_at: String,
    /// The latest it can be extended to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub max_expires_at: String,
    /// The booking it became.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<String>,
    /// The log index the answer reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_index: Option<u64>,
}

impl From<pb::Hold> for Hold {
    fn from(hold: pb::Hold) -> Hold {
        Hold {
            status: HoldStatus::parse(&hold.status),
            hold_id: hold.hold_id,
            event_id: hold.event_id,
            customer_id: hold.customer_id,
            seats: hold.seats,
            pools: hold.pools.into_iter().map(PoolQuantity::from).collect(),
            amount: hold.amount,
            currency: hold.currency,
            created_at: hold.created_at,
            expires_at: hold.expires_at,
            max_expires_at: hold.max_expires_at,
            booking_id: hold.booking_id,
            applied_index: hold.applied_index,
        }
    }
}

/// Extends a hold's time to live.
///
/// ```
/// let request = holdfast_client::ExtendRequest::new("h_1").ttl(std::time::Duration::from_secs(300));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtendRequest {
    /// The idempotency key; the SDK generates one when `None`.
    pub idempotency_key: Option<String>,
    /// The hold.
    pub hold_id: String,
    /// New time to live from now (capped by the hold's maximum life).
    pub ttl: Option<Duration>,
}

impl ExtendRequest {
    /// Extends `hold_id` by the node's default.
    ///
    /// ```
    /// let request = holdfast_client::ExtendRequest::new("h_1");
    /// ```
    pub fn new(hold_id: impl Into<String>) -> ExtendRequest {
        ExtendRequest {
            hold_id: hold_id.into(),
            ..ExtendRequest::default()
        }
    }

    /// Sets the new time to live.
    ///
    /// ```
    /// let request = holdfast_client::ExtendRequest::new("h_1").ttl(std::time::Duration::from_secs(60));
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> ExtendRequest {
        self.ttl = Some(ttl);
        self
    }

    /// Uses `key` as the idempotency key.
    ///
    /// ```
    /// let request = holdfast_client::ExtendRequest::new("h_1").idempotency_key("k-1");
    /// ```
    pub fn idempotency_key(mut self, key: impl Into<String>) -> ExtendRequest {
        self.idempotency_key = Some(key.into());
        self
    }

    pub(crate) fn to_proto(&self, key: String) -> pb::ExtendRequest {
        pb::ExtendRequest {
            idempotency_key: Some(key),
            hold_id: self.hold_id.clone(),
            ttl_seconds: self.ttl.map(seconds),
        }
    }
}

/// Confirms a hold with a payment.
///
/// ```
/// let request = holdfast_client::ConfirmRequest::new("h_1", "tok_visa");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfirmRequest {
    /// The idempotency key; the SDK generates one when `None`.
    pub idempotency_key: Option<String>,
    /// The hold.
    pub hold_id: String,
    /// Payment method (`card` by default at the node).
    pub method: Option<String>,
    /// The payment token.
    pub token: String,
}

impl ConfirmRequest {
    /// Confirms `hold_id`, paying with `token`.
    ///
    /// ```
    /// let request = holdfast_client::ConfirmRequest::new("h_1", "tok_visa");
    /// assert_eq!(request.token, "tok_visa");
    /// ```
    pub fn new(hold_id: impl Into<String>, token: impl Into<String>) -> ConfirmRequest {
        ConfirmRequest {
            hold_id: hold_id.into(),
            token: token.into(),
            ..ConfirmRequest::default()
        }
    }

    /// Uses `key` as the idempotency key (repeat a confirm whose answer was lost with it).
    ///
    /// ```
    /// let request = holdfast_client::ConfirmRequest::new("h_1", "tok_visa").idempotency_key("pay-17");
    /// ```
    pub fn idempotency_key(mut self, key: impl Into<String>) -> ConfirmRequest {
        self.idempotency_key = Some(key.into());
        self
    }

    pub(crate) fn to_proto(&self, key: String) -> pb::ConfirmRequest {
        pb::ConfirmRequest {
            idempotency_key: Some(key),
            hold_id: self.hold_id.clone(),
            payment: Some(pb::Payment {
                method: self.method.clone(),
                token: self.token.clone(),
            }),
        }
    }
}

/// A refund of a cancelled booking or of a charge whose confirm was rejected.
///
/// ```no_run
/// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
/// if let Some(refund) = client.booking("b_1").await?.refund {
///     println!("{} {} {}", refund.status, refund.amount, refund.currency);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    /// Its id.
    pub refund_id: String,
    /// `PENDING`, `REFUNDED` or `FAILED`.
    pub status: String,
    /// Amount in minor units.
    pub amount: u64,
    /// ISO currency.
    pub currency: String,
    /// The hold.
    pub hold_id: String,
    /// The booking, if there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<String>,
    /// The payment provider.
    pub provider: String,
    /// The refunded payment.
    pub payment_id: String,
    /// When it was recorded.
    pub created_at: String,
    /// When it was paid back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunded_at: Option<String>,
    /// Failed attempts to pay it so far.
    #[serde(default)]
    pub attempts: u32,
    /// Why the last attempt failed (why it is `FAILED`, once it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<pb::Refund> for Refund {
    fn from(refund: pb::Refund) -> Refund {
        Refund {
            refund_id: refund.refund_id,
            status: refund.status,
            amount: refund.amount,
            currency: refund.currency,
            hold_id: refund.hold_id,
            booking_id: refund.booking_id,
            provider: refund.provider,
            payment_id: refund.payment_id,
            created_at: refund.created_at,
            refunded_at: refund.refunded_at,
            attempts: refund.attempts,
            reason: refund.reason,
        }
    }
}

/// Where a booking stands.
///
/// ```
/// assert_eq!(holdfast_client::BookingStatus::parse("CONFIRMED"), holdfast_client::BookingStatus::Confirmed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BookingStatus {
    /// Paid and valid.
    Confirmed,
    /// Cancelled (see its refund).
    Cancelled,
    /// A status this SDK does not know.
    #[serde(other)]
    Unknown,
}

impl BookingStatus {
    /// The status of the API's string.
    ///
    /// ```
    /// assert_eq!(holdfast_client::BookingStatus::parse("CANCELLED"), holdfast_client::BookingStatus::Cancelled);
    /// ```
    pub fn parse(text: &str) -> BookingStatus {
        match text {
            "CONFIRMED" => BookingStatus::Confirmed,
            "CANCELLED" => BookingStatus::Cancelled,
            _ => BookingStatus::Unknown,
        }
    }
}

/// A booking: a confirmed (and possibly later cancelled) hold.
///
/// ```no_run
/// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
/// let booking = client.confirm(holdfast_client::ConfirmRequest::new("h_1", "tok_visa")).await?;
/// println!("{} paid by {}", booking.booking_id, booking.payment_id);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    /// Its id.
    pub booking_id: String,
    /// The hold it confirmed.
    pub hold_id: String,
    /// Where it stands.
    pub status: BookingStatus,
    /// The event.
    pub event_id: String,
    /// The customer.
    pub customer_id: String,
    /// Booked seats.
    pub seats: Vec<String>,
    /// Booked pool units.
    pub pools: Vec<PoolQuantity>,
    /// Amount paid in minor units.
    pub amount: u64,
    /// ISO currency.
    pub currency: String,
    /// The provider's payment id.
    pub payment_id: String,
    /// The payment provider.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub payment_provider: String,
    /// When it was confirmed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_at: String,
    /// When it was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<String>,
    /// Why it was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    /// Its refund, once cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund: Option<Refund>,
    /// The log index the answer reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_index: Option<u64>,
}

impl From<pb::Booking> for Booking {
    fn from(booking: pb::Booking) -> Booking {
        Booking {
            status: BookingStatus::parse(&booking.status),
            booking_id: booking.booking_id,
            hold_id: booking.hold_id,
            event_id: booking.event_id,
            customer_id: booking.customer_id,
            seats: booking.seats,
            pools: booking.pools.into_iter().map(PoolQuantity::from).collect(),
            amount: booking.amount,
            currency: booking.currency,
            payment_id: booking.payment_id,
            payment_provider: booking.payment_provider,
            created_at: booking.created_at,
            cancelled_at: booking.cancelled_at,
            cancel_reason: booking.cancel_reason,
            refund: booking.refund.map(Refund::from),
            applied_index: booking.applied_index,
        }
    }
}

/// What to cancel: a hold (released) or a booking (refunded).
///
/// ```
/// let release = holdfast_client::CancelRequest::hold("h_1");
/// let refund = holdfast_client::CancelRequest::booking("b_1", Some("customer asked"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelRequest {
    /// The idempotency key; the SDK generates one when `None`.
    pub idempotency_key: Option<String>,
    /// The target.
    pub target: CancelTarget,
}

/// The target of a [`CancelRequest`].
///
/// ```
/// let target = holdfast_client::CancelTarget::Hold("h_1".into());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelTarget {
    /// Release this hold.
    Hold(String),
    /// Cancel this booking, with an optional reason.
    Booking {
        /// The booking.
        booking_id: String,
        /// Why.
        reason: Option<String>,
    },
}

impl CancelRequest {
    /// Releases `hold_id`.
    ///
    /// ```
    /// let request = holdfast_client::CancelRequest::hold("h_1");
    /// ```
    pub fn hold(hold_id: impl Into<String>) -> CancelRequest {
        CancelRequest {
            idempotency_key: None,
            target: CancelTarget::Hold(hold_id.into()),
        }
    }

    /// Cancels `booking_id`.
    ///
    /// ```
    /// let request = holdfast_client::CancelRequest::booking("b_1", None);
    /// ```
    pub fn booking(booking_id: impl Into<String>, reason: Option<&str>) -> CancelRequest {
        CancelRequest {
            idempotency_key: None,
            target: CancelTarget::Booking {
                booking_id: booking_id.into(),
                reason: reason.map(str::to_string),
            },
        }
    }

    /// Uses `key` as the idempotency key.
    ///
    /// ```
    /// let request = holdfast_client::CancelRequest::hold("h_1").idempotency_key("k");
    /// ```
    pub fn idempotency_key(mut self, key: impl Into<String>) -> CancelRequest {
        self.idempotency_key = Some(key.into());
        self
    }

    pub(crate) fn to_proto(&self, key: String) -> pb::CancelRequest {
        let (hold_id, booking_id, reason) = match &self.target {
            CancelTarget::Hold(hold_id) => (Some(hold_id.clone()), None, None),
            CancelTarget::Booking { booking_id, reason } => {
                (None, Some(booking_id.clone()), reason.clone())
            }
        };
        pb::CancelRequest {
            idempotency_key: Some(key),
            hold_id,
            booking_id,
            reason,
        }
    }
}

/// A released hold or a cancelled booking (serialised as the one it is, as the API does).
///
/// ```no_run
/// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
/// match client.cancel(holdfast_client::CancelRequest::hold("h_1")).await? {
///     holdfast_client::Cancelled::Hold(hold) => println!("released {}", hold.hold_id),
///     holdfast_client::Cancelled::Booking(booking) => println!("refund {:?}", booking.refund),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Cancelled {
    /// The released hold.
    Hold(Box<Hold>),
    /// The cancelled booking.
    Booking(Box<Booking>),
}

impl TryFrom<pb::Cancelled> for Cancelled {
    type Error = Error;
    fn try_from(cancelled: pb::Cancelled) -> Result<Cancelled> {
        match (cancelled.hold, cancelled.booking) {
            (_, Some(booking)) => Ok(Cancelled::Booking(Box::new(booking.into()))),
            (Some(hold), None) => Ok(Cancelled::Hold(Box::new(hold.into()))),
            (None, None) => Err(Error::Protocol(
                "a cancel answer with neither hold nor booking".into(),
            )),
        }
    }
}

/// A page of a customer's bookings, newest first.
///
/// ```no_run
/// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
/// let page = client.history("c-1", None, None).await?;
/// for booking in page.bookings { println!("{}", booking.booking_id); }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingPage {
    /// The customer.
    pub customer_id: String,
    /// Bookings of this page.
    pub bookings: Vec<Booking>,
    /// The booking id to continue after, while more remain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

impl From<pb::BookingPage> for BookingPage {
    fn from(page: pb::BookingPage) -> BookingPage {
        BookingPage {
            customer_id: page.customer_id,
            bookings: page.bookings.into_iter().map(Booking::from).collect(),
            next_after: page.next_after,
        }
    }
}

// ---- search ---------------------------------------------------------------------------------

/// Filters of an event search, all optional and combined with AND.
///
/// ```
/// let query = holdfast_client::SearchQuery { category: Some("movie".into()), city: Some("Berlin".into()), ..Default::default() };
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// `movie`, `event`, `hotel`, `appointment` or `other`.
    pub category: Option<String>,
    /// Case-insensitive text in the name or venue.
    pub q: Option<String>,
    /// The city.
    pub city: Option<String>,
    /// Starting at or after (RFC 3339).
    pub starts_from: Option<String>,
    /// Starting at or before (RFC 3339).
    pub starts_to: Option<String>,
    /// At least this many seats or pool units free.
    pub min_available: Option<u64>,
    /// Hotels: first night (YYYY-MM-DD).
    pub nights_from: Option<String>,
    /// Hotels: last night (YYYY-MM-DD).
    pub nights_to: Option<String>,
    /// At most this many events (≤ 500).
    pub limit: Option<u32>,
    /// Events after this id (paging).
    pub after: Option<String>,
}

impl SearchQuery {
    pub(crate) fn to_proto(&self, read: ReadOptions) -> pb::SearchEventsRequest {
        pb::SearchEventsRequest {
            category: self.category.clone(),
            q: self.q.clone(),
            city: self.city.clone(),
            starts_from: self.starts_from.clone(),
            starts_to: self.starts_to.clone(),
            min_available: self.min_available,
            nights_from: self.nights_from.clone(),
            nights_to: self.nights_to.clone(),
            limit: self.limit,
            after: self.after.clone(),
            read: Some(read.to_proto()),
        }
    }
}

/// Pool totals of an event.
///
/// ```
/// let pools = holdfast_client::PoolSummary::default();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PoolSummary {
    /// Units in all pools.
    pub capacity: u64,
    /// Units free.
    pub available: u64,
    /// Units held.
    pub held: u64,
    /// Units booked.
    pub booked: u64,
}

/// An event's metadata and availability summary, as search lists it.
///
/// ```no_run
/// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
/// let event = client.event("E").await?;
/// println!("{} at {:?}", event.name, event.venue);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventListing {
    /// Its id.
    pub event_id: String,
    /// Its name.
    pub name: String,
    /// Its category.
    pub category: String,
    /// The venue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venue: Option<String>,
    /// The city.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Start (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<String>,
    /// End (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// ISO currency.
    pub currency: String,
    /// `ACTIVE` or `CANCELLED`.
    pub status: String,
    /// Seat counts.
    pub summary: Summary,
    /// Pool totals.
    pub pools: PoolSummary,
    /// The event's version.
    pub version: u64,
}

impl From<pb::EventListing> for EventListing {
    fn from(event: pb::EventListing) -> EventListing {
        let pools = event.pools.unwrap_or_default();
        EventListing {
            event_id: event.event_id,
            name: event.name,
            category: event.category,
            venue: event.venue,
            city: event.city,
            starts_at: event.starts_at,
            ends_at: event.ends_at,
            description: event.description,
            tags: event.tags,
            currency: event.currency,
            status: event.status,
            summary: event.summary.unwrap_or_default().into(),
            pools: PoolSummary {
                capacity: pools.capacity,
                available: pools.available,
                held: pools.held,
                booked: pools.booked,
            },
            version: event.version,
        }
    }
}

/// A page of search results.
///
/// ```no_run
/// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
/// let page = client.search_events(holdfast_client::SearchQuery::default()).await?;
/// println!("{} events, more: {}", page.events.len(), page.next_after.is_some());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPage {
    /// Events of this page.
    pub events: Vec<EventListing>,
    /// The event id to continue after, while more remain.
    #[serde(default)]
    pub next_after: Option<String>,
}

impl From<pb::EventPage> for EventPage {
    fn from(page: pb::EventPage) -> EventPage {
        EventPage {
            events: page.events.into_iter().map(EventListing::from).collect(),
            next_after: page.next_after,
        }
    }
}

// ---- inventory ------------------------------------------------------------------------------

/// A seat of a new event.
///
/// ```
/// let seat = holdfast_client::SeatSpec { id: "A-1".into(), section: "A".into(), row: "A".into(), number: 1, price: 4500 };
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatSpec {
    /// Its id.
    pub id: String,
    /// Its section.
    pub section: String,
    /// Its row.
    pub row: String,
    /// Its number.
    pub number: u32,
    /// Price in minor units.
    pub price: u64,
}

/// Rows of numbered seats (`section-row-number` ids) without listing each one.
///
/// ```
/// let block = holdfast_client::SeatBlock { section: "A".into(), rows: vec!["1".into(), "2".into()], seats_per_row: 40, price: 4500 };
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatBlock {
    /// The section.
    pub section: String,
    /// Row names.
    pub rows: Vec<String>,
    /// Seats in each row.
    pub seats_per_row: u32,
    /// Price of each seat.
    pub price: u64,
}

/// A pool of a new event.
///
/// ```
/// let pool = holdfast_client::PoolSpec { id: "GA".into(), capacity: 5000, price: 2500 };
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSpec {
    /// Its id.
    pub id: String,
    /// Units.
    pub capacity: u64,
    /// Price of a unit.
    pub price: u64,
}

fn seat_specs(seats: &[SeatSpec]) -> Vec<pb::SeatSpec> {
    seats
        .iter()
        .map(|seat| pb::SeatSpec {
            id: seat.id.clone(),
            section: seat.section.clone(),
            row: seat.row.clone(),
            number: seat.number,
            price: seat.price,
        })
        .collect()
}

fn seat_blocks(blocks: &[SeatBlock]) -> Vec<pb::SeatBlock> {
    blocks
        .iter()
        .map(|block| pb::SeatBlock {
            section: block.section.clone(),
            rows: block.rows.clone(),
            seats_per_row: i64::from(block.seats_per_row),
            price: block.price,
        })
        .collect()
}

pub(crate) fn pool_specs(pools: &[PoolSpec]) -> Vec<pb::PoolSpec> {
    pools
        .iter()
        .map(|pool| pb::PoolSpec {
            id: pool.id.clone(),
            capacity: i64::try_from(pool.capacity).unwrap_or(i64::MAX),
            price: pool.price,
        })
        .collect()
}

/// A new event with its inventory (`POST /admin/events`).
///
/// ```
/// use holdfast_client::{NewEvent, SeatBlock};
/// let event = NewEvent {
///     seat_blocks: vec![SeatBlock { section: "A".into(), rows: vec!["1".into()], seats_per_row: 10, price: 4500 }],
///     ..NewEvent::new("E", "Concert", "EUR")
/// };
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEvent {
    /// Its id.
    pub event_id: String,
    /// Its name.
    pub name: String,
    /// `movie`, `event`, `hotel`, `appointment` or `other`.
    pub category: Option<String>,
    /// Start (RFC 3339).
    pub starts_at: Option<String>,
    /// ISO currency.
    pub currency: String,
    /// Seats listed one by one.
    #[serde(default)]
    pub seats: Vec<SeatSpec>,
    /// Rows of seats.
    #[serde(default)]
    pub seat_blocks: Vec<SeatBlock>,
    /// Pools.
    #[serde(default)]
    pub pools: Vec<PoolSpec>,
}

impl NewEvent {
    /// An event without inventory yet.
    ///
    /// ```
    /// let event = holdfast_client::NewEvent::new("E", "Concert", "EUR");
    /// ```
    pub fn new(
        event_id: impl Into<String>,
        name: impl Into<String>,
        currency: impl Into<String>,
    ) -> NewEvent {
        NewEvent {
            event_id: event_id.into(),
            name: name.into(),
            currency: currency.into(),
            ..NewEvent::default()
        }
    }

    pub(crate) fn to_proto(&self) -> pb::CreateEventRequest {
        pb::CreateEventRequest {
            event_id: self.event_id.clone(),
            name: self.name.clone(),
            category: self.category.clone(),
            starts_at: self.starts_at.clone(),
            currency: self.currency.clone(),
            seats: seat_specs(&self.seats),
            seat_blocks: seat_blocks(&self.seat_blocks),
            pools: pool_specs(&self.pools),
        }
    }
}

pub(crate) fn add_seats_proto(
    event_id: &str,
    seats: &[SeatSpec],
    blocks: &[SeatBlock],
) -> pb::AddSeatsRequest {
    pb::AddSeatsRequest {
        event_id: event_id.to_string(),
        seats: seat_specs(seats),
        seat_blocks: seat_blocks(blocks),
    }
}

/// The answer of an inventory change.
///
/// ```no_run
/// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
/// let change = client.create_event(holdfast_client::NewEvent::new("E", "Concert", "EUR")).await?;
/// println!("version {} at index {}", change.version, change.applied_index);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventChange {
    /// The event.
    pub event_id: String,
    /// Its version after the change.
    pub version: u64,
    /// The log index of the change.
    pub applied_index: u64,
}

impl From<pb::EventChange> for EventChange {
    fn from(change: pb::EventChange) -> EventChange {
        EventChange {
            event_id: change.event_id,
            version: change.version,
            applied_index: change.applied_index,
        }
    }
}

// ---- cluster --------------------------------------------------------------------------------

/// A member of the cluster.
///
/// ```
/// let member = holdfast_client::Member { id: 4, raft_addr: "10.0.0.4:7100".into(), http_addr: "10.0.0.4:7000".into(), region: "eu".into(), voter: false, lag: None, last_contact_ms: None };
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Node id (never reused).
    pub id: u64,
    /// Its Raft (peer) address.
    pub raft_addr: String,
    /// Its HTTP/gRPC address.
    pub http_addr: String,
    /// Its region.
    #[serde(default)]
    pub region: String,
    /// A voter (or a learner).
    #[serde(default)]
    pub voter: bool,
    /// In a status from the leader: log entries this member is behind the leader's log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
    /// In a status from the leader: milliseconds since this member last answered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_contact_ms: Option<u64>,
}

impl From<pb::Member> for Member {
    fn from(member: pb::Member) -> Member {
        Member {
            id: member.id,
            raft_addr: member.raft_addr,
            http_addr: member.http_addr,
            region: member.region,
            voter: member.voter,
            lag: member.lag,
            last_contact_ms: member.last_contact_ms,
        }
    }
}

impl Member {
    pub(crate) fn to_proto(&self) -> pb::Member {
        pb::Member {
            id: self.id,
            raft_addr: self.raft_addr.clone(),
            http_addr: self.http_addr.clone(),
            region: self.region.clone(),
            voter: self.voter,
            lag: None,
            last_contact_ms: None,
            // A member's incarnation is what it answers when the leader probes it.
            incarnation: String::new(),
        }
    }
}

/// One node's view of the cluster (`GET /cluster/status`).
///
/// ```no_run
/// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
/// let status = client.cluster_status().await?;
/// println!("node {} is {} in term {}", status.node_id, status.role, status.term);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The answering node.
    pub node_id: u64,
    /// The leader it knows of.
    pub leader_id: Option<u64>,
    /// Its term.
    pub term: u64,
    /// `leader`, `follower`, `candidate`, `learner` or `shutdown`.
    pub role: String,
    /// Its applied index.
    pub applied_index: u64,
    /// Its committed index.
    pub committed_index: u64,
    /// The members.
    pub members: Vec<Member>,
    /// Set while the voters would not survive the loss of one region (members in three
    /// or more regions), saying why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement_warning: Option<String>,
    /// The id of the answering node's cluster; `None` while it belongs to none yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// The incarnation of the answering node's data directory (16 hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<String>,
    /// The incarnation the membership records for each member, by node id (members
    /// recorded without one are absent). A node that answers with another incarnation than
    /// the one recorded for it had its data directory wiped or replaced.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub recorded_incarnations: std::collections::BTreeMap<u64, String>,
}

impl From<pb::ClusterStatusResponse> for ClusterStatus {
    fn from(status: pb::ClusterStatusResponse) -> ClusterStatus {
        let recorded_incarnations = status
            .members
            .iter()
            .filter(|member| !member.incarnation.is_empty())
            .map(|member| (member.id, member.incarnation.clone()))
            .collect();
        ClusterStatus {
            cluster_id: Some(status.cluster_id.clone()).filter(|id| !id.is_empty()),
            incarnation: Some(status.incarnation.clone()).filter(|id| !id.is_empty()),
            recorded_incarnations,
            node_id: status.node_id,
            leader_id: status.leader_id,
            term: status.term,
            role: status.role,
            applied_index: status.applied_index,
            committed_index: status.committed_index,
            members: status.members.into_iter().map(Member::from).collect(),
            placement_warning: status.placement_warning,
        }
    }
}

impl ClusterStatus {
    /// The ids of the voters.
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// println!("{:?}", client.cluster_status().await?.voters());
    /// # Ok(()) }
    /// ```
    pub fn voters(&self) -> Vec<u64> {
        self.members
            .iter()
            .filter(|member| member.voter)
            .map(|member| member.id)
            .collect()
    }
}

/// A snapshot a node took on request.
///
/// ```no_run
/// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
/// let taken = client.snapshot().await?;
/// println!("node {} snapshot at {}", taken.node_id, taken.snapshot_index);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotTaken {
    /// The node.
    pub node_id: u64,
    /// The last log index in the snapshot.
    pub snapshot_index: u64,
    /// How long it took.
    pub build_ms: f64,
}

/// A node's readiness (`GET /readyz`).
///
/// ```no_run
/// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
/// let health = client.ready().await?;
/// println!("node {}: {}", health.node_id, health.status);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `ready` once the node has a leader and caught up.
    pub status: String,
    /// The node.
    pub node_id: u64,
}

/// A backup file: a consistent copy of the replicated state as of one log index, checked
/// against its SHA-256 when it is read ([`Client::backup`], [`Client::restore`],
/// `holdfastctl backup FILE` / `restore FILE`).
///
/// ```no_run
/// let bytes = std::fs::read("holdfast.backup").expect("readable");
/// let backup = holdfast_client::Backup::from_file_bytes(bytes)?;
/// println!("{} bytes of state at index {}", backup.state_bytes().len(), backup.index());
/// # Ok::<(), holdfast_client::Error>(())
/// ```
///
/// [`Client::backup`]: crate::Client::backup
/// [`Client::restore`]: crate::Client::restore
#[derive(Clone, PartialEq, Eq)]
pub struct Backup {
    pub(crate) header: holdfast_proto::backup::BackupHeader,
    file: Vec<u8>,
}

impl std::fmt::Debug for Backup {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Backup")
            .field("index", &self.header.index)
            .field("bytes", &self.header.length)
            .field("sha256", &self.sha256_hex())
            .finish()
    }
}

impl Backup {
    /// Reads a backup file's bytes: the header, then state bytes of exactly the length and
    /// SHA-256 the header names ([`crate::Error::InvalidArgument`] otherwise).
    ///
    /// ```
    /// assert!(holdfast_client::Backup::from_file_bytes(b"not a backup".to_vec()).is_err());
    /// ```
    pub fn from_file_bytes(file: Vec<u8>) -> crate::Result<Backup> {
        use holdfast_proto::backup::{BackupHeader, HEADER_BYTES};
        use sha2::Digest;
        let header = BackupHeader::decode(&file).map_err(crate::Error::InvalidArgument)?;
        let state = &file[HEADER_BYTES..];
        if state.len() as u64 != header.length {
            return Err(crate::Error::InvalidArgument(format!(
                "the backup is cut or padded: its header names {} bytes of state, the file has {}",
                header.length,
                state.len()
            )));
        }
        if <[u8; 32]>::from(sha2::Sha256::digest(state)) != header.sha256 {
            return Err(crate::Error::InvalidArgument(
                "the backup's state does not match its SHA-256: the file is damaged".into(),
            ));
        }
        Ok(Backup { header, file })
    }

    /// The last log index the copy includes.
    ///
    /// ```no_run
    /// # fn demo(backup: holdfast_client::Backup) { let _ = backup.index(); }
    /// ```
    pub fn index(&self) -> u64 {
        self.header.index
    }

    /// The state's SHA-256 as 64 hex digits.
    ///
    /// ```no_run
    /// # fn demo(backup: holdfast_client::Backup) { assert_eq!(backup.sha256_hex().len(), 64); }
    /// ```
    pub fn sha256_hex(&self) -> String {
        holdfast_proto::backup::hex(&self.header.sha256)
    }

    /// The state bytes (the state machine's snapshot encoding).
    ///
    /// ```no_run
    /// # fn demo(backup: holdfast_client::Backup) { let _ = backup.state_bytes().len(); }
    /// ```
    pub fn state_bytes(&self) -> &[u8] {
        &self.file[holdfast_proto::backup::HEADER_BYTES..]
    }

    /// The whole file, header included: what to write to disk.
    ///
    /// ```no_run
    /// # fn demo(backup: holdfast_client::Backup) { std::fs::write("b", backup.file_bytes()).unwrap(); }
    /// ```
    pub fn file_bytes(&self) -> &[u8] {
        &self.file
    }
}

/// A completed restore ([`crate::Client::restore`]).
///
/// ```no_run
/// # async fn demo(client: holdfast_client::Client, backup: holdfast_client::Backup) -> holdfast_client::Result<()> {
/// let restored = client.restore(&backup).await?;
/// println!("restored {} bytes at index {}", restored.total_bytes, restored.index);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restored {
    /// The id the pieces carried.
    pub restore_id: u64,
    /// The state bytes restored.
    pub total_bytes: u64,
    /// The log index whose entry replaced the state.
    pub index: u64,
}
