//! The benchmark's HTTP client: one pooled keep-alive client over the cluster's nodes.

use std::time::Duration;

use serde_json::Value;

use super::load::Class;

/// Per-request timeout: a request that takes longer is an error, not a latency.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The nodes' base URLs and a shared connection pool.
#[derive(Clone)]
pub struct Http {
    /// The shared client: a 10 s timeout per request, keep-alive connections pooled.
    pub client: reqwest::Client,
    /// The nodes' base URLs (`http://127.0.0.1:7001`); requests name a node by its index.
    pub nodes: Vec<String>,
}

/// One answer: status and raw body.
pub struct Answer {
    /// The HTTP status code.
    pub status: u16,
    /// The body as it came.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON; `Value::Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// `ok` when the status is the one asked for, a conflict for a 409, else an error named
    /// by status and code.
    pub fn class(&self, ok_status: u16) -> Class {
        if self.status == ok_status {
            return Class::Ok;
        }
        if self.status == 409 {
            return Class::Conflict;
        }
        let body = self.json();
        let code = body["error"]["code"].as_str().unwrap_or("");
        Class::Error(format!("http_{}_{}", self.status, code))
    }
}

impl Http {
    /// A client for `nodes` (base URLs such as `http://127.0.0.1:7001`), pooling up to
    /// `connections` idle connections per node.
    pub fn new(nodes: Vec<String>, connections: usize) -> anyhow::Result<Http> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(connections.max(1))
            .tcp_nodelay(true)
            .build()?;
        Ok(Http { client, nodes })
    }

    /// The node a request of `client`'s `sequence` goes to: spread over every node.
    pub fn node_for(&self, client: usize, sequence: u64) -> usize {
        (client + sequence as usize) % self.nodes.len()
    }

    /// `POST /booking/hold` with `body`: the answer, and how it ended (`201` is ok).
    pub async fn hold(
        &self,
        node: usize,
        key: Option<&str>,
        body: String,
    ) -> (Result<Answer, Class>, Class) {
        let answer = self.post(node, "/booking/hold", key, body).await;
        let class = match &answer {
            Ok(answer) => answer.class(201),
            Err(class) => class.clone(),
        };
        (answer, class)
    }

    /// `GET path_and_query` on node `node`. Any status is an answer; `Err` carries the
    /// class `timeout` (10 s passed) or `transport` (no answer) instead.
    pub async fn get(&self, node: usize, path_and_query: &str) -> Result<Answer, Class> {
        let request = self
            .client
            .get(format!("{}{}", self.nodes[node], path_and_query));
        send(request).await
    }

    /// `POST path` on node `node` with the JSON `body` and, when given, an
    /// `Idempotency-Key`; answers as [`Http::get`].
    pub async fn post(
        &self,
        node: usize,
        path: &str,
        key: Option<&str>,
        body: String,
    ) -> Result<Answer, Class> {
        let mut request = self
            .client
            .post(format!("{}{}", self.nodes[node], path))
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        send(request).await
    }
}

async fn send(request: reqwest::RequestBuilder) -> Result<Answer, Class> {
    let response = request.send().await.map_err(transport)?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(transport)?;
    Ok(Answer {
        status,
        body: body.to_vec(),
    })
}

fn transport(error: reqwest::Error) -> Class {
    if error.is_timeout() {
        Class::Error("timeout".into())
    } else {
        Class::Error("transport".into())
    }
}
