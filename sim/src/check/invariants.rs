//! No double booking and no pool over capacity, at any sampled moment, on any replica:
//! `StateMachine::check_invariants` (a seat is in at most one active hold or booking and
//! its state names it; `held + booked <= capacity` with both equal to recounts; summaries
//! equal recounts) run on every running node between simulation steps and at the end.

use holdfast_statemachine::StateMachine;

use super::CheckOutcome;

/// Accumulates the checks made during a run.
#[derive(Debug)]
pub struct InvariantSampler {
    /// Every sample so far: one checked per sampled state, a violation per broken one.
    pub outcome: CheckOutcome,
}

impl Default for InvariantSampler {
    fn default() -> Self {
        InvariantSampler {
            outcome: CheckOutcome::new("no double booking, pools within capacity"),
        }
    }
}

impl InvariantSampler {
    /// Checks one replica's state at sim time `at_ms`.
    pub fn sample(&mut self, node_id: u64, at_ms: u64, machine: &StateMachine) {
        self.outcome.checked += 1;
        if let Err(violation) = machine.check_invariants() {
            self.outcome
                .violation(format!("node {node_id} at {at_ms} ms: {violation}"));
        }
    }
}
