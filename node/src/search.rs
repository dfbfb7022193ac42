//! Search: `GET /events` (filters, paging) and `GET /events/{event_id}`, served from the
//! state machine's in-memory indexes at the requested read level through
//! [`replica::read`], as `/availability` is; and the same two reads for the gRPC
//! `SearchEvents` and `GetEvent` calls ([`search`], [`event`]), which convert their
//! messages by hand.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::NaiveDate;
use holdfast_statemachine::limits::{
    LISTING_LABEL_BYTES_MAX, SEARCH_NIGHTS_MAX, SEARCH_PAGE_MAX, SEARCH_TEXT_BYTES_MAX,
};
use holdfast_statemachine::{
    Category, EventListing, PoolTotals, Rejection, SearchPage, SearchQuery,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::{etag, read_answer, read_request, AppState};
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::replica::{self, ReadMeta, ReadRequest};
use crate::validate;
use crate::wire::{parse_rfc3339_ms, rfc3339, ErrorBody};

/// Events in a page when `limit` is not given.
pub const SEARCH_PAGE_DEFAULT: usize = 50;

/// The filters and paging of a search, as the client sent them (strings unparsed), from
/// the query string or a gRPC message.
#[derive(Clone, Debug, Default)]
pub struct SearchParams {
    /// `movie`, `event`, `hotel`, `appointment` or `other`.
    pub category: Option<String>,
    /// Text to find in the name or the venue, case-insensitively: 1 to
    /// [`SEARCH_TEXT_BYTES_MAX`] bytes without control characters.
    pub q: Option<String>,
    /// The city label, compared case-insensitively: 1 to [`LISTING_LABEL_BYTES_MAX`] bytes
    /// without control characters.
    pub city: Option<String>,
    /// RFC 3339 (1970 or later): only events that start at or after it.
    pub starts_from: Option<String>,
    /// RFC 3339 (1970 or later): only events that start at or before it; not before
    /// `starts_from`.
    pub starts_to: Option<String>,
    /// Only events with at least this many seats and pool units free, counted together.
    pub min_available: Option<u64>,
    /// Hotels: the first night, `YYYY-MM-DD`; given together with `nights_to`.
    pub nights_from: Option<String>,
    /// Hotels: the last night (included), `YYYY-MM-DD`, not before `nights_from` and at
    /// most [`SEARCH_NIGHTS_MAX`] nights in all; one room type must be free every night.
    pub nights_to: Option<String>,
    /// Events per page: [`SEARCH_PAGE_DEFAULT`] when absent, 0 refused, more than
    /// [`SEARCH_PAGE_MAX`] clamped to it.
    pub limit: Option<u64>,
    /// The previous page's `next_after` (an event id): the page starts after it.
    pub after: Option<String>,
}

impl SearchParams {
    /// The parameters of a `GET /events` query string.
    pub fn from_query(query: &ApiQuery) -> Result<SearchParams, ApiError> {
        let text = |name: &str| query.get(name).map(str::to_string);
        Ok(SearchParams {
            category: text("category"),
            q: text("q"),
            city: text("city"),
            starts_from: text("starts_from"),
            starts_to: text("starts_to"),
            min_available: query.get_u64("min_available")?,
            nights_from: text("nights_from"),
            nights_to: text("nights_to"),
            limit: query.get_u64("limit")?,
            after: text("after"),
        })
    }

    /// The state machine's query, or `400 INVALID_FIELD` naming the first bad parameter.
    pub fn query(&self) -> Result<SearchQuery, ApiError> {
        let category = self
            .category
            .as_deref()
            .map(|name| {
                Category::parse(name).ok_or_else(|| {
                    ApiError::invalid_field(
                        "category",
                        "must be movie, event, hotel, appointment or other",
                    )
                })
            })
            .transpose()?;
        if let Some(q) = &self.q {
            label("q", q, SEARCH_TEXT_BYTES_MAX)?;
        }
        if let Some(city) = &self.city {
            label("city", city, LISTING_LABEL_BYTES_MAX)?;
        }
        let time = |field: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(|text| {
                    parse_rfc3339_ms(text).ok_or_else(|| {
                        ApiError::invalid_field(field, "must be an RFC 3339 time after 1970")
                    })
                })
                .transpose()
        };
        let starts_from_ms = time("starts_from", &self.starts_from)?;
        let starts_to_ms = time("starts_to", &self.starts_to)?;
        if let (Some(from), Some(to)) = (starts_from_ms, starts_to_ms) {
            if to < from {
                return Err(ApiError::invalid_field(
                    "starts_to",
                    "must not be before starts_from",
                ));
            }
        }
        let limit = match self.limit {
            None => SEARCH_PAGE_DEFAULT,
            Some(0) => {
                return Err(ApiError::invalid_field(
                    "limit",
                    format!("must be 1 to {SEARCH_PAGE_MAX}"),
                ))
            }
            Some(limit) => (limit as usize).min(SEARCH_PAGE_MAX),
        };
        if let Some(after) = &self.after {
            validate::id("after", after)?;
        }
        Ok(SearchQuery {
            category,
            text: self.q.clone(),
            city: self.city.clone(),
            starts_from_ms,
            starts_to_ms,
            min_available: self.min_available,
            nights: nights(self.nights_from.as_deref(), self.nights_to.as_deref())?,
            after: self.after.clone(),
            limit,
        })
    }
}

/// 1 to `max` bytes without control characters.
fn label(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > max || value.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            field,
            format!("must be 1 to {max} bytes without control characters"),
        ));
    }
    Ok(())
}

/// The nights from `from` to `to`, both included, as the `YYYY-MM-DD` labels that end a
/// hotel's pool ids (`{room type}-{night}`, as `holdfast dev`'s demo hotel names them).
/// Both or neither; at most [`SEARCH_NIGHTS_MAX`].
fn nights(from: Option<&str>, to: Option<&str>) -> Result<Vec<String>, ApiError> {
    let date = |field: &str, text: &str| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .filter(|date| date.format("%Y-%m-%d").to_string() == text)
            .ok_or_else(|| ApiError::invalid_field(field, "must be a date YYYY-MM-DD"))
    };
    let (from, to) = match (from, to) {
        (None, None) => return Ok(Vec::new()),
        (Some(from), Some(to)) => (date("nights_from", from)?, date("nights_to", to)?),
        (Some(_), None) => {
            return Err(ApiError::invalid_field(
                "nights_to",
                "is required with nights_from",
            ))
        }
        (None, Some(_)) => {
            return Err(ApiError::invalid_field(
                "nights_from",
                "is required with nights_to",
            ))
        }
    };
    if to < from {
        return Err(ApiError::invalid_field(
            "nights_to",
            "must not be before nights_from",
        ));
    }
    let count = (to - from).num_days() + 1;
    if count > SEARCH_NIGHTS_MAX as i64 {
        return Err(ApiError::invalid_field(
            "nights_to",
            format!("at most {SEARCH_NIGHTS_MAX} nights"),
        ));
    }
    Ok(from
        .iter_days()
        .take(count as usize)
        .map(|night| night.format("%Y-%m-%d").to_string())
        .collect())
}

/// A search at `read_request`'s level: the page and the read's metadata.
pub async fn search(
    state: &AppState,
    read_request: ReadRequest,
    params: &SearchParams,
) -> Result<(SearchPage, ReadMeta), ApiError> {
    let query = params.query()?;
    let (page, meta) = replica::read(&*state.replica, read_request, |machine| {
        machine.search(&query)
    })
    .await?;
    Ok((page.map_err(ApiError::from)?, meta))
}

/// One event's listing at `read_request`'s level; `404 EVENT_NOT_FOUND` if there is none.
pub async fn event(
    state: &AppState,
    read_request: ReadRequest,
    event_id: &str,
) -> Result<(EventListing, ReadMeta), ApiError> {
    validate::id("event_id", event_id)?;
    let (listing, meta) = replica::read(&*state.replica, read_request, |machine| {
        machine.event_listing(event_id)
    })
    .await?;
    let listing = listing.ok_or_else(|| {
        ApiError::from(Rejection::EventNotFound {
            event_id: event_id.to_string(),
        })
    })?;
    Ok((listing, meta))
}

/// `ACTIVE` or `CANCELLED`.
pub fn status_name(listing: &EventListing) -> &'static str {
    if listing.cancelled_at_ms.is_some() {
        "CANCELLED"
    } else {
        "ACTIVE"
    }
}

/// Pool totals in a listing's summary.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PoolTotalsJson {
    /// Units of all the event's pools together.
    pub capacity: u64,
    /// Units free: `capacity - held - booked`.
    pub available: u64,
    /// Units in live holds.
    pub held: u64,
    /// Units in confirmed bookings.
    pub booked: u64,
}

impl From<PoolTotals> for PoolTotalsJson {
    fn from(totals: PoolTotals) -> PoolTotalsJson {
        PoolTotalsJson {
            capacity: totals.capacity,
            available: totals.available,
            held: totals.held,
            booked: totals.booked,
        }
    }
}

/// A listing's availability: seat counters and pool totals.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ListingSummaryJson {
    /// Seats the event has.
    pub seats_total: u64,
    /// Seats free to hold.
    pub seats_available: u64,
    /// Seats in live holds.
    pub seats_held: u64,
    /// Seats in confirmed bookings.
    pub seats_booked: u64,
    /// The event's pools (general admission, room types), summed.
    pub pools: PoolTotalsJson,
}

/// One event in `GET /events`, and the answer of `GET /events/{event_id}`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EventListingJson {
    /// The event's id, as `GET /events/{event_id}` and `after` take it.
    pub event_id: String,
    /// The event's display name.
    pub name: String,
    /// `movie`, `event`, `hotel`, `appointment` or `other`.
    pub category: &'static str,
    /// Where it takes place (a cinema, an arena, a hotel's own name).
    pub venue: Option<String>,
    /// The city label searches filter on.
    pub city: Option<String>,
    /// RFC 3339.
    pub starts_at: Option<String>,
    /// RFC 3339.
    pub ends_at: Option<String>,
    /// Free text about the event.
    pub description: Option<String>,
    /// Free labels, in the order given, without duplicates.
    pub tags: Vec<String>,
    /// ISO 4217 code of the event's prices.
    pub currency: String,
    /// `ACTIVE` or `CANCELLED`.
    pub status: &'static str,
    /// The event's own version: changes only when this event changes.
    pub version: u64,
    /// Seat counters and pool totals as of this read.
    pub summary: ListingSummaryJson,
}

impl EventListingJson {
    /// The JSON of a listing.
    pub fn from_listing(listing: &EventListing) -> EventListingJson {
        EventListingJson {
            event_id: listing.event_id.clone(),
            name: listing.name.clone(),
            category: listing.category.as_str(),
            venue: listing.listing.venue.clone(),
            city: listing.listing.city.clone(),
            starts_at: listing.starts_at_ms.map(rfc3339),
            ends_at: listing.listing.ends_at_ms.map(rfc3339),
            description: listing.listing.description.clone(),
            tags: listing.listing.tags.clone(),
            currency: listing.currency.clone(),
            status: status_name(listing),
            version: listing.version,
            summary: ListingSummaryJson {
                seats_total: listing.summary.seats_total,
                seats_available: listing.summary.seats_available,
                seats_held: listing.summary.seats_held,
                seats_booked: listing.summary.seats_booked,
                pools: listing.pools.into(),
            },
        }
    }
}

/// `GET /events`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EventPageJson {
    /// The matching events, by start time then id; at most the page's `limit`.
    pub events: Vec<EventListingJson>,
    /// Pass as `after` for the next page; present while more events match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

/// Searches events, sorted by start time then id.
#[utoipa::path(
    get, path = "/events", tag = "reads",
    params(
        ("category" = Option<String>, Query, description = "movie | event | hotel | appointment | other"),
        ("q" = Option<String>, Query, description = "Case-insensitive text in the name or venue"),
        ("city" = Option<String>, Query, description = "City label (case-insensitive)"),
        ("starts_from" = Option<String>, Query, description = "RFC 3339: starting at or after"),
        ("starts_to" = Option<String>, Query, description = "RFC 3339: starting at or before"),
        ("min_available" = Option<u64>, Query, description = "At least this many seats and pool units free"),
        ("nights_from" = Option<String>, Query, description = "Hotels: first night, YYYY-MM-DD"),
        ("nights_to" = Option<String>, Query, description = "Hotels: last night (included), YYYY-MM-DD; one room type free every night"),
        ("limit" = Option<u64>, Query, description = "Events per page, default 50, at most 500"),
        ("after" = Option<String>, Query, description = "The previous page's next_after"),
        ("consistency" = Option<String>, Query, description = "stale | bounded | linearizable (default stale)"),
        ("max_staleness_ms" = Option<u64>, Query, description = "With bounded; default 1000"),
        ("min_index" = Option<u64>, Query, description = "Wait until this index is applied"),
    ),
    responses(
        (status = 200, description = "A page of events", body = EventPageJson),
        (status = 304, description = "Not modified"),
        (status = 400, description = "INVALID_FIELD", body = ErrorBody),
        (status = 503, description = "NO_QUORUM, INDEX_NOT_REACHED", body = ErrorBody),
    )
)]
pub async fn search_events(
    State(state): State<AppState>,
    query: ApiQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let read_request = read_request(&query, &state.config)?;
    let params = SearchParams::from_query(&query)?;
    let (page, meta) = search(&state, read_request, &params).await?;
    let body = EventPageJson {
        events: page
            .events
            .iter()
            .map(EventListingJson::from_listing)
            .collect(),
        next_after: page.next_after,
    };
    // The body holds each event's version and counters but no applied index: unrelated
    // writes leave the tag alone.
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    Ok(read_answer(&headers, &meta, &etag(&[&bytes[..]]), &body))
}

/// One event's listing: metadata, status and availability summary.
#[utoipa::path(
    get, path = "/events/{event_id}", tag = "reads",
    params(
        ("event_id" = String, Path, description = "The event"),
        ("consistency" = Option<String>, Query, description = "stale | bounded | linearizable (default stale)"),
        ("max_staleness_ms" = Option<u64>, Query, description = "With bounded; default 1000"),
        ("min_index" = Option<u64>, Query, description = "Wait until this index is applied"),
    ),
    responses(
        (status = 200, description = "The event", body = EventListingJson),
        (status = 304, description = "Not modified"),
        (status = 404, description = "EVENT_NOT_FOUND", body = ErrorBody),
    )
)]
pub async fn get_event(
    State(state): State<AppState>,
    ApiPath(event_id): ApiPath<String>,
    query: ApiQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let read_request = read_request(&query, &state.config)?;
    let (listing, meta) = event(&state, read_request, &event_id).await?;
    let body = EventListingJson::from_listing(&listing);
    let version = listing.version.to_le_bytes();
    let parts: [&[u8]; 3] = [b"event", event_id.as_bytes(), &version];
    let tag = etag(&parts);
    Ok(read_answer(&headers, &meta, &tag, &body))
}
