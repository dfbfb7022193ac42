//! A charge made by a leader that dies before it commits the confirm is still booked.
//!
//! The nodes use the HTTP payment provider against a fake Stripe-like provider served by
//! this test on 127.0.0.1. The fake makes the first charge and then never answers it (the
//! leader is killed while it waits). The charge intent the leader recorded before it called
//! the provider is in the replicated state; the new leader's reconciler finds it, asks the
//! provider for the charge made under the intent's key, and proposes the confirm with it:
//! the hold is booked with that payment, charged once, and nothing is refunded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use holdfast_tests::{confirm_body, event_body, hold_body, http_provider_launch, ProcessCluster};
use serde_json::{json, Value};

#[derive(Default)]
struct Ledger {
    /// Charges made, by idempotency key.
    charges: HashMap<String, Value>,
    /// Charge calls answered or left hanging.
    calls: u32,
}

type Shared = Arc<Mutex<Ledger>>;

fn key_of(headers: &HeaderMap) -> String {
    headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn charge(
    State(ledger): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    let key = key_of(&headers);
    let (first_call, intent) = {
        let mut ledger = ledger.lock().unwrap();
        ledger.calls += 1;
        let count = ledger.charges.len();
        let intent = ledger
            .charges
            .entry(key)
            .or_insert_with(|| {
                json!({
                    "id": format!("pi_{}", count + 1), "status": "succeeded",
                    "amount": body["amount"], "currency": body["currency"],
                    "metadata": body["metadata"],
                })
            })
            .clone();
        (ledger.calls == 1, intent)
    };
    if first_call {
        // The charge is made, but its answer never leaves.
        std::future::pending::<()>().await;
    }
    Json(intent)
}

async fn find(
    State(ledger): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Json<Value> {
    let ledger = ledger.lock().unwrap();
    let found: Vec<Value> = query
        .get("idempotency_key")
        .and_then(|key| ledger.charges.get(key))
        .into_iter()
        .cloned()
        .collect();
    Json(json!({ "data": found }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_whose_leader_dies_before_the_commit_is_booked_by_the_next() -> anyhow::Result<()>
{
    let ledger = Shared::default();
    let app = Router::new()
        .route("/v1/payment_intents", post(charge).get(find))
        .route(
            "/v1/refunds",
            post(|| async { Json(json!({"id": "re_1", "status": "succeeded"})) }),
        )
        .with_state(ledger.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let provider_url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let launch = http_provider_launch(
        &provider_url,
        &[("HOLDFAST_CHARGE_RECONCILE_AFTER_MS", "2000")],
    );
    let mut cluster = ProcessCluster::start_with(3, launch).await?;
    let leader = cluster.wait_for_leader().await?;
    cluster
        .create_event(leader, event_body("intents", 1, 10, 10))
        .await?;
    let hold = cluster
        .post(
            leader,
            "/booking/hold",
            hold_body("intents", "c-1", &["A-1-1"], 600),
            Some("h1"),
        )
        .await?;
    assert_eq!(hold.status, 201, "{:?}", hold.body);
    let hold_id = hold.body["hold_id"].as_str().unwrap().to_string();

    // The confirm reaches the provider, which charges and never answers; its caller gives
    // up and the leader dies.
    let confirm = {
        let url = cluster.nodes[leader].url("/booking/confirm");
        let body = confirm_body(&hold_id, "tok_visa");
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let _ = client
                .post(url)
                .header("Idempotency-Key", "c1")
                .json(&body)
                .timeout(Duration::from_secs(60))
                .send()
                .await;
        })
    };
    for _ in 0..300 {
        if !ledger.lock().unwrap().charges.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        ledger.lock().unwrap().charges.len(),
        1,
        "the leader charged"
    );
    cluster.kill(leader);
    confirm.abort();

    let successor = cluster.wait_for_leader_without(leader).await?;
    let mut hold_now = Value::Null;
    for _ in 0..400 {
        hold_now = cluster
            .get(successor, &format!("/holds/{hold_id}"))
            .await?
            .body;
        if hold_now["status"] == "CONFIRMED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        hold_now["status"],
        "CONFIRMED",
        "{}",
        cluster.log(successor)
    );
    let booking_id = hold_now["booking_id"].as_str().expect("a booking id");
    let booking = cluster
        .get(successor, &format!("/bookings/{booking_id}"))
        .await?;
    assert_eq!(booking.body["payment_id"], "pi_1", "{:?}", booking.body);
    let refunds = cluster.get(successor, "/refunds?status=PENDING").await?;
    assert_eq!(refunds.body["refunds"], json!([]), "{:?}", refunds.body);
    assert_eq!(ledger.lock().unwrap().charges.len(), 1, "charged once");
    assert!(
        cluster
            .metrics(successor)
            .await?
            .contains("holdfast_charge_intents_reconciled_total{outcome=\"booked\"} 1"),
        "the new leader's reconciler booked it"
    );
    Ok(())
}

/// A provider whose charges name a payment id the cluster cannot record (300 bytes): a
/// confirm with it would be refused without recording a refund, so the money would be
/// neither booked nor owed back. The node gives it back through the provider itself, once,
/// under a refund id derived from the charge's key, and books nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_the_cluster_cannot_record_is_refunded_and_nothing_is_booked() -> anyhow::Result<()>
{
    #[derive(Default)]
    struct Calls {
        charges: u32,
        /// The last charge request's body, answered by lookups by key as well.
        last: Value,
        /// (idempotency key, payment intent) of each refund call.
        refunds: Vec<(String, String)>,
    }
    let calls = Arc::new(Mutex::new(Calls::default()));
    let unrecordable = format!("pi_{}", "x".repeat(300));
    let intent = {
        let unrecordable = unrecordable.clone();
        move |body: &Value| {
            json!({
                "id": unrecordable, "status": "succeeded",
                "amount": body["amount"], "currency": body["currency"],
                "metadata": body["metadata"],
            })
        }
    };
    let app = Router::new()
        .route(
            "/v1/payment_intents",
            post({
                let calls = calls.clone();
                let intent = intent.clone();
                move |Json(body): Json<Value>| {
                    let mut calls = calls.lock().unwrap();
                    calls.charges += 1;
                    calls.last = body.clone();
                    let answer = intent(&body);
                    async move { Json(answer) }
                }
            })
            .get({
                let calls = calls.clone();
                move || {
                    let last = calls.lock().unwrap().last.clone();
                    let found = if last.is_null() {
                        json!([])
                    } else {
                        json!([intent(&last)])
                    };
                    async move { Json(json!({ "data": found })) }
                }
            }),
        )
        .route(
            "/v1/refunds",
            post({
                let calls = calls.clone();
                move |headers: HeaderMap, Json(body): Json<Value>| {
                    let payment = body["payment_intent"].as_str().unwrap_or_default();
                    calls
                        .lock()
                        .unwrap()
                        .refunds
                        .push((key_of(&headers), payment.to_string()));
                    async { Json(json!({"id": "re_1", "status": "succeeded"})) }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let provider_url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let launch = http_provider_launch(
        &provider_url,
        &[("HOLDFAST_CHARGE_RECONCILE_AFTER_MS", "200")],
    );
    let cluster = ProcessCluster::start_with(1, launch).await?;
    cluster
        .create_event(0, event_body("unrecordable", 1, 10, 10))
        .await?;
    let hold = cluster
        .post(
            0,
            "/booking/hold",
            hold_body("unrecordable", "c-1", &["A-1-1"], 600),
            Some("h1"),
        )
        .await?;
    assert_eq!(hold.status, 201, "{:?}", hold.body);
    let hold_id = hold.body["hold_id"].as_str().unwrap().to_string();

    let confirm = cluster
        .post(
            0,
            "/booking/confirm",
            confirm_body(&hold_id, "tok_visa"),
            Some("c1"),
        )
        .await?;
    assert_eq!(
        (confirm.status, confirm.code()),
        (503, "PAYMENT_UNAVAILABLE"),
        "{:?}",
        confirm.body
    );
    assert_eq!(
        confirm.body["error"]["details"]["charge"], "REFUNDED",
        "{:?}",
        confirm.body
    );
    // A retry with the same key gets the same charge back and asks for the same refund.
    let retry = cluster
        .post(
            0,
            "/booking/confirm",
            confirm_body(&hold_id, "tok_visa"),
            Some("c1"),
        )
        .await?;
    assert_eq!(retry.status, 503, "{:?}", retry.body);
    {
        let calls = calls.lock().unwrap();
        assert_eq!(calls.charges, 2);
        assert_eq!(calls.refunds.len(), 2);
        assert!(calls
            .refunds
            .iter()
            .all(|refund| *refund == calls.refunds[0]));
        assert_eq!(calls.refunds[0].1, unrecordable);
        assert!(
            calls.refunds[0].0.starts_with("unrecordable-"),
            "{:?}",
            calls.refunds
        );
    }
    // Nothing was booked, the hold is still the customer's, and no intent is left over:
    // the reconciler, which would find the charge by its key and refund it a third time,
    // finds nothing to settle.
    let hold_now = cluster.get(0, &format!("/holds/{hold_id}")).await?;
    assert_eq!(hold_now.body["status"], "HELD", "{:?}", hold_now.body);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(calls.lock().unwrap().refunds.len(), 2);
    let metrics = cluster.metrics(0).await?;
    assert!(
        !metrics.contains("holdfast_charge_intents_reconciled_total{"),
        "{metrics}"
    );
    Ok(())
}
