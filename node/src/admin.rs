//! The HTTP edge of admin inventory writes: create events, add seats and pools, change
//! pool capacity, remove items (bodies up to 4 MiB). Each handler hands its path and body
//! to the service layer ([`crate::service::admin`]) and answers the event's change as
//! JSON.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use holdfast_statemachine::EventChange;

use crate::app::{write_answer, AppState};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, IdempotencyKey};
use crate::service::{admin as service, Committed};
use crate::wire::{
    AddPoolsBody, AddSeatsBody, CreateEventBody, ErrorBody, EventChangeJson, PoolCapacityBody,
};

/// The answer of an inventory or listing write: the event's new version.
pub(crate) fn change_answer(status: StatusCode, committed: &Committed<EventChange>) -> Response {
    write_answer(
        status,
        committed.index,
        &EventChangeJson {
            event_id: committed.value.event_id.clone(),
            version: committed.value.version,
            applied_index: committed.index,
        },
    )
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
    let created = service::create_event(&state, key, body).await?;
    Ok(change_answer(StatusCode::CREATED, &created))
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
    let added = service::add_seats(&state, key, event_id, body).await?;
    Ok(change_answer(StatusCode::OK, &added))
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
    let added = service::add_pools(&state, key, event_id, body).await?;
    Ok(change_answer(StatusCode::OK, &added))
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
    let changed = service::set_pool_capacity(&state, key, event_id, pool_id, body.capacity).await?;
    Ok(change_answer(StatusCode::OK, &changed))
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
    let removed = service::remove_seat(&state, key, event_id, seat_id).await?;
    Ok(change_answer(StatusCode::OK, &removed))
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
    let removed = service::remove_pool(&state, key, event_id, pool_id).await?;
    Ok(change_answer(StatusCode::OK, &removed))
}
