//! Webhook delivery across a leader kill, with real processes: a three-node cluster
//! delivers its outbox to a receiver this test serves on 127.0.0.1. The receiver takes one
//! delivery and never answers it (the leader is mid-delivery), the test SIGKILLs that
//! leader, and the new leader's notifier resumes from the progress committed through Raft.
//!
//! Checked at the receiver, as a real one would see it: every signature verifies; every
//! event of the outbox arrives and is acknowledged at least once (the one in flight at the
//! kill included); deduplicated by id, events arrive in outbox order, so in order per
//! booking (hold placed, confirmed, cancelled, refund recorded, refund paid); and nothing
//! the cluster records as acknowledged (`delivered_up_to`) was missed by the receiver.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use hmac::{Hmac, Mac};
use holdfast_tests::{confirm_body, event_body, hold_body, ProcessCluster};
use serde_json::{json, Value};
use sha2::Sha256;

const SECRET: &str = "whsec_leader_kill_0123456789";
/// Bookings made before the kill and after it; each makes five events.
const BOOKINGS_BEFORE: usize = 3;
const BOOKINGS_AFTER: usize = 2;
const EVENTS_PER_BOOKING: u64 = 5;
/// The first delivery of this outbox index is taken and never answered.
const HANG_AT_INDEX: u64 = 7;

#[derive(Default)]
struct Received {
    /// Every verified delivery in arrival order (repeats included).
    arrivals: Vec<Value>,
    /// Indexes answered with a 2xx.
    acknowledged: BTreeSet<u64>,
    /// Deliveries whose signature did not verify.
    forged: u32,
    /// Whether the delivery of [`HANG_AT_INDEX`] has arrived and is being held.
    hanging: bool,
}

type Shared = Arc<Mutex<Received>>;

/// `Holdfast-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, checked
/// with this test's own HMAC.
fn verifies(headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(header) = headers
        .get("holdfast-signature")
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let (mut time, mut signature) = (None, None);
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

async fn receive(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let hang = {
        let mut received = shared.lock().unwrap();
        if !verifies(&headers, &body) {
            received.forged += 1;
            return StatusCode::BAD_REQUEST;
        }
        let event: Value = serde_json::from_slice(&body).unwrap();
        let index = event["index"].as_u64().unwrap();
        received.arrivals.push(event);
        let first_arrival_of_hang = index == HANG_AT_INDEX && !received.hanging;
        if first_arrival_of_hang {
            received.hanging = true;
        } else {
            received.acknowledged.insert(index);
        }
        first_arrival_of_hang
    };
    if hang {
        // Taken, never answered: the leader is mid-delivery when it dies.
        std::future::pending::<()>().await;
    }
    StatusCode::NO_CONTENT
}

/// Holds a seat, confirms and cancels it through `position`; the booking's hold id.
async fn book_and_cancel(
    cluster: &ProcessCluster,
    position: usize,
    number: usize,
) -> anyhow::Result<String> {
    let seat = format!("A-1-{number}");
    let hold = cluster
        .post(
            position,
            "/booking/hold",
            hold_body("notify", &format!("c-{number}"), &[&seat], 600),
            Some(&format!("hold-{number}")),
        )
        .await?;
    anyhow::ensure!(hold.status == 201, "hold: {:?}", hold.body);
    let hold_id = hold.body["hold_id"].as_str().unwrap().to_string();
    let booking = cluster
        .post(
            position,
            "/booking/confirm",
            confirm_body(&hold_id, "tok_visa"),
            Some(&format!("confirm-{number}")),
        )
        .await?;
    anyhow::ensure!(booking.status == 200, "confirm: {:?}", booking.body);
    let cancelled = cluster
        .post(
            position,
            "/booking/cancel",
            json!({"booking_id": booking.body["booking_id"], "reason": "plans changed"}),
            Some(&format!("cancel-{number}")),
        )
        .await?;
    anyhow::ensure!(cancelled.status == 200, "cancel: {:?}", cancelled.body);
    Ok(hold_id)
}

/// Waits (bounded) until `done` holds for what the receiver got.
async fn wait_for(shared: &Shared, what: &str, done: impl Fn(&Received) -> bool) {
    for _ in 0..1_200 {
        if done(&shared.lock().unwrap()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let received = shared.lock().unwrap();
    panic!(
        "{what}: acknowledged {:?}, {} arrivals",
        received.acknowledged,
        received.arrivals.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_deliveries_survive_a_leader_kill_mid_delivery() -> anyhow::Result<()> {
    let shared = Shared::default();
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut cluster = ProcessCluster::start(3).await?;
    let leader = cluster.wait_for_leader().await?;
    cluster
        .create_event(leader, event_body("notify", 1, 10, 10))
        .await?;
    let added = cluster
        .post(
            leader,
            "/admin/webhooks",
            json!({"url": url, "secret": SECRET, "events": []}),
            Some("webhook"),
        )
        .await?;
    assert_eq!(added.status, 201, "{:?}", added.body);
    let webhook_id = added.body["webhook_id"].as_str().unwrap().to_string();
    assert_eq!(added.body["delivered_up_to"], 0);

    let mut holds = Vec::new();
    for number in 1..=BOOKINGS_BEFORE {
        holds.push(book_and_cancel(&cluster, leader, number).await?);
    }
    // The leader's notifier reaches the event the receiver holds without an answer.
    wait_for(&shared, "the delivery to hang on", |received| {
        received.hanging
    })
    .await;
    cluster.kill(leader);

    let successor = cluster.wait_for_leader_without(leader).await?;
    for number in BOOKINGS_BEFORE + 1..=BOOKINGS_BEFORE + BOOKINGS_AFTER {
        holds.push(book_and_cancel(&cluster, successor, number).await?);
    }
    let total = EVENTS_PER_BOOKING * (BOOKINGS_BEFORE + BOOKINGS_AFTER) as u64;
    wait_for(&shared, "every event acknowledged", |received| {
        received.acknowledged.len() as u64 >= total
    })
    .await;

    // The cluster's committed progress reaches what the receiver acknowledged.
    let mut delivered_up_to = 0;
    for _ in 0..600 {
        let listed = cluster.get(successor, "/admin/webhooks").await?;
        delivered_up_to = listed.body["webhooks"][0]["delivered_up_to"]
            .as_u64()
            .unwrap_or(0);
        if delivered_up_to >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        listed_id(&cluster, successor).await?,
        webhook_id,
        "the same webhook"
    );
    assert_eq!(delivered_up_to, total, "{}", cluster.log_tail(successor));

    let received = shared.lock().unwrap();
    assert_eq!(received.forged, 0, "every signature verifies");
    // At least once: every index of the outbox acknowledged, the one in flight included,
    // and nothing the cluster counts as delivered missing at the receiver.
    let expected: BTreeSet<u64> = (1..=total).collect();
    assert_eq!(received.acknowledged, expected);
    assert!(received
        .arrivals
        .iter()
        .filter(|event| event["index"] == HANG_AT_INDEX)
        .nth(1)
        .is_some());
    // Deduplicated by id, deliveries come in outbox order.
    let mut seen = BTreeSet::new();
    let mut first_arrivals = Vec::new();
    for event in &received.arrivals {
        let id = event["id"].as_str().unwrap().to_string();
        assert_eq!(id, format!("evt_{}", event["index"]));
        if seen.insert(id) {
            first_arrivals.push(event.clone());
        }
    }
    let indexes: Vec<u64> = first_arrivals
        .iter()
        .map(|event| event["index"].as_u64().unwrap())
        .collect();
    assert_eq!(
        indexes,
        (1..=total).collect::<Vec<u64>>(),
        "in outbox order"
    );

    // Per booking, in its life's order: each event is traced to its hold (a cancellation
    // names its booking, a payment its refund).
    let mut booking_to_hold: BTreeMap<String, String> = BTreeMap::new();
    let mut refund_to_hold: BTreeMap<String, String> = BTreeMap::new();
    let mut per_hold: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in &first_arrivals {
        let data = &event["data"];
        let kind = event["type"].as_str().unwrap().to_string();
        let text = |field: &str| data[field].as_str().unwrap().to_string();
        let hold_id = match kind.as_str() {
            "booking.cancelled" => booking_to_hold[&text("booking_id")].clone(),
            "refund.paid" => refund_to_hold[&text("refund_id")].clone(),
            _ => text("hold_id"),
        };
        match kind.as_str() {
            "booking.confirmed" => {
                booking_to_hold.insert(text("booking_id"), hold_id.clone());
            }
            "refund.recorded" => {
                refund_to_hold.insert(text("refund_id"), hold_id.clone());
            }
            _ => {}
        }
        per_hold.entry(hold_id).or_default().push(kind);
    }
    assert_eq!(per_hold.len(), holds.len());
    for hold_id in &holds {
        assert_eq!(
            per_hold[hold_id],
            [
                "hold.placed",
                "booking.confirmed",
                "booking.cancelled",
                "refund.recorded",
                "refund.paid"
            ],
            "{hold_id}"
        );
    }
    Ok(())
}

async fn listed_id(cluster: &ProcessCluster, position: usize) -> anyhow::Result<String> {
    let listed = cluster.get(position, "/admin/webhooks").await?;
    Ok(listed.body["webhooks"][0]["webhook_id"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}
