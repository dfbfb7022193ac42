//! The outbox: an ordered, replicated queue of what consumers (notifications, analytics,
//! refunds) must hear about. Consumers acknowledge up to an index through the log.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::outcome::{OutboxEvent, OutboxKind, Outcome, Rejection};
use crate::StateMachine;

/// Unacknowledged events in index order.
///
/// The queue is bounded by [`crate::Config::outbox_events_max`]: when a consumer falls that
/// far behind, the oldest events are dropped and counted in `dropped` rather than refusing
/// bookings. A consumer sees the gap in the indexes. The outbox notifies; it is not the
/// record of money owed: refunds stay in the refunds table (`pending_refunds`) until they
/// are marked done, whatever the outbox dropped, so a consumer that lost events re-reads
/// that table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Outbox {
    pub events: VecDeque<OutboxEvent>,
    /// The index the next event gets (indexes start at 1).
    pub next_index: u64,
    pub acknowledged_up_to: u64,
    pub dropped: u64,
}

impl Outbox {
    pub fn push(&mut self, time_ms: u64, kind: OutboxKind, events_max: usize) {
        if self.next_index == 0 {
            self.next_index = 1;
        }
        self.events.push_back(OutboxEvent {
            index: self.next_index,
            time_ms,
            kind,
        });
        self.next_index += 1;
        while self.events.len() > events_max {
            self.events.pop_front();
            self.dropped += 1;
        }
    }
}

/// What the outbox holds now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxStatus {
    pub pending: u64,
    pub acknowledged_up_to: u64,
    pub last_index: u64,
    pub dropped: u64,
}

impl StateMachine {
    pub(crate) fn emit(&mut self, kind: OutboxKind) {
        self.outbox
            .push(self.now_ms, kind, self.config.outbox_events_max);
    }

    pub(crate) fn acknowledge_outbox(&mut self, up_to: u64) -> Result<Outcome, Rejection> {
        let last = self.outbox.next_index.saturating_sub(1);
        if up_to > last {
            return Err(Rejection::invalid(
                "up_to",
                format!("beyond the last outbox index {last}"),
            ));
        }
        while self
            .outbox
            .events
            .front()
            .is_some_and(|event| event.index <= up_to)
        {
            self.outbox.events.pop_front();
        }
        self.outbox.acknowledged_up_to = self.outbox.acknowledged_up_to.max(up_to);
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
            .range(start..)
            .take(limit)
            .cloned()
            .collect()
    }

    /// Counters of the outbox.
    pub fn outbox_status(&self) -> OutboxStatus {
        OutboxStatus {
            pending: self.outbox.events.len() as u64,
            acknowledged_up_to: self.outbox.acknowledged_up_to,
            last_index: self.outbox.next_index.saturating_sub(1),
            dropped: self.outbox.dropped,
        }
    }
}
