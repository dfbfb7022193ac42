//! Admission limits at the HTTP edge: a rate limit per caller, with separate budgets for
//! reads and writes, and a cap on the requests in flight.
//!
//! A caller is its key's scope when authentication is on, else its client address (IPv6
//! by /64, so one host cannot take many buckets). Reads (`GET`, `HEAD`) and writes
//! (everything else) have their own budgets, so a read storm cannot starve bookings. Each
//! budget is a GCRA bucket (the `governor` crate): the configured rate per second, and a
//! burst of one second's worth. Over it the answer is `429 RATE_LIMITED` with
//! `Retry-After`; the probes (`/healthz`, `/readyz`) and the open documents are never
//! limited. Buckets of callers that have been quiet long enough to be full again are
//! dropped as the limiter goes, so memory follows the callers of the last second or so.
//!
//! Beyond [`AdmissionConfig::requests_in_flight_max`] requests being served at once, a new
//! one is answered `503 OVERLOADED` (`Retry-After: 1`) at once instead of queueing without
//! bound.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use holdfast_statemachine::{CompactString, ErrorCode};
use tokio::sync::Semaphore;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

/// Writes per second per caller by default.
pub const WRITES_PER_SECOND_DEFAULT: u32 = 20_000;
/// Reads per second per caller by default.
pub const READS_PER_SECOND_DEFAULT: u32 = 100_000;
/// Requests served at once by default.
pub const REQUESTS_IN_FLIGHT_MAX_DEFAULT: usize = 8_192;
/// Holds one customer id may place a minute by default.
pub const HOLDS_PER_MINUTE_PER_CUSTOMER_DEFAULT: u32 = 600;
/// Checks between two sweeps of the buckets of quiet callers.
const SWEEP_EVERY_CHECKS: u64 = 4_096;

/// The admission limits of [`crate::app::HttpConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Reads per second per caller; 0 switches the limit off.
    pub reads_per_second: u32,
    /// Writes per second per caller; 0 switches the limit off.
    pub writes_per_second: u32,
    /// Requests served at once; 0 switches the cap off.
    pub requests_in_flight_max: usize,
    /// Holds one customer id may place a minute (a burst of as many); 0 switches it off.
    pub holds_per_minute_per_customer: u32,
    /// Holds one caller (its key, else its client address) may place a minute, whatever
    /// customer ids it names; 0 (the default) switches it off. Off by default because a
    /// trusted front end, a proxy or a benchmark places every customer's holds from one
    /// address: set it where clients reach the nodes directly.
    pub holds_per_minute_per_caller: u32,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            reads_per_second: READS_PER_SECOND_DEFAULT,
            writes_per_second: WRITES_PER_SECOND_DEFAULT,
            requests_in_flight_max: REQUESTS_IN_FLIGHT_MAX_DEFAULT,
            holds_per_minute_per_customer: HOLDS_PER_MINUTE_PER_CUSTOMER_DEFAULT,
            holds_per_minute_per_caller: 0,
        }
    }
}

/// Who a budget belongs to.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
enum CallerKey {
    /// An authenticated key, by its scope.
    Key(String),
    /// A client address (IPv6 by its /64).
    Address(IpAddr),
    /// A request that came without an address (in-process callers, tests).
    Unknown,
}

impl CallerKey {
    fn of(caller: Option<&Caller>, address: Option<SocketAddr>) -> CallerKey {
        if let Some(scope) = caller.and_then(|caller| caller.scope.clone()) {
            return CallerKey::Key(scope);
        }
        match address.map(|address| address.ip().to_canonical()) {
            Some(IpAddr::V6(v6)) => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                CallerKey::Address(IpAddr::from(octets))
            }
            Some(v4) => CallerKey::Address(v4),
            None => CallerKey::Unknown,
        }
    }
}

/// The buckets' hasher: foldhash, seeded per map (hashbrown's default), rather than
/// governor's SipHash: a hold in a sale is often the first of its customer id, so the
/// per-customer budget hashes a new key on every hold.
type BucketHasher = hashbrown::DefaultHashBuilder;

/// One budget: a bucket per key (a caller, a customer), or nothing when switched off.
struct Budget<K: Clone + std::hash::Hash + Eq = CallerKey> {
    limiter: Option<DefaultKeyedRateLimiter<K, NoOpMiddleware, BucketHasher>>,
    checks: AtomicU64,
}

impl<K: Clone + std::hash::Hash + Eq> Budget<K> {
    fn new(per_second: u32) -> Budget<K> {
        Budget::of(NonZeroU32::new(per_second).map(Quota::per_second))
    }

    /// `per_minute` a minute, in a burst of as many.
    fn per_minute(per_minute: u32) -> Budget<K> {
        Budget::of(NonZeroU32::new(per_minute).map(Quota::per_minute))
    }

    fn of(quota: Option<Quota>) -> Budget<K> {
        Budget {
            limiter: quota.map(|quota| {
                RateLimiter::dashmap_with_clock_and_hasher(
                    quota,
                    DefaultClock::default(),
                    BucketHasher::default(),
                )
            }),
            checks: AtomicU64::new(0),
        }
    }

    /// `Ok`, or how many whole seconds to wait.
    fn check(&self, key: &K) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY_CHECKS == 0 {
            limiter.retain_recent();
        }
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    #[cfg(test)]
    fn callers(&self) -> usize {
        self.limiter.as_ref().map_or(0, |limiter| limiter.len())
    }
}

/// The admission state a node shares between its requests.
pub struct Admission {
    reads: Budget,
    writes: Budget,
    in_flight: Option<Arc<Semaphore>>,
    holds_per_customer: Budget<CompactString>,
    holds_per_caller: Budget,
}

impl Admission {
    /// Takes one request of `key` of this kind from its budget and a place among the
    /// requests in flight (held by the permit until the answer is built).
    fn admit(
        &self,
        key: &CallerKey,
        read: bool,
    ) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, ApiError> {
        let (budget, kind) = if read {
            (&self.reads, "reads")
        } else {
            (&self.writes, "writes")
        };
        if let Err(wait_seconds) = budget.check(key) {
            refused(kind);
            return Err(ApiError::new(
                ErrorCode::RateLimited,
                format!("too many {kind} from this caller; retry after {wait_seconds} s"),
            )
            .with_retry_after(wait_seconds.max(1)));
        }
        match &self.in_flight {
            Some(semaphore) => match semaphore.clone().try_acquire_owned() {
                Ok(permit) => Ok(Some(permit)),
                Err(_) => {
                    refused("in_flight");
                    Err(ApiError::new(
                        ErrorCode::Overloaded,
                        "the node is serving as many requests as it takes at once",
                    )
                    .with_retry_after(1))
                }
            },
            None => Ok(None),
        }
    }

    /// The budgets and the in-flight cap of `config`, nothing spent yet. A limit of 0 there
    /// builds no bucket (or no semaphore), so that check always passes.
    pub fn new(config: AdmissionConfig) -> Admission {
        Admission {
            reads: Budget::new(config.reads_per_second),
            writes: Budget::new(config.writes_per_second),
            in_flight: (config.requests_in_flight_max > 0)
                .then(|| Arc::new(Semaphore::new(config.requests_in_flight_max))),
            holds_per_customer: Budget::per_minute(config.holds_per_minute_per_customer),
            holds_per_caller: Budget::per_minute(config.holds_per_minute_per_caller),
        }
    }

    /// The hold velocity limits: one more hold for `customer_id` by `caller`, or
    /// `429 RATE_LIMITED` naming the limit, so that no customer id and no caller can take
    /// a venue's inventory faster than a person books (made-up customer ids count against
    /// their caller).
    pub fn admit_hold(&self, caller: &Caller, customer_id: &str) -> Result<(), ApiError> {
        let by_caller = CallerKey::of(
            Some(caller),
            caller.address.map(|ip| SocketAddr::new(ip, 0)),
        );
        let by_customer = CompactString::from(customer_id);
        let refusal = |limit: &'static str, wait_seconds: u64| {
            refused(limit);
            ApiError::new(
                ErrorCode::RateLimited,
                format!("too many holds ({limit}); retry after {wait_seconds} s"),
            )
            .with_details(serde_json::json!({"limit": limit}))
            .with_retry_after(wait_seconds.max(1))
        };
        self.holds_per_customer
            .check(&by_customer)
            .map_err(|wait| refusal("holds_per_customer", wait))?;
        self.holds_per_caller
            .check(&by_caller)
            .map_err(|wait| refusal("holds_per_caller", wait))?;
        Ok(())
    }
}

/// Admission of an authenticated HTTP request (called by [`crate::auth::authorize`], in the
/// same middleware, so an authenticated caller is limited by its key): the caller's budget
/// for this kind of request, then a place among the requests in flight, held until the
/// answer is built.
pub async fn admit(state: &AppState, request: Request, next: Next) -> Response {
    let key = CallerKey::of(
        request.extensions().get::<Caller>(),
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0),
    );
    let read = matches!(*request.method(), Method::GET | Method::HEAD);
    match state.admission.admit(&key, read) {
        Ok(_permit) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

/// gRPC methods that only read (the rest count against the write budget).
const GRPC_READS: &[&str] = &[
    "GetAvailability",
    "SearchEvents",
    "GetEvent",
    "GetHold",
    "GetBooking",
    "CustomerBookings",
    "Ready",
    "Status",
    "WatchChanges",
    "Backup",
];

/// The gRPC edge's admission (a layer on the gRPC routes): the same budgets and cap as
/// HTTP, the caller known by its key (else its address), reads told from writes by the
/// method's name; a refusal is a gRPC status (`RESOURCE_EXHAUSTED` with `RATE_LIMITED`,
/// `UNAVAILABLE` with `OVERLOADED`).
pub async fn admit_grpc(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let caller = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|authorization| {
            let keys = state.config.auth_keys.as_deref()?;
            keys.caller(crate::auth::bearer_key(Some(authorization))?)
        });
    let key = CallerKey::of(
        caller.as_ref(),
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0),
    );
    let method = request.uri().path().rsplit('/').next().unwrap_or_default();
    if method == "Ready" {
        // A probe, like HTTP's /readyz: never limited.
        return next.run(request).await;
    }
    let read = GRPC_READS.contains(&method);
    match state.admission.admit(&key, read) {
        Ok(_permit) => next.run(request).await,
        Err(error) => crate::grpc::status_of(&error)
            .into_http::<axum::body::Body>()
            .map(axum::body::Body::new),
    }
}

fn refused(budget: &'static str) {
    metrics::counter!(crate::metrics::REFUSED_AT_ADMISSION_TOTAL, "budget" => budget).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_are_keys_or_addresses_with_ipv6_by_prefix() {
        let bound = Caller {
            scope: Some("abcd".into()),
            ..Caller::default()
        };
        let address: SocketAddr = "10.0.0.7:4000".parse().unwrap();
        assert_eq!(
            CallerKey::of(Some(&bound), Some(address)),
            CallerKey::Key("abcd".into())
        );
        assert_eq!(
            CallerKey::of(Some(&Caller::default()), Some(address)),
            CallerKey::Address("10.0.0.7".parse().unwrap())
        );
        let one: SocketAddr = "[2001:db8:1:2:aaaa::1]:1".parse().unwrap();
        let other: SocketAddr = "[2001:db8:1:2:bbbb::9]:2".parse().unwrap();
        assert_eq!(
            CallerKey::of(None, Some(one)),
            CallerKey::of(None, Some(other))
        );
        let mapped: SocketAddr = "[::ffff:10.0.0.7]:1".parse().unwrap();
        assert_eq!(
            CallerKey::of(None, Some(mapped)),
            CallerKey::of(None, Some(address))
        );
        assert_eq!(CallerKey::of(None, None), CallerKey::Unknown);
    }

    #[test]
    fn holds_are_limited_per_customer_and_per_caller_whatever_customers_it_names() {
        let admission = Admission::new(AdmissionConfig {
            holds_per_minute_per_customer: 2,
            holds_per_minute_per_caller: 5,
            ..AdmissionConfig::default()
        });
        let front_end = Caller {
            address: Some("10.0.0.7".parse().unwrap()),
            ..Caller::default()
        };
        let code =
            |result: Result<(), ApiError>| result.map_err(|error| error.details["limit"].clone());
        assert_eq!(code(admission.admit_hold(&front_end, "c-1")), Ok(()));
        assert_eq!(code(admission.admit_hold(&front_end, "c-1")), Ok(()));
        assert_eq!(
            code(admission.admit_hold(&front_end, "c-1")),
            Err(serde_json::json!("holds_per_customer"))
        );
        // Made-up customer ids count against their caller.
        for customer in ["m-1", "m-2", "m-3"] {
            assert_eq!(code(admission.admit_hold(&front_end, customer)), Ok(()));
        }
        let refused = admission.admit_hold(&front_end, "m-4").unwrap_err();
        assert_eq!(refused.code, ErrorCode::RateLimited);
        assert_eq!(refused.details["limit"], "holds_per_caller");
        // Another address has its own budget.
        let other = Caller {
            address: Some("10.0.0.8".parse().unwrap()),
            ..Caller::default()
        };
        assert_eq!(code(admission.admit_hold(&other, "m-5")), Ok(()));
        // Off: never refuses.
        let off = Admission::new(AdmissionConfig {
            holds_per_minute_per_customer: 0,
            holds_per_minute_per_caller: 0,
            ..AdmissionConfig::default()
        });
        for _ in 0..1_000 {
            assert_eq!(code(off.admit_hold(&front_end, "c-1")), Ok(()));
        }
    }

    #[test]
    fn a_budget_refuses_past_its_burst_and_says_how_long_to_wait() {
        let budget = Budget::new(5);
        let key = CallerKey::Key("a".into());
        for _ in 0..5 {
            assert_eq!(budget.check(&key), Ok(()));
        }
        let wait = budget.check(&key).unwrap_err();
        assert_eq!(wait, 1);
        // Another caller has its own bucket.
        assert_eq!(budget.check(&CallerKey::Key("b".into())), Ok(()));
        assert_eq!(budget.callers(), 2);
        // Switched off: never refuses.
        let off = Budget::new(0);
        for _ in 0..1_000 {
            assert_eq!(off.check(&key), Ok(()));
        }
    }
}
