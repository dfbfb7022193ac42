//! The checkers: each takes what a run recorded (the client history, the replicas' states,
//! the leadership timeline) and reports violations. One module per property.

pub mod clock;
pub mod convergence;
pub mod deliveries;
pub mod durability;
pub mod expiry;
pub mod invariants;
pub mod linearizability;
pub mod liveness;
pub mod refunds;

use holdfast_statemachine::StateMachine;
use serde::Serialize;

/// What one checker concluded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CheckOutcome {
    /// The property checked, as one sentence (`"replicas converge to identical state"`).
    pub name: &'static str,
    /// How many things it checked (calls, states, bookings, ...).
    pub checked: usize,
    /// What it found wrong, described; empty when the property holds.
    pub violations: Vec<String>,
}

impl CheckOutcome {
    /// The outcome of checking `name`, with nothing checked and nothing wrong yet.
    pub fn new(name: &'static str) -> CheckOutcome {
        CheckOutcome {
            name,
            ..CheckOutcome::default()
        }
    }

    /// Whether the property held: no violation was recorded.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// Records a violation, keeping at most a few of them (the first are the useful ones).
    pub fn violation(&mut self, description: String) {
        const KEPT_MAX: usize = 8;
        if self.violations.len() < KEPT_MAX {
            self.violations.push(description);
        }
    }
}

/// One replica's state at the end of a run.
#[derive(Clone, Debug)]
pub struct ReplicaState {
    /// The replica's node.
    pub node_id: u64,
    /// Index of the last log entry it applied, 0 before any.
    pub applied_index: u64,
    /// A copy of its state machine as of `applied_index`.
    pub machine: StateMachine,
}

/// Who led, as seen by sampling every node between steps: one entry per change.
#[derive(Clone, Debug, Default)]
pub struct LeadershipTimeline {
    /// (sim time in microseconds, term, leader id) whenever the highest term seen or its
    /// leader changed.
    pub changes: Vec<(u64, u64, Option<u64>)>,
}

impl LeadershipTimeline {
    /// Records what the nodes report now: the highest term any running node is in, and the
    /// leader of that term if one is known.
    pub fn observe(&mut self, at_micros: u64, term: u64, leader: Option<u64>) {
        if self.changes.last().map(|&(_, term, leader)| (term, leader)) != Some((term, leader)) {
            self.changes.push((at_micros, term, leader));
        }
    }

    /// Whether one leader, in one term, led throughout `[from, to]` (microseconds).
    pub fn one_leader_throughout(&self, from: u64, to: u64) -> bool {
        let Some(start) = self.changes.iter().rposition(|&(at, _, _)| at <= from) else {
            return false;
        };
        let (_, _, leader) = self.changes[start];
        leader.is_some() && self.changes[start + 1..].iter().all(|&(at, _, _)| at > to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_leader_throughout_needs_a_known_leader_and_no_change() {
        let mut timeline = LeadershipTimeline::default();
        timeline.observe(0, 1, None);
        timeline.observe(1_000, 1, Some(2));
        timeline.observe(1_010, 1, Some(2));
        timeline.observe(5_000, 2, None);
        timeline.observe(6_000, 2, Some(3));
        assert_eq!(timeline.changes.len(), 4);
        assert!(
            !timeline.one_leader_throughout(500, 2_000),
            "no leader at 500"
        );
        assert!(timeline.one_leader_throughout(1_000, 4_999));
        assert!(
            !timeline.one_leader_throughout(1_000, 5_000),
            "term 2 began at 5000"
        );
        assert!(timeline.one_leader_throughout(6_500, u64::MAX));
    }
}
