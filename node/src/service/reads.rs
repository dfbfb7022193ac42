//! Reads every edge serves: an event's availability, a hold or booking by id and a
//! customer's history, at the read level the caller asked for. Parameters come in as the
//! client sent them and are checked here once; answers are the state machine's views with
//! the read's metadata, which each edge renders as its own wire type.

use std::time::Instant;

use holdfast_statemachine::limits::{AVAILABILITY_PAGE_SEATS_MAX, HISTORY_PAGE_MAX};
use holdfast_statemachine::{
    AvailabilityPage, BookingPage, BookingView, EventInfo, HoldStatus, HoldView, Rejection,
};

use crate::app::{AppState, HttpConfig};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::metrics;
use crate::replica::{self, ReadConsistency, ReadMeta, ReadRequest};
use crate::validate;

/// Seats in an availability page when `limit` is not given.
pub const AVAILABILITY_PAGE_SEATS_DEFAULT: usize = 1_000;
/// Bookings in a history page when `limit` is not given.
pub const HISTORY_PAGE_DEFAULT: usize = 20;

/// A read's consistency from its parameters (API.md, "Reads"): `stale` when `name` is
/// absent; `max_staleness_ms` counts only for `bounded` (the node's default when absent).
pub fn consistency(
    name: Option<&str>,
    max_staleness_ms: Option<u64>,
    config: &HttpConfig,
) -> Result<ReadConsistency, ApiError> {
    match name {
        None | Some("stale") => Ok(ReadConsistency::Stale),
        Some("bounded") => Ok(ReadConsistency::Bounded {
            max_staleness_ms: max_staleness_ms.unwrap_or(config.max_staleness_ms_default),
        }),
        Some("linearizable") => Ok(ReadConsistency::Linearizable),
        Some(_) => Err(ApiError::invalid_field(
            "consistency",
            "must be stale, bounded or linearizable",
        )),
    }
}

/// A page's `limit`: absent → `default`, 0 → `400 INVALID_FIELD`, above `max` → `max`.
pub fn page_limit(limit: Option<u64>, default: usize, max: usize) -> Result<usize, ApiError> {
    match limit {
        None => Ok(default),
        Some(0) => Err(ApiError::invalid_field(
            "limit",
            format!("must be 1 to {max}"),
        )),
        Some(limit) => Ok(usize::try_from(limit).unwrap_or(usize::MAX).min(max)),
    }
}

// ---- Availability ------------------------------------------------------------------------

/// Which part of an event's availability is wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// Counters and pools only.
    Summary,
    /// Counters, pools and a page of seats.
    Full,
}

impl View {
    /// The name clients give (`summary`, `full`).
    pub fn as_str(self) -> &'static str {
        match self {
            View::Summary => "summary",
            View::Full => "full",
        }
    }
}

/// An availability request as the client sent it (strings unparsed).
#[derive(Clone, Debug, Default)]
pub struct AvailabilityParams {
    /// The event; required, an id (1 to 64 bytes, no white space, control characters or
    /// `/`).
    pub event_id: String,
    /// `summary` or `full`; `full` when absent.
    pub view: Option<String>,
    /// Only seats of this section (an id), in the full view.
    pub section: Option<String>,
    /// The previous page's `next_after` (a seat id): the page starts after that seat.
    pub after: Option<String>,
    /// Seats per page: [`AVAILABILITY_PAGE_SEATS_DEFAULT`] when absent, 0 refused, more
    /// than [`AVAILABILITY_PAGE_SEATS_MAX`] clamped to it.
    pub limit: Option<u64>,
}

/// An availability request, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvailabilityQuery {
    /// The event, a valid id.
    pub event_id: String,
    /// Which part of the availability to answer.
    pub view: View,
    /// Only seats of this section (full view).
    pub section: Option<String>,
    /// The previous page's `next_after`.
    pub after: Option<String>,
    /// Seats in the page: 1 to [`AVAILABILITY_PAGE_SEATS_MAX`].
    pub limit: usize,
}

impl AvailabilityParams {
    /// The checked query, or `400 INVALID_FIELD` naming the first bad parameter.
    pub fn check(self) -> Result<AvailabilityQuery, ApiError> {
        if self.event_id.is_empty() {
            return Err(ApiError::invalid_field("event_id", "is required"));
        }
        validate::id("event_id", &self.event_id)?;
        let view = match self.view.as_deref() {
            None | Some("full") => View::Full,
            Some("summary") => View::Summary,
            Some(_) => return Err(ApiError::invalid_field("view", "must be summary or full")),
        };
        if let Some(section) = &self.section {
            validate::id("section", section)?;
        }
        if let Some(after) = &self.after {
            validate::id("after", after)?;
        }
        let limit = page_limit(
            self.limit,
            AVAILABILITY_PAGE_SEATS_DEFAULT,
            AVAILABILITY_PAGE_SEATS_MAX,
        )?;
        Ok(AvailabilityQuery {
            event_id: self.event_id,
            view,
            section: self.section,
            after: self.after,
            limit,
        })
    }
}

/// A page of seats as an edge renders it, with the seat to pass as `after` for the next.
#[derive(Clone, Debug)]
pub struct SeatPage<S> {
    /// The page's seats in the edge's own form (serialised JSON on the HTTP edge).
    pub seats: S,
    /// The seat id to pass as `after` for the next page, while more seats remain.
    pub next_after: Option<String>,
}

/// How an edge renders the seats of an availability page, and whether it keeps them: the
/// HTTP edge serialises a page once per version of its event
/// ([`crate::reads::AvailabilityCache`]).
pub trait SeatPages: Sync {
    /// A rendered page of seats.
    type Seats;

    /// The page `query` selects as rendered for `version` of its event, when kept.
    fn cached(&self, query: &AvailabilityQuery, version: u64) -> Option<SeatPage<Self::Seats>>;

    /// Renders the seats of `page`, which `query` selected (and keeps them, if it keeps
    /// pages).
    fn render(&self, query: &AvailabilityQuery, page: &AvailabilityPage) -> SeatPage<Self::Seats>;
}

/// An event's availability: its metadata, counters and pools (`page`: its seats are not
/// the page's, see `seats`), and the rendered page of seats in the full view.
#[derive(Clone, Debug)]
pub struct Availability<S> {
    /// The event's description: name, category, start, currency.
    pub info: EventInfo,
    /// The event's version, seat counters and every pool. Its own `seats` are not the
    /// answer's: at most one seat when the summary view was asked or the page was kept.
    pub page: AvailabilityPage,
    /// `None` in the summary view.
    pub seats: Option<SeatPage<S>>,
}

/// An event's availability at `read`'s level: counters, all pools and, in the full view, a
/// page of seats rendered by `pages`.
pub async fn availability<P: SeatPages>(
    state: &AppState,
    read: ReadRequest,
    query: &AvailabilityQuery,
    pages: &P,
) -> Result<(Availability<P::Seats>, ReadMeta), ApiError> {
    let started = Instant::now();
    let result = read_availability(state, read, query, pages).await;
    metrics::observe(metrics::AVAILABILITY_SECONDS, started);
    result
}

async fn read_availability<P: SeatPages>(
    state: &AppState,
    read: ReadRequest,
    query: &AvailabilityQuery,
    pages: &P,
) -> Result<(Availability<P::Seats>, ReadMeta), ApiError> {
    let event_id = query.event_id.as_str();
    let (answer, meta) = replica::read(&*state.replica, read, |machine| {
        let info = machine
            .event(event_id)
            .ok_or_else(|| Rejection::EventNotFound {
                event_id: event_id.to_string(),
            })?;
        // Pools are always listed whole; one seat is read and dropped.
        let summary = || machine.availability(event_id, None, None, 1);
        if query.view == View::Summary {
            return Ok::<_, Rejection>((info, summary()?, None));
        }
        let version = machine.summary(event_id).map_or(0, |(_, version)| version);
        if let Some(seats) = pages.cached(query, version) {
            return Ok((info, summary()?, Some(seats)));
        }
        let page = machine.availability(
            event_id,
            query.section.as_deref(),
            query.after.as_deref(),
            query.limit,
        )?;
        let seats = pages.render(query, &page);
        Ok((info, page, Some(seats)))
    })
    .await?;
    let (info, page, seats) = answer.map_err(ApiError::from)?;
    Ok((Availability { info, page, seats }, meta))
}

// ---- Lookups and history -------------------------------------------------------------

/// A hold by id, if `caller` may see it. A hold whose time has passed is `EXPIRED`, even
/// before the leader's expiry entry frees its items: it can no longer be confirmed.
pub async fn hold(
    state: &AppState,
    caller: &Caller,
    read: ReadRequest,
    hold_id: String,
) -> Result<(HoldView, ReadMeta), ApiError> {
    let ((hold, now_ms), meta) = replica::read(&*state.replica, read, |machine| {
        (machine.hold_by_id(&hold_id), machine.now_ms())
    })
    .await?;
    let mut hold = hold.ok_or_else(|| ApiError::from(Rejection::HoldNotFound { hold_id }))?;
    caller.may_act_for(&hold.customer_id)?;
    let now_ms = now_ms.max(state.replica.cluster_time_ms());
    if hold.status == HoldStatus::Active && hold.expires_at_ms <= now_ms {
        hold.status = HoldStatus::Expired;
    }
    Ok((hold, meta))
}

/// A booking by id, if `caller` may see it.
pub async fn booking(
    state: &AppState,
    caller: &Caller,
    read: ReadRequest,
    booking_id: String,
) -> Result<(BookingView, ReadMeta), ApiError> {
    let (booking, meta) = replica::read(&*state.replica, read, |machine| {
        machine.booking_by_id(&booking_id)
    })
    .await?;
    let booking =
        booking.ok_or_else(|| ApiError::from(Rejection::BookingNotFound { booking_id }))?;
    caller.may_act_for(&booking.customer_id)?;
    Ok((booking, meta))
}

/// A page of a customer's history as the client asked for it.
#[derive(Clone, Debug, Default)]
pub struct HistoryParams {
    /// The customer whose bookings to list (an id); a caller bound to a customer may ask
    /// only for its own.
    pub customer_id: String,
    /// Bookings per page: [`HISTORY_PAGE_DEFAULT`] when absent, 0 refused, more than
    /// [`HISTORY_PAGE_MAX`] clamped to it.
    pub limit: Option<u64>,
    /// The previous page's `next_after`.
    pub after: Option<String>,
}

/// A customer's bookings, newest first, if `caller` may act for the customer.
pub async fn customer_bookings(
    state: &AppState,
    caller: &Caller,
    read: ReadRequest,
    params: &HistoryParams,
) -> Result<(BookingPage, ReadMeta), ApiError> {
    validate::id("customer_id", &params.customer_id)?;
    caller.may_act_for(&params.customer_id)?;
    let limit = page_limit(params.limit, HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX)?;
    let (page, meta) = replica::read(&*state.replica, read, |machine| {
        machine.customer_bookings(&params.customer_id, params.after.as_deref(), limit)
    })
    .await?;
    Ok((page, meta))
}
