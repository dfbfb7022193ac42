//! The gRPC `SearchEvents` and `GetEvent` calls' side of [`crate::search`]: their
//! messages converted by hand to and from the domain's types, the caller's key checked as
//! the HTTP edge checks it for `GET /events`, and the read metadata as reply metadata.

use holdfast_proto::booking::{
    EventListing as ListingMessage, GetEventRequest, PoolSummary, Read, SearchEventsRequest,
    Summary,
};
use holdfast_statemachine::{EventListing, SearchPage};
use tonic::metadata::MetadataMap;

use crate::app::{read_request as parse_read_request, AppState};
use crate::auth::{required_role, Role};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::replica::{ReadMeta, ReadRequest};
use crate::search::{status_name, SearchParams};
use crate::wire::rfc3339;

/// `SearchEvents`: the caller's key, the read level and the filters checked, then the
/// search.
pub async fn search_events(
    state: &AppState,
    metadata: &MetadataMap,
    message: &SearchEventsRequest,
) -> Result<(SearchPage, ReadMeta), ApiError> {
    authorize(state, metadata)?;
    let read = read_request(state, message.read.as_ref())?;
    crate::search::search(state, read, &search_params(message)).await
}

/// `GetEvent`: the caller's key and the read level checked, then the listing.
pub async fn get_event(
    state: &AppState,
    metadata: &MetadataMap,
    message: &GetEventRequest,
) -> Result<(EventListing, ReadMeta), ApiError> {
    authorize(state, metadata)?;
    let read = read_request(state, message.read.as_ref())?;
    crate::search::event(state, read, &message.event_id).await
}

/// Refuses a call whose `authorization` metadata carries no key good enough for a read
/// (`GET /events` needs the customer role), when the node has keys.
pub fn authorize(state: &AppState, metadata: &MetadataMap) -> Result<(), ApiError> {
    let needed = required_role("/events").unwrap_or(Role::Customer);
    let authorization = metadata
        .get("authorization")
        .and_then(|value| value.to_str().ok());
    crate::auth::check(state.config.auth_keys.as_deref(), authorization, needed).map(|_| ())
}

/// The read level of a call's `Read`, parsed as the HTTP edge parses the query string.
pub fn read_request(state: &AppState, read: Option<&Read>) -> Result<ReadRequest, ApiError> {
    let mut query = Vec::new();
    if let Some(read) = read {
        if let Some(consistency) = &read.consistency {
            query.push(("consistency".to_string(), consistency.clone()));
        }
        if let Some(staleness) = read.max_staleness_ms {
            query.push(("max_staleness_ms".to_string(), staleness.to_string()));
        }
        if let Some(index) = read.min_index {
            query.push(("min_index".to_string(), index.to_string()));
        }
    }
    parse_read_request(&ApiQuery(query), &state.config)
}

/// The search parameters of a `SearchEventsRequest`.
pub fn search_params(message: &SearchEventsRequest) -> SearchParams {
    SearchParams {
        category: message.category.clone(),
        q: message.q.clone(),
        city: message.city.clone(),
        starts_from: message.starts_from.clone(),
        starts_to: message.starts_to.clone(),
        min_available: message.min_available,
        nights_from: message.nights_from.clone(),
        nights_to: message.nights_to.clone(),
        limit: message.limit.map(u64::from),
        after: message.after.clone(),
    }
}

/// The `EventListing` message of a listing.
pub fn listing_message(listing: &EventListing) -> ListingMessage {
    ListingMessage {
        event_id: listing.event_id.clone(),
        name: listing.name.clone(),
        category: listing.category.as_str().to_string(),
        venue: listing.listing.venue.clone(),
        city: listing.listing.city.clone(),
        starts_at: listing.starts_at_ms.map(rfc3339),
        ends_at: listing.listing.ends_at_ms.map(rfc3339),
        description: listing.listing.description.clone(),
        tags: listing.listing.tags.clone(),
        currency: listing.currency.clone(),
        status: status_name(listing).to_string(),
        summary: Some(Summary {
            seats_total: listing.summary.seats_total,
            seats_available: listing.summary.seats_available,
            seats_held: listing.summary.seats_held,
            seats_booked: listing.summary.seats_booked,
        }),
        pools: Some(PoolSummary {
            capacity: listing.pools.capacity,
            available: listing.pools.available,
            held: listing.pools.held,
            booked: listing.pools.booked,
        }),
        version: listing.version,
    }
}
