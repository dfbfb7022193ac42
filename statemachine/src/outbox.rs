//! The outbox: an ordered, replicated queue of what consumers (notifications, analytics,
//! refunds) must hear about. Consumers acknowledge up to an index through the log.
//!
//! **The bound.** Who holds a claim on events decides what happens when the outbox fills:
//!
//! - *A webhook is configured.* Events are kept until every webhook acknowledged them
//!   (`AckWebhook`); nothing is ever dropped. Instead, a write that would add events is
//!   refused before it applies, with `OUTBOX_FULL` (503: a consumer is lagging; retry
//!   later), when the outbox's *claims* — the events it holds plus those already promised
//!   (one for the end of every active hold, one for the settlement of every pending refund)
//!   — would pass [`crate::Config::outbox_events_max`]. Only the writes that open new
//!   obligations are refused: `Hold` (its `hold.placed` and a promise for its end),
//!   `CancelBooking` (`booking.cancelled`, `refund.recorded` and a promise for the refund's
//!   settlement) and `CancelEvent` (the same for each of its bookings). The writes that end
//!   what was admitted — a confirm (its payment is charged already), a release, an expiry,
//!   a refund paid or given up — are never refused: each spends its own promise, so a hold
//!   never outlives its expiry and a charge never stands without a booking or a refund
//!   owed. The one event beyond the promises is the `refund.recorded` of a confirm refused
//!   after its charge (money owed is never refused): the edge checks that a hold can be
//!   confirmed before it charges, so only a race with its expiry or another confirm adds
//!   one, and charges awaiting their confirm are bounded per node (`ChargeResolver`).
//! - *No webhook.* Nobody has a claim: the outbox keeps the newest
//!   `min(outbox_events_max, OUTBOX_UNCLAIMED_EVENTS_MAX)` events, a window for
//!   change-stream readers, and trims older ones (counted in `dropped`). Nothing is refused.
//!
//! Adding a webhook trims everything before it (it hears of events from the next one on).
//! The outbox notifies; it is not the record of money owed: refunds stay in the refunds
//! table (`pending_refunds`) until they are marked done.

use crate::cowvec::CowVec;

use serde::{Deserialize, Serialize};

use crate::command::Command;
use crate::limits::OUTBOX_UNCLAIMED_EVENTS_MAX;
use crate::outcome::{BookingStatus, OutboxEvent, OutboxKind, Outcome, Rejection};
use crate::StateMachine;

/// Unacknowledged events in index order (see the module's documentation for the bound).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Outbox {
    /// In shared chunks: a frozen copy for a snapshot shares them.
    pub events: CowVec<OutboxEvent>,
    /// The index the next event gets (indexes start at 1).
    pub next_index: u64,
    pub acknowledged_up_to: u64,
    /// Events trimmed while no webhook had a claim on them.
    pub dropped: u64,
}

impl Outbox {
    /// Appends an event; with `window`, then trims the oldest beyond it.
    pub fn push(&mut self, time_ms: u64, kind: OutboxKind, window: Option<usize>) {
        if self.next_index == 0 {
            self.next_index = 1;
        }
        self.events.push(OutboxEvent {
            index: self.next_index,
            time_ms,
            kind,
        });
        self.next_index += 1;
        if let Some(window) = window {
            while self.events.len() > window {
                self.events.pop_front();
                self.dropped += 1;
            }
        }
    }
}

/// What the outbox holds now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxStatus {
    /// Events the outbox holds now: not yet acknowledged, trimmed or dropped.
    pub pending: u64,
    /// Events up to this index were trimmed as acknowledged: by `AckOutbox`, by every
    /// webhook's `AckWebhook`, or when a webhook was added. 0 before any.
    pub acknowledged_up_to: u64,
    /// The index of the newest event ever emitted; 0 before any.
    pub last_index: u64,
    /// Events trimmed unacknowledged while no webhook had a claim on them (see
    /// [`crate::limits::OUTBOX_UNCLAIMED_EVENTS_MAX`]).
    pub dropped: u64,
    /// Events held plus events promised (see [`StateMachine::outbox_claims`]).
    pub claims: u64,
}

impl StateMachine {
    pub(crate) fn emit(&mut self, kind: OutboxKind) {
        let window = self.webhooks.by_id.is_empty().then(|| {
            self.config
                .outbox_events_max
                .min(OUTBOX_UNCLAIMED_EVENTS_MAX)
        });
        self.outbox.push(self.now_ms, kind, window);
    }

    /// The events the outbox holds plus those already promised: one for the end of each
    /// active hold (`hold.released`, `hold.expired` or `booking.confirmed`) and one for
    /// the settlement of each pending refund (`refund.paid` or `refund.failed`).
    pub fn outbox_claims(&self) -> u64 {
        self.outbox.events.len() as u64
            + self.expiry_queue.len() as u64
            + self.pending_refunds.len() as u64
    }

    /// Claims `command` would add to the outbox, beyond the promises it spends.
    fn outbox_claims_needed(&self, command: &Command) -> u64 {
        match command {
            // `hold.placed`, and the promise of the hold's end.
            Command::Hold(_) => 2,
            // `booking.cancelled`, `refund.recorded`, and the promise of the refund's
            // settlement.
            Command::CancelBooking { .. } => 3,
            // The same for each confirmed booking; each released hold spends its promise.
            Command::CancelEvent { event_id, .. } => {
                let bookings = self
                    .bookings
                    .iter()
                    .filter(|(_, booking)| {
                        booking.status == BookingStatus::Confirmed
                            && *booking.event_id == **event_id
                    })
                    .count() as u64;
                3 * bookings
            }
            _ => 0,
        }
    }

    /// Refuses, before it applies, a command that would take the outbox's claims past its
    /// bound while a webhook has a claim on its events. Deterministic: it reads only the
    /// replicated state.
    pub(crate) fn outbox_admits(&self, command: &Command) -> Result<(), Rejection> {
        if self.webhooks.by_id.is_empty() {
            return Ok(());
        }
        let needed = self.outbox_claims_needed(command);
        if needed == 0 {
            return Ok(());
        }
        let claims = self.outbox_claims();
        let max = self.config.outbox_events_max as u64;
        if claims.saturating_add(needed) > max {
            return Err(Rejection::OutboxFull { claims, max });
        }
        Ok(())
    }

    /// Whether the outbox has no room for a new hold now (a webhook is configured and
    /// lagging), for readers and metrics.
    pub fn outbox_full(&self) -> bool {
        !self.webhooks.by_id.is_empty()
            && self.outbox_claims().saturating_add(2) > self.config.outbox_events_max as u64
    }

    pub(crate) fn acknowledge_outbox(&mut self, up_to: u64) -> Result<Outcome, Rejection> {
        let last = self.outbox.next_index.saturating_sub(1);
        if up_to > last {
            return Err(Rejection::invalid(
                "up_to",
                format!("beyond the last outbox index {last}"),
            ));
        }
        // Never below what a webhook still needs.
        let lowest_webhook_mark = self
            .webhooks
            .by_id
            .values()
            .map(|webhook| webhook.delivered_up_to)
            .min();
        let trim_to = lowest_webhook_mark.map_or(up_to, |lowest| up_to.min(lowest));
        while self
            .outbox
            .events
            .front()
            .is_some_and(|event| event.index <= trim_to)
        {
            self.outbox.events.pop_front();
        }
        self.outbox.acknowledged_up_to = self.outbox.acknowledged_up_to.max(trim_to);
        Ok(Outcome::OutboxAcknowledged {
            acknowledged_up_to: self.outbox.acknowledged_up_to,
            remaining: self.outbox.events.len() as u64,
        })
    }

    /// Unacknowledged events with an index above `after`, at most `limit`.
    pub fn outbox_events(&self, after: u64, limit: usize) -> Vec<OutboxEvent> {
        let start = self
            .outbox
            .events
            .partition_point(|event| event.index <= after);
        self.outbox
            .events
            .iter_from(start)
            .take(limit)
            .cloned()
            .collect()
    }

    /// The index of the oldest event the outbox still holds, if any.
    pub fn outbox_first_index(&self) -> Option<u64> {
        self.outbox.events.front().map(|event| event.index)
    }

    /// Counters of the outbox.
    pub fn outbox_status(&self) -> OutboxStatus {
        OutboxStatus {
            pending: self.outbox.events.len() as u64,
            acknowledged_up_to: self.outbox.acknowledged_up_to,
            last_index: self.outbox.next_index.saturating_sub(1),
            dropped: self.outbox.dropped,
            claims: self.outbox_claims(),
        }
    }
}
