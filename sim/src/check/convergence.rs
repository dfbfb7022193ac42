//! All replicas converge: after the faults stop, every running replica applies the same
//! log up to the same index and ends with byte-identical state (compared by a hash of the
//! snapshot bytes).

use super::{CheckOutcome, ReplicaState};

/// The xxh3 hash of a replica's snapshot bytes.
pub fn state_hash(replica: &ReplicaState) -> u64 {
    xxhash_rust::xxh3::xxh3_64(&replica.machine.snapshot_bytes())
}

/// Checks that `expected_nodes` replicas (the members) are running, and that every one of
/// `replicas` has the applied index and state hash of the first.
pub fn check(replicas: &[ReplicaState], expected_nodes: usize) -> CheckOutcome {
    let mut outcome = CheckOutcome::new("replicas converge to identical state");
    outcome.checked = replicas.len();
    if replicas.len() < expected_nodes {
        outcome.violation(format!(
            "only {} of {expected_nodes} members are running at the end",
            replicas.len()
        ));
    }
    let Some(first) = replicas.first() else {
        return outcome;
    };
    let first_hash = state_hash(first);
    for replica in &replicas[1..] {
        let hash = state_hash(replica);
        if replica.applied_index != first.applied_index || hash != first_hash {
            outcome.violation(format!(
                "node {} applied {} with state {hash:016x}, node {} applied {} with state {first_hash:016x}",
                replica.node_id, replica.applied_index, first.node_id, first.applied_index
            ));
        }
    }
    outcome
}
