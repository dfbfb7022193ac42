//! Typed errors mirroring the API's stable codes (API.md, "Errors").
//!
//! A refusal by the cluster is an [`Error::Api`] carrying an [`ApiError`] whose
//! [`ErrorCode`] is the stable UPPER_SNAKE code the node answered; failures to reach the
//! cluster at all are [`Error::Unreachable`] and [`Error::DeadlineExceeded`]; a request the
//! SDK itself finds malformed before sending is [`Error::InvalidArgument`]. The split is
//! what `holdfastctl` turns into its exit codes (3, 4 and 2).

use std::fmt;
use std::time::Duration;

use tonic::metadata::MetadataMap;

/// The stable error codes of API.md, plus [`ErrorCode::Other`] for codes a newer node may
/// add (kept verbatim so nothing is lost).
///
/// ```
/// use holdfast_client::ErrorCode;
/// assert_eq!(ErrorCode::parse("SEAT_UNAVAILABLE"), ErrorCode::SeatUnavailable);
/// assert_eq!(ErrorCode::SeatUnavailable.as_str(), "SEAT_UNAVAILABLE");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `INVALID_JSON`: the node could not parse the request.
    InvalidJson,
    /// `INVALID_FIELD`: a field is missing or malformed (the details name it).
    InvalidField,
    /// `INVALID_QUANTITY`: a pool quantity or count is out of range.
    InvalidQuantity,
    /// `INVALID_TTL`: a hold's time to live is out of range.
    InvalidTtl,
    /// `TOO_MANY_ITEMS`: too many items in a hold or operations in a batch.
    TooManyItems,
    /// `UNAUTHENTICATED`: no or an unknown bearer key.
    Unauthenticated,
    /// `FORBIDDEN`: the key may not do this.
    Forbidden,
    /// `PAYMENT_DECLINED`: the payment provider declined the charge.
    PaymentDeclined,
    /// `EVENT_NOT_FOUND`.
    EventNotFound,
    /// `SEAT_NOT_FOUND`.
    SeatNotFound,
    /// `POOL_NOT_FOUND`.
    PoolNotFound,
    /// `HOLD_NOT_FOUND`.
    HoldNotFound,
    /// `BOOKING_NOT_FOUND`.
    BookingNotFound,
    /// `NODE_NOT_FOUND`.
    NodeNotFound,
    /// `ROUTE_NOT_FOUND`: the node does not know the call (an older node).
    RouteNotFound,
    /// `SEAT_UNAVAILABLE`: a seat is held or booked by someone else.
    SeatUnavailable,
    /// `POOL_EXHAUSTED`: a pool has fewer units free than asked.
    PoolExhausted,
    /// `NO_ADJACENT_SEATS`: best-available found no adjacent seats.
    NoAdjacentSeats,
    /// `HOLD_NOT_ACTIVE`: the hold was already confirmed or released.
    HoldNotActive,
    /// `HOLD_LIMIT_REACHED`: the customer has too many active holds.
    HoldLimitReached,
    /// `ITEM_IN_USE`: the seat or pool is held or booked and cannot be removed.
    ItemInUse,
    /// `EVENT_EXISTS`: an event with this id exists.
    EventExists,
    /// `IDEMPOTENCY_KEY_REUSED`: the key was used before with a different request.
    IdempotencyKeyReused,
    /// `ALREADY_INITIALIZED`: the cluster was initialised before.
    AlreadyInitialized,
    /// `MEMBERSHIP_REFUSED`: the membership change would be unsafe or is invalid.
    MembershipRefused,
    /// `HOLD_EXPIRED`: the hold's time passed.
    HoldExpired,
    /// `BODY_TOO_LARGE`.
    BodyTooLarge,
    /// `RATE_LIMITED`: slow down (see [`ApiError::retry_after`]).
    RateLimited,
    /// `NO_LEADER`: the cluster has no leader right now.
    NoLeader,
    /// `NO_QUORUM`: the leader cannot reach a majority.
    NoQuorum,
    /// `NOT_READY`: the node is starting or catching up.
    NotReady,
    /// `INDEX_NOT_REACHED`: the node did not apply the requested `min_index` in time.
    IndexNotReached,
    /// `OVERLOADED`: the node sheds load (see [`ApiError::retry_after`]).
    Overloaded,
    /// `OUTCOME_UNKNOWN`: the write may or may not have committed; retry with the same key.
    OutcomeUnknown,
    /// `LEADER_TRANSFER_FAILED`: leadership did not move to the voter asked for.
    LeaderTransferFailed,
    /// `OUTBOX_FULL`: a webhook lags and the cluster's outbox has no room for the events
    /// this write would add; nothing was stored, retry with the same key later.
    OutboxFull,
    /// `RESTORE_REFUSED`: a backup is restored only into an empty cluster, in order and
    /// whole (the message says which).
    RestoreRefused,
    /// `REFUND_NOT_FOUND`.
    RefundNotFound,
    /// `WEBHOOK_NOT_FOUND`.
    WebhookNotFound,
    /// `METHOD_NOT_ALLOWED`: a known path asked with another method.
    MethodNotAllowed,
    /// `BOOKING_NOT_ACTIVE`: the booking was cancelled already.
    BookingNotActive,
    /// `REFUND_NOT_PENDING`: the refund was paid already.
    RefundNotPending,
    /// `REFUND_ATTEMPT_STALE`: another refund attempt was recorded first.
    RefundAttemptStale,
    /// `PAYMENT_AMOUNT_MISMATCH`: the charge does not match the hold's amount.
    PaymentAmountMismatch,
    /// `ITEM_EXISTS`: seats or pools with these ids exist already.
    ItemExists,
    /// `CAPACITY_BELOW_USAGE`: a pool's capacity cannot go below what is held and booked.
    CapacityBelowUsage,
    /// `EVENT_CANCELLED`: the event was cancelled; nothing of it can be held.
    EventCancelled,
    /// `LIMIT_REACHED`: a replicated inventory limit was reached.
    LimitReached,
    /// `PAYMENT_UNAVAILABLE`: the payment provider could not be reached; retry the confirm with the same key.
    PaymentUnavailable,
    /// `DATA_DIR_NODE_MISMATCH`: a node started on another node's data directory.
    DataDirNodeMismatch,
    /// `DATA_DIR_CLUSTER_MISMATCH`: a node started on another cluster's data directory.
    DataDirClusterMismatch,
    /// `UNSUPPORTED_FORMAT`: data of a format this version cannot read.
    UnsupportedFormat,
    /// `CORRUPT_DATA`: stored data that does not decode.
    CorruptData,
    /// `STORAGE_FAILURE`: the disk refused a read or a write.
    StorageFailure,
    /// `NOT_LEADER`: a Raft call reached a node that is not the leader.
    NotLeader,
    /// `RAFT_STOPPED`: Raft stopped on a fatal error.
    RaftStopped,
    /// `TRANSPORT_FAILURE`: a peer could not be reached.
    TransportFailure,
    /// `INVALID_CONFIG`: the node's configuration is invalid.
    InvalidConfig,
    /// `PEER_TLS_INVALID`: the peer TLS files cannot be read or do not fit together.
    PeerTlsInvalid,
    /// `INTERNAL`: the node failed (500); for a write the outcome is unknown.
    Internal,
    /// `ALREADY_INITIALIZED`-style codes this SDK does not know yet, verbatim.
    Other(String),
}

impl ErrorCode {
    /// The code of an UPPER_SNAKE string; unknown codes become [`ErrorCode::Other`].
    ///
    /// ```
    /// use holdfast_client::ErrorCode;
    /// assert_eq!(ErrorCode::parse("SOMETHING_NEW"), ErrorCode::Other("SOMETHING_NEW".into()));
    /// ```
    pub fn parse(code: &str) -> ErrorCode {
        use ErrorCode::*;
        match code {
            "INVALID_JSON" => InvalidJson,
            "INVALID_FIELD" => InvalidField,
            "INVALID_QUANTITY" => InvalidQuantity,
            "INVALID_TTL" => InvalidTtl,
            "TOO_MANY_ITEMS" => TooManyItems,
            "UNAUTHENTICATED" => Unauthenticated,
            "FORBIDDEN" => Forbidden,
            "PAYMENT_DECLINED" => PaymentDeclined,
            "EVENT_NOT_FOUND" => EventNotFound,
            "SEAT_NOT_FOUND" => SeatNotFound,
            "POOL_NOT_FOUND" => PoolNotFound,
            "HOLD_NOT_FOUND" => HoldNotFound,
            "BOOKING_NOT_FOUND" => BookingNotFound,
            "NODE_NOT_FOUND" => NodeNotFound,
            "ROUTE_NOT_FOUND" => RouteNotFound,
            "SEAT_UNAVAILABLE" => SeatUnavailable,
            "POOL_EXHAUSTED" => PoolExhausted,
            "NO_ADJACENT_SEATS" => NoAdjacentSeats,
            "HOLD_NOT_ACTIVE" => HoldNotActive,
            "HOLD_LIMIT_REACHED" => HoldLimitReached,
            "ITEM_IN_USE" => ItemInUse,
            "EVENT_EXISTS" => EventExists,
            "IDEMPOTENCY_KEY_REUSED" => IdempotencyKeyReused,
            "ALREADY_INITIALIZED" => AlreadyInitialized,
            "MEMBERSHIP_REFUSED" => MembershipRefused,
            "HOLD_EXPIRED" => HoldExpired,
            "BODY_TOO_LARGE" => BodyTooLarge,
            "RATE_LIMITED" => RateLimited,
            "NO_LEADER" => NoLeader,
            "NO_QUORUM" => NoQuorum,
            "NOT_READY" => NotReady,
            "INDEX_NOT_REACHED" => IndexNotReached,
            "OVERLOADED" => Overloaded,
            "OUTCOME_UNKNOWN" => OutcomeUnknown,
            "LEADER_TRANSFER_FAILED" => LeaderTransferFailed,
            "OUTBOX_FULL" => OutboxFull,
            "RESTORE_REFUSED" => RestoreRefused,
            "REFUND_NOT_FOUND" => RefundNotFound,
            "WEBHOOK_NOT_FOUND" => WebhookNotFound,
            "METHOD_NOT_ALLOWED" => MethodNotAllowed,
            "BOOKING_NOT_ACTIVE" => BookingNotActive,
            "REFUND_NOT_PENDING" => RefundNotPending,
            "REFUND_ATTEMPT_STALE" => RefundAttemptStale,
            "PAYMENT_AMOUNT_MISMATCH" => PaymentAmountMismatch,
            "ITEM_EXISTS" => ItemExists,
            "CAPACITY_BELOW_USAGE" => CapacityBelowUsage,
            "EVENT_CANCELLED" => EventCancelled,
            "LIMIT_REACHED" => LimitReached,
            "PAYMENT_UNAVAILABLE" => PaymentUnavailable,
            "DATA_DIR_NODE_MISMATCH" => DataDirNodeMismatch,
            "DATA_DIR_CLUSTER_MISMATCH" => DataDirClusterMismatch,
            "UNSUPPORTED_FORMAT" => UnsupportedFormat,
            "CORRUPT_DATA" => CorruptData,
            "STORAGE_FAILURE" => StorageFailure,
            "NOT_LEADER" => NotLeader,
            "RAFT_STOPPED" => RaftStopped,
            "TRANSPORT_FAILURE" => TransportFailure,
            "INVALID_CONFIG" => InvalidConfig,
            "PEER_TLS_INVALID" => PeerTlsInvalid,
            "INTERNAL" => Internal,
            other => Other(other.to_string()),
        }
    }

    /// The stable UPPER_SNAKE string of the code.
    ///
    /// ```
    /// use holdfast_client::ErrorCode;
    /// assert_eq!(ErrorCode::HoldExpired.as_str(), "HOLD_EXPIRED");
    /// ```
    pub fn as_str(&self) -> &str {
        use ErrorCode::*;
        match self {
            InvalidJson => "INVALID_JSON",
            InvalidField => "INVALID_FIELD",
            InvalidQuantity => "INVALID_QUANTITY",
            InvalidTtl => "INVALID_TTL",
            TooManyItems => "TOO_MANY_ITEMS",
            Unauthenticated => "UNAUTHENTICATED",
            Forbidden => "FORBIDDEN",
            PaymentDeclined => "PAYMENT_DECLINED",
            EventNotFound => "EVENT_NOT_FOUND",
            SeatNotFound => "SEAT_NOT_FOUND",
            PoolNotFound => "POOL_NOT_FOUND",
            HoldNotFound => "HOLD_NOT_FOUND",
            BookingNotFound => "BOOKING_NOT_FOUND",
            NodeNotFound => "NODE_NOT_FOUND",
            RouteNotFound => "ROUTE_NOT_FOUND",
            SeatUnavailable => "SEAT_UNAVAILABLE",
            PoolExhausted => "POOL_EXHAUSTED",
            NoAdjacentSeats => "NO_ADJACENT_SEATS",
            HoldNotActive => "HOLD_NOT_ACTIVE",
            HoldLimitReached => "HOLD_LIMIT_REACHED",
            ItemInUse => "ITEM_IN_USE",
            EventExists => "EVENT_EXISTS",
            IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            AlreadyInitialized => "ALREADY_INITIALIZED",
            MembershipRefused => "MEMBERSHIP_REFUSED",
            HoldExpired => "HOLD_EXPIRED",
            BodyTooLarge => "BODY_TOO_LARGE",
            RateLimited => "RATE_LIMITED",
            NoLeader => "NO_LEADER",
            NoQuorum => "NO_QUORUM",
            NotReady => "NOT_READY",
            IndexNotReached => "INDEX_NOT_REACHED",
            Overloaded => "OVERLOADED",
            OutcomeUnknown => "OUTCOME_UNKNOWN",
            LeaderTransferFailed => "LEADER_TRANSFER_FAILED",
            OutboxFull => "OUTBOX_FULL",
            RestoreRefused => "RESTORE_REFUSED",
            RefundNotFound => "REFUND_NOT_FOUND",
            WebhookNotFound => "WEBHOOK_NOT_FOUND",
            MethodNotAllowed => "METHOD_NOT_ALLOWED",
            BookingNotActive => "BOOKING_NOT_ACTIVE",
            RefundNotPending => "REFUND_NOT_PENDING",
            RefundAttemptStale => "REFUND_ATTEMPT_STALE",
            PaymentAmountMismatch => "PAYMENT_AMOUNT_MISMATCH",
            ItemExists => "ITEM_EXISTS",
            CapacityBelowUsage => "CAPACITY_BELOW_USAGE",
            EventCancelled => "EVENT_CANCELLED",
            LimitReached => "LIMIT_REACHED",
            PaymentUnavailable => "PAYMENT_UNAVAILABLE",
            DataDirNodeMismatch => "DATA_DIR_NODE_MISMATCH",
            DataDirClusterMismatch => "DATA_DIR_CLUSTER_MISMATCH",
            UnsupportedFormat => "UNSUPPORTED_FORMAT",
            CorruptData => "CORRUPT_DATA",
            StorageFailure => "STORAGE_FAILURE",
            NotLeader => "NOT_LEADER",
            RaftStopped => "RAFT_STOPPED",
            TransportFailure => "TRANSPORT_FAILURE",
            InvalidConfig => "INVALID_CONFIG",
            PeerTlsInvalid => "PEER_TLS_INVALID",
            Internal => "INTERNAL",
            Other(code) => code,
        }
    }

    /// Whether the answer was given before the request could change anything, or says the
    /// outcome is unknown, so that a retry with the same idempotency key is safe and may
    /// succeed (API.md's 429 and 503 codes).
    ///
    /// ```
    /// use holdfast_client::ErrorCode;
    /// assert!(ErrorCode::NoLeader.is_retryable());
    /// assert!(!ErrorCode::SeatUnavailable.is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        use ErrorCode::*;
        matches!(
            self,
            RateLimited
                | NoLeader
                | NoQuorum
                | NotReady
                | IndexNotReached
                | Overloaded
                | OutcomeUnknown
                | OutboxFull
                | PaymentUnavailable
                | TransportFailure
        )
    }

    /// The HTTP status API.md gives the code (500 for unknown codes), which is also the
    /// `status` of a batch result.
    ///
    /// ```
    /// use holdfast_client::ErrorCode;
    /// assert_eq!(ErrorCode::HoldExpired.http_status(), 410);
    /// ```
    pub fn http_status(&self) -> u16 {
        use ErrorCode::*;
        match self {
            InvalidJson | InvalidField | InvalidQuantity | InvalidTtl | TooManyItems => 400,
            Unauthenticated => 401,
            Forbidden => 403,
            PaymentDeclined => 402,
            EventNotFound | SeatNotFound | PoolNotFound | HoldNotFound | BookingNotFound
            | RefundNotFound | WebhookNotFound | NodeNotFound | RouteNotFound => 404,
            MethodNotAllowed => 405,
            SeatUnavailable
            | PoolExhausted
            | NoAdjacentSeats
            | HoldNotActive
            | HoldLimitReached
            | BookingNotActive
            | RefundNotPending
            | RefundAttemptStale
            | PaymentAmountMismatch
            | ItemInUse
            | ItemExists
            | CapacityBelowUsage
            | EventExists
            | EventCancelled
            | LimitReached
            | IdempotencyKeyReused
            | AlreadyInitialized
            | MembershipRefused
            | RestoreRefused => 409,
            HoldExpired => 410,
            BodyTooLarge => 413,
            RateLimited => 429,
            NoLeader | NoQuorum | NotReady | IndexNotReached | Overloaded | OutcomeUnknown
            | LeaderTransferFailed | OutboxFull | PaymentUnavailable | NotLeader
            | TransportFailure => 503,
            DataDirNodeMismatch
            | DataDirClusterMismatch
            | UnsupportedFormat
            | CorruptData
            | StorageFailure
            | RaftStopped
            | InvalidConfig
            | PeerTlsInvalid
            | Internal
            | Other(_) => 500,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A refusal by the cluster: API.md's error body plus where it came from.
///
/// ```no_run
/// # async fn demo(client: holdfast_client::Client) {
/// use holdfast_client::{Error, ErrorCode, HoldRequest};
/// match client.hold(HoldRequest::seats("E", "c-1", ["A-1"])).await {
///     Err(Error::Api(error)) if error.code == ErrorCode::SeatUnavailable => {
///         println!("taken: {}", error.details["unavailable"]);
///     }
///     other => println!("{other:?}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The stable code.
    pub code: ErrorCode,
    /// Human text from the node.
    pub message: String,
    /// API.md's `details` object (`null` when the node gave none).
    pub details: serde_json::Value,
    /// For 429 and 503 answers: when the node suggests retrying.
    pub retry_after: Option<Duration>,
    /// The node that answered, when it said.
    pub node_id: Option<u64>,
    /// The leader the answering node knew of, when it said.
    pub leader_id: Option<u64>,
}

impl ApiError {
    /// API.md's JSON error body, `{"error": {"code", "message", "details"}}`.
    ///
    /// ```
    /// # use holdfast_client::{ApiError, ErrorCode};
    /// let error = ApiError::new(ErrorCode::HoldExpired, "gone");
    /// assert_eq!(error.to_json()["error"]["code"], "HOLD_EXPIRED");
    /// ```
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"error": {
            "code": self.code.as_str(),
            "message": self.message,
            "details": self.details,
        }})
    }

    /// An error with a code and message and nothing else (for tests and fakes).
    ///
    /// ```
    /// # use holdfast_client::{ApiError, ErrorCode};
    /// let error = ApiError::new(ErrorCode::Overloaded, "busy");
    /// assert!(error.code.is_retryable());
    /// ```
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            details: serde_json::Value::Null,
            retry_after: None,
            node_id: None,
            leader_id: None,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.code, self.message)?;
        if !self.details.is_null() && self.details != serde_json::json!({}) {
            write!(formatter, " {}", self.details)?;
        }
        Ok(())
    }
}

/// Everything a call of the SDK can fail with.
///
/// ```no_run
/// # async fn demo(client: holdfast_client::Client) {
/// use holdfast_client::Error;
/// match client.cluster_status().await {
///     Ok(status) => println!("leader {:?}", status.leader_id),
///     Err(Error::Unreachable { message }) => eprintln!("no node answered: {message}"),
///     Err(other) => eprintln!("{other}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The cluster refused the request with one of API.md's codes.
    #[error("{0}")]
    Api(Box<ApiError>),
    /// No node could be reached (connection refused, reset, DNS, TLS...).
    #[error("cannot reach the cluster: {message}")]
    Unreachable {
        /// What the last attempt failed with.
        message: String,
    },
    /// The call's deadline passed before an answer came; for a write the outcome is
    /// unknown, and repeating it with the same idempotency key is safe.
    #[error("deadline exceeded after {attempts} attempt(s): {last}")]
    DeadlineExceeded {
        /// How many attempts were made.
        attempts: u32,
        /// What the last attempt failed with.
        last: String,
    },
    /// The SDK refused the request before sending it (a missing field, say).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The node answered something this SDK does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl Error {
    /// The stable code when the cluster refused the request.
    ///
    /// ```
    /// # use holdfast_client::{ApiError, Error, ErrorCode};
    /// let error = Error::Api(Box::new(ApiError::new(ErrorCode::HoldExpired, "gone")));
    /// assert_eq!(error.code(), Some(&ErrorCode::HoldExpired));
    /// ```
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Error::Api(error) => Some(&error.code),
            _ => None,
        }
    }

    /// Whether a retry of a request that is safe to repeat (a read, or a write with its
    /// idempotency key) may succeed: the retryable codes, a node's internal failure (a
    /// keyed write's outcome is then unknown, and repeating it with the key is safe) and
    /// transport failures.
    ///
    /// ```
    /// # use holdfast_client::Error;
    /// assert!(Error::Unreachable { message: "refused".into() }.is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Api(error) => error.code.is_retryable() || error.code == ErrorCode::Internal,
            Error::Unreachable { .. } | Error::DeadlineExceeded { .. } => true,
            Error::InvalidArgument(_) | Error::Protocol(_) => false,
        }
    }

    /// The error of a gRPC status: an [`Error::Api`] when the node attached
    /// `holdfast-error-code`, otherwise a transport-level failure. For callers of the
    /// generated gRPC stubs (`holdfast-proto`) who want the SDK's errors.
    ///
    /// ```
    /// # use holdfast_client::{Error, ErrorCode};
    /// let mut status = tonic::Status::not_found("HOLD_NOT_FOUND: no hold h_9");
    /// status.metadata_mut().insert("holdfast-error-code", "HOLD_NOT_FOUND".parse().unwrap());
    /// assert_eq!(Error::from_status(&status).code(), Some(&ErrorCode::HoldNotFound));
    /// ```
    pub fn from_status(status: &tonic::Status) -> Error {
        let metadata = status.metadata();
        if let Some(code) = text(metadata, "holdfast-error-code") {
            let details = text(metadata, "holdfast-error-details")
                .and_then(|details| serde_json::from_str(details).ok())
                .unwrap_or(serde_json::Value::Null);
            let message = status
                .message()
                .strip_prefix(code)
                .map(|rest| rest.trim_start_matches(':').trim())
                .unwrap_or(status.message())
                .to_string();
            return Error::Api(Box::new(ApiError {
                code: ErrorCode::parse(code),
                message,
                details,
                retry_after: text(metadata, "retry-after")
                    .and_then(|seconds| seconds.trim().parse::<u64>().ok())
                    .map(Duration::from_secs),
                node_id: number(metadata, "x-holdfast-node"),
                leader_id: number(metadata, "x-holdfast-leader"),
            }));
        }
        match status.code() {
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
                Error::Unreachable {
                    message: describe(status),
                }
            }
            tonic::Code::DeadlineExceeded => Error::DeadlineExceeded {
                attempts: 1,
                last: describe(status),
            },
            tonic::Code::Unimplemented => Error::Api(Box::new(ApiError::new(
                ErrorCode::RouteNotFound,
                format!(
                    "the node does not implement this call: {}",
                    status.message()
                ),
            ))),
            tonic::Code::Unauthenticated => Error::Api(Box::new(ApiError::new(
                ErrorCode::Unauthenticated,
                status.message(),
            ))),
            tonic::Code::PermissionDenied => Error::Api(Box::new(ApiError::new(
                ErrorCode::Forbidden,
                status.message(),
            ))),
            _ => Error::Protocol(describe(status)),
        }
    }
}

/// A status with its transport cause, which tonic keeps in the source chain.
fn describe(status: &tonic::Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        // tonic's layers repeat each other ("transport error: tcp connect error: ...").
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(&format!(": {cause_text}"));
        }
        source = cause.source();
    }
    text
}

pub(crate) fn text<'a>(metadata: &'a MetadataMap, name: &str) -> Option<&'a str> {
    metadata.get(name).and_then(|value| value.to_str().ok())
}

pub(crate) fn number(metadata: &MetadataMap, name: &str) -> Option<u64> {
    text(metadata, name).and_then(|value| value.trim().parse().ok())
}

/// The result of every call of the SDK.
pub type Result<T, E = Error> = std::result::Result<T, E>;
