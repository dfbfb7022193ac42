//! The client: connection, every call of the API, retries, sessions.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use holdfast_proto::booking as pb;
use holdfast_proto::booking::admin_service_client::AdminServiceClient;
use holdfast_proto::booking::batch_operation::Operation;
use holdfast_proto::booking::booking_service_client::BookingServiceClient;
use holdfast_proto::booking::cluster_service_client::ClusterServiceClient;
use rand::Rng;
use tracing::Instrument;

use crate::batch::{BatchFailure, Batcher, BATCH_OPERATIONS_MAX};
use crate::changes::{admin_service, ChangeStream};
use crate::error::{ApiError, Error, ErrorCode, Result};
use crate::transport::{normalise, Meta, Node, Route, Transport, MESSAGE_BYTES_MAX};
use crate::types::*;

/// Bytes of a backup's state sent per restore call (the node takes up to 1 MiB).
const RESTORE_PIECE_BYTES: usize = 1024 * 1024;

/// How failed attempts are retried: exponential backoff with jitter, bounded in attempts,
/// always within the call's deadline.
///
/// ```
/// use holdfast_client::RetryPolicy;
/// use std::time::Duration;
/// let policy = RetryPolicy { max_attempts: 5, ..RetryPolicy::default() };
/// assert_eq!(policy.initial_backoff, Duration::from_millis(20));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait before the first retry (then doubled each time).
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Most attempts of one call, the first included.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_secs(1),
            max_attempts: 20,
        }
    }
}

/// How to connect: endpoints, key, region, deadlines, retries and batching.
///
/// ```no_run
/// # async fn demo() -> holdfast_client::Result<()> {
/// use holdfast_client::Client;
/// use std::time::Duration;
/// let client = Client::builder(["10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"])
///     .api_key("secret")
///     .region("eu")
///     .timeout(Duration::from_secs(5))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    endpoints: Vec<String>,
    api_key: Option<String>,
    region: Option<String>,
    timeout: Duration,
    attempt_timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
    batching: bool,
    max_batch: usize,
    max_in_flight_batches: usize,
}

impl ClientBuilder {
    /// A builder for `endpoints` (`host:port` or `http://host:port`, each a node's HTTP
    /// port).
    ///
    /// ```
    /// let builder = holdfast_client::ClientBuilder::new(["127.0.0.1:7001"]);
    /// ```
    pub fn new<S: AsRef<str>>(endpoints: impl IntoIterator<Item = S>) -> ClientBuilder {
        ClientBuilder {
            endpoints: endpoints
                .into_iter()
                .flat_map(|endpoint| {
                    endpoint
                        .as_ref()
                        .split(',')
                        .map(str::trim)
                        .filter(|endpoint| !endpoint.is_empty())
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .collect(),
            api_key: None,
            region: None,
            timeout: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(2),
            retry: RetryPolicy::default(),
            batching: true,
            max_batch: BATCH_OPERATIONS_MAX,
            max_in_flight_batches: 2,
        }
    }

    /// The bearer key sent as `authorization` metadata.
    ///
    /// ```
    /// let builder = holdfast_client::ClientBuilder::new(["127.0.0.1:7001"]).api_key("k");
    /// ```
    pub fn api_key(mut self, key: impl Into<String>) -> ClientBuilder {
        self.api_key = Some(key.into());
        self
    }

    /// The caller's region: reads go to a node of it when one is up.
    ///
    /// ```
    /// let builder = holdfast_client::ClientBuilder::new(["127.0.0.1:7001"]).region("eu");
    /// ```
    pub fn region(mut self, region: impl Into<String>) -> ClientBuilder {
        self.region = Some(region.into());
        self
    }

    /// The total deadline of every call, retries included (default 10 s).
    ///
    /// ```
    /// let builder = holdfast_client::ClientBuilder::new(["127.0.0.1:7001"]).timeout(std::time::Duration::from_secs(3));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.timeout = timeout;
        self
    }

    /// The deadline of one attempt (default 3 s): a node that does not answer in time is
    /// left for another within the call's deadline.
    ///
    /// ```
    /// let builder = holdfast_client::ClientBuilder::new(["127.0.0.1:7001"]).attempt_timeout(std::time::Duration::from_secs(1));
    /// ```
    pub fn attempt_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.attempt_timeout = timeout;
        self
    }

    /// How long opening a connection to a node may take (default 2 s).
    ///
    /// ```
    /// let builder = holdfast_client::ClientBuilder::new(["127.0.0.1:7001"]).connect_timeout(std::time::Duration::from_millis(500));
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.connect_timeout = timeout;
        self
    }

    /// The retry policy.
    ///
    /// ```
    /// use holdfast_client::{ClientBuilder, RetryPolicy};
    /// let builder = ClientBuilder::new(["127.0.0.1:7001"]).retry(RetryPolicy { max_attempts: 3, ..RetryPolicy::default() });
    /// ```
    pub fn retry(mut self, retry: RetryPolicy) -> ClientBuilder {
        self.retry = retry;
        self
    }

    /// Whether concurrent writes are gathered into `Batch` calls (default on).
    ///
    /// ```
    /// let builder = holdfast_client::ClientBuilder::new(["127.0.0.1:7001"]).batching(false);
    /// ```
    pub fn batching(mut self, batching: bool) -> ClientBuilder {
        self.batching = batching;
        self
    }

    /// Most operations in one batch (1 – 1,000, the node's limit; default 1,000).
    ///
    /// ```
    /// let builder = holdfast_client::ClientBuilder::new(["127.0.0.1:7001"]).max_batch(100);
    /// ```
    pub fn max_batch(mut self, operations: usize) -> ClientBuilder {
        self.max_batch = operations;
        self
    }

    /// Batches in flight at once (default 2). A batch goes out as soon as a slot is free;
    /// everything that arrives while every slot is busy gathers into the next one. Two keep
    /// the node's pipeline busy (it commits one Raft entry while the next gathers): with
    /// 1,000 concurrent callers, 37,156 holds/s against 30,751–31,003 with one
    /// (BENCHMARKS.md). A lone caller is sent at once either way.
    ///
    /// ```
    /// let builder = holdfast_client::ClientBuilder::new(["127.0.0.1:7001"]).max_in_flight_batches(2);
    /// ```
    pub fn max_in_flight_batches(mut self, batches: usize) -> ClientBuilder {
        self.max_in_flight_batches = batches;
        self
    }

    /// A client that has not talked to any node yet (connections open on first use).
    /// Needs a tokio runtime.
    ///
    /// ```no_run
    /// # async fn demo() -> holdfast_client::Result<()> {
    /// let client = holdfast_client::ClientBuilder::new(["127.0.0.1:7001"]).build()?;
    /// # Ok(()) }
    /// ```
    pub fn build(self) -> Result<Client> {
        let transport = Arc::new(Transport::new(
            &self.endpoints,
            self.region.clone(),
            self.api_key.as_deref(),
            self.connect_timeout,
        )?);
        let batcher = self.batching.then(|| {
            Batcher::start(
                transport.clone(),
                self.max_batch,
                self.max_in_flight_batches,
            )
        });
        Ok(Client {
            shared: Arc::new(Shared {
                transport,
                batcher,
                retry: self.retry,
                attempt_timeout: self.attempt_timeout,
            }),
            timeout: self.timeout,
            read: ReadOptions::default(),
            session: None,
        })
    }

    /// Connects: asks every endpoint for the cluster status at once and succeeds as soon
    /// as any answers (learning the members, their regions and the leader); fails only
    /// when none does within the connect timeout.
    ///
    /// ```no_run
    /// # async fn demo() -> holdfast_client::Result<()> {
    /// let client = holdfast_client::ClientBuilder::new(["127.0.0.1:7001", "127.0.0.1:7002"]).connect().await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(self) -> Result<Client> {
        let connect_timeout = self.connect_timeout;
        let client = self.build()?;
        let transport = client.shared.transport.clone();
        let mut probes = futures::stream::FuturesUnordered::new();
        for node in transport.nodes() {
            let transport = transport.clone();
            probes.push(async move {
                let status = transport.status_of(&node, connect_timeout * 2).await;
                (node, status)
            });
        }
        let mut failures = Vec::new();
        use futures::StreamExt;
        while let Some((node, status)) = probes.next().await {
            match status {
                Ok(status) => {
                    transport.learn(&node, &status);
                    return Ok(client);
                }
                Err(Error::Unreachable { message }) => {
                    failures.push(format!("{}: {message}", node.url))
                }
                Err(error) => failures.push(format!("{}: {error}", node.url)),
            }
        }
        Err(Error::Unreachable {
            message: failures.join("; "),
        })
    }
}

#[derive(Debug)]
struct Shared {
    transport: Arc<Transport>,
    batcher: Option<Batcher>,
    retry: RetryPolicy,
    attempt_timeout: Duration,
}

/// What the client sent so far (for tests and benchmarks).
///
/// ```no_run
/// # fn demo(client: holdfast_client::Client) {
/// let stats = client.stats();
/// println!("{} batches carried {} operations", stats.batch_rpcs, stats.batched_operations);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientStats {
    /// gRPC calls sent (batches included).
    pub rpcs: u64,
    /// `Batch` calls sent.
    pub batch_rpcs: u64,
    /// Operations carried by those batches.
    pub batched_operations: u64,
    /// Attempts that were retries.
    pub retries: u64,
}

/// One node's answer to a status probe, for `holdfastctl cluster status`.
///
/// ```no_run
/// # async fn demo(client: holdfast_client::Client) {
/// for report in client.node_reports().await {
///     println!("{}: {:?}", report.endpoint, report.status.map(|status| status.role));
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct NodeReport {
    /// The node's URL.
    pub endpoint: String,
    /// Its id, when known.
    pub node_id: Option<u64>,
    /// Its cluster status.
    pub status: Result<ClusterStatus>,
    /// Its readiness.
    pub ready: Result<Health>,
}

/// Whether a failed attempt may be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// A keyed write or a read: any retryable failure.
    Safe,
    /// An unkeyed write: only when the request certainly never left (connection refused).
    NotSent,
    /// Like [`Retry::Safe`], for calls whose one attempt may take as long as the state is
    /// large (a backup, a restore piece): an attempt may use the whole remaining deadline
    /// instead of the attempt timeout, so a big backup is not cut off and encoded again.
    SafeLong,
}

/// The answer of a booking write, whichever way it went.
enum Outcome {
    Hold(Box<pb::Hold>),
    Booking(Box<pb::Booking>),
    Cancelled(Box<pb::Cancelled>),
}

/// A handle to a Holdfast cluster. Cheap to clone; clones share connections, the leader
/// they learned and the batcher.
///
/// ```no_run
/// # async fn demo() -> holdfast_client::Result<()> {
/// use holdfast_client::{Client, ConfirmRequest, HoldRequest};
/// let client = Client::connect(["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]).await?;
/// let hold = client.hold(HoldRequest::seats("concert", "c-42", ["A-1", "A-2"])).await?;
/// let booking = client.confirm(ConfirmRequest::new(&hold.hold_id, "tok_visa")).await?;
/// println!("booked {} for {} {}", booking.booking_id, booking.amount, booking.currency);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    shared: Arc<Shared>,
    timeout: Duration,
    read: ReadOptions,
    session: Option<Arc<AtomicU64>>,
}

/// A fresh idempotency key: 128 random bits.
fn new_key() -> String {
    format!("sdk-{:032x}", rand::random::<u128>())
}

/// Whether a failure certainly happened before the request left (nothing was sent).
fn never_sent(error: &Error) -> bool {
    match error {
        Error::Unreachable { message } => {
            let message = message.to_ascii_lowercase();
            message.contains("connection refused") || message.contains("tcp connect error")
        }
        _ => false,
    }
}

fn api_error_of(error: pb::Error) -> Error {
    Error::Api(Box::new(ApiError {
        code: ErrorCode::parse(&error.code),
        details: serde_json::from_str(&error.details_json).unwrap_or(serde_json::Value::Null),
        message: error.message,
        retry_after: error
            .retry_after_seconds
            .map(|seconds| Duration::from_secs(u64::from(seconds))),
        node_id: None,
        leader_id: None,
    }))
}

fn outcome_of(result: pb::BatchResult) -> Result<Outcome> {
    use pb::batch_result::Outcome as Answer;
    match result.outcome {
        Some(Answer::Hold(hold)) => Ok(Outcome::Hold(hold)),
        Some(Answer::Booking(booking)) => Ok(Outcome::Booking(booking)),
        Some(Answer::Cancelled(cancelled)) => Ok(Outcome::Cancelled(cancelled)),
        Some(Answer::Error(error)) => Err(api_error_of(error)),
        None => Err(Error::Protocol(format!(
            "a batch result with status {} and no outcome",
            result.status
        ))),
    }
}

impl Client {
    /// A builder for `endpoints`.
    ///
    /// ```no_run
    /// # async fn demo() -> holdfast_client::Result<()> {
    /// let client = holdfast_client::Client::builder(["127.0.0.1:7001"]).batching(false).connect().await?;
    /// # Ok(()) }
    /// ```
    pub fn builder<S: AsRef<str>>(endpoints: impl IntoIterator<Item = S>) -> ClientBuilder {
        ClientBuilder::new(endpoints)
    }

    /// Connects with the default settings (see [`ClientBuilder::connect`]).
    ///
    /// ```no_run
    /// # async fn demo() -> holdfast_client::Result<()> {
    /// let client = holdfast_client::Client::connect(["127.0.0.1:7001"]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect<S: AsRef<str>>(endpoints: impl IntoIterator<Item = S>) -> Result<Client> {
        ClientBuilder::new(endpoints).connect().await
    }

    /// This client with another total deadline per call.
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// let quick = client.with_timeout(std::time::Duration::from_millis(500));
    /// let page = quick.availability("E").await?;
    /// # Ok(()) }
    /// ```
    pub fn with_timeout(&self, timeout: Duration) -> Client {
        Client {
            timeout,
            ..self.clone()
        }
    }

    /// This client reading at `read` (level and `min_index`).
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// use holdfast_client::{Consistency, ReadOptions};
    /// let fresh = client.with_read(ReadOptions::at(Consistency::Linearizable));
    /// let hold = fresh.get_hold("h_1").await?;
    /// # Ok(()) }
    /// ```
    pub fn with_read(&self, read: ReadOptions) -> Client {
        Client {
            read,
            ..self.clone()
        }
    }

    /// A session: this client remembering the highest applied index its answers reported,
    /// and reading with at least that `min_index` on whichever node answers — a follower
    /// included — so it always sees its own writes. Clones of a session share it.
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// use holdfast_client::HoldRequest;
    /// let session = client.session();
    /// let hold = session.hold(HoldRequest::seats("E", "c-1", ["A-1"])).await?;
    /// // Served by any node, but never older than the hold.
    /// assert_eq!(session.get_hold(&hold.hold_id).await?.hold_id, hold.hold_id);
    /// # Ok(()) }
    /// ```
    pub fn session(&self) -> Client {
        Client {
            session: Some(Arc::new(AtomicU64::new(0))),
            ..self.clone()
        }
    }

    /// The highest applied index this session has seen (`None` outside a session).
    ///
    /// ```no_run
    /// # fn demo(client: holdfast_client::Client) {
    /// let session = client.session();
    /// assert_eq!(session.session_index(), Some(0));
    /// # }
    /// ```
    pub fn session_index(&self) -> Option<u64> {
        self.session
            .as_ref()
            .map(|index| index.load(Ordering::Relaxed))
    }

    /// Follows the replicated outbox (API.md, *Notifications*) from outbox index
    /// `from_index` (0 or 1: the oldest event it holds) as a [`ChangeStream`] of typed
    /// [`Change`]s: `AdminService.WatchChanges`, reopened after a disconnect from the last
    /// index it yielded plus one, on whichever node answers, so nothing is skipped or
    /// repeated. Admin only. A resume point whose events were trimmed (acknowledged by every
    /// webhook) is refused with `INVALID_FIELD` rather than skipped. Nothing is sent until
    /// the stream is first polled.
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// use futures::StreamExt;
    /// use holdfast_client::ChangeData;
    /// let mut changes = client.watch_changes(1);
    /// while let Some(change) = changes.next().await {
    ///     if let ChangeData::BookingConfirmed { booking_id, customer_id, .. } = change?.data {
    ///         println!("send {customer_id} the tickets of {booking_id}");
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn watch_changes(&self, from_index: u64) -> ChangeStream {
        ChangeStream::new(self.clone(), from_index)
    }

    /// Opens `WatchChanges` from `from_index` on a node the retry loop picks.
    pub(crate) async fn open_change_stream(
        &self,
        from_index: u64,
    ) -> Result<(tonic::Streaming<pb::ChangeEvent>, Arc<Node>)> {
        self.run(
            "watch_changes",
            Route::Near,
            Retry::Safe,
            |node, _timeout, _deadline| async move {
                let mut service = admin_service(node.channel.clone());
                let request = self
                    .shared
                    .transport
                    .stream_request(pb::WatchChangesRequest { from_index });
                let (stream, meta) = self.unary(&node, service.watch_changes(request)).await?;
                Ok(((stream, node), meta))
            },
        )
        .await
    }

    /// A stream from `node` broke: leave it for a moment and start from the next node.
    pub(crate) fn stream_node_failed(&self, node: &Node) {
        node.mark_down();
        self.shared.transport.forget_leader(node);
        self.shared.transport.rotate_from(node);
    }

    /// The longest pause between retries.
    pub(crate) fn max_backoff(&self) -> Duration {
        self.shared.retry.max_backoff
    }

    /// The leader this client believes in.
    ///
    /// ```no_run
    /// # fn demo(client: holdfast_client::Client) {
    /// println!("{:?}", client.leader_id());
    /// # }
    /// ```
    pub fn leader_id(&self) -> Option<u64> {
        self.shared.transport.leader_id()
    }

    /// The URLs of the nodes this client knows (given and learned).
    ///
    /// ```no_run
    /// # fn demo(client: holdfast_client::Client) {
    /// println!("{:?}", client.endpoints());
    /// # }
    /// ```
    pub fn endpoints(&self) -> Vec<String> {
        self.shared
            .transport
            .nodes()
            .iter()
            .map(|node| node.url.clone())
            .collect()
    }

    /// What this client (and its clones) sent so far.
    ///
    /// ```no_run
    /// # fn demo(client: holdfast_client::Client) {
    /// println!("{:?}", client.stats());
    /// # }
    /// ```
    pub fn stats(&self) -> ClientStats {
        let counters = &self.shared.transport.counters;
        ClientStats {
            rpcs: counters.rpcs.load(Ordering::Relaxed),
            batch_rpcs: counters.batch_rpcs.load(Ordering::Relaxed),
            batched_operations: counters.batched_operations.load(Ordering::Relaxed),
            retries: counters.retries.load(Ordering::Relaxed),
        }
    }

    fn read_options(&self) -> ReadOptions {
        let mut read = self.read;
        if let Some(session) = &self.session {
            let seen = session.load(Ordering::Relaxed);
            if seen > 0 {
                read.min_index = Some(read.min_index.unwrap_or(0).max(seen));
            }
        }
        read
    }

    fn read_route(&self) -> Route {
        match self.read.consistency {
            Consistency::Linearizable => Route::Leader,
            _ => Route::Near,
        }
    }

    /// Runs one call: attempts on the node the route picks, retried as `retry` allows
    /// with backoff and jitter, all within the call's deadline.
    async fn run<T, F, Fut>(
        &self,
        operation: &'static str,
        route: Route,
        retry: Retry,
        mut attempt: F,
    ) -> Result<T>
    where
        F: FnMut(Arc<Node>, Duration, Instant) -> Fut,
        Fut: Future<Output = Result<(T, Meta)>>,
    {
        let span = tracing::debug_span!("holdfast", operation, attempts = tracing::field::Empty);
        let shared = &self.shared;
        async {
            let deadline = Instant::now() + self.timeout;
            let mut backoff = shared.retry.initial_backoff;
            let mut attempts = 0u32;
            loop {
                attempts += 1;
                let remaining = deadline.saturating_duration_since(Instant::now());
                let node = shared.transport.pick(route);
                let budget = if retry == Retry::SafeLong {
                    remaining
                } else {
                    remaining.min(shared.attempt_timeout)
                };
                let answer =
                    tokio::time::timeout(budget, attempt(node.clone(), budget, deadline)).await;
                let error = match answer {
                    Ok(Ok((value, meta))) => {
                        tracing::Span::current().record("attempts", attempts);
                        if let (Some(session), Some(index)) = (&self.session, meta.applied_index) {
                            session.fetch_max(index, Ordering::Relaxed);
                        }
                        return Ok(value);
                    }
                    Ok(Err(error)) => error,
                    Err(_) => {
                        node.mark_down();
                        Error::DeadlineExceeded {
                            attempts,
                            last: format!("{} did not answer within {budget:?}", node.url),
                        }
                    }
                };
                tracing::debug!(node = %node.url, attempts, error = %error, "attempt failed");
                if matches!(
                    error,
                    Error::Unreachable { .. } | Error::DeadlineExceeded { .. }
                ) {
                    shared.transport.forget_leader(&node);
                    shared.transport.rotate_from(&node);
                }
                if matches!(
                    error.code(),
                    Some(ErrorCode::NoQuorum | ErrorCode::NotReady | ErrorCode::IndexNotReached)
                ) {
                    shared.transport.rotate_from(&node);
                }
                // The node it reached has no leader it believes in (its region may be cut
                // off, or it lost its quorum): stop sending writes to it as the leader and
                // try the next node, which forwards to whichever leader it knows.
                if matches!(
                    error.code(),
                    Some(ErrorCode::NoLeader | ErrorCode::OutcomeUnknown)
                ) {
                    shared.transport.forget_leader(&node);
                    shared.transport.rotate_from(&node);
                }
                let retryable = match retry {
                    Retry::Safe | Retry::SafeLong => error.is_retryable(),
                    Retry::NotSent => never_sent(&error),
                };
                if !retryable || attempts >= shared.retry.max_attempts {
                    return Err(error);
                }
                let mut pause = rand::thread_rng().gen_range(backoff / 2..=backoff);
                if let Some(after) = match &error {
                    Error::Api(refusal) => refusal.retry_after,
                    _ => None,
                } {
                    pause = pause.max(after.min(shared.retry.max_backoff));
                }
                if Instant::now() + pause >= deadline {
                    return Err(match error {
                        Error::Api(_) => error,
                        other => Error::DeadlineExceeded {
                            attempts,
                            last: other.to_string(),
                        },
                    });
                }
                shared
                    .transport
                    .counters
                    .retries
                    .fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(pause).await;
                backoff = (backoff * 2).min(shared.retry.max_backoff);
            }
        }
        .instrument(span)
        .await
    }

    /// One unary gRPC call on `node`: metadata learned, transport failures noted.
    async fn unary<R>(
        &self,
        node: &Node,
        call: impl Future<Output = std::result::Result<tonic::Response<R>, tonic::Status>>,
    ) -> Result<(R, Meta)> {
        let transport = &self.shared.transport;
        transport.counters.rpcs.fetch_add(1, Ordering::Relaxed);
        match call.await {
            Ok(response) => {
                let meta = transport.observe(node, response.metadata());
                Ok((response.into_inner(), meta))
            }
            Err(status) => {
                transport.observe(node, status.metadata());
                let error = Error::from_status(&status);
                if matches!(error, Error::Unreachable { .. }) {
                    node.mark_down();
                }
                Err(error)
            }
        }
    }

    fn request<T>(&self, message: T, timeout: Duration) -> tonic::Request<T> {
        self.shared.transport.request(message, timeout)
    }

    fn booking_service(node: &Node) -> BookingServiceClient<tonic::transport::Channel> {
        BookingServiceClient::new(node.channel.clone())
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX)
    }

    /// A booking write: batched when batching is on and the node supports it, otherwise
    /// its own call; retried with its key either way.
    async fn write(&self, name: &'static str, operation: Operation) -> Result<Outcome> {
        self.run(
            name,
            Route::Leader,
            Retry::Safe,
            |node, timeout, deadline| {
                let operation = &operation;
                async move {
                    let transport = &self.shared.transport;
                    if let Some(batcher) = &self.shared.batcher {
                        if !transport.batch_unsupported.load(Ordering::Relaxed) {
                            // One attempt's time, as a single call gets: a batch sent to a
                            // node that does not answer (a partitioned leader) is given up
                            // after it, and the retry loop moves on to another node.
                            let attempt_deadline = deadline.min(Instant::now() + timeout);
                            match batcher.submit(operation.clone(), attempt_deadline).await {
                                Ok((result, meta)) => return outcome_of(result).map(|o| (o, meta)),
                                Err(BatchFailure::Failed(error)) => return Err(error),
                                Err(BatchFailure::Unsupported) => {}
                            }
                        }
                    }
                    let mut service = Client::booking_service(&node);
                    match operation.clone() {
                        Operation::Hold(request) => self
                            .unary(&node, service.create_hold(self.request(request, timeout)))
                            .await
                            .map(|(hold, meta)| (Outcome::Hold(Box::new(hold)), meta)),
                        Operation::Extend(request) => self
                            .unary(&node, service.extend_hold(self.request(request, timeout)))
                            .await
                            .map(|(hold, meta)| (Outcome::Hold(Box::new(hold)), meta)),
                        Operation::Confirm(request) => self
                            .unary(&node, service.confirm(self.request(request, timeout)))
                            .await
                            .map(|(booking, meta)| (Outcome::Booking(Box::new(booking)), meta)),
                        Operation::Cancel(request) => self
                            .unary(&node, service.cancel(self.request(request, timeout)))
                            .await
                            .map(|(cancelled, meta)| {
                                (Outcome::Cancelled(Box::new(cancelled)), meta)
                            }),
                    }
                }
            },
        )
        .await
    }

    // ---- booking writes ---------------------------------------------------------------

    /// Places a hold (all items or none). Retried with its idempotency key (generated when
    /// the request has none) until it succeeds, is refused, or the deadline passes.
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// use holdfast_client::HoldRequest;
    /// let hold = client.hold(HoldRequest::new("E", "c-1").seat("A-1").pool("GA", 2)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn hold(&self, mut request: HoldRequest) -> Result<Hold> {
        let key = request.idempotency_key.take().unwrap_or_else(new_key);
        let operation = Operation::Hold(request.into_proto(key)?);
        match self.write("hold", operation).await? {
            Outcome::Hold(hold) => Ok((*hold).into()),
            _ => Err(Error::Protocol("a hold answered something else".into())),
        }
    }

    /// Extends a hold.
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// use holdfast_client::ExtendRequest;
    /// let hold = client.extend(ExtendRequest::new("h_1").ttl(std::time::Duration::from_secs(300))).await?;
    /// # Ok(()) }
    /// ```
    pub async fn extend(&self, request: ExtendRequest) -> Result<Hold> {
        let key = request.idempotency_key.clone().unwrap_or_else(new_key);
        match self
            .write("extend", Operation::Extend(request.to_proto(key)))
            .await?
        {
            Outcome::Hold(hold) => Ok((*hold).into()),
            _ => Err(Error::Protocol("an extend answered something else".into())),
        }
    }

    /// Confirms a hold: the node charges the payment, then commits the booking. A retry
    /// with the same key (automatic, or yours after a lost answer) returns the original
    /// booking and never charges twice.
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// use holdfast_client::ConfirmRequest;
    /// let booking = client.confirm(ConfirmRequest::new("h_1", "tok_visa").idempotency_key("order-17")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn confirm(&self, request: ConfirmRequest) -> Result<Booking> {
        let key = request.idempotency_key.clone().unwrap_or_else(new_key);
        match self
            .write("confirm", Operation::Confirm(request.to_proto(key)))
            .await?
        {
            Outcome::Booking(booking) => Ok((*booking).into()),
            _ => Err(Error::Protocol("a confirm answered something else".into())),
        }
    }

    /// Releases a hold or cancels a booking.
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// use holdfast_client::CancelRequest;
    /// client.cancel(CancelRequest::booking("b_1", Some("customer asked"))).await?;
    /// # Ok(()) }
    /// ```
    pub async fn cancel(&self, request: CancelRequest) -> Result<Cancelled> {
        let key = request.idempotency_key.clone().unwrap_or_else(new_key);
        match self
            .write("cancel", Operation::Cancel(request.to_proto(key)))
            .await?
        {
            Outcome::Cancelled(cancelled) => (*cancelled).try_into(),
            _ => Err(Error::Protocol("a cancel answered something else".into())),
        }
    }

    // ---- reads ------------------------------------------------------------------------

    /// The full first page of an event's availability.
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// let page = client.availability("E").await?;
    /// # Ok(()) }
    /// ```
    pub async fn availability(&self, event_id: &str) -> Result<Availability> {
        self.availability_with(AvailabilityQuery::new(event_id))
            .await
    }

    /// A page of an event's availability.
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// use holdfast_client::AvailabilityQuery;
    /// let page = client.availability_with(AvailabilityQuery::new("E").section("A").limit(100)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn availability_with(&self, query: AvailabilityQuery) -> Result<Availability> {
        let message = query.to_proto(self.read_options());
        self.run(
            "availability",
            self.read_route(),
            Retry::Safe,
            |node, timeout, _| {
                let request = self.request(message.clone(), timeout);
                async move {
                    let mut service = Client::booking_service(&node);
                    self.unary(&node, service.get_availability(request)).await
                }
            },
        )
        .await
        .map(Availability::from)
    }

    /// Searches events.
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// use holdfast_client::SearchQuery;
    /// let page = client.search_events(SearchQuery { city: Some("Lyon".into()), ..SearchQuery::default() }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn search_events(&self, query: SearchQuery) -> Result<EventPage> {
        let message = query.to_proto(self.read_options());
        self.run(
            "search_events",
            self.read_route(),
            Retry::Safe,
            |node, timeout, _| {
                let request = self.request(message.clone(), timeout);
                async move {
                    let mut service = Client::booking_service(&node);
                    self.unary(&node, service.search_events(request)).await
                }
            },
        )
        .await
        .map(EventPage::from)
    }

    /// One event's metadata and summary.
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// let event = client.event("E").await?;
    /// # Ok(()) }
    /// ```
    pub async fn event(&self, event_id: &str) -> Result<EventListing> {
        let message = pb::GetEventRequest {
            event_id: event_id.to_string(),
            read: Some(self.read_options().to_proto()),
        };
        self.run(
            "event",
            self.read_route(),
            Retry::Safe,
            |node, timeout, _| {
                let request = self.request(message.clone(), timeout);
                async move {
                    let mut service = Client::booking_service(&node);
                    self.unary(&node, service.get_event(request)).await
                }
            },
        )
        .await
        .map(EventListing::from)
    }

    /// A hold by id.
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// let hold = client.get_hold("h_1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn get_hold(&self, hold_id: &str) -> Result<Hold> {
        let message = pb::GetHoldRequest {
            hold_id: hold_id.to_string(),
            read: Some(self.read_options().to_proto()),
        };
        self.run(
            "get_hold",
            self.read_route(),
            Retry::Safe,
            |node, timeout, _| {
                let request = self.request(message.clone(), timeout);
                async move {
                    let mut service = Client::booking_service(&node);
                    self.unary(&node, service.get_hold(request)).await
                }
            },
        )
        .await
        .map(Hold::from)
    }

    /// A booking by id.
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// let booking = client.booking("b_1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn booking(&self, booking_id: &str) -> Result<Booking> {
        let message = pb::GetBookingRequest {
            booking_id: booking_id.to_string(),
            read: Some(self.read_options().to_proto()),
        };
        self.run(
            "booking",
            self.read_route(),
            Retry::Safe,
            |node, timeout, _| {
                let request = self.request(message.clone(), timeout);
                async move {
                    let mut service = Client::booking_service(&node);
                    self.unary(&node, service.get_booking(request)).await
                }
            },
        )
        .await
        .map(Booking::from)
    }

    /// A page of a customer's bookings, newest first (`limit` ≤ 100, default 20).
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// let first = client.history("c-1", Some(10), None).await?;
    /// if let Some(after) = first.next_after {
    ///     let second = client.history("c-1", Some(10), Some(&after)).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn history(
        &self,
        customer_id: &str,
        limit: Option<u32>,
        after: Option<&str>,
    ) -> Result<BookingPage> {
        let message = pb::CustomerBookingsRequest {
            customer_id: customer_id.to_string(),
            limit,
            after: after.map(str::to_string),
            read: Some(self.read_options().to_proto()),
        };
        self.run(
            "history",
            self.read_route(),
            Retry::Safe,
            |node, timeout, _| {
                let request = self.request(message.clone(), timeout);
                async move {
                    let mut service = Client::booking_service(&node);
                    self.unary(&node, service.customer_bookings(request)).await
                }
            },
        )
        .await
        .map(BookingPage::from)
    }

    /// Readiness of some node (a leader known and caught up).
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// println!("{}", client.ready().await?.status);
    /// # Ok(()) }
    /// ```
    pub async fn ready(&self) -> Result<Health> {
        self.run("ready", Route::Near, Retry::Safe, |node, timeout, _| {
            let request = self.request(pb::HealthRequest {}, timeout);
            async move {
                let mut service = Client::booking_service(&node);
                self.unary(&node, service.ready(request)).await
            }
        })
        .await
        .map(|health| Health {
            status: health.status,
            node_id: health.node_id,
        })
    }

    // ---- admin inventory ----------------------------------------------------------------

    async fn admin<F, Fut>(&self, name: &'static str, call: F) -> Result<EventChange>
    where
        F: Fn(AdminServiceClient<tonic::transport::Channel>, Duration) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<pb::EventChange>, tonic::Status>>,
    {
        self.run(name, Route::Leader, Retry::NotSent, |node, timeout, _| {
            let service = AdminServiceClient::new(node.channel.clone());
            let call = call(service, timeout);
            async move { self.unary(&node, call).await }
        })
        .await
        .map(EventChange::from)
    }

    /// Creates an event with its inventory (admin). Not keyed by the API, so retried only
    /// when the request certainly never reached a node.
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// use holdfast_client::{NewEvent, PoolSpec};
    /// let event = NewEvent { pools: vec![PoolSpec { id: "GA".into(), capacity: 500, price: 2500 }], ..NewEvent::new("E", "Fair", "EUR") };
    /// client.create_event(event).await?;
    /// # Ok(()) }
    /// ```
    pub async fn create_event(&self, event: NewEvent) -> Result<EventChange> {
        let message = event.to_proto();
        self.admin("create_event", |mut service, timeout| {
            let request = self.request(message.clone(), timeout);
            async move { service.create_event(request).await }
        })
        .await
    }

    /// Adds seats to an event (admin).
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// use holdfast_client::SeatBlock;
    /// client.add_seats("E", &[], &[SeatBlock { section: "B".into(), rows: vec!["1".into()], seats_per_row: 20, price: 3000 }]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn add_seats(
        &self,
        event_id: &str,
        seats: &[SeatSpec],
        blocks: &[SeatBlock],
    ) -> Result<EventChange> {
        let message = add_seats_proto(event_id, seats, blocks);
        self.admin("add_seats", |mut service, timeout| {
            let request = self.request(message.clone(), timeout);
            async move { service.add_seats(request).await }
        })
        .await
    }

    /// Adds pools to an event (admin).
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// use holdfast_client::PoolSpec;
    /// client.add_pools("E", &[PoolSpec { id: "VIP".into(), capacity: 50, price: 9000 }]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn add_pools(&self, event_id: &str, pools: &[PoolSpec]) -> Result<EventChange> {
        let message = pb::AddPoolsRequest {
            event_id: event_id.to_string(),
            pools: pool_specs(pools),
        };
        self.admin("add_pools", |mut service, timeout| {
            let request = self.request(message.clone(), timeout);
            async move { service.add_pools(request).await }
        })
        .await
    }

    /// Sets a pool's capacity (never below held + booked) (admin).
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// client.set_pool_capacity("E", "GA", 600).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_pool_capacity(
        &self,
        event_id: &str,
        pool_id: &str,
        capacity: u64,
    ) -> Result<EventChange> {
        let message = pb::SetPoolCapacityRequest {
            event_id: event_id.to_string(),
            pool_id: pool_id.to_string(),
            capacity: i64::try_from(capacity).unwrap_or(i64::MAX),
        };
        self.admin("set_pool_capacity", |mut service, timeout| {
            let request = self.request(message.clone(), timeout);
            async move { service.set_pool_capacity(request).await }
        })
        .await
    }

    /// Removes a seat that is neither held nor booked (admin).
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// client.remove_seat("E", "A-1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn remove_seat(&self, event_id: &str, seat_id: &str) -> Result<EventChange> {
        let message = pb::RemoveSeatRequest {
            event_id: event_id.to_string(),
            seat_id: seat_id.to_string(),
        };
        self.admin("remove_seat", |mut service, timeout| {
            let request = self.request(message.clone(), timeout);
            async move { service.remove_seat(request).await }
        })
        .await
    }

    /// Removes a pool with nothing held or booked (admin).
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// client.remove_pool("E", "GA").await?;
    /// # Ok(()) }
    /// ```
    pub async fn remove_pool(&self, event_id: &str, pool_id: &str) -> Result<EventChange> {
        let message = pb::RemovePoolRequest {
            event_id: event_id.to_string(),
            pool_id: pool_id.to_string(),
        };
        self.admin("remove_pool", |mut service, timeout| {
            let request = self.request(message.clone(), timeout);
            async move { service.remove_pool(request).await }
        })
        .await
    }

    // ---- cluster ------------------------------------------------------------------------

    /// The cluster status as some node sees it (and what the client learns from it).
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// let status = client.cluster_status().await?;
    /// println!("leader {:?}, voters {:?}", status.leader_id, status.voters());
    /// # Ok(()) }
    /// ```
    pub async fn cluster_status(&self) -> Result<ClusterStatus> {
        let transport = self.shared.transport.clone();
        self.run(
            "cluster_status",
            Route::Any,
            Retry::Safe,
            |node, timeout, _| {
                let transport = transport.clone();
                async move {
                    let status = transport.status_of(&node, timeout).await?;
                    transport.learn(&node, &status);
                    Ok((status, Meta::default()))
                }
            },
        )
        .await
    }

    /// Every known node's status and readiness, asked at once (one failing node does not
    /// hide the others).
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) {
    /// for report in client.node_reports().await {
    ///     println!("{} {:?}", report.endpoint, report.ready.is_ok());
    /// }
    /// # }
    /// ```
    pub async fn node_reports(&self) -> Vec<NodeReport> {
        // Learn the members first, so nodes not given as endpoints are asked too.
        let _ = self.cluster_status().await;
        let transport = self.shared.transport.clone();
        let budget = self.timeout.min(self.shared.attempt_timeout);
        let probes = transport.nodes().into_iter().map(|node| {
            let transport = transport.clone();
            async move {
                let status = transport.status_of(&node, budget).await;
                let ready = async {
                    let request = transport.request(pb::HealthRequest {}, budget);
                    let answer =
                        tokio::time::timeout(budget, Client::booking_service(&node).ready(request))
                            .await;
                    match answer {
                        Ok(Ok(response)) => {
                            let health = response.into_inner();
                            Ok(Health {
                                status: health.status,
                                node_id: health.node_id,
                            })
                        }
                        Ok(Err(status)) => Err(Error::from_status(&status)),
                        Err(_) => Err(Error::DeadlineExceeded {
                            attempts: 1,
                            last: format!("{} did not answer within {budget:?}", node.url),
                        }),
                    }
                }
                .await;
                NodeReport {
                    endpoint: node.url.clone(),
                    node_id: status
                        .as_ref()
                        .map(|status| status.node_id)
                        .ok()
                        .or(node.id()),
                    status,
                    ready,
                }
            }
        });
        let mut reports = futures::future::join_all(probes).await;
        reports.sort_by_key(|report| report.node_id.unwrap_or(u64::MAX));
        reports
    }

    async fn cluster_change<F, Fut>(&self, name: &'static str, call: F) -> Result<ClusterStatus>
    where
        F: Fn(ClusterServiceClient<tonic::transport::Channel>, Duration) -> Fut,
        Fut: Future<
            Output = std::result::Result<tonic::Response<pb::ClusterStatusResponse>, tonic::Status>,
        >,
    {
        self.run(name, Route::Leader, Retry::NotSent, |node, timeout, _| {
            let call = call(ClusterServiceClient::new(node.channel.clone()), timeout);
            async move { self.unary(&node, call).await }
        })
        .await
        .map(ClusterStatus::from)
    }

    /// Initialises a fresh cluster with its first members (sent to one node).
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// use holdfast_client::Member;
    /// let members = (1..=3).map(|id| Member { id, raft_addr: format!("10.0.0.{id}:7100"), http_addr: format!("10.0.0.{id}:7000"), region: "eu".into(), voter: true, lag: None, last_contact_ms: None }).collect();
    /// client.init_cluster(members).await?;
    /// # Ok(()) }
    /// ```
    pub async fn init_cluster(&self, members: Vec<Member>) -> Result<ClusterStatus> {
        let message = pb::InitRequest {
            members: members.iter().map(Member::to_proto).collect(),
        };
        self.cluster_change("init_cluster", |mut service, timeout| {
            let request = self.request(message.clone(), timeout);
            async move { service.init(request).await }
        })
        .await
    }

    /// Adds a learner; returns once it has caught up.
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// use holdfast_client::Member;
    /// client.add_learner(Member { id: 4, raft_addr: "10.0.0.4:7100".into(), http_addr: "10.0.0.4:7000".into(), region: "eu".into(), voter: false, lag: None, last_contact_ms: None }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn add_learner(&self, member: Member) -> Result<ClusterStatus> {
        let message = pb::AddLearnerRequest {
            learner: Some(member.to_proto()),
        };
        self.cluster_change("add_learner", |mut service, timeout| {
            let request = self.request(message.clone(), timeout);
            async move { service.add_learner(request).await }
        })
        .await
    }

    /// Sets the voters (learners named here are promoted).
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// client.change_membership(vec![1, 2, 3, 4]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn change_membership(&self, voters: Vec<u64>) -> Result<ClusterStatus> {
        let message = pb::ChangeMembershipRequest { voters };
        self.cluster_change("change_membership", |mut service, timeout| {
            let request = self.request(message.clone(), timeout);
            async move { service.change_membership(request).await }
        })
        .await
    }

    /// Removes a node (its id is never reused).
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// client.remove_node(4).await?;
    /// # Ok(()) }
    /// ```
    pub async fn remove_node(&self, node_id: u64) -> Result<ClusterStatus> {
        let message = pb::RemoveNodeRequest { id: node_id };
        self.cluster_change("remove_node", |mut service, timeout| {
            let request = self.request(message, timeout);
            async move { service.remove_node(request).await }
        })
        .await
    }

    /// Hands leadership to voter `node_id` (a planned move, e.g. before taking the leader
    /// down or to bring it to another region). Writes pause for about a second while the
    /// leader makes room; answers once `node_id` leads, or
    /// [`ErrorCode::LeaderTransferFailed`] naming the leader there is.
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// let status = client.transfer_leader(2).await?;
    /// assert_eq!(status.leader_id, Some(2));
    /// # Ok(()) }
    /// ```
    pub async fn transfer_leader(&self, node_id: u64) -> Result<ClusterStatus> {
        let message = pb::TransferLeaderRequest { node_id };
        self.cluster_change("transfer_leader", |mut service, timeout| {
            let request = self.request(message, timeout);
            async move { service.transfer_leader(request).await }
        })
        .await
    }

    /// Makes the node the client talks to take a snapshot now.
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// let taken = client.snapshot().await?;
    /// # Ok(()) }
    /// ```
    pub async fn snapshot(&self) -> Result<SnapshotTaken> {
        self.run(
            "snapshot",
            Route::Any,
            Retry::NotSent,
            |node, timeout, _| {
                let request = self.request(pb::SnapshotRequest {}, timeout);
                async move {
                    let mut service = ClusterServiceClient::new(node.channel.clone());
                    self.unary(&node, service.snapshot(request)).await
                }
            },
        )
        .await
        .map(|taken| SnapshotTaken {
            node_id: taken.node_id,
            snapshot_index: taken.snapshot_index,
            build_ms: taken.build_ms,
        })
    }

    /// A consistent backup of the replicated state: everything acknowledged before the
    /// call is in it. Any node answers (a follower confirms with the leader first). The
    /// whole backup is held in memory; one attempt may use the client's whole deadline
    /// (not just its attempt timeout), so give the client a deadline long enough for the
    /// state's size.
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// let backup = client.backup().await?;
    /// std::fs::write("holdfast.backup", backup.file_bytes()).expect("written");
    /// println!("index {} sha256 {}", backup.index(), backup.sha256_hex());
    /// # Ok(()) }
    /// ```
    pub async fn backup(&self) -> Result<Backup> {
        let file = self
            .run("backup", Route::Any, Retry::SafeLong, |node, timeout, _| {
                let request = self.request(pb::BackupRequest {}, timeout);
                async move {
                    let mut service = ClusterServiceClient::new(node.channel.clone());
                    let (mut stream, meta) = self.unary(&node, service.backup(request)).await?;
                    let mut file = Vec::new();
                    while let Some(piece) = stream.message().await.map_err(|status| {
                        let error = Error::from_status(&status);
                        if matches!(error, Error::Unreachable { .. }) {
                            node.mark_down();
                        }
                        error
                    })? {
                        file.extend_from_slice(&piece.data);
                    }
                    Ok((file, meta))
                }
            })
            .await?;
        Backup::from_file_bytes(file)
    }

    /// Restores `backup` into this cluster, which must be empty (freshly initialised, no
    /// events): its state bytes go to the leader in pieces of 1 MiB, in order, and the last
    /// piece replaces the state at once after the cluster checked the whole against the
    /// backup's checksum. Each piece is retried on its own (pieces are idempotent); a
    /// refusal (`RESTORE_REFUSED`: the cluster holds data) stops it with nothing changed.
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// let bytes = std::fs::read("holdfast.backup").expect("readable");
    /// let backup = holdfast_client::Backup::from_file_bytes(bytes)?;
    /// let restored = client.restore(&backup).await?;
    /// assert_eq!(restored.total_bytes, backup.state_bytes().len() as u64);
    /// # Ok(()) }
    /// ```
    pub async fn restore(&self, backup: &Backup) -> Result<Restored> {
        let restore_id: u64 = rand::thread_rng().gen();
        let state = backup.state_bytes();
        let total_bytes = state.len() as u64;
        let mut offset = 0usize;
        loop {
            let end = (offset + RESTORE_PIECE_BYTES).min(state.len());
            let message = pb::RestoreRequest {
                restore_id,
                offset: offset as u64,
                total_bytes,
                sha256: backup.header.sha256.to_vec(),
                data: state[offset..end].to_vec(),
            };
            let progress = self
                .run(
                    "restore",
                    Route::Leader,
                    Retry::SafeLong,
                    |node, timeout, _| {
                        let request = self.request(message.clone(), timeout);
                        async move {
                            let mut service = ClusterServiceClient::new(node.channel.clone());
                            self.unary(&node, service.restore(request)).await
                        }
                    },
                )
                .await?;
            if progress.done {
                return Ok(Restored {
                    restore_id,
                    total_bytes,
                    index: progress.index,
                });
            }
            if progress.received_bytes != end as u64 {
                return Err(Error::Protocol(format!(
                    "the cluster staged {} bytes after a piece ending at {end}",
                    progress.received_bytes
                )));
            }
            offset = end;
        }
    }

    /// A client for only the node at `endpoint` (same key and settings, no failover), for
    /// operator calls aimed at one node.
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// let node = client.only("127.0.0.1:7002")?;
    /// node.snapshot().await?;
    /// # Ok(()) }
    /// ```
    pub fn only(&self, endpoint: &str) -> Result<Client> {
        let url = normalise(endpoint)?;
        let transport = &self.shared.transport;
        Ok(Client {
            shared: Arc::new(Shared {
                transport: Arc::new(transport.only(&url)?),
                batcher: None,
                retry: self.shared.retry,
                attempt_timeout: self.shared.attempt_timeout,
            }),
            timeout: self.timeout,
            read: self.read,
            session: None,
        })
    }
}
