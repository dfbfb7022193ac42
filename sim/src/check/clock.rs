//! Cluster time is never pushed ahead of true time by one clock.
//!
//! Every acknowledged hold carries cluster time: it was made at `expires_at - ttl`. That
//! moment must not be later than the true (simulated) time at which the answer arrived,
//! plus what honest clocks allow: the most a node's clock is set ahead in any scenario
//! (1.5 s) and the clock guard's tolerance (1 s), with a margin. A leader whose clock jumps
//! hours ahead (the clock-skew scenario does that) must not stamp its own time: without
//! the guard, holds would carry times hours ahead, expire hours late, and the idempotency
//! keys stored with them would be forgotten as early as that.

use crate::clock::SIM_EPOCH_MS;
use crate::history::{Call, History, OpResult};

use super::CheckOutcome;

/// How far ahead of true time cluster time may run: the largest honest clock offset of the
/// scenarios (1.5 s), the clock guard's default tolerance (1 s) and a margin.
pub const AHEAD_ALLOWED_MS: u64 = 5_000;

/// Checks every hold acknowledged with an expiry: the cluster time it was made at
/// (`expires_at - ttl`) may be at most [`AHEAD_ALLOWED_MS`] after the true time its answer
/// arrived. Holds without an answer are not checked.
pub fn check(history: &History) -> CheckOutcome {
    let mut outcome = CheckOutcome::new("cluster time never runs ahead of true time");
    for op in &history.ops {
        let (
            Call::Hold { ttl_seconds, .. },
            OpResult::Held {
                hold_id,
                expires_at_ms,
            },
        ) = (&op.call, &op.result)
        else {
            continue;
        };
        let Some(completed) = op.completed else {
            continue;
        };
        outcome.checked += 1;
        let made_at_ms = expires_at_ms.saturating_sub(ttl_seconds * 1_000);
        let true_ms = SIM_EPOCH_MS + completed / 1_000;
        if made_at_ms > true_ms + AHEAD_ALLOWED_MS {
            outcome.violation(format!(
                "hold {hold_id} was made at cluster time {made_at_ms} ms, {} ms after the \
                 true time its answer arrived ({true_ms} ms)",
                made_at_ms - true_ms
            ));
        }
    }
    outcome
}
