//! The one registry of Holdfast's stable error codes: each code's wire string, its HTTP
//! status and its gRPC code, defined once (TiKV's `define_error_codes!` is the model).
//!
//! The state machine's rejections, the node's system errors, the peer service and both
//! client edges (HTTP and gRPC) take their codes from here; no crate spells a code as a
//! string literal where it raises it. The registry lives in the bottom crate so that every
//! other crate can use it; it is plain data (no I/O, no HTTP or gRPC dependency): statuses
//! are numbers, gRPC codes are [`GrpcCode`], whose values are gRPC's own.

use std::fmt;

/// gRPC status codes (the values of `google.rpc.Code`), as far as Holdfast uses them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum GrpcCode {
    /// `INVALID_ARGUMENT`: the request itself is malformed (the 400 codes, and 413).
    InvalidArgument = 3,
    /// `DEADLINE_EXCEEDED`: the call's deadline passed first. No code of the registry
    /// maps to it.
    DeadlineExceeded = 4,
    /// `NOT_FOUND`: the named record does not exist (the 404 codes but `ROUTE_NOT_FOUND`).
    NotFound = 5,
    /// `ALREADY_EXISTS`: something with that id exists already (an event, seats or pools,
    /// an initialised cluster).
    AlreadyExists = 6,
    /// `PERMISSION_DENIED`: a known caller that may not do this (`FORBIDDEN`).
    PermissionDenied = 7,
    /// `RESOURCE_EXHAUSTED`: the caller is rate limited (`RATE_LIMITED`).
    ResourceExhausted = 8,
    /// `FAILED_PRECONDITION`: the state does not allow the request now (most 409 codes,
    /// 410 and 402), or the data directory belongs to another node or cluster or is of a
    /// format this build cannot read.
    FailedPrecondition = 9,
    /// `UNIMPLEMENTED`: no such route or method.
    Unimplemented = 12,
    /// `INTERNAL`: a failure of the node itself (storage, corrupt data, Raft, configuration).
    Internal = 13,
    /// `UNAVAILABLE`: temporary; retry with the same idempotency key (the 503 codes).
    Unavailable = 14,
    /// `UNAUTHENTICATED`: no key, or one the node does not know.
    Unauthenticated = 16,
}

macro_rules! define_error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident = ($code:literal, $http:literal, $grpc:ident);)*) => {
        /// A stable error code. Its string never changes once released; its meaning is in
        /// `docs/API.md`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the registry's order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The UPPER_SNAKE wire string.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            /// The HTTP status an answer with this code has.
            pub const fn http_status(self) -> u16 {
                match self {
                    $(ErrorCode::$variant => $http,)*
                }
            }

            /// The gRPC status code a call refused with this code has.
            pub const fn grpc_code(self) -> GrpcCode {
                match self {
                    $(ErrorCode::$variant => GrpcCode::$grpc,)*
                }
            }

            /// The code named by its wire string (what a peer or a client received).
            pub fn parse(code: &str) -> Option<ErrorCode> {
                match code {
                    $($code => Some(ErrorCode::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

define_error_codes! {
    // 400: the request itself is wrong; nothing was stored.
    /// The body is not a JSON object.
    InvalidJson = ("INVALID_JSON", 400, InvalidArgument);
    /// A field is missing, of the wrong type or out of range (details name it).
    InvalidField = ("INVALID_FIELD", 400, InvalidArgument);
    /// A quantity is zero, negative or too large.
    InvalidQuantity = ("INVALID_QUANTITY", 400, InvalidArgument);
    /// `ttl_seconds` is outside 1–7200.
    InvalidTtl = ("INVALID_TTL", 400, InvalidArgument);
    /// More items (or batch operations) than one request may carry.
    TooManyItems = ("TOO_MANY_ITEMS", 400, InvalidArgument);
    // 401 / 403: who is asking.
    /// No key, or a key the node does not know.
    Unauthenticated = ("UNAUTHENTICATED", 401, Unauthenticated);
    /// A known key whose role or customer may not do this.
    Forbidden = ("FORBIDDEN", 403, PermissionDenied);
    // 402
    /// The payment provider declined the charge.
    PaymentDeclined = ("PAYMENT_DECLINED", 402, FailedPrecondition);
    // 404
    /// No such event.
    EventNotFound = ("EVENT_NOT_FOUND", 404, NotFound);
    /// No such seat in the event (details list them).
    SeatNotFound = ("SEAT_NOT_FOUND", 404, NotFound);
    /// No such pool in the event (details list them).
    PoolNotFound = ("POOL_NOT_FOUND", 404, NotFound);
    /// No such hold.
    HoldNotFound = ("HOLD_NOT_FOUND", 404, NotFound);
    /// No such booking.
    BookingNotFound = ("BOOKING_NOT_FOUND", 404, NotFound);
    /// No such refund.
    RefundNotFound = ("REFUND_NOT_FOUND", 404, NotFound);
    /// No such webhook.
    WebhookNotFound = ("WEBHOOK_NOT_FOUND", 404, NotFound);
    /// No such cluster member.
    NodeNotFound = ("NODE_NOT_FOUND", 404, NotFound);
    /// No such route.
    RouteNotFound = ("ROUTE_NOT_FOUND", 404, Unimplemented);
    // 405
    /// A known path asked with another method.
    MethodNotAllowed = ("METHOD_NOT_ALLOWED", 405, Unimplemented);
    // 409: the state does not allow it now.
    /// A seat is held or booked by someone else (details list them).
    SeatUnavailable = ("SEAT_UNAVAILABLE", 409, FailedPrecondition);
    /// A pool has less left than asked (details list them).
    PoolExhausted = ("POOL_EXHAUSTED", 409, FailedPrecondition);
    /// No row has that many adjacent available seats.
    NoAdjacentSeats = ("NO_ADJACENT_SEATS", 409, FailedPrecondition);
    /// The hold was confirmed or released already.
    HoldNotActive = ("HOLD_NOT_ACTIVE", 409, FailedPrecondition);
    /// The customer holds as much as one customer may.
    HoldLimitReached = ("HOLD_LIMIT_REACHED", 409, FailedPrecondition);
    /// The booking was cancelled already.
    BookingNotActive = ("BOOKING_NOT_ACTIVE", 409, FailedPrecondition);
    /// The refund was paid already.
    RefundNotPending = ("REFUND_NOT_PENDING", 409, FailedPrecondition);
    /// A failed refund attempt was reported out of turn (another report was recorded first).
    RefundAttemptStale = ("REFUND_ATTEMPT_STALE", 409, FailedPrecondition);
    /// The charge does not match the hold's amount.
    PaymentAmountMismatch = ("PAYMENT_AMOUNT_MISMATCH", 409, FailedPrecondition);
    /// The seat or pool is held or booked, so it cannot be removed.
    ItemInUse = ("ITEM_IN_USE", 409, FailedPrecondition);
    /// Seats or pools with these ids exist already.
    ItemExists = ("ITEM_EXISTS", 409, AlreadyExists);
    /// A pool's capacity cannot go below what is held and booked.
    CapacityBelowUsage = ("CAPACITY_BELOW_USAGE", 409, FailedPrecondition);
    /// An event with this id exists already.
    EventExists = ("EVENT_EXISTS", 409, AlreadyExists);
    /// The event was cancelled: nothing of it can be held any more.
    EventCancelled = ("EVENT_CANCELLED", 409, FailedPrecondition);
    /// A replicated inventory limit was reached.
    LimitReached = ("LIMIT_REACHED", 409, FailedPrecondition);
    /// The idempotency key was used before with another request.
    IdempotencyKeyReused = ("IDEMPOTENCY_KEY_REUSED", 409, FailedPrecondition);
    /// `POST /cluster/init` on a node that is part of a cluster.
    AlreadyInitialized = ("ALREADY_INITIALIZED", 409, AlreadyExists);
    /// A membership change that is invalid or would lose the majority.
    MembershipRefused = ("MEMBERSHIP_REFUSED", 409, FailedPrecondition);
    /// A backup can be restored only into an empty cluster, in order, and whole.
    RestoreRefused = ("RESTORE_REFUSED", 409, FailedPrecondition);
    // 410
    /// The hold's time has passed.
    HoldExpired = ("HOLD_EXPIRED", 410, FailedPrecondition);
    // 413
    /// The request body is larger than its route allows.
    BodyTooLarge = ("BODY_TOO_LARGE", 413, InvalidArgument);
    // 429
    /// Too many requests from this key or address; retry after `Retry-After`.
    RateLimited = ("RATE_LIMITED", 429, ResourceExhausted);
    // 500
    /// A failure of the node itself.
    Internal = ("INTERNAL", 500, Internal);
    // 503: try again (with the same key); each carries `Retry-After`.
    /// No leader is known.
    NoLeader = ("NO_LEADER", 503, Unavailable);
    /// Leadership could not be confirmed with a quorum in time.
    NoQuorum = ("NO_QUORUM", 503, Unavailable);
    /// The node is starting, catching up or stopping.
    NotReady = ("NOT_READY", 503, Unavailable);
    /// `min_index` was not applied within the wait.
    IndexNotReached = ("INDEX_NOT_REACHED", 503, Unavailable);
    /// The node sheds load: its queue (or the idempotency table) is full.
    Overloaded = ("OVERLOADED", 503, Unavailable);
    /// The write may or may not have committed; retry with the same key to learn which.
    OutcomeUnknown = ("OUTCOME_UNKNOWN", 503, Unavailable);
    /// A leader transfer did not complete; the details name the leader there is.
    LeaderTransferFailed = ("LEADER_TRANSFER_FAILED", 503, Unavailable);
    /// The payment provider did not answer; nothing was charged.
    PaymentUnavailable = ("PAYMENT_UNAVAILABLE", 503, Unavailable);
    /// A webhook is lagging and the outbox has no room for the events this write would
    /// add; nothing was stored. 503, not 507: the condition is temporary and clears as the
    /// webhook catches up (or is removed), so clients retry after `Retry-After` with the
    /// same key, as for every other 503; 507 would say the server's storage is full.
    OutboxFull = ("OUTBOX_FULL", 503, Unavailable);
    // The storage and replication layer's own failures (logged, seen by operators).
    /// The data directory belongs to another node.
    DataDirNodeMismatch = ("DATA_DIR_NODE_MISMATCH", 500, FailedPrecondition);
    /// The data directory belongs to another cluster.
    DataDirClusterMismatch = ("DATA_DIR_CLUSTER_MISMATCH", 500, FailedPrecondition);
    /// Data of a format this version cannot read.
    UnsupportedFormat = ("UNSUPPORTED_FORMAT", 500, FailedPrecondition);
    /// Stored data that does not decode.
    CorruptData = ("CORRUPT_DATA", 500, Internal);
    /// The disk refused a read or a write.
    StorageFailure = ("STORAGE_FAILURE", 500, Internal);
    /// A Raft call reached a node that is not the leader.
    NotLeader = ("NOT_LEADER", 503, Unavailable);
    /// Raft stopped on a fatal error.
    RaftStopped = ("RAFT_STOPPED", 500, Internal);
    /// A peer could not be reached.
    TransportFailure = ("TRANSPORT_FAILURE", 503, Unavailable);
    /// The node's configuration is invalid.
    InvalidConfig = ("INVALID_CONFIG", 500, Internal);
    /// The peer TLS files (CA, certificate, key) cannot be read or do not fit together.
    PeerTlsInvalid = ("PEER_TLS_INVALID", 500, Internal);
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl PartialEq<str> for ErrorCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_upper_snake_and_parse_back() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ErrorCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} twice");
            assert!(
                text.bytes()
                    .all(|byte| byte.is_ascii_uppercase() || byte == b'_'),
                "{text}"
            );
            assert_eq!(ErrorCode::parse(text), Some(*code));
            assert!((400..600).contains(&code.http_status()), "{text}");
        }
        assert_eq!(ErrorCode::parse("NOPE"), None);
        assert_eq!(ErrorCode::SeatUnavailable, "SEAT_UNAVAILABLE");
    }
}
