//! The notifier: on the leader, delivers outbox events to every webhook, in outbox order,
//! signed, and commits each webhook's progress through Raft (`AckWebhook`).
//!
//! - **Order and at-least-once.** Each webhook gets its events one at a time in index order;
//!   a failed delivery stops that webhook's pass, and the next pass starts again from its
//!   committed mark. A leader that dies after a delivery and before its acknowledgement
//!   commits makes the next leader deliver that event again: receivers deduplicate by `id`.
//! - **Signature.** `Holdfast-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
//!   "<t>.<body>">` with the webhook's secret, as Stripe signs its webhooks.
//! - **Retries.** A webhook whose delivery failed waits `retry_base · 2^(failures − 1)` (at
//!   most `retry_max`), half of it jittered, before its next try. The wait is this leader's
//!   memory only; a new leader tries at once.
//! - **Bounded.** At most `events_per_pass_max` events per webhook per pass, each delivery
//!   within `delivery_timeout`; the receiver's answer body is not read.
//! - **Seams.** Deliveries go through a [`WebhookPoster`] (reqwest over the operating
//!   system's network by default; the simulations post over turmoil's), and the signature's
//!   time and the backoff's jitter come from the replica's cluster time, never the system
//!   clock, so a simulated run replays exactly.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use holdfast_statemachine::{Command, EventType, OutboxEvent, WebhookTarget};
use sha2::Sha256;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::replica::{self, Proposal, Replica};
use crate::webhooks::event_json;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "Holdfast-Signature";

/// Settings of the notifier.
#[derive(Clone, Debug)]
pub struct NotifierConfig {
    /// How often the leader looks for events to deliver.
    pub check_interval: Duration,
    /// Events delivered to one webhook per pass at most.
    pub events_per_pass_max: usize,
    /// Longest wait for one delivery's answer.
    pub delivery_timeout: Duration,
    /// Wait after a webhook's first failed delivery; doubled after each further one.
    pub retry_base: Duration,
    /// Longest wait between two tries.
    pub retry_max: Duration,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        NotifierConfig {
            check_interval: Duration::from_millis(500),
            events_per_pass_max: 100,
            delivery_timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
        }
    }
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub fn signature(secret: &str, unix_seconds: u64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte & 15)]));
    }
    format!("t={unix_seconds},v1={hex}")
}

/// One signed delivery, as the notifier hands it to its [`WebhookPoster`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The webhook's URL.
    pub url: String,
    /// The value of the [`SIGNATURE_HEADER`] header.
    pub signature: String,
    /// The JSON body (`webhooks::event_json`).
    pub body: Vec<u8>,
}

/// What posting a delivery yields: the receiver's HTTP status, or why none came.
pub type PostFuture = Pin<Box<dyn Future<Output = Result<u16, String>> + Send>>;

/// How the notifier posts a delivery: `POST url` with `content-type: application/json`, the
/// signature header and the body, answering the status. The notifier bounds every call by
/// `delivery_timeout` itself, so a poster needs no deadline of its own.
pub trait WebhookPoster: Send + Sync + 'static {
    /// Posts `delivery` once, without retrying: `Ok` with the receiver's HTTP status
    /// (any status, 2xx or not), `Err` with a description when no answer came (connection
    /// refused, reset, timed out). The notifier counts only a 2xx as delivered.
    fn post(&self, delivery: Delivery) -> PostFuture;
}

/// Posts deliveries with reqwest over the operating system's network (no redirects).
pub struct HttpPoster {
    client: reqwest::Client,
}

impl HttpPoster {
    /// A poster whose connect and whole-request timeouts are both `delivery_timeout`, and
    /// which never follows redirects (a 3xx counts as a refused delivery).
    ///
    /// Panics if reqwest cannot build the client (its TLS backend fails to initialise);
    /// nothing in this configuration can be refused.
    pub fn new(delivery_timeout: Duration) -> HttpPoster {
        let client = reqwest::Client::builder()
            .timeout(delivery_timeout)
            .connect_timeout(delivery_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a plain HTTP client builds");
        HttpPoster { client }
    }
}

impl WebhookPoster for HttpPoster {
    fn post(&self, delivery: Delivery) -> PostFuture {
        let request = self
            .client
            .post(&delivery.url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, delivery.signature)
            .body(delivery.body);
        Box::pin(async move {
            match request.send().await {
                Ok(response) => Ok(response.status().as_u16()),
                Err(error) => Err(error.to_string()),
            }
        })
    }
}

/// A webhook that failed: how often in a row, and when it may be tried again.
#[derive(Clone, Copy, Debug)]
struct Backoff {
    failures: u32,
    next_try: Instant,
}

/// The notifier's state on this node: how it posts, and the webhooks backing off.
pub struct Notifier {
    config: NotifierConfig,
    poster: Arc<dyn WebhookPoster>,
    backoff: Mutex<HashMap<String, Backoff>>,
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NotifyPass {
    /// Events delivered (acknowledged with a 2xx).
    pub delivered: usize,
    /// Deliveries that failed.
    pub failed: usize,
    /// Webhooks whose progress was committed.
    pub acknowledged: usize,
}

impl Notifier {
    /// A notifier posting over the operating system's network ([`HttpPoster`]).
    pub fn new(config: NotifierConfig) -> Notifier {
        let poster = Arc::new(HttpPoster::new(config.delivery_timeout));
        Notifier::with_poster(config, poster)
    }

    /// A notifier posting through `poster`.
    pub fn with_poster(config: NotifierConfig, poster: Arc<dyn WebhookPoster>) -> Notifier {
        Notifier {
            config,
            poster,
            backoff: Mutex::new(HashMap::new()),
        }
    }

    /// The wait before a webhook's next try after `failures` failures in a row; the jitter
    /// is a hash of the webhook id, the count and `now_ms` (cluster time, never the system
    /// clock: a simulation replays it).
    fn retry_delay(&self, webhook_id: &str, failures: u32, now_ms: u64) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        let full = self
            .config
            .retry_base
            .saturating_mul(1u32 << doublings)
            .min(self.config.retry_max);
        let half_ms = (full.as_millis() / 2) as u64;
        let seed = xxhash_rust::xxh3::xxh3_64_with_seed(
            webhook_id.as_bytes(),
            u64::from(failures) ^ now_ms,
        );
        Duration::from_millis(half_ms + seed % (half_ms + 1))
    }

    fn backing_off(&self, webhook_id: &str) -> bool {
        let backoff = self.backoff.lock().expect("backoff lock poisoned");
        backoff
            .get(webhook_id)
            .is_some_and(|backoff| backoff.next_try > Instant::now())
    }

    fn record(&self, webhook_id: &str, delivered: bool, now_ms: u64) {
        let mut backoff = self.backoff.lock().expect("backoff lock poisoned");
        if delivered {
            backoff.remove(webhook_id);
            return;
        }
        let failures = backoff.get(webhook_id).map_or(0, |b| b.failures) + 1;
        let next_try = Instant::now() + self.retry_delay(webhook_id, failures, now_ms);
        backoff.insert(webhook_id.to_string(), Backoff { failures, next_try });
    }

    /// Posts one event, signed at `now_ms`; whether the receiver acknowledged it (2xx)
    /// within `delivery_timeout`.
    async fn deliver(&self, target: &WebhookTarget, event: &OutboxEvent, now_ms: u64) -> bool {
        let body = serde_json::to_vec(&event_json(event)).expect("JSON values serialise");
        let delivery = Delivery {
            url: target.url.clone(),
            signature: signature(&target.secret, now_ms / 1_000, &body),
            body,
        };
        let answer =
            tokio::time::timeout(self.config.delivery_timeout, self.poster.post(delivery)).await;
        match answer {
            Ok(Ok(status)) if (200..300).contains(&status) => true,
            Ok(Ok(status)) => {
                tracing::warn!(webhook_id = %target.webhook_id, index = event.index, status, "a webhook refused a delivery");
                false
            }
            Ok(Err(error)) => {
                tracing::warn!(webhook_id = %target.webhook_id, index = event.index, %error, "a webhook delivery failed");
                false
            }
            Err(_) => {
                tracing::warn!(webhook_id = %target.webhook_id, index = event.index, "a webhook delivery timed out");
                false
            }
        }
    }

    /// Delivers one webhook's pending events in order; the mark it reached.
    async fn deliver_pending(
        &self,
        replica: &dyn Replica,
        target: &WebhookTarget,
        events: &[OutboxEvent],
        pass: &mut NotifyPass,
    ) -> u64 {
        let mut mark = target.delivered_up_to;
        for event in events {
            if target.wants(EventType::of(&event.kind)) {
                let delivered = self.deliver(target, event, replica.cluster_time_ms()).await;
                self.record(&target.webhook_id, delivered, replica.cluster_time_ms());
                if !delivered {
                    pass.failed += 1;
                    break;
                }
                pass.delivered += 1;
            }
            mark = event.index;
        }
        mark
    }

    /// One pass: if this node leads, delivers what each webhook has pending (bounded) and
    /// commits how far each got.
    pub async fn notify(&self, replica: &dyn Replica) -> NotifyPass {
        let limit = self.config.events_per_pass_max.max(1);
        let mut pass = NotifyPass::default();
        // Followers stop here, before copying any event.
        let ((), meta) = replica::read_now(replica, |_| ());
        if meta.leader_id != Some(meta.node_id) {
            return pass;
        }
        let (work, meta) = replica::read_now(replica, |machine| {
            machine
                .webhook_targets()
                .into_iter()
                .map(|target| {
                    let events = machine.outbox_events(target.delivered_up_to, limit);
                    (target, events)
                })
                .filter(|(_, events)| !events.is_empty())
                .collect::<Vec<_>>()
        });
        if work.is_empty() || meta.leader_id != Some(meta.node_id) {
            return pass;
        }
        // Webhooks are independent: one that is slow or down does not hold up the others.
        let deliveries = work
            .iter()
            .filter(|(target, _)| !self.backing_off(&target.webhook_id))
            .map(|(target, events)| async move {
                let mut own = NotifyPass::default();
                let mark = self
                    .deliver_pending(replica, target, events, &mut own)
                    .await;
                (target, mark, own)
            });
        for (target, mark, own) in futures::future::join_all(deliveries).await {
            pass.delivered += own.delivered;
            pass.failed += own.failed;
            if mark <= target.delivered_up_to {
                continue;
            }
            let proposal = Proposal {
                request_id: None,
                command: Command::AckWebhook {
                    webhook_id: target.webhook_id.clone(),
                    up_to: mark,
                },
            };
            match replica::propose_one(replica, proposal).await {
                Ok(_) => pass.acknowledged += 1,
                // Not committed: the next pass (here or on the next leader) delivers these
                // events again, which at-least-once allows.
                Err(error) => tracing::warn!(%error, "could not commit a webhook's progress"),
            }
        }
        metrics::counter!(crate::metrics::WEBHOOK_DELIVERIES_TOTAL, "outcome" => "delivered")
            .increment(pass.delivered as u64);
        metrics::counter!(crate::metrics::WEBHOOK_DELIVERIES_TOTAL, "outcome" => "failed")
            .increment(pass.failed as u64);
        pass
    }
}

/// Runs [`Notifier::notify`] every `check_interval` until `shutdown` turns true, posting
/// over the operating system's network.
pub async fn run_notifier(
    replica: Arc<dyn Replica>,
    config: NotifierConfig,
    shutdown: watch::Receiver<bool>,
) {
    run_notifier_with(replica, Notifier::new(config), shutdown).await;
}

/// Runs `notifier`'s passes every `check_interval` until `shutdown` turns true.
pub async fn run_notifier_with(
    replica: Arc<dyn Replica>,
    notifier: Notifier,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut interval = crate::periodic::interval(notifier.config.check_interval);
    while crate::periodic::next_tick(&mut interval, &mut shutdown).await {
        tokio::select! {
            _ = notifier.notify(&*replica) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hex_hmac_sha256_of_time_dot_body() {
        // The expected value is `printf '1700000000.{}' | openssl dgst -sha256 -hmac whsec_test`.
        assert_eq!(
            signature("whsec_test", 1_700_000_000, b"{}"),
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
        assert_ne!(
            signature("whsec_test", 1_700_000_000, b"{}"),
            signature("whsec_other", 1_700_000_000, b"{}")
        );
    }
}
