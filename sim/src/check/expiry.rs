//! No confirm of an expired hold, in two senses.
//!
//! - In cluster time, on every replica: each booking was created before its hold's
//!   `expires_at`.
//! - In real (simulated) time: while one leader led throughout, cluster time advances at
//!   least as fast as real time (the leader carries its clock on with the monotonic clock,
//!   whatever its wall clock does), so a confirm that was invoked `ttl` or more after its
//!   hold was acknowledged must have been refused. Across leader changes the clocks of
//!   two nodes are compared, and skew is allowed by design; those confirms are not judged.

use std::collections::HashMap;

use crate::history::{Call, History, OpResult};

use super::{CheckOutcome, LeadershipTimeline, ReplicaState};

pub fn check(
    history: &History,
    replicas: &[ReplicaState],
    timeline: &LeadershipTimeline,
) -> CheckOutcome {
    let mut outcome = CheckOutcome::new("no confirm of an expired hold");
    for replica in replicas {
        for op in &history.ops {
            let OpResult::Confirmed { booking_id } = &op.result else {
                continue;
            };
            let Some(booking) = replica.machine.booking_by_id(booking_id) else {
                continue;
            };
            let Some(hold) = replica.machine.hold_by_id(&booking.hold_id) else {
                continue;
            };
            outcome.checked += 1;
            if booking.created_at_ms >= hold.expires_at_ms {
                outcome.violation(format!(
                    "node {}: booking {booking_id} created at {} ms, its hold {} expired at {} ms",
                    replica.node_id, booking.created_at_ms, hold.hold_id, hold.expires_at_ms
                ));
            }
        }
    }
    // Holds acknowledged to clients: id -> (completion time, ttl).
    let mut holds = HashMap::new();
    for op in &history.ops {
        if let (Call::Hold { ttl_seconds, .. }, OpResult::Held { hold_id, .. }) =
            (&op.call, &op.result)
        {
            if let Some(completed) = op.completed {
                holds.insert(hold_id.clone(), (completed, *ttl_seconds));
            }
        }
    }
    for op in &history.ops {
        let (Call::Confirm { hold_id }, OpResult::Confirmed { booking_id }) =
            (&op.call, &op.result)
        else {
            continue;
        };
        let Some(&(held_at, ttl_seconds)) = holds.get(hold_id) else {
            continue;
        };
        let completed = op.completed.unwrap_or(u64::MAX);
        if !timeline.one_leader_throughout(held_at, completed) {
            continue;
        }
        outcome.checked += 1;
        let ttl_micros = ttl_seconds * 1_000_000;
        if op.invoked >= held_at + ttl_micros {
            outcome.violation(format!(
                "booking {booking_id}: hold {hold_id} (ttl {ttl_seconds} s) was acknowledged at \
                 {held_at} us and confirmed by a call invoked at {} us, under one leader",
                op.invoked
            ));
        }
    }
    outcome
}
