//! Admin writes on an event's listing: `PATCH /admin/events/{event_id}` (venue, city,
//! times, description, tags, name) and `POST /admin/events/{event_id}/cancel` (one
//! replicated command that releases every hold, cancels every booking with its refund
//! recorded and refuses holds from then on), with the edge validation they and
//! `POST /admin/events` share.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use holdfast_statemachine::{Command, EventUpdate, Listing, Outcome};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::app::{write_answer, AppState};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, IdempotencyKey};
use crate::service::{propose, unexpected};
use crate::validate;
use crate::wire::{parse_rfc3339_ms, ErrorBody, EventChangeJson};

/// The reason recorded on bookings cancelled with their event when the request names none.
pub const CANCEL_REASON_DEFAULT: &str = "event cancelled";

fn time(field: &str, text: &str) -> Result<u64, ApiError> {
    parse_rfc3339_ms(text)
        .ok_or_else(|| ApiError::invalid_field(field, "must be an RFC 3339 time after 1970"))
}

/// The listing of `POST /admin/events`, checked as the state machine will check it (400
/// `INVALID_FIELD` naming the field).
pub fn listing(
    venue: Option<String>,
    city: Option<String>,
    ends_at: Option<&str>,
    description: Option<String>,
    tags: Vec<String>,
    starts_at_ms: Option<u64>,
) -> Result<Listing, ApiError> {
    let listing = Listing {
        venue,
        city,
        ends_at_ms: ends_at.map(|text| time("ends_at", text)).transpose()?,
        description,
        tags,
    };
    listing.check(starts_at_ms).map_err(ApiError::from)?;
    Ok(listing)
}

/// `null` as `Some(None)` (clear the field), a value as `Some(Some(value))`; an absent
/// field stays `None` through `#[serde(default)]`.
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `PATCH /admin/events/{event_id}`: the fields to change. An absent field is left as it
/// is; `null` clears an optional one.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
pub struct UpdateEventBody {
    /// At most 256 bytes without control characters; `null` leaves the name as it is.
    #[serde(default)]
    pub name: Option<String>,
    /// RFC 3339.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub starts_at: Option<Option<String>>,
    /// RFC 3339, not before `starts_at`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub ends_at: Option<Option<String>>,
    /// 1–128 bytes without control characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub venue: Option<Option<String>>,
    /// 1–128 bytes without control characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub city: Option<Option<String>>,
    /// 1–4096 bytes without control characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// Replaces every tag: at most 16, each 1–32 bytes without control characters, none
    /// named twice; `[]` removes them all.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

/// `POST /admin/events/{event_id}/cancel`.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
pub struct CancelEventBody {
    /// Recorded on every cancelled booking (default "event cancelled").
    #[serde(default)]
    pub reason: Option<String>,
}

/// The answer of `POST /admin/events/{event_id}/cancel`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EventCancelledJson {
    /// The cancelled event.
    pub event_id: String,
    /// Always `CANCELLED`.
    pub status: &'static str,
    /// The event's version after the cancellation.
    pub version: u64,
    /// Holds that were active on the event and are now released.
    pub holds_released: u64,
    /// Confirmed bookings of the event, now cancelled.
    pub bookings_cancelled: u64,
    /// Refunds recorded for the cancelled bookings: one per booking that paid more than 0,
    /// so at most `bookings_cancelled`. The refund worker pays them later.
    pub refunds_recorded: u64,
    /// Sum of the refunds recorded, in minor units.
    pub refund_amount: u64,
    /// The log index of the cancellation (also `X-Holdfast-Applied-Index`).
    pub applied_index: u64,
}

/// The command of a `PATCH /admin/events/{event_id}` body.
pub fn update_command(event_id: String, body: UpdateEventBody) -> Result<Command, ApiError> {
    validate::id("event_id", &event_id)?;
    let times = |field: &str, value: Option<Option<String>>| {
        value
            .map(|value| value.map(|text| time(field, &text)).transpose())
            .transpose()
    };
    let update = EventUpdate {
        event_id,
        name: body.name,
        starts_at_ms: times("starts_at", body.starts_at)?,
        ends_at_ms: times("ends_at", body.ends_at)?,
        venue: body.venue,
        city: body.city,
        description: body.description,
        tags: body.tags,
    };
    let unchanged = EventUpdate {
        event_id: update.event_id.clone(),
        ..EventUpdate::default()
    };
    if update == unchanged {
        return Err(ApiError::invalid_field(
            "body",
            "name at least one field to change",
        ));
    }
    update.check().map_err(ApiError::from)?;
    Ok(Command::UpdateEvent(update))
}

/// Changes an event's listing: name, start, end, venue, city, description, tags.
#[utoipa::path(
    patch, path = "/admin/events/{event_id}", tag = "admin",
    request_body = UpdateEventBody,
    params(
        ("event_id" = String, Path, description = "The event"),
        ("Idempotency-Key" = Option<String>, Header, description = "1–128 characters"),
    ),
    responses(
        (status = 200, description = "Changed", body = EventChangeJson),
        (status = 400, description = "INVALID_FIELD", body = ErrorBody),
        (status = 404, description = "EVENT_NOT_FOUND", body = ErrorBody),
    )
)]
pub async fn update_event(
    State(state): State<AppState>,
    ApiPath(event_id): ApiPath<String>,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<UpdateEventBody>,
) -> Result<Response, ApiError> {
    let command = update_command(event_id, body)?;
    let request_id = key.request_id("admin.events.update");
    let changed = crate::service::admin::change(&state, request_id, command).await?;
    Ok(crate::admin::change_answer(StatusCode::OK, &changed))
}

/// Cancels an event: releases every active hold, cancels every booking with its refund
/// recorded, refuses holds from then on. One replicated command.
#[utoipa::path(
    post, path = "/admin/events/{event_id}/cancel", tag = "admin",
    request_body = CancelEventBody,
    params(
        ("event_id" = String, Path, description = "The event"),
        ("Idempotency-Key" = Option<String>, Header, description = "1–128 characters"),
    ),
    responses(
        (status = 200, description = "Cancelled", body = EventCancelledJson),
        (status = 400, description = "INVALID_FIELD", body = ErrorBody),
        (status = 404, description = "EVENT_NOT_FOUND", body = ErrorBody),
        (status = 409, description = "EVENT_CANCELLED (already)", body = ErrorBody),
    )
)]
pub async fn cancel_event(
    State(state): State<AppState>,
    ApiPath(event_id): ApiPath<String>,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<CancelEventBody>,
) -> Result<Response, ApiError> {
    validate::id("event_id", &event_id)?;
    let reason = body
        .reason
        .unwrap_or_else(|| CANCEL_REASON_DEFAULT.to_string());
    validate::text("reason", &reason)?;
    let command = Command::CancelEvent { event_id, reason };
    let committed = propose(&state, key.request_id("admin.events.cancel"), command).await?;
    match &committed.outcome {
        Outcome::EventCancelled(cancelled) => Ok(write_answer(
            StatusCode::OK,
            committed.index,
            &EventCancelledJson {
                event_id: cancelled.event_id.clone(),
                status: "CANCELLED",
                version: cancelled.version,
                holds_released: cancelled.holds_released,
                bookings_cancelled: cancelled.bookings_cancelled,
                refunds_recorded: cancelled.refunds_recorded,
                refund_amount: cancelled.refund_amount,
                applied_index: committed.index,
            },
        )),
        other => Err(unexpected(other)),
    }
}
