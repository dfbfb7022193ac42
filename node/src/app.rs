//! The HTTP application: shared state, the router, per-request middleware (request id,
//! `X-Holdfast-*` headers, status counters), answers with read metadata and ETags, and the
//! serving loop with graceful shutdown.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Extension, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use tracing::Instrument;

use crate::auth::{authorize, AuthKeys};
use crate::charges::ChargeResolver;
use crate::error::ApiError;
use crate::extract::{ApiQuery, BodyLimit, ADMIN_BODY_BYTES_MAX, BOOKING_BODY_BYTES_MAX};
use crate::payment::PaymentProvider;
use crate::replica::{self, ReadMeta, ReadRequest, Replica};
use crate::{admin, booking, cluster, events, reads, search};

/// `X-Holdfast-Applied-Index`: the log index a read was served at, or the index of the
/// entry that applied a write.
pub const APPLIED_INDEX_HEADER: HeaderName = HeaderName::from_static("x-holdfast-applied-index");
/// `X-Holdfast-Node`: the id of the node that answered, on every answer of [`router`].
pub const NODE_HEADER: HeaderName = HeaderName::from_static("x-holdfast-node");
/// `X-Holdfast-Leader`: the leader the answering node knows; absent when it knows none.
pub const LEADER_HEADER: HeaderName = HeaderName::from_static("x-holdfast-leader");
/// `X-Request-Id`: the client's own (1–128 printable ASCII characters, no spaces) or else a
/// new one of 16 hex digits; echoed on the answer and logged in the request's tracing span.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// Longest accepted client `X-Request-Id`; longer ones are replaced.
pub const REQUEST_ID_CHARS_MAX: usize = 128;

/// Settings of the HTTP edge.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Largest booking (and cluster) request body.
    pub booking_body_bytes_max: usize,
    /// Largest admin inventory request body.
    pub admin_body_bytes_max: usize,
    /// `max_staleness_ms` of a `bounded` read that does not name one.
    pub max_staleness_ms_default: u64,
    /// Bearer keys; `None` leaves the API open (see [`crate::auth`]).
    pub auth_keys: Option<Arc<AuthKeys>>,
    /// Limits of the HTTP server itself (connections, header deadline, HTTP/2).
    pub server: ServerLimits,
    /// Confirms at once between their charge and their answer (see [`crate::charges`]);
    /// beyond it a confirm is refused with `503 OVERLOADED` before anything is charged.
    pub charges_in_flight_max: usize,
    /// Rate limits per caller and the cap on requests in flight (see [`crate::rate`]).
    pub admission: crate::rate::AdmissionConfig,
    /// Change streams served at once (`GET /changes` and gRPC `WatchChanges` together);
    /// beyond it a new one is refused with `503 OVERLOADED` (see [`crate::changes`]).
    pub change_streams_max: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            booking_body_bytes_max: BOOKING_BODY_BYTES_MAX,
            admin_body_bytes_max: ADMIN_BODY_BYTES_MAX,
            max_staleness_ms_default: 1_000,
            auth_keys: None,
            charges_in_flight_max: crate::charges::CHARGES_IN_FLIGHT_MAX_DEFAULT,
            admission: crate::rate::AdmissionConfig::default(),
            server: ServerLimits::default(),
            change_streams_max: crate::changes::CHANGE_STREAMS_MAX_DEFAULT,
        }
    }
}

/// What every handler shares: one reference count per request, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The shared parts of [`AppState`].
pub struct Shared {
    /// The replication seam every read and write goes through (see [`crate::replica`]).
    pub replica: Arc<dyn Replica>,
    /// The payment provider every confirm charges through; a charge whose answer was lost
    /// is looked up in it by its key (see [`crate::payment`]).
    pub payments: Arc<dyn PaymentProvider>,
    /// Takes over charges whose confirm got no answer.
    pub charges: ChargeResolver,
    /// Serialised availability pages per event version.
    pub availability_cache: crate::reads::AvailabilityCache,
    /// Rate limits per caller and the cap on requests in flight.
    pub admission: crate::rate::Admission,
    /// The settings this state was built with, fixed for its lifetime.
    pub config: Arc<HttpConfig>,
    /// The process-wide Prometheus registry that `GET /metrics` renders
    /// ([`crate::metrics::install`]).
    pub metrics: PrometheusHandle,
    /// Turns true when the server stops: long-lived answers (`GET /changes`) end, so a
    /// graceful shutdown does not wait for them.
    streams_stop: tokio::sync::watch::Sender<bool>,
    /// One place per change stream open (`HttpConfig::change_streams_max`).
    pub change_streams: Arc<tokio::sync::Semaphore>,
    /// One backup at a time on this node (see [`crate::backup::take`]).
    pub backups: tokio::sync::Semaphore,
}

impl AppState {
    /// Shared state over a replica and a payment provider; installs the metrics recorder.
    pub fn new(
        replica: Arc<dyn Replica>,
        payments: Arc<dyn PaymentProvider>,
        config: HttpConfig,
    ) -> AppState {
        AppState(Arc::new(Shared {
            charges: ChargeResolver::new(replica.clone(), config.charges_in_flight_max),
            availability_cache: crate::reads::AvailabilityCache::default(),
            admission: crate::rate::Admission::new(config.admission),
            change_streams: Arc::new(tokio::sync::Semaphore::new(
                config
                    .change_streams_max
                    .min(tokio::sync::Semaphore::MAX_PERMITS),
            )),
            replica,
            payments,
            config: Arc::new(config),
            metrics: crate::metrics::install(),
            streams_stop: tokio::sync::watch::channel(false).0,
            backups: tokio::sync::Semaphore::new(1),
        }))
    }

    /// Ends every long-lived answer (call when the server stops).
    pub fn stop_streams(&self) {
        self.streams_stop.send_replace(true);
    }

    /// Turns true when [`AppState::stop_streams`] is called.
    pub fn streams_stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.streams_stop.subscribe()
    }
}

/// The whole HTTP API of API.md over `state`.
pub fn router(state: AppState) -> Router {
    let booking_routes = Router::new()
        .route("/booking/hold", post(booking::hold))
        .route("/booking/extend", post(booking::extend))
        .route("/booking/confirm", post(booking::confirm))
        .route("/booking/cancel", post(booking::cancel))
        .route("/cluster/init", post(cluster::initialize))
        .route("/cluster/learners", post(cluster::add_learner))
        .route("/cluster/membership", post(cluster::change_membership))
        .route("/cluster/leader", post(cluster::transfer_leader))
        .route("/cluster/snapshot", post(cluster::snapshot))
        .layer(Extension(BodyLimit(state.config.booking_body_bytes_max)));
    let restore_routes = Router::new()
        .route("/cluster/restore", post(crate::backup::restore))
        .layer(Extension(BodyLimit(crate::backup::RESTORE_BODY_BYTES_MAX)));
    let batch_routes = Router::new()
        .route("/booking/batch", post(booking::batch))
        .layer(Extension(BodyLimit(crate::service::BATCH_BODY_BYTES_MAX)));
    let admin_routes = Router::new()
        .route("/admin/events", post(admin::create_event))
        .route("/admin/events/{event_id}/seats", post(admin::add_seats))
        .route("/admin/events/{event_id}/pools", post(admin::add_pools))
        .route(
            "/admin/events/{event_id}/pools/{pool_id}",
            patch(admin::set_pool_capacity).delete(admin::remove_pool),
        )
        .route(
            "/admin/events/{event_id}/seats/{seat_id}",
            delete(admin::remove_seat),
        )
        .route("/admin/events/{event_id}", patch(events::update_event))
        .route(
            "/admin/events/{event_id}/cancel",
            post(events::cancel_event),
        )
        .route(
            "/admin/webhooks",
            post(crate::webhooks::add_webhook).get(crate::webhooks::list_webhooks),
        )
        .route(
            "/admin/webhooks/{webhook_id}",
            delete(crate::webhooks::remove_webhook),
        )
        .layer(Extension(BodyLimit(state.config.admin_body_bytes_max)));
    let read_routes = Router::new()
        .route("/availability", get(reads::availability))
        .route("/events", get(search::search_events))
        .route("/events/{event_id}", get(search::get_event))
        .route("/holds/{hold_id}", get(reads::hold))
        .route("/bookings/{booking_id}", get(reads::booking))
        .route("/refunds", get(reads::refunds))
        .route("/changes", get(crate::changes::changes))
        .route(
            "/customers/{customer_id}/bookings",
            get(reads::customer_bookings),
        )
        .route("/cluster/status", get(cluster::status))
        .route("/cluster/backup", get(crate::backup::backup))
        .route("/cluster/nodes/{node_id}", delete(cluster::remove_node))
        .route("/healthz", get(cluster::healthz))
        .route("/readyz", get(cluster::readyz))
        .route("/metrics", get(cluster::metrics))
        .route("/openapi.json", get(crate::openapi::openapi_json));
    Router::new()
        .merge(booking_routes)
        .merge(batch_routes)
        .merge(restore_routes)
        .merge(admin_routes)
        .merge(read_routes)
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Authentication, then admission (`rate::admit`, called by `authorize`: an
        // authenticated caller is limited by its key). One middleware for both, and one
        // for the request's context and CORS below: each `from_fn` layer costs a boxed
        // future and a clone of the service under it on every request.
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        // The dashboard's static pages need no key: merged outside `authorize`.
        .merge(crate::ui::routes())
        // The last layer is the outermost: refusals by `authorize` get a request id too.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request_context,
        ))
        .with_state(state)
}

async fn route_not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::route_not_found(method.as_str(), uri.path())
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(method.as_str(), uri.path())
}

static REQUEST_SEQUENCE: AtomicU64 = AtomicU64::new(0);

fn new_request_id() -> String {
    let sequence = REQUEST_SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let seed = std::process::id() as u64 ^ crate::replica::wall_clock_ms().rotate_left(20);
    format!(
        "{:016x}",
        xxhash_rust::xxh3::xxh3_64(&[seed.to_le_bytes(), sequence.to_le_bytes()].concat())
    )
}

fn client_request_id(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(REQUEST_ID_HEADER)?.to_str().ok()?;
    let acceptable = !value.is_empty()
        && value.len() <= REQUEST_ID_CHARS_MAX
        && value.bytes().all(|byte| (0x21..0x7f).contains(&byte));
    acceptable.then(|| value.to_string())
}

/// Per request: a tracing span with the request id (the client's `X-Request-Id` or a new
/// one, echoed back), the `X-Holdfast-*` headers on every answer, and a status counter.
async fn request_context(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let request_id = client_request_id(request.headers()).unwrap_or_else(new_request_id);
    let span = tracing::info_span!(
        "http",
        request_id = %request_id,
        method = %request.method(),
        path = %request.uri().path(),
    );
    let started = Instant::now();
    let mut response = crate::ui::member_cors(&state, request, next)
        .instrument(span.clone())
        .await;
    let status = response.status();
    span.in_scope(|| {
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), elapsed_ms, "answered");
        } else {
            tracing::debug!(status = status.as_u16(), elapsed_ms, "answered");
        }
    });
    metrics::counter!(crate::metrics::HTTP_RESPONSES_TOTAL, "status" => status.as_str().to_string())
        .increment(1);
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert(REQUEST_ID_HEADER, value);
    }
    if !headers.contains_key(NODE_HEADER) {
        let ((), meta) = replica::read_now(&*state.replica, |_| ());
        set_meta_headers(headers, &meta, !headers.contains_key(APPLIED_INDEX_HEADER));
    }
    response
}

/// Sets `X-Holdfast-Node`, `X-Holdfast-Leader` (when known) and, if asked,
/// `X-Holdfast-Applied-Index`.
pub fn set_meta_headers(headers: &mut HeaderMap, meta: &ReadMeta, applied_index: bool) {
    headers.insert(NODE_HEADER, HeaderValue::from(meta.node_id));
    if let Some(leader) = meta.leader_id {
        headers.insert(LEADER_HEADER, HeaderValue::from(leader));
    }
    if applied_index {
        headers.insert(APPLIED_INDEX_HEADER, HeaderValue::from(meta.applied_index));
    }
}

/// Parses `consistency`, `max_staleness_ms` (read only for `bounded`) and `min_index`
/// ([`crate::service::reads::consistency`]).
pub fn read_request(query: &ApiQuery, config: &HttpConfig) -> Result<ReadRequest, ApiError> {
    let name = query.get("consistency");
    // Checked whatever the level (a malformed parameter is refused, not ignored); used
    // only with `bounded`.
    let max_staleness_ms = query.get_u64("max_staleness_ms")?;
    let max_staleness_ms = match name {
        Some("bounded") => max_staleness_ms,
        _ => None,
    };
    Ok(ReadRequest {
        consistency: crate::service::reads::consistency(name, max_staleness_ms, config)?,
        min_index: query.get_u64("min_index")?,
    })
}

/// A strong ETag over `parts` (an event id and version, or a body), quoted.
pub fn etag(parts: &[&[u8]]) -> String {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for part in parts {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    format!("\"{:016x}\"", hasher.digest())
}

fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim())
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// A read's answer: `304` when `If-None-Match` names `etag`, else `200` with `body`; both
/// with the ETag and the read metadata headers.
pub fn read_answer(
    request_headers: &HeaderMap,
    meta: &ReadMeta,
    etag: &str,
    body: &impl Serialize,
) -> Response {
    let mut response = if if_none_match(request_headers, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        json_answer(StatusCode::OK, body)
    };
    let headers = response.headers_mut();
    set_meta_headers(headers, meta, true);
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    response
}

/// A write's answer, with the index that produced it.
pub fn write_answer(status: StatusCode, index: u64, body: &impl Serialize) -> Response {
    let mut response = json_answer(status, body);
    response
        .headers_mut()
        .insert(APPLIED_INDEX_HEADER, HeaderValue::from(index));
    response
}

/// `body` as JSON.
pub fn json_answer(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        Err(error) => {
            ApiError::internal(format!("could not encode the answer: {error}")).into_response()
        }
    }
}

/// Limits of the HTTP server itself, below the API's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections open at once; the next one waits in the kernel's backlog until one
    /// closes.
    pub connections_max: usize,
    /// Time a client has to send a request's headers, from when the connection is ready for
    /// the next request: a connection that sends nothing, or trickles its headers, is
    /// closed after it (HTTP/1; also the idle timeout of a kept-alive connection).
    pub header_read_timeout: Duration,
    /// An HTTP/2 connection whose client does not answer a ping within this time is closed.
    pub http2_keep_alive: Duration,
    /// Requests at once on one HTTP/2 connection.
    pub http2_streams_max: u32,
}

/// Connections open at once by default.
pub const CONNECTIONS_MAX_DEFAULT: usize = 10_000;

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            connections_max: CONNECTIONS_MAX_DEFAULT,
            header_read_timeout: Duration::from_secs(10),
            http2_keep_alive: Duration::from_secs(20),
            http2_streams_max: 256,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and
/// finishes the requests in flight, with the default [`ServerLimits`].
pub async fn run_http<Listener: HttpListener>(
    router: Router,
    listener: Listener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener
        .serve(router, shutdown, ServerLimits::default())
        .await
}

/// [`run_http`] with the given limits.
pub async fn run_http_with<Listener: HttpListener>(
    router: Router,
    listener: Listener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ServerLimits,
) -> std::io::Result<()> {
    listener.serve(router, shutdown, limits).await
}

/// A listener the HTTP API is served on. Real TCP listeners get the hardened server of
/// [`serve_limited`] (client addresses for the rate limit, [`ServerLimits`]); others (the
/// simulation's turmoil listener) are served by `axum::serve` as they are.
pub trait HttpListener: axum::serve::Listener<Addr: std::fmt::Debug> + Sized {
    /// Serves `router` until `shutdown` completes, then finishes the requests in flight.
    fn serve(
        self,
        router: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
        _limits: ServerLimits,
    ) -> impl Future<Output = std::io::Result<()>> + Send {
        async move {
            axum::serve(self, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

impl HttpListener for tokio::net::TcpListener {
    fn serve(
        self,
        router: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
        limits: ServerLimits,
    ) -> impl Future<Output = std::io::Result<()>> + Send {
        serve_limited(self, router, shutdown, limits)
    }
}

impl HttpListener for axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)> {
    fn serve(
        self,
        router: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
        limits: ServerLimits,
    ) -> impl Future<Output = std::io::Result<()>> + Send {
        serve_limited(self, router, shutdown, limits)
    }
}

/// The client preface of HTTP/2, which the server reads before it knows the protocol.
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads a connection's first bytes within `deadline`: enough to tell HTTP/1 (a byte that
/// leaves the HTTP/2 preface) from HTTP/2 (the whole preface). The stream comes back with
/// those bytes put in front, as if unread; an error if the client sent too little in time
/// or closed.
async fn first_bytes(
    mut stream: tokio::net::TcpStream,
    deadline: Duration,
) -> std::io::Result<Prefixed> {
    use tokio::io::AsyncReadExt;
    let mut read = Vec::with_capacity(HTTP2_PREFACE.len());
    let decided = async {
        let mut buffer = [0u8; 24];
        loop {
            let wanted = HTTP2_PREFACE.len() - read.len();
            let count = stream.read(&mut buffer[..wanted]).await?;
            if count == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
            }
            read.extend_from_slice(&buffer[..count]);
            if read.len() == HTTP2_PREFACE.len() || !HTTP2_PREFACE.starts_with(&read) {
                return Ok::<(), std::io::Error>(());
            }
        }
    };
    tokio::time::timeout(deadline, decided)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    Ok(Prefixed {
        prefix: read,
        position: 0,
        stream,
    })
}

/// A stream whose first bytes were read already: they are read again first.
struct Prefixed {
    prefix: Vec<u8>,
    position: usize,
    stream: tokio::net::TcpStream,
}

impl tokio::io::AsyncRead for Prefixed {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
        buffer: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.position < this.prefix.len() {
            let rest = &this.prefix[this.position..];
            let count = rest.len().min(buffer.remaining());
            buffer.put_slice(&rest[..count]);
            this.position += count;
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut this.stream).poll_read(context, buffer)
    }
}

impl tokio::io::AsyncWrite for Prefixed {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
        bytes: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(context, bytes)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
        buffers: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(context)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(context)
    }
}

/// The HTTP server for real sockets: HTTP/1 and HTTP/2 (gRPC) on one port, each request
/// carrying its client's address (`ConnectInfo<SocketAddr>`), at most
/// `limits.connections_max` connections (the next waits to be accepted), a deadline for
/// request headers, HTTP/2 keep-alive pings and a bound on streams per connection. On
/// `shutdown` it stops accepting, lets every connection finish the requests it has, and
/// returns when all are closed.
pub async fn serve_limited<Listener>(
    mut listener: Listener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ServerLimits,
) -> std::io::Result<()>
where
    Listener: axum::serve::Listener<Io = tokio::net::TcpStream, Addr = std::net::SocketAddr>,
{
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt;

    let connections = Arc::new(tokio::sync::Semaphore::new(limits.connections_max.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.http2_keep_alive))
        .keep_alive_timeout(limits.http2_keep_alive)
        .max_concurrent_streams(limits.http2_streams_max)
        .enable_connect_protocol();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (io, address) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let service = router.clone().map_request(
            move |request: axum::http::Request<hyper::body::Incoming>| {
                let mut request = request.map(axum::body::Body::new);
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(address));
                request
            },
        );
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let header_read_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            // Until hyper knows the protocol no timer of its own runs: a client that
            // sends nothing (or a prefix of the HTTP/2 preface) must not keep a place.
            let Ok(io) = first_bytes(io, header_read_timeout).await else {
                tracing::debug!(%address, "HTTP connection closed: nothing sent in time");
                drop(permit);
                return;
            };
            let connection = builder.serve_connection_with_upgrades(
                TokioIo::new(io),
                TowerToHyperService::new(service),
            );
            if let Err(error) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%error, %address, "HTTP connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// `listener` with `TCP_NODELAY` on every accepted connection. Without it a small answer
/// written as two segments (HTTP/2 headers, then data) waits for the client's delayed ACK
/// under Nagle's algorithm: about 40 ms a call, measured with sequential gRPC calls.
pub fn without_delay(
    listener: tokio::net::TcpListener,
) -> axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)> {
    use axum::serve::ListenerExt;
    fn no_delay(stream: &mut tokio::net::TcpStream) {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    }
    listener.tap_io(no_delay as fn(&mut tokio::net::TcpStream))
}

/// Ctrl-C (SIGINT) and SIGTERM, caught from the moment this is installed. A signal that
/// arrives while the node is still starting is kept, and answered with a clean shutdown once
/// [`ShutdownSignal::recv`] is awaited, instead of killing the process halfway through its
/// start (the default action of both signals). Install it first thing in `main`.
pub struct ShutdownSignal {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    /// Starts catching the signals. Needs a tokio runtime.
    pub fn install() -> std::io::Result<ShutdownSignal> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(ShutdownSignal {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(ShutdownSignal {})
    }

    /// Waits for the first signal caught since [`ShutdownSignal::install`].
    pub async fn recv(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => tracing::info!("Ctrl-C: shutting down"),
            _ = self.terminate.recv() => tracing::info!("SIGTERM: shutting down"),
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("Ctrl-C: shutting down");
        }
    }
}

/// Waits for Ctrl-C or SIGTERM, catching them from its first poll on; a process that must
/// not die to a signal during its start installs a [`ShutdownSignal`] first instead.
pub async fn shutdown_signal() {
    match ShutdownSignal::install() {
        Ok(signal) => signal.recv().await,
        Err(error) => {
            tracing::error!(%error, "cannot listen for shutdown signals");
            std::future::pending::<()>().await
        }
    }
}
