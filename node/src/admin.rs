//! Admin inventory writes: create events, add seats and pools, change pool capacity,
//! remove items. Bodies up to 4 MiB.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use holdfast_statemachine::{Command, Outcome};

use crate::app::{write_answer, AppState};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, IdempotencyKey};
use crate::service::{propose, unexpected};
use crate::validate;
use crate::wire::{
    AddPoolsBody, AddSeatsBody, CreateEventBody, ErrorBody, EventChangeJson, PoolCapacityBody,
};

/// Proposes an inventory or listing command and answers the event's new version.
pub(crate) async fn change(
    state: &AppState,
    request_id: Option<String>,
    command: Command,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let committed = propose(state, request_id, command).await?;
    match &committed.outcome {
        Outcome::EventCreated(change) | Outcome::InventoryChanged(change) => Ok(write_answer(
            status,
            committed.index,
            &EventChangeJson {
                event_id: change.event_id.clone(),
                version: change.version,
                applied_index: committed.index,
            },
        )),
        other => Err(unexpected(other)),
    }
}

/// Creates an event with its seats, seat blocks and pools.
#[utoipa::path(
    post, path = "/admin/events", tag = "admin",
    request_body = CreateEventBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "1–128 characters")),
    responses(
        (status = 201, description = "Created", body = EventChangeJson),
        (status = 400, description = "INVALID_FIELD, INVALID_QUANTITY, TOO_MANY_ITEMS", body = ErrorBody),
        (status = 409, description = "EVENT_EXISTS, ITEM_EXISTS", body = ErrorBody),
        (status = 413, description = "BODY_TOO_LARGE (4 MiB)", body = ErrorBody),
    )
)]
pub async fn create_event(
    State(state): State<AppState>,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<CreateEventBody>,
) -> Result<Response, ApiError> {
    let command = validate::create_event(body)?;
    let request_id = key.request_id("admin.events");
    change(&state, request_id, command, StatusCode::CREATED).await
}

/// Adds seats (listed and/or in blocks) to an event.
#[utoipa::path(
    post, path = "/admin/events/{event_id}/seats", tag = "admin",
    request_body = AddSeatsBody,
    params(
        ("event_id" = String, Path, description = "The event"),
        ("Idempotency-Key" = Option<String>, Header, description = "1–128 characters"),
    ),
    responses(
        (status = 200, description = "Added", body = EventChangeJson),
        (status = 404, description = "EVENT_NOT_FOUND", body = ErrorBody),
        (status = 409, description = "ITEM_EXISTS", body = ErrorBody),
    )
)]
pub async fn add_seats(
    State(state): State<AppState>,
    ApiPath(event_id): ApiPath<String>,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<AddSeatsBody>,
) -> Result<Response, ApiError> {
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
    let request_id = key.request_id("admin.seats");
    change(&state, request_id, command, StatusCode::OK).await
}

/// Adds pools to an event.
#[utoipa::path(
    post, path = "/admin/events/{event_id}/pools", tag = "admin",
    request_body = AddPoolsBody,
    params(
        ("event_id" = String, Path, description = "The event"),
        ("Idempotency-Key" = Option<String>, Header, description = "1–128 characters"),
    ),
    responses(
        (status = 200, description = "Added", body = EventChangeJson),
        (status = 404, description = "EVENT_NOT_FOUND", body = ErrorBody),
        (status = 409, description = "ITEM_EXISTS", body = ErrorBody),
    )
)]
pub async fn add_pools(
    State(state): State<AppState>,
    ApiPath(event_id): ApiPath<String>,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<AddPoolsBody>,
) -> Result<Response, ApiError> {
    validate::id("event_id", &event_id)?;
    if body.pools.is_empty() {
        return Err(ApiError::invalid_field("pools", "name at least one pool"));
    }
    let pools = validate::pools(&body.pools)?;
    let command = Command::AddPools { event_id, pools };
    let request_id = key.request_id("admin.pools");
    change(&state, request_id, command, StatusCode::OK).await
}

/// Changes a pool's capacity (never below what is held and booked).
#[utoipa::path(
    patch, path = "/admin/events/{event_id}/pools/{pool_id}", tag = "admin",
    request_body = PoolCapacityBody,
    params(
        ("event_id" = String, Path, description = "The event"),
        ("pool_id" = String, Path, description = "The pool"),
        ("Idempotency-Key" = Option<String>, Header, description = "1–128 characters"),
    ),
    responses(
        (status = 200, description = "Changed", body = EventChangeJson),
        (status = 404, description = "EVENT_NOT_FOUND, POOL_NOT_FOUND", body = ErrorBody),
        (status = 409, description = "CAPACITY_BELOW_USAGE", body = ErrorBody),
    )
)]
pub async fn set_pool_capacity(
    State(state): State<AppState>,
    ApiPath((event_id, pool_id)): ApiPath<(String, String)>,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<PoolCapacityBody>,
) -> Result<Response, ApiError> {
    validate::id("event_id", &event_id)?;
    validate::id("pool_id", &pool_id)?;
    let capacity = validate::capacity("capacity", body.capacity)?;
    let command = Command::SetPoolCapacity {
        event_id,
        pool_id,
        capacity,
    };
    let request_id = key.request_id("admin.pool_capacity");
    change(&state, request_id, command, StatusCode::OK).await
}

/// Removes a seat that is neither held nor booked.
#[utoipa::path(
    delete, path = "/admin/events/{event_id}/seats/{seat_id}", tag = "admin",
    params(
        ("event_id" = String, Path, description = "The event"),
        ("seat_id" = String, Path, description = "The seat"),
        ("Idempotency-Key" = Option<String>, Header, description = "1–128 characters"),
    ),
    responses(
        (status = 200, description = "Removed", body = EventChangeJson),
        (status = 404, description = "EVENT_NOT_FOUND, SEAT_NOT_FOUND", body = ErrorBody),
        (status = 409, description = "ITEM_IN_USE", body = ErrorBody),
    )
)]
pub async fn remove_seat(
    State(state): State<AppState>,
    ApiPath((event_id, seat_id)): ApiPath<(String, String)>,
    key: IdempotencyKey,
) -> Result<Response, ApiError> {
    validate::id("event_id", &event_id)?;
    validate::id("seat_id", &seat_id)?;
    let command = Command::RemoveSeat { event_id, seat_id };
    let request_id = key.request_id("admin.remove_seat");
    change(&state, request_id, command, StatusCode::OK).await
}

/// Removes a pool that has nothing held or booked.
#[utoipa::path(
    delete, path = "/admin/events/{event_id}/pools/{pool_id}", tag = "admin",
    params(
        ("event_id" = String, Path, description = "The event"),
        ("pool_id" = String, Path, description = "The pool"),
        ("Idempotency-Key" = Option<String>, Header, description = "1–128 characters"),
    ),
    responses(
        (status = 200, description = "Removed", body = EventChangeJson),
        (status = 404, description = "EVENT_NOT_FOUND, POOL_NOT_FOUND", body = ErrorBody),
        (status = 409, description = "ITEM_IN_USE", body = ErrorBody),
    )
)]
pub async fn remove_pool(
    State(state): State<AppState>,
    ApiPath((event_id, pool_id)): ApiPath<(String, String)>,
    key: IdempotencyKey,
) -> Result<Response, ApiError> {
    validate::id("event_id", &event_id)?;
    validate::id("pool_id", &pool_id)?;
    let command = Command::RemovePool { event_id, pool_id };
    let request_id = key.request_id("admin.remove_pool");
    change(&state, request_id, command, StatusCode::OK).await
}
