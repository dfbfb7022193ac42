//! Reads: availability, hold and booking lookups, a customer's history. Every read honours
//! `consistency`, `max_staleness_ms` and `min_index`, and answers with an ETag and the
//! `X-Holdfast-*` headers.

use std::time::Instant;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use holdfast_statemachine::limits::{
    AVAILABILITY_PAGE_SEATS_MAX, HISTORY_PAGE_MAX, REFUNDS_PAGE_MAX,
};
use holdfast_statemachine::{HoldStatus, RefundStatus, Rejection};

use crate::app::{etag, read_answer, read_request, AppState};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::metrics;
use crate::replica;
use crate::validate;
use crate::wire::{
    AvailabilityJson, BookingJson, BookingPageJson, ErrorBody, HoldJson, RefundJson,
    RefundPageJson, SeatsJson,
};

/// Seats in an availability page when `limit` is not given.
pub const AVAILABILITY_PAGE_SEATS_DEFAULT: usize = 1_000;
/// Bookings in a history page when `limit` is not given.
pub const HISTORY_PAGE_DEFAULT: usize = 20;

/// `limit`: absent → `default`, 0 or garbage → 400, above `max` → `max`.
fn page_limit(query: &ApiQuery, default: usize, max: usize) -> Result<usize, ApiError> {
    match query.get_u64("limit")? {
        None => Ok(default),
        Some(0) => Err(ApiError::invalid_field(
            "limit",
            format!("must be 1 to {max}"),
        )),
        Some(limit) => Ok((limit as usize).min(max)),
    }
}

/// Serialised bytes the availability cache keeps at most; a full cache starts over.
pub const CACHED_PAGE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Serialised seat pages of the full availability view, each valid for one version of its
/// event: a popular section is serialised once per change of its event instead of once per
/// read. Every change to an event bumps its version, so a hit is always current; reads of
/// other events never invalidate it.
#[derive(Default)]
pub struct AvailabilityCache {
    pages: std::sync::Mutex<CachedPages>,
}

#[derive(Default)]
struct CachedPages {
    by_key: std::collections::HashMap<PageKey, (u64, SeatsJson, Option<String>)>,
    bytes: usize,
}

/// What selects a page.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PageKey {
    event_id: String,
    section: Option<String>,
    after: Option<String>,
    limit: usize,
}

impl AvailabilityCache {
    fn get(&self, key: &PageKey, version: u64) -> Option<(SeatsJson, Option<String>)> {
        let pages = self.pages.lock().expect("availability cache lock");
        match pages.by_key.get(key) {
            Some((cached, seats, next)) if *cached == version => {
                Some((seats.clone(), next.clone()))
            }
            _ => None,
        }
    }

    fn insert(&self, key: PageKey, version: u64, (seats, next): (SeatsJson, Option<String>)) {
        let mut pages = self.pages.lock().expect("availability cache lock");
        let added = seats.len() + key.event_id.len();
        if let Some((_, old, _)) = pages.by_key.remove(&key) {
            pages.bytes -= old.len() + key.event_id.len();
        }
        if pages.bytes + added > CACHED_PAGE_BYTES_MAX {
            pages.by_key.clear();
            pages.bytes = 0;
        }
        pages.bytes += added;
        pages.by_key.insert(key, (version, seats, next));
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum View {
    Summary,
    Full,
}

/// An event's availability: counters, a page of seats, all pools.
#[utoipa::path(
    get, path = "/availability", tag = "reads",
    params(
        ("event_id" = String, Query, description = "The event"),
        ("view" = Option<String>, Query, description = "summary | full (default full)"),
        ("section" = Option<String>, Query, description = "Only seats of this section (full view)"),
        ("limit" = Option<u64>, Query, description = "Seats per page, default 1000, at most 5000"),
        ("after" = Option<String>, Query, description = "The previous page's next_after"),
        ("consistency" = Option<String>, Query, description = "stale | bounded | linearizable (default stale)"),
        ("max_staleness_ms" = Option<u64>, Query, description = "With bounded; default 1000"),
        ("min_index" = Option<u64>, Query, description = "Wait until this index is applied"),
        ("If-None-Match" = Option<String>, Header, description = "A previous ETag: 304 if unchanged"),
    ),
    responses(
        (status = 200, description = "Availability", body = AvailabilityJson),
        (status = 304, description = "Not modified"),
        (status = 400, description = "INVALID_FIELD", body = ErrorBody),
        (status = 404, description = "EVENT_NOT_FOUND, SEAT_NOT_FOUND (after)", body = ErrorBody),
        (status = 503, description = "NO_QUORUM, INDEX_NOT_REACHED", body = ErrorBody),
    )
)]
pub async fn availability(
    State(state): State<AppState>,
    query: ApiQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let result = availability_inner(&state, &query, &headers).await;
    metrics::observe(metrics::AVAILABILITY_SECONDS, started);
    result
}

async fn availability_inner(
    state: &AppState,
    query: &ApiQuery,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let read_request = read_request(query, &state.config)?;
    let event_id = query.require("event_id")?.to_string();
    validate::id("event_id", &event_id)?;
    let view = match query.get("view") {
        None | Some("full") => View::Full,
        Some("summary") => View::Summary,
        Some(_) => return Err(ApiError::invalid_field("view", "must be summary or full")),
    };
    let section = query.get("section").map(str::to_string);
    if let Some(section) = &section {
        validate::id("section", section)?;
    }
    let after = query.get("after").map(str::to_string);
    if let Some(after) = &after {
        validate::id("after", after)?;
    }
    let limit = page_limit(
        query,
        AVAILABILITY_PAGE_SEATS_DEFAULT,
        AVAILABILITY_PAGE_SEATS_MAX,
    )?;
    let (answer, meta) = replica::read(&*state.replica, read_request, |machine| {
        let info = machine
            .event(&event_id)
            .ok_or_else(|| Rejection::EventNotFound {
                event_id: event_id.clone(),
            })?;
        // Pools are always listed whole; one seat is read and dropped.
        let summary = || machine.availability(&event_id, None, None, 1);
        if view == View::Summary {
            return Ok::<_, Rejection>((info, summary()?, None));
        }
        let version = machine.summary(&event_id).map_or(0, |(_, version)| version);
        let key = PageKey {
            event_id: event_id.clone(),
            section: section.clone(),
            after: after.clone(),
            limit,
        };
        if let Some(seats) = state.availability_cache.get(&key, version) {
            return Ok((info, summary()?, Some(seats)));
        }
        let page = machine.availability(&event_id, section.as_deref(), after.as_deref(), limit)?;
        let seats = (SeatsJson::from_page(&page), page.next_after.clone());
        state
            .availability_cache
            .insert(key, page.version, seats.clone());
        Ok((info, page, Some(seats)))
    })
    .await?;
    let (info, page, seats) = answer.map_err(ApiError::from)?;
    let body = AvailabilityJson::from_page(&info, &page, seats, meta.applied_index);
    // The event's own version, plus what selects the page: unrelated writes leave it alone.
    let view_name: &[u8] = if view == View::Full {
        b"full"
    } else {
        b"summary"
    };
    let tag = etag(&[
        event_id.as_bytes(),
        &page.version.to_le_bytes(),
        view_name,
        section.as_deref().unwrap_or("").as_bytes(),
        after.as_deref().unwrap_or("").as_bytes(),
        &(limit as u64).to_le_bytes(),
    ]);
    Ok(read_answer(headers, &meta, &tag, &body))
}

/// A hold by id.
#[utoipa::path(
    get, path = "/holds/{hold_id}", tag = "reads",
    params(("hold_id" = String, Path, description = "The hold")),
    responses(
        (status = 200, description = "The hold", body = HoldJson),
        (status = 304, description = "Not modified"),
        (status = 404, description = "HOLD_NOT_FOUND", body = ErrorBody),
    )
)]
pub async fn hold(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(hold_id): ApiPath<String>,
    query: ApiQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let read_request = read_request(&query, &state.config)?;
    let ((hold, now_ms), meta) = replica::read(&*state.replica, read_request, |machine| {
        (machine.hold_by_id(&hold_id), machine.now_ms())
    })
    .await?;
    let hold = hold.ok_or_else(|| ApiError::from(Rejection::HoldNotFound { hold_id }))?;
    caller.may_act_for(&hold.customer_id)?;
    let mut body = HoldJson::from_view(&hold, None);
    // A hold whose time has passed can no longer be confirmed, even before the leader's
    // expiry entry frees its items: say so rather than show HELD.
    let now_ms = now_ms.max(state.replica.cluster_time_ms());
    if hold.status == HoldStatus::Active && hold.expires_at_ms <= now_ms {
        body.status = HoldStatus::Expired.as_str();
    }
    Ok(content_answer(&headers, &meta, &body))
}

/// A booking by id.
#[utoipa::path(
    get, path = "/bookings/{booking_id}", tag = "reads",
    params(("booking_id" = String, Path, description = "The booking")),
    responses(
        (status = 200, description = "The booking", body = BookingJson),
        (status = 304, description = "Not modified"),
        (status = 404, description = "BOOKING_NOT_FOUND", body = ErrorBody),
    )
)]
pub async fn booking(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(booking_id): ApiPath<String>,
    query: ApiQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let read_request = read_request(&query, &state.config)?;
    let (booking, meta) = replica::read(&*state.replica, read_request, |machine| {
        machine.booking_by_id(&booking_id)
    })
    .await?;
    let booking =
        booking.ok_or_else(|| ApiError::from(Rejection::BookingNotFound { booking_id }))?;
    caller.may_act_for(&booking.customer_id)?;
    let body = BookingJson::from_view(&booking, None);
    Ok(content_answer(&headers, &meta, &body))
}

/// A customer's bookings, newest first.
#[utoipa::path(
    get, path = "/customers/{customer_id}/bookings", tag = "reads",
    params(
        ("customer_id" = String, Path, description = "The customer"),
        ("limit" = Option<u64>, Query, description = "Bookings per page, default 20, at most 100"),
        ("after" = Option<String>, Query, description = "The previous page's next_after"),
    ),
    responses(
        (status = 200, description = "A page of bookings", body = BookingPageJson),
        (status = 304, description = "Not modified"),
    )
)]
pub async fn customer_bookings(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(customer_id): ApiPath<String>,
    query: ApiQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let read_request = read_request(&query, &state.config)?;
    validate::id("customer_id", &customer_id)?;
    caller.may_act_for(&customer_id)?;
    let limit = page_limit(&query, HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX)?;
    let after = query.get("after").map(str::to_string);
    let (page, meta) = replica::read(&*state.replica, read_request, |machine| {
        machine.customer_bookings(&customer_id, after.as_deref(), limit)
    })
    .await?;
    let body = BookingPageJson {
        customer_id,
        bookings: page
            .bookings
            .iter()
            .map(|booking| BookingJson::from_view(booking, None))
            .collect(),
        next_after: page.next_after,
    };
    Ok(content_answer(&headers, &meta, &body))
}

/// Refunds, oldest first, by status (admin).
#[utoipa::path(
    get, path = "/refunds", tag = "reads",
    params(
        ("status" = Option<String>, Query, description = "PENDING, REFUNDED or FAILED; every refund when absent"),
        ("limit" = Option<u64>, Query, description = "Refunds per page, default 20, at most 100"),
        ("after" = Option<String>, Query, description = "The previous page's next_after"),
    ),
    responses(
        (status = 200, description = "A page of refunds", body = RefundPageJson),
        (status = 304, description = "Not modified"),
        (status = 400, description = "INVALID_FIELD (status, limit)", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: the admin role is needed", body = ErrorBody),
    )
)]
pub async fn refunds(
    State(state): State<AppState>,
    query: ApiQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let read_request = read_request(&query, &state.config)?;
    let status = match query.get("status") {
        None => None,
        Some(text) => Some(RefundStatus::parse(text).ok_or_else(|| {
            ApiError::invalid_field("status", "must be PENDING, REFUNDED or FAILED")
        })?),
    };
    let limit = page_limit(&query, HISTORY_PAGE_DEFAULT, REFUNDS_PAGE_MAX)?;
    if let Some(after) = query.get("after") {
        validate::id("after", after)?;
    }
    let after = query.get("after").map(str::to_string);
    let (page, meta) = replica::read(&*state.replica, read_request, |machine| {
        machine.refunds_page(status, after.as_deref(), limit)
    })
    .await?;
    let body = RefundPageJson {
        refunds: page.refunds.iter().map(RefundJson::from_view).collect(),
        next_after: page.next_after,
    };
    Ok(content_answer(&headers, &meta, &body))
}

/// A read whose ETag is a hash of its body (which holds no applied index, so unrelated
/// writes leave it unchanged).
fn content_answer(
    headers: &HeaderMap,
    meta: &replica::ReadMeta,
    body: &impl serde::Serialize,
) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let tag = etag(&[&bytes]);
    read_answer(headers, meta, &tag, body)
}
