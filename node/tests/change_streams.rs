//! Following the outbox and its bound at the node's edges: the gRPC `WatchChanges` stream
//! (admin only, resumable from an index without gaps), the cap on change streams shared by
//! `GET /changes` and `WatchChanges` (`503 OVERLOADED` beyond it), `hold.placed` and
//! `hold.released` for webhooks that ask for them, and a full outbox refusing holds with
//! `503 OUTBOX_FULL` while a webhook lags, answered afresh once it caught up.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request};
use axum::Router;
use holdfast_node::auth::AuthKeys;
use holdfast_node::grpc::with_grpc;
use holdfast_node::{
    router, run_http, AppState, HttpConfig, LocalReplica, LocalReplicaConfig, Replica,
    SandboxProvider,
};
use holdfast_proto::booking::admin_service_client::AdminServiceClient;
use holdfast_proto::booking::{ChangeEvent, WatchChangesRequest};
use holdfast_statemachine::Config;
use serde_json::{json, Value};
use tonic::metadata::MetadataValue;
use tonic::Code;
use tower::ServiceExt;

const ADMIN_KEY: &str = "admin-key-0123456789";
const CUSTOMER_KEY: &str = "customer-key-0123456789";

struct Node {
    router: Router,
    replica: Arc<LocalReplica>,
    address: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A node on a real socket (HTTP and gRPC on one port) with `config` and, when
/// `with_keys`, an admin and a customer key.
async fn serve(mut config: HttpConfig, state_config: Config, with_keys: bool) -> Node {
    if with_keys {
        let keys =
            AuthKeys::parse(&format!("admin {ADMIN_KEY}\ncustomer {CUSTOMER_KEY}\n")).unwrap();
        config.auth_keys = Some(Arc::new(keys));
    }
    let replica = LocalReplica::shared(LocalReplicaConfig {
        state_config,
        ..LocalReplicaConfig::default()
    });
    let state = AppState::new(
        replica.clone(),
        Arc::new(SandboxProvider::default()),
        config,
    );
    let router = router(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(run_http(
        with_grpc(router.clone(), state),
        listener,
        async {
            let _ = stopped.await;
        },
    ));
    Node {
        router,
        replica,
        address,
        _stop: stop,
    }
}

async fn call(
    node: &Node,
    method: Method,
    path: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> (u16, Value, Option<String>) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let request = request
        .body(body.map_or_else(Body::empty, |body| Body::from(body.to_string())))
        .unwrap();
    let response = node.router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().to_string());
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        retry_after,
    )
}

async fn create_event(node: &Node, key: Option<&str>) {
    let body = json!({
        "event_id": "E", "name": "Film", "category": "movie", "currency": "EUR",
        "seat_blocks": [{"section": "A", "rows": ["1"], "seats_per_row": 20, "price": 900}]
    });
    let (status, answer, _) = call(node, Method::POST, "/admin/events", Some(body), key).await;
    assert_eq!(status, 201, "{answer}");
}

async fn hold(node: &Node, seat: u32, idempotency_key: &str, key: Option<&str>) -> (u16, Value) {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/booking/hold")
        .header("content-type", "application/json")
        .header("idempotency-key", idempotency_key);
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let body = json!({"event_id": "E", "customer_id": format!("c-{seat}"),
                      "seats": [format!("A-1-{seat}")]});
    let response = node
        .router
        .clone()
        .oneshot(request.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn admin<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {key}")).unwrap(),
    );
    request
}

async fn next_change(stream: &mut tonic::Streaming<ChangeEvent>) -> ChangeEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an event within 10 s")
        .expect("the stream goes on")
        .expect("an event")
}

fn error_code(status: &tonic::Status) -> &str {
    status
        .metadata()
        .get("holdfast-error-code")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_changes_over_grpc_resumes_from_an_index_without_gaps() {
    let node = serve(HttpConfig::default(), Config::default(), true).await;
    create_event(&node, Some(ADMIN_KEY)).await;
    let mut admin_client = AdminServiceClient::connect(node.address.clone())
        .await
        .unwrap();

    // Admin only, like GET /changes.
    let refused = admin_client
        .watch_changes(admin(WatchChangesRequest { from_index: 1 }, CUSTOMER_KEY))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(error_code(&refused), "FORBIDDEN");
    let refused = admin_client
        .watch_changes(tonic::Request::new(WatchChangesRequest { from_index: 1 }))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    let mut stream = admin_client
        .watch_changes(admin(WatchChangesRequest { from_index: 1 }, ADMIN_KEY))
        .await
        .unwrap()
        .into_inner();
    for seat in 1..=3 {
        let (status, answer) = hold(&node, seat, &format!("k{seat}"), Some(CUSTOMER_KEY)).await;
        assert_eq!(status, 201, "{answer}");
    }
    let first = next_change(&mut stream).await;
    assert_eq!(
        (first.index, first.id.as_str(), first.r#type.as_str()),
        (1, "evt_1", "hold.placed")
    );
    let body: Value = serde_json::from_str(&first.json).unwrap();
    assert_eq!(body["data"]["hold_id"], "h_1");
    assert_eq!(body["data"]["customer_id"], "c-1");
    assert_eq!(body["index"], 1);
    let second = next_change(&mut stream).await;
    assert_eq!(second.index, 2);
    // The client disconnects after index 2; more happens meanwhile.
    drop(stream);
    let (status, _, _) = call(
        &node,
        Method::POST,
        "/booking/cancel",
        Some(json!({"hold_id": "h_1"})),
        Some(CUSTOMER_KEY),
    )
    .await;
    assert_eq!(status, 200);

    // Resumed from the last index seen plus one: the rest, no gap, no repeat.
    let mut resumed = admin_client
        .watch_changes(admin(WatchChangesRequest { from_index: 3 }, ADMIN_KEY))
        .await
        .unwrap()
        .into_inner();
    let third = next_change(&mut resumed).await;
    let fourth = next_change(&mut resumed).await;
    assert_eq!((third.index, third.r#type.as_str()), (3, "hold.placed"));
    assert_eq!((fourth.index, fourth.r#type.as_str()), (4, "hold.released"));
    let released: Value = serde_json::from_str(&fourth.json).unwrap();
    assert_eq!(released["data"]["hold_id"], "h_1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_streams_beyond_the_cap_are_refused_on_both_edges() {
    let config = HttpConfig {
        change_streams_max: 1,
        ..HttpConfig::default()
    };
    let node = serve(config, Config::default(), false).await;

    // One SSE stream takes the only place; its body holds it until dropped.
    let open = |node: &Node| {
        let request = Request::builder()
            .uri("/changes?from=1")
            .body(Body::empty())
            .unwrap();
        node.router.clone().oneshot(request)
    };
    let first = open(&node).await.unwrap();
    assert_eq!(first.status(), 200);
    let (status, refused, retry_after) = call(&node, Method::GET, "/changes", None, None).await;
    assert_eq!(status, 503, "{refused}");
    assert_eq!(refused["error"]["code"], "OVERLOADED");
    assert_eq!(refused["error"]["details"]["change_streams_max"], 1);
    assert!(retry_after.is_some(), "Retry-After");
    let mut admin_client = AdminServiceClient::connect(node.address.clone())
        .await
        .unwrap();
    let refused = admin_client
        .watch_changes(WatchChangesRequest { from_index: 1 })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert_eq!(error_code(&refused), "OVERLOADED");

    // Closed, its place is free again: a gRPC watcher takes it, and SSE is refused.
    drop(first);
    let watching = admin_client
        .watch_changes(WatchChangesRequest { from_index: 1 })
        .await
        .unwrap();
    let (status, _, _) = call(&node, Method::GET, "/changes", None, None).await;
    assert_eq!(status, 503);
    drop(watching);
    // The server notices the cancelled stream when it next polls.
    let mut reopened = None;
    for _ in 0..100 {
        let response = open(&node).await.unwrap();
        if response.status() == 200 {
            reopened = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reopened.is_some(), "the gRPC stream's place was given back");
}

#[tokio::test]
async fn a_lagging_webhook_fills_the_outbox_and_holds_are_refused_until_it_catches_up() {
    // Room for three holds' claims (each: hold.placed and the promise of its end).
    let state_config = Config {
        outbox_events_max: 6,
        ..Config::default()
    };
    let node = serve(HttpConfig::default(), state_config, false).await;
    create_event(&node, None).await;
    // The receiver answers nothing useful: a webhook that lags.
    let (status, added, _) = call(
        &node,
        Method::POST,
        "/admin/webhooks",
        Some(
            json!({"url": "http://127.0.0.1:9/hook", "secret": "whsec_0123456789",
                    "events": ["hold.placed", "hold.released"]}),
        ),
        None,
    )
    .await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["events"], json!(["hold.placed", "hold.released"]));
    for seat in 1..=3 {
        let (status, answer) = hold(&node, seat, &format!("k{seat}"), None).await;
        assert_eq!(status, 201, "{answer}");
    }
    let (status, refused) = hold(&node, 4, "k4", None).await;
    assert_eq!(status, 503, "{refused}");
    assert_eq!(refused["error"]["code"], "OUTBOX_FULL");
    assert_eq!(refused["error"]["details"]["max"], 6);
    // Nothing was stored: the seat is still free.
    let (_, seat, _) = call(
        &node,
        Method::GET,
        "/availability?event_id=E&view=summary",
        None,
        None,
    )
    .await;
    assert_eq!(seat["summary"]["seats_held"], 3, "{seat}");
    // Releasing an admitted hold is never refused.
    let (status, released, _) = call(
        &node,
        Method::POST,
        "/booking/cancel",
        Some(json!({"hold_id": "h_1"})),
        None,
    )
    .await;
    assert_eq!(status, 200, "{released}");

    // Removing the laggard frees the outbox; the same key is evaluated afresh.
    let (status, _, _) = call(&node, Method::DELETE, "/admin/webhooks/wh_1", None, None).await;
    assert_eq!(status, 200);
    let (status, answer) = hold(&node, 4, "k4", None).await;
    assert_eq!(status, 201, "{answer}");
    assert!(node.replica.status().leader_id.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_point_whose_events_were_trimmed_is_refused_not_skipped() {
    // No webhook: the outbox keeps a window of the newest three events.
    let state_config = Config {
        outbox_events_max: 3,
        ..Config::default()
    };
    let node = serve(HttpConfig::default(), state_config, false).await;
    create_event(&node, None).await;
    for seat in 1..=6 {
        let (status, answer) = hold(&node, seat, &format!("k{seat}"), None).await;
        assert_eq!(status, 201, "{answer}");
    }
    // Events 4, 5 and 6 are held; a client that saw 1 would miss 2 and 3.
    let request = Request::builder()
        .uri("/changes")
        .header("last-event-id", "1")
        .body(Body::empty())
        .unwrap();
    let response = node.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 400);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let refused: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(refused["error"]["code"], "INVALID_FIELD");
    assert_eq!(refused["error"]["details"]["field"], "Last-Event-ID");
    assert_eq!(refused["error"]["details"]["oldest_index"], 4);

    let mut admin_client = AdminServiceClient::connect(node.address.clone())
        .await
        .unwrap();
    let refused = admin_client
        .watch_changes(WatchChangesRequest { from_index: 2 })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert_eq!(error_code(&refused), "INVALID_FIELD");
    // From the oldest held, or from the start: no gap to hide.
    for from_index in [4, 1] {
        let mut stream = admin_client
            .watch_changes(WatchChangesRequest { from_index })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(next_change(&mut stream).await.index, 4);
    }
}
