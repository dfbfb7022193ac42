//! Webhooks: the targets the leader's notifier delivers outbox events to, with their
//! secrets and how far each has acknowledged. Replicated, so that a new leader delivers to
//! the same targets from where the old one stopped.
//!
//! The outbox is trimmed only below what every webhook has acknowledged: an `AckWebhook`
//! moves one webhook's mark and then drops the events at or below the lowest mark.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::limits::{
    WEBHOOKS_MAX, WEBHOOK_EVENT_TYPES_MAX, WEBHOOK_SECRET_BYTES_MAX, WEBHOOK_URL_BYTES_MAX,
};
use crate::outcome::{OutboxKind, Outcome, Rejection};
use crate::state::{format_id, parse_id};
use crate::StateMachine;

pub(crate) const WEBHOOK_ID_PREFIX: &str = "wh_";

/// The kinds of outbox events a webhook can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EventType {
    // Appended only: a webhook's types are stored by their position in this list.
    /// `hold.expired`: an `ExpireHolds` entry ended a hold whose time had passed.
    HoldExpired,
    /// `booking.confirmed`: a hold became a booking.
    BookingConfirmed,
    /// `booking.cancelled`: a booking was cancelled, by itself or with its event.
    BookingCancelled,
    /// `refund.recorded`: money is owed back ([`OutboxKind::RefundOwed`]).
    RefundRecorded,
    /// `refund.paid`: a refund owed was paid out.
    RefundPaid,
    /// `refund.failed`: a refund was given up.
    RefundFailed,
    /// `hold.placed`: a hold was made.
    HoldPlaced,
    /// `hold.released`: a hold was released, by `ReleaseHold` or with its event's
    /// cancellation.
    HoldReleased,
}

impl EventType {
    /// Every type, in wire order.
    pub const ALL: [EventType; 8] = [
        EventType::HoldPlaced,
        EventType::HoldExpired,
        EventType::HoldReleased,
        EventType::BookingConfirmed,
        EventType::BookingCancelled,
        EventType::RefundRecorded,
        EventType::RefundPaid,
        EventType::RefundFailed,
    ];

    /// The wire name (`booking.confirmed`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::HoldPlaced => "hold.placed",
            EventType::HoldExpired => "hold.expired",
            EventType::HoldReleased => "hold.released",
            EventType::BookingConfirmed => "booking.confirmed",
            EventType::BookingCancelled => "booking.cancelled",
            EventType::RefundRecorded => "refund.recorded",
            EventType::RefundPaid => "refund.paid",
            EventType::RefundFailed => "refund.failed",
        }
    }

    /// Parses the wire name.
    pub fn parse(text: &str) -> Option<EventType> {
        EventType::ALL
            .into_iter()
            .find(|event_type| event_type.as_str() == text)
    }

    /// The type of an outbox event.
    pub fn of(kind: &OutboxKind) -> EventType {
        match kind {
            OutboxKind::HoldPlaced { .. } => EventType::HoldPlaced,
            OutboxKind::HoldExpired { .. } => EventType::HoldExpired,
            OutboxKind::HoldReleased { .. } => EventType::HoldReleased,
            OutboxKind::BookingConfirmed { .. } => EventType::BookingConfirmed,
            OutboxKind::BookingCancelled { .. } => EventType::BookingCancelled,
            OutboxKind::RefundOwed { .. } => EventType::RefundRecorded,
            OutboxKind::RefundPaid { .. } => EventType::RefundPaid,
            OutboxKind::RefundFailed { .. } => EventType::RefundFailed,
        }
    }
}

/// A webhook as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Webhook {
    pub url: String,
    pub secret: String,
    /// Sorted, without duplicates; empty means every type.
    pub events: Vec<EventType>,
    pub created_at_ms: u64,
    /// Outbox events up to this index are delivered (or not wanted).
    pub delivered_up_to: u64,
}

/// What the API shows of a webhook: never its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookView {
    /// `wh_` and a number, counted from 1 and never reused.
    pub webhook_id: String,
    /// Where events are delivered.
    pub url: String,
    /// The types it wants, sorted and without duplicates; empty means every type.
    pub events: Vec<EventType>,
    /// Cluster time of the entry that added it, in Unix milliseconds.
    pub created_at_ms: u64,
    /// Outbox events up to this index are delivered (or not wanted); a new webhook starts
    /// at the last index there was when it was added.
    pub delivered_up_to: u64,
}

/// What the notifier needs to deliver to a webhook, secret included. Never answered to a
/// client.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    /// `wh_` and a number, as in [`WebhookView::webhook_id`].
    pub webhook_id: String,
    /// Where to deliver.
    pub url: String,
    /// The key to sign deliveries with; redacted from `Debug`.
    pub secret: String,
    /// The types it wants, sorted and without duplicates; empty means every type (see
    /// [`WebhookTarget::wants`]).
    pub events: Vec<EventType>,
    /// Outbox events up to this index are delivered (or not wanted): deliver from the
    /// next one.
    pub delivered_up_to: u64,
}

impl std::fmt::Debug for WebhookTarget {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("WebhookTarget")
            .field("webhook_id", &self.webhook_id)
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("events", &self.events)
            .field("delivered_up_to", &self.delivered_up_to)
            .finish()
    }
}

impl WebhookTarget {
    /// Whether this webhook wants events of `event_type`.
    pub fn wants(&self, event_type: EventType) -> bool {
        self.events.is_empty() || self.events.contains(&event_type)
    }
}

/// The replicated webhooks, by id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Webhooks {
    pub by_id: BTreeMap<u64, Webhook>,
    pub last_id: u64,
}

/// Checks a webhook URL: `http://` or `https://`, bounded, no spaces or control characters.
pub fn validate_webhook_url(url: &str) -> Result<(), Rejection> {
    let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
    if !scheme_ok
        || url.len() > WEBHOOK_URL_BYTES_MAX
        || url.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(Rejection::invalid(
            "url",
            format!("must be an http:// or https:// URL of at most {WEBHOOK_URL_BYTES_MAX} bytes"),
        ));
    }
    Ok(())
}

/// Checks a webhook secret: 1 to [`WEBHOOK_SECRET_BYTES_MAX`] bytes, no control characters.
pub fn validate_webhook_secret(secret: &str) -> Result<(), Rejection> {
    if secret.is_empty()
        || secret.len() > WEBHOOK_SECRET_BYTES_MAX
        || secret.chars().any(char::is_control)
    {
        return Err(Rejection::invalid(
            "secret",
            format!("must be 1 to {WEBHOOK_SECRET_BYTES_MAX} bytes without control characters"),
        ));
    }
    Ok(())
}

impl StateMachine {
    pub(crate) fn add_webhook(
        &mut self,
        url: &str,
        secret: &str,
        events: &[EventType],
    ) -> Result<Outcome, Rejection> {
        validate_webhook_url(url)?;
        validate_webhook_secret(secret)?;
        if events.len() > WEBHOOK_EVENT_TYPES_MAX {
            return Err(Rejection::TooManyItems {
                items: events.len() as u64,
                max: WEBHOOK_EVENT_TYPES_MAX as u64,
            });
        }
        if self.webhooks.by_id.len() >= WEBHOOKS_MAX {
            return Err(Rejection::LimitReached {
                what: "webhooks".into(),
                max: WEBHOOKS_MAX as u64,
            });
        }
        let mut events = events.to_vec();
        events.sort_unstable();
        events.dedup();
        self.webhooks.last_id += 1;
        let id = self.webhooks.last_id;
        // A new webhook hears of what happens from now on.
        let delivered_up_to = self.outbox.next_index.saturating_sub(1);
        self.webhooks.by_id.insert(
            id,
            Webhook {
                url: url.to_string(),
                secret: secret.to_string(),
                events,
                created_at_ms: self.now_ms,
                delivered_up_to,
            },
        );
        // Nothing before it is this webhook's; what no other webhook needs goes.
        self.trim_delivered();
        Ok(Outcome::WebhookAdded(
            self.webhook_view(id).expect("just added"),
        ))
    }

    pub(crate) fn remove_webhook(&mut self, webhook_id: &str) -> Result<Outcome, Rejection> {
        let id = self.webhook_id(webhook_id)?;
        let view = self.webhook_view(id).expect("exists");
        self.webhooks.by_id.remove(&id);
        self.trim_delivered();
        Ok(Outcome::WebhookRemoved(view))
    }

    pub(crate) fn acknowledge_webhook(
        &mut self,
        webhook_id: &str,
        up_to: u64,
    ) -> Result<Outcome, Rejection> {
        let id = self.webhook_id(webhook_id)?;
        let last = self.outbox.next_index.saturating_sub(1);
        if up_to > last {
            return Err(Rejection::invalid(
                "up_to",
                format!("beyond the last outbox index {last}"),
            ));
        }
        let webhook = self.webhooks.by_id.get_mut(&id).expect("exists");
        // Marks only move forward: a late acknowledgement (an earlier leader's) changes
        // nothing.
        webhook.delivered_up_to = webhook.delivered_up_to.max(up_to);
        let delivered_up_to = webhook.delivered_up_to;
        self.trim_delivered();
        Ok(Outcome::WebhookAcknowledged {
            webhook_id: webhook_id.to_string(),
            delivered_up_to,
        })
    }

    fn webhook_id(&self, webhook_id: &str) -> Result<u64, Rejection> {
        parse_id(WEBHOOK_ID_PREFIX, webhook_id)
            .filter(|id| self.webhooks.by_id.contains_key(id))
            .ok_or_else(|| Rejection::WebhookNotFound {
                webhook_id: webhook_id.to_string(),
            })
    }

    /// Drops the outbox events every webhook has acknowledged (none while there is no
    /// webhook: then the unclaimed window trims, see `outbox.rs`).
    fn trim_delivered(&mut self) {
        let Some(lowest) = self
            .webhooks
            .by_id
            .values()
            .map(|webhook| webhook.delivered_up_to)
            .min()
        else {
            return;
        };
        while self
            .outbox
            .events
            .front()
            .is_some_and(|event| event.index <= lowest)
        {
            self.outbox.events.pop_front();
        }
        self.outbox.acknowledged_up_to = self.outbox.acknowledged_up_to.max(lowest);
    }

    fn webhook_view(&self, id: u64) -> Option<WebhookView> {
        let webhook = self.webhooks.by_id.get(&id)?;
        Some(WebhookView {
            webhook_id: format_id(WEBHOOK_ID_PREFIX, id),
            url: webhook.url.clone(),
            events: webhook.events.clone(),
            created_at_ms: webhook.created_at_ms,
            delivered_up_to: webhook.delivered_up_to,
        })
    }

    /// Every webhook, by id, without secrets.
    pub fn webhooks(&self) -> Vec<WebhookView> {
        self.webhooks
            .by_id
            .keys()
            .filter_map(|&id| self.webhook_view(id))
            .collect()
    }

    /// Every webhook with its secret, for the notifier.
    pub fn webhook_targets(&self) -> Vec<WebhookTarget> {
        self.webhooks
            .by_id
            .iter()
            .map(|(&id, webhook)| WebhookTarget {
                webhook_id: format_id(WEBHOOK_ID_PREFIX, id),
                url: webhook.url.clone(),
                secret: webhook.secret.clone(),
                events: webhook.events.clone(),
                delivered_up_to: webhook.delivered_up_to,
            })
            .collect()
    }
}
