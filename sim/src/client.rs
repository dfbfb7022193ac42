//! A small HTTP/1.1 client over turmoil's TCP, for the simulated clients: one connection
//! per request (so a partition or crash can only ever hurt the request in flight), a
//! deadline on each.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// The port every simulated node serves its HTTP API on.
pub const HTTP_PORT: u16 = 7001;
/// The port every simulated node serves Raft and the peer service on.
pub const RAFT_PORT: u16 = 7101;

/// An HTTP answer: its status and its JSON body (`Value::Null` when it had none).
#[derive(Clone, Debug)]
pub struct Answer {
    /// The HTTP status code.
    pub status: u16,
    /// The body parsed as JSON; `Value::Null` when it was empty or not JSON.
    pub body: Value,
}

impl Answer {
    /// The error code of a non-2xx answer in API.md's shape.
    pub fn code(&self) -> Option<&str> {
        self.body.pointer("/error/code").and_then(Value::as_str)
    }
}

/// Sends one request to `host`'s HTTP API. `Err` means no answer came (the connection
/// failed, or the deadline passed): the request may or may not have taken effect.
pub async fn send(
    host: &str,
    method: Method,
    path_and_query: &str,
    idempotency_key: Option<&str>,
    body: Option<&Value>,
    deadline: Duration,
) -> Result<Answer, String> {
    match tokio::time::timeout(
        deadline,
        send_inner(host, method, path_and_query, idempotency_key, body),
    )
    .await
    {
        Ok(answer) => answer,
        Err(_) => Err("deadline passed".into()),
    }
}

async fn send_inner(
    host: &str,
    method: Method,
    path_and_query: &str,
    idempotency_key: Option<&str>,
    body: Option<&Value>,
) -> Result<Answer, String> {
    let stream = turmoil::net::TcpStream::connect((host, HTTP_PORT))
        .await
        .map_err(|error| format!("connect: {error}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| format!("handshake: {error}"))?;
    tokio::task::spawn_local(async move {
        let _ = connection.await;
    });
    let bytes = body.map_or_else(Bytes::new, |body| Bytes::from(body.to_string()));
    let mut request = Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(http::header::HOST, host)
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(key) = idempotency_key {
        request = request.header("idempotency-key", key);
    }
    let request = request
        .body(Full::new(bytes))
        .map_err(|error| format!("request: {error}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| format!("send: {error}"))?;
    let status = response.status().as_u16();
    let collected = response
        .into_body()
        .collect()
        .await
        .map_err(|error| format!("body: {error}"))?
        .to_bytes();
    let body = if collected.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&collected).unwrap_or(Value::Null)
    };
    Ok(Answer { status, body })
}
