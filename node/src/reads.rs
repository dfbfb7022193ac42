//! The HTTP edge of reads: availability, hold and booking lookups, a customer's history,
//! refunds. Every read honours `consistency`, `max_staleness_ms` and `min_index`, and
//! answers with an ETag and the `X-Holdfast-*` headers. The reads themselves are the
//! service layer's ([`crate::service::reads`]); each handler turns its query into the
//! service's parameters and the views it answers into API.md's JSON.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use holdfast_statemachine::limits::REFUNDS_PAGE_MAX;
use holdfast_statemachine::{AvailabilityPage, RefundStatus};

use crate::app::{etag, read_answer, read_request, AppState};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::replica;
use crate::service::reads::{
    self as service, AvailabilityParams, AvailabilityQuery, HistoryParams, SeatPage, SeatPages,
    View, HISTORY_PAGE_DEFAULT,
};
use crate::validate;
use crate::wire::{
    AvailabilityJson, BookingJson, BookingPageJson, ErrorBody, HoldJson, RefundJson,
    RefundPageJson, SeatsJson,
};

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
    by_key: std::collections::HashMap<PageKey, (u64, SeatPage<SeatsJson>)>,
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

impl PageKey {
    fn of(query: &AvailabilityQuery) -> PageKey {
        PageKey {
            event_id: query.event_id.clone(),
            section: query.section.clone(),
            after: query.after.clone(),
            limit: query.limit,
        }
    }
}

impl AvailabilityCache {
    fn get(&self, key: &PageKey, version: u64) -> Option<SeatPage<SeatsJson>> {
        let pages = self.pages.lock().expect("availability cache lock");
        match pages.by_key.get(key) {
            Some((cached, page)) if *cached == version => Some(page.clone()),
            _ => None,
        }
    }

    fn insert(&self, key: PageKey, version: u64, page: SeatPage<SeatsJson>) {
        let mut pages = self.pages.lock().expect("availability cache lock");
        let added = page.seats.len() + key.event_id.len();
        if let Some((_, old)) = pages.by_key.remove(&key) {
            pages.bytes -= old.seats.len() + key.event_id.len();
        }
        if pages.bytes + added > CACHED_PAGE_BYTES_MAX {
            pages.by_key.clear();
            pages.bytes = 0;
        }
        pages.bytes += added;
        pages.by_key.insert(key, (version, page));
    }
}

/// The HTTP edge's seat pages: serialised JSON, kept per event version.
impl SeatPages for AvailabilityCache {
    type Seats = SeatsJson;

    fn cached(&self, query: &AvailabilityQuery, version: u64) -> Option<SeatPage<SeatsJson>> {
        self.get(&PageKey::of(query), version)
    }

    fn render(&self, query: &AvailabilityQuery, page: &AvailabilityPage) -> SeatPage<SeatsJson> {
        let rendered = SeatPage {
            seats: SeatsJson::from_page(page),
            next_after: page.next_after.clone(),
        };
        self.insert(PageKey::of(query), page.version, rendered.clone());
        rendered
    }
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
    let read = read_request(&query, &state.config)?;
    let params = AvailabilityParams {
        event_id: query.get("event_id").unwrap_or_default().to_string(),
        view: query.get("view").map(str::to_string),
        section: query.get("section").map(str::to_string),
        after: query.get("after").map(str::to_string),
        limit: query.get_u64("limit")?,
    };
    let checked = params.check()?;
    let (answer, meta) =
        service::availability(&state, read, &checked, &state.availability_cache).await?;
    let seats = answer.seats.map(|page| (page.seats, page.next_after));
    let body = AvailabilityJson::from_page(&answer.info, &answer.page, seats, meta.applied_index);
    // The event's own version, plus what selects the page: unrelated writes leave it alone.
    let view_name: &[u8] = if checked.view == View::Full {
        b"full"
    } else {
        b"summary"
    };
    let tag = etag(&[
        checked.event_id.as_bytes(),
        &answer.page.version.to_le_bytes(),
        view_name,
        checked.section.as_deref().unwrap_or("").as_bytes(),
        checked.after.as_deref().unwrap_or("").as_bytes(),
        &(checked.limit as u64).to_le_bytes(),
    ]);
    Ok(read_answer(&headers, &meta, &tag, &body))
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
    let read = read_request(&query, &state.config)?;
    let (hold, meta) = service::hold(&state, &caller, read, hold_id).await?;
    Ok(content_answer(
        &headers,
        &meta,
        &HoldJson::from_view(&hold, None),
    ))
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
    let read = read_request(&query, &state.config)?;
    let (booking, meta) = service::booking(&state, &caller, read, booking_id).await?;
    Ok(content_answer(
        &headers,
        &meta,
        &BookingJson::from_view(&booking, None),
    ))
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
    let read = read_request(&query, &state.config)?;
    let params = HistoryParams {
        customer_id,
        limit: query.get_u64("limit")?,
        after: query.get("after").map(str::to_string),
    };
    if let Some(after) = &params.after {
        crate::validate::id("after", after)?;
    }
    let (page, meta) = service::customer_bookings(&state, &caller, read, &params).await?;
    let body = BookingPageJson {
        customer_id: params.customer_id,
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
    let limit = service::page_limit(
        query.get_u64("limit")?,
        HISTORY_PAGE_DEFAULT,
        REFUNDS_PAGE_MAX,
    )?;
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
