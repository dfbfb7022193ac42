//! Black-box test support: starts real `holdfast serve` processes on 127.0.0.1 and talks to
//! them over the HTTP API of `docs/API.md`, exactly as an application would.

#![warn(missing_docs)]

pub mod bench;
pub mod browser;
pub mod cluster;
pub mod delay;

pub use cluster::{Launch, NodeHandle, ProcessCluster, Response, TestCa};

use serde_json::{json, Value};

/// A launch whose nodes pay through the HTTP payment provider at `provider_url` (a fake one
/// the test serves), with a refund worker that looks every 100 ms, and `extra` environment.
pub fn http_provider_launch(provider_url: &str, extra: &[(&str, &str)]) -> Launch {
    let mut launch = Launch::default();
    let base = [
        ("HOLDFAST_PAYMENT_PROVIDER", "http"),
        ("HOLDFAST_PAYMENT_URL", provider_url),
        ("HOLDFAST_PAYMENT_SECRET", "sk_test_holdfast"),
        ("HOLDFAST_PAYMENT_TIMEOUT_MS", "120000"),
        ("HOLDFAST_REFUND_CHECK_INTERVAL_MS", "100"),
    ];
    for (name, value) in base.iter().chain(extra) {
        launch.env.push((name.to_string(), value.to_string()));
    }
    launch
}

/// An event body for `POST /admin/events`: sections A and B of `rows` × `per_row` seats at
/// 4500, and a general-admission pool `GA` of `pool_capacity` at 2500.
pub fn event_body(event_id: &str, rows: usize, per_row: u32, pool_capacity: u64) -> Value {
    let rows: Vec<String> = (1..=rows).map(|row| row.to_string()).collect();
    json!({
        "event_id": event_id,
        "name": format!("Test event {event_id}"),
        "category": "event",
        "starts_at": "2030-01-01T20:00:00Z",
        "currency": "EUR",
        "seat_blocks": [
            {"section": "A", "rows": rows, "seats_per_row": per_row, "price": 4500},
            {"section": "B", "rows": rows, "seats_per_row": per_row, "price": 4500}
        ],
        "pools": [{"id": "GA", "capacity": pool_capacity, "price": 2500}]
    })
}

/// A hold body for named seats.
pub fn hold_body(event_id: &str, customer: &str, seats: &[&str], ttl_seconds: u64) -> Value {
    json!({"event_id": event_id, "customer_id": customer, "seats": seats, "ttl_seconds": ttl_seconds})
}

/// A confirm body paying with a sandbox card token.
pub fn confirm_body(hold_id: &str, token: &str) -> Value {
    json!({"hold_id": hold_id, "payment": {"method": "card", "token": token}})
}

/// The status of one seat in a full availability page, if the page lists it.
pub fn seat_status(page: &Value, seat: &str) -> Option<String> {
    page["seats"]
        .as_array()?
        .iter()
        .find(|entry| entry["id"] == seat)
        .and_then(|entry| entry["status"].as_str())
        .map(str::to_string)
}
