//! The HTTP edge of booking writes: hold, extend, confirm, cancel and the batch of them.
//! Each handler turns its JSON body into the service layer's request ([`crate::service`]),
//! and the service's answer into API.md's JSON; nothing else happens here.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::app::{json_answer, write_answer, AppState};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{parse_json, ApiJson, IdempotencyKey};
use crate::service::{self, Answer, BatchItem, Cancelled, Operation};
use crate::wire::{
    BookingJson, CancelBody, ConfirmBody, ErrorBody, ExtendBody, HoldBody, HoldJson,
};

/// Holds named seats, pool units or the best available seats for a customer, all or none,
/// for `ttl_seconds` (1–7200, default 600).
#[utoipa::path(
    post, path = "/booking/hold", tag = "booking",
    request_body = HoldBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "1–128 characters; a retry returns the first answer")),
    responses(
        (status = 201, description = "Held", body = HoldJson),
        (status = 400, description = "INVALID_FIELD, INVALID_QUANTITY, INVALID_TTL, TOO_MANY_ITEMS, INVALID_JSON", body = ErrorBody),
        (status = 404, description = "EVENT_NOT_FOUND, SEAT_NOT_FOUND, POOL_NOT_FOUND", body = ErrorBody),
        (status = 409, description = "SEAT_UNAVAILABLE, POOL_EXHAUSTED (details.unavailable), NO_ADJACENT_SEATS, HOLD_LIMIT_REACHED, IDEMPOTENCY_KEY_REUSED", body = ErrorBody),
        (status = 413, description = "BODY_TOO_LARGE", body = ErrorBody),
        (status = 503, description = "NO_LEADER, OVERLOADED", body = ErrorBody),
    )
)]
pub async fn hold(
    State(state): State<AppState>,
    caller: Caller,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<HoldBody>,
) -> Result<Response, ApiError> {
    Ok(answer(Answer::Held(
        service::hold(&state, &caller, key, body).await?,
    )))
}

/// Moves an active hold's expiry to `ttl_seconds` from now, capped at its maximum life.
#[utoipa::path(
    post, path = "/booking/extend", tag = "booking",
    request_body = ExtendBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "1–128 characters")),
    responses(
        (status = 200, description = "Extended", body = HoldJson),
        (status = 404, description = "HOLD_NOT_FOUND", body = ErrorBody),
        (status = 409, description = "HOLD_NOT_ACTIVE", body = ErrorBody),
        (status = 410, description = "HOLD_EXPIRED", body = ErrorBody),
    )
)]
pub async fn extend(
    State(state): State<AppState>,
    caller: Caller,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<ExtendBody>,
) -> Result<Response, ApiError> {
    Ok(answer(Answer::Extended(
        service::extend(&state, &caller, key, body).await?,
    )))
}

/// Charges the payment provider for an active hold, then commits the booking; a retry with
/// the same `Idempotency-Key` never charges twice.
#[utoipa::path(
    post, path = "/booking/confirm", tag = "booking",
    request_body = ConfirmBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "1–128 characters; a retry never charges twice")),
    responses(
        (status = 200, description = "Confirmed", body = BookingJson),
        (status = 402, description = "PAYMENT_DECLINED", body = ErrorBody),
        (status = 404, description = "HOLD_NOT_FOUND", body = ErrorBody),
        (status = 409, description = "HOLD_NOT_ACTIVE; details.refund when a charge was refunded", body = ErrorBody),
        (status = 410, description = "HOLD_EXPIRED; details.refund when a charge was refunded", body = ErrorBody),
    )
)]
pub async fn confirm(
    State(state): State<AppState>,
    caller: Caller,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<ConfirmBody>,
) -> Result<Response, ApiError> {
    Ok(answer(Answer::Confirmed(
        service::confirm(&state, &caller, key, body).await?,
    )))
}

/// Releases a hold, or cancels a booking and records its refund.
#[utoipa::path(
    post, path = "/booking/cancel", tag = "booking",
    request_body = CancelBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "1–128 characters")),
    responses(
        (status = 200, description = "Cancelled: a hold (hold_id) or a booking with its refund (booking_id)", body = BookingJson),
        (status = 404, description = "HOLD_NOT_FOUND, BOOKING_NOT_FOUND", body = ErrorBody),
        (status = 409, description = "HOLD_NOT_ACTIVE, BOOKING_NOT_ACTIVE", body = ErrorBody),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<CancelBody>,
) -> Result<Response, ApiError> {
    Ok(answer(Answer::Cancelled(
        service::cancel(&state, &caller, key, body).await?,
    )))
}

/// An answer as its route's JSON, with the index that produced it.
fn answer(answer: Answer) -> Response {
    let (index, json) = answer_json(&answer);
    write_answer(answer.status(), index, &json)
}

/// The JSON of an answer (API.md's shape for its route), written as its own type.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum AnswerJson {
    /// A hold's answer.
    Hold(Box<HoldJson>),
    /// A booking's answer.
    Booking(Box<BookingJson>),
}

/// A batch result's body: what the operation's own route would have answered.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ResultBody {
    /// The answer.
    Answer(AnswerJson),
    /// `{"error": ...}`.
    Error(serde_json::Value),
}

/// The JSON of an answer and its index.
fn answer_json(answer: &Answer) -> (u64, AnswerJson) {
    match answer {
        Answer::Held(held) | Answer::Extended(held) => (
            held.index,
            AnswerJson::Hold(Box::new(HoldJson::from_view(&held.value, Some(held.index)))),
        ),
        Answer::Confirmed(booked) => (
            booked.index,
            AnswerJson::Booking(Box::new(BookingJson::from_view(
                &booked.value,
                Some(booked.index),
            ))),
        ),
        Answer::Cancelled(cancelled) => match &cancelled.value {
            Cancelled::Hold(view) => (
                cancelled.index,
                AnswerJson::Hold(Box::new(HoldJson::from_view(view, Some(cancelled.index)))),
            ),
            Cancelled::Booking(view) => (
                cancelled.index,
                AnswerJson::Booking(Box::new(BookingJson::from_view(
                    view,
                    Some(cancelled.index),
                ))),
            ),
        },
    }
}

/// `POST /booking/batch`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BatchBody {
    /// At most 1,000 operations.
    #[schema(max_items = 1000)]
    pub operations: Vec<BatchOperationBody>,
}

/// One operation of a batch: the route it stands for, its own key, and the body that route
/// takes.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BatchOperationBody {
    /// `hold`, `extend`, `confirm` or `cancel`.
    pub op: String,
    /// 1–128 printable ASCII characters; scoped to the operation's route as its
    /// `Idempotency-Key` would be.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// The body of the operation's own route.
    #[schema(value_type = Object)]
    pub body: Box<RawValue>,
}

/// The answer of `POST /booking/batch`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchJson {
    /// One per operation, in order.
    pub results: Vec<BatchResultJson>,
}

/// One operation's answer: the status and body its own route would have answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResultJson {
    /// The HTTP status the operation's own route would have answered.
    pub status: u16,
    /// The JSON body that route would have answered: the answer, or `{"error": ...}`.
    #[schema(value_type = Object)]
    pub body: ResultBody,
    /// With a `503`: when to retry (its route's `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

/// Independent booking operations in one call, one answer each.
#[utoipa::path(
    post, path = "/booking/batch", tag = "booking",
    request_body = BatchBody,
    responses(
        (status = 200, description = "One result per operation, in order (each with its own route's status and body)", body = BatchJson),
        (status = 400, description = "TOO_MANY_ITEMS (more than 1,000 operations), INVALID_JSON, INVALID_FIELD; nothing applied", body = ErrorBody),
        (status = 413, description = "BODY_TOO_LARGE (over 1 MiB); nothing applied", body = ErrorBody),
    )
)]
pub async fn batch(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<BatchBody>,
) -> Result<Response, ApiError> {
    service::check_batch_size(body.operations.len())?;
    let items: Vec<BatchItem> = body
        .operations
        .iter()
        .enumerate()
        .map(|(position, operation)| batch_item(&caller, position, operation))
        .collect();
    let results = service::batch(&state, &caller, items)
        .await
        .into_iter()
        .map(|result| match result {
            Ok(answer) => BatchResultJson {
                status: answer.status().as_u16(),
                body: ResultBody::Answer(answer_json(&answer).1),
                retry_after_seconds: None,
            },
            Err(error) => BatchResultJson {
                status: error.status.as_u16(),
                body: ResultBody::Error(error.body()),
                retry_after_seconds: error.retry_after_seconds,
            },
        })
        .collect();
    Ok(json_answer(StatusCode::OK, &BatchJson { results }))
}

/// One batch entry parsed as its route would parse it; the error names the entry.
fn batch_item(caller: &Caller, position: usize, operation: &BatchOperationBody) -> BatchItem {
    let field = |name: &str| format!("operations[{position}].{name}");
    let key = match &operation.idempotency_key {
        Some(key) => IdempotencyKey::parse(&field("idempotency_key"), key)?.scoped(caller),
        None => IdempotencyKey(None),
    };
    let body = operation.body.get().as_bytes();
    let parsed = match operation.op.as_str() {
        "hold" => parse_json(body).map(Operation::Hold),
        "extend" => parse_json(body).map(Operation::Extend),
        "confirm" => parse_json(body).map(Operation::Confirm),
        "cancel" => parse_json(body).map(Operation::Cancel),
        _ => {
            return Err(ApiError::invalid_field(
                &field("op"),
                "must be hold, extend, confirm or cancel",
            ))
        }
    };
    Ok((key, parsed?))
}
