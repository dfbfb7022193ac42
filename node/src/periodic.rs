//! The loop of every leader task (expiry, refunds, charge intents, notifier): wait for the
//! next tick of its interval, or stop with the node.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};

/// An interval of `period` whose missed ticks are delayed, never bunched.
pub fn interval(period: Duration) -> Interval {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

/// Waits for the next tick of `interval`: `true`, or `false` once `shutdown` changed.
pub async fn next_tick(interval: &mut Interval, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = interval.tick() => {}
        _ = shutdown.changed() => return false,
    }
    !*shutdown.borrow()
}
