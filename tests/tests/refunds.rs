//! A refund survives a leader change mid-payment and is paid exactly once at the provider.
//!
//! The nodes use the HTTP payment provider against a fake Stripe-like provider served by
//! this test on 127.0.0.1. The fake makes the first refund call's refund and then never
//! answers it (an answer lost with its leader); the test kills that leader. The new leader
//! finds the refund still pending in the replicated state, asks again with the same
//! idempotency key (the refund id), gets the refund already made, and commits REFUNDED.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use holdfast_tests::{confirm_body, event_body, hold_body, http_provider_launch, ProcessCluster};
use serde_json::{json, Value};

#[derive(Default)]
struct Ledger {
    calls: HashMap<String, u32>,
    /// Refunds made by idempotency key.
    made: HashMap<String, String>,
    charges: u32,
}

type Shared = Arc<Mutex<Ledger>>;

async fn charge(State(ledger): State<Shared>, Json(body): Json<Value>) -> Json<Value> {
    let id = {
        let mut ledger = ledger.lock().unwrap();
        ledger.charges += 1;
        ledger.charges
    };
    Json(json!({
        "id": format!("pi_{id}"), "status": "succeeded", "amount": body["amount"],
        "currency": body["currency"], "metadata": body["metadata"],
    }))
}

async fn refund(State(ledger): State<Shared>, headers: HeaderMap) -> Json<Value> {
    let key = headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let (first_call, id) = {
        let mut ledger = ledger.lock().unwrap();
        let calls = ledger.calls.entry(key.clone()).or_default();
        *calls += 1;
        let first_call = *calls == 1;
        let count = ledger.made.len();
        let id = ledger
            .made
            .entry(key)
            .or_insert_with(|| format!("re_{}", count + 1))
            .clone();
        (first_call, id)
    };
    if first_call {
        // The refund is made, but its answer never leaves.
        std::future::pending::<()>().await;
    }
    Json(json!({"id": id, "status": "succeeded"}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_in_flight_at_a_leader_kill_is_paid_exactly_once() -> anyhow::Result<()> {
    let ledger = Shared::default();
    let app = Router::new()
        .route(
            "/v1/payment_intents",
            post(charge).get(|| async { Json(json!({"data": []})) }),
        )
        .route("/v1/refunds", post(refund))
        .with_state(ledger.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let provider_url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let launch = http_provider_launch(&provider_url, &[("HOLDFAST_REFUND_RETRY_BASE_MS", "100")]);
    let mut cluster = ProcessCluster::start_with(3, launch).await?;
    let leader = cluster.wait_for_leader().await?;
    cluster
        .create_event(leader, event_body("refunds", 1, 10, 10))
        .await?;
    let hold = cluster
        .post(
            leader,
            "/booking/hold",
            hold_body("refunds", "c-1", &["A-1-1"], 600),
            Some("h1"),
        )
        .await?;
    assert_eq!(hold.status, 201, "{:?}", hold.body);
    let booking = cluster
        .post(
            leader,
            "/booking/confirm",
            confirm_body(hold.body["hold_id"].as_str().unwrap(), "tok_visa"),
            Some("c1"),
        )
        .await?;
    assert_eq!(booking.status, 200, "{:?}", booking.body);
    let booking_id = booking.body["booking_id"].as_str().unwrap().to_string();
    let cancelled = cluster
        .post(
            leader,
            "/booking/cancel",
            json!({"booking_id": booking_id, "reason": "plans changed"}),
            Some("x1"),
        )
        .await?;
    assert_eq!(cancelled.status, 200, "{:?}", cancelled.body);
    let refund_id = cancelled.body["refund"]["refund_id"]
        .as_str()
        .unwrap()
        .to_string();

    // The leader's worker calls the provider; the refund is made and the answer hangs.
    let calls = |ledger: &Shared| ledger.lock().unwrap().calls.get(&refund_id).copied();
    for _ in 0..300 {
        if calls(&ledger) == Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(calls(&ledger), Some(1), "the leader asked the provider");
    cluster.kill(leader);

    let successor = cluster.wait_for_leader_without(leader).await?;
    let mut status = Value::Null;
    for _ in 0..300 {
        let lookup = cluster
            .get(successor, &format!("/bookings/{booking_id}"))
            .await?;
        status = lookup.body["refund"]["status"].clone();
        if status == "REFUNDED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "REFUNDED", "{}", cluster.log_tail(successor));
    let ledger = ledger.lock().unwrap();
    assert_eq!(ledger.made.len(), 1, "one refund made at the provider");
    assert_eq!(
        ledger.calls.get(&refund_id),
        Some(&2),
        "the new leader asked again with the same key"
    );
    Ok(())
}
