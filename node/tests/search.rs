//! Search (`GET /events`, `GET /events/{event_id}`), listing updates and event
//! cancellation through the HTTP router over a `LocalReplica`, and the gRPC
//! `SearchEvents` / `GetEvent` calls over a real loopback socket.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use holdfast_node::grpc::with_grpc;
use holdfast_node::replica::{read_now, Proposal, Replica};
use holdfast_node::wire::rfc3339;
use holdfast_node::{
    router, run_http, AppState, HttpConfig, LocalReplica, LocalReplicaConfig, SandboxProvider,
};
use holdfast_proto::booking::booking_service_client::BookingServiceClient;
use holdfast_proto::booking::{GetEventRequest, SearchEventsRequest};
use holdfast_statemachine::{Category, Command, CreateEvent, Listing, PoolSpec};
use serde_json::{json, Value};
use tower::ServiceExt;

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    fn field(&self) -> &str {
        self.body["error"]["details"]["field"]
            .as_str()
            .unwrap_or("")
    }

    fn ids(&self) -> Vec<String> {
        self.body["events"]
            .as_array()
            .unwrap_or_else(|| panic!("no events in {}", self.body))
            .iter()
            .map(|event| event["event_id"].as_str().unwrap().to_string())
            .collect()
    }
}

struct Node {
    router: Router,
    state: AppState,
    replica: Arc<LocalReplica>,
}

impl Node {
    fn new() -> Node {
        let replica = LocalReplica::shared(LocalReplicaConfig {
            min_index_wait: Duration::from_millis(50),
            ..LocalReplicaConfig::default()
        });
        let state = AppState::new(
            replica.clone(),
            Arc::new(SandboxProvider::default()),
            HttpConfig::default(),
        );
        Node {
            router: router(state.clone()),
            state,
            replica,
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let body = body.map_or_else(Body::empty, |body| Body::from(body.to_string()));
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(body)).await
    }

    async fn create(&self, body: Value) {
        let answer = self.post("/admin/events", body).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    }

    fn snapshot(&self) -> Vec<u8> {
        read_now(&*self.replica, |machine| machine.snapshot_bytes()).0
    }

    /// A cinema, a concert, a hotel (room types STD and STE, nights 1–3 December) and a
    /// clinic without venue.
    async fn catalogue(&self) {
        self.create(json!({
            "event_id": "film", "name": "Dune", "category": "movie",
            "venue": "Odeon Screen 1", "city": "Lyon", "starts_at": "2026-12-01T20:00:00Z",
            "ends_at": "2026-12-01T23:00:00Z", "description": "Part three", "tags": ["sf"],
            "currency": "EUR",
            "seat_blocks": [{"section": "A", "rows": ["1"], "seats_per_row": 4, "price": 1200}]
        }))
        .await;
        self.create(json!({
            "event_id": "concert", "name": "Aurora", "category": "event",
            "venue": "Halle Tony Garnier", "city": "Lyon", "starts_at": "2026-12-14T19:00:00Z",
            "currency": "EUR", "pools": [{"id": "GA", "capacity": 100, "price": 5900}]
        }))
        .await;
        let mut pools = Vec::new();
        for night in ["2026-12-01", "2026-12-02", "2026-12-03"] {
            pools.push(json!({"id": format!("STD-{night}"), "capacity": 1, "price": 9900}));
            pools.push(json!({"id": format!("STE-{night}"), "capacity": 1, "price": 29900}));
        }
        self.create(json!({
            "event_id": "hotel", "name": "Harbour Hotel", "category": "hotel",
            "venue": "Harbour Hotel", "city": "Marseille", "starts_at": "2026-12-01T15:00:00Z",
            "currency": "EUR", "pools": pools
        }))
        .await;
        self.create(json!({
            "event_id": "clinic", "name": "Northside Clinic", "category": "appointment",
            "currency": "EUR", "pools": [{"id": "DR-1", "capacity": 1, "price": 6000}]
        }))
        .await;
    }

    async fn hold_pool(&self, event_id: &str, pool_id: &str) {
        let answer = self
            .post(
                "/booking/hold",
                json!({"event_id": event_id, "customer_id": "c-1",
                       "pools": [{"pool_id": pool_id, "quantity": 1}]}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    }
}

#[tokio::test]
async fn events_are_listed_by_start_with_metadata_and_summary() {
    let node = Node::new();
    node.catalogue().await;
    let answer = node.get("/events").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.ids(), ["hotel", "film", "concert", "clinic"]);
    assert!(answer.body.get("next_after").is_none());
    assert!(answer.headers.contains_key("etag"));
    assert!(answer.headers.contains_key("x-holdfast-applied-index"));
    let film = &answer.body["events"][1];
    assert_eq!(film["name"], "Dune");
    assert_eq!(film["category"], "movie");
    assert_eq!(film["venue"], "Odeon Screen 1");
    assert_eq!(film["city"], "Lyon");
    assert_eq!(film["starts_at"], "2026-12-01T20:00:00Z");
    assert_eq!(film["ends_at"], "2026-12-01T23:00:00Z");
    assert_eq!(film["tags"], json!(["sf"]));
    assert_eq!(film["status"], "ACTIVE");
    assert_eq!(
        film["summary"],
        json!({"seats_total": 4, "seats_available": 4, "seats_held": 0, "seats_booked": 0,
               "pools": {"capacity": 0, "available": 0, "held": 0, "booked": 0}})
    );
    let concert = &answer.body["events"][2];
    assert_eq!(concert["summary"]["pools"]["capacity"], 100);

    let one = node.get("/events/film").await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body["description"], "Part three");
    assert_eq!(&one.body, film);
    let etag = one.headers["etag"].to_str().unwrap().to_string();
    let request = Request::get("/events/film")
        .header("if-none-match", &etag)
        .body(Body::empty())
        .unwrap();
    let again = node.router.clone().oneshot(request).await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let missing = node.get("/events/nothing").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "EVENT_NOT_FOUND");
    // Reads at the other levels are served the same way.
    let linearizable = node
        .get("/events?consistency=linearizable&min_index=1")
        .await;
    assert_eq!(linearizable.ids(), answer.ids());
    let bounded = node.get("/events/film?consistency=bounded").await;
    assert_eq!(bounded.status, StatusCode::OK);
}

#[tokio::test]
async fn filters_and_paging() {
    let node = Node::new();
    node.catalogue().await;
    let ids = |path: &'static str| {
        let node = &node;
        async move {
            let answer = node.get(path).await;
            assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
            answer.ids()
        }
    };
    assert_eq!(ids("/events?category=movie").await, ["film"]);
    assert_eq!(ids("/events?city=LYON").await, ["film", "concert"]);
    assert_eq!(ids("/events?q=garnier").await, ["concert"]);
    assert_eq!(ids("/events?q=HARBOUR&city=marseille").await, ["hotel"]);
    assert_eq!(
        ids("/events?starts_from=2026-12-01T16:00:00Z&starts_to=2026-12-14T19:00:00Z").await,
        ["film", "concert"]
    );
    // The hotel's six room nights count together.
    assert_eq!(ids("/events?min_available=5").await, ["hotel", "concert"]);
    assert_eq!(ids("/events?min_available=7").await, ["concert"]);
    assert_eq!(
        ids("/events?min_available=4&category=movie").await,
        ["film"]
    );

    let first = node.get("/events?limit=2").await;
    assert_eq!(first.ids(), ["hotel", "film"]);
    assert_eq!(first.body["next_after"], "film");
    let second = node.get("/events?limit=2&after=film").await;
    assert_eq!(second.ids(), ["concert", "clinic"]);
    assert!(second.body.get("next_after").is_none());
    // Above the maximum is the maximum.
    assert_eq!(ids("/events?limit=100000").await.len(), 4);
}

#[tokio::test]
async fn hotels_match_a_night_range_when_one_room_type_is_free_every_night() {
    let node = Node::new();
    node.catalogue().await;
    let range = "/events?nights_from=2026-12-01&nights_to=2026-12-03";
    assert_eq!(node.get(range).await.ids(), ["hotel"]);
    // Other categories never match a night range.
    assert!(node
        .get("/events?category=movie&nights_from=2026-12-01&nights_to=2026-12-01")
        .await
        .ids()
        .is_empty());
    // A night it does not sell.
    assert!(node
        .get("/events?nights_from=2026-12-03&nights_to=2026-12-04")
        .await
        .ids()
        .is_empty());
    // The standard room goes on the 1st, the suite on the 3rd: each night still has a
    // room, but no room type is free on all three.
    node.hold_pool("hotel", "STD-2026-12-01").await;
    assert_eq!(node.get(range).await.ids(), ["hotel"]);
    node.hold_pool("hotel", "STE-2026-12-03").await;
    assert!(node.get(range).await.ids().is_empty());
    assert_eq!(
        node.get("/events?nights_from=2026-12-02&nights_to=2026-12-03")
            .await
            .ids(),
        ["hotel"]
    );
}

#[tokio::test]
async fn bad_filters_are_refused_naming_the_field() {
    let node = Node::new();
    node.catalogue().await;
    let cases = [
        ("/events?category=opera", "category"),
        ("/events?starts_from=tomorrow", "starts_from"),
        ("/events?starts_to=2026-13-01T00:00:00Z", "starts_to"),
        (
            "/events?starts_from=2026-12-02T00:00:00Z&starts_to=2026-12-01T00:00:00Z",
            "starts_to",
        ),
        ("/events?min_available=-1", "min_available"),
        ("/events?limit=0", "limit"),
        ("/events?limit=ten", "limit"),
        ("/events?after=has%20space", "after"),
        ("/events?after=unknown", "after"),
        ("/events?nights_from=2026-12-01", "nights_to"),
        ("/events?nights_to=2026-12-01", "nights_from"),
        (
            "/events?nights_from=2026-12-01&nights_to=2026-11-30",
            "nights_to",
        ),
        (
            "/events?nights_from=2026-12-1&nights_to=2026-12-02",
            "nights_from",
        ),
        (
            "/events?nights_from=2026-01-01&nights_to=2026-12-31",
            "nights_to",
        ),
        ("/events?consistency=eventual", "consistency"),
        ("/events?city=", "city"),
    ];
    for (path, field) in cases {
        let answer = node.get(path).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            answer.body
        );
        assert_eq!(answer.code(), "INVALID_FIELD", "{path}");
        assert_eq!(answer.field(), field, "{path}: {}", answer.body);
    }
    let long = format!("/events?q={}", "x".repeat(129));
    assert_eq!(node.get(&long).await.field(), "q");
}

#[tokio::test]
async fn listing_fields_are_validated_at_the_edge_and_nothing_is_stored() {
    let node = Node::new();
    let before = node.snapshot();
    let base = json!({"event_id": "E", "name": "E", "currency": "EUR",
                      "starts_at": "2026-12-01T20:00:00Z"});
    let cases = [
        ("venue", json!("")),
        ("city", json!("x".repeat(129))),
        ("description", json!("x".repeat(4097))),
        ("tags", json!(["a", "a"])),
        (
            "tags",
            json!((0..17).map(|n| n.to_string()).collect::<Vec<_>>()),
        ),
        ("tags", json!(["x".repeat(33)])),
        ("ends_at", json!("2026-12-01T19:00:00Z")),
        ("ends_at", json!("soon")),
    ];
    for (field, value) in cases {
        let mut body = base.clone();
        body[field] = value;
        let answer = node.post("/admin/events", body).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{field}: {}",
            answer.body
        );
        assert_eq!(answer.code(), "INVALID_FIELD");
        assert_eq!(answer.field(), field, "{}", answer.body);
    }
    assert_eq!(node.snapshot(), before);
}

#[tokio::test]
async fn admin_updates_a_listing() {
    let node = Node::new();
    node.catalogue().await;
    let patch = |body: Value| node.send(Method::PATCH, "/admin/events/clinic", Some(body));
    let answer = patch(json!({"venue": "Northside", "city": "Lyon",
                              "starts_at": "2026-12-02T09:00:00Z", "tags": ["health"]}))
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["event_id"], "clinic");
    assert_eq!(
        node.get("/events?city=lyon").await.ids(),
        ["film", "clinic", "concert"]
    );
    let clinic = node.get("/events/clinic").await.body;
    assert_eq!(clinic["venue"], "Northside");
    assert_eq!(clinic["tags"], json!(["health"]));
    // null clears; an absent field stays.
    let answer = patch(json!({"city": null})).await;
    assert_eq!(answer.status, StatusCode::OK);
    let clinic = node.get("/events/clinic").await.body;
    assert_eq!(clinic["city"], Value::Null);
    assert_eq!(clinic["venue"], "Northside");

    let before = node.snapshot();
    for (body, field) in [
        (json!({}), "body"),
        (json!({"venue": ""}), "venue"),
        (json!({"starts_at": "never"}), "starts_at"),
        (
            json!({"starts_at": "2026-12-02T09:00:00Z", "ends_at": "2026-12-01T00:00:00Z"}),
            "ends_at",
        ),
        (json!({"tags": ["a", "a"]}), "tags"),
    ] {
        let answer = patch(body.clone()).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            answer.body
        );
        assert_eq!(answer.field(), field, "{body}: {}", answer.body);
    }
    assert_eq!(node.snapshot(), before);
    // An end before the event's current start needs the state: the state machine refuses
    // it (only its clock moves, as for every refused command).
    let answer = patch(json!({"ends_at": "2026-12-01T00:00:00Z"})).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(answer.field(), "ends_at");
    assert_eq!(
        node.get("/events/clinic").await.body["ends_at"],
        Value::Null
    );
    let missing = node
        .send(
            Method::PATCH,
            "/admin/events/none",
            Some(json!({"venue": "x"})),
        )
        .await;
    assert_eq!(missing.code(), "EVENT_NOT_FOUND");
}

#[tokio::test]
async fn cancelling_an_event_releases_holds_refunds_bookings_and_refuses_holds() {
    let node = Node::new();
    node.catalogue().await;
    node.hold_pool("concert", "GA").await;
    let hold = node
        .post(
            "/booking/hold",
            json!({"event_id": "concert", "customer_id": "c-2",
                   "pools": [{"pool_id": "GA", "quantity": 2}]}),
        )
        .await;
    let confirmed = node
        .post(
            "/booking/confirm",
            json!({"hold_id": hold.body["hold_id"],
                   "payment": {"method": "card", "token": "tok_visa"}}),
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    let booking_id = confirmed.body["booking_id"].as_str().unwrap().to_string();

    let cancelled = node
        .post("/admin/events/concert/cancel", json!({"reason": "storm"}))
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "CANCELLED");
    assert_eq!(cancelled.body["holds_released"], 1);
    assert_eq!(cancelled.body["bookings_cancelled"], 1);
    assert_eq!(cancelled.body["refunds_recorded"], 1);
    assert_eq!(cancelled.body["refund_amount"], 11800);

    let booking = node.get(&format!("/bookings/{booking_id}")).await;
    assert_eq!(booking.body["status"], "CANCELLED");
    assert_eq!(booking.body["refund"]["status"], "PENDING");
    let event = node.get("/events/concert").await;
    assert_eq!(event.body["status"], "CANCELLED");
    assert_eq!(event.body["summary"]["pools"]["available"], 100);
    assert!(!node.get("/events").await.ids().contains(&"concert".into()));

    let refused = node
        .post(
            "/booking/hold",
            json!({"event_id": "concert", "customer_id": "c-3",
                   "pools": [{"pool_id": "GA", "quantity": 1}]}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.code(), "EVENT_CANCELLED");
    let again = node.post("/admin/events/concert/cancel", json!({})).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "EVENT_CANCELLED");
    let missing = node.post("/admin/events/none/cancel", json!({})).await;
    assert_eq!(missing.code(), "EVENT_NOT_FOUND");
}

#[tokio::test]
async fn the_routes_are_in_the_openapi_document() {
    let node = Node::new();
    let document = node.get("/openapi.json").await.body;
    for path in [
        "/events",
        "/events/{event_id}",
        "/admin/events/{event_id}",
        "/admin/events/{event_id}/cancel",
    ] {
        assert!(document["paths"][path].is_object(), "{path} is missing");
    }
}

#[tokio::test]
async fn a_search_among_100_000_events_pages_in_start_order() {
    let node = Node::new();
    const EVENTS: u64 = 100_000;
    const BATCH: u64 = 5_000;
    let base_ms = 1_790_000_000_000;
    for batch in 0..EVENTS / BATCH {
        let proposals = (batch * BATCH..(batch + 1) * BATCH)
            .map(|n| Proposal {
                request_id: None,
                command: Command::CreateEvent(CreateEvent {
                    event_id: format!("ev-{n:06}"),
                    name: format!("Event {n}"),
                    category: if n % 2 == 0 {
                        Category::Movie
                    } else {
                        Category::Event
                    },
                    // Start times in an order unlike the ids'.
                    starts_at_ms: Some(base_ms + (n * 7_919 % EVENTS) * 60_000),
                    currency: "EUR".into(),
                    seats: vec![],
                    seat_blocks: vec![],
                    pools: vec![PoolSpec {
                        id: "GA".into(),
                        capacity: n % 10,
                        price: 100,
                    }],
                    listing: Listing {
                        city: Some(if n % 4 < 2 { "Lyon" } else { "Paris" }.into()),
                        ..Listing::default()
                    },
                }),
            })
            .collect();
        let outcomes = node.replica.propose(proposals).await.unwrap();
        assert!(outcomes.iter().all(|answer| answer.outcome.is_success()));
    }
    // Movies (n even) in Lyon (n % 4 < 2, so n % 4 == 0) with 8 or more free (n % 10 of 8
    // or 9, so n % 20 == 8): 5,000 events spread over the whole index.
    let path = "/events?category=movie&city=lyon&min_available=8&limit=500";
    let mut after: Option<String> = None;
    let mut seen = 0;
    let mut last_start = String::new();
    for _ in 0..3 {
        let page_path = match &after {
            Some(after) => format!("{path}&after={after}"),
            None => path.to_string(),
        };
        let page = node.get(&page_path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let events = page.body["events"].as_array().unwrap();
        assert_eq!(events.len(), 500);
        for event in events {
            assert_eq!(event["category"], "movie");
            assert_eq!(event["city"], "Lyon");
            assert!(event["summary"]["pools"]["available"].as_u64().unwrap() >= 8);
            let start = event["starts_at"].as_str().unwrap().to_string();
            assert!(start >= last_start, "{start} before {last_start}");
            last_start = start;
        }
        seen += events.len();
        after = page.body["next_after"].as_str().map(String::from);
        assert!(after.is_some());
    }
    assert_eq!(seen, 1_500);
    // n even and n % 10 == 9 never hold together: an empty answer after a walk of the
    // whole movie index.
    let none = node.get("/events?category=movie&min_available=9").await;
    assert_eq!(none.status, StatusCode::OK);
    assert!(none.ids().is_empty());
    // A ten-minute window in the middle: one event starts each minute.
    let from = rfc3339(base_ms + 50_000 * 60_000);
    let to = rfc3339(base_ms + 50_010 * 60_000);
    let window = node
        .get(&format!(
            "/events?starts_from={from}&starts_to={to}&limit=500"
        ))
        .await;
    assert_eq!(window.status, StatusCode::OK, "{}", window.body);
    let starts: Vec<&str> = window.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["starts_at"].as_str().unwrap())
        .collect();
    assert_eq!(starts.len(), 11);
    assert!(starts.windows(2).all(|pair| pair[0] < pair[1]));
    assert_eq!((starts[0], starts[10]), (from.as_str(), to.as_str()));
}

#[tokio::test]
async fn grpc_search_events_and_get_event() {
    let node = Node::new();
    node.catalogue().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let routes = with_grpc(router(node.state.clone()), node.state.clone());
    tokio::spawn(run_http(routes, listener, async {
        let _ = stopped.await;
    }));
    let mut client = BookingServiceClient::connect(address).await.unwrap();

    let page = client
        .search_events(SearchEventsRequest {
            city: Some("lyon".into()),
            limit: Some(1),
            ..SearchEventsRequest::default()
        })
        .await
        .unwrap();
    assert!(page.metadata().get("x-holdfast-applied-index").is_some());
    let page = page.into_inner();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].event_id, "film");
    assert_eq!(page.events[0].venue.as_deref(), Some("Odeon Screen 1"));
    assert_eq!(page.events[0].summary.as_ref().unwrap().seats_total, 4);
    assert_eq!(page.next_after.as_deref(), Some("film"));
    let rest = client
        .search_events(SearchEventsRequest {
            city: Some("lyon".into()),
            after: page.next_after,
            ..SearchEventsRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.events.len(), 1);
    assert_eq!(rest.events[0].event_id, "concert");
    assert_eq!(rest.events[0].pools.as_ref().unwrap().capacity, 100);

    let hotels = client
        .search_events(SearchEventsRequest {
            nights_from: Some("2026-12-01".into()),
            nights_to: Some("2026-12-03".into()),
            ..SearchEventsRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hotels.events.len(), 1);
    assert_eq!(hotels.events[0].category, "hotel");

    let film = client
        .get_event(GetEventRequest {
            event_id: "film".into(),
            read: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(film.ends_at.as_deref(), Some("2026-12-01T23:00:00Z"));
    assert_eq!(film.tags, ["sf"]);
    assert_eq!(film.status, "ACTIVE");

    let bad = client
        .search_events(SearchEventsRequest {
            category: Some("opera".into()),
            ..SearchEventsRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    let code = bad.metadata().get("holdfast-error-code").unwrap();
    assert_eq!(code.to_str().unwrap(), "INVALID_FIELD");
    let missing = client
        .get_event(GetEventRequest {
            event_id: "none".into(),
            read: None,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let _ = stop.send(());
}
