//! The dashboard's routes, in process over a `LocalReplica`: served without a key (even
//! when the API has keys), never the API's JSON 404, a strict Content-Security-Policy, and
//! CORS on the status paths for members' origins only. The pages themselves are tested in
//! a real browser by `tests/tests/ui.rs`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use holdfast_node::auth::AuthKeys;
use holdfast_node::{
    router, AppState, HttpConfig, LocalReplica, LocalReplicaConfig, SandboxProvider,
};
use tower::ServiceExt;

const MEMBER_ORIGIN: &str = "http://127.0.0.1:7001";

fn node(auth_keys: Option<&str>) -> Router {
    let replica = LocalReplica::shared(LocalReplicaConfig {
        http_addr: "127.0.0.1:7001".into(),
        ..LocalReplicaConfig::default()
    });
    let config = HttpConfig {
        auth_keys: auth_keys.map(|text| Arc::new(AuthKeys::parse(text).expect("keys"))),
        ..HttpConfig::default()
    };
    router(AppState::new(
        replica,
        Arc::new(SandboxProvider::default()),
        config,
    ))
}

async fn send(
    router: &Router,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, String) {
    send_body(router, method, path, headers, Body::empty()).await
}

async fn send_body(
    router: &Router,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Body,
) -> (StatusCode, HeaderMap, String) {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = router
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
}

fn header(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
}

const KEYS: &str = "operator ops-key-0123456789\ncustomer cust-key-0123456789\n";

#[tokio::test]
async fn pages_are_html_with_a_strict_policy() {
    let router = node(None);
    for path in ["/ui", "/ui/events/cinema-dune"] {
        let (status, headers, body) = send(&router, Method::GET, path, &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(header(&headers, header::CONTENT_TYPE).starts_with("text/html"));
        let policy = header(&headers, header::CONTENT_SECURITY_POLICY);
        assert!(policy.contains("default-src 'none'"), "{policy}");
        assert!(policy.contains("script-src 'self'"), "{policy}");
        assert!(
            policy.contains(&format!("connect-src 'self' {MEMBER_ORIGIN}")),
            "{policy}"
        );
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert_eq!(header(&headers, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert!(body.contains("/ui/assets/common.js"));
    }
    let (status, headers, body) = send(&router, Method::GET, "/ui/assets/event.js", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(header(&headers, header::CONTENT_TYPE).starts_with("text/javascript"));
    assert!(body.contains("/availability"));
}

#[tokio::test]
async fn unknown_dashboard_paths_are_an_html_404_not_the_api_fallback() {
    let router = node(Some(KEYS));
    for path in ["/ui/nothing/here", "/ui/events/a/b", "/ui/events/"] {
        let (status, headers, body) = send(&router, Method::GET, path, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            header(&headers, header::CONTENT_TYPE).starts_with("text/html"),
            "{path}"
        );
        assert!(!body.contains("ROUTE_NOT_FOUND"), "{path}");
    }
    let (status, _, _) = send(&router, Method::GET, "/ui/assets/missing.js", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The API's own unknown routes keep their JSON answer.
    let (status, _, body) = send(
        &router,
        Method::GET,
        "/nothing",
        &[("authorization", "Bearer ops-key-0123456789")],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("ROUTE_NOT_FOUND"));
}

#[tokio::test]
async fn pages_need_no_key_but_the_data_behind_them_does() {
    let router = node(Some(KEYS));
    for path in ["/ui", "/ui/events/cinema-dune", "/ui/assets/app.css"] {
        let (status, _, _) = send(&router, Method::GET, path, &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let (status, _, _) = send(&router, Method::GET, "/cluster/status", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = send(&router, Method::GET, "/availability?event_id=e", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn members_may_read_status_across_origins_and_nobody_else_may() {
    let router = node(Some(KEYS));
    let preflight = [
        ("origin", MEMBER_ORIGIN),
        ("access-control-request-method", "GET"),
        ("access-control-request-headers", "authorization"),
    ];
    let (status, headers, _) = send(&router, Method::OPTIONS, "/cluster/status", &preflight).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        header(&headers, header::ACCESS_CONTROL_ALLOW_ORIGIN),
        MEMBER_ORIGIN
    );
    assert_eq!(
        header(&headers, header::ACCESS_CONTROL_ALLOW_HEADERS),
        "authorization"
    );

    let keyed = [
        ("origin", MEMBER_ORIGIN),
        ("authorization", "Bearer ops-key-0123456789"),
    ];
    let (status, headers, body) = send(&router, Method::GET, "/cluster/status", &keyed).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header(&headers, header::ACCESS_CONTROL_ALLOW_ORIGIN),
        MEMBER_ORIGIN
    );
    assert!(body.contains("\"node_id\":1"));
    // The key is still needed after the preflight.
    let (status, _, _) = send(
        &router,
        Method::GET,
        "/cluster/status",
        &[("origin", MEMBER_ORIGIN)],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Another origin, or another path, gets no CORS at all.
    let stranger = [
        ("origin", "http://evil.example"),
        ("authorization", "Bearer ops-key-0123456789"),
    ];
    let (_, headers, _) = send(&router, Method::GET, "/cluster/status", &stranger).await;
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    let booking = [
        ("origin", MEMBER_ORIGIN),
        ("authorization", "Bearer cust-key-0123456789"),
    ];
    let (_, headers, _) = send(&router, Method::GET, "/availability?event_id=e", &booking).await;
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    let (status, _, _) = send(&router, Method::OPTIONS, "/booking/hold", &preflight).await;
    assert_ne!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn an_open_node_renders_an_events_counts_into_its_page() {
    let router = node(None);
    let (status, _, body) = send(&router, Method::GET, "/ui/events/no-such-event", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("no-such-event"));
    assert!(!body.contains("{{"));

    let event = r#"{"event_id": "show", "name": "A <b>show</b>", "category": "event",
        "currency": "EUR", "seat_blocks": [{"section": "A", "rows": ["1"], "seats_per_row": 7, "price": 100}]}"#;
    let json = [("content-type", "application/json")];
    let (status, _, _) = send_body(
        &router,
        Method::POST,
        "/admin/events",
        &json,
        Body::from(event),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let hold = r#"{"event_id": "show", "customer_id": "c", "seats": ["A-1-1", "A-1-2"]}"#;
    let (status, _, _) = send_body(
        &router,
        Method::POST,
        "/booking/hold",
        &json,
        Body::from(hold),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, _, body) = send(&router, Method::GET, "/ui/events/show", &[]).await;
    assert!(
        body.contains(r#"<strong id="count-available">5</strong>"#),
        "{body}"
    );
    assert!(body.contains(r#"<strong id="count-held">2</strong>"#));
    assert!(body.contains(r#"<strong id="count-booked">0</strong>"#));
    assert!(body.contains("A &lt;b&gt;show&lt;/b&gt;"));

    // With keys the page shows nothing of the event until the browser reads it with one.
    let router = node(Some(KEYS));
    let (_, _, body) = send(&router, Method::GET, "/ui/events/show", &[]).await;
    assert!(body.contains(r#"<strong id="count-available">–</strong>"#));
}
