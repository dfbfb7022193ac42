//! The client-facing gRPC services (`proto/holdfast/booking.proto`: `BookingService`,
//! `AdminService`, `ClusterService`), served on the HTTP port next to the JSON API.
//!
//! Every method is a sibling of its HTTP handler over the typed service layer
//! ([`crate::service`], [`crate::search`], [`crate::backup`]): the call's message is
//! converted by hand into the service's request and its answer into the reply message; no
//! call passes through the HTTP router. Who may call is decided as for the HTTP route of
//! the same operation: the role [`crate::auth::required_role`] gives for that route,
//! checked by the same [`crate::auth::check`] on the `authorization` metadata; admission
//! (rate budgets, the cap on calls in flight) is [`crate::rate::admit_grpc`], a layer on
//! the gRPC routes. Errors become gRPC statuses whose metadata carries API.md's code
//! (`holdfast-error-code`), details (`holdfast-error-details`), `retry-after` and the
//! `x-holdfast-*` headers; answers carry the `x-holdfast-*` headers as metadata.

use holdfast_proto::booking::admin_service_server::{AdminService, AdminServiceServer};
use holdfast_proto::booking::booking_service_server::{BookingService, BookingServiceServer};
use holdfast_proto::booking::cluster_service_server::{ClusterService, ClusterServiceServer};
use holdfast_proto::booking::*;
use holdfast_statemachine::{AvailabilityPage, BookingView, ErrorCode, HoldView, RefundView};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Response, Status};

use crate::app::AppState;
use crate::auth::{self, Caller, Role};
use crate::error::ApiError;
use crate::extract::IdempotencyKey;
use crate::replica::{ReadMeta, ReadRequest};
use crate::service;
use crate::service::reads::{
    AvailabilityParams, AvailabilityQuery, HistoryParams, SeatPage, SeatPages,
};
use crate::wire::{
    rfc3339, AddPoolsBody, AddSeatsBody, BestAvailableBody, CancelBody, ClusterInitBody,
    ConfirmBody, CreateEventBody, ExtendBody, HoldBody, MemberBody, PaymentBody, PoolBody,
    PoolQuantityBody, SeatBlockBody, SeatBody,
};

/// Largest gRPC reply message sent (a full availability page is far below it).
pub const GRPC_REPLY_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Largest gRPC request message accepted, bytes: the batch call's body limit (API.md's
/// 1 MiB for `POST /booking/batch`) with room for protobuf framing; every other call is far
/// smaller.
pub const GRPC_MESSAGE_BYTES_MAX: usize = crate::service::BATCH_BODY_BYTES_MAX + 64 * 1024;

/// The gRPC services: thin converters over the service layer, sharing the HTTP edge's
/// [`AppState`] (keys, admission, the replica).
#[derive(Clone)]
pub struct GrpcBooking {
    state: AppState,
}

/// `router` (the HTTP API of [`crate::router`] over `state`) with the gRPC services added
/// under `/holdfast.booking.v1.*/`.
pub fn with_grpc(router: axum::Router, state: AppState) -> axum::Router {
    let admission_state = state.clone();
    let grpc = GrpcBooking { state };
    let service = BookingServiceServer::new(grpc.clone())
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(GRPC_REPLY_BYTES_MAX);
    let admin = AdminServiceServer::new(grpc.clone())
        .max_decoding_message_size(crate::extract::ADMIN_BODY_BYTES_MAX + 64 * 1024)
        .max_encoding_message_size(GRPC_REPLY_BYTES_MAX);
    let cluster = ClusterServiceServer::new(grpc)
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(GRPC_REPLY_BYTES_MAX);
    let grpc_routes = axum::Router::new()
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

impl GrpcBooking {
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
        .map_err(|error| self.status(&error))
    }

    /// [`Self::authorize`] with the role the HTTP route `route` of the same operation needs
    /// ([`crate::auth::required_role`]); anyone on an open route.
    fn caller(&self, metadata: &MetadataMap, route: &str) -> Result<Caller, Status> {
        match auth::required_role(route) {
            Some(needed) => self.authorize(metadata, needed),
            None => Ok(Caller::default()),
        }
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

    /// The status of a service error ([`status_of`]) with the `x-holdfast-*` metadata of
    /// this node, as an HTTP error answer carries the headers.
    fn status(&self, error: &ApiError) -> Status {
        let mut status = status_of(error);
        let ((), meta) = crate::replica::read_now(&*self.state.replica, |_| ());
        insert_meta(status.metadata_mut(), &meta);
        status
    }

    /// The read level of a call's `Read` ([`crate::service::reads::consistency`]).
    fn read_request(&self, read: Option<&Read>) -> Result<ReadRequest, Status> {
        let read = read.cloned().unwrap_or_default();
        let consistency = service::reads::consistency(
            read.consistency.as_deref(),
            read.max_staleness_ms,
            &self.state.config,
        )
        .map_err(|error| self.status(&error))?;
        Ok(ReadRequest {
            consistency,
            min_index: read.min_index,
        })
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

    /// A cluster call's reply: the status, with this node's `x-holdfast-*` metadata.
    fn status_reply(
        &self,
        status: crate::replica::ClusterStatus,
    ) -> Response<ClusterStatusResponse> {
        self.reply_now(crate::peer::status_to_proto(status))
    }

    /// A reply with this node's `x-holdfast-*` metadata as it is now.
    fn reply_now<T>(&self, message: T) -> Response<T> {
        let ((), meta) = crate::replica::read_now(&*self.state.replica, |_| ());
        with_meta(message, &meta)
    }
}

/// A reply carrying where it was served as metadata, as HTTP answers carry the headers:
/// `x-holdfast-applied-index`, `x-holdfast-node` and, when known, `x-holdfast-leader`.
pub fn with_meta<T>(message: T, meta: &ReadMeta) -> Response<T> {
    let mut response = Response::new(message);
    insert_meta(response.metadata_mut(), meta);
    response
}

fn insert_meta(metadata: &mut MetadataMap, meta: &ReadMeta) {
    metadata.insert(
        "x-holdfast-applied-index",
        MetadataValue::from(meta.applied_index),
    );
    metadata.insert("x-holdfast-node", MetadataValue::from(meta.node_id));
    if let Some(leader) = meta.leader_id {
        metadata.insert("x-holdfast-leader", MetadataValue::from(leader));
    }
}

// ---- Wire conversions of the booking writes ---------------------------------------------

/// A message's `idempotency_key`, checked as the `Idempotency-Key` header is and scoped to
/// the caller.
fn key_of(caller: &Caller, key: Option<&str>) -> Result<IdempotencyKey, ApiError> {
    match key {
        Some(key) => IdempotencyKey::parse("idempotency_key", key).map(|key| key.scoped(caller)),
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

fn hold_message(view: &HoldView, index: Option<u64>) -> Hold {
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
        applied_index: index,
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
            hold: Some(hold_message(view, Some(index))),
            booking: None,
        },
        service::Cancelled::Booking(view) => Cancelled {
            hold: None,
            booking: Some(booking_message(view, Some(index))),
        },
    }
}

fn error_message(error: ApiError) -> Error {
    Error {
        code: error.code.as_str().to_string(),
        message: error.message,
        details_json: error.details.to_string(),
        retry_after_seconds: error
            .retry_after_seconds
            .map(|seconds| seconds.min(u64::from(u32::MAX)) as u32),
    }
}

// ---- Wire conversions of the reads ---------------------------------------------------

/// The gRPC edge's seat pages: seat messages, rendered for each call (not kept).
struct SeatMessages;

impl SeatPages for SeatMessages {
    type Seats = Vec<Seat>;

    fn cached(&self, _query: &AvailabilityQuery, _version: u64) -> Option<SeatPage<Vec<Seat>>> {
        None
    }

    fn render(&self, _query: &AvailabilityQuery, page: &AvailabilityPage) -> SeatPage<Vec<Seat>> {
        let seats = page
            .seats
            .iter()
            .map(|seat| Seat {
                id: seat.id.clone(),
                section: seat.section.clone(),
                row: seat.row.clone(),
                number: seat.number,
                price: seat.price,
                currency: page.currency.clone(),
                status: seat.status.as_str().to_string(),
            })
            .collect();
        SeatPage {
            seats,
            next_after: page.next_after.clone(),
        }
    }
}

fn availability_params(message: AvailabilityRequest) -> AvailabilityParams {
    AvailabilityParams {
        event_id: message.event_id,
        view: message.view,
        section: message.section,
        after: message.after,
        limit: message.limit.map(u64::from),
    }
}

fn availability_message(
    answer: service::reads::Availability<Vec<Seat>>,
    applied_index: u64,
) -> Availability {
    let page = answer.page;
    let summary = page.summary;
    let pools = page
        .pools
        .iter()
        .map(|pool| Pool {
            id: pool.id.clone(),
            capacity: pool.capacity,
            available: pool.available,
            held: pool.held,
            booked: pool.booked,
            price: pool.price,
            currency: page.currency.clone(),
        })
        .collect();
    let (seats, next_after) = match answer.seats {
        Some(seats) => (seats.seats, seats.next_after),
        None => (Vec::new(), None),
    };
    Availability {
        event_id: page.event_id,
        name: answer.info.name,
        category: answer.info.category.as_str().to_string(),
        starts_at: answer.info.starts_at_ms.map(rfc3339),
        currency: page.currency,
        version: page.version,
        applied_index,
        summary: Some(Summary {
            seats_total: summary.seats_total,
            seats_available: summary.seats_available,
            seats_held: summary.seats_held,
            seats_booked: summary.seats_booked,
        }),
        seats,
        pools,
        next_after,
    }
}

fn history_params(message: CustomerBookingsRequest) -> HistoryParams {
    HistoryParams {
        customer_id: message.customer_id,
        limit: message.limit.map(u64::from),
        after: message.after,
    }
}

// ---- Wire conversions of admin inventory and cluster calls ----------------------------

fn seat_bodies(seats: Vec<SeatSpec>) -> Vec<SeatBody> {
    seats
        .into_iter()
        .map(|seat| SeatBody {
            id: seat.id,
            section: seat.section,
            row: seat.row,
            number: seat.number,
            price: seat.price,
        })
        .collect()
}

fn seat_block_bodies(blocks: Vec<SeatBlock>) -> Vec<SeatBlockBody> {
    blocks
        .into_iter()
        .map(|block| SeatBlockBody {
            section: block.section,
            rows: block.rows,
            seats_per_row: block.seats_per_row,
            price: block.price,
        })
        .collect()
}

fn pool_bodies(pools: Vec<PoolSpec>) -> Vec<PoolBody> {
    pools
        .into_iter()
        .map(|pool| PoolBody {
            id: pool.id,
            capacity: pool.capacity,
            price: pool.price,
        })
        .collect()
}

/// `CreateEventRequest` as `POST /admin/events`'s body; the listing fields the message
/// does not carry (venue, city, end, description, tags) are left out, as a JSON body
/// without them leaves them.
fn create_event_body(message: CreateEventRequest) -> CreateEventBody {
    CreateEventBody {
        event_id: message.event_id,
        name: message.name,
        category: message.category,
        starts_at: message.starts_at,
        currency: message.currency,
        seats: seat_bodies(message.seats),
        seat_blocks: seat_block_bodies(message.seat_blocks),
        pools: pool_bodies(message.pools),
        venue: None,
        city: None,
        ends_at: None,
        description: None,
        tags: Vec::new(),
    }
}

fn event_change_message(
    change: &service::Committed<holdfast_statemachine::EventChange>,
) -> EventChange {
    EventChange {
        event_id: change.value.event_id.clone(),
        version: change.value.version,
        applied_index: change.index,
    }
}

fn member_body(member: Member) -> MemberBody {
    MemberBody {
        id: member.id,
        raft_addr: member.raft_addr,
        http_addr: member.http_addr,
        region: member.region,
    }
}

#[tonic::async_trait]
impl BookingService for GrpcBooking {
    async fn get_availability(
        &self,
        request: tonic::Request<AvailabilityRequest>,
    ) -> Result<Response<Availability>, Status> {
        self.caller(request.metadata(), "/availability")?;
        let message = request.into_inner();
        let read = self.read_request(message.read.as_ref())?;
        let query = availability_params(message)
            .check()
            .map_err(|error| self.status(&error))?;
        let (answer, meta) = service::reads::availability(&self.state, read, &query, &SeatMessages)
            .await
            .map_err(|error| self.status(&error))?;
        Ok(with_meta(
            availability_message(answer, meta.applied_index),
            &meta,
        ))
    }

    async fn create_hold(
        &self,
        request: tonic::Request<HoldRequest>,
    ) -> Result<Response<Hold>, Status> {
        let caller = self.writer(&request)?;
        let message = request.into_inner();
        let key = key_of(&caller, message.idempotency_key.as_deref())
            .map_err(|error| self.status(&error))?;
        let held = service::hold(&self.state, &caller, key, hold_body(message))
            .await
            .map_err(|error| self.status(&error))?;
        Ok(self.reply(hold_message(&held.value, Some(held.index)), held.index))
    }

    async fn extend_hold(
        &self,
        request: tonic::Request<ExtendRequest>,
    ) -> Result<Response<Hold>, Status> {
        let caller = self.writer(&request)?;
        let message = request.into_inner();
        let key = key_of(&caller, message.idempotency_key.as_deref())
            .map_err(|error| self.status(&error))?;
        let extended = service::extend(&self.state, &caller, key, extend_body(message))
            .await
            .map_err(|error| self.status(&error))?;
        Ok(self.reply(
            hold_message(&extended.value, Some(extended.index)),
            extended.index,
        ))
    }

    async fn confirm(
        &self,
        request: tonic::Request<ConfirmRequest>,
    ) -> Result<Response<Booking>, Status> {
        let caller = self.writer(&request)?;
        let message = request.into_inner();
        let key = key_of(&caller, message.idempotency_key.as_deref())
            .map_err(|error| self.status(&error))?;
        let body = confirm_body(message).map_err(|error| self.status(&error))?;
        let booked = service::confirm(&self.state, &caller, key, body)
            .await
            .map_err(|error| self.status(&error))?;
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
        service::check_batch_size(message.operations.len()).map_err(|error| self.status(&error))?;
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
                            batch_result::Outcome::Hold(Box::new(hold_message(
                                &held.value,
                                Some(held.index),
                            ))),
                        ),
                        service::Answer::Confirmed(booked) => (
                            booked.index,
                            batch_result::Outcome::Booking(Box::new(booking_message(
                                &booked.value,
                                Some(booked.index),
                            ))),
                        ),
                        service::Answer::Cancelled(cancelled) => (
                            cancelled.index,
                            batch_result::Outcome::Cancelled(Box::new(cancelled_message(
                                &cancelled.value,
                                cancelled.index,
                            ))),
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
                    outcome: Some(batch_result::Outcome::Error(error_message(error))),
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
        self.caller(request.metadata(), "/events")?;
        let message = request.into_inner();
        let read = self.read_request(message.read.as_ref())?;
        let params = crate::grpc_search::search_params(message);
        let (page, meta) = crate::search::search(&self.state, read, &params)
            .await
            .map_err(|error| self.status(&error))?;
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
        self.caller(request.metadata(), "/events")?;
        let message = request.into_inner();
        let read = self.read_request(message.read.as_ref())?;
        let (listing, meta) = crate::search::event(&self.state, read, &message.event_id)
            .await
            .map_err(|error| self.status(&error))?;
        let reply = crate::grpc_search::listing_message(&listing);
        Ok(with_meta(reply, &meta))
    }

    async fn cancel(
        &self,
        request: tonic::Request<CancelRequest>,
    ) -> Result<Response<Cancelled>, Status> {
        let caller = self.writer(&request)?;
        let message = request.into_inner();
        let key = key_of(&caller, message.idempotency_key.as_deref())
            .map_err(|error| self.status(&error))?;
        let cancelled = service::cancel(&self.state, &caller, key, cancel_body(message))
            .await
            .map_err(|error| self.status(&error))?;
        let index = cancelled.index;
        Ok(self.reply(cancelled_message(&cancelled.value, index), index))
    }

    async fn get_hold(
        &self,
        request: tonic::Request<GetHoldRequest>,
    ) -> Result<Response<Hold>, Status> {
        let caller = self.caller(request.metadata(), "/holds")?;
        let message = request.into_inner();
        let read = self.read_request(message.read.as_ref())?;
        let (hold, meta) = service::reads::hold(&self.state, &caller, read, message.hold_id)
            .await
            .map_err(|error| self.status(&error))?;
        Ok(with_meta(hold_message(&hold, None), &meta))
    }

    async fn get_booking(
        &self,
        request: tonic::Request<GetBookingRequest>,
    ) -> Result<Response<Booking>, Status> {
        let caller = self.caller(request.metadata(), "/bookings")?;
        let message = request.into_inner();
        let read = self.read_request(message.read.as_ref())?;
        let (booking, meta) =
            service::reads::booking(&self.state, &caller, read, message.booking_id)
                .await
                .map_err(|error| self.status(&error))?;
        Ok(with_meta(booking_message(&booking, None), &meta))
    }

    async fn customer_bookings(
        &self,
        request: tonic::Request<CustomerBookingsRequest>,
    ) -> Result<Response<BookingPage>, Status> {
        let caller = self.caller(request.metadata(), "/customers")?;
        let message = request.into_inner();
        let read = self.read_request(message.read.as_ref())?;
        let params = history_params(message);
        let (page, meta) = service::reads::customer_bookings(&self.state, &caller, read, &params)
            .await
            .map_err(|error| self.status(&error))?;
        let reply = BookingPage {
            customer_id: params.customer_id,
            bookings: page
                .bookings
                .iter()
                .map(|booking| booking_message(booking, None))
                .collect(),
            next_after: page.next_after,
        };
        Ok(with_meta(reply, &meta))
    }

    /// `/readyz`: open, like the HTTP probe.
    async fn ready(
        &self,
        request: tonic::Request<HealthRequest>,
    ) -> Result<Response<Health>, Status> {
        self.caller(request.metadata(), "/readyz")?;
        let node_id = service::cluster::ready(&self.state).map_err(|error| self.status(&error))?;
        Ok(self.reply_now(Health {
            status: "ok".into(),
            node_id,
        }))
    }
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
        self.caller(request.metadata(), "/changes")?;
        let after = request.get_ref().from_index.saturating_sub(1);
        let feed = crate::changes::ChangeFeed::open(&self.state, after, "from_index")
            .map_err(|error| self.status(&error))?;
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
        self.caller(request.metadata(), "/admin/events")?;
        let body = create_event_body(request.into_inner());
        let created = service::admin::create_event(&self.state, IdempotencyKey(None), body)
            .await
            .map_err(|error| self.status(&error))?;
        Ok(self.reply(event_change_message(&created), created.index))
    }

    async fn add_seats(
        &self,
        request: tonic::Request<AddSeatsRequest>,
    ) -> Result<Response<EventChange>, Status> {
        self.caller(request.metadata(), "/admin/events")?;
        let message = request.into_inner();
        let body = AddSeatsBody {
            seats: seat_bodies(message.seats),
            seat_blocks: seat_block_bodies(message.seat_blocks),
        };
        let added =
            service::admin::add_seats(&self.state, IdempotencyKey(None), message.event_id, body)
                .await
                .map_err(|error| self.status(&error))?;
        Ok(self.reply(event_change_message(&added), added.index))
    }

    async fn add_pools(
        &self,
        request: tonic::Request<AddPoolsRequest>,
    ) -> Result<Response<EventChange>, Status> {
        self.caller(request.metadata(), "/admin/events")?;
        let message = request.into_inner();
        let body = AddPoolsBody {
            pools: pool_bodies(message.pools),
        };
        let added =
            service::admin::add_pools(&self.state, IdempotencyKey(None), message.event_id, body)
                .await
                .map_err(|error| self.status(&error))?;
        Ok(self.reply(event_change_message(&added), added.index))
    }

    async fn set_pool_capacity(
        &self,
        request: tonic::Request<SetPoolCapacityRequest>,
    ) -> Result<Response<EventChange>, Status> {
        self.caller(request.metadata(), "/admin/events")?;
        let message = request.into_inner();
        let changed = service::admin::set_pool_capacity(
            &self.state,
            IdempotencyKey(None),
            message.event_id,
            message.pool_id,
            message.capacity,
        )
        .await
        .map_err(|error| self.status(&error))?;
        Ok(self.reply(event_change_message(&changed), changed.index))
    }

    async fn remove_seat(
        &self,
        request: tonic::Request<RemoveSeatRequest>,
    ) -> Result<Response<EventChange>, Status> {
        self.caller(request.metadata(), "/admin/events")?;
        let message = request.into_inner();
        let removed = service::admin::remove_seat(
            &self.state,
            IdempotencyKey(None),
            message.event_id,
            message.seat_id,
        )
        .await
        .map_err(|error| self.status(&error))?;
        Ok(self.reply(event_change_message(&removed), removed.index))
    }

    async fn remove_pool(
        &self,
        request: tonic::Request<RemovePoolRequest>,
    ) -> Result<Response<EventChange>, Status> {
        self.caller(request.metadata(), "/admin/events")?;
        let message = request.into_inner();
        let removed = service::admin::remove_pool(
            &self.state,
            IdempotencyKey(None),
            message.event_id,
            message.pool_id,
        )
        .await
        .map_err(|error| self.status(&error))?;
        Ok(self.reply(event_change_message(&removed), removed.index))
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
        self.caller(request.metadata(), "/cluster/backup")?;
        let file = crate::backup::take(&self.state)
            .await
            .map_err(|error| self.status(&error))?;
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
        self.caller(request.metadata(), "/cluster/restore")?;
        let message = request.into_inner();
        let sha256: [u8; 32] = message
            .sha256
            .as_slice()
            .try_into()
            .map_err(|_| self.status(&ApiError::invalid_field("sha256", "must be 32 bytes")))?;
        let chunk = holdfast_statemachine::RestoreChunk {
            restore_id: message.restore_id,
            offset: message.offset,
            total_bytes: message.total_bytes,
            sha256,
            data: message.data,
        };
        let (progress, index) = crate::backup::restore_chunk(&self.state, chunk)
            .await
            .map_err(|error| self.status(&error))?;
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
        self.caller(request.metadata(), "/cluster/status")?;
        Ok(self.status_reply(service::cluster::status(&self.state)))
    }

    async fn init(
        &self,
        request: tonic::Request<InitRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        self.caller(request.metadata(), "/cluster/init")?;
        let body = ClusterInitBody {
            members: request
                .into_inner()
                .members
                .into_iter()
                .map(member_body)
                .collect(),
        };
        let status = service::cluster::initialize(&self.state, body)
            .await
            .map_err(|error| self.status(&error))?;
        Ok(self.status_reply(status))
    }

    async fn add_learner(
        &self,
        request: tonic::Request<AddLearnerRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        self.caller(request.metadata(), "/cluster/learners")?;
        let learner = request.into_inner().learner.unwrap_or_default();
        let status = service::cluster::add_learner(&self.state, member_body(learner))
            .await
            .map_err(|error| self.status(&error))?;
        Ok(self.status_reply(status))
    }

    async fn change_membership(
        &self,
        request: tonic::Request<ChangeMembershipRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        self.caller(request.metadata(), "/cluster/membership")?;
        let voters = request.into_inner().voters;
        let status = service::cluster::change_membership(&self.state, &voters)
            .await
            .map_err(|error| self.status(&error))?;
        Ok(self.status_reply(status))
    }

    async fn remove_node(
        &self,
        request: tonic::Request<RemoveNodeRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        self.caller(request.metadata(), "/cluster/nodes")?;
        let status = service::cluster::remove_node(&self.state, request.get_ref().id)
            .await
            .map_err(|error| self.status(&error))?;
        Ok(self.status_reply(status))
    }

    async fn transfer_leader(
        &self,
        request: tonic::Request<TransferLeaderRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        self.caller(request.metadata(), "/cluster/leader")?;
        let status = service::cluster::transfer_leader(&self.state, request.get_ref().node_id)
            .await
            .map_err(|error| self.status(&error))?;
        Ok(self.status_reply(status))
    }

    async fn snapshot(
        &self,
        request: tonic::Request<SnapshotRequest>,
    ) -> Result<Response<SnapshotTaken>, Status> {
        self.caller(request.metadata(), "/cluster/snapshot")?;
        let taken = service::cluster::snapshot(&self.state)
            .await
            .map_err(|error| self.status(&error))?;
        Ok(self.reply_now(SnapshotTaken {
            node_id: taken.node_id,
            snapshot_index: taken.index,
            build_ms: taken.build.as_secs_f64() * 1e3,
        }))
    }
}
