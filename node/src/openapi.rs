//! `GET /openapi.json`: the API as OpenAPI 3, generated from the handlers' annotations and
//! the wire types, so it cannot drift from the code, then refined with the answers the
//! layers in front of every handler give and the input rules the edge enforces
//! ([`constraints`]). `tests/tests/openapi_fuzz.rs` holds it to that with schemathesis.

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use holdfast_statemachine::ErrorCode;
use serde_json::{json, Value};
use utoipa::OpenApi;

use crate::wire;

mod constraints;

/// The OpenAPI document of the HTTP API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Holdfast HTTP API",
        description = "A replicated booking cluster: availability, holds, confirms, cancels. Errors are {\"error\": {\"code\", \"message\", \"details\"}}. Integer fields take JSON integers: a number written with a fraction or an exponent (1.0, 1e3) is refused with 400 INVALID_FIELD, even when its value is whole."
    ),
    paths(
        crate::reads::availability,
        crate::reads::hold,
        crate::reads::booking,
        crate::reads::customer_bookings,
        crate::reads::refunds,
        crate::changes::changes,
        crate::webhooks::add_webhook,
        crate::webhooks::list_webhooks,
        crate::webhooks::remove_webhook,
        crate::booking::hold,
        crate::booking::extend,
        crate::booking::confirm,
        crate::booking::cancel,
        crate::booking::batch,
        crate::admin::create_event,
        crate::admin::add_seats,
        crate::admin::add_pools,
        crate::admin::set_pool_capacity,
        crate::admin::remove_seat,
        crate::admin::remove_pool,
        crate::events::update_event,
        crate::events::cancel_event,
        crate::search::search_events,
        crate::search::get_event,
        crate::cluster::status,
        crate::cluster::snapshot,
        crate::backup::backup,
        crate::backup::restore,
        crate::cluster::initialize,
        crate::cluster::add_learner,
        crate::cluster::change_membership,
        crate::cluster::transfer_leader,
        crate::cluster::remove_node,
        crate::cluster::healthz,
        crate::cluster::readyz,
        crate::cluster::metrics,
        openapi_json,
    ),
    components(schemas(
        wire::ErrorBody,
        wire::ErrorJson,
        wire::HoldBody,
        wire::PoolQuantityBody,
        wire::BestAvailableBody,
        wire::ExtendBody,
        wire::ConfirmBody,
        wire::PaymentBody,
        wire::CancelBody,
        wire::CreateEventBody,
        wire::SeatBody,
        wire::SeatBlockBody,
        wire::PoolBody,
        wire::AddSeatsBody,
        wire::AddPoolsBody,
        wire::PoolCapacityBody,
        wire::MemberBody,
        wire::ClusterInitBody,
        wire::MembershipBody,
        wire::TransferLeaderBody,
        wire::HoldJson,
        wire::PoolQuantityJson,
        wire::RefundJson,
        wire::RefundPageJson,
        crate::webhooks::WebhookBody,
        crate::webhooks::WebhookJson,
        crate::webhooks::WebhookListJson,
        wire::BookingJson,
        wire::BookingPageJson,
        wire::SummaryJson,
        wire::SeatJson,
        wire::PoolJson,
        wire::AvailabilityJson,
        wire::EventChangeJson,
        wire::ClusterStatusJson,
        wire::MemberJson,
        wire::HealthJson,
        wire::SnapshotJson,
        crate::backup::RestoreProgressJson,
        crate::booking::BatchBody,
        crate::booking::BatchOperationBody,
        crate::booking::BatchJson,
        crate::booking::BatchResultJson,
        crate::events::UpdateEventBody,
        crate::events::CancelEventBody,
        crate::events::EventCancelledJson,
        crate::search::EventPageJson,
        crate::search::EventListingJson,
        crate::search::ListingSummaryJson,
        crate::search::PoolTotalsJson,
    ))
)]
pub struct ApiDoc;

/// This API as OpenAPI 3.
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document"))
)]
pub async fn openapi_json() -> Response {
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        document_bytes().clone(),
    )
        .into_response()
}

/// The document served at `/openapi.json`, rendered once.
fn document_bytes() -> &'static Bytes {
    static DOCUMENT: OnceLock<Bytes> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        Bytes::from(serde_json::to_vec(&document()).expect("the OpenAPI document serializes"))
    })
}

/// The OpenAPI document: what the handlers' annotations describe, refined with the
/// answers every route shares ([`shared_responses`]) and the input rules the edge
/// enforces ([`constraints`]).
pub fn document() -> Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).expect("OpenAPI is JSON");
    constraints::apply(&mut document);
    shared_responses(&mut document);
    document
}

/// Adds to every operation the answers that come from the layers in front of its
/// handler, so that the document lists every status a route can give:
/// - `400` where the request has parameters or a body (`INVALID_FIELD`, `INVALID_JSON`);
/// - `401`, `403`, `429` and `503` on every route that needs a role (the key check, the
///   caller's rate budget, the cap on requests in flight; [`crate::auth::required_role`]);
/// - `409` where the route takes an `Idempotency-Key` (`IDEMPOTENCY_KEY_REUSED`);
/// - `413` on every route with a body.
fn shared_responses(document: &mut Value) {
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let role = crate::auth::required_role(path);
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for operation in item.values_mut() {
            let has_body = operation.get("requestBody").is_some();
            let parameters = operation["parameters"]
                .as_array()
                .map_or(&[][..], Vec::as_slice);
            let has_parameters = !parameters.is_empty();
            let takes_key = parameters
                .iter()
                .any(|parameter| parameter["name"] == "Idempotency-Key");
            let Some(responses) = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            // Adds `codes` (all of one status, the registry's) to that status's answer.
            let mut add = |codes: &[ErrorCode], why: &str| {
                let names: Vec<&str> = codes.iter().map(|code| code.as_str()).collect();
                let entry = responses
                    .entry(codes[0].http_status().to_string())
                    .or_insert_with(error_response);
                let description = entry["description"].as_str().unwrap_or("").to_string();
                let missing: Vec<&str> = names
                    .iter()
                    .copied()
                    .filter(|name| !description.contains(name))
                    .collect();
                if !missing.is_empty() {
                    let joined = missing.join(", ");
                    entry["description"] = Value::String(if description.is_empty() {
                        format!("{joined}: {why}")
                    } else {
                        format!("{description}; {joined}: {why}")
                    });
                }
            };
            if has_body || has_parameters {
                add(
                    &[ErrorCode::InvalidField, ErrorCode::InvalidJson],
                    "a parameter or the body breaks the rules this document gives",
                );
            }
            if takes_key {
                add(
                    &[ErrorCode::IdempotencyKeyReused],
                    "the Idempotency-Key was used with another request",
                );
            }
            if has_body {
                add(
                    &[ErrorCode::BodyTooLarge],
                    "the body is larger than the route takes",
                );
            }
            if role.is_some() {
                add(
                    &[ErrorCode::Unauthenticated],
                    "keys are configured and none (or an unknown one) was sent",
                );
                add(
                    &[ErrorCode::Forbidden],
                    "the key's role may not call this route",
                );
                add(
                    &[ErrorCode::RateLimited],
                    "the caller's budget is spent (Retry-After)",
                );
                add(
                    &[ErrorCode::Overloaded],
                    "the node serves as many requests as it takes (Retry-After)",
                );
            }
        }
    }
}

/// An error answer with the API's error body and no description yet.
fn error_response() -> Value {
    json!({
        "description": "",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    })
}
