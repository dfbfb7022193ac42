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

/// Twice the harness's sampling interval, and some.
const SAMPLING_MARGIN_MICROS: u64 = 50_000;

/// Checks both senses of the module documentation: on every replica, each booking a
/// confirm was answered with; in simulated time, each confirm of an acknowledged hold
/// when one leader led (by `timeline`) from the hold's answer to the confirm's, with
/// 50 ms to spare either side. Confirms across a leader change are not counted as checked.
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
        // The timeline is sampled every few milliseconds: leave a margin either side, so
        // that a leader change just before a sample is not missed.
        let completed = op.completed.unwrap_or(u64::MAX);
        let from = held_at.saturating_sub(SAMPLING_MARGIN_MICROS);
        let to = completed.saturating_add(SAMPLING_MARGIN_MICROS);
        if !timeline.one_leader_throughout(from, to) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Call;

    fn history_with_confirm_after(delay_micros: u64) -> History {
        let mut history = History::default();
        let hold = history.invoke(
            0,
            1,
            0,
            Call::Hold {
                event_id: "sim".into(),
                seats: vec!["X-1".into()],
                pools: Vec::new(),
                ttl_seconds: 2,
            },
        );
        history.complete(
            hold,
            10_000,
            OpResult::Held {
                hold_id: "h_1".into(),
                expires_at_ms: 0,
            },
        );
        let confirm = history.invoke(
            0,
            1,
            10_000 + delay_micros,
            Call::Confirm {
                hold_id: "h_1".into(),
            },
        );
        history.complete(
            confirm,
            20_000 + delay_micros,
            OpResult::Confirmed {
                booking_id: "b_1".into(),
            },
        );
        history
    }

    fn steady_leader() -> LeadershipTimeline {
        let mut timeline = LeadershipTimeline::default();
        timeline.observe(0, 1, Some(1));
        timeline
    }

    #[test]
    fn a_confirm_within_the_ttl_passes() {
        let outcome = check(
            &history_with_confirm_after(1_000_000),
            &[],
            &steady_leader(),
        );
        assert!(outcome.passed(), "{:?}", outcome.violations);
        assert_eq!(outcome.checked, 1);
    }

    #[test]
    fn a_confirm_invoked_after_the_ttl_under_one_leader_is_a_violation() {
        let outcome = check(
            &history_with_confirm_after(2_500_000),
            &[],
            &steady_leader(),
        );
        assert_eq!(outcome.violations.len(), 1, "{:?}", outcome.violations);
    }

    #[test]
    fn a_late_confirm_across_a_leader_change_is_not_judged() {
        let mut timeline = steady_leader();
        timeline.observe(1_000_000, 2, Some(2));
        let outcome = check(&history_with_confirm_after(2_500_000), &[], &timeline);
        assert!(outcome.passed());
        assert_eq!(outcome.checked, 0);
    }
}
