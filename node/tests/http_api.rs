//! The HTTP API of API.md, driven in process through the router over a `LocalReplica`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use holdfast_node::expiry::{expire_due_holds, ExpiryConfig};
use holdfast_node::payment::{
    Charge, ChargeRequest, PaymentError, RefundError, RefundReceipt, RefundRequest,
};
use holdfast_node::replica::{
    read_now, ClusterStatus, CommittedOutcome, MemberSpec, NodeError, NodeId, Proposal, ReadMeta,
    ReadRequest, Replica,
};
use holdfast_node::{
    router, AppState, HttpConfig, LocalReplica, LocalReplicaConfig, PaymentProvider,
    SandboxProvider,
};
use holdfast_statemachine::{Command, StateMachine};
use serde_json::{json, Value};
use tower::ServiceExt;

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    raw: Vec<u8>,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

struct Node {
    router: Router,
    replica: Arc<LocalReplica>,
    sandbox: Arc<SandboxProvider>,
}

impl Node {
    fn new() -> Node {
        Node::with_config(HttpConfig::default())
    }

    fn with_config(config: HttpConfig) -> Node {
        Node::over(config, |replica| replica)
    }

    /// A node whose handlers reach the replica through `wrap` (fault injection); the test
    /// still reads the state from the replica itself.
    fn over(config: HttpConfig, wrap: impl FnOnce(Arc<dyn Replica>) -> Arc<dyn Replica>) -> Node {
        let replica = LocalReplica::shared(LocalReplicaConfig {
            min_index_wait: Duration::from_millis(50),
            ..LocalReplicaConfig::default()
        });
        let sandbox = Arc::new(SandboxProvider::default());
        let router = router(AppState::new(
            wrap(replica.clone()),
            sandbox.clone(),
            config,
        ));
        Node {
            router,
            replica,
            sandbox,
        }
    }

    /// Another router over the same replica with another payment provider.
    fn with_payments(&self, payments: Arc<dyn PaymentProvider>) -> Router {
        router(AppState::new(
            self.replica.clone(),
            payments,
            HttpConfig::default(),
        ))
    }

    async fn send(router: &Router, request: Request<Body>) -> Answer {
        let response = router.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let raw = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body")
            .to_vec();
        let body = if raw.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&raw).unwrap_or(Value::Null)
        };
        Answer {
            status,
            headers,
            body,
            raw,
        }
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Node::send(&self.router, request.body(Body::from(body)).unwrap()).await
    }

    async fn post(&self, path: &str, key: Option<&str>, body: Value) -> Answer {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(key) = key {
            headers.push(("idempotency-key", key));
        }
        self.raw(Method::POST, path, &headers, body.to_string().into_bytes())
            .await
    }

    async fn get(&self, path: &str) -> Answer {
        self.raw(Method::GET, path, &[], Vec::new()).await
    }

    /// The whole replicated state and the applied index: equal before and after a request
    /// means the request stored nothing.
    fn state(&self) -> (Vec<u8>, u64) {
        let (bytes, meta) = read_now(&*self.replica, |machine| machine.snapshot_bytes());
        (bytes, meta.applied_index)
    }

    async fn create_event(&self, event_id: &str) {
        let answer = self
            .post(
                "/admin/events",
                None,
                json!({
                    "event_id": event_id, "name": "Film", "category": "movie",
                    "starts_at": "2026-12-01T20:00:00Z", "currency": "EUR",
                    "seats": [{"id": "A-1", "section": "A", "row": "A", "number": 1, "price": 4500},
                              {"id": "A-2", "section": "A", "row": "A", "number": 2, "price": 4500}],
                    "seat_blocks": [{"section": "B", "rows": ["1", "2"], "seats_per_row": 3, "price": 3000}],
                    "pools": [{"id": "GA", "capacity": 5, "price": 2500}]
                }),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    }

    /// Event `E` with one pool `GA` of `capacity` at 100, created with the admin key of
    /// the keyed test nodes.
    async fn create_pool_event_as_admin(&self, capacity: u64) {
        let created = self
            .as_key(
                Method::POST,
                "/admin/events",
                "admin-key-000000001",
                None,
                json!({"event_id": "E", "currency": "EUR", "pools": [{"id": "GA", "capacity": capacity, "price": 100}]}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    }

    async fn hold(&self, event_id: &str, seats: &[&str], key: Option<&str>) -> Answer {
        self.post(
            "/booking/hold",
            key,
            json!({"event_id": event_id, "customer_id": "c-42", "seats": seats}),
        )
        .await
    }
}

fn error_shape_ok(answer: &Answer) {
    let error = &answer.body["error"];
    assert!(error["code"].is_string(), "no code in {}", answer.body);
    assert!(
        error["message"].is_string(),
        "no message in {}",
        answer.body
    );
    assert!(
        error["details"].is_object(),
        "no details in {}",
        answer.body
    );
}

#[tokio::test]
async fn book_a_seat_from_availability_to_refund() {
    let node = Node::new();
    node.create_event("E").await;

    let summary = node.get("/availability?event_id=E&view=summary").await;
    assert_eq!(summary.status, StatusCode::OK);
    assert_eq!(
        summary.body["summary"],
        json!({"seats_total": 8, "seats_available": 8, "seats_held": 0, "seats_booked": 0})
    );
    assert!(summary.body.get("seats").is_none());
    assert_eq!(summary.body["pools"][0]["id"], "GA");
    assert_eq!(summary.body["pools"][0]["currency"], "EUR");
    assert_eq!(summary.body["starts_at"], "2026-12-01T20:00:00Z");
    assert_eq!(summary.header("x-holdfast-node"), Some("1"));
    assert_eq!(summary.header("x-holdfast-leader"), Some("1"));
    assert_eq!(summary.header("x-holdfast-applied-index"), Some("1"));

    // Page through the full view three seats at a time.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let path = match &after {
            None => "/availability?event_id=E&limit=3".to_string(),
            Some(after) => format!("/availability?event_id=E&limit=3&after={after}"),
        };
        let page = node.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        for seat in page.body["seats"].as_array().unwrap() {
            assert_eq!(seat["status"], "AVAILABLE");
            assert_eq!(seat["currency"], "EUR");
            seen.push(seat["id"].as_str().unwrap().to_string());
        }
        match page.body.get("next_after") {
            Some(next) => after = Some(next.as_str().unwrap().to_string()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["A-1", "A-2", "B-1-1", "B-1-2", "B-1-3", "B-2-1", "B-2-2", "B-2-3"]
    );
    let section = node.get("/availability?event_id=E&section=A").await;
    assert_eq!(section.body["seats"].as_array().unwrap().len(), 2);

    let hold = node
        .post(
            "/booking/hold",
            Some("hold-1"),
            json!({"event_id": "E", "customer_id": "c-42", "seats": ["A-1", "A-2"],
                   "pools": [{"pool_id": "GA", "quantity": 2}], "ttl_seconds": 600}),
        )
        .await;
    assert_eq!(hold.status, StatusCode::CREATED, "{}", hold.body);
    assert_eq!(hold.body["status"], "HELD");
    assert_eq!(hold.body["amount"], 14000);
    assert_eq!(hold.body["currency"], "EUR");
    assert_eq!(
        hold.body["pools"],
        json!([{"pool_id": "GA", "quantity": 2}])
    );
    assert!(hold.body["expires_at"].as_str().unwrap().ends_with('Z'));
    assert!(hold.body["applied_index"].as_u64().unwrap() >= 2);
    let hold_id = hold.body["hold_id"].as_str().unwrap().to_string();
    assert!(hold_id.starts_with("h_"));

    let confirm = node
        .post(
            "/booking/confirm",
            Some("confirm-1"),
            json!({"hold_id": hold_id, "payment": {"method": "card", "token": "tok_visa"}}),
        )
        .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    assert_eq!(confirm.body["status"], "CONFIRMED");
    assert_eq!(confirm.body["hold_id"], hold_id.as_str());
    assert_eq!(confirm.body["amount"], 14000);
    assert_eq!(confirm.body["currency"], "EUR");
    assert!(confirm.body["payment_id"]
        .as_str()
        .unwrap()
        .starts_with("pay_"));
    assert!(confirm.body["applied_index"].is_u64());
    let booking_id = confirm.body["booking_id"].as_str().unwrap().to_string();

    let booking = node.get(&format!("/bookings/{booking_id}")).await;
    assert_eq!(booking.status, StatusCode::OK);
    assert_eq!(booking.body["status"], "CONFIRMED");
    assert_eq!(booking.body["seats"], json!(["A-1", "A-2"]));
    let held = node.get(&format!("/holds/{hold_id}")).await;
    assert_eq!(held.body["status"], "CONFIRMED");
    assert_eq!(held.body["booking_id"], booking_id.as_str());

    let full = node.get("/availability?event_id=E&limit=2").await;
    assert_eq!(full.body["seats"][0]["status"], "BOOKED");
    assert_eq!(full.body["summary"]["seats_booked"], 2);
    assert_eq!(full.body["pools"][0]["booked"], 2);

    let history = node.get("/customers/c-42/bookings").await;
    assert_eq!(history.status, StatusCode::OK);
    assert_eq!(
        history.body["bookings"][0]["booking_id"],
        booking_id.as_str()
    );
    assert!(history.body.get("next_after").is_none());

    let cancel = node
        .post(
            "/booking/cancel",
            Some("cancel-1"),
            json!({"booking_id": booking_id, "reason": "changed plans"}),
        )
        .await;
    assert_eq!(cancel.status, StatusCode::OK, "{}", cancel.body);
    assert_eq!(cancel.body["status"], "CANCELLED");
    assert_eq!(cancel.body["refund"]["status"], "PENDING");
    assert_eq!(cancel.body["refund"]["amount"], 14000);

    let after_cancel = node.get("/availability?event_id=E&view=summary").await;
    assert_eq!(after_cancel.body["summary"]["seats_available"], 8);
    assert_eq!(after_cancel.body["pools"][0]["available"], 5);
}

#[tokio::test]
async fn conflicting_holds_name_the_unavailable_items() {
    let node = Node::new();
    node.create_event("E").await;
    assert_eq!(
        node.hold("E", &["A-1"], None).await.status,
        StatusCode::CREATED
    );
    let conflict = node.hold("E", &["A-1", "A-2"], None).await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert_eq!(conflict.code(), "SEAT_UNAVAILABLE");
    assert_eq!(
        conflict.body["error"]["details"]["unavailable"],
        json!(["A-1"])
    );
    error_shape_ok(&conflict);
    // All or nothing: A-2 was not taken.
    let page = node.get("/availability?event_id=E&limit=2").await;
    assert_eq!(page.body["seats"][1]["status"], "AVAILABLE");

    let exhausted = node
        .post(
            "/booking/hold",
            None,
            json!({"event_id": "E", "customer_id": "c-1", "pools": [{"pool_id": "GA", "quantity": 6}]}),
        )
        .await;
    assert_eq!(exhausted.status, StatusCode::CONFLICT);
    assert_eq!(exhausted.code(), "POOL_EXHAUSTED");
    assert_eq!(
        exhausted.body["error"]["details"]["unavailable"],
        json!(["GA"])
    );

    let best = node
        .post(
            "/booking/hold",
            None,
            json!({"event_id": "E", "customer_id": "c-1", "best_available": {"count": 3, "section": "B"}}),
        )
        .await;
    assert_eq!(best.status, StatusCode::CREATED, "{}", best.body);
    assert_eq!(best.body["seats"].as_array().unwrap().len(), 3);
    let none_left = node
        .post(
            "/booking/hold",
            None,
            json!({"event_id": "E", "customer_id": "c-2", "best_available": {"count": 4}}),
        )
        .await;
    assert_eq!(none_left.status, StatusCode::CONFLICT);
    assert_eq!(none_left.code(), "NO_ADJACENT_SEATS");
}

#[tokio::test]
async fn a_declined_payment_leaves_the_hold_held() {
    let node = Node::new();
    node.create_event("E").await;
    let hold = node.hold("E", &["A-1"], None).await;
    let hold_id = hold.body["hold_id"].as_str().unwrap().to_string();
    let before = node.state();

    let declined = node
        .post(
            "/booking/confirm",
            Some("pay-1"),
            json!({"hold_id": hold_id, "payment": {"method": "card", "token": "tok_declined"}}),
        )
        .await;
    assert_eq!(declined.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(declined.code(), "PAYMENT_DECLINED");
    error_shape_ok(&declined);
    // The charge intent recorded before the provider was asked is dropped again: nothing
    // is left but the clock.
    let (before, _) = before;
    let (after, _) = node.state();
    let lasting = |bytes: &[u8]| {
        let machine = StateMachine::from_snapshot_bytes(bytes).unwrap();
        (
            machine.hold_by_id(&hold_id),
            machine.summary("E"),
            machine.pending_refunds(10),
            machine.charge_intents_len(),
            machine.remembers_request("confirm:pay-1"),
        )
    };
    assert_eq!(
        lasting(&after),
        lasting(&before),
        "a declined payment stores nothing"
    );
    assert_eq!(node.sandbox.charges_made(), 0);
    assert_eq!(
        node.get(&format!("/holds/{hold_id}")).await.body["status"],
        "HELD"
    );
    let history = node.get("/customers/c-42/bookings").await;
    assert_eq!(history.body["bookings"], json!([]));

    let unknown_token = node
        .post(
            "/booking/confirm",
            None,
            json!({"hold_id": hold_id, "payment": {"token": "tok_unknown"}}),
        )
        .await;
    assert_eq!(unknown_token.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown_token.code(), "INVALID_FIELD");
    assert_eq!(
        unknown_token.body["error"]["details"]["field"],
        "payment.token"
    );

    // Declines are not remembered: the same key with a good card goes through.
    let paid = node
        .post(
            "/booking/confirm",
            Some("pay-1"),
            json!({"hold_id": hold_id, "payment": {"method": "card", "token": "tok_visa"}}),
        )
        .await;
    assert_eq!(paid.status, StatusCode::OK, "{}", paid.body);

    let again = node
        .post(
            "/booking/confirm",
            Some("pay-2"),
            json!({"hold_id": hold_id, "payment": {"token": "tok_visa"}}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "HOLD_NOT_ACTIVE");
    assert_eq!(
        node.sandbox.charges_made(),
        1,
        "no charge for a confirmed hold"
    );

    let missing = node
        .post(
            "/booking/confirm",
            None,
            json!({"hold_id": "h_999", "payment": {"token": "tok_visa"}}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "HOLD_NOT_FOUND");
}

#[tokio::test]
async fn a_retried_request_gets_the_first_answer() {
    let node = Node::new();
    node.create_event("E").await;

    let first = node.hold("E", &["A-1"], Some("k-1")).await;
    let state_after_first = node.state();
    let again = node.hold("E", &["A-1"], Some("k-1")).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!((again.status, &again.raw), (first.status, &first.raw));
    let hold_id = first.body["hold_id"].as_str().unwrap().to_string();
    assert_eq!(
        node.get("/availability?event_id=E&view=summary").await.body["summary"]["seats_held"],
        1
    );
    assert_eq!(
        state_after_first.1 + 1,
        node.state().1,
        "a replay is logged"
    );

    let reused = node.hold("E", &["A-2"], Some("k-1")).await;
    assert_eq!(reused.status, StatusCode::CONFLICT);
    assert_eq!(reused.code(), "IDEMPOTENCY_KEY_REUSED");

    // Keys are scoped per route: the same key on another route is another request.
    let extend = node
        .post(
            "/booking/extend",
            Some("k-1"),
            json!({"hold_id": hold_id, "ttl_seconds": 900}),
        )
        .await;
    assert_eq!(extend.status, StatusCode::OK, "{}", extend.body);
    assert!(extend.body["expires_at"].as_str() > first.body["expires_at"].as_str());

    // A state machine refusal is remembered too.
    let refused = node.hold("E", &["A-1"], Some("k-2")).await;
    assert_eq!(refused.code(), "SEAT_UNAVAILABLE");
    let release = node
        .post("/booking/cancel", None, json!({"hold_id": hold_id}))
        .await;
    assert_eq!(release.status, StatusCode::OK);
    assert_eq!(release.body["status"], "CANCELLED");
    let refused_again = node.hold("E", &["A-1"], Some("k-2")).await;
    assert_eq!(
        (refused_again.status, &refused_again.raw),
        (refused.status, &refused.raw)
    );

    // An answer given at the edge is not remembered: a corrected retry is served.
    let before = node.state();
    let bad = node
        .post(
            "/booking/hold",
            Some("k-3"),
            json!({"event_id": "E", "customer_id": "c-1", "pools": [{"pool_id": "GA", "quantity": 0}]}),
        )
        .await;
    assert_eq!(bad.code(), "INVALID_QUANTITY");
    assert_eq!(node.state(), before);
    let good = node
        .post(
            "/booking/hold",
            Some("k-3"),
            json!({"event_id": "E", "customer_id": "c-1", "pools": [{"pool_id": "GA", "quantity": 1}]}),
        )
        .await;
    assert_eq!(good.status, StatusCode::CREATED, "{}", good.body);

    // A retried confirm never charges twice.
    let good_hold = good.body["hold_id"].as_str().unwrap();
    let body = json!({"hold_id": good_hold, "payment": {"method": "card", "token": "tok_visa"}});
    let confirm = node
        .post("/booking/confirm", Some("c-1"), body.clone())
        .await;
    let confirm_again = node.post("/booking/confirm", Some("c-1"), body).await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    assert_eq!(
        (confirm_again.status, &confirm_again.raw),
        (confirm.status, &confirm.raw)
    );
    assert_eq!(node.sandbox.charges_made(), 1);
    let other_card = node
        .post(
            "/booking/confirm",
            Some("c-1"),
            json!({"hold_id": good_hold, "payment": {"token": "tok_declined"}}),
        )
        .await;
    assert_eq!(other_card.code(), "IDEMPOTENCY_KEY_REUSED");

    let long_key = "k".repeat(129);
    let invalid_key = node.hold("E", &["A-2"], Some(&long_key)).await;
    assert_eq!(invalid_key.status, StatusCode::BAD_REQUEST);
    assert_eq!(invalid_key.code(), "INVALID_FIELD");
    assert_eq!(
        invalid_key.body["error"]["details"]["field"],
        "Idempotency-Key"
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_code_and_stores_nothing() {
    let node = Node::new();
    node.create_event("E").await;
    let before = node.state();

    let cases: Vec<(Answer, StatusCode, &str)> = vec![
        (
            node.raw(Method::POST, "/booking/hold", &[], b"{\"event_id\": ".to_vec())
                .await,
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
        ),
        (
            node.raw(Method::POST, "/booking/hold", &[], Vec::new()).await,
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
        ),
        (
            node.post(
                "/booking/hold",
                None,
                json!({"event_id": "E", "customer_id": 42, "seats": ["A-1"]}),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
        ),
        (
            node.post("/booking/hold", None, json!({"event_id": "E", "seats": ["A-1"]}))
                .await,
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
        ),
        (
            node.post(
                "/booking/hold",
                None,
                json!({"event_id": "E", "customer_id": "c", "pools": [{"pool_id": "GA", "quantity": 0}]}),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "INVALID_QUANTITY",
        ),
        (
            node.post(
                "/booking/hold",
                None,
                json!({"event_id": "E", "customer_id": "c", "best_available": {"count": 0}}),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "INVALID_QUANTITY",
        ),
        (
            node.post(
                "/booking/hold",
                None,
                json!({"event_id": "E", "customer_id": "c", "seats": ["A-1"], "ttl_seconds": 0}),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "INVALID_TTL",
        ),
        (
            node.post(
                "/booking/hold",
                None,
                json!({"event_id": "E", "customer_id": "c", "seats": (0..101).map(|n| format!("S-{n}")).collect::<Vec<_>>()}),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "TOO_MANY_ITEMS",
        ),
        (
            node.post(
                "/booking/hold",
                None,
                json!({"event_id": "E", "customer_id": "c", "seats": ["A-1", "A-1"]}),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
        ),
        (
            node.post("/booking/hold", None, json!({"event_id": "E", "customer_id": "c"}))
                .await,
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
        ),
        (
            node.post("/booking/cancel", None, json!({})).await,
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
        ),
        (
            node.post(
                "/admin/events",
                None,
                json!({"event_id": "F", "currency": "euro"}),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
        ),
        (
            node.post(
                "/admin/events",
                None,
                json!({"event_id": "F", "currency": "EUR", "starts_at": "next tuesday"}),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
        ),
        (
            node.raw(Method::POST, "/booking/hold", &[], b"[1, 2]".to_vec())
                .await,
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
        ),
        (
            node.get("/availability").await,
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
        ),
        (
            node.get("/availability?event_id=E&limit=ten").await,
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
        ),
        (
            node.get("/availability?event_id=E&consistency=eventual").await,
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
        ),
        (
            node.get("/no/such/route").await,
            StatusCode::NOT_FOUND,
            "ROUTE_NOT_FOUND",
        ),
        (
            node.raw(Method::PUT, "/booking/hold", &[], Vec::new()).await,
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
        ),
        (
            node.get("/cluster/nodes/abc").await,
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
        ),
        (
            node.raw(Method::DELETE, "/cluster/nodes/abc", &[], Vec::new())
                .await,
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
        ),
    ];
    for (index, (answer, status, code)) in cases.iter().enumerate() {
        assert_eq!(answer.status, *status, "case {index}: {}", answer.body);
        assert_eq!(answer.code(), *code, "case {index}: {}", answer.body);
        assert_eq!(
            answer.header("content-type"),
            Some("application/json"),
            "case {index}"
        );
        error_shape_ok(answer);
    }
    assert_eq!(cases[2].0.body["error"]["details"]["field"], "customer_id");
    assert_eq!(cases[3].0.body["error"]["details"]["field"], "customer_id");
    assert_eq!(
        cases[4].0.body["error"]["details"]["field"],
        "pools[0].quantity"
    );
    assert_eq!(node.state(), before, "bad input stored something");

    // Refusals that need the state: nothing changes but the log position.
    let unknown_event = node.hold("NOPE", &["A-1"], None).await;
    assert_eq!(unknown_event.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown_event.code(), "EVENT_NOT_FOUND");
    let unknown_seat = node.hold("E", &["Z-9"], None).await;
    assert_eq!(unknown_seat.code(), "SEAT_NOT_FOUND");
    let availability = node.get("/availability?event_id=NOPE").await;
    assert_eq!(availability.status, StatusCode::NOT_FOUND);
    assert_eq!(availability.code(), "EVENT_NOT_FOUND");
    let summary = node.get("/availability?event_id=E&view=summary").await;
    assert_eq!(summary.body["summary"]["seats_held"], 0);
    assert_eq!(node.get("/holds/h_1").await.code(), "HOLD_NOT_FOUND");
    assert_eq!(node.get("/bookings/b_1").await.code(), "BOOKING_NOT_FOUND");
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused() {
    let node = Node::new();
    node.create_event("E").await;
    let before = node.state();

    let padding = "x".repeat(65 * 1024);
    let big = json!({"event_id": "E", "customer_id": "c", "seats": ["A-1"], "note": padding})
        .to_string()
        .into_bytes();
    // With a Content-Length header ...
    let length = big.len().to_string();
    let declared = node
        .raw(
            Method::POST,
            "/booking/hold",
            &[("content-length", &length)],
            big.clone(),
        )
        .await;
    assert_eq!(declared.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(declared.code(), "BODY_TOO_LARGE");
    // The body is left unread, so the connection cannot be reused.
    assert_eq!(declared.header("connection"), Some("close"));
    // ... and streamed without one.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(4096).map(|chunk| Ok(chunk.to_vec())).collect();
    let request = Request::builder()
        .method(Method::POST)
        .uri("/booking/confirm")
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .unwrap();
    let streamed = Node::send(&node.router, request).await;
    assert_eq!(streamed.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(streamed.code(), "BODY_TOO_LARGE");
    assert_eq!(node.state(), before);

    // Admin routes take up to 4 MiB: a 1 MiB venue is fine, 5 MiB is not.
    let seats: Vec<Value> = (0..16_000)
        .map(|n| json!({"id": format!("S-{n}"), "section": "S", "row": format!("{}", n / 100), "number": n % 100 + 1, "price": 1000}))
        .collect();
    let venue = json!({"event_id": "BIG", "currency": "EUR", "seats": seats});
    assert!(venue.to_string().len() > 1024 * 1024);
    let created = node.post("/admin/events", None, venue).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let huge = json!({"event_id": "HUGE", "currency": "EUR", "name": "x".repeat(5 * 1024 * 1024)});
    let refused = node.post("/admin/events", None, huge).await;
    assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(refused.code(), "BODY_TOO_LARGE");
}

/// A provider that takes its time: the hold expires while the charge is in flight.
struct SlowProvider {
    inner: SandboxProvider,
    delay: Duration,
}

#[async_trait]
impl PaymentProvider for SlowProvider {
    fn name(&self) -> &str {
        "slow-sandbox"
    }

    async fn charge(&self, request: ChargeRequest) -> Result<Charge, PaymentError> {
        tokio::time::sleep(self.delay).await;
        self.inner.charge(request).await
    }

    async fn find_charge(&self, key: &str) -> Result<Option<Charge>, PaymentError> {
        self.inner.find_charge(key).await
    }

    async fn refund(&self, request: RefundRequest) -> Result<RefundReceipt, RefundError> {
        self.inner.refund(request).await
    }
}

#[tokio::test]
async fn expired_holds_cannot_be_confirmed_and_a_late_charge_is_refunded() {
    let node = Node::new();
    node.create_event("E").await;
    let short = |seat: &str| json!({"event_id": "E", "customer_id": "c-1", "seats": [seat], "ttl_seconds": 1});
    let early = node.post("/booking/hold", None, short("A-1")).await;
    let late = node.post("/booking/hold", None, short("A-2")).await;
    let early_id = early.body["hold_id"].as_str().unwrap().to_string();
    let late_id = late.body["hold_id"].as_str().unwrap().to_string();

    // The charge outlives the hold: the confirm is refused and the refund recorded.
    let slow = node.with_payments(Arc::new(SlowProvider {
        inner: SandboxProvider::default(),
        delay: Duration::from_millis(1_200),
    }));
    let request = Request::builder()
        .method(Method::POST)
        .uri("/booking/confirm")
        .header("idempotency-key", "late-1")
        .body(Body::from(
            json!({"hold_id": late_id, "payment": {"token": "tok_visa"}}).to_string(),
        ))
        .unwrap();
    let refused = Node::send(&slow, request).await;
    assert_eq!(refused.status, StatusCode::GONE, "{}", refused.body);
    assert_eq!(refused.code(), "HOLD_EXPIRED");
    let refund = &refused.body["error"]["details"]["refund"];
    assert_eq!(refund["status"], "PENDING");
    assert_eq!(refund["amount"], 4500);
    assert_eq!(refund["provider"], "slow-sandbox");

    // Past its time, a hold shows as expired even before its items are freed ...
    assert_eq!(
        node.get(&format!("/holds/{early_id}")).await.body["status"],
        "EXPIRED"
    );
    // ... and is refused before anything is charged.
    let too_late = node
        .post(
            "/booking/confirm",
            None,
            json!({"hold_id": early_id, "payment": {"token": "tok_visa"}}),
        )
        .await;
    assert_eq!(too_late.status, StatusCode::GONE);
    assert_eq!(too_late.code(), "HOLD_EXPIRED");
    assert_eq!(node.sandbox.charges_made(), 0);

    // The expiry ticker's step frees the items without client action.
    let ended = expire_due_holds(&*node.replica, &ExpiryConfig::default())
        .await
        .unwrap();
    assert!(ended >= 1);
    assert_eq!(
        node.get(&format!("/holds/{early_id}")).await.body["status"],
        "EXPIRED"
    );
    let summary = node.get("/availability?event_id=E&view=summary").await;
    assert_eq!(summary.body["summary"]["seats_available"], 8);
    assert_eq!(
        expire_due_holds(&*node.replica, &ExpiryConfig::default())
            .await
            .unwrap(),
        0,
        "nothing is proposed when no hold is due"
    );
}

#[tokio::test]
async fn etags_follow_the_event_version() {
    let node = Node::new();
    node.create_event("E").await;
    node.create_event("OTHER").await;
    let first = node.get("/availability?event_id=E").await;
    let tag = first.header("etag").unwrap().to_string();
    let cached = node
        .raw(
            Method::GET,
            "/availability?event_id=E",
            &[("if-none-match", &tag)],
            Vec::new(),
        )
        .await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);
    assert!(cached.raw.is_empty());
    assert_eq!(cached.header("etag"), Some(tag.as_str()));
    assert!(cached.header("x-holdfast-applied-index").is_some());

    // A write to another event leaves this one's tag alone.
    assert_eq!(
        node.hold("OTHER", &["A-1"], None).await.status,
        StatusCode::CREATED
    );
    let unrelated = node
        .raw(
            Method::GET,
            "/availability?event_id=E",
            &[("if-none-match", &tag)],
            Vec::new(),
        )
        .await;
    assert_eq!(unrelated.status, StatusCode::NOT_MODIFIED);

    // Views and pages do not share a tag.
    let summary = node.get("/availability?event_id=E&view=summary").await;
    assert_ne!(summary.header("etag"), Some(tag.as_str()));
    let paged = node.get("/availability?event_id=E&limit=2").await;
    assert_ne!(paged.header("etag"), Some(tag.as_str()));

    // A write to this event changes it.
    assert_eq!(
        node.hold("E", &["A-1"], None).await.status,
        StatusCode::CREATED
    );
    let changed = node
        .raw(
            Method::GET,
            "/availability?event_id=E",
            &[("if-none-match", &tag)],
            Vec::new(),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_ne!(changed.header("etag"), Some(tag.as_str()));

    // Lookups are tagged by content.
    let hold = node.get("/holds/h_2").await;
    let hold_tag = hold.header("etag").unwrap().to_string();
    let hold_cached = node
        .raw(
            Method::GET,
            "/holds/h_2",
            &[("if-none-match", &hold_tag)],
            Vec::new(),
        )
        .await;
    assert_eq!(hold_cached.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn read_levels_are_parsed_and_min_index_is_bounded() {
    let node = Node::new();
    node.create_event("E").await;
    for query in [
        "consistency=stale",
        "consistency=bounded&max_staleness_ms=50",
        "consistency=linearizable",
        "min_index=1",
    ] {
        let answer = node.get(&format!("/availability?event_id=E&{query}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{query}: {}", answer.body);
    }
    let waiting = node.get("/availability?event_id=E&min_index=99").await;
    assert_eq!(waiting.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(waiting.code(), "INDEX_NOT_REACHED");
    assert_eq!(waiting.header("retry-after"), Some("1"));
    let negative = node.get("/availability?event_id=E&min_index=-1").await;
    assert_eq!(negative.code(), "INVALID_FIELD");
}

#[tokio::test]
async fn inventory_can_be_changed_but_not_under_a_hold() {
    let node = Node::new();
    node.create_event("E").await;
    let exists = node
        .post(
            "/admin/events",
            None,
            json!({"event_id": "E", "currency": "EUR"}),
        )
        .await;
    assert_eq!(exists.status, StatusCode::CONFLICT);
    assert_eq!(exists.code(), "EVENT_EXISTS");

    let seats = node
        .post(
            "/admin/events/E/seats",
            Some("seats-1"),
            json!({"seat_blocks": [{"section": "C", "rows": ["1"], "seats_per_row": 2, "price": 100}]}),
        )
        .await;
    assert_eq!(seats.status, StatusCode::OK, "{}", seats.body);
    assert_eq!(seats.body["version"], 2);
    let pools = node
        .post(
            "/admin/events/E/pools",
            None,
            json!({"pools": [{"id": "VIP", "capacity": 10, "price": 9000}]}),
        )
        .await;
    assert_eq!(pools.status, StatusCode::OK, "{}", pools.body);
    let duplicate = node
        .post(
            "/admin/events/E/pools",
            None,
            json!({"pools": [{"id": "VIP", "capacity": 10, "price": 9000}]}),
        )
        .await;
    assert_eq!(duplicate.code(), "ITEM_EXISTS");
    assert_eq!(duplicate.status, StatusCode::CONFLICT);

    let hold = node
        .post(
            "/booking/hold",
            None,
            json!({"event_id": "E", "customer_id": "c", "seats": ["C-1-1"], "pools": [{"pool_id": "VIP", "quantity": 4}]}),
        )
        .await;
    assert_eq!(hold.status, StatusCode::CREATED, "{}", hold.body);
    let patch = node
        .raw(
            Method::PATCH,
            "/admin/events/E/pools/VIP",
            &[],
            json!({"capacity": 3}).to_string().into_bytes(),
        )
        .await;
    assert_eq!(patch.status, StatusCode::CONFLICT);
    assert_eq!(patch.code(), "CAPACITY_BELOW_USAGE");
    let patch = node
        .raw(
            Method::PATCH,
            "/admin/events/E/pools/VIP",
            &[],
            json!({"capacity": 20}).to_string().into_bytes(),
        )
        .await;
    assert_eq!(patch.status, StatusCode::OK, "{}", patch.body);

    let in_use = node
        .raw(
            Method::DELETE,
            "/admin/events/E/seats/C-1-1",
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(in_use.status, StatusCode::CONFLICT);
    assert_eq!(in_use.code(), "ITEM_IN_USE");
    let pool_in_use = node
        .raw(Method::DELETE, "/admin/events/E/pools/VIP", &[], Vec::new())
        .await;
    assert_eq!(pool_in_use.code(), "ITEM_IN_USE");
    let removed = node
        .raw(
            Method::DELETE,
            "/admin/events/E/seats/C-1-2",
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.body);
    let removed_pool = node
        .raw(Method::DELETE, "/admin/events/E/pools/GA", &[], Vec::new())
        .await;
    assert_eq!(removed_pool.status, StatusCode::OK, "{}", removed_pool.body);
    let gone = node
        .raw(Method::DELETE, "/admin/events/E/pools/GA", &[], Vec::new())
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.code(), "POOL_NOT_FOUND");
    let summary = node.get("/availability?event_id=E&view=summary").await;
    assert_eq!(summary.body["summary"]["seats_total"], 9);
    assert_eq!(
        summary.body["version"], 7,
        "six inventory changes and a hold"
    );
}

#[tokio::test]
async fn cluster_operations_go_through_the_seam() {
    let node = Node::new();
    let status = node.get("/cluster/status").await;
    assert_eq!(status.status, StatusCode::OK);
    assert_eq!(status.body["node_id"], 1);
    assert_eq!(status.body["leader_id"], 1);
    assert_eq!(status.body["role"], "leader");
    assert_eq!(status.body["members"][0]["voter"], true);

    let init = node
        .post(
            "/cluster/init",
            None,
            json!({"members": [{"id": 1, "raft_addr": "127.0.0.1:7101", "http_addr": "127.0.0.1:7001", "region": "eu"}]}),
        )
        .await;
    assert_eq!(init.status, StatusCode::CONFLICT);
    assert_eq!(init.code(), "ALREADY_INITIALIZED");
    let learner = node
        .post(
            "/cluster/learners",
            None,
            json!({"id": 4, "raft_addr": "127.0.0.1:7104", "http_addr": "127.0.0.1:7004"}),
        )
        .await;
    assert_eq!(learner.code(), "MEMBERSHIP_REFUSED");
    let membership = node
        .post("/cluster/membership", None, json!({"voters": [1]}))
        .await;
    assert_eq!(membership.status, StatusCode::OK);
    let empty = node
        .post("/cluster/membership", None, json!({"voters": []}))
        .await;
    assert_eq!(empty.code(), "INVALID_FIELD");
    let last_voter = node
        .raw(Method::DELETE, "/cluster/nodes/1", &[], Vec::new())
        .await;
    assert_eq!(last_voter.code(), "MEMBERSHIP_REFUSED");
    let unknown = node
        .raw(Method::DELETE, "/cluster/nodes/9", &[], Vec::new())
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.code(), "NODE_NOT_FOUND");

    assert_eq!(node.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(node.get("/readyz").await.body["status"], "ok");
}

#[tokio::test]
async fn operations_endpoints_describe_the_node() {
    let node = Node::new();
    node.create_event("E").await;
    node.hold("E", &["A-1"], None).await;
    node.hold("E", &["A-1"], None).await;

    let traced = node
        .raw(
            Method::GET,
            "/healthz",
            &[("x-request-id", "trace-me-1")],
            Vec::new(),
        )
        .await;
    assert_eq!(traced.header("x-request-id"), Some("trace-me-1"));
    assert!(node.get("/healthz").await.header("x-request-id").is_some());

    let metrics = node.get("/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = String::from_utf8(metrics.raw).unwrap();
    for needle in [
        "holdfast_holds_total{outcome=\"held\"}",
        "holdfast_holds_total{outcome=\"seat_unavailable\"}",
        "holdfast_hold_seconds_bucket",
        "holdfast_applied_index",
        "holdfast_event_seats{",
    ] {
        assert!(text.contains(needle), "no {needle} in\n{text}");
    }

    let openapi = node.get("/openapi.json").await;
    assert_eq!(openapi.status, StatusCode::OK);
    assert!(openapi.body["openapi"].as_str().unwrap().starts_with("3."));
    let paths = openapi.body["paths"].as_object().unwrap();
    for path in [
        "/availability",
        "/booking/hold",
        "/booking/extend",
        "/booking/confirm",
        "/booking/cancel",
        "/holds/{hold_id}",
        "/bookings/{booking_id}",
        "/customers/{customer_id}/bookings",
        "/admin/events",
        "/admin/events/{event_id}/seats",
        "/admin/events/{event_id}/pools",
        "/admin/events/{event_id}/pools/{pool_id}",
        "/admin/events/{event_id}/seats/{seat_id}",
        "/cluster/status",
        "/cluster/init",
        "/cluster/learners",
        "/cluster/membership",
        "/cluster/nodes/{node_id}",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(paths.contains_key(path), "openapi.json lacks {path}");
    }
    assert!(paths["/admin/events/{event_id}/pools/{pool_id}"]
        .get("patch")
        .is_some());
}

#[tokio::test]
async fn serves_on_a_socket_and_shuts_down_gracefully() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let node = Node::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(holdfast_node::run_http(
        node.router.clone(),
        listener,
        async move {
            let _ = stopped.await;
        },
    ));
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"status\":\"ok\""), "{answer}");
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn concurrent_holds_on_one_seat_have_one_winner() {
    let node = Arc::new(Node::new());
    node.create_event("E").await;
    let mut tasks = Vec::new();
    for client in 0..50 {
        let node = node.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("client-{client}");
            node.hold("E", &["B-1-2"], Some(&key)).await.status
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    let won = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let lost = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((won, lost), (1, 49), "{statuses:?}");
}

/// A small deterministic generator, so that a failure replays.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Mangles a valid body: truncation, byte flips, type swaps, junk.
fn mangle(random: &mut XorShift, valid: &str) -> Vec<u8> {
    let mut bytes = valid.as_bytes().to_vec();
    match random.below(5) {
        0 => bytes.truncate(random.below(bytes.len().max(1))),
        1 => {
            for _ in 0..1 + random.below(4) {
                let at = random.below(bytes.len());
                let alphabet = b"{}[]\":,0-9eE\\ nulltrue\x00\xff";
                bytes[at] = alphabet[random.below(alphabet.len())];
            }
        }
        2 => {
            let text = valid
                .replacen("\"E\"", "12", 1)
                .replacen("600", "\"600\"", 1)
                .replacen('2', "-2", 1);
            bytes = text.into_bytes();
        }
        3 => bytes = (0..random.below(64)).map(|_| random.next() as u8).collect(),
        _ => {
            let text = valid.replacen(':', ": {\"nested\": [1, {}]}, \"x\":", 1);
            bytes = text.into_bytes();
        }
    }
    bytes
}

#[tokio::test]
async fn mangled_bodies_get_json_errors_and_never_break_the_node() {
    let node = Node::new();
    node.create_event("E").await;
    let routes: [(&str, Method, String); 7] = [
        (
            "/booking/hold",
            Method::POST,
            json!({"event_id": "E", "customer_id": "c", "seats": ["A-1"], "pools": [{"pool_id": "GA", "quantity": 2}], "ttl_seconds": 600}).to_string(),
        ),
        ("/booking/extend", Method::POST, json!({"hold_id": "h_1", "ttl_seconds": 600}).to_string()),
        (
            "/booking/confirm",
            Method::POST,
            json!({"hold_id": "h_1", "payment": {"method": "card", "token": "tok_visa"}}).to_string(),
        ),
        ("/booking/cancel", Method::POST, json!({"hold_id": "h_1"}).to_string()),
        (
            "/admin/events",
            Method::POST,
            json!({"event_id": "F", "currency": "EUR", "seat_blocks": [{"section": "A", "rows": ["1"], "seats_per_row": 2, "price": 1}]}).to_string(),
        ),
        ("/admin/events/E/pools/GA", Method::PATCH, json!({"capacity": 7}).to_string()),
        ("/cluster/membership", Method::POST, json!({"voters": [1]}).to_string()),
    ];
    let mut random = XorShift(0x5eed_1234_abcd_0001);
    for round in 0..60 {
        for (path, method, valid) in &routes {
            let body = mangle(&mut random, valid);
            let answer = node.raw(method.clone(), path, &[], body.clone()).await;
            let text = String::from_utf8_lossy(&body);
            assert!(
                !answer.status.is_server_error(),
                "round {round} {path} {text:?}: {} {}",
                answer.status,
                answer.body
            );
            if !answer.status.is_success() {
                assert_eq!(answer.header("content-type"), Some("application/json"));
                error_shape_ok(&answer);
            }
        }
    }
    assert_eq!(node.get("/healthz").await.status, StatusCode::OK);
    let summary = node.get("/availability?event_id=E&view=summary").await;
    assert_eq!(summary.status, StatusCode::OK);
}

#[tokio::test]
async fn keys_file_switches_authentication_on() {
    let keys = holdfast_node::auth::AuthKeys::parse(
        "customer customer-key-0001\nadmin admin-key-000000001\noperator operator-key-00001\n",
    )
    .unwrap();
    let node = Node::with_config(HttpConfig {
        auth_keys: Some(Arc::new(keys)),
        ..HttpConfig::default()
    });
    let call = |method: Method, path: &'static str, key: Option<&'static str>, body: Value| {
        let node = &node;
        async move {
            let bearer = key.map(|key| format!("Bearer {key}"));
            let mut headers = Vec::new();
            if let Some(bearer) = &bearer {
                headers.push(("authorization", bearer.as_str()));
            }
            let body = if body.is_null() {
                Vec::new()
            } else {
                body.to_string().into_bytes()
            };
            node.raw(method, path, &headers, body).await
        }
    };

    let anonymous = call(Method::GET, "/availability?event_id=E", None, Value::Null).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.code(), "UNAUTHENTICATED");
    assert!(anonymous.header("www-authenticate").is_some());
    assert!(anonymous.header("x-request-id").is_some());
    error_shape_ok(&anonymous);
    let unknown = call(
        Method::GET,
        "/availability?event_id=E",
        Some("guessed-key-00000"),
        Value::Null,
    )
    .await;
    assert_eq!(unknown.code(), "UNAUTHENTICATED");
    assert_eq!(
        call(Method::GET, "/healthz", None, Value::Null)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        call(Method::GET, "/openapi.json", None, Value::Null)
            .await
            .status,
        StatusCode::OK
    );

    let event = json!({"event_id": "E", "currency": "EUR", "pools": [{"id": "GA", "capacity": 5, "price": 100}]});
    let customer_admin = call(
        Method::POST,
        "/admin/events",
        Some("customer-key-0001"),
        event.clone(),
    )
    .await;
    assert_eq!(customer_admin.status, StatusCode::FORBIDDEN);
    assert_eq!(customer_admin.code(), "FORBIDDEN");
    let created = call(
        Method::POST,
        "/admin/events",
        Some("admin-key-000000001"),
        event,
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let read = call(
        Method::GET,
        "/availability?event_id=E",
        Some("customer-key-0001"),
        Value::Null,
    )
    .await;
    assert_eq!(read.status, StatusCode::OK);
    let hold = call(
        Method::POST,
        "/booking/hold",
        Some("customer-key-0001"),
        json!({"event_id": "E", "customer_id": "c", "pools": [{"pool_id": "GA", "quantity": 1}]}),
    )
    .await;
    assert_eq!(hold.status, StatusCode::CREATED, "{}", hold.body);

    let admin_cluster = call(
        Method::GET,
        "/cluster/status",
        Some("admin-key-000000001"),
        Value::Null,
    )
    .await;
    assert_eq!(admin_cluster.code(), "FORBIDDEN");
    let operator_cluster = call(
        Method::GET,
        "/cluster/status",
        Some("operator-key-00001"),
        Value::Null,
    )
    .await;
    assert_eq!(operator_cluster.status, StatusCode::OK);
    let metrics = call(
        Method::GET,
        "/metrics",
        Some("customer-key-0001"),
        Value::Null,
    )
    .await;
    assert_eq!(metrics.status, StatusCode::FORBIDDEN);
    let operator_booking = call(
        Method::GET,
        "/availability?event_id=E",
        Some("operator-key-00001"),
        Value::Null,
    )
    .await;
    assert_eq!(operator_booking.status, StatusCode::OK);
}

/// A node with one key of each kind: an unbound customer key (a trusted front end), keys
/// bound to alice and to bob, admin, monitor and operator.
fn node_with_owner_keys() -> Node {
    let keys = holdfast_node::auth::AuthKeys::parse(
        "customer front-end-key-0001\n\
         customer alice-key-000000001 alice\n\
         customer bob-key-00000000001 bob\n\
         admin    admin-key-000000001\n\
         monitor  monitor-key-0000001\n\
         operator operator-key-00001\n",
    )
    .unwrap();
    Node::with_config(HttpConfig {
        auth_keys: Some(Arc::new(keys)),
        ..HttpConfig::default()
    })
}

impl Node {
    /// A request with `Authorization: Bearer <bearer>` and, when given, an idempotency key.
    async fn as_key(
        &self,
        method: Method,
        path: &str,
        bearer: &str,
        idempotency_key: Option<&str>,
        body: Value,
    ) -> Answer {
        let authorization = format!("Bearer {bearer}");
        let mut headers = vec![
            ("authorization", authorization.as_str()),
            ("content-type", "application/json"),
        ];
        if let Some(key) = idempotency_key {
            headers.push(("idempotency-key", key));
        }
        let body = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        self.raw(method, path, &headers, body).await
    }
}

const ALICE: &str = "alice-key-000000001";
const BOB: &str = "bob-key-00000000001";

#[tokio::test]
async fn a_bound_customer_key_acts_only_for_its_customer() {
    let node = node_with_owner_keys();
    node.create_pool_event_as_admin(10).await;
    let hold_body = |customer: &str| json!({"event_id": "E", "customer_id": customer, "pools": [{"pool_id": "GA", "quantity": 1}]});

    // A hold in another customer's name: refused, and nothing stored.
    let before = node.state();
    let forged = node
        .as_key(Method::POST, "/booking/hold", BOB, None, hold_body("alice"))
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
    assert_eq!(forged.code(), "FORBIDDEN");
    error_shape_ok(&forged);
    assert!(node.state() == before, "a refused hold stored something");

    let held = node
        .as_key(
            Method::POST,
            "/booking/hold",
            ALICE,
            None,
            hold_body("alice"),
        )
        .await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.body);
    let hold_id = held.body["hold_id"].as_str().unwrap().to_string();

    // Bob can neither see nor touch alice's hold; a hold that does not exist is a 404.
    let before = node.state();
    let hold_path = format!("/holds/{hold_id}");
    for (method, path, body) in [
        (Method::GET, hold_path.as_str(), Value::Null),
        (
            Method::POST,
            "/booking/extend",
            json!({"hold_id": hold_id, "ttl_seconds": 300}),
        ),
        (Method::POST, "/booking/cancel", json!({"hold_id": hold_id})),
        (
            Method::POST,
            "/booking/confirm",
            json!({"hold_id": hold_id, "payment": {"token": "tok_visa"}}),
        ),
    ] {
        let answer = node.as_key(method, path, BOB, None, body).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            answer.body
        );
        assert_eq!(answer.code(), "FORBIDDEN", "{path}");
    }
    assert!(
        node.state() == before,
        "refused operations stored something"
    );
    let missing = node
        .as_key(
            Method::POST,
            "/booking/extend",
            BOB,
            None,
            json!({"hold_id": "h_999999", "ttl_seconds": 300}),
        )
        .await;
    assert_eq!(missing.code(), "HOLD_NOT_FOUND", "{}", missing.body);

    // The owner and a trusted front end may.
    let own = node
        .as_key(Method::GET, &hold_path, ALICE, None, Value::Null)
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    let front_end = node
        .as_key(
            Method::GET,
            &hold_path,
            "front-end-key-0001",
            None,
            Value::Null,
        )
        .await;
    assert_eq!(front_end.status, StatusCode::OK, "{}", front_end.body);
    let confirmed = node
        .as_key(
            Method::POST,
            "/booking/confirm",
            ALICE,
            None,
            json!({"hold_id": hold_id, "payment": {"token": "tok_visa"}}),
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    let booking_id = confirmed.body["booking_id"].as_str().unwrap().to_string();

    // Alice's booking and history are hers.
    let booking_path = format!("/bookings/{booking_id}");
    for (method, path, body) in [
        (Method::GET, booking_path.as_str(), Value::Null),
        (Method::GET, "/customers/alice/bookings", Value::Null),
        (
            Method::POST,
            "/booking/cancel",
            json!({"booking_id": booking_id}),
        ),
    ] {
        let answer = node.as_key(method, path, BOB, None, body).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            answer.body
        );
    }
    let history = node
        .as_key(
            Method::GET,
            "/customers/alice/bookings",
            ALICE,
            None,
            Value::Null,
        )
        .await;
    assert_eq!(history.status, StatusCode::OK);
    assert_eq!(
        history.body["bookings"][0]["booking_id"],
        booking_id.as_str()
    );
    let booking = node
        .as_key(Method::GET, &booking_path, ALICE, None, Value::Null)
        .await;
    assert_eq!(booking.body["status"], "CONFIRMED", "{}", booking.body);

    // In a batch, each operation is judged on its own.
    let batch = node
        .as_key(
            Method::POST,
            "/booking/batch",
            BOB,
            None,
            json!({"operations": [
                {"op": "cancel", "body": {"booking_id": booking_id}},
                {"op": "hold", "body": hold_body("alice")},
                {"op": "hold", "body": hold_body("bob")},
            ]}),
        )
        .await;
    assert_eq!(batch.status, StatusCode::OK, "{}", batch.body);
    assert_eq!(batch_statuses(&batch), vec![403, 403, 201]);
    let booking = node
        .as_key(Method::GET, &booking_path, ALICE, None, Value::Null)
        .await;
    assert_eq!(booking.body["status"], "CONFIRMED", "{}", booking.body);
}

#[tokio::test]
async fn idempotency_keys_are_scoped_to_the_callers_key() {
    let node = node_with_owner_keys();
    node.as_key(
        Method::POST,
        "/admin/events",
        "admin-key-000000001",
        None,
        json!({"event_id": "E", "currency": "EUR", "pools": [{"id": "GA", "capacity": 10, "price": 100}]}),
    )
    .await;
    let hold = |customer: &str| json!({"event_id": "E", "customer_id": customer, "pools": [{"pool_id": "GA", "quantity": 1}]});
    let alice = node
        .as_key(
            Method::POST,
            "/booking/hold",
            ALICE,
            Some("same-key"),
            hold("alice"),
        )
        .await;
    assert_eq!(alice.status, StatusCode::CREATED, "{}", alice.body);
    // Bob's request with the same key is his own: neither alice's answer nor a reuse error.
    let bob = node
        .as_key(
            Method::POST,
            "/booking/hold",
            BOB,
            Some("same-key"),
            hold("bob"),
        )
        .await;
    assert_eq!(bob.status, StatusCode::CREATED, "{}", bob.body);
    assert_ne!(bob.body["hold_id"], alice.body["hold_id"]);
    assert_eq!(bob.body["customer_id"], "bob");
    // Alice's retry still gets her first answer.
    let again = node
        .as_key(
            Method::POST,
            "/booking/hold",
            ALICE,
            Some("same-key"),
            hold("alice"),
        )
        .await;
    assert_eq!(again.body["hold_id"], alice.body["hold_id"]);
}

#[tokio::test]
async fn the_monitor_role_reads_metrics_and_status_only() {
    let node = node_with_owner_keys();
    let monitor = "monitor-key-0000001";
    for path in ["/metrics", "/cluster/status"] {
        let answer = node
            .as_key(Method::GET, path, monitor, None, Value::Null)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
    }
    for (method, path) in [
        (Method::GET, "/availability?event_id=E"),
        (Method::GET, "/events"),
        (Method::POST, "/cluster/snapshot"),
        (Method::POST, "/admin/events"),
        (Method::POST, "/booking/hold"),
    ] {
        let answer = node.as_key(method, path, monitor, None, json!({})).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            answer.body
        );
    }
    // A customer key does not read metrics; an operator's does.
    let customer = node
        .as_key(Method::GET, "/metrics", ALICE, None, Value::Null)
        .await;
    assert_eq!(customer.status, StatusCode::FORBIDDEN);
    let operator = node
        .as_key(
            Method::GET,
            "/metrics",
            "operator-key-00001",
            None,
            Value::Null,
        )
        .await;
    assert_eq!(operator.status, StatusCode::OK);
}

/// A replica whose proposals fail with `NO_LEADER` while it is switched off: the window
/// between a charge and its commit.
struct Unreachable {
    inner: Arc<dyn Replica>,
    off: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait]
impl Replica for Unreachable {
    fn node_id(&self) -> NodeId {
        self.inner.node_id()
    }
    async fn propose(&self, proposals: Vec<Proposal>) -> Result<Vec<CommittedOutcome>, NodeError> {
        // Off, the leader is lost between the charge and the commit: the charge intent
        // before the charge still commits, the confirm after it does not.
        let confirms = proposals
            .iter()
            .any(|proposal| matches!(proposal.command, Command::Confirm { .. }));
        if confirms && self.off.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(NodeError::NoLeader);
        }
        self.inner.propose(proposals).await
    }
    async fn prepare_read(&self, request: ReadRequest) -> Result<(), NodeError> {
        self.inner.prepare_read(request).await
    }
    fn with_state(&self, read: &mut dyn FnMut(&StateMachine, ReadMeta)) {
        self.inner.with_state(read)
    }
    fn status(&self) -> ClusterStatus {
        self.inner.status()
    }
    fn readiness(&self) -> Result<(), NodeError> {
        self.inner.readiness()
    }
    async fn initialize(&self, members: Vec<MemberSpec>) -> Result<(), NodeError> {
        self.inner.initialize(members).await
    }
    async fn add_learner(&self, member: MemberSpec) -> Result<(), NodeError> {
        self.inner.add_learner(member).await
    }
    async fn change_membership(
        &self,
        voters: std::collections::BTreeSet<NodeId>,
    ) -> Result<(), NodeError> {
        self.inner.change_membership(voters).await
    }
    async fn remove_node(&self, node_id: NodeId) -> Result<(), NodeError> {
        self.inner.remove_node(node_id).await
    }
}

fn unreachable_node(config: HttpConfig) -> (Node, Arc<std::sync::atomic::AtomicBool>) {
    let off = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let switch = off.clone();
    let node = Node::over(config, move |inner| {
        Arc::new(Unreachable { inner, off: switch })
    });
    (node, off)
}

async fn wait_hold_status(node: &Node, hold_id: &str, status: &str) -> Value {
    for _ in 0..200 {
        let hold = node.get(&format!("/holds/{hold_id}")).await;
        if hold.body["status"] == status {
            return hold.body;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("hold {hold_id} never became {status}");
}

#[tokio::test]
async fn a_charge_whose_confirm_gets_no_answer_is_still_booked() {
    let (node, off) = unreachable_node(HttpConfig::default());
    node.create_event("E").await;
    let hold = node.hold("E", &["A-1"], None).await;
    let hold_id = hold.body["hold_id"].as_str().unwrap().to_string();

    // No leader between the charge and the commit; the client sends no key and will
    // never retry.
    off.store(true, std::sync::atomic::Ordering::SeqCst);
    let confirm = node
        .post(
            "/booking/confirm",
            None,
            json!({"hold_id": hold_id, "payment": {"token": "tok_visa"}}),
        )
        .await;
    assert_eq!(
        confirm.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        confirm.body
    );
    assert_eq!(confirm.code(), "NO_LEADER");
    assert_eq!(confirm.body["error"]["details"]["confirm"], "PENDING");
    let payment_id = confirm.body["error"]["details"]["payment_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(node.sandbox.charges_made(), 1);
    assert_eq!(
        node.get(&format!("/holds/{hold_id}")).await.body["status"],
        "HELD"
    );

    // The leader is back: the node's own retry books the charge.
    off.store(false, std::sync::atomic::Ordering::SeqCst);
    let held = wait_hold_status(&node, &hold_id, "CONFIRMED").await;
    let booking_id = held["booking_id"].as_str().expect("a booking id");
    let booking = node.get(&format!("/bookings/{booking_id}")).await;
    assert_eq!(booking.body["payment_id"], payment_id.as_str());
    assert_eq!(node.sandbox.charges_made(), 1, "charged once");
}

#[tokio::test]
async fn a_charge_outliving_its_hold_without_an_answer_is_refunded() {
    let (node, off) = unreachable_node(HttpConfig::default());
    node.create_event("E").await;
    let hold = node
        .post(
            "/booking/hold",
            None,
            json!({"event_id": "E", "customer_id": "c-1", "seats": ["A-2"], "ttl_seconds": 1}),
        )
        .await;
    let hold_id = hold.body["hold_id"].as_str().unwrap().to_string();

    off.store(true, std::sync::atomic::Ordering::SeqCst);
    let body = json!({"hold_id": hold_id, "payment": {"token": "tok_visa"}});
    let confirm = node
        .post("/booking/confirm", Some("k-late"), body.clone())
        .await;
    assert_eq!(
        confirm.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        confirm.body
    );
    let payment_id = confirm.body["error"]["details"]["payment_id"]
        .as_str()
        .unwrap()
        .to_string();
    // The leader comes back only after the hold has ended.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    off.store(false, std::sync::atomic::Ordering::SeqCst);

    let mut refunds = Vec::new();
    for _ in 0..200 {
        refunds = read_now(&*node.replica, |machine| machine.pending_refunds(10)).0;
        if !refunds.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(refunds.len(), 1, "the charge is recorded as a refund owed");
    assert_eq!(refunds[0].payment_id, payment_id);
    assert_eq!(refunds[0].amount, 4500);
    assert_ne!(
        node.get(&format!("/holds/{hold_id}")).await.body["status"],
        "CONFIRMED"
    );

    // The client's retry learns the outcome, and nothing is charged again.
    let retried = node.post("/booking/confirm", Some("k-late"), body).await;
    assert_eq!(retried.status, StatusCode::GONE, "{}", retried.body);
    assert_eq!(
        retried.body["error"]["details"]["refund"]["payment_id"],
        payment_id.as_str()
    );
    assert_eq!(node.sandbox.charges_made(), 1);
}

#[tokio::test]
async fn confirms_beyond_the_unresolved_charge_bound_are_refused_before_charging() {
    let (node, off) = unreachable_node(HttpConfig {
        charges_in_flight_max: 1,
        ..HttpConfig::default()
    });
    node.create_event("E").await;
    let first = node.hold("E", &["A-1"], None).await;
    let second = node.hold("E", &["A-2"], None).await;
    off.store(true, std::sync::atomic::Ordering::SeqCst);
    let confirm =
        |hold: &Answer| json!({"hold_id": hold.body["hold_id"], "payment": {"token": "tok_visa"}});
    let pending = node.post("/booking/confirm", None, confirm(&first)).await;
    assert_eq!(pending.code(), "NO_LEADER");
    let refused = node.post("/booking/confirm", None, confirm(&second)).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.code(), "OVERLOADED");
    assert!(refused.body["error"]["details"].get("payment_id").is_none());
    assert_eq!(
        node.sandbox.charges_made(),
        1,
        "the refused confirm charged nothing"
    );

    // Once the first charge is accounted for, its slot is free again.
    off.store(false, std::sync::atomic::Ordering::SeqCst);
    wait_hold_status(&node, first.body["hold_id"].as_str().unwrap(), "CONFIRMED").await;
    let mut answer = None;
    for _ in 0..200 {
        let confirmed = node.post("/booking/confirm", None, confirm(&second)).await;
        if confirmed.code() != "OVERLOADED" {
            answer = Some(confirmed);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(answer.expect("a slot frees up").status, StatusCode::OK);
}

fn batch_statuses(answer: &Answer) -> Vec<u64> {
    answer.body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {}", answer.body))
        .iter()
        .map(|result| result["status"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_batch_answers_each_operation_as_its_own_route_would() {
    let node = Node::new();
    node.create_event("E").await;
    let hold_a1 = json!({"event_id": "E", "customer_id": "c-1", "seats": ["A-1"]});
    let batch = node
        .post(
            "/booking/batch",
            None,
            json!({"operations": [
                {"op": "hold", "idempotency_key": "k1", "body": hold_a1},
                {"op": "hold", "idempotency_key": "k2",
                 "body": {"event_id": "E", "customer_id": "c-2", "seats": ["A-1"]}},
                {"op": "hold", "body": {"event_id": "E", "customer_id": "c-3", "seats": ["A-2"], "ttl_seconds": 0}},
                {"op": "refund", "body": {}},
                {"op": "hold", "body": {"event_id": "E", "customer_id": "c-4", "pools": [{"pool_id": "GA", "quantity": 2}]}},
                {"op": "hold", "idempotency_key": "", "body": hold_a1},
                {"op": "extend", "body": {"hold_id": "h_nope"}},
            ]}),
        )
        .await;
    assert_eq!(batch.status, StatusCode::OK, "{}", batch.body);
    assert_eq!(
        batch_statuses(&batch),
        [201, 409, 400, 400, 201, 400, 404],
        "{}",
        batch.body
    );
    let results = &batch.body["results"];
    assert_eq!(results[1]["body"]["error"]["code"], "SEAT_UNAVAILABLE");
    assert_eq!(
        results[1]["body"]["error"]["details"]["unavailable"],
        json!(["A-1"])
    );
    assert_eq!(results[2]["body"]["error"]["code"], "INVALID_TTL");
    assert_eq!(results[3]["body"]["error"]["code"], "INVALID_FIELD");
    assert_eq!(
        results[3]["body"]["error"]["details"]["field"],
        "operations[3].op"
    );
    assert_eq!(results[5]["body"]["error"]["code"], "INVALID_FIELD");
    assert_eq!(results[6]["body"]["error"]["code"], "HOLD_NOT_FOUND");
    let hold_id = results[0]["body"]["hold_id"].as_str().unwrap().to_string();
    let pool_hold_id = results[4]["body"]["hold_id"].as_str().unwrap().to_string();
    assert_eq!(results[0]["body"]["status"], "HELD");
    assert_eq!(
        results[4]["body"]["pools"],
        json!([{"pool_id": "GA", "quantity": 2}])
    );

    // A key used in a batch is the same key on the operation's own route (scoped per
    // route): the single hold replays the batch's answer, and the same key with another
    // body is refused.
    let replay = node
        .post("/booking/hold", Some("k1"), hold_a1.clone())
        .await;
    assert_eq!(replay.status, StatusCode::CREATED, "{}", replay.body);
    assert_eq!(replay.body["hold_id"], hold_id.as_str());
    let reused = node
        .post(
            "/booking/batch",
            None,
            json!({"operations": [{"op": "hold", "idempotency_key": "k1",
                   "body": {"event_id": "E", "customer_id": "c-1", "seats": ["A-2"]}}]}),
        )
        .await;
    assert_eq!(batch_statuses(&reused), [409]);
    assert_eq!(
        reused.body["results"][0]["body"]["error"]["code"],
        "IDEMPOTENCY_KEY_REUSED"
    );
    // The conflict of operation 1 is remembered under its key, as on its own route.
    let conflict_again = node
        .post(
            "/booking/hold",
            Some("k2"),
            json!({"event_id": "E", "customer_id": "c-2", "seats": ["A-1"]}),
        )
        .await;
    assert_eq!(conflict_again.status, StatusCode::CONFLICT);

    // Confirms (which charge first), extends and cancels together; a declined payment
    // refuses only its own operation.
    let second = node
        .post(
            "/booking/batch",
            None,
            json!({"operations": [
                {"op": "confirm", "idempotency_key": "c1",
                 "body": {"hold_id": hold_id, "payment": {"token": "tok_visa"}}},
                {"op": "confirm", "body": {"hold_id": pool_hold_id, "payment": {"token": "tok_declined"}}},
                {"op": "extend", "body": {"hold_id": pool_hold_id, "ttl_seconds": 900}},
            ]}),
        )
        .await;
    assert_eq!(batch_statuses(&second), [200, 402, 200], "{}", second.body);
    let booking_id = second.body["results"][0]["body"]["booking_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(second.body["results"][0]["body"]["status"], "CONFIRMED");
    assert_eq!(second.body["results"][2]["body"]["status"], "HELD");
    let third = node
        .post(
            "/booking/batch",
            None,
            json!({"operations": [
                {"op": "cancel", "body": {"booking_id": booking_id, "reason": "changed plans"}},
                {"op": "cancel", "body": {"hold_id": pool_hold_id}},
                {"op": "cancel", "body": {"hold_id": pool_hold_id, "booking_id": booking_id}},
            ]}),
        )
        .await;
    assert_eq!(batch_statuses(&third), [200, 200, 400], "{}", third.body);
    assert_eq!(third.body["results"][0]["body"]["status"], "CANCELLED");
    assert_eq!(
        third.body["results"][0]["body"]["refund"]["status"],
        "PENDING"
    );
    assert_eq!(third.body["results"][1]["body"]["status"], "CANCELLED");
    let summary = node.get("/availability?event_id=E&view=summary").await;
    assert_eq!(summary.body["summary"]["seats_available"], 8);
}

#[tokio::test]
async fn oversized_batches_are_refused_whole_and_store_nothing() {
    // One customer places the whole batch: no hold velocity limit here.
    let node = Node::with_config(HttpConfig {
        admission: holdfast_node::rate::AdmissionConfig {
            holds_per_minute_per_customer: 0,
            ..Default::default()
        },
        ..HttpConfig::default()
    });
    node.create_event("E").await;
    let before = node.state();
    let operation =
        json!({"op": "hold", "body": {"event_id": "E", "customer_id": "c", "seats": ["A-1"]}});
    let too_many = node
        .post(
            "/booking/batch",
            None,
            json!({ "operations": vec![operation.clone(); 1_001] }),
        )
        .await;
    assert_eq!(
        too_many.status,
        StatusCode::BAD_REQUEST,
        "{}",
        too_many.body
    );
    assert_eq!(too_many.code(), "TOO_MANY_ITEMS");
    error_shape_ok(&too_many);
    let padding = "x".repeat(200);
    let heavy =
        json!({"op": "hold", "body": {"event_id": "E", "customer_id": padding, "seats": ["A-1"]}});
    let too_large = node
        .post(
            "/booking/batch",
            None,
            json!({ "operations": vec![heavy; 6_000] }),
        )
        .await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_large.code(), "BODY_TOO_LARGE");
    let not_a_list = node
        .post(
            "/booking/batch",
            None,
            json!({"operations": {"op": "hold"}}),
        )
        .await;
    assert_eq!(not_a_list.status, StatusCode::BAD_REQUEST);
    assert_eq!(node.state(), before, "a refused batch stored something");
    // Exactly the limit is served.
    let at_limit = node
        .post(
            "/booking/batch",
            None,
            json!({ "operations": vec![operation; 1_000] }),
        )
        .await;
    assert_eq!(at_limit.status, StatusCode::OK, "{}", at_limit.body);
    let statuses = batch_statuses(&at_limit);
    assert_eq!(statuses.iter().filter(|status| **status == 201).count(), 1);
    assert_eq!(
        statuses.iter().filter(|status| **status == 409).count(),
        999
    );
}

fn node_with_admission(admission: holdfast_node::rate::AdmissionConfig) -> Node {
    let keys = holdfast_node::auth::AuthKeys::parse(
        "admin admin-key-000000001\n\
         customer alice-key-000000001 alice\n\
         customer bob-key-00000000001 bob\n",
    )
    .unwrap();
    Node::with_config(HttpConfig {
        auth_keys: Some(Arc::new(keys)),
        admission,
        ..HttpConfig::default()
    })
}

/// Sends `request` until it is refused (at most `attempts` times); answers the refusal and
/// how many were let through before it.
async fn until_refused<F, Fut>(attempts: usize, mut request: F) -> (usize, Option<Answer>)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    for passed in 0..attempts {
        let answer = request().await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            return (passed, Some(answer));
        }
        assert!(answer.status.is_success(), "{}", answer.body);
    }
    (attempts, None)
}

#[tokio::test]
async fn a_caller_over_its_write_rate_is_refused_and_others_are_not() {
    let node = node_with_admission(holdfast_node::rate::AdmissionConfig {
        writes_per_second: 2,
        ..Default::default()
    });
    node.create_pool_event_as_admin(1000).await;
    let hold = |key: &'static str, customer: &'static str| {
        let node = &node;
        async move {
            node.as_key(
                Method::POST,
                "/booking/hold",
                key,
                None,
                json!({"event_id": "E", "customer_id": customer, "pools": [{"pool_id": "GA", "quantity": 1}]}),
            )
            .await
        }
    };
    // A burst of one second's worth passes, then the caller is refused with Retry-After.
    let (passed, refused) = until_refused(50, || hold(ALICE, "alice")).await;
    let refused = refused.expect("50 holds in a row were never limited");
    assert!(passed >= 2, "only {passed} passed before the limit");
    assert_eq!(refused.code(), "RATE_LIMITED");
    error_shape_ok(&refused);
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    // Nothing of the refused request was stored: its hold does not exist.
    let (state_before, _) = node.state();
    let again = hold(ALICE, "alice").await;
    if again.status == StatusCode::TOO_MANY_REQUESTS {
        assert!(node.state().0 == state_before);
    }
    // Bob has his own budget; alice's reads have theirs.
    assert_eq!(hold(BOB, "bob").await.status, StatusCode::CREATED);
    let read = node
        .as_key(
            Method::GET,
            "/availability?event_id=E",
            ALICE,
            None,
            Value::Null,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    // The probes are never limited.
    for _ in 0..10 {
        assert_eq!(node.get("/healthz").await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn a_read_storm_does_not_starve_the_same_callers_writes() {
    let node = node_with_admission(holdfast_node::rate::AdmissionConfig {
        reads_per_second: 3,
        ..Default::default()
    });
    node.as_key(
        Method::POST,
        "/admin/events",
        "admin-key-000000001",
        None,
        json!({"event_id": "E", "currency": "EUR", "pools": [{"id": "GA", "capacity": 10, "price": 100}]}),
    )
    .await;
    let (_, refused) = until_refused(100, || {
        node.as_key(
            Method::GET,
            "/availability?event_id=E",
            BOB,
            None,
            Value::Null,
        )
    })
    .await;
    assert_eq!(
        refused.expect("reads were never limited").code(),
        "RATE_LIMITED"
    );
    let hold = node
        .as_key(
            Method::POST,
            "/booking/hold",
            BOB,
            None,
            json!({"event_id": "E", "customer_id": "bob", "pools": [{"pool_id": "GA", "quantity": 1}]}),
        )
        .await;
    assert_eq!(hold.status, StatusCode::CREATED, "{}", hold.body);
}

/// A provider whose charges wait at a gate: a confirm stays in flight until the test opens it.
struct GatedProvider {
    inner: SandboxProvider,
    entered: Arc<tokio::sync::Notify>,
    gate: Arc<tokio::sync::Semaphore>,
}

#[async_trait]
impl PaymentProvider for GatedProvider {
    fn name(&self) -> &str {
        "gated-sandbox"
    }

    async fn charge(&self, request: ChargeRequest) -> Result<Charge, PaymentError> {
        self.entered.notify_one();
        let _open = self.gate.acquire().await.expect("gate open");
        self.inner.charge(request).await
    }

    async fn find_charge(&self, key: &str) -> Result<Option<Charge>, PaymentError> {
        self.inner.find_charge(key).await
    }

    async fn refund(&self, request: RefundRequest) -> Result<RefundReceipt, RefundError> {
        self.inner.refund(request).await
    }
}

#[tokio::test]
async fn requests_beyond_the_in_flight_cap_are_refused_at_once() {
    let node = Node::new();
    node.create_event("E").await;
    let hold = node
        .post(
            "/booking/hold",
            None,
            json!({"event_id": "E", "customer_id": "c", "seats": ["A-1"]}),
        )
        .await;
    let hold_id = hold.body["hold_id"].as_str().unwrap().to_string();
    let entered = Arc::new(tokio::sync::Notify::new());
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let capped = router(AppState::new(
        node.replica.clone(),
        Arc::new(GatedProvider {
            inner: SandboxProvider::default(),
            entered: entered.clone(),
            gate: gate.clone(),
        }),
        HttpConfig {
            admission: holdfast_node::rate::AdmissionConfig {
                requests_in_flight_max: 1,
                ..Default::default()
            },
            ..HttpConfig::default()
        },
    ));
    let request = |method: Method, path: &str, body: Value| {
        Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(if body.is_null() {
                Vec::new()
            } else {
                body.to_string().into_bytes()
            }))
            .unwrap()
    };
    let confirming = capped.clone();
    let confirm_request = request(
        Method::POST,
        "/booking/confirm",
        json!({"hold_id": hold_id, "payment": {"token": "tok_visa"}}),
    );
    let confirm = tokio::spawn(async move { Node::send(&confirming, confirm_request).await });
    entered.notified().await;
    // The confirm holds the only place: a read is refused at once, not queued.
    let refused = Node::send(
        &capped,
        request(Method::GET, "/availability?event_id=E", Value::Null),
    )
    .await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.body
    );
    assert_eq!(refused.code(), "OVERLOADED");
    assert_eq!(refused.header("retry-after"), Some("1"));
    gate.add_permits(1);
    let confirmed = confirm.await.unwrap();
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    let read = Node::send(
        &capped,
        request(Method::GET, "/availability?event_id=E", Value::Null),
    )
    .await;
    assert_eq!(read.status, StatusCode::OK);
}

#[tokio::test]
async fn the_server_closes_silent_connections_and_caps_how_many_are_open() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let node = Node::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(holdfast_node::app::run_http_with(
        node.router.clone(),
        listener,
        async move {
            let _ = stopped.await;
        },
        holdfast_node::app::ServerLimits {
            connections_max: 2,
            header_read_timeout: Duration::from_millis(300),
            ..Default::default()
        },
    ));
    // Two connections take both places: one trickles half a request head, one says nothing.
    let mut trickling = tokio::net::TcpStream::connect(address).await.unwrap();
    trickling
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: te")
        .await
        .unwrap();
    let mut silent = tokio::net::TcpStream::connect(address).await.unwrap();
    // A third is accepted only once a place is free: its answer comes after the server has
    // closed one of the first two for not finishing its headers in time.
    let mut third = tokio::net::TcpStream::connect(address).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(30), third.read_to_string(&mut answer))
        .await
        .expect("the third connection is served once a place is free")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // By then the server had closed the first two: each reads its end (an answer to the
    // half-sent head, if any, then end of stream).
    for stream in [&mut trickling, &mut silent] {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut rest))
            .await
            .expect("the server closed the connection");
        assert!(read.is_ok() || rest.is_empty());
        assert!(
            !String::from_utf8_lossy(&rest).contains("200 OK"),
            "a trickled head was served"
        );
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn requests_over_a_socket_carry_the_clients_address_to_the_rate_limit() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // No keys: callers are told apart by address, so 127.0.0.1 has one write budget.
    let node = Node::with_config(HttpConfig {
        admission: holdfast_node::rate::AdmissionConfig {
            writes_per_second: 1,
            ..Default::default()
        },
        ..HttpConfig::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(holdfast_node::run_http(
        node.router.clone(),
        listener,
        std::future::pending(),
    ));
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let body =
            r#"{"event_id":"nope","customer_id":"c","pools":[{"pool_id":"GA","quantity":1}]}"#;
        let request = format!(
            "POST /booking/hold HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        statuses.push(answer[9..12].to_string());
        if answer.contains("RATE_LIMITED") {
            break;
        }
    }
    // The first is judged (the event does not exist); soon the address is out of budget,
    // although each request came on a new connection from a new port.
    assert_eq!(statuses[0], "404", "{statuses:?}");
    assert_eq!(statuses.last().unwrap(), "429", "{statuses:?}");
}

/// `GET /cluster/backup` on one node, `POST /cluster/restore` in pieces into a fresh one:
/// the same bookings, holds and availability, and the same answer to a retried request.
/// Refused, with nothing stored: pieces out of order, a checksum that does not match, a
/// restore into a node with data, a piece over 1 MiB.
#[tokio::test]
async fn a_backup_restores_into_an_empty_node_and_nowhere_else() {
    use holdfast_proto::backup::{hex, BackupHeader, HEADER_BYTES};

    let source = Node::new();
    source.create_event("E").await;
    let hold = source.hold("E", &["A-1", "A-2"], Some("h-1")).await;
    assert_eq!(hold.status, StatusCode::CREATED, "{}", hold.body);
    let hold_id = hold.body["hold_id"].as_str().unwrap().to_string();
    let confirm = source
        .post(
            "/booking/confirm",
            Some("c-1"),
            json!({"hold_id": hold_id, "payment": {"method": "card", "token": "tok_visa"}}),
        )
        .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    let booking_id = confirm.body["booking_id"].as_str().unwrap().to_string();
    let second = source.hold("E", &["B-1-1"], Some("h-2")).await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.body);
    let second_id = second.body["hold_id"].as_str().unwrap().to_string();

    let backup = source.get("/cluster/backup").await;
    assert_eq!(backup.status, StatusCode::OK);
    assert_eq!(
        backup.header("content-type"),
        Some("application/octet-stream")
    );
    let header = BackupHeader::decode(&backup.raw).expect("a backup file");
    let (state, index) = source.state();
    assert_eq!(&backup.raw[HEADER_BYTES..], state.as_slice());
    assert_eq!(header.index, index);
    assert_eq!(header.length, state.len() as u64);
    assert_eq!(
        backup.header("x-holdfast-backup-sha256"),
        Some(hex(&header.sha256).as_str())
    );
    assert_eq!(
        backup.header("x-holdfast-backup-index"),
        Some(index.to_string().as_str())
    );

    let target = Node::new();
    let piece = |restore_id: u64, offset: usize, end: usize, sha256: &str| {
        let path = format!(
            "/cluster/restore?restore_id={restore_id}&offset={offset}&total_bytes={}&sha256={sha256}",
            state.len()
        );
        (path, state[offset..end].to_vec())
    };
    let sha = hex(&header.sha256);
    let post = |node: &Node, (path, body): (String, Vec<u8>)| {
        let router = node.router.clone();
        async move {
            let request = Request::builder()
                .method(Method::POST)
                .uri(path)
                .header("content-type", "application/octet-stream")
                .body(Body::from(body))
                .unwrap();
            Node::send(&router, request).await
        }
    };
    // Out of order: a restore starts at byte 0.
    let answer = post(&target, piece(7, 100, 200, &sha)).await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.body);
    assert_eq!(answer.code(), "RESTORE_REFUSED");
    // A wrong checksum is found once the whole has arrived: nothing is restored.
    let wrong = hex(&[0u8; 32]);
    let mut answer = post(&target, piece(8, 0, state.len() / 2, &wrong)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["done"], false);
    answer = post(&target, piece(8, state.len() / 2, state.len(), &wrong)).await;
    assert_eq!(answer.code(), "RESTORE_REFUSED", "{}", answer.body);
    assert_eq!(target.get("/events/E").await.status, StatusCode::NOT_FOUND);
    // Malformed pieces are refused at the edge, never proposed.
    let empty = target.state();
    let (path, _) = piece(9, 0, 1, &sha);
    let answer = post(&target, (path.clone(), vec![0; 1024 * 1024 + 1])).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    let answer = post(&target, (path.replace(&sha, "abc"), vec![1])).await;
    assert_eq!(answer.code(), "INVALID_FIELD");
    assert_eq!(target.state(), empty, "refused pieces stored nothing");

    // In order, in pieces: the last one restores.
    let mut offset = 0;
    while offset < state.len() {
        let end = (offset + 700).min(state.len());
        let answer = post(&target, piece(9, offset, end, &sha)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.body["received_bytes"], end as u64);
        assert_eq!(answer.body["done"], end == state.len());
        offset = end;
    }
    // A piece sent again answers the same.
    let again = post(&target, piece(9, 0, 700.min(state.len()), &sha)).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["done"], true);

    for path in [
        "/availability?event_id=E".to_string(),
        format!("/holds/{second_id}"),
        format!("/bookings/{booking_id}"),
        "/customers/c-42/bookings".to_string(),
        "/events/E".to_string(),
    ] {
        let (before, after) = (source.get(&path).await, target.get(&path).await);
        assert_eq!(after.status, before.status, "{path}");
        assert_eq!(
            without_applied_index(after.body),
            without_applied_index(before.body),
            "{path}"
        );
    }
    // A retried request is answered as the source answered it; new ids carry on.
    let replay = target.hold("E", &["A-1", "A-2"], Some("h-1")).await;
    assert_eq!(replay.body["hold_id"], hold_id.as_str(), "{}", replay.body);
    let taken = target.hold("E", &["A-1"], Some("h-3")).await;
    assert_eq!(taken.code(), "SEAT_UNAVAILABLE", "{}", taken.body);
    let next = target.hold("E", &["B-2-1"], Some("h-4")).await;
    assert_eq!(next.status, StatusCode::CREATED, "{}", next.body);
    assert_ne!(next.body["hold_id"], second.body["hold_id"]);

    // Into a node with data: refused, nothing changed.
    let before = source.get("/availability?event_id=E").await;
    let answer = post(&source, piece(10, 0, state.len(), &sha)).await;
    assert_eq!(answer.code(), "RESTORE_REFUSED", "{}", answer.body);
    let after = source.get("/availability?event_id=E").await;
    assert_eq!(
        without_applied_index(after.body),
        without_applied_index(before.body)
    );
    let answer = post(&target, piece(11, 0, state.len(), &sha)).await;
    assert_eq!(answer.code(), "RESTORE_REFUSED", "{}", answer.body);
}

/// `value` without its `applied_index` fields (where a read was served, not what it read).
fn without_applied_index(mut value: Value) -> Value {
    match &mut value {
        Value::Object(object) => {
            object.remove("applied_index");
            for field in object.values_mut() {
                *field = without_applied_index(field.take());
            }
        }
        Value::Array(items) => {
            for item in items {
                *item = without_applied_index(item.take());
            }
        }
        _ => {}
    }
    value
}

/// A confirm whose caller goes away mid-charge (a dropped connection, a passed deadline)
/// still books: the charge and its commit run to the end on their own, so no charge is
/// left without its booking by a caller that stopped waiting.
#[tokio::test]
async fn a_confirm_whose_caller_goes_away_mid_charge_still_books() {
    let node = Node::new();
    node.create_event("E").await;
    let hold = node.hold("E", &["A-1"], None).await;
    let hold_id = hold.body["hold_id"].as_str().unwrap().to_string();
    let call = node.post(
        "/booking/confirm",
        None,
        json!({"hold_id": hold_id, "payment": {"token": "tok_visa_delay_400"}}),
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(100), call)
            .await
            .is_err(),
        "the caller gave up before the charge was made"
    );
    let held = wait_hold_status(&node, &hold_id, "CONFIRMED").await;
    let booking_id = held["booking_id"].as_str().expect("a booking id");
    assert_eq!(
        node.get(&format!("/bookings/{booking_id}")).await.body["status"],
        "CONFIRMED"
    );
    assert_eq!(node.sandbox.charges_made(), 1);
    let intents = read_now(&*node.replica, |machine| machine.charge_intents_len()).0;
    assert_eq!(intents, 0, "the confirm resolved its charge intent");
}

/// The leader settles the charge intents that stopped confirms left behind: a charge made
/// under the intent's key is booked (or refunded, when the hold ended meanwhile), an intent
/// without a charge is dropped, and an intent younger than the reconcile age is left to its
/// confirm.
#[tokio::test]
async fn charge_intents_left_by_stopped_confirms_are_settled_by_the_leader() {
    use holdfast_node::charges::reconcile_charge_intents;
    let node = Node::new();
    node.create_event("E").await;
    let booked = node.hold("E", &["A-1"], None).await;
    let never_charged = node.hold("E", &["A-2"], None).await;
    let ending = node
        .post(
            "/booking/hold",
            None,
            json!({"event_id": "E", "customer_id": "c-1", "seats": ["B-1-1"], "ttl_seconds": 1}),
        )
        .await;
    let id = |answer: &Answer| answer.body["hold_id"].as_str().unwrap().to_string();
    let provider = node.sandbox.name().to_string();
    let mut charges = Vec::new();
    for (key, hold, charged) in [
        ("confirm:lost", id(&booked), true),
        ("confirm:never", id(&never_charged), false),
        ("confirm:late", id(&ending), true),
    ] {
        // A confirm that recorded its intent, maybe charged, and stopped.
        let recorded = holdfast_node::replica::propose_one(
            &*node.replica,
            Proposal {
                request_id: None,
                command: Command::RecordChargeIntent {
                    charge_key: key.into(),
                    hold_id: hold.clone(),
                    provider: provider.clone(),
                },
            },
        )
        .await
        .unwrap();
        let holdfast_statemachine::Outcome::ChargeIntentRecorded { intent, .. } = recorded.outcome
        else {
            panic!("{:?}", recorded.outcome);
        };
        if charged {
            let charge = node
                .sandbox
                .charge(ChargeRequest {
                    idempotency_key: Some(key.into()),
                    hold_id: hold.clone(),
                    amount: intent.amount,
                    currency: intent.currency.clone(),
                    method: "card".into(),
                    token: "tok_visa".into(),
                })
                .await
                .unwrap();
            charges.push((hold, charge));
        }
    }
    async fn reconcile_once(node: &Node, after_ms: u64) -> usize {
        let mut cursor = None;
        reconcile_charge_intents(
            &*node.replica,
            &*node.sandbox,
            Duration::from_millis(after_ms),
            Duration::from_secs(5),
            &mut cursor,
        )
        .await
    }
    assert_eq!(
        reconcile_once(&node, 3_600_000).await,
        0,
        "young intents are their confirms'"
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(reconcile_once(&node, 0).await, 3);

    let (booked_hold, booked_charge) = &charges[0];
    let held = wait_hold_status(&node, booked_hold, "CONFIRMED").await;
    let booking = node
        .get(&format!(
            "/bookings/{}",
            held["booking_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        booking.body["payment_id"],
        booked_charge.payment_id.as_str()
    );
    assert_eq!(
        node.get(&format!("/holds/{}", id(&never_charged)))
            .await
            .body["status"],
        "HELD"
    );
    let (late_hold, late_charge) = &charges[1];
    let refunds = read_now(&*node.replica, |machine| machine.pending_refunds(10)).0;
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(refunds[0].payment_id, late_charge.payment_id);
    assert_eq!(refunds[0].hold_id, *late_hold);
    let intents = read_now(&*node.replica, |machine| machine.charge_intents_len()).0;
    assert_eq!(intents, 0);
    assert_eq!(
        reconcile_once(&node, 0).await,
        0,
        "nothing is left to settle"
    );
    assert_eq!(node.sandbox.charges_made(), 2);
}

/// Hold velocity: one customer id is limited, and so is one caller whatever customer ids
/// it makes up; the refusal is 429 RATE_LIMITED with Retry-After and the limit's name, and
/// stores nothing.
#[tokio::test]
async fn holds_are_limited_per_customer_and_per_caller() {
    let keys = holdfast_node::auth::AuthKeys::parse(
        "admin admin-key-000000001\n\
         customer front-key-00000000001\n\
         customer other-front-key-000001\n",
    )
    .unwrap();
    let node = Node::with_config(HttpConfig {
        auth_keys: Some(Arc::new(keys)),
        admission: holdfast_node::rate::AdmissionConfig {
            holds_per_minute_per_customer: 2,
            holds_per_minute_per_caller: 5,
            ..Default::default()
        },
        ..HttpConfig::default()
    });
    node.create_pool_event_as_admin(100).await;
    let hold = |key: &'static str, customer: String| {
        let node = &node;
        async move {
            node.as_key(
                Method::POST,
                "/booking/hold",
                key,
                None,
                json!({"event_id": "E", "customer_id": customer, "pools": [{"pool_id": "GA", "quantity": 1}]}),
            )
            .await
        }
    };
    let front = "front-key-00000000001";
    for _ in 0..2 {
        assert_eq!(hold(front, "c-1".into()).await.status, StatusCode::CREATED);
    }
    let before = node.state();
    let refused = hold(front, "c-1".into()).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.body
    );
    assert_eq!(refused.code(), "RATE_LIMITED");
    assert_eq!(
        refused.body["error"]["details"]["limit"],
        "holds_per_customer"
    );
    assert!(refused.headers.get("retry-after").is_some());
    assert_eq!(node.state(), before, "a refused hold stores nothing");

    // Made-up customer ids: the caller's own budget runs out.
    let mut placed = 2;
    let mut last = None;
    for n in 0..10 {
        let answer = hold(front, format!("made-up-{n}")).await;
        if answer.status != StatusCode::CREATED {
            last = Some(answer);
            break;
        }
        placed += 1;
    }
    assert_eq!(placed, 5, "five holds a minute for this caller");
    let last = last.expect("the caller was limited");
    assert_eq!(last.body["error"]["details"]["limit"], "holds_per_caller");
    // Another caller is not held back by this one.
    let other = hold("other-front-key-000001", "someone".into()).await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.body);
}

/// A retried hold (same idempotency key) replays its answer and takes nothing, so it is
/// not counted against the velocity limits again; a new hold still is.
#[tokio::test]
async fn a_retried_hold_is_not_counted_against_the_velocity_limits_again() {
    let keys = holdfast_node::auth::AuthKeys::parse(
        "admin admin-key-000000001\n\
         customer front-key-00000000001\n",
    )
    .unwrap();
    let node = Node::with_config(HttpConfig {
        auth_keys: Some(Arc::new(keys)),
        admission: holdfast_node::rate::AdmissionConfig {
            holds_per_minute_per_customer: 1,
            ..Default::default()
        },
        ..HttpConfig::default()
    });
    node.create_pool_event_as_admin(100).await;
    let hold = |key: &'static str| {
        let node = &node;
        async move {
            node.as_key(
                Method::POST,
                "/booking/hold",
                "front-key-00000000001",
                Some(key),
                json!({"event_id": "E", "customer_id": "c-1", "pools": [{"pool_id": "GA", "quantity": 1}]}),
            )
            .await
        }
    };
    let first = hold("retry-1").await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    for _ in 0..3 {
        let again = hold("retry-1").await;
        assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
        assert_eq!(again.body["hold_id"], first.body["hold_id"]);
    }
    let new = hold("retry-2").await;
    assert_eq!(new.status, StatusCode::TOO_MANY_REQUESTS, "{}", new.body);
    assert_eq!(new.body["error"]["details"]["limit"], "holds_per_customer");
}
