//! Webhook deliveries, judged against the replicated outbox:
//!
//! - **acknowledged ⇒ received**: every event up to the webhook's committed mark
//!   (`delivered_up_to`, the cluster's word that the receiver answered `2xx`) was accepted
//!   by the receiver at least once; and by the end of the run, after the heal, the mark
//!   reached the outbox's last event (nothing is left undelivered);
//! - **order per booking**: when the receiver first accepted an event, it had already
//!   accepted every earlier event of the same hold and its booking and refunds;
//! - **nothing invented**: every delivery is, byte for byte as JSON, the event the committed
//!   outbox holds at its index (the harness records the outbox of every replica after every
//!   simulation step, so it sees every event before the webhook's acknowledgement can trim
//!   it: that takes a delivery and a commit, several network hops);
//! - **signed**: every delivery's `Holdfast-Signature` verifies with the webhook's secret.
//!
//! In the `webhook-outage` runs, also: the outbox filled (customers were refused with
//! `OUTBOX_FULL`), and a hold succeeded after the receiver came back.

use std::collections::{BTreeMap, BTreeSet};

use holdfast_statemachine::StateMachine;
use serde_json::Value;

use super::{CheckOutcome, ReplicaState};
use crate::history::{Call, History, OpResult};
use crate::webhook::Received;

/// Events read from one replica's outbox per sample at most.
const SAMPLE_EVENTS_MAX: usize = 4_096;

/// The committed outbox as the harness saw it: every event any replica applied, by index,
/// as the JSON a webhook receives.
#[derive(Debug, Default)]
pub struct OutboxRecord {
    /// Each outbox index with the event first seen there, as the JSON a webhook receives.
    pub events: BTreeMap<u64, Value>,
    /// Per replica, the highest index already read from it.
    cursors: BTreeMap<u64, u64>,
    /// The same index seen with two different events (replicas applied different logs).
    pub conflicts: Vec<String>,
}

impl OutboxRecord {
    /// Records the events `machine` (replica `node_id`) holds that were not read from it yet.
    pub fn sample(&mut self, node_id: u64, machine: &StateMachine) {
        let cursor = self.cursors.entry(node_id).or_default();
        let events = machine.outbox_events(*cursor, SAMPLE_EVENTS_MAX);
        for event in events {
            *cursor = (*cursor).max(event.index);
            let json = holdfast_node::webhooks::event_json(&event);
            match self.events.get(&event.index) {
                Some(known) if *known != json => {
                    if self.conflicts.len() < 8 {
                        self.conflicts.push(format!(
                            "outbox index {} is {known} on one replica and {json} on node {node_id}",
                            event.index
                        ));
                    }
                }
                Some(_) => {}
                None => {
                    self.events.insert(event.index, json);
                }
            }
        }
    }
}

/// What the delivery checks read.
pub struct DeliveryRun<'a> {
    /// Every delivery the receiver saw, in arrival order.
    pub received: &'a [Received],
    /// The committed outbox as the harness recorded it during the run.
    pub record: &'a OutboxRecord,
    /// The replicas' final states (the most advanced one gives the webhook's final mark).
    pub replicas: &'a [ReplicaState],
    /// The webhook's mark when it was added (`None`: it never was).
    pub start_mark: Option<u64>,
}

/// The four delivery checks (see the module's documentation).
pub fn check(run: &DeliveryRun<'_>) -> Vec<CheckOutcome> {
    vec![
        acknowledged_received(run),
        in_order_per_booking(run),
        nothing_invented(run),
        signed(run),
    ]
}

/// The webhook's committed mark and the outbox's last index, by the most advanced replica.
fn final_mark(replicas: &[ReplicaState]) -> Option<(u64, u64)> {
    replicas
        .iter()
        .max_by_key(|replica| replica.applied_index)
        .and_then(|replica| {
            let webhooks = replica.machine.webhooks();
            let mark = webhooks
                .iter()
                .map(|webhook| webhook.delivered_up_to)
                .min()?;
            Some((mark, replica.machine.outbox_status().last_index))
        })
}

fn accepted_indexes(received: &[Received]) -> BTreeSet<u64> {
    received
        .iter()
        .filter(|delivery| delivery.accepted)
        .map(|delivery| delivery.index)
        .collect()
}

fn acknowledged_received(run: &DeliveryRun<'_>) -> CheckOutcome {
    let mut outcome =
        CheckOutcome::new("every event acknowledged to the webhook was received by it");
    let Some(start) = run.start_mark else {
        outcome.violation("the webhook was never added".into());
        return outcome;
    };
    let Some((mark, last)) = final_mark(run.replicas) else {
        outcome.violation("no replica holds the webhook at the end".into());
        return outcome;
    };
    let accepted = accepted_indexes(run.received);
    for index in start + 1..=mark {
        outcome.checked += 1;
        if !accepted.contains(&index) {
            outcome.violation(format!(
                "event {index} is acknowledged (the webhook's mark is {mark}) but the receiver never accepted it"
            ));
        }
    }
    if mark < last {
        outcome.violation(format!(
            "the webhook's mark stopped at {mark}, the outbox's last event is {last}: not every event was delivered after the heal"
        ));
    }
    outcome
}

/// The hold an event belongs to (a booking and its refunds belong to the hold it came from),
/// or the event's own id when none is known.
struct Groups {
    hold_of_booking: BTreeMap<String, String>,
    hold_of_refund: BTreeMap<String, String>,
}

impl Groups {
    fn learn(&mut self, event: &Value) {
        let data = &event["data"];
        let Some(hold) = data["hold_id"].as_str() else {
            return;
        };
        if let Some(booking) = data["booking_id"].as_str() {
            self.hold_of_booking
                .insert(booking.to_string(), hold.to_string());
        }
        if let Some(refund) = data["refund_id"].as_str() {
            self.hold_of_refund
                .insert(refund.to_string(), hold.to_string());
        }
    }

    fn of(&self, event: &Value) -> String {
        let data = &event["data"];
        if let Some(hold) = data["hold_id"].as_str() {
            return hold.to_string();
        }
        if let Some(hold) = data["booking_id"]
            .as_str()
            .and_then(|booking| self.hold_of_booking.get(booking))
        {
            return hold.clone();
        }
        if let Some(hold) = data["refund_id"]
            .as_str()
            .and_then(|refund| self.hold_of_refund.get(refund))
        {
            return hold.clone();
        }
        event["id"].as_str().unwrap_or_default().to_string()
    }
}

fn in_order_per_booking(run: &DeliveryRun<'_>) -> CheckOutcome {
    let mut outcome = CheckOutcome::new("webhook deliveries arrive in order per booking");
    let start = run.start_mark.unwrap_or(0);
    let mut groups = Groups {
        hold_of_booking: BTreeMap::new(),
        hold_of_refund: BTreeMap::new(),
    };
    for event in run.record.events.values() {
        groups.learn(event);
    }
    for delivery in run.received {
        groups.learn(&delivery.body);
    }
    // Each group's committed events, in index order.
    let mut members: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (&index, event) in run.record.events.range(start + 1..) {
        members.entry(groups.of(event)).or_default().push(index);
    }
    let mut first_received = BTreeSet::new();
    for delivery in run.received.iter().filter(|delivery| delivery.accepted) {
        if !first_received.insert(delivery.index) {
            continue;
        }
        outcome.checked += 1;
        let group = groups.of(&delivery.body);
        let Some(indexes) = members.get(&group) else {
            continue;
        };
        for earlier in indexes.iter().take_while(|&&index| index < delivery.index) {
            if !first_received.contains(earlier) {
                outcome.violation(format!(
                    "event {} of {group} arrived at {} ms before event {earlier} of the same hold or booking had arrived",
                    delivery.index, delivery.at_ms
                ));
            }
        }
    }
    outcome
}

fn nothing_invented(run: &DeliveryRun<'_>) -> CheckOutcome {
    let mut outcome =
        CheckOutcome::new("every webhook delivery is an event of the replicated outbox");
    for conflict in &run.record.conflicts {
        outcome.violation(conflict.clone());
    }
    let start = run.start_mark.unwrap_or(0);
    for delivery in run.received {
        outcome.checked += 1;
        if delivery.index <= start {
            outcome.violation(format!(
                "a delivery at {} ms names outbox index {}, not after the webhook's first mark {start}: {}",
                delivery.at_ms, delivery.index, delivery.body
            ));
            continue;
        }
        match run.record.events.get(&delivery.index) {
            Some(event) if *event == delivery.body => {}
            Some(event) => outcome.violation(format!(
                "the delivery of event {} at {} ms was {}, the outbox holds {event}",
                delivery.index, delivery.at_ms, delivery.body
            )),
            None => outcome.violation(format!(
                "the delivery of event {} at {} ms is not in any replica's outbox: {}",
                delivery.index, delivery.at_ms, delivery.body
            )),
        }
    }
    outcome
}

fn signed(run: &DeliveryRun<'_>) -> CheckOutcome {
    let mut outcome = CheckOutcome::new("every webhook delivery's signature verifies");
    for delivery in run.received {
        outcome.checked += 1;
        if !delivery.signature_valid {
            outcome.violation(format!(
                "the delivery of event {} at {} ms has a signature that does not verify",
                delivery.index, delivery.at_ms
            ));
        }
    }
    outcome
}

/// In a `webhook-outage` run: the outbox filled while the receiver was down (some write
/// was answered `OUTBOX_FULL`), and a hold made after the receiver came back (at
/// `receiver_back_ms`) succeeded.
pub fn outage(
    history: &History,
    outbox_full_answers: usize,
    receiver_back_ms: Option<u64>,
) -> CheckOutcome {
    let mut outcome = CheckOutcome::new("a full outbox refuses holds until the webhook catches up");
    outcome.checked = outbox_full_answers;
    if outbox_full_answers == 0 {
        outcome.violation("no write was refused with OUTBOX_FULL: the outbox never filled".into());
    }
    let Some(back_ms) = receiver_back_ms else {
        outcome.violation("the receiver never came back".into());
        return outcome;
    };
    let held_after = history.ops.iter().any(|op| {
        matches!(op.call, Call::Hold { .. })
            && matches!(op.result, OpResult::Held { .. })
            && op.invoked / 1_000 >= back_ms
    });
    if !held_after {
        outcome.violation(format!(
            "no hold made after the receiver came back at {back_ms} ms succeeded"
        ));
    }
    outcome
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(index: u64, kind: &str, data: Value) -> Value {
        json!({"id": format!("evt_{index}"), "type": kind, "index": index,
               "created_at": "2026-06-01T20:00:00Z", "data": data})
    }

    /// Three events of hold h_1 (placed, confirmed, cancelled) and one of hold h_2.
    fn record() -> OutboxRecord {
        let mut record = OutboxRecord::default();
        for (index, json) in [
            (1, event(1, "hold.placed", json!({"hold_id": "h_1"}))),
            (2, event(2, "hold.placed", json!({"hold_id": "h_2"}))),
            (
                3,
                event(
                    3,
                    "booking.confirmed",
                    json!({"hold_id": "h_1", "booking_id": "b_1"}),
                ),
            ),
            (
                4,
                event(4, "booking.cancelled", json!({"booking_id": "b_1"})),
            ),
        ] {
            record.events.insert(index, json);
        }
        record
    }

    fn delivery(record: &OutboxRecord, index: u64, at_ms: u64) -> Received {
        Received {
            at_ms,
            index,
            body: record.events[&index].clone(),
            signature_valid: true,
            accepted: true,
        }
    }

    fn failures(outcome: &CheckOutcome) -> usize {
        outcome.violations.len()
    }

    #[test]
    fn deliveries_out_of_order_within_a_booking_are_caught_and_across_bookings_are_not() {
        let record = record();
        let run = |order: &[u64]| {
            let received: Vec<Received> = order
                .iter()
                .enumerate()
                .map(|(at, &index)| delivery(&record, index, at as u64))
                .collect();
            in_order_per_booking(&DeliveryRun {
                received: &received,
                record: &record,
                replicas: &[],
                start_mark: Some(0),
            })
        };
        assert_eq!(failures(&run(&[1, 2, 3, 4])), 0);
        assert_eq!(
            failures(&run(&[2, 1, 3, 4])),
            0,
            "other holds may interleave"
        );
        assert_eq!(failures(&run(&[1, 3, 1, 3, 4])), 0, "repeats are allowed");
        // The cancellation (found through the booking id) before the confirmation.
        assert_eq!(failures(&run(&[1, 2, 4, 3])), 1);
        assert_eq!(failures(&run(&[3, 1, 2, 4])), 1);
    }

    #[test]
    fn deliveries_unlike_the_outbox_or_unsigned_are_caught() {
        let record = record();
        let mut invented = delivery(&record, 2, 0);
        invented.body["data"]["hold_id"] = json!("h_9");
        let mut beyond = delivery(&record, 4, 1);
        beyond.index = 5;
        beyond.body["index"] = json!(5);
        let mut unsigned = delivery(&record, 1, 2);
        unsigned.signature_valid = false;
        let received = vec![invented, beyond, unsigned];
        let run = DeliveryRun {
            received: &received,
            record: &record,
            replicas: &[],
            start_mark: Some(0),
        };
        assert_eq!(failures(&nothing_invented(&run)), 2);
        assert_eq!(failures(&signed(&run)), 1);
    }
}
