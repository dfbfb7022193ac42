//! No lost confirmed booking: every booking a client was told about (a `200` confirm) is
//! present, at the end, on every replica — confirmed, or cancelled by a later call.

use crate::history::{History, OpResult};

use super::{CheckOutcome, ReplicaState};

/// Checks that every booking id a confirm answered with exists on each of `replicas`
/// (whatever its status).
pub fn check(history: &History, replicas: &[ReplicaState]) -> CheckOutcome {
    let mut outcome = CheckOutcome::new("every acknowledged confirm on every replica");
    for op in &history.ops {
        let OpResult::Confirmed { booking_id } = &op.result else {
            continue;
        };
        for replica in replicas {
            outcome.checked += 1;
            if replica.machine.booking_by_id(booking_id).is_none() {
                outcome.violation(format!(
                    "booking {booking_id} (acknowledged to op #{}, at {} us) is missing on node {}",
                    op.id,
                    op.completed.unwrap_or_default(),
                    replica.node_id
                ));
            }
        }
    }
    outcome
}
