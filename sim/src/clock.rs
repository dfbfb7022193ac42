//! Per-host wall clocks: turmoil's simulated time plus an offset the fault schedule sets
//! (a skewed clock, or a clock stepped back or forward as a bad NTP server would).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use holdfast_node::replica::WallClock;

/// Milliseconds since the Unix epoch of the simulation's start (2026-01-01T00:00:00Z):
/// fixed, so that a seed replays the same cluster times.
pub const SIM_EPOCH_MS: u64 = 1_767_225_600_000;

/// True simulated time, in milliseconds since the Unix epoch, as the harness sees it.
pub fn true_now_ms() -> u64 {
    SIM_EPOCH_MS + turmoil::sim_elapsed().unwrap_or_default().as_millis() as u64
}

/// One host's wall clock. Clones share the offset.
#[derive(Clone, Debug, Default)]
pub struct SimClock {
    offset_ms: Arc<AtomicI64>,
}

impl SimClock {
    /// Sets how far this host's clock is ahead (positive) or behind (negative).
    pub fn set_offset_ms(&self, offset_ms: i64) {
        self.offset_ms.store(offset_ms, Ordering::Relaxed);
    }

    /// How far this host's clock is ahead (positive) or behind (negative), in
    /// milliseconds.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }
}

impl WallClock for SimClock {
    fn now_ms(&self) -> u64 {
        true_now_ms().saturating_add_signed(self.offset_ms())
    }
}
