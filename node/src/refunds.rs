//! The refund worker: on the leader, every interval, pays the refunds that are due through
//! the payment provider and commits the result through Raft. Beside it runs the settlement
//! of charge intents that confirms left behind when they stopped (see [`crate::charges`]).
//!
//! - **Idempotent by refund id.** The provider is asked with the refund id as its
//!   idempotency key, so asking again — in the next pass, after a lost answer, from a new
//!   leader while the old one's call was in flight — never pays twice.
//! - **Paid:** `MarkRefunded` (a refund that is no longer pending was settled by someone
//!   else; nothing to do). **Not paid:** `RefundAttemptFailed` with the attempt's number, so
//!   a report counts once whoever sends it; a refusal for good, or the last attempt allowed,
//!   gives up (`FAILED` with the provider's reason).
//! - **Retries** wait `retry_base · 2^(attempts − 1)` (at most `retry_max`), half of it
//!   jittered, counted from the failed attempt's time in the state, so a new leader waits
//!   exactly as the old one would have.
//! - **Leader changes:** the worker keeps nothing but its settings; each pass reads the
//!   state (pending refunds, attempts, their times), so a new leader just continues.
//! - **Bounded:** at most `refunds_per_pass_max` refunds per pass, `concurrent_calls_max`
//!   provider calls at once, each within `call_timeout`.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use holdfast_statemachine::limits::{REFUNDS_PAGE_MAX, TEXT_BYTES_MAX};
use holdfast_statemachine::{Command, Outcome, RefundStatus, RefundView, Rejection};
use tokio::sync::watch;

use crate::payment::{PaymentProvider, RefundError, RefundRequest};
use crate::replica::{self, NodeError, Proposal, Replica};

/// Refunds a pass looks at at most while it looks for due ones.
pub const REFUNDS_SCANNED_PER_PASS_MAX: usize = 10_000;

/// Settings of the refund worker.
#[derive(Clone, Debug)]
pub struct RefundWorkerConfig {
    /// How often the leader looks for refunds to pay.
    pub check_interval: Duration,
    /// Refunds paid (or tried) by one pass at most.
    pub refunds_per_pass_max: usize,
    /// Provider calls in flight at once.
    pub concurrent_calls_max: usize,
    /// Attempts before a refund the provider keeps failing is given up (`FAILED`).
    pub attempts_max: u32,
    /// Wait after the first failed attempt; doubled after each further one.
    pub retry_base: Duration,
    /// Longest wait between two attempts.
    pub retry_max: Duration,
    /// Longest wait for one provider call (the provider's own timeouts apply as well).
    pub call_timeout: Duration,
    /// Age of a charge intent after which the leader settles it itself: its confirm must
    /// have stopped (see [`crate::charges`]). Longer than any charge and commit may take.
    pub intent_reconcile_after: Duration,
}

impl Default for RefundWorkerConfig {
    fn default() -> Self {
        RefundWorkerConfig {
            check_interval: Duration::from_secs(1),
            refunds_per_pass_max: 100,
            concurrent_calls_max: 8,
            attempts_max: 8,
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(600),
            call_timeout: Duration::from_secs(30),
            intent_reconcile_after: Duration::from_secs(60),
        }
    }
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RefundPass {
    /// Refunds that were due and tried.
    pub tried: usize,
    /// Committed as `REFUNDED`.
    pub paid: usize,
    /// Failed attempts committed (still pending, to be tried again).
    pub retried: usize,
    /// Committed as `FAILED`.
    pub given_up: usize,
}

/// How long after its `attempts`-th failed attempt a refund is due again: exponential in the
/// attempts, capped, with half of it jittered by a hash of the refund id and the attempt
/// (the same on every pass and every node, so the due time does not move between passes).
pub fn retry_delay(config: &RefundWorkerConfig, refund_id: &str, attempts: u32) -> Duration {
    if attempts == 0 {
        return Duration::ZERO;
    }
    let doublings = (attempts - 1).min(30);
    let full = config
        .retry_base
        .saturating_mul(1u32 << doublings)
        .min(config.retry_max);
    let half_ms = (full.as_millis() / 2) as u64;
    let seed = xxhash_rust::xxh3::xxh3_64_with_seed(refund_id.as_bytes(), u64::from(attempts));
    let jitter_ms = if half_ms == 0 {
        0
    } else {
        seed % (half_ms + 1)
    };
    Duration::from_millis(half_ms + jitter_ms)
}

fn is_due(config: &RefundWorkerConfig, refund: &RefundView, now_ms: u64) -> bool {
    match refund.last_attempt_at_ms {
        None => true,
        Some(last_ms) => {
            let delay = retry_delay(config, &refund.refund_id, refund.attempts);
            last_ms.saturating_add(delay.as_millis() as u64) <= now_ms
        }
    }
}

/// The pending refunds that are due at `now_ms`, oldest first, at most `limit`.
fn due_refunds(
    machine: &holdfast_statemachine::StateMachine,
    config: &RefundWorkerConfig,
    now_ms: u64,
    limit: usize,
) -> Vec<RefundView> {
    let mut due = Vec::new();
    let mut after: Option<String> = None;
    let mut scanned = 0;
    while due.len() < limit && scanned < REFUNDS_SCANNED_PER_PASS_MAX {
        let page = machine.refunds_page(
            Some(RefundStatus::Pending),
            after.as_deref(),
            REFUNDS_PAGE_MAX,
        );
        scanned += page.refunds.len();
        due.extend(
            page.refunds
                .into_iter()
                .filter(|refund| is_due(config, refund, now_ms)),
        );
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    due.truncate(limit);
    due
}

/// A provider's reason, made fit for the state machine's text rule (bounded, no control
/// characters).
fn reason_text(error: &RefundError) -> String {
    let mut reason = String::new();
    for character in error.to_string().chars().filter(|c| !c.is_control()) {
        if reason.len() + character.len_utf8() > TEXT_BYTES_MAX {
            break;
        }
        reason.push(character);
    }
    reason
}

enum Settled {
    Paid,
    Retried,
    GivenUp,
    /// Someone else settled it meanwhile, or the report was stale.
    Nothing,
}

/// Pays one refund and commits what happened.
async fn settle(
    replica: &dyn Replica,
    payments: &dyn PaymentProvider,
    config: &RefundWorkerConfig,
    refund: RefundView,
) -> Result<Settled, NodeError> {
    let request = RefundRequest {
        refund_id: refund.refund_id.clone(),
        payment_id: refund.payment_id.clone(),
        amount: refund.amount,
        currency: refund.currency.clone(),
    };
    let result = match tokio::time::timeout(config.call_timeout, payments.refund(request)).await {
        Ok(result) => result,
        Err(_) => Err(RefundError::Unavailable {
            message: "the provider did not answer in time".into(),
        }),
    };
    let (command, settled) = match result {
        Ok(_) => (
            Command::MarkRefunded {
                refund_id: refund.refund_id.clone(),
            },
            Settled::Paid,
        ),
        Err(error) => {
            let attempt = refund.attempts.saturating_add(1);
            let give_up = matches!(error, RefundError::Refused { .. })
                || attempt >= config.attempts_max.max(1);
            tracing::warn!(refund_id = %refund.refund_id, attempt, give_up, %error, "a refund was not paid");
            let command = Command::RefundAttemptFailed {
                refund_id: refund.refund_id.clone(),
                attempt,
                reason: reason_text(&error),
                give_up,
            };
            (
                command,
                if give_up {
                    Settled::GivenUp
                } else {
                    Settled::Retried
                },
            )
        }
    };
    let committed = replica::propose_one(
        replica,
        Proposal {
            request_id: None,
            command,
        },
    )
    .await?;
    Ok(match committed.outcome {
        Outcome::RefundMarked(_) | Outcome::RefundAttemptRecorded(_) => settled,
        Outcome::Rejected(
            Rejection::RefundNotPending { .. } | Rejection::RefundAttemptStale { .. },
        ) => Settled::Nothing,
        other => {
            tracing::warn!(refund_id = %refund.refund_id, ?other, "a refund's result was refused");
            Settled::Nothing
        }
    })
}

/// One pass: if this node leads, pays the refunds that are due (at most
/// `refunds_per_pass_max`) and commits each result.
pub async fn pay_due_refunds(
    replica: &dyn Replica,
    payments: &dyn PaymentProvider,
    config: &RefundWorkerConfig,
) -> RefundPass {
    let cluster_ms = replica.cluster_time_ms();
    let limit = config.refunds_per_pass_max.max(1);
    let (due, meta) = replica::read_now(replica, |machine| {
        let now_ms = machine.now_ms().max(cluster_ms);
        due_refunds(machine, config, now_ms, limit)
    });
    let mut pass = RefundPass::default();
    if due.is_empty() || meta.leader_id != Some(meta.node_id) {
        return pass;
    }
    pass.tried = due.len();
    let mut results = futures::stream::iter(due)
        .map(|refund| settle(replica, payments, config, refund))
        .buffer_unordered(config.concurrent_calls_max.max(1));
    while let Some(result) = results.next().await {
        let outcome = match result {
            Ok(Settled::Paid) => {
                pass.paid += 1;
                "paid"
            }
            Ok(Settled::Retried) => {
                pass.retried += 1;
                "retried"
            }
            Ok(Settled::GivenUp) => {
                pass.given_up += 1;
                "failed"
            }
            Ok(Settled::Nothing) => "settled_elsewhere",
            Err(error) => {
                // Not committed (no leader, overload): the refund stays pending and the next
                // pass, here or on the next leader, tries it again.
                tracing::warn!(%error, "could not commit a refund's result");
                "not_committed"
            }
        };
        metrics::counter!(crate::metrics::REFUNDS_TOTAL, "outcome" => outcome).increment(1);
    }
    pass
}

/// Runs [`pay_due_refunds`] every `check_interval` until `shutdown` turns true.
pub async fn run_refund_worker(
    replica: Arc<dyn Replica>,
    payments: Arc<dyn PaymentProvider>,
    config: RefundWorkerConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    // Charges whose confirm stopped between the provider and the log, beside the refunds.
    tokio::spawn(crate::charges::run_charge_reconciler(
        Arc::clone(&replica),
        Arc::clone(&payments),
        config.clone(),
        shutdown.clone(),
    ));
    let mut interval = crate::periodic::interval(config.check_interval);
    while crate::periodic::next_tick(&mut interval, &mut shutdown).await {
        // A full pass means more may be due: keep going, one bounded pass at a time.
        loop {
            let pass = tokio::select! {
                pass = pay_due_refunds(&*replica, &*payments, &config) => pass,
                _ = shutdown.changed() => return,
            };
            if pass.tried < config.refunds_per_pass_max.max(1) {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_are_capped_and_jittered_within_half() {
        let config = RefundWorkerConfig {
            retry_base: Duration::from_millis(1_000),
            retry_max: Duration::from_millis(10_000),
            ..RefundWorkerConfig::default()
        };
        assert_eq!(retry_delay(&config, "r_1", 0), Duration::ZERO);
        for attempts in 1..40 {
            let full = (1_000u64 << (attempts - 1).min(20)).min(10_000);
            let delay = retry_delay(&config, "r_1", attempts).as_millis() as u64;
            assert!(
                delay >= full / 2 && delay <= full,
                "{attempts}: {delay} of {full}"
            );
            assert_eq!(
                retry_delay(&config, "r_1", attempts),
                retry_delay(&config, "r_1", attempts),
                "the same refund and attempt wait the same"
            );
        }
    }

    #[test]
    fn reasons_fit_the_state_machine_text_rule() {
        let error = RefundError::Refused {
            reason: format!("bad\n{}", "é".repeat(400)),
        };
        let reason = reason_text(&error);
        assert!(reason.len() <= TEXT_BYTES_MAX);
        assert!(!reason.chars().any(char::is_control));
    }
}
