//! The client-facing gRPC services (`proto/holdfast/booking.proto`: `BookingService`,
//! `AdminService`, `ClusterService`), served on the HTTP port next to the JSON API.
//!
//! Booking writes (hold, extend, confirm, cancel) and the batch call are a sibling edge
//! of the HTTP handlers over the typed service layer ([`crate::service`]): each call's
//! message is converted by hand into the service's request and its answer into the reply
//! message; authentication is the same [`crate::auth::check`]. Errors become gRPC statuses
//! whose metadata carries API.md's code (`holdfast-error-code`) and details
//! (`holdfast-error-details`); answers carry the `x-holdfast-*` headers as metadata.
//!
//! Reads, admin inventory and cluster calls are still answered by running the matching
//! HTTP request through the router (authentication, validation and metrics included) and
//! converting its JSON answer; they move onto the service layer next (issue 14).

use axum::body::Body;
use axum::http::{header, Method, Request};
use axum::Router;
use holdfast_proto::booking::admin_service_server::{AdminService, AdminServiceServer};
use holdfast_proto::booking::booking_service_server::{BookingService, BookingServiceServer};
use holdfast_proto::booking::cluster_service_server::{ClusterService, ClusterServiceServer};
use holdfast_proto::booking::*;
use holdfast_statemachine::{BookingView, ErrorCode, HoldView, RefundView};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Response, Status};
use tower::ServiceExt;

use crate::app::AppState;
use crate::auth::{self, Caller, Role};
use crate::error::ApiError;
use crate::extract::IdempotencyKey;
use crate::replica::ReadMeta;
use crate::service;
use crate::wire::{
    rfc3339, BestAvailableBody, CancelBody, ConfirmBody, ExtendBody, HoldBody, PaymentBody,
    PoolQuantityBody,
};

/// Largest JSON answer taken from the router (a full availability page is far below it).
const ANSWER_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Largest gRPC request message accepted, bytes: the batch call's body limit (API.md's
/// 1 MiB for `POST /booking/batch`) with room for protobuf framing; every other call is far
/// smaller.
pub const GRPC_MESSAGE_BYTES_MAX: usize = crate::service::BATCH_BODY_BYTES_MAX + 64 * 1024;

/// The gRPC services over the service layer and the HTTP API router.
#[derive(Clone)]
pub struct GrpcBooking {
    router: Router,
    state: AppState,
}

/// `router` (the HTTP API of [`crate::router`] over `state`) with the gRPC services added
/// under `/holdfast.booking.v1.*/`.
pub fn with_grpc(router: Router, state: AppState) -> Router {
    let admission_state = state.clone();
    let grpc = GrpcBooking {
        router: router.clone(),
        state,
    };
    let service = BookingServiceServer::new(grpc.clone())
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(ANSWER_BYTES_MAX);
    let admin = AdminServiceServer::new(grpc.clone())
        .max_decoding_message_size(crate::extract::ADMIN_BODY_BYTES_MAX + 64 * 1024)
        .max_encoding_message_size(ANSWER_BYTES_MAX);
    let cluster = ClusterServiceServer::new(grpc)
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(ANSWER_BYTES_MAX);
    let grpc_routes = Router::new()
        .route_service(
            &service_path::<BookingServiceServer<GrpcBooking>>(),
            service,
        )
        .route_service(&service_path::<AdminServiceServer<GrpcBooking>>(), admin)
        .route_service(
            &service_path::<ClusterServiceServer<GrpcBooking>>(),
            cluster,
        )
        .layer(axum::middleware::from_fn_with_state(
            admission_state,
            crate::rate::admit_grpc,
        ));
    router.merge(grpc_routes)
}

/// The route of every method of a gRPC service.
fn service_path<S: tonic::server::NamedService>() -> String {
    format!("/{}/{{*method}}", S::NAME)
}

/// A request of the HTTP API built from a gRPC call.
struct Call<'a> {
    method: Method,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<serde_json::Value>,
    idempotency_key: Option<String>,
    metadata: &'a MetadataMap,
}

impl<'a> Call<'a> {
    fn new(method: Method, path: String, metadata: &'a MetadataMap) -> Call<'a> {
        Call {
            method,
            path,
            query: Vec::new(),
            body: None,
            idempotency_key: None,
            metadata,
        }
    }

    fn get(path: String, metadata: &'a MetadataMap) -> Call<'a> {
        Call::new(Method::GET, path, metadata)
    }

    /// `message` as the JSON body, without `idempotency_key` (sent as the header, see
    /// [`Call::key`]) and the fields in `path_fields` (already in the path).
    fn json(mut self, message: &impl Serialize, path_fields: &[&str]) -> Result<Call<'a>, Status> {
        let mut body = serde_json::to_value(message)
            .map_err(|error| Status::internal(format!("cannot encode the request: {error}")))?;
        if let Some(object) = body.as_object_mut() {
            object.remove("idempotency_key");
            for field in path_fields {
                object.remove(*field);
            }
        }
        self.body = Some(body);
        Ok(self)
    }

    fn key(mut self, idempotency_key: Option<&String>) -> Call<'a> {
        self.idempotency_key = idempotency_key.cloned();
        self
    }

    fn read(mut self, read: Option<&Read>) -> Call<'a> {
        let Some(read) = read else {
            return self;
        };
        if let Some(consistency) = &read.consistency {
            self.query.push(("consistency", consistency.clone()));
        }
        if let Some(staleness) = read.max_staleness_ms {
            self.query.push(("max_staleness_ms", staleness.to_string()));
        }
        if let Some(index) = read.min_index {
            self.query.push(("min_index", index.to_string()));
        }
        self
    }

    fn param(mut self, name: &'static str, value: Option<impl ToString>) -> Call<'a> {
        if let Some(value) = value {
            self.query.push((name, value.to_string()));
        }
        self
    }

    /// Runs the call through the router; the JSON answer as `T`.
    async fn answer<T: DeserializeOwned>(self, router: &Router) -> Result<Response<T>, Status> {
        let (json, metadata) = self.send(router).await?;
        let message = serde_json::from_value(json)
            .map_err(|error| Status::internal(format!("cannot decode the answer: {error}")))?;
        let mut response = Response::new(message);
        *response.metadata_mut() = metadata;
        Ok(response)
    }

    async fn send(self, router: &Router) -> Result<(serde_json::Value, MetadataMap), Status> {
        let mut uri = self.path;
        if !self.query.is_empty() {
            let query = serde_urlencoded::to_string(&self.query)
                .map_err(|error| Status::invalid_argument(error.to_string()))?;
            uri = format!("{uri}?{query}");
        }
        let mut request = Request::builder().method(self.method).uri(uri);
        if let Some(key) = &self.idempotency_key {
            request = request.header("idempotency-key", key);
        }
        for name in ["authorization", "x-request-id"] {
            if let Some(value) = self
                .metadata
                .get(name)
                .and_then(|value| value.to_str().ok())
            {
                request = request.header(name, value);
            }
        }
        let body = match self.body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        let mut request = request
            .body(body)
            .map_err(|error| Status::invalid_argument(error.to_string()))?;
        // The gRPC edge admitted the call already.
        request.extensions_mut().insert(crate::rate::Admitted);
        let response = router
            .clone()
            .oneshot(request)
            .await
            .map_err(|error| Status::internal(error.to_string()))?;
        let status = response.status();
        let mut metadata = MetadataMap::new();
        for (name, value) in response.headers() {
            let name = name.as_str();
            if name.starts_with("x-holdfast-") || name == "etag" || name == "retry-after" {
                if let (Ok(key), Ok(value)) = (
                    tonic::metadata::MetadataKey::from_bytes(name.as_bytes()),
                    MetadataValue::try_from(value.as_bytes()),
                ) {
                    metadata.insert(key, value);
                }
            }
        }
        let bytes = axum::body::to_bytes(response.into_body(), ANSWER_BYTES_MAX)
            .await
            .map_err(|error| Status::internal(error.to_string()))?;
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        if status.is_success() {
            return Ok((json, metadata));
        }
        Err(error_status(&json, metadata))
    }
}

/// The gRPC status of an HTTP error answer in API.md's error shape.
fn error_status(json: &serde_json::Value, metadata: MetadataMap) -> Status {
    let code = json["error"]["code"]
        .as_str()
        .and_then(ErrorCode::parse)
        .unwrap_or(ErrorCode::Internal);
    let message = json["error"]["message"].as_str().unwrap_or("");
    let details = json["error"]["details"].to_string();
    grpc_status(code, message, &details, metadata)
}

/// The gRPC status of a service error, with its code, details and `retry-after`.
pub fn status_of(error: &ApiError) -> Status {
    let mut metadata = MetadataMap::new();
    if let Some(seconds) = error.retry_after_seconds {
        metadata.insert("retry-after", MetadataValue::from(seconds));
    }
    grpc_status(
        error.code,
        &error.message,
        &error.details.to_string(),
        metadata,
    )
}

/// A status with the registry's gRPC code for `code` and the code in its metadata.
fn grpc_status(code: ErrorCode, message: &str, details: &str, metadata: MetadataMap) -> Status {
    let grpc = Code::from_i32(code.grpc_code() as i32);
    let mut grpc_status = Status::with_metadata(grpc, format!("{code}: {message}"), metadata);
    if let Ok(value) = MetadataValue::try_from(code.as_str()) {
        grpc_status
            .metadata_mut()
            .insert("holdfast-error-code", value);
    }
    if let Ok(value) = MetadataValue::try_from(details) {
        grpc_status
            .metadata_mut()
            .insert("holdfast-error-details", value);
    }
    grpc_status
}

/// One path segment, percent-encoded (everything but RFC 3986's unreserved characters).
fn segment(value: &str) -> String {
    const RESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(value, RESERVED).to_string()
}

impl GrpcBooking {
    /// A POST of `message` to `path` with its idempotency key, answered as `T`.
    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        message: &impl Serialize,
        key: Option<&String>,
        metadata: &MetadataMap,
    ) -> Result<Response<T>, Status> {
        Call::new(Method::POST, path.to_string(), metadata)
            .json(message, &[])?
            .key(key)
            .answer(&self.router)
            .await
    }

    /// [`crate::auth::check`] on the call's `authorization` metadata: who is calling.
    fn authorize(&self, metadata: &MetadataMap, needed: Role) -> Result<Caller, Status> {
        let authorization = metadata
            .get("authorization")
            .and_then(|value| value.to_str().ok());
        auth::check(
            self.state.config.auth_keys.as_deref(),
            authorization,
            needed,
        )
        .map_err(|error| status_of(&error))
    }

    /// [`Self::authorize`] for a booking write: the caller with the client's address,
    /// which the hold velocity limit counts by when there is no key.
    fn writer<T>(&self, request: &tonic::Request<T>) -> Result<Caller, Status> {
        let mut caller = self.authorize(request.metadata(), Role::Customer)?;
        caller.address = request
            .remote_addr()
            .map(|address| address.ip())
            .or_else(|| {
                request
                    .extensions()
                    .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                    .map(|info| info.0.ip())
            });
        Ok(caller)
    }

    /// A write's reply with the `x-holdfast-*` metadata: the index that produced it, this
    /// node and the leader it knows.
    fn reply<T>(&self, message: T, index: u64) -> Response<T> {
        let ((), meta) = crate::replica::read_now(&*self.state.replica, |_| ());
        with_meta(
            message,
            &ReadMeta {
                applied_index: index,
                ..meta
            },
        )
    }
}

/// A reply carrying where it was served as metadata, as HTTP answers carry the headers:
/// `x-holdfast-applied-index`, `x-holdfast-node` and, when known, `x-holdfast-leader`.
pub fn with_meta<T>(message: T, meta: &ReadMeta) -> Response<T> {
    let mut response = Response::new(message);
    let metadata = response.metadata_mut();
    metadata.insert(
        "x-holdfast-applied-index",
        MetadataValue::from(meta.applied_index),
    );
    metadata.insert("x-holdfast-node", MetadataValue::from(meta.node_id));
    if let Some(leader) = meta.leader_id {
        metadata.insert("x-holdfast-leader", MetadataValue::from(leader));
    }
    response
}

// ---- Wire conversions of the booking writes ---------------------------------------------

/// A message's `idempotency_key`, checked as the `Idempotency-Key` header is and scoped to
/// the caller.
fn key_of(caller: &Caller, key: Option<&str>) -> Result<IdempotencyKey, Status> {
    match key {
        Some(key) => IdempotencyKey::parse("idempotency_key", key)
            .map(|key| key.scoped(caller))
            .map_err(|error| status_of(&error)),
        None => Ok(IdempotencyKey(None)),
    }
}

fn hold_body(message: HoldRequest) -> HoldBody {
    HoldBody {
        event_id: message.event_id,
        customer_id: message.customer_id,
        seats: message.seats,
        pools: message
            .pools
            .into_iter()
            .map(|line| PoolQuantityBody {
                pool_id: line.pool_id,
                quantity: line.quantity,
            })
            .collect(),
        best_available: message.best_available.map(|best| BestAvailableBody {
            count: best.count,
            section: best.section,
            allow_split: best.allow_split,
        }),
        ttl_seconds: message.ttl_seconds,
    }
}

fn extend_body(message: ExtendRequest) -> ExtendBody {
    ExtendBody {
        hold_id: message.hold_id,
        ttl_seconds: message.ttl_seconds,
    }
}

fn confirm_body(message: ConfirmRequest) -> Result<ConfirmBody, ApiError> {
    let payment = message
        .payment
        .ok_or_else(|| ApiError::invalid_field("payment", "is required"))?;
    Ok(ConfirmBody {
        hold_id: message.hold_id,
        payment: PaymentBody {
            method: payment.method,
            token: payment.token,
        },
    })
}

fn cancel_body(message: CancelRequest) -> CancelBody {
    CancelBody {
        hold_id: message.hold_id,
        booking_id: message.booking_id,
        reason: message.reason,
    }
}

/// One batch operation as the service's request, with its own key.
fn batch_item(caller: &Caller, position: usize, operation: BatchOperation) -> service::BatchItem {
    use batch_operation::Operation as Wire;
    let field = |name: &str| format!("operations[{position}].{name}");
    let Some(operation) = operation.operation else {
        return Err(ApiError::invalid_field(
            &field("operation"),
            "give one of hold, extend, confirm and cancel",
        ));
    };
    let key = |key: Option<String>| match key {
        Some(key) => {
            IdempotencyKey::parse(&field("idempotency_key"), &key).map(|key| key.scoped(caller))
        }
        None => Ok(IdempotencyKey(None)),
    };
    Ok(match operation {
        Wire::Hold(message) => (
            key(message.idempotency_key.clone())?,
            service::Operation::Hold(hold_body(message)),
        ),
        Wire::Extend(message) => (
            key(message.idempotency_key.clone())?,
            service::Operation::Extend(extend_body(message)),
        ),
        Wire::Confirm(message) => (
            key(message.idempotency_key.clone())?,
            service::Operation::Confirm(confirm_body(message)?),
        ),
        Wire::Cancel(message) => (
            key(message.idempotency_key.clone())?,
            service::Operation::Cancel(cancel_body(message)),
        ),
    })
}

fn pool_messages(pools: &[holdfast_statemachine::PoolQuantity]) -> Vec<PoolQuantity> {
    pools
        .iter()
        .map(|line| PoolQuantity {
            pool_id: line.pool_id.clone(),
            quantity: line.quantity.into(),
        })
        .collect()
}

fn hold_message(view: &HoldView, index: u64) -> Hold {
    Hold {
        hold_id: view.hold_id.to_string(),
        status: view.status.as_str().to_string(),
        event_id: view.event_id.to_string(),
        customer_id: view.customer_id.to_string(),
        seats: view.seats.iter().map(|seat| seat.to_string()).collect(),
        pools: pool_messages(&view.pools),
        amount: view.amount,
        currency: view.currency.to_string(),
        created_at: rfc3339(view.created_at_ms),
        expires_at: rfc3339(view.expires_at_ms),
        max_expires_at: rfc3339(view.life_ends_at_ms),
        booking_id: view.booking_id.as_ref().map(|id| id.to_string()),
        applied_index: Some(index),
    }
}

fn refund_message(view: &RefundView) -> Refund {
    Refund {
        refund_id: view.refund_id.clone(),
        status: view.status.as_str().to_string(),
        amount: view.amount,
        currency: view.currency.clone(),
        hold_id: view.hold_id.clone(),
        booking_id: view.booking_id.clone(),
        provider: view.provider.clone(),
        payment_id: view.payment_id.clone(),
        created_at: rfc3339(view.created_at_ms),
        refunded_at: view.refunded_at_ms.map(rfc3339),
        attempts: view.attempts,
        last_attempt_at: view.last_attempt_at_ms.map(rfc3339),
        reason: view.reason.clone(),
    }
}

fn booking_message(view: &BookingView, index: Option<u64>) -> Booking {
    Booking {
        booking_id: view.booking_id.to_string(),
        hold_id: view.hold_id.to_string(),
        status: view.status.as_str().to_string(),
        event_id: view.event_id.to_string(),
        customer_id: view.customer_id.to_string(),
        seats: view.seats.iter().map(|seat| seat.to_string()).collect(),
        pools: pool_messages(&view.pools),
        amount: view.amount,
        currency: view.currency.to_string(),
        payment_id: view.payment.payment_id.clone(),
        payment_provider: view.payment.provider.clone(),
        created_at: rfc3339(view.created_at_ms),
        cancelled_at: view.cancelled_at_ms.map(rfc3339),
        cancel_reason: view.cancel_reason.clone(),
        refund: view.refund.as_ref().map(refund_message),
        applied_index: index,
    }
}

fn cancelled_message(cancelled: &service::Cancelled, index: u64) -> Cancelled {
    match cancelled {
        service::Cancelled::Hold(view) => Cancelled {
            hold: Some(hold_message(view, index)),
            booking: None,
        },
        service::Cancelled::Booking(view) => Cancelled {
            hold: None,
            booking: Some(booking_message(view, Some(index))),
        },
    }
}

fn error_message(error: &ApiError) -> Error {
    Error {
        code: error.code.as_str().to_string(),
        message: error.message.clone(),
        details_json: error.details.to_string(),
        retry_after_seconds: error
            .retry_after_seconds
            .map(|seconds| seconds.min(u64::from(u32::MAX)) as u32),
    }
}

#[tonic::async_trait]
impl BookingService for GrpcBooking {
    async fn get_availability(
        &self,
        request: tonic::Request<AvailabilityRequest>,
    ) -> Result<Response<Availability>, Status> {
        let message = request.get_ref();
        Call::get("/availability".into(), request.metadata())
            .param("event_id", Some(&message.event_id))
            .param("view", message.view.as_ref())
            .param("section", message.section.as_ref())
            .param("limit", message.limit)
            .param("after", message.after.as_ref())
            .read(message.read.as_ref())
            .answer(&self.router)
            .await
    }

    async fn create_hold(
        &self,
        request: tonic::Request<HoldRequest>,
    ) -> Result<Response<Hold>, Status> {
        let caller = self.writer(&request)?;
        let message = request.into_inner();
        let key = key_of(&caller, message.idempotency_key.as_deref())?;
        let held = service::hold(&self.state, &caller, key, hold_body(message))
            .await
            .map_err(|error| status_of(&error))?;
        Ok(self.reply(hold_message(&held.value, held.index), held.index))
    }

    async fn extend_hold(
        &self,
        request: tonic::Request<ExtendRequest>,
    ) -> Result<Response<Hold>, Status> {
        let caller = self.writer(&request)?;
        let message = request.into_inner();
        let key = key_of(&caller, message.idempotency_key.as_deref())?;
        let extended = service::extend(&self.state, &caller, key, extend_body(message))
            .await
            .map_err(|error| status_of(&error))?;
        Ok(self.reply(
            hold_message(&extended.value, extended.index),
            extended.index,
        ))
    }

    async fn confirm(
        &self,
        request: tonic::Request<ConfirmRequest>,
    ) -> Result<Response<Booking>, Status> {
        let caller = self.writer(&request)?;
        let message = request.into_inner();
        let key = key_of(&caller, message.idempotency_key.as_deref())?;
        let body = confirm_body(message).map_err(|error| status_of(&error))?;
        let booked = service::confirm(&self.state, &caller, key, body)
            .await
            .map_err(|error| status_of(&error))?;
        Ok(self.reply(
            booking_message(&booked.value, Some(booked.index)),
            booked.index,
        ))
    }

    async fn batch(
        &self,
        request: tonic::Request<BatchRequest>,
    ) -> Result<Response<BatchResponse>, Status> {
        let caller = self.writer(&request)?;
        let message = request.into_inner();
        service::check_batch_size(message.operations.len()).map_err(|error| status_of(&error))?;
        let items = message
            .operations
            .into_iter()
            .enumerate()
            .map(|(position, operation)| batch_item(&caller, position, operation))
            .collect();
        let answers = service::batch(&self.state, &caller, items).await;
        let mut applied_index = 0;
        let results = answers
            .into_iter()
            .map(|answer| match answer {
                Ok(answer) => {
                    let status = answer.status().as_u16().into();
                    let (index, outcome) = match answer {
                        service::Answer::Held(held) | service::Answer::Extended(held) => (
                            held.index,
                            batch_result::Outcome::Hold(hold_message(&held.value, held.index)),
                        ),
                        service::Answer::Confirmed(booked) => (
                            booked.index,
                            batch_result::Outcome::Booking(booking_message(
                                &booked.value,
                                Some(booked.index),
                            )),
                        ),
                        service::Answer::Cancelled(cancelled) => (
                            cancelled.index,
                            batch_result::Outcome::Cancelled(cancelled_message(
                                &cancelled.value,
                                cancelled.index,
                            )),
                        ),
                    };
                    applied_index = applied_index.max(index);
                    BatchResult {
                        status,
                        outcome: Some(outcome),
                    }
                }
                Err(error) => BatchResult {
                    status: error.status.as_u16().into(),
                    outcome: Some(batch_result::Outcome::Error(error_message(&error))),
                },
            })
            .collect();
        let ((), meta) = crate::replica::read_now(&*self.state.replica, |_| ());
        let header = ResponseHeader {
            node_id: meta.node_id,
            leader_id: meta.leader_id,
            applied_index: applied_index.max(meta.applied_index),
        };
        Ok(self.reply(
            BatchResponse {
                results,
                header: Some(header),
            },
            applied_index,
        ))
    }

    async fn search_events(
        &self,
        request: tonic::Request<SearchEventsRequest>,
    ) -> Result<Response<EventPage>, Status> {
        let (page, meta) =
            crate::grpc_search::search_events(&self.state, request.metadata(), request.get_ref())
                .await
                .map_err(|error| status_of(&error))?;
        let reply = EventPage {
            events: page
                .events
                .iter()
                .map(crate::grpc_search::listing_message)
                .collect(),
            next_after: page.next_after,
        };
        Ok(with_meta(reply, &meta))
    }

    async fn get_event(
        &self,
        request: tonic::Request<GetEventRequest>,
    ) -> Result<Response<EventListing>, Status> {
        let (listing, meta) =
            crate::grpc_search::get_event(&self.state, request.metadata(), request.get_ref())
                .await
                .map_err(|error| status_of(&error))?;
        let reply = crate::grpc_search::listing_message(&listing);
        Ok(with_meta(reply, &meta))
    }

    async fn cancel(
        &self,
        request: tonic::Request<CancelRequest>,
    ) -> Result<Response<Cancelled>, Status> {
        let caller = self.writer(&request)?;
        let message = request.into_inner();
        let key = key_of(&caller, message.idempotency_key.as_deref())?;
        let cancelled = service::cancel(&self.state, &caller, key, cancel_body(message))
            .await
            .map_err(|error| status_of(&error))?;
        let index = cancelled.index;
        Ok(self.reply(cancelled_message(&cancelled.value, index), index))
    }

    async fn get_hold(
        &self,
        request: tonic::Request<GetHoldRequest>,
    ) -> Result<Response<Hold>, Status> {
        let message = request.get_ref();
        let path = format!("/holds/{}", segment(&message.hold_id));
        Call::get(path, request.metadata())
            .read(message.read.as_ref())
            .answer(&self.router)
            .await
    }

    async fn get_booking(
        &self,
        request: tonic::Request<GetBookingRequest>,
    ) -> Result<Response<Booking>, Status> {
        let message = request.get_ref();
        let path = format!("/bookings/{}", segment(&message.booking_id));
        Call::get(path, request.metadata())
            .read(message.read.as_ref())
            .answer(&self.router)
            .await
    }

    async fn customer_bookings(
        &self,
        request: tonic::Request<CustomerBookingsRequest>,
    ) -> Result<Response<BookingPage>, Status> {
        let message = request.get_ref();
        let path = format!("/customers/{}/bookings", segment(&message.customer_id));
        Call::get(path, request.metadata())
            .param("limit", message.limit)
            .param("after", message.after.as_ref())
            .read(message.read.as_ref())
            .answer(&self.router)
            .await
    }

    async fn ready(
        &self,
        request: tonic::Request<HealthRequest>,
    ) -> Result<Response<Health>, Status> {
        Call::get("/readyz".into(), request.metadata())
            .answer(&self.router)
            .await
    }
}

/// `/admin/events/{event_id}` followed by `rest`.
fn event_path(event_id: &str, rest: &str) -> String {
    format!("/admin/events/{}{rest}", segment(event_id))
}

/// The stream of `AdminService.WatchChanges`.
pub type ChangeStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<ChangeEvent, Status>> + Send>>;

/// An outbox event as a `ChangeEvent` message: its index, id and type, and the JSON a
/// webhook receives.
fn change_message(event: &holdfast_statemachine::OutboxEvent) -> ChangeEvent {
    ChangeEvent {
        index: event.index,
        id: crate::webhooks::event_id(event),
        r#type: holdfast_statemachine::EventType::of(&event.kind)
            .as_str()
            .to_string(),
        created_at: rfc3339(event.time_ms),
        json: crate::webhooks::event_json(event).to_string(),
    }
}

#[tonic::async_trait]
impl AdminService for GrpcBooking {
    type WatchChangesStream = ChangeStream;

    /// `GET /changes` as a gRPC stream: the same key check (admin), the same cap on
    /// change streams and the same [`crate::changes::ChangeFeed`].
    async fn watch_changes(
        &self,
        request: tonic::Request<WatchChangesRequest>,
    ) -> Result<Response<ChangeStream>, Status> {
        let needed = auth::required_role("/changes").unwrap_or(Role::Admin);
        self.authorize(request.metadata(), needed)?;
        let after = request.get_ref().from_index.saturating_sub(1);
        let feed = crate::changes::ChangeFeed::open(&self.state, after, "from_index")
            .map_err(|error| status_of(&error))?;
        let stream = futures::stream::unfold(feed, |mut feed| async move {
            let event = feed.next().await?;
            Some((Ok(change_message(&event)), feed))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn create_event(
        &self,
        request: tonic::Request<CreateEventRequest>,
    ) -> Result<Response<EventChange>, Status> {
        self.post("/admin/events", request.get_ref(), None, request.metadata())
            .await
    }

    async fn add_seats(
        &self,
        request: tonic::Request<AddSeatsRequest>,
    ) -> Result<Response<EventChange>, Status> {
        let message = request.get_ref();
        let path = event_path(&message.event_id, "/seats");
        Call::new(Method::POST, path, request.metadata())
            .json(message, &["event_id"])?
            .answer(&self.router)
            .await
    }

    async fn add_pools(
        &self,
        request: tonic::Request<AddPoolsRequest>,
    ) -> Result<Response<EventChange>, Status> {
        let message = request.get_ref();
        let path = event_path(&message.event_id, "/pools");
        Call::new(Method::POST, path, request.metadata())
            .json(message, &["event_id"])?
            .answer(&self.router)
            .await
    }

    async fn set_pool_capacity(
        &self,
        request: tonic::Request<SetPoolCapacityRequest>,
    ) -> Result<Response<EventChange>, Status> {
        let message = request.get_ref();
        let pool = format!("/pools/{}", segment(&message.pool_id));
        Call::new(
            Method::PATCH,
            event_path(&message.event_id, &pool),
            request.metadata(),
        )
        .json(message, &["event_id", "pool_id"])?
        .answer(&self.router)
        .await
    }

    async fn remove_seat(
        &self,
        request: tonic::Request<RemoveSeatRequest>,
    ) -> Result<Response<EventChange>, Status> {
        let message = request.get_ref();
        let seat = format!("/seats/{}", segment(&message.seat_id));
        Call::new(
            Method::DELETE,
            event_path(&message.event_id, &seat),
            request.metadata(),
        )
        .answer(&self.router)
        .await
    }

    async fn remove_pool(
        &self,
        request: tonic::Request<RemovePoolRequest>,
    ) -> Result<Response<EventChange>, Status> {
        let message = request.get_ref();
        let pool = format!("/pools/{}", segment(&message.pool_id));
        Call::new(
            Method::DELETE,
            event_path(&message.event_id, &pool),
            request.metadata(),
        )
        .answer(&self.router)
        .await
    }
}

/// `ClusterService.Backup`'s stream of the backup file's pieces.
pub type BackupStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<BackupChunk, Status>> + Send>>;

#[tonic::async_trait]
impl ClusterService for GrpcBooking {
    type BackupStream = BackupStream;

    /// `GET /cluster/backup` over gRPC: the same service layer, the file in pieces.
    async fn backup(
        &self,
        request: tonic::Request<BackupRequest>,
    ) -> Result<Response<BackupStream>, Status> {
        self.authorize(request.metadata(), Role::Operator)?;
        let file = crate::backup::take(&self.state)
            .await
            .map_err(|error| status_of(&error))?;
        let pieces = file
            .into_pieces(crate::backup::BACKUP_PIECE_BYTES)
            .map(|piece| Ok(BackupChunk { data: piece.into() }));
        Ok(Response::new(Box::pin(futures::stream::iter(pieces))))
    }

    /// `POST /cluster/restore` over gRPC.
    async fn restore(
        &self,
        request: tonic::Request<RestoreRequest>,
    ) -> Result<Response<RestoreProgress>, Status> {
        self.authorize(request.metadata(), Role::Operator)?;
        let message = request.into_inner();
        let sha256: [u8; 32] = message
            .sha256
            .as_slice()
            .try_into()
            .map_err(|_| status_of(&ApiError::invalid_field("sha256", "must be 32 bytes")))?;
        let chunk = holdfast_statemachine::RestoreChunk {
            restore_id: message.restore_id,
            offset: message.offset,
            total_bytes: message.total_bytes,
            sha256,
            data: message.data,
        };
        let (progress, index) = crate::backup::restore_chunk(&self.state, chunk)
            .await
            .map_err(|error| status_of(&error))?;
        Ok(self.reply(
            RestoreProgress {
                restore_id: progress.restore_id,
                received_bytes: progress.received_bytes,
                total_bytes: progress.total_bytes,
                done: progress.done,
                index,
            },
            index,
        ))
    }

    async fn status(
        &self,
        request: tonic::Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        Call::get("/cluster/status".into(), request.metadata())
            .answer(&self.router)
            .await
    }

    async fn init(
        &self,
        request: tonic::Request<InitRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        self.post("/cluster/init", request.get_ref(), None, request.metadata())
            .await
    }

    async fn add_learner(
        &self,
        request: tonic::Request<AddLearnerRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        let learner = request.get_ref().learner.clone().unwrap_or_default();
        self.post("/cluster/learners", &learner, None, request.metadata())
            .await
    }

    async fn change_membership(
        &self,
        request: tonic::Request<ChangeMembershipRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        let message = request.get_ref();
        self.post("/cluster/membership", message, None, request.metadata())
            .await
    }

    async fn remove_node(
        &self,
        request: tonic::Request<RemoveNodeRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        let path = format!("/cluster/nodes/{}", request.get_ref().id);
        Call::new(Method::DELETE, path, request.metadata())
            .answer(&self.router)
            .await
    }

    async fn transfer_leader(
        &self,
        request: tonic::Request<TransferLeaderRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        self.post(
            "/cluster/leader",
            request.get_ref(),
            None,
            request.metadata(),
        )
        .await
    }

    async fn snapshot(
        &self,
        request: tonic::Request<SnapshotRequest>,
    ) -> Result<Response<SnapshotTaken>, Status> {
        self.post(
            "/cluster/snapshot",
            request.get_ref(),
            None,
            request.metadata(),
        )
        .await
    }
}
