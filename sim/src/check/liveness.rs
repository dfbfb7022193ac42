//! Liveness: once the faults stop, a write through the API succeeds again within a stated
//! bound ([`WRITE_RECOVERY_MS_MAX`]). Elections take 1–2 s; a restarted node replays its
//! log; the bound leaves room for a couple of failed elections.

use super::CheckOutcome;

/// After the heal, a write must succeed within this many simulated milliseconds.
pub const WRITE_RECOVERY_MS_MAX: u64 = 15_000;

/// `recovered_after_ms`: how long after the heal the probe's first write succeeded, if it
/// did.
pub fn check(recovered_after_ms: Option<u64>) -> CheckOutcome {
    let mut outcome = CheckOutcome::new("writes succeed again after the faults stop");
    outcome.checked = 1;
    match recovered_after_ms {
        Some(ms) if ms <= WRITE_RECOVERY_MS_MAX => {}
        Some(ms) => outcome.violation(format!(
            "the first write after the heal succeeded only after {ms} ms (bound {WRITE_RECOVERY_MS_MAX} ms)"
        )),
        None => outcome.violation("no write succeeded after the heal".into()),
    }
    outcome
}
