//! The gRPC `SearchEvents` and `GetEvent` calls' conversions: their messages into
//! [`crate::search`]'s parameters and its listings into messages, by hand (the calls
//! themselves are in [`crate::grpc`]).

use holdfast_proto::booking::{
    EventListing as ListingMessage, PoolSummary, SearchEventsRequest, Summary,
};
use holdfast_statemachine::EventListing;

use crate::search::{status_name, SearchParams};
use crate::wire::rfc3339;

/// The search parameters of a `SearchEventsRequest`.
pub fn search_params(message: SearchEventsRequest) -> SearchParams {
    SearchParams {
        category: message.category,
        q: message.q,
        city: message.city,
        starts_from: message.starts_from,
        starts_to: message.starts_to,
        min_available: message.min_available,
        nights_from: message.nights_from,
        nights_to: message.nights_to,
        limit: message.limit.map(u64::from),
        after: message.after,
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
