//! [`HttpPaymentProvider`]: a payment provider over HTTP that speaks a Stripe-like API.
//!
//! - `POST {base}/v1/payment_intents` `{"amount", "currency", "payment_method",
//!   "payment_method_types": [method], "confirm": true, "metadata": {"hold_id"}}` with the
//!   `Idempotency-Key` of the confirm charges; `2xx {"id", "status": "succeeded"}` is a
//!   charge, `402` a decline, another `4xx` an invalid instrument (`409`: the key was used
//!   for another charge).
//! - `GET {base}/v1/payment_intents?idempotency_key=K` → `{"data": [intent]}` finds a charge.
//! - `POST {base}/v1/refunds` `{"payment_intent", "amount", "currency", "metadata":
//!   {"refund_id"}}` with `Idempotency-Key: <refund id>`; `2xx {"id", "status"}` with a status
//!   of `succeeded` or `pending` is a refund made, `failed` or `canceled` (or a `4xx` other than
//!   `401`, `403`, `408`, `409`, `429`) a refusal for good, anything else (`5xx`, a timeout, no connection)
//!   worth trying again.
//!
//! Every call is authenticated with `Authorization: Bearer <secret>`, bounded by a connect
//! timeout and a whole-request timeout, and reads at most
//! [`HttpProviderConfig::response_bytes_max`] bytes of the answer.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::payment::{
    Charge, ChargeRequest, PaymentError, PaymentProvider, RefundError, RefundReceipt, RefundRequest,
};

/// Default time to open a connection to the provider.
pub const PROVIDER_CONNECT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(2);
/// Default time for a whole call, answer included.
pub const PROVIDER_REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// Default largest answer read from the provider.
pub const PROVIDER_RESPONSE_BYTES_MAX_DEFAULT: usize = 64 * 1024;
/// Longest provider message kept in an error (and so in a refund's reason).
pub const PROVIDER_MESSAGE_CHARS_MAX: usize = 160;

/// Where the provider is and how long to wait for it.
#[derive(Clone)]
pub struct HttpProviderConfig {
    /// The API's base URL, such as `https://payments.example` (no trailing `/v1`).
    pub base_url: String,
    /// The bearer secret; never logged or printed.
    pub secret: String,
    /// Longest wait to open a connection to the provider
    /// ([`PROVIDER_CONNECT_TIMEOUT_DEFAULT`] by default).
    pub connect_timeout: Duration,
    /// Longest wait for a whole call, connection and answer body included
    /// ([`PROVIDER_REQUEST_TIMEOUT_DEFAULT`] by default). A call that runs out counts as the
    /// provider being unavailable, so the caller may retry.
    pub request_timeout: Duration,
    /// Answers longer than this are refused unread.
    pub response_bytes_max: usize,
}

impl HttpProviderConfig {
    /// Defaults for a provider at `base_url` with `secret`.
    pub fn new(base_url: &str, secret: &str) -> HttpProviderConfig {
        HttpProviderConfig {
            base_url: base_url.trim_end_matches('/').to_string(),
            secret: secret.to_string(),
            connect_timeout: PROVIDER_CONNECT_TIMEOUT_DEFAULT,
            request_timeout: PROVIDER_REQUEST_TIMEOUT_DEFAULT,
            response_bytes_max: PROVIDER_RESPONSE_BYTES_MAX_DEFAULT,
        }
    }
}

impl fmt::Debug for HttpProviderConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("HttpProviderConfig")
            .field("base_url", &self.base_url)
            .field("secret", &"<redacted>")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("response_bytes_max", &self.response_bytes_max)
            .finish()
    }
}

/// Why the provider could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpProviderError {
    /// The base URL (given here) is not `http://` or `https://`.
    #[error("the payment provider URL must start with http:// or https://: {0}")]
    InvalidUrl(String),
    /// reqwest refused to build the client (such as a TLS backend that fails to
    /// initialise); the reason is given.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// A payment provider reached over HTTP (see the module documentation).
pub struct HttpPaymentProvider {
    config: HttpProviderConfig,
    client: reqwest::Client,
}

/// What a call came back with: the status and the (bounded) body.
struct Answer {
    status: u16,
    body: Value,
}

/// A call that got no answer worth reading (no connection, a timeout, an oversized body).
struct NoAnswer(String);

impl HttpPaymentProvider {
    /// A provider over `config`; the URL must be `http` or `https`.
    pub fn new(config: HttpProviderConfig) -> Result<HttpPaymentProvider, HttpProviderError> {
        if !(config.base_url.starts_with("http://") || config.base_url.starts_with("https://")) {
            return Err(HttpProviderError::InvalidUrl(config.base_url));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| HttpProviderError::Client(error.to_string()))?;
        Ok(HttpPaymentProvider { config, client })
    }

    async fn call(
        &self,
        request: reqwest::RequestBuilder,
        idempotency_key: Option<&str>,
    ) -> Result<Answer, NoAnswer> {
        let mut request = request.bearer_auth(&self.config.secret);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let mut response = request
            .send()
            .await
            .map_err(|error| NoAnswer(describe(&error)))?;
        let status = response.status().as_u16();
        let limit = self.config.response_bytes_max;
        if response
            .content_length()
            .is_some_and(|length| length > limit as u64)
        {
            return Err(NoAnswer(format!("the answer is over {limit} bytes")));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| NoAnswer(describe(&error)))?
        {
            if bytes.len() + chunk.len() > limit {
                return Err(NoAnswer(format!("the answer is over {limit} bytes")));
            }
            bytes.extend_from_slice(&chunk);
        }
        // A body that is not JSON (a proxy's error page) is kept as no body at all.
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer { status, body })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url)
    }
}

fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "the provider did not answer in time".into()
    } else if error.is_connect() {
        "cannot connect to the provider".into()
    } else {
        "the call to the provider failed".into()
    }
}

/// The provider's own message in an error answer (`{"error": {"message"}}`), shortened.
fn provider_message(answer: &Answer) -> String {
    let message = answer.body["error"]["message"]
        .as_str()
        .unwrap_or("no message");
    let message: String = message
        .chars()
        .filter(|c| !c.is_control())
        .take(PROVIDER_MESSAGE_CHARS_MAX)
        .collect();
    format!("HTTP {}: {message}", answer.status)
}

#[derive(Deserialize)]
struct IntentJson {
    id: String,
    status: String,
    #[serde(default)]
    amount: Option<u64>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
}

fn charge_of(intent: IntentJson, request_hold: Option<&ChargeRequest>) -> Option<Charge> {
    if intent.status != "succeeded" {
        return None;
    }
    let hold_id = intent
        .metadata
        .as_ref()
        .and_then(|metadata| metadata["hold_id"].as_str())
        .map(str::to_string)
        .or_else(|| request_hold.map(|request| request.hold_id.clone()))?;
    Some(Charge {
        payment_id: intent.id,
        hold_id,
        amount: intent
            .amount
            .or_else(|| request_hold.map(|request| request.amount))?,
        currency: intent
            .currency
            .map(|currency| currency.to_uppercase())
            .or_else(|| request_hold.map(|request| request.currency.clone()))?,
    })
}

/// Statuses after which the same call may succeed: timeouts, conflicts (a concurrent
/// request with the same key), rate limits and server errors — and a refused secret
/// (`401`, `403`), which is this node's configuration, not the payment's fault, so fixing
/// it lets the call succeed.
fn worth_retrying(status: u16) -> bool {
    matches!(status, 401 | 403 | 408 | 409 | 429) || status >= 500
}

#[async_trait]
impl PaymentProvider for HttpPaymentProvider {
    fn name(&self) -> &str {
        "http"
    }

    async fn charge(&self, request: ChargeRequest) -> Result<Charge, PaymentError> {
        let body = json!({
            "amount": request.amount,
            "currency": request.currency.to_lowercase(),
            "payment_method": request.token,
            "payment_method_types": [request.method],
            "confirm": true,
            "metadata": {"hold_id": request.hold_id},
        });
        let answer = self
            .call(
                self.client
                    .post(self.url("/v1/payment_intents"))
                    .json(&body),
                request.idempotency_key.as_deref(),
            )
            .await
            .map_err(|NoAnswer(message)| PaymentError::Unavailable { message })?;
        match answer.status {
            200..=299 => {
                let intent: IntentJson =
                    serde_json::from_value(answer.body.clone()).map_err(|_| {
                        PaymentError::Unavailable {
                            message: "the provider's answer is not a payment intent".into(),
                        }
                    })?;
                let status = intent.status.clone();
                charge_of(intent, Some(&request)).ok_or(PaymentError::Declined {
                    reason: format!("the payment intent is {status}"),
                })
            }
            402 => Err(PaymentError::Declined {
                reason: provider_message(&answer),
            }),
            409 => Err(PaymentError::KeyReused {
                key: request.idempotency_key.unwrap_or_default(),
            }),
            status if worth_retrying(status) => Err(PaymentError::Unavailable {
                message: provider_message(&answer),
            }),
            _ => Err(PaymentError::InvalidInstrument {
                field: "payment.token".into(),
                reason: provider_message(&answer),
            }),
        }
    }

    async fn find_charge(&self, idempotency_key: &str) -> Result<Option<Charge>, PaymentError> {
        let answer = self
            .call(
                self.client
                    .get(self.url("/v1/payment_intents"))
                    .query(&[("idempotency_key", idempotency_key)]),
                None,
            )
            .await
            .map_err(|NoAnswer(message)| PaymentError::Unavailable { message })?;
        match answer.status {
            200..=299 => {
                let intents: Vec<IntentJson> =
                    serde_json::from_value(answer.body["data"].clone()).unwrap_or_default();
                Ok(intents
                    .into_iter()
                    .find_map(|intent| charge_of(intent, None)))
            }
            404 => Ok(None),
            _ => Err(PaymentError::Unavailable {
                message: provider_message(&answer),
            }),
        }
    }

    async fn refund(&self, request: RefundRequest) -> Result<RefundReceipt, RefundError> {
        let body = json!({
            "payment_intent": request.payment_id,
            "amount": request.amount,
            "currency": request.currency.to_lowercase(),
            "metadata": {"refund_id": request.refund_id},
        });
        let answer = self
            .call(
                self.client.post(self.url("/v1/refunds")).json(&body),
                Some(&request.refund_id),
            )
            .await
            .map_err(|NoAnswer(message)| RefundError::Unavailable { message })?;
        match answer.status {
            200..=299 => {
                let id = answer.body["id"].as_str().unwrap_or_default();
                let status = answer.body["status"].as_str().unwrap_or_default();
                match status {
                    "succeeded" | "pending" if !id.is_empty() => Ok(RefundReceipt {
                        provider_refund_id: id.to_string(),
                    }),
                    "failed" | "canceled" => Err(RefundError::Refused {
                        reason: format!("the provider's refund is {status}"),
                    }),
                    _ => Err(RefundError::Unavailable {
                        message: "the provider's answer is not a refund".into(),
                    }),
                }
            }
            status if worth_retrying(status) => Err(RefundError::Unavailable {
                message: provider_message(&answer),
            }),
            _ => Err(RefundError::Refused {
                reason: provider_message(&answer),
            }),
        }
    }
}
