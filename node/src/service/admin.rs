//! Admin inventory writes every edge serves: create an event, add seats and pools, change a
//! pool's capacity, remove a seat or a pool. Each is checked here, proposed as one command
//! with its idempotency key scoped by route, and answered with the event's new version.

use holdfast_statemachine::{Command, EventChange, Outcome};

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::IdempotencyKey;
use crate::service::{propose, unexpected, Committed};
use crate::validate;
use crate::wire::{AddPoolsBody, AddSeatsBody, CreateEventBody};

/// Proposes an inventory or listing command: the event's change with its index.
pub(crate) async fn change(
    state: &AppState,
    request_id: Option<String>,
    command: Command,
) -> Result<Committed<EventChange>, ApiError> {
    let committed = propose(state, request_id, command).await?;
    match committed.outcome {
        Outcome::EventCreated(value) | Outcome::InventoryChanged(value) => Ok(Committed {
            value,
            index: committed.index,
        }),
        other => Err(unexpected(&other)),
    }
}

/// Creates an event with its seats, seat blocks and pools.
pub async fn create_event(
    state: &AppState,
    key: IdempotencyKey,
    body: CreateEventBody,
) -> Result<Committed<EventChange>, ApiError> {
    let command = validate::create_event(body)?;
    change(state, key.request_id("admin.events"), command).await
}

/// Adds seats (listed and/or in blocks) to an event.
pub async fn add_seats(
    state: &AppState,
    key: IdempotencyKey,
    event_id: String,
    body: AddSeatsBody,
) -> Result<Committed<EventChange>, ApiError> {
    validate::id("event_id", &event_id)?;
    if body.seats.is_empty() && body.seat_blocks.is_empty() {
        return Err(ApiError::invalid_field(
            "seats",
            "name at least one seat or seat block",
        ));
    }
    let (seats, seat_blocks) = validate::seats(&body.seats, &body.seat_blocks)?;
    let command = Command::AddSeats {
        event_id,
        seats,
        seat_blocks,
    };
    change(state, key.request_id("admin.seats"), command).await
}

/// Adds pools to an event.
pub async fn add_pools(
    state: &AppState,
    key: IdempotencyKey,
    event_id: String,
    body: AddPoolsBody,
) -> Result<Committed<EventChange>, ApiError> {
    validate::id("event_id", &event_id)?;
    if body.pools.is_empty() {
        return Err(ApiError::invalid_field("pools", "name at least one pool"));
    }
    let pools = validate::pools(&body.pools)?;
    let command = Command::AddPools { event_id, pools };
    change(state, key.request_id("admin.pools"), command).await
}

/// Changes a pool's capacity (never below what is held and booked).
pub async fn set_pool_capacity(
    state: &AppState,
    key: IdempotencyKey,
    event_id: String,
    pool_id: String,
    capacity: i64,
) -> Result<Committed<EventChange>, ApiError> {
    validate::id("event_id", &event_id)?;
    validate::id("pool_id", &pool_id)?;
    let capacity = validate::capacity("capacity", capacity)?;
    let command = Command::SetPoolCapacity {
        event_id,
        pool_id,
        capacity,
    };
    change(state, key.request_id("admin.pool_capacity"), command).await
}

/// Removes a seat that is neither held nor booked.
pub async fn remove_seat(
    state: &AppState,
    key: IdempotencyKey,
    event_id: String,
    seat_id: String,
) -> Result<Committed<EventChange>, ApiError> {
    validate::id("event_id", &event_id)?;
    validate::id("seat_id", &seat_id)?;
    let command = Command::RemoveSeat { event_id, seat_id };
    change(state, key.request_id("admin.remove_seat"), command).await
}

/// Removes a pool that has nothing held or booked.
pub async fn remove_pool(
    state: &AppState,
    key: IdempotencyKey,
    event_id: String,
    pool_id: String,
) -> Result<Committed<EventChange>, ApiError> {
    validate::id("event_id", &event_id)?;
    validate::id("pool_id", &pool_id)?;
    let command = Command::RemovePool { event_id, pool_id };
    change(state, key.request_id("admin.remove_pool"), command).await
}
