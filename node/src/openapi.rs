//! `GET /openapi.json`: the API as OpenAPI 3, generated from the handlers' annotations and
//! the wire types, so it cannot drift from the code.

use axum::http::StatusCode;
use axum::response::Response;
use utoipa::OpenApi;

use crate::app::json_answer;
use crate::wire;

/// The OpenAPI document of the HTTP API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Holdfast HTTP API",
        description = "A replicated booking cluster: availability, holds, confirms, cancels. Errors are {\"error\": {\"code\", \"message\", \"details\"}}."
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
    json_answer(StatusCode::OK, &ApiDoc::openapi())
}
