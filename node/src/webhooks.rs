//! Webhooks at the HTTP edge: `POST /admin/webhooks`, `GET /admin/webhooks`,
//! `DELETE /admin/webhooks/{webhook_id}` (stored in the replicated state; a secret is never
//! answered), and the JSON of an outbox event as webhooks and `GET /changes` receive it.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use holdfast_statemachine::{Command, EventType, OutboxEvent, OutboxKind, Outcome, WebhookView};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::app::{read_request, write_answer, AppState};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, IdempotencyKey};
use crate::replica;
use crate::service::{propose, unexpected};
use crate::wire::{rfc3339, ErrorBody};

/// `POST /admin/webhooks`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookBody {
    /// Where deliveries are posted (`http://` or `https://`).
    pub url: String,
    /// The HMAC-SHA256 key of the `Holdfast-Signature` header; never returned.
    pub secret: String,
    /// Event types to deliver (`booking.confirmed`, ...); empty or absent means all.
    #[serde(default)]
    pub events: Vec<String>,
}

/// A webhook, without its secret.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WebhookJson {
    /// `wh_` and a sequence number, never reused; what `DELETE` takes.
    pub webhook_id: String,
    /// Where deliveries are posted.
    pub url: String,
    /// The event types it wants, sorted and without duplicates; empty means every type.
    pub events: Vec<&'static str>,
    /// When it was added (RFC 3339, cluster time).
    pub created_at: String,
    /// Outbox events up to this index are delivered (or not wanted).
    pub delivered_up_to: u64,
}

impl WebhookJson {
    fn from_view(view: &WebhookView) -> WebhookJson {
        WebhookJson {
            webhook_id: view.webhook_id.clone(),
            url: view.url.clone(),
            events: view.events.iter().map(|event| event.as_str()).collect(),
            created_at: rfc3339(view.created_at_ms),
            delivered_up_to: view.delivered_up_to,
        }
    }
}

/// `GET /admin/webhooks`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WebhookListJson {
    /// Every webhook the cluster has, without secrets.
    pub webhooks: Vec<WebhookJson>,
}

fn command_of(body: WebhookBody) -> Result<Command, ApiError> {
    holdfast_statemachine::validate_webhook_url(&body.url)?;
    holdfast_statemachine::validate_webhook_secret(&body.secret)?;
    let events = body
        .events
        .iter()
        .map(|name| {
            EventType::parse(name).ok_or_else(|| {
                ApiError::invalid_field(
                    "events",
                    format!(
                        "unknown event type {name:?}; known: {}",
                        EventType::ALL.map(EventType::as_str).join(", ")
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Command::AddWebhook {
        url: body.url,
        secret: body.secret,
        events,
    })
}

/// Adds a webhook.
#[utoipa::path(
    post, path = "/admin/webhooks", tag = "admin",
    request_body = WebhookBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "1–128 characters")),
    responses(
        (status = 201, description = "Added (the secret is not returned)", body = WebhookJson),
        (status = 400, description = "INVALID_FIELD (url, secret, events)", body = ErrorBody),
        (status = 409, description = "LIMIT_REACHED", body = ErrorBody),
    )
)]
pub async fn add_webhook(
    State(state): State<AppState>,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<WebhookBody>,
) -> Result<Response, ApiError> {
    let command = command_of(body)?;
    let committed = propose(&state, key.request_id("admin.webhooks.add"), command).await?;
    match &committed.outcome {
        Outcome::WebhookAdded(view) => Ok(write_answer(
            StatusCode::CREATED,
            committed.index,
            &WebhookJson::from_view(view),
        )),
        other => Err(unexpected(other)),
    }
}

/// Lists the webhooks (never their secrets).
#[utoipa::path(
    get, path = "/admin/webhooks", tag = "admin",
    responses((status = 200, description = "Every webhook", body = WebhookListJson))
)]
pub async fn list_webhooks(
    State(state): State<AppState>,
    query: ApiQuery,
    _headers: HeaderMap,
) -> Result<Response, ApiError> {
    let read_request = read_request(&query, &state.config)?;
    let (webhooks, meta) =
        replica::read(&*state.replica, read_request, |machine| machine.webhooks()).await?;
    let body = WebhookListJson {
        webhooks: webhooks.iter().map(WebhookJson::from_view).collect(),
    };
    Ok(write_answer(StatusCode::OK, meta.applied_index, &body))
}

/// Removes a webhook.
#[utoipa::path(
    delete, path = "/admin/webhooks/{webhook_id}", tag = "admin",
    params(("webhook_id" = String, Path, description = "The webhook")),
    responses(
        (status = 200, description = "Removed", body = WebhookJson),
        (status = 404, description = "WEBHOOK_NOT_FOUND", body = ErrorBody),
    )
)]
pub async fn remove_webhook(
    State(state): State<AppState>,
    ApiPath(webhook_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    crate::validate::id("webhook_id", &webhook_id)?;
    let committed = propose(&state, None, Command::RemoveWebhook { webhook_id }).await?;
    match &committed.outcome {
        Outcome::WebhookRemoved(view) => Ok(write_answer(
            StatusCode::OK,
            committed.index,
            &WebhookJson::from_view(view),
        )),
        other => Err(unexpected(other)),
    }
}

/// The unique id of an outbox event (its index never repeats in a cluster).
pub fn event_id(event: &OutboxEvent) -> String {
    format!("evt_{}", event.index)
}

/// An outbox event as webhooks and `GET /changes` receive it: `{"id", "type", "index",
/// "created_at", "data"}`.
pub fn event_json(event: &OutboxEvent) -> Value {
    let data = match &event.kind {
        OutboxKind::BookingConfirmed {
            booking_id,
            hold_id,
            event_id,
            customer_id,
            amount,
            currency,
        } => json!({
            "booking_id": booking_id, "hold_id": hold_id, "event_id": event_id,
            "customer_id": customer_id, "amount": amount, "currency": currency,
        }),
        OutboxKind::BookingCancelled {
            booking_id,
            event_id,
            customer_id,
            reason,
        } => json!({
            "booking_id": booking_id, "event_id": event_id,
            "customer_id": customer_id, "reason": reason,
        }),
        OutboxKind::HoldExpired {
            hold_id,
            event_id,
            customer_id,
        } => json!({"hold_id": hold_id, "event_id": event_id, "customer_id": customer_id}),
        OutboxKind::RefundOwed {
            refund_id,
            hold_id,
            booking_id,
            amount,
            currency,
        } => json!({
            "refund_id": refund_id, "hold_id": hold_id, "booking_id": booking_id,
            "amount": amount, "currency": currency,
        }),
        OutboxKind::RefundPaid { refund_id } => json!({"refund_id": refund_id}),
        OutboxKind::RefundFailed { refund_id, reason } => {
            json!({"refund_id": refund_id, "reason": reason})
        }
        OutboxKind::HoldPlaced {
            hold_id,
            event_id,
            customer_id,
            amount,
            currency,
            expires_at_ms,
        } => json!({
            "hold_id": hold_id.as_str(), "event_id": event_id.as_str(),
            "customer_id": customer_id.as_str(), "amount": amount,
            "currency": currency.as_str(), "expires_at": rfc3339(*expires_at_ms),
        }),
        OutboxKind::HoldReleased {
            hold_id,
            event_id,
            customer_id,
        } => json!({
            "hold_id": hold_id.as_str(), "event_id": event_id.as_str(),
            "customer_id": customer_id.as_str(),
        }),
    };
    json!({
        "id": event_id(event),
        "type": EventType::of(&event.kind).as_str(),
        "index": event.index,
        "created_at": rfc3339(event.time_ms),
        "data": data,
    })
}
