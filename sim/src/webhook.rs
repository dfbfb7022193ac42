//! The webhook side of a run: a receiver on its own simulated host that verifies each
//! delivery's signature and records it, and the poster the nodes' notifiers deliver through
//! (HTTP/1.1 over turmoil's TCP, one kept-alive connection per node).
//!
//! The operator registers the receiver as a webhook (every event type) before the customers
//! start; the fault schedule makes it fail, answer slowly, drop off the network or go down
//! ([`ReceiverMode`], `Action::Receiver*`). What it recorded is judged by
//! `check::deliveries`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use holdfast_node::notifier::{Delivery, PostFuture, WebhookPoster, SIGNATURE_HEADER};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;

use crate::net::HttpListener;

/// The receiver's host name.
pub const RECEIVER_HOST: &str = "webhook";
/// The port it serves deliveries on.
pub const RECEIVER_PORT: u16 = 80;
/// The URL the operator registers.
pub const RECEIVER_URL: &str = "http://webhook:80/hook";
/// The webhook's signing secret.
pub const RECEIVER_SECRET: &str = "whsec_simulated";

/// How the receiver answers deliveries now (set by the fault schedule).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum ReceiverMode {
    /// `200` at once.
    #[default]
    Up,
    /// `500` to everything (it records the delivery as refused).
    Failing,
    /// `200`, but only after this many milliseconds (some draws outlast the notifier's
    /// one-second delivery timeout in the simulation).
    Slow {
        /// The delay before each answer, in milliseconds.
        ms: u64,
    },
}

/// One delivery as the receiver saw it arrive.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Received {
    /// Simulated milliseconds at arrival.
    pub at_ms: u64,
    /// The body's `index` (0 when the body was not an event).
    pub index: u64,
    /// The body as JSON (`Value::Null` when it was not JSON).
    pub body: Value,
    /// Whether `Holdfast-Signature` verified with the secret.
    pub signature_valid: bool,
    /// Whether the receiver accepted it (answered, or was going to answer, `2xx`).
    pub accepted: bool,
}

/// What the receiver recorded, and how it answers; shared with the harness.
#[derive(Debug, Default)]
pub struct Receiver {
    /// How it answers the next deliveries; the harness changes it.
    pub mode: Cell<ReceiverMode>,
    /// Every delivery that arrived, in arrival order, refused ones included.
    pub received: RefCell<Vec<Received>>,
}

/// The receiver's software: an HTTP server on [`RECEIVER_PORT`] that records every delivery.
pub async fn run_receiver(receiver: Rc<Receiver>) -> turmoil::Result {
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", RECEIVER_PORT)).await?;
    // The receiver lives on one thread (turmoil's); axum wants `Send + Sync` state, so the
    // handler reaches it through a thread-local instead of capturing the `Rc`.
    RECEIVER.with(|slot| *slot.borrow_mut() = Some(receiver));
    let routes = axum::Router::new().route("/hook", post(receive));
    axum::serve(HttpListener(listener), routes).await?;
    Ok(())
}

thread_local! {
    static RECEIVER: RefCell<Option<Rc<Receiver>>> = const { RefCell::new(None) };
}

async fn receive(headers: HeaderMap, body: Bytes) -> StatusCode {
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let signature_valid = verify(RECEIVER_SECRET, &signature, &body);
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let index = json["index"].as_u64().unwrap_or(0);
    let mode = RECEIVER.with(|slot| {
        slot.borrow()
            .as_ref()
            .map_or(ReceiverMode::Up, |receiver| receiver.mode.get())
    });
    let accepted = mode != ReceiverMode::Failing;
    RECEIVER.with(|slot| {
        if let Some(receiver) = slot.borrow().as_ref() {
            receiver.received.borrow_mut().push(Received {
                at_ms: crate::workload::now_micros() / 1_000,
                index,
                body: json,
                signature_valid,
                accepted,
            });
        }
    });
    match mode {
        ReceiverMode::Up => StatusCode::OK,
        ReceiverMode::Failing => StatusCode::INTERNAL_SERVER_ERROR,
        ReceiverMode::Slow { ms } => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            StatusCode::OK
        }
    }
}

/// Checks `t=<seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` with `secret`. Written here
/// rather than borrowed from the node, so that the check does not trust the code it checks.
pub fn verify(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut time = None;
    let mut digest = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => time = Some(value),
            Some(("v1", value)) => digest = Some(value),
            _ => {}
        }
    }
    let (Some(time), Some(digest)) = (time, digest) else {
        return false;
    };
    if time.is_empty() || !time.bytes().all(|byte| byte.is_ascii_digit()) {
        return false;
    }
    let Some(expected) = decode_hex(digest) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(time.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

/// The nodes' [`WebhookPoster`] in the simulation: `POST` over turmoil's TCP, keeping one
/// connection open between deliveries (as reqwest's pool does) and opening a new one after
/// any failure. With `lose_every` (the `lost-deliveries` breakage), every so many
/// deliveries are answered `200` without being sent.
pub struct SimPoster {
    /// The connection kept between deliveries (taken out while a delivery uses it).
    connection: Arc<Mutex<Option<SendRequest<Full<Bytes>>>>>,
    lose_every: Option<u64>,
    posted: AtomicU64,
}

impl SimPoster {
    /// A poster with no connection yet; with `lose_every = Some(n)`, every `n`th delivery
    /// is answered `200` without being sent.
    pub fn new(lose_every: Option<u64>) -> SimPoster {
        SimPoster {
            connection: Arc::new(Mutex::new(None)),
            lose_every,
            posted: AtomicU64::new(0),
        }
    }
}

impl WebhookPoster for SimPoster {
    fn post(&self, delivery: Delivery) -> PostFuture {
        let posted = self.posted.fetch_add(1, Ordering::Relaxed) + 1;
        if self.lose_every.is_some_and(|every| posted % every == 0) {
            return Box::pin(async { Ok(200) });
        }
        let slot = self.connection.clone();
        Box::pin(async move { deliver(slot, delivery).await })
    }
}

async fn deliver(
    slot: Arc<Mutex<Option<SendRequest<Full<Bytes>>>>>,
    delivery: Delivery,
) -> Result<u16, String> {
    let (host, port, path) = split_url(&delivery.url)?;
    let kept = slot.lock().expect("poster lock poisoned").take();
    let mut sender = match kept {
        Some(mut sender) => match sender.ready().await {
            Ok(()) => sender,
            Err(_) => connect(&host, port).await?,
        },
        None => connect(&host, port).await?,
    };
    let request = Request::post(path)
        .header(http::header::HOST, host.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, delivery.signature)
        .body(Full::new(Bytes::from(delivery.body)))
        .map_err(|error| format!("request: {error}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| format!("send: {error}"))?;
    let status = response.status().as_u16();
    // The receiver answers without a body; reading to its end is what frees the
    // connection for the next delivery.
    response
        .into_body()
        .collect()
        .await
        .map_err(|error| format!("body: {error}"))?;
    // Kept only after a whole exchange: a delivery cut off mid-way drops its connection.
    *slot.lock().expect("poster lock poisoned") = Some(sender);
    Ok(status)
}

async fn connect(host: &str, port: u16) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = turmoil::net::TcpStream::connect((host, port))
        .await
        .map_err(|error| format!("connect: {error}"))?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| format!("handshake: {error}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// `http://host:port/path` into its parts.
fn split_url(url: &str) -> Result<(String, u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("not an http:// URL: {url}"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (
            host,
            port.parse().map_err(|_| format!("bad port in {url}"))?,
        ),
        None => (authority, 80),
    };
    let path = if path.is_empty() { "/" } else { path };
    Ok((host.to_string(), port, path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_receiver_verifies_the_nodes_signatures_and_refuses_others() {
        let body = br#"{"id":"evt_1"}"#;
        let header = holdfast_node::notifier::signature(RECEIVER_SECRET, 1_700_000_000, body);
        assert!(verify(RECEIVER_SECRET, &header, body));
        assert!(!verify("whsec_other", &header, body));
        assert!(!verify(RECEIVER_SECRET, &header, br#"{"id":"evt_2"}"#));
        assert!(!verify(RECEIVER_SECRET, "t=1700000000", body));
        assert!(!verify(RECEIVER_SECRET, "", body));
    }

    #[test]
    fn urls_split_into_host_port_and_path() {
        assert_eq!(
            split_url("http://webhook:80/hook").unwrap(),
            ("webhook".into(), 80, "/hook".into())
        );
        assert_eq!(
            split_url("http://webhook").unwrap(),
            ("webhook".into(), 80, "/".into())
        );
        assert!(split_url("https://webhook/hook").is_err());
    }
}
