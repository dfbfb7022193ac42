//! Refunds against the provider: every refund a replica records as `REFUNDED` was paid at
//! the (shared, sandbox) provider, none was given up (the sandbox never refuses a refund),
//! and the provider paid no refund that the replicas do not know. The provider pays a
//! refund id at most once (it answers a repeated id with the first refund), so a refund
//! asked for twice — by two leaders, or again after a lost answer — is still paid once.

use holdfast_node::SandboxProvider;
use holdfast_statemachine::RefundStatus;

use super::{CheckOutcome, ReplicaState};

/// Compares every replica's refunds with what the sandbox `provider` paid: a `REFUNDED`
/// refund must have been paid, none may have `FAILED`, and the provider may have paid no
/// more refunds than the best-informed replica knows.
pub fn check(replicas: &[ReplicaState], provider: &SandboxProvider) -> CheckOutcome {
    let mut outcome = CheckOutcome::new("every refund marked paid was paid once at the provider");
    let mut known_max = 0u64;
    for replica in replicas {
        let mut known = 0u64;
        let mut after: Option<String> = None;
        loop {
            let page = replica.machine.refunds_page(None, after.as_deref(), 100);
            for refund in &page.refunds {
                known += 1;
                outcome.checked += 1;
                match refund.status {
                    RefundStatus::Refunded if !provider.refunded(&refund.refund_id) => {
                        outcome.violation(format!(
                            "refund {} is REFUNDED on node {} but the provider never paid it",
                            refund.refund_id, replica.node_id
                        ));
                    }
                    RefundStatus::Failed => outcome.violation(format!(
                        "refund {} FAILED on node {} ({:?}), though the sandbox pays every refund",
                        refund.refund_id, replica.node_id, refund.reason
                    )),
                    _ => {}
                }
            }
            match page.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        known_max = known_max.max(known);
    }
    // A lagging replica may know fewer refunds; the most up-to-date one knows every refund
    // the provider could have been asked for (the worker pays only committed refunds).
    if provider.refunds_made() > known_max {
        outcome.violation(format!(
            "the provider paid {} refunds, the replicas know of {known_max}",
            provider.refunds_made()
        ));
    }
    outcome
}
