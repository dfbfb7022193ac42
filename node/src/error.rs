//! The one error type of the service layer and both edges: a stable [`ErrorCode`] from the
//! registry (`holdfast_statemachine::codes`, which also gives its HTTP status and gRPC
//! code), a message and details; rendered over HTTP as
//! `{"error": {"code", "message", "details"}}`. Every domain [`Rejection`], [`NodeError`]
//! and [`PaymentError`] converts into it.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use holdfast_statemachine::{ErrorCode, Rejection};
use serde_json::{json, Value};

use crate::payment::PaymentError;
use crate::replica::NodeError;
use crate::wire::{rfc3339, ErrorBody, ErrorJson};

/// Seconds a client is asked to wait after a `503` caused by leadership or load.
pub const RETRY_AFTER_SECONDS_DEFAULT: u64 = 1;

/// An error answer. Build it with the constructors or `From` conversions; it renders as
/// API.md's error body, with `Retry-After` when set.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// The HTTP status of `code` (kept beside it: every edge reads it).
    pub status: StatusCode,
    /// The stable code clients match on (API.md), rendered as its `UPPER_SNAKE` name.
    pub code: ErrorCode,
    /// Human text; what a client acts on is in `code` and `details`.
    pub message: String,
    /// Always a JSON object.
    pub details: Value,
    /// Seconds to wait before retrying, sent as `Retry-After` (gRPC: `retry-after`
    /// metadata); `None` sends no such header.
    pub retry_after_seconds: Option<u64>,
    /// Answer with `Connection: close` (HTTP/1 only): the request body was left unread, so
    /// the connection cannot carry another request.
    pub close_connection: bool,
}

impl ApiError {
    /// An error with empty details; its status is the code's.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(code.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message: message.into(),
            details: json!({}),
            retry_after_seconds: None,
            close_connection: false,
        }
    }

    /// Replaces the details (a JSON object).
    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = details;
        self
    }

    /// Adds `Retry-After`.
    pub fn with_retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after_seconds = Some(seconds);
        self
    }

    /// Adds `Connection: close`, for an answer given before the request body was read.
    pub fn closing_connection(mut self) -> ApiError {
        self.close_connection = true;
        self
    }

    /// `400 INVALID_FIELD` naming the field.
    pub fn invalid_field(field: &str, reason: impl Into<String>) -> ApiError {
        let reason = reason.into();
        ApiError::new(
            ErrorCode::InvalidField,
            format!("invalid {field}: {reason}"),
        )
        .with_details(json!({"field": field, "reason": reason}))
    }

    /// `400 INVALID_QUANTITY` naming the field.
    pub fn invalid_quantity(field: &str, reason: impl Into<String>) -> ApiError {
        let reason = reason.into();
        ApiError::new(
            ErrorCode::InvalidQuantity,
            format!("invalid quantity in {field}: {reason}"),
        )
        .with_details(json!({"field": field, "reason": reason}))
    }

    /// `400 INVALID_JSON`.
    pub fn invalid_json(reason: impl Into<String>) -> ApiError {
        let reason = reason.into();
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("the body is not valid JSON: {reason}"),
        )
        .with_details(json!({"reason": reason}))
    }

    /// `413 BODY_TOO_LARGE`.
    pub fn body_too_large(limit_bytes: usize) -> ApiError {
        ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("the body is larger than {limit_bytes} bytes"),
        )
        .with_details(json!({"limit_bytes": limit_bytes}))
    }

    /// `404 ROUTE_NOT_FOUND`.
    pub fn route_not_found(method: &str, path: &str) -> ApiError {
        ApiError::new(
            ErrorCode::RouteNotFound,
            format!("no route for {method} {path}"),
        )
        .with_details(json!({"method": method, "path": path}))
    }

    /// `405 METHOD_NOT_ALLOWED`.
    pub fn method_not_allowed(method: &str, path: &str) -> ApiError {
        ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!("{method} is not allowed on {path}"),
        )
        .with_details(json!({"method": method, "path": path}))
    }

    /// `500 INTERNAL`.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Internal, message)
    }

    /// The rendered body, for tests and for remembering answers.
    pub fn body(&self) -> Value {
        json!({"error": {"code": self.code.as_str(), "message": self.message, "details": self.details}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after_seconds;
        let close_connection = self.close_connection;
        // A struct keeps the fields in API.md's order: code, message, details.
        let body = ErrorBody {
            error: ErrorJson {
                code: self.code.as_str().to_string(),
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if close_connection {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

fn rejection_message_and_details(rejection: &Rejection) -> (String, Value) {
    match rejection {
        Rejection::InvalidField { field, reason } => (
            format!("invalid {field}: {reason}"),
            json!({"field": field, "reason": reason}),
        ),
        Rejection::InvalidQuantity { field, reason } => (
            format!("invalid quantity in {field}: {reason}"),
            json!({"field": field, "reason": reason}),
        ),
        Rejection::InvalidTtl { ttl_seconds } => (
            format!("ttl_seconds {ttl_seconds} is outside the allowed range"),
            ttl_details(*ttl_seconds as i64),
        ),
        Rejection::TooManyItems { items, max } => (
            format!("{items} items is more than the {max} allowed"),
            json!({"items": items, "max": max}),
        ),
        Rejection::EventNotFound { event_id } => (
            format!("event {event_id} does not exist"),
            json!({"event_id": event_id}),
        ),
        Rejection::SeatNotFound { seats } => (
            format!("unknown seats: {}", seats.join(", ")),
            json!({"seats": seats}),
        ),
        Rejection::PoolNotFound { pools } => (
            format!("unknown pools: {}", pools.join(", ")),
            json!({"pools": pools}),
        ),
        Rejection::HoldNotFound { hold_id } => (
            format!("hold {hold_id} does not exist"),
            json!({"hold_id": hold_id}),
        ),
        Rejection::BookingNotFound { booking_id } => (
            format!("booking {booking_id} does not exist"),
            json!({"booking_id": booking_id}),
        ),
        Rejection::RefundNotFound { refund_id } => (
            format!("refund {refund_id} does not exist"),
            json!({"refund_id": refund_id}),
        ),
        Rejection::SeatUnavailable { seats } => (
            format!("seats not available: {}", seats.join(", ")),
            json!({"unavailable": seats}),
        ),
        Rejection::PoolExhausted { pools } => {
            let ids: Vec<&str> = pools.iter().map(|pool| pool.pool_id.as_str()).collect();
            let shortages: Vec<Value> = pools
                .iter()
                .map(|pool| {
                    json!({"pool_id": pool.pool_id, "requested": pool.requested, "available": pool.available})
                })
                .collect();
            (
                format!("not enough left in pools: {}", ids.join(", ")),
                json!({"unavailable": ids, "pools": shortages}),
            )
        }
        Rejection::NoAdjacentSeats { count, section } => (
            format!("no row has {count} adjacent available seats"),
            json!({"count": count, "section": section}),
        ),
        Rejection::HoldNotActive { hold_id, status } => (
            format!("hold {hold_id} is {}", status.as_str()),
            json!({"hold_id": hold_id, "status": status.as_str()}),
        ),
        Rejection::HoldExpired {
            hold_id,
            expired_at_ms,
        } => (
            format!("hold {hold_id} has expired"),
            json!({"hold_id": hold_id, "expired_at": rfc3339(*expired_at_ms)}),
        ),
        Rejection::HoldLimitReached { customer_id, max } => (
            format!("customer {customer_id} already has {max} active holds on this event"),
            json!({"customer_id": customer_id, "max": max}),
        ),
        Rejection::BookingNotActive { booking_id } => (
            format!("booking {booking_id} is already cancelled"),
            json!({"booking_id": booking_id}),
        ),
        Rejection::RefundNotPending { refund_id } => (
            format!("refund {refund_id} is not pending"),
            json!({"refund_id": refund_id}),
        ),
        Rejection::WebhookNotFound { webhook_id } => (
            format!("webhook {webhook_id} does not exist"),
            json!({"webhook_id": webhook_id}),
        ),
        Rejection::RefundAttemptStale {
            refund_id,
            attempts,
        } => (
            format!("refund {refund_id} has {attempts} failed attempts recorded already"),
            json!({"refund_id": refund_id, "attempts": attempts}),
        ),
        Rejection::PaymentAmountMismatch { expected, charged } => (
            format!("charged {charged} but the hold costs {expected}"),
            json!({"expected": expected, "charged": charged}),
        ),
        Rejection::ItemInUse { item_id } => (
            format!("{item_id} is held or booked"),
            json!({"item_id": item_id}),
        ),
        Rejection::ItemExists { item_ids } => (
            format!("items already exist: {}", item_ids.join(", ")),
            json!({"item_ids": item_ids}),
        ),
        Rejection::CapacityBelowUsage { pool_id, in_use } => (
            format!("pool {pool_id} has {in_use} held or booked"),
            json!({"pool_id": pool_id, "in_use": in_use}),
        ),
        Rejection::EventExists { event_id } => (
            format!("event {event_id} already exists"),
            json!({"event_id": event_id}),
        ),
        Rejection::LimitReached { what, max } => (
            format!("at most {max} {what}"),
            json!({"what": what, "max": max}),
        ),
        Rejection::IdempotencyKeyReused { request_id } => (
            "the Idempotency-Key was already used with a different request".to_string(),
            json!({"request_id": request_id}),
        ),
        Rejection::EventCancelled { event_id } => (
            format!("event {event_id} is cancelled"),
            json!({"event_id": event_id}),
        ),
        Rejection::IdempotencyTableFull { entries } => (
            "too many requests remembered; retry shortly".to_string(),
            json!({"entries": entries}),
        ),
        Rejection::OutboxFull { claims, max } => (
            "the outbox is full: a webhook has not acknowledged enough events; retry later"
                .to_string(),
            json!({"claims": claims, "max": max}),
        ),
        Rejection::RestoreRefused { reason } => (
            format!("restore refused: {reason}"),
            json!({"reason": reason}),
        ),
    }
}

/// The details of an `INVALID_TTL` answer.
pub fn ttl_details(ttl_seconds: i64) -> Value {
    use holdfast_statemachine::limits::{HOLD_TTL_SECONDS_MAX, HOLD_TTL_SECONDS_MIN};
    json!({"field": "ttl_seconds", "ttl_seconds": ttl_seconds,
           "min": HOLD_TTL_SECONDS_MIN, "max": HOLD_TTL_SECONDS_MAX})
}

impl From<&Rejection> for ApiError {
    fn from(rejection: &Rejection) -> ApiError {
        let (message, details) = rejection_message_and_details(rejection);
        let error = ApiError::new(rejection.code(), message).with_details(details);
        match rejection {
            Rejection::IdempotencyTableFull { .. } | Rejection::OutboxFull { .. } => {
                error.with_retry_after(RETRY_AFTER_SECONDS_DEFAULT)
            }
            _ => error,
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> ApiError {
        ApiError::from(&rejection)
    }
}

impl From<NodeError> for ApiError {
    fn from(error: NodeError) -> ApiError {
        let message = error.to_string();
        let code = error.code();
        let unavailable = |details: Value| {
            ApiError::new(code, message.clone())
                .with_details(details)
                .with_retry_after(RETRY_AFTER_SECONDS_DEFAULT)
        };
        match &error {
            NodeError::NoLeader => unavailable(json!({})),
            NodeError::NotLeader {
                leader_id,
                leader_http_addr,
            } => unavailable(json!({"leader_id": leader_id, "leader_http_addr": leader_http_addr})),
            NodeError::NoQuorum { .. }
            | NodeError::OutcomeUnknown { .. }
            | NodeError::TransferFailed { .. }
            | NodeError::NotReady { .. }
            | NodeError::Overloaded { .. } => unavailable(json!({})),
            NodeError::IndexNotReached {
                min_index,
                applied_index,
            } => unavailable(json!({"min_index": min_index, "applied_index": applied_index})),
            NodeError::AlreadyInitialized | NodeError::MembershipRefused { .. } => {
                ApiError::new(code, message)
            }
            NodeError::NodeNotFound { node_id } => {
                ApiError::new(code, message).with_details(json!({"node_id": node_id}))
            }
            NodeError::InvalidField { field, reason } => ApiError::invalid_field(field, reason),
            NodeError::Internal { .. } => ApiError::internal(message),
        }
    }
}

impl From<PaymentError> for ApiError {
    fn from(error: PaymentError) -> ApiError {
        let message = error.to_string();
        match error {
            PaymentError::Declined { reason } => ApiError::new(ErrorCode::PaymentDeclined, message)
                .with_details(json!({"reason": reason})),
            PaymentError::InvalidInstrument { field, reason } => {
                ApiError::invalid_field(&field, reason)
            }
            PaymentError::KeyReused { .. } => {
                ApiError::new(ErrorCode::IdempotencyKeyReused, message)
            }
            PaymentError::Unavailable { .. } => {
                ApiError::new(ErrorCode::PaymentUnavailable, message)
                    .with_retry_after(RETRY_AFTER_SECONDS_DEFAULT)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_code_gets_its_status() {
        let cases = [
            (Rejection::InvalidTtl { ttl_seconds: 0 }, 400),
            (
                Rejection::EventNotFound {
                    event_id: "e".into(),
                },
                404,
            ),
            (
                Rejection::RefundNotFound {
                    refund_id: "r_1".into(),
                },
                404,
            ),
            (Rejection::SeatUnavailable { seats: vec![] }, 409),
            (
                Rejection::HoldExpired {
                    hold_id: "h_1".into(),
                    expired_at_ms: 0,
                },
                410,
            ),
            (
                Rejection::LimitReached {
                    what: "x".into(),
                    max: 1,
                },
                409,
            ),
            (Rejection::IdempotencyTableFull { entries: 1 }, 503),
        ];
        for (rejection, status) in cases {
            let error = ApiError::from(&rejection);
            assert_eq!(error.status.as_u16(), status, "{rejection:?}");
            assert_eq!(error.code, rejection.code());
        }
        let overloaded = ApiError::from(Rejection::IdempotencyTableFull { entries: 1 });
        assert_eq!(overloaded.retry_after_seconds, Some(1));
    }
}
