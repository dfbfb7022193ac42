//! Charges between the provider and the log: a charge never stands without a booking.
//!
//! The confirm handler charges first and proposes the `Confirm` second. When that proposal
//! does not come back with an answer — no leader, a full queue, a commit that timed out, a
//! full idempotency table — the charge is already made and the client may never retry.
//! [`ChargeResolver`] takes such a charge over: it keeps proposing the very same proposal
//! (same request id, same payment record) with capped backoff until the state machine
//! answers. The state machine resolves a hold at most once and remembers the request id, so
//! a repeat is harmless; its answer is either the booking or, when the hold ended
//! meanwhile, a `ConfirmRefused` with the refund owed recorded — both account for the
//! charge. A client retry with the same Idempotency-Key meanwhile gets the same answer.
//!
//! **Bounded.** A confirm takes a slot ([`ChargeResolver::reserve`]) before it charges and
//! holds it until its charge is accounted for; with every slot taken a new confirm is
//! refused with `503 OVERLOADED` before anything is charged. A slot costs one proposal.
//!
//! **A node that stops** while it holds a charge (a crash, a SIGTERM, a lost machine) is
//! covered by the charge intent the confirm recorded in the replicated state before it
//! called the provider (`holdfast_statemachine::ChargeIntent`). The leader's reconciler
//! ([`reconcile_charge_intents`], run by the refund worker) takes every intent older than
//! `intent_reconcile_after` — longer than any charge and commit may take — and asks the
//! provider for the charge made under its key: found, it proposes the confirm with it (the
//! booking, or the refund owed when the hold ended meanwhile); not found, it drops the
//! intent; no answer, it asks again on the next pass. An intent names its provider; one
//! made through another provider than the leader's is left for a leader that has it, with a
//! warning.
//!
//! The remaining window: a provider that makes a charge more than
//! `intent_reconcile_after` after it was asked, for a node that stopped meanwhile. The
//! provider's own call timeout (10 s by default) keeps a live node from asking that late.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use holdfast_statemachine::{ChargeIntent, Command, Outcome, PaymentRecord, Rejection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::payment::{Charge, PaymentProvider, RefundError, RefundReceipt, RefundRequest};
use crate::replica::{self, CommittedOutcome, NodeError, Proposal, Replica};

/// Confirms at once between charge and answer, by default.
pub const CHARGES_IN_FLIGHT_MAX_DEFAULT: usize = 4_096;
/// First wait before a handed-over proposal is tried again.
const RETRY_BACKOFF_FIRST: Duration = Duration::from_millis(50);
/// Longest wait between tries.
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Charges made whose confirm has not been answered yet; see the module documentation.
pub struct ChargeResolver {
    replica: Arc<dyn Replica>,
    slots: Arc<Semaphore>,
    unresolved: Arc<AtomicU64>,
}

/// A reserved slot: held from before the charge until the charge is accounted for.
pub struct ChargeSlot {
    _permit: OwnedSemaphorePermit,
}

impl ChargeResolver {
    /// A resolver over `replica` with `in_flight_max` slots.
    pub fn new(replica: Arc<dyn Replica>, in_flight_max: usize) -> ChargeResolver {
        ChargeResolver {
            replica,
            slots: Arc::new(Semaphore::new(in_flight_max.max(1))),
            unresolved: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A slot for one confirm, or `OVERLOADED` (nothing is charged then).
    pub fn reserve(&self) -> Result<ChargeSlot, NodeError> {
        match self.slots.clone().try_acquire_owned() {
            Ok(permit) => Ok(ChargeSlot { _permit: permit }),
            Err(_) => Err(NodeError::Overloaded {
                message: "too many confirms are between charge and commit; retry shortly".into(),
            }),
        }
    }

    /// Takes over a charged proposal that got no answer: proposes it again until the state
    /// machine answers, then releases `slot`. Returns at once.
    pub fn hand_over(&self, slot: ChargeSlot, proposal: Proposal, payment_id: String) {
        tracing::warn!(
            %payment_id,
            request_id = proposal.request_id.as_deref().unwrap_or(""),
            "charged but the confirm got no answer; proposing it again until it does"
        );
        let unresolved = Unresolved::count(Arc::clone(&self.unresolved), payment_id);
        let replica = Arc::clone(&self.replica);
        tokio::spawn(async move {
            resolve(&*replica, proposal, &unresolved.payment_id).await;
            unresolved.resolved();
            drop(slot);
        });
    }
}

/// Proposes `proposal` again, with capped backoff, until the state machine answers it.
async fn resolve(replica: &dyn Replica, proposal: Proposal, payment_id: &str) {
    let mut backoff = RETRY_BACKOFF_FIRST;
    let mut attempts: u64 = 0;
    loop {
        tokio::time::sleep(backoff).await;
        attempts += 1;
        match replica::propose_one(replica, proposal.clone()).await {
            Ok(committed) if is_answer(&committed) => {
                tracing::info!(
                    %payment_id,
                    attempts,
                    outcome = outcome_name(&committed.outcome),
                    index = committed.index,
                    "charge accounted for"
                );
                return;
            }
            Ok(_) | Err(_) => backoff = (backoff * 2).min(RETRY_BACKOFF_MAX),
        }
    }
}

/// Whether a committed outcome accounts for the charge (anything but a table that turned
/// the request away before applying it).
pub fn is_answer(committed: &CommittedOutcome) -> bool {
    !matches!(
        committed.outcome,
        Outcome::Rejected(Rejection::IdempotencyTableFull { .. })
    )
}

fn outcome_name(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Confirmed(_) => "confirmed",
        Outcome::ConfirmRefused { .. } => "refund recorded",
        _ => "rejected",
    }
}

/// One charge in the unresolved count for as long as it lives; names the charge if it is
/// dropped unresolved (the node is stopping).
struct Unresolved {
    count: Arc<AtomicU64>,
    payment_id: String,
    done: bool,
}

impl Unresolved {
    fn count(count: Arc<AtomicU64>, payment_id: String) -> Unresolved {
        let now = count.fetch_add(1, Ordering::Relaxed) + 1;
        crate::metrics::set_charges_unresolved(now);
        Unresolved {
            count,
            payment_id,
            done: false,
        }
    }
}

impl Unresolved {
    /// The charge is accounted for: it leaves the count quietly.
    fn resolved(mut self) {
        self.done = true;
    }
}

impl Drop for Unresolved {
    fn drop(&mut self) {
        let left = self.count.fetch_sub(1, Ordering::Relaxed) - 1;
        crate::metrics::set_charges_unresolved(left);
        if !self.done {
            tracing::error!(
                payment_id = %self.payment_id,
                "stopping with a charge whose confirm never got an answer: reconcile it with the provider"
            );
        }
    }
}

/// Charge intents one reconciler pass looks at, at most.
pub const INTENTS_PER_PASS_MAX: usize = 20;
/// Longest wait for the provider's answer about one intent.
pub(crate) const INTENT_CALL_TIMEOUT_MAX: Duration = Duration::from_secs(10);

/// One pass of the leader's reconciler (see the module documentation): settles the charge
/// intents recorded at least `reconcile_after` ago, at most [`INTENTS_PER_PASS_MAX`] of
/// them in key order after `cursor`, each provider call within `call_timeout`. Moves
/// `cursor` past them (back to the start after the last), so that intents it cannot settle
/// yet (a provider that does not answer, another provider's) never hide the others.
/// Returns how many it settled. Does nothing on a node that does not lead.
pub async fn reconcile_charge_intents(
    replica: &dyn Replica,
    payments: &dyn PaymentProvider,
    reconcile_after: Duration,
    call_timeout: Duration,
    cursor: &mut Option<String>,
) -> usize {
    let cluster_ms = replica.cluster_time_ms();
    let after_ms = reconcile_after.as_millis() as u64;
    let (intents, meta) = replica::read_now(replica, |machine| {
        let now_ms = machine.now_ms().max(cluster_ms);
        if machine.charge_intents_len() == 0 {
            return Vec::new();
        }
        machine.charge_intents_recorded_by(
            now_ms.saturating_sub(after_ms),
            cursor.as_deref(),
            INTENTS_PER_PASS_MAX,
        )
    });
    *cursor = if intents.len() < INTENTS_PER_PASS_MAX {
        None
    } else {
        intents.last().map(|intent| intent.charge_key.clone())
    };
    if intents.is_empty() || meta.leader_id != Some(meta.node_id) {
        return 0;
    }
    let call_timeout = call_timeout.min(INTENT_CALL_TIMEOUT_MAX);
    let mut settled = 0;
    for intent in intents {
        let outcome = settle_intent(replica, payments, call_timeout, &intent).await;
        settled += usize::from(matches!(outcome, "booked" | "refunded" | "dropped"));
        metrics::counter!(crate::metrics::CHARGE_INTENTS_RECONCILED_TOTAL, "outcome" => outcome)
            .increment(1);
    }
    settled
}

/// Runs [`reconcile_charge_intents`] every `check_interval` until `shutdown` turns true:
/// the refund worker starts it beside itself, so that slow provider answers about intents
/// never hold refunds back.
pub async fn run_charge_reconciler(
    replica: Arc<dyn Replica>,
    payments: Arc<dyn PaymentProvider>,
    config: crate::refunds::RefundWorkerConfig,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut interval = crate::periodic::interval(config.check_interval);
    let mut cursor = None;
    while crate::periodic::next_tick(&mut interval, &mut shutdown).await {
        tokio::select! {
            _ = reconcile_charge_intents(
                &*replica,
                &*payments,
                config.intent_reconcile_after,
                config.call_timeout,
                &mut cursor,
            ) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Settles one intent; the metric label of what happened.
async fn settle_intent(
    replica: &dyn Replica,
    payments: &dyn PaymentProvider,
    call_timeout: Duration,
    intent: &ChargeIntent,
) -> &'static str {
    let key = intent.charge_key.as_str();
    if intent.provider != payments.name() {
        tracing::warn!(
            charge_key = key,
            provider = %intent.provider,
            "a charge intent of another payment provider is left for a leader that has it"
        );
        return "unknown";
    }
    let found = match tokio::time::timeout(call_timeout, payments.find_charge(key)).await {
        Ok(Ok(found)) => found,
        Ok(Err(error)) => {
            tracing::warn!(charge_key = key, %error, "could not ask the provider for an intent's charge");
            return "unknown";
        }
        Err(_) => return "unknown",
    };
    let drop_intent = Proposal {
        request_id: None,
        command: Command::DropChargeIntent {
            charge_key: intent.charge_key.clone(),
        },
    };
    let proposal = match found {
        Some(charge) => {
            let payment = PaymentRecord {
                provider: intent.provider.clone(),
                payment_id: charge.payment_id.clone(),
                amount: charge.amount,
            };
            if !payment.is_recordable() {
                // Given back through the provider, then the intent is dropped.
                let label = match refund_unrecordable(payments, key, &charge, call_timeout).await {
                    Ok(_) => "refunded_unrecordable",
                    Err(RefundError::Unavailable { .. }) => return "unknown",
                    Err(RefundError::Refused { .. }) => "unrecordable_refund_refused",
                };
                return match replica::propose_one(replica, drop_intent).await {
                    Ok(_) => label,
                    Err(_) => "not_committed",
                };
            }
            Proposal {
                request_id: Some(intent.charge_key.clone()),
                command: Command::Confirm {
                    hold_id: intent.hold_id.clone(),
                    payment,
                },
            }
        }
        None => drop_intent,
    };
    match replica::propose_one(replica, proposal).await {
        Ok(committed) => {
            let label = match &committed.outcome {
                Outcome::Confirmed(_) => "booked",
                Outcome::ConfirmRefused { .. } => "refunded",
                Outcome::ChargeIntentDropped { .. } => "dropped",
                _ => "not_committed",
            };
            tracing::info!(charge_key = key, hold_id = %intent.hold_id, outcome = label, index = committed.index, "a charge intent left by a stopped confirm was settled");
            label
        }
        Err(error) => {
            tracing::warn!(charge_key = key, %error, "could not commit a charge intent's settlement");
            "not_committed"
        }
    }
}

/// The refund id under which an unrecordable charge is given back: derived from the
/// charge's key, so that every attempt (the confirm, its retries, the reconciler on any
/// leader) asks the provider for the same refund, which it makes once.
fn unrecordable_refund_id(charge_key: &str) -> String {
    format!("unrecordable-{charge_key}")
}

/// Gives back, through the provider itself, a charge whose answer the state cannot record
/// (a payment id that is empty, longer than 256 bytes or holds control characters; see
/// `PaymentRecord::is_recordable`): a confirm with it would be refused without recording a
/// refund, so the money would be neither booked nor owed back. Logged at `error` (the
/// provider answered something no real charge has), and within `timeout`.
pub(crate) async fn refund_unrecordable(
    payments: &dyn PaymentProvider,
    charge_key: &str,
    charge: &Charge,
    timeout: Duration,
) -> Result<RefundReceipt, RefundError> {
    let request = RefundRequest {
        refund_id: unrecordable_refund_id(charge_key),
        payment_id: charge.payment_id.clone(),
        amount: charge.amount,
        currency: charge.currency.clone(),
    };
    let refunded = match tokio::time::timeout(timeout, payments.refund(request)).await {
        Ok(refunded) => refunded,
        Err(_) => Err(RefundError::Unavailable {
            message: format!("no answer within {timeout:?}"),
        }),
    };
    let payment_id: String = charge.payment_id.chars().take(64).collect();
    match &refunded {
        Ok(receipt) => tracing::error!(
            charge_key,
            payment_id,
            payment_id_bytes = charge.payment_id.len(),
            provider_refund_id = %receipt.provider_refund_id,
            "the payment provider answered a charge whose payment id the cluster cannot record; it was refunded"
        ),
        Err(error) => tracing::error!(
            charge_key,
            payment_id,
            payment_id_bytes = charge.payment_id.len(),
            %error,
            "the payment provider answered a charge whose payment id the cluster cannot record, and refunding it failed"
        ),
    }
    refunded
}
