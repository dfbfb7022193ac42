//! The client-facing gRPC `BookingService` (`proto/holdfast/booking.proto`), served on the
//! HTTP port next to the JSON API.
//!
//! Each call is answered by the HTTP API itself: the request message (whose fields are
//! named as API.md's JSON) becomes the JSON request of the matching route, which runs
//! through the same router — authentication, validation, idempotency, payment, metrics —
//! and the JSON answer becomes the reply message. The two APIs therefore cannot drift
//! apart. A JSON error becomes a gRPC status whose metadata carries API.md's code
//! (`holdfast-error-code`) and details (`holdfast-error-details`); the `x-holdfast-*` read
//! headers, `etag` and `retry-after` are copied into the reply's metadata.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use holdfast_proto::booking::admin_service_server::{AdminService, AdminServiceServer};
use holdfast_proto::booking::booking_service_server::{BookingService, BookingServiceServer};
use holdfast_proto::booking::cluster_service_server::{ClusterService, ClusterServiceServer};
use holdfast_proto::booking::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Response, Status};
use tower::ServiceExt;

/// Largest JSON answer taken from the router (a full availability page is far below it).
const ANSWER_BYTES_MAX: usize = 16 * 1024 * 1024;

/// The gRPC booking service over an HTTP API router.
#[derive(Clone)]
pub struct GrpcBooking {
    router: Router,
}

/// `router` (the HTTP API of [`crate::router`]) with the gRPC booking service added under
/// `/holdfast.booking.v1.BookingService/`.
pub fn with_grpc(router: Router) -> Router {
    // Explicit message limits: a request no larger than the largest JSON body a route takes
    // (each call then passes its route's own body limit), an answer no larger than the
    // router's.
    let request_bytes_max = crate::extract::ADMIN_BODY_BYTES_MAX;
    let service = BookingServiceServer::new(GrpcBooking {
        router: router.clone(),
    })
    .max_decoding_message_size(request_bytes_max)
    .max_encoding_message_size(ANSWER_BYTES_MAX);
    let grpc = GrpcBooking {
        router: router.clone(),
    };
    let admin = AdminServiceServer::new(grpc.clone())
        .max_decoding_message_size(request_bytes_max)
        .max_encoding_message_size(ANSWER_BYTES_MAX);
    let cluster = ClusterServiceServer::new(grpc)
        .max_decoding_message_size(request_bytes_max)
        .max_encoding_message_size(ANSWER_BYTES_MAX);
    router
        .route_service(
            &service_path::<BookingServiceServer<GrpcBooking>>(),
            service,
        )
        .route_service(&service_path::<AdminServiceServer<GrpcBooking>>(), admin)
        .route_service(
            &service_path::<ClusterServiceServer<GrpcBooking>>(),
            cluster,
        )
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
        let request = request
            .body(body)
            .map_err(|error| Status::invalid_argument(error.to_string()))?;
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
        Err(error_status(status, &json, metadata))
    }
}

/// The gRPC status of an HTTP error answer in API.md's error shape.
fn error_status(status: StatusCode, json: &serde_json::Value, metadata: MetadataMap) -> Status {
    let code = json["error"]["code"].as_str().unwrap_or("INTERNAL");
    let message = json["error"]["message"].as_str().unwrap_or("");
    let grpc = match status.as_u16() {
        400 | 413 | 422 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        402 | 409 | 410 => Code::FailedPrecondition,
        429 | 503 => Code::Unavailable,
        504 => Code::DeadlineExceeded,
        _ => Code::Internal,
    };
    let mut grpc_status = Status::with_metadata(grpc, format!("{code}: {message}"), metadata);
    let details = json["error"]["details"].to_string();
    if let Ok(value) = MetadataValue::try_from(code) {
        grpc_status
            .metadata_mut()
            .insert("holdfast-error-code", value);
    }
    if let Ok(value) = MetadataValue::try_from(details.as_str()) {
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
        let message = request.get_ref();
        let key = message.idempotency_key.as_ref();
        self.post("/booking/hold", message, key, request.metadata())
            .await
    }

    async fn extend_hold(
        &self,
        request: tonic::Request<ExtendRequest>,
    ) -> Result<Response<Hold>, Status> {
        let message = request.get_ref();
        let key = message.idempotency_key.as_ref();
        self.post("/booking/extend", message, key, request.metadata())
            .await
    }

    async fn confirm(
        &self,
        request: tonic::Request<ConfirmRequest>,
    ) -> Result<Response<Booking>, Status> {
        let message = request.get_ref();
        let key = message.idempotency_key.as_ref();
        self.post("/booking/confirm", message, key, request.metadata())
            .await
    }

    async fn batch(
        &self,
        _request: tonic::Request<BatchRequest>,
    ) -> Result<Response<BatchResponse>, Status> {
        // Replaced by the service layer's batch call (issue 14, in progress).
        Err(Status::unimplemented("Batch is being built"))
    }

    async fn search_events(
        &self,
        _request: tonic::Request<SearchEventsRequest>,
    ) -> Result<Response<EventPage>, Status> {
        // Replaced by the search service (issue 17, in progress).
        Err(Status::unimplemented("SearchEvents is being built"))
    }

    async fn get_event(
        &self,
        _request: tonic::Request<GetEventRequest>,
    ) -> Result<Response<EventListing>, Status> {
        // Replaced by the search service (issue 17, in progress).
        Err(Status::unimplemented("GetEvent is being built"))
    }

    async fn cancel(
        &self,
        request: tonic::Request<CancelRequest>,
    ) -> Result<Response<Cancelled>, Status> {
        let message = request.get_ref();
        let (json, metadata) =
            Call::new(Method::POST, "/booking/cancel".into(), request.metadata())
                .json(message, &[])?
                .key(message.idempotency_key.as_ref())
                .send(&self.router)
                .await?;
        // A cancelled booking names its payment; a released hold does not.
        let decode = |error: serde_json::Error| Status::internal(error.to_string());
        let cancelled = if json.get("payment_id").is_some() {
            Cancelled {
                hold: None,
                booking: Some(serde_json::from_value(json).map_err(decode)?),
            }
        } else {
            Cancelled {
                hold: Some(serde_json::from_value(json).map_err(decode)?),
                booking: None,
            }
        };
        let mut response = Response::new(cancelled);
        *response.metadata_mut() = metadata;
        Ok(response)
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

#[tonic::async_trait]
impl AdminService for GrpcBooking {
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

#[tonic::async_trait]
impl ClusterService for GrpcBooking {
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
