//! Refunds end to end: the refund worker pays what cancellations owe through the payment
//! provider and commits the result; `GET /refunds` lists them by status.
//!
//! The provider is the HTTP provider speaking to a fake Stripe-like server that the tests
//! serve with axum on 127.0.0.1. It counts calls and refunds made by refund id, and fails
//! as each test asks: some times first, always, with a refusal, or too slowly.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use holdfast_node::payment::{PaymentProvider, RefundError, RefundRequest};
use holdfast_node::refunds::{pay_due_refunds, RefundWorkerConfig};
use holdfast_node::replica::read_now;
use holdfast_node::runtime::{self, NodeConfig, PaymentConfig};
use holdfast_node::{
    router, AppState, HttpConfig, HttpPaymentProvider, HttpProviderConfig, LocalReplica,
    LocalReplicaConfig, Replica,
};
use holdfast_statemachine::RefundStatus;
use serde_json::{json, Value};
use tower::ServiceExt;

const SECRET: &str = "sk_test_holdfast";

/// How the fake provider answers refunds.
#[derive(Clone, Copy, Debug)]
enum Behaviour {
    /// `503` this many times per refund id, then success.
    FailFirst(u32),
    /// `500` always.
    AlwaysFail,
    /// `400`: the charge cannot be refunded.
    Refuse,
    /// Answers after this long (longer than the client waits).
    Slow(Duration),
}

#[derive(Default)]
struct Ledger {
    /// Refund calls by refund id (the idempotency key), failed ones included.
    calls: HashMap<String, u32>,
    /// Refunds made by refund id: a repeated key is answered with the first refund.
    made: HashMap<String, String>,
    /// Calls without the right bearer secret or idempotency key.
    bad_calls: u32,
    /// Charges made.
    charges: u32,
}

#[derive(Clone)]
struct FakeProvider {
    behaviour: Behaviour,
    ledger: Arc<Mutex<Ledger>>,
}

impl FakeProvider {
    async fn serve(behaviour: Behaviour) -> (FakeProvider, SocketAddr) {
        let fake = FakeProvider {
            behaviour,
            ledger: Arc::default(),
        };
        let app = Router::new()
            .route("/v1/payment_intents", post(fake_charge))
            .route("/v1/refunds", post(fake_refund))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (fake, address)
    }

    fn calls(&self, refund_id: &str) -> u32 {
        let ledger = self.ledger.lock().unwrap();
        ledger.calls.get(refund_id).copied().unwrap_or(0)
    }

    fn refunds_made(&self) -> usize {
        self.ledger.lock().unwrap().made.len()
    }

    fn bad_calls(&self) -> u32 {
        self.ledger.lock().unwrap().bad_calls
    }
}

fn authorised(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        == Some(&format!("Bearer {SECRET}"))
}

async fn fake_charge(
    State(fake): State<FakeProvider>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorised(&headers) {
        fake.ledger.lock().unwrap().bad_calls += 1;
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let charge = {
        let mut ledger = fake.ledger.lock().unwrap();
        ledger.charges += 1;
        ledger.charges
    };
    Json(json!({
        "id": format!("pi_{charge}"),
        "status": "succeeded",
        "amount": body["amount"],
        "currency": body["currency"],
        "metadata": body["metadata"],
    }))
    .into_response()
}

async fn fake_refund(
    State(fake): State<FakeProvider>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let key = headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let Some(key) = key.filter(|key| authorised(&headers) && body["metadata"]["refund_id"] == *key)
    else {
        fake.ledger.lock().unwrap().bad_calls += 1;
        return StatusCode::BAD_REQUEST.into_response();
    };
    let calls = {
        let mut ledger = fake.ledger.lock().unwrap();
        let calls = ledger.calls.entry(key.clone()).or_default();
        *calls += 1;
        *calls
    };
    let failure = |status: StatusCode, message: &str| {
        (status, Json(json!({"error": {"message": message}}))).into_response()
    };
    match fake.behaviour {
        Behaviour::FailFirst(failures) if calls <= failures => {
            return failure(StatusCode::SERVICE_UNAVAILABLE, "try again later");
        }
        Behaviour::AlwaysFail => return failure(StatusCode::INTERNAL_SERVER_ERROR, "boom"),
        Behaviour::Refuse => {
            return failure(StatusCode::BAD_REQUEST, "charge already refunded");
        }
        Behaviour::Slow(delay) => tokio::time::sleep(delay).await,
        Behaviour::FailFirst(_) => {}
    }
    let mut ledger = fake.ledger.lock().unwrap();
    let count = ledger.made.len();
    let id = ledger
        .made
        .entry(key)
        .or_insert_with(|| format!("re_{}", count + 1))
        .clone();
    Json(json!({"id": id, "status": "succeeded"})).into_response()
}

fn provider_config(address: SocketAddr) -> HttpProviderConfig {
    let mut config = HttpProviderConfig::new(&format!("http://{address}"), SECRET);
    config.request_timeout = Duration::from_millis(500);
    config
}

/// A worker that retries at once (1 ms base) and gives up after `attempts_max`.
fn eager_worker(attempts_max: u32) -> RefundWorkerConfig {
    RefundWorkerConfig {
        check_interval: Duration::from_millis(20),
        attempts_max,
        retry_base: Duration::from_millis(1),
        retry_max: Duration::from_millis(4),
        ..RefundWorkerConfig::default()
    }
}

/// A JSON call through a router.
async fn call(router: &Router, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |body| Body::from(body.to_string())))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn event_body() -> Value {
    json!({
        "event_id": "E", "name": "Film", "category": "movie",
        "starts_at": "2026-12-01T20:00:00Z", "currency": "EUR",
        "seat_blocks": [{"section": "A", "rows": ["1"], "seats_per_row": 10, "price": 4500}]
    })
}

/// Books seat `A-1-<n>` and cancels the booking: the refund it owes, by id.
async fn cancelled_booking(router: &Router, seat: u32) -> String {
    let (status, hold) = call(
        router,
        Method::POST,
        "/booking/hold",
        Some(json!({"event_id": "E", "customer_id": "c-1", "seats": [format!("A-1-{seat}")]})),
    )
    .await;
    assert!(status == 200 || status == 201, "{status} {hold}");
    let (status, booking) = call(
        router,
        Method::POST,
        "/booking/confirm",
        Some(json!({"hold_id": hold["hold_id"], "payment": {"token": "tok_visa"}})),
    )
    .await;
    assert!(status == 200 || status == 201, "{status} {booking}");
    let (status, cancelled) = call(
        router,
        Method::POST,
        "/booking/cancel",
        Some(json!({"booking_id": booking["booking_id"], "reason": "plans changed"})),
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["refund"]["status"], "PENDING", "{cancelled}");
    cancelled["refund"]["refund_id"]
        .as_str()
        .expect("a refund id")
        .to_string()
}

/// A node over a `LocalReplica` whose payments go to the fake provider at `address`.
async fn local_node(address: SocketAddr) -> (Router, Arc<LocalReplica>, Arc<dyn PaymentProvider>) {
    let replica = LocalReplica::shared(LocalReplicaConfig::default());
    let payments: Arc<dyn PaymentProvider> =
        Arc::new(HttpPaymentProvider::new(provider_config(address)).unwrap());
    let router = router(AppState::new(
        replica.clone(),
        payments.clone(),
        HttpConfig::default(),
    ));
    let (status, body) = call(&router, Method::POST, "/admin/events", Some(event_body())).await;
    assert_eq!(status, 201, "{body}");
    (router, replica, payments)
}

/// Runs worker passes until the refund is no longer pending (each pass is bounded; the
/// loop is bounded by a count of passes, not by time).
async fn run_until_settled(
    replica: &dyn Replica,
    payments: &dyn PaymentProvider,
    config: &RefundWorkerConfig,
    refund_id: &str,
) -> holdfast_statemachine::RefundView {
    for _ in 0..2_000 {
        pay_due_refunds(replica, payments, config).await;
        let (view, _) = read_now(replica, |machine| machine.refund_by_id(refund_id));
        let view = view.expect("the refund exists");
        if view.status != RefundStatus::Pending {
            return view;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("refund {refund_id} stayed pending");
}

#[tokio::test]
async fn a_provider_failing_some_times_ends_refunded_exactly_once() {
    let (fake, address) = FakeProvider::serve(Behaviour::FailFirst(3)).await;
    let (router, replica, payments) = local_node(address).await;
    let refund_id = cancelled_booking(&router, 1).await;

    let config = eager_worker(8);
    let view = run_until_settled(&*replica, &*payments, &config, &refund_id).await;
    assert_eq!(view.status, RefundStatus::Refunded);
    assert_eq!(view.attempts, 3, "each failed attempt is recorded once");
    assert_eq!(fake.calls(&refund_id), 4, "three failures, then the refund");
    assert_eq!(fake.refunds_made(), 1);
    assert_eq!(fake.bad_calls(), 0, "every call had the secret and the key");

    // More passes pay nothing more.
    for _ in 0..3 {
        let pass = pay_due_refunds(&*replica, &*payments, &config).await;
        assert_eq!(pass.tried, 0);
    }
    assert_eq!(fake.calls(&refund_id), 4);
    // The outbox tells of the payment once.
    let (paid, _) = read_now(&*replica, |machine| {
        machine
            .outbox_events(0, 1_000)
            .into_iter()
            .filter(|event| {
                matches!(&event.kind, holdfast_statemachine::OutboxKind::RefundPaid { refund_id: id } if *id == refund_id)
            })
            .count()
    });
    assert_eq!(paid, 1);

    // The booking lookup and GET /refunds show it paid.
    let (status, page) = call(&router, Method::GET, "/refunds?status=REFUNDED", None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["refunds"][0]["refund_id"], refund_id.as_str());
    assert_eq!(page["refunds"][0]["attempts"], 3);
    let booking_id = page["refunds"][0]["booking_id"].as_str().unwrap();
    let (_, booking) = call(
        &router,
        Method::GET,
        &format!("/bookings/{booking_id}"),
        None,
    )
    .await;
    assert_eq!(booking["refund"]["status"], "REFUNDED", "{booking}");
}

#[tokio::test]
async fn a_provider_that_keeps_failing_ends_failed_with_its_reason() {
    let (fake, address) = FakeProvider::serve(Behaviour::AlwaysFail).await;
    let (router, replica, payments) = local_node(address).await;
    let refund_id = cancelled_booking(&router, 2).await;

    let config = eager_worker(4);
    let view = run_until_settled(&*replica, &*payments, &config, &refund_id).await;
    assert_eq!(view.status, RefundStatus::Failed);
    assert_eq!(view.attempts, 4, "bounded attempts");
    assert_eq!(fake.calls(&refund_id), 4);
    assert_eq!(fake.refunds_made(), 0);
    let reason = view.reason.expect("a failed refund has a reason");
    assert!(
        reason.contains("HTTP 500") && reason.contains("boom"),
        "{reason}"
    );

    let (status, page) = call(&router, Method::GET, "/refunds?status=FAILED", None).await;
    assert_eq!(status, 200, "{page}");
    let listed = &page["refunds"][0];
    assert_eq!(listed["refund_id"], refund_id.as_str());
    assert_eq!(listed["status"], "FAILED");
    assert_eq!(listed["reason"], reason.as_str());
    let (_, pending) = call(&router, Method::GET, "/refunds?status=PENDING", None).await;
    assert_eq!(pending["refunds"], json!([]));
}

#[tokio::test]
async fn a_refusal_fails_the_refund_at_once() {
    let (fake, address) = FakeProvider::serve(Behaviour::Refuse).await;
    let (router, replica, payments) = local_node(address).await;
    let refund_id = cancelled_booking(&router, 3).await;
    let view = run_until_settled(&*replica, &*payments, &eager_worker(8), &refund_id).await;
    assert_eq!(view.status, RefundStatus::Failed);
    assert_eq!(view.attempts, 1, "a refusal is not retried");
    assert_eq!(fake.calls(&refund_id), 1);
    assert!(view.reason.unwrap().contains("charge already refunded"));
}

#[tokio::test]
async fn the_http_provider_gives_up_on_slow_answers_and_refuses_other_urls() {
    let (fake, address) = FakeProvider::serve(Behaviour::Slow(Duration::from_secs(3))).await;
    let mut config = provider_config(address);
    config.request_timeout = Duration::from_millis(100);
    let provider = HttpPaymentProvider::new(config).unwrap();
    let answer = provider
        .refund(RefundRequest {
            refund_id: "r_1".into(),
            payment_id: "pi_1".into(),
            amount: 100,
            currency: "EUR".into(),
        })
        .await;
    assert!(
        matches!(answer, Err(RefundError::Unavailable { .. })),
        "{answer:?}"
    );
    assert_eq!(fake.calls("r_1"), 1);
    assert!(HttpPaymentProvider::new(HttpProviderConfig::new("ftp://x", SECRET)).is_err());
    assert!(!format!("{:?}", provider_config(address)).contains(SECRET));
}

#[tokio::test]
async fn the_http_provider_reads_bounded_answers() {
    let app = Router::new().route("/v1/refunds", post(|| async { "x".repeat(100_000) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut config = provider_config(address);
    config.response_bytes_max = 1_024;
    let provider = HttpPaymentProvider::new(config).unwrap();
    let answer = provider
        .refund(RefundRequest {
            refund_id: "r_1".into(),
            payment_id: "pi_1".into(),
            amount: 100,
            currency: "EUR".into(),
        })
        .await;
    match answer {
        Err(RefundError::Unavailable { message }) => assert!(message.contains("1024"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn refunds_are_listed_by_status_and_page_for_admins_only() {
    let (_fake, address) = FakeProvider::serve(Behaviour::FailFirst(0)).await;
    let (router, _replica, _payments) = local_node(address).await;
    let mut ids = Vec::new();
    for seat in 1..=3 {
        ids.push(cancelled_booking(&router, seat).await);
    }
    let (status, first) = call(
        &router,
        Method::GET,
        "/refunds?status=PENDING&limit=2",
        None,
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["refunds"].as_array().unwrap().len(), 2);
    assert_eq!(first["refunds"][0]["refund_id"], ids[0].as_str());
    assert_eq!(first["refunds"][0]["amount"], 4500);
    assert_eq!(first["refunds"][0]["currency"], "EUR");
    assert!(first["refunds"][0]["payment_id"].is_string());
    let next = first["next_after"].as_str().expect("more remain");
    let (_, second) = call(
        &router,
        Method::GET,
        &format!("/refunds?status=PENDING&limit=2&after={next}"),
        None,
    )
    .await;
    assert_eq!(second["refunds"][0]["refund_id"], ids[2].as_str());
    assert!(second.get("next_after").is_none(), "{second}");

    let (status, refused) = call(&router, Method::GET, "/refunds?status=LOST", None).await;
    assert_eq!(status, 400);
    assert_eq!(refused["error"]["code"], "INVALID_FIELD");
    let (status, _) = call(&router, Method::GET, "/refunds?limit=0", None).await;
    assert_eq!(status, 400);

    // With keys, only admins (and operators) may list refunds.
    let keys = holdfast_node::auth::AuthKeys::parse(
        "customer customer-key-0123456789\nadmin admin-key-0123456789",
    )
    .unwrap();
    let guarded = router_with_keys(address, keys);
    let list = |key: &'static str| {
        Request::get("/refunds")
            .header("authorization", format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap()
    };
    let customer = guarded
        .clone()
        .oneshot(list("customer-key-0123456789"))
        .await
        .unwrap();
    assert_eq!(customer.status(), StatusCode::FORBIDDEN);
    let admin = guarded.oneshot(list("admin-key-0123456789")).await.unwrap();
    assert_eq!(admin.status(), StatusCode::OK);
}

fn router_with_keys(address: SocketAddr, keys: holdfast_node::auth::AuthKeys) -> Router {
    router(AppState::new(
        LocalReplica::shared(LocalReplicaConfig::default()),
        Arc::new(HttpPaymentProvider::new(provider_config(address)).unwrap()),
        HttpConfig {
            auth_keys: Some(Arc::new(keys)),
            ..HttpConfig::default()
        },
    ))
}

/// A real Raft node (RocksDB, the runtime's refund worker) pays a cancellation's refund
/// through the HTTP provider without anyone asking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raft_node_pays_the_refund_a_cancellation_records() {
    let (fake, address) = FakeProvider::serve(Behaviour::FailFirst(1)).await;
    let data = tempfile::tempdir().unwrap();
    let mut config = NodeConfig::new(1, "refunds-test", data.path().join("node-1"));
    config.payments = PaymentConfig::Http(provider_config(address));
    config.refunds = eager_worker(8);
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let raft = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node = runtime::start(config, http, raft).await.unwrap();
    let base = format!("http://{}", node.http_addr);
    let client = reqwest::Client::new();
    let members = json!({"members": [{
        "id": 1, "raft_addr": node.raft_addr.to_string(),
        "http_addr": node.http_addr.to_string(), "region": "local"
    }]});
    let init = client
        .post(format!("{base}/cluster/init"))
        .json(&members)
        .send()
        .await
        .unwrap();
    assert!(init.status().is_success(), "{:?}", init.text().await);

    // Writes are refused until the node leads; retry each step a bounded number of times.
    let send = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let request = client.request(method, format!("{base}{path}"));
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let mut created = (0, Value::Null);
    for _ in 0..200 {
        created = send(reqwest::Method::POST, "/admin/events", Some(event_body())).await;
        if created.0 == 201 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(created.0, 201, "{}", created.1);
    let (_, hold) = send(
        reqwest::Method::POST,
        "/booking/hold",
        Some(json!({"event_id": "E", "customer_id": "c-1", "seats": ["A-1-1"]})),
    )
    .await;
    let (_, booking) = send(
        reqwest::Method::POST,
        "/booking/confirm",
        Some(json!({"hold_id": hold["hold_id"], "payment": {"token": "tok_visa"}})),
    )
    .await;
    let booking_id = booking["booking_id"].as_str().expect("booked").to_string();
    let (status, cancelled) = send(
        reqwest::Method::POST,
        "/booking/cancel",
        Some(json!({"booking_id": booking_id, "reason": "plans changed"})),
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");
    let refund_id = cancelled["refund"]["refund_id"]
        .as_str()
        .unwrap()
        .to_string();

    let mut lookup = Value::Null;
    for _ in 0..400 {
        lookup = send(
            reqwest::Method::GET,
            &format!("/bookings/{booking_id}"),
            None,
        )
        .await
        .1;
        if lookup["refund"]["status"] == "REFUNDED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(lookup["refund"]["status"], "REFUNDED", "{lookup}");
    assert_eq!(lookup["refund"]["attempts"], 1);
    assert_eq!(fake.calls(&refund_id), 2, "one failure, then the refund");
    assert_eq!(fake.refunds_made(), 1);
    let (_, listed) = send(reqwest::Method::GET, "/refunds?status=REFUNDED", None).await;
    assert_eq!(listed["refunds"][0]["refund_id"], refund_id.as_str());
    node.shutdown().await;
}
