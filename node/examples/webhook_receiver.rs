//! A webhook receiver for Holdfast's notifications: the e-mail and SMS side of a booking
//! product, as a consumer of webhooks. It verifies each delivery's `Holdfast-Signature`,
//! refuses old or forged ones, skips repeats (delivery is at least once) and prints what it
//! would send.
//!
//! ```text
//! HOLDFAST_WEBHOOK_SECRET=whsec_... cargo run --example webhook_receiver -- 127.0.0.1:9000
//! curl -X POST localhost:7001/admin/webhooks \
//!   -d '{"url": "http://127.0.0.1:9000/", "secret": "whsec_...", "events": []}'
//! ```

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Deliveries older (or further in the future) than this are refused: a replayed capture
/// of a signed request stops working after it.
const TIMESTAMP_TOLERANCE_SECONDS: u64 = 300;
/// Event ids remembered to skip repeats.
const SEEN_IDS_MAX: usize = 100_000;

struct Receiver {
    secret: String,
    seen: Mutex<(HashSet<String>, VecDeque<String>)>,
}

/// Whether `header` is a valid signature of `body` at a time within the tolerance of `now`.
fn verify(secret: &str, header: &str, body: &[u8], now_seconds: u64) -> bool {
    let mut time = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => time = value.parse::<u64>().ok(),
            Some(("v1", value)) => signatures.push(value),
            _ => {}
        }
    }
    let Some(time) = time else {
        return false;
    };
    if time.abs_diff(now_seconds) > TIMESTAMP_TOLERANCE_SECONDS {
        return false;
    }
    signatures.into_iter().any(|signature| {
        let Ok(expected) = decode_hex(signature) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(time.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        // `verify_slice` compares in constant time.
        mac.verify_slice(&expected).is_ok()
    })
}

fn decode_hex(text: &str) -> Result<Vec<u8>, ()> {
    if text.len() % 2 != 0 {
        return Err(());
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2).ok_or(())?, 16).map_err(|_| ()))
        .collect()
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = headers
        .get("holdfast-signature")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let now_seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    if !verify(&receiver.secret, header, &body, now_seconds) {
        eprintln!("refused a delivery whose signature does not verify");
        return StatusCode::BAD_REQUEST;
    }
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let id = event["id"].as_str().unwrap_or_default().to_string();
    {
        let mut seen = receiver.seen.lock().expect("not poisoned");
        if !seen.0.insert(id.clone()) {
            // A repeat (at least once): acknowledge it again, send nothing again.
            return StatusCode::NO_CONTENT;
        }
        seen.1.push_back(id);
        if seen.1.len() > SEEN_IDS_MAX {
            if let Some(oldest) = seen.1.pop_front() {
                seen.0.remove(&oldest);
            }
        }
    }
    let data = &event["data"];
    let message = match event["type"].as_str().unwrap_or_default() {
        "booking.confirmed" => format!(
            "e-mail to {}: booking {} confirmed, {} {}",
            data["customer_id"], data["booking_id"], data["amount"], data["currency"]
        ),
        "booking.cancelled" => format!(
            "e-mail to {}: booking {} cancelled ({})",
            data["customer_id"], data["booking_id"], data["reason"]
        ),
        "hold.expired" => format!(
            "SMS to {}: your hold {} expired",
            data["customer_id"], data["hold_id"]
        ),
        "refund.recorded" => format!(
            "e-mail: refund {} of {} {} is on its way",
            data["refund_id"], data["amount"], data["currency"]
        ),
        "refund.paid" => format!("e-mail: refund {} was paid", data["refund_id"]),
        "refund.failed" => format!(
            "page the operator: refund {} failed ({})",
            data["refund_id"], data["reason"]
        ),
        other => format!("nothing to send for {other}"),
    };
    println!("[{}] {message}", event["index"]);
    StatusCode::NO_CONTENT
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9000".into());
    let secret = std::env::var("HOLDFAST_WEBHOOK_SECRET").map_err(|_| {
        std::io::Error::other("set HOLDFAST_WEBHOOK_SECRET to the webhook's secret")
    })?;
    let receiver = Arc::new(Receiver {
        secret,
        seen: Mutex::new((HashSet::new(), VecDeque::new())),
    });
    let app = Router::new().route("/", post(receive)).with_state(receiver);
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("receiving Holdfast webhooks on http://{address}/");
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_within_the_tolerance_only() {
        // `printf '1700000000.{}' | openssl dgst -sha256 -hmac whsec_test`.
        let header =
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91";
        assert!(verify("whsec_test", header, b"{}", 1_700_000_100));
        assert!(!verify("whsec_other", header, b"{}", 1_700_000_100));
        assert!(!verify("whsec_test", header, b"{ }", 1_700_000_100));
        assert!(!verify("whsec_test", header, b"{}", 1_700_001_000));
        assert!(!verify("whsec_test", "v1=00", b"{}", 1_700_000_000));
    }
}
