//! Notifications: webhooks added through the admin API (secrets never answered), the
//! notifier's signed deliveries to a receiver the tests serve on 127.0.0.1 (in order, at
//! least once across an outage, progress committed so another notifier resumes), the outbox
//! trimmed once every webhook acknowledged, and `GET /changes` as server-sent events resumed
//! with `Last-Event-ID`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::routing::post;
use axum::Router;
use hmac::{Hmac, Mac};
use holdfast_node::notifier::{Notifier, NotifierConfig};
use holdfast_node::replica::read_now;
use holdfast_node::runtime::{self, NodeConfig};
use holdfast_node::{
    router, AppState, HttpConfig, LocalReplica, LocalReplicaConfig, SandboxProvider,
};
use serde_json::{json, Value};
use sha2::Sha256;
use tower::ServiceExt;

const SECRET: &str = "whsec_0123456789";

#[derive(Default)]
struct Received {
    /// Verified deliveries in arrival order: (id, type, index).
    events: Vec<(String, String, u64)>,
    /// Deliveries whose signature did not verify.
    forged: u32,
    /// Deliveries to refuse (503) before accepting.
    refuse_next: u32,
    refused: u32,
}

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Received>>);

impl Receiver {
    async fn serve(refuse_first: u32) -> (Receiver, String) {
        let receiver = Receiver::default();
        receiver.0.lock().unwrap().refuse_next = refuse_first;
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    fn events(&self) -> Vec<(String, String, u64)> {
        self.0.lock().unwrap().events.clone()
    }
}

/// Checks `Holdfast-Signature: t=..,v1=<hex HMAC-SHA256 of "<t>.<body>">` as a receiver
/// would, with its own HMAC.
fn verifies(headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(header) = headers
        .get("holdfast-signature")
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let mut time = None;
    let mut signature = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => time = Some(value.to_string()),
            Some(("v1", value)) => signature = Some(value.to_string()),
            _ => {}
        }
    }
    let (Some(time), Some(signature)) = (time, signature) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(time.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    expected == signature
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut received = receiver.0.lock().unwrap();
    if received.refuse_next > 0 {
        received.refuse_next -= 1;
        received.refused += 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    if !verifies(&headers, &body) {
        received.forged += 1;
        return StatusCode::BAD_REQUEST;
    }
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        event["created_at"].is_string() && event["data"].is_object(),
        "{event}"
    );
    received.events.push((
        event["id"].as_str().unwrap().to_string(),
        event["type"].as_str().unwrap().to_string(),
        event["index"].as_u64().unwrap(),
    ));
    StatusCode::NO_CONTENT
}

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

fn local_node() -> (Router, Arc<LocalReplica>) {
    let replica = LocalReplica::shared(LocalReplicaConfig::default());
    let router = router(AppState::new(
        replica.clone(),
        Arc::new(SandboxProvider::default()),
        HttpConfig::default(),
    ));
    (router, replica)
}

async fn create_event(router: &Router) {
    let body = json!({
        "event_id": "E", "name": "Film", "category": "movie", "currency": "EUR",
        "seat_blocks": [{"section": "A", "rows": ["1"], "seats_per_row": 10, "price": 900}]
    });
    let (status, answer) = call(router, Method::POST, "/admin/events", Some(body)).await;
    assert_eq!(status, 201, "{answer}");
}

/// Books seat `A-1-<seat>` and cancels it: four outbox events (hold placed, confirmed,
/// cancelled, refund recorded).
async fn book_and_cancel(router: &Router, seat: u32) {
    let (_, hold) = call(
        router,
        Method::POST,
        "/booking/hold",
        Some(json!({"event_id": "E", "customer_id": "c-1", "seats": [format!("A-1-{seat}")]})),
    )
    .await;
    let (_, booking) = call(
        router,
        Method::POST,
        "/booking/confirm",
        Some(json!({"hold_id": hold["hold_id"], "payment": {"token": "tok_visa"}})),
    )
    .await;
    let (status, cancelled) = call(
        router,
        Method::POST,
        "/booking/cancel",
        Some(json!({"booking_id": booking["booking_id"], "reason": "r"})),
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");
}

async fn add_webhook(router: &Router, url: &str, events: Value) -> Value {
    let (status, added) = call(
        router,
        Method::POST,
        "/admin/webhooks",
        Some(json!({"url": url, "secret": SECRET, "events": events})),
    )
    .await;
    assert_eq!(status, 201, "{added}");
    assert!(!added.to_string().contains(SECRET), "{added}");
    added
}

fn eager_notifier() -> NotifierConfig {
    NotifierConfig {
        check_interval: Duration::from_millis(20),
        retry_base: Duration::from_millis(1),
        retry_max: Duration::from_millis(4),
        ..NotifierConfig::default()
    }
}

/// Runs notifier passes until `done` holds (bounded by a count of passes).
async fn notify_until(notifier: &Notifier, replica: &LocalReplica, done: impl Fn() -> bool) {
    for _ in 0..2_000 {
        notifier.notify(replica).await;
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("the notifier did not finish");
}

#[tokio::test]
async fn webhooks_get_every_event_signed_in_order_across_an_outage() {
    let (router, replica) = local_node();
    create_event(&router).await;
    let (receiver, url) = Receiver::serve(3).await;
    let added = add_webhook(&router, &url, json!([])).await;
    assert_eq!(added["events"], json!([]));
    let (status, listed) = call(&router, Method::GET, "/admin/webhooks", None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["webhooks"][0]["webhook_id"], added["webhook_id"]);
    assert!(!listed.to_string().contains(SECRET), "{listed}");

    for seat in 1..=3 {
        book_and_cancel(&router, seat).await;
    }
    let notifier = Notifier::new(eager_notifier());
    notify_until(&notifier, &replica, || receiver.events().len() >= 12).await;

    let events = receiver.events();
    assert_eq!(
        receiver.0.lock().unwrap().forged,
        0,
        "every signature verifies"
    );
    assert_eq!(
        receiver.0.lock().unwrap().refused,
        3,
        "the outage was retried"
    );
    let indexes: Vec<u64> = events.iter().map(|event| event.2).collect();
    assert_eq!(indexes, (1..=12).collect::<Vec<u64>>(), "in order, no gaps");
    let types: Vec<&str> = events.iter().take(4).map(|e| e.1.as_str()).collect();
    assert_eq!(
        types,
        [
            "hold.placed",
            "booking.confirmed",
            "booking.cancelled",
            "refund.recorded"
        ]
    );
    assert_eq!(events[0].0, "evt_1");

    // Delivered progress is committed and the outbox trimmed below it.
    let (status, _) = read_now(&*replica, |machine| machine.outbox_status());
    assert_eq!(status.pending, 0);
    let (_, listed) = call(&router, Method::GET, "/admin/webhooks", None).await;
    assert_eq!(listed["webhooks"][0]["delivered_up_to"], 12);

    // A new notifier (a new leader) resumes from the committed mark: nothing twice.
    book_and_cancel(&router, 4).await;
    let successor = Notifier::new(eager_notifier());
    notify_until(&successor, &replica, || receiver.events().len() >= 16).await;
    let indexes: Vec<u64> = receiver.events().iter().map(|event| event.2).collect();
    assert_eq!(indexes, (1..=16).collect::<Vec<u64>>());
}

#[tokio::test]
async fn a_webhook_gets_only_the_types_it_asked_for_and_the_laggard_holds_the_outbox() {
    let (router, replica) = local_node();
    create_event(&router).await;
    let (refunds, refunds_url) = Receiver::serve(0).await;
    add_webhook(&router, &refunds_url, json!(["refund.recorded"])).await;
    // A second webhook that is down keeps the events in the outbox.
    let (down, down_url) = Receiver::serve(u32::MAX).await;
    let down_hook = add_webhook(&router, &down_url, json!([])).await;
    book_and_cancel(&router, 1).await;
    book_and_cancel(&router, 2).await;

    let notifier = Notifier::new(eager_notifier());
    notify_until(&notifier, &replica, || refunds.events().len() >= 2).await;
    let types: Vec<String> = refunds.events().into_iter().map(|event| event.1).collect();
    assert_eq!(types, ["refund.recorded", "refund.recorded"]);
    assert!(down.events().is_empty());
    let (status, _) = read_now(&*replica, |machine| machine.outbox_status());
    assert_eq!(
        status.pending, 8,
        "the down webhook has acknowledged nothing"
    );

    // Removing the down webhook lets the outbox go.
    let path = format!(
        "/admin/webhooks/{}",
        down_hook["webhook_id"].as_str().unwrap()
    );
    let (status, removed) = call(&router, Method::DELETE, &path, None).await;
    assert_eq!(status, 200, "{removed}");
    notifier.notify(&*replica).await;
    let (status, _) = read_now(&*replica, |machine| machine.outbox_status());
    assert_eq!(status.pending, 0);
    let (status, missing) = call(&router, Method::DELETE, &path, None).await;
    assert_eq!(status, 404);
    assert_eq!(missing["error"]["code"], "WEBHOOK_NOT_FOUND");
}

#[tokio::test]
async fn webhook_bodies_are_checked_at_the_edge() {
    let (router, _replica) = local_node();
    for body in [
        json!({"url": "ftp://x", "secret": SECRET}),
        json!({"url": "http://x", "secret": ""}),
        json!({"url": "http://x", "secret": SECRET, "events": ["hold.placed.twice"]}),
        json!({"url": "http://x"}),
    ] {
        let (status, answer) = call(&router, Method::POST, "/admin/webhooks", Some(body)).await;
        assert_eq!(status, 400, "{answer}");
    }
}

/// Reads server-sent events from a streaming answer until `count` events arrived; their ids.
async fn read_events(response: &mut reqwest::Response, count: usize) -> Vec<(u64, String)> {
    let mut text = String::new();
    let mut events = Vec::new();
    while events.len() < count {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .expect("the stream goes on");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let mut id = None;
            let mut kind = String::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("id:") {
                    id = value.trim().parse::<u64>().ok();
                } else if let Some(value) = line.strip_prefix("event:") {
                    kind = value.trim().to_string();
                }
            }
            if let Some(id) = id {
                events.push((id, kind));
            }
        }
    }
    events
}

/// A real Raft node: its notifier delivers to a webhook, and `GET /changes` streams the
/// outbox and resumes after a disconnect without gaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raft_node_notifies_and_streams_changes() {
    let data = tempfile::tempdir().unwrap();
    let mut config = NodeConfig::new(1, "notify-test", data.path().join("node-1"));
    config.notifier = eager_notifier();
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
    assert!(init.status().is_success());

    let post = |path: &str, body: Value| {
        let request = client.post(format!("{base}{path}")).json(&body);
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
        created = post(
            "/admin/events",
            json!({"event_id": "E", "name": "Film", "currency": "EUR",
                   "seat_blocks": [{"section": "A", "rows": ["1"], "seats_per_row": 10, "price": 900}]}),
        )
        .await;
        if created.0 == 201 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(created.0, 201, "{}", created.1);
    let book_and_cancel = |seat: u32| {
        let post = &post;
        async move {
            let (_, hold) = post(
                "/booking/hold",
                json!({"event_id": "E", "customer_id": "c-1", "seats": [format!("A-1-{seat}")]}),
            )
            .await;
            let (_, booking) = post(
                "/booking/confirm",
                json!({"hold_id": hold["hold_id"], "payment": {"token": "tok_visa"}}),
            )
            .await;
            let (status, _) = post(
                "/booking/cancel",
                json!({"booking_id": booking["booking_id"], "reason": "r"}),
            )
            .await;
            assert_eq!(status, 200);
        }
    };

    let mut changes = client
        .get(format!("{base}/changes?from=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(changes.status(), 200);
    book_and_cancel(1).await;
    book_and_cancel(2).await;
    // The stream gives the first events, then the client disconnects.
    let first = read_events(&mut changes, 2).await;
    assert_eq!(first[0], (1, "hold.placed".to_string()));
    assert_eq!(first[1], (2, "booking.confirmed".to_string()));
    drop(changes);
    // Resumed with Last-Event-ID: the rest, without gaps or repeats.
    let mut resumed = client
        .get(format!("{base}/changes"))
        .header("last-event-id", "2")
        .send()
        .await
        .unwrap();
    let rest = read_events(&mut resumed, 4).await;
    let ids: Vec<u64> = rest.iter().map(|event| event.0).collect();
    assert_eq!(ids, [3, 4, 5, 6]);
    drop(resumed);

    // A webhook added now hears of what happens from now on: the node's notifier delivers
    // it, signed, in order, after one refusal.
    let (receiver, url) = Receiver::serve(1).await;
    let (status, added) = post(
        "/admin/webhooks",
        json!({"url": url, "secret": SECRET, "events": []}),
    )
    .await;
    assert_eq!(status, 201);
    let mark = added["delivered_up_to"].as_u64().unwrap();
    book_and_cancel(3).await;
    // The refund worker pays refunds meanwhile (`refund.paid`), so wait for this booking's
    // refund to be recorded and for the webhook's committed mark to reach what it got.
    let delivered = || {
        let events = receiver.events();
        events
            .iter()
            .any(|event| event.1 == "refund.recorded")
            .then_some(events)
    };
    let mut events = Vec::new();
    for _ in 0..400 {
        if let Some(got) = delivered() {
            let listed: Value = client
                .get(format!("{base}/admin/webhooks"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if listed["webhooks"][0]["delivered_up_to"].as_u64() == got.last().map(|e| e.2) {
                events = got;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let indexes: Vec<u64> = events.iter().map(|event| event.2).collect();
    let last = *indexes.last().expect("deliveries");
    assert_eq!(
        indexes,
        (mark + 1..=last).collect::<Vec<u64>>(),
        "in order, no gaps"
    );
    let types: Vec<&str> = events.iter().map(|event| event.1.as_str()).collect();
    assert!(types.contains(&"booking.confirmed") && types.contains(&"booking.cancelled"));
    assert_eq!(receiver.0.lock().unwrap().forged, 0);
    assert_eq!(receiver.0.lock().unwrap().refused, 1);
    node.shutdown().await;
}
