//! Charge intents: a charge about to be made, recorded in the replicated state before the
//! payment provider is called.
//!
//! The node records an intent (`RecordChargeIntent`) under the charge's idempotency key,
//! then charges with that key, then proposes the `Confirm` under the same key as its
//! request id. Applying that confirm (whatever it answers: the booking, or a refund owed)
//! resolves the intent. An intent that stays is a charge whose node stopped between
//! the provider and the log (a crash, a SIGTERM, a lost leader): the leader's reconciler
//! asks the provider for the charge made under the key, and proposes the confirm with it
//! (the booking, or the refund owed) or, when the provider has none, drops the intent
//! (`DropChargeIntent`). So no charge is left without a booking or a refund, whichever
//! node made it.
//!
//! Recording the intent also checks the hold as of the log's order, and takes the amount and
//! currency to charge from it: a hold that ended is refused before anything is charged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::inventory::validate_text;
use crate::limits::{CHARGE_INTENTS_MAX, REQUEST_ID_BYTES_MAX};
use crate::outcome::{Outcome, Rejection};
use crate::state::HOLD_ID_PREFIX;
use crate::StateMachine;

/// A charge about to be made for a hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeIntent {
    /// The charge's idempotency key at the provider, and the confirm's request id.
    pub charge_key: String,
    /// The hold being paid for, spelled as the state spells hold ids.
    pub hold_id: String,
    /// The provider that is charging (`PaymentRecord::provider`).
    pub provider: String,
    /// Minor units, the hold's amount when the intent was recorded.
    pub amount: u64,
    /// The ISO 4217 code of the hold's event, the currency to charge in.
    pub currency: String,
    /// Cluster time of the entry that recorded it.
    pub recorded_at_ms: u64,
}

/// Charge intents by key (canonical state, serialised after the restore in progress).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChargeIntents {
    pub(crate) by_key: BTreeMap<String, ChargeIntent>,
}

impl StateMachine {
    /// Records that `provider` is about to charge for `hold_id` under `charge_key`. The hold
    /// must be live; the answer names the amount and currency to charge. Recording a key
    /// that is recorded already answers that intent.
    pub(crate) fn record_charge_intent(
        &mut self,
        charge_key: &str,
        hold_id: &str,
        provider: &str,
    ) -> Result<Outcome, Rejection> {
        if charge_key.is_empty() || charge_key.len() > REQUEST_ID_BYTES_MAX {
            return Err(Rejection::invalid(
                "charge_key",
                format!("must be 1 to {REQUEST_ID_BYTES_MAX} bytes"),
            ));
        }
        validate_text("provider", provider)?;
        if let Some(intent) = self.charge_intents.by_key.get(charge_key) {
            // The key of another hold's charge (a client reusing its Idempotency-Key).
            if self.ids.parse(HOLD_ID_PREFIX, hold_id)
                != self.ids.parse(HOLD_ID_PREFIX, &intent.hold_id)
            {
                return Err(Rejection::IdempotencyKeyReused {
                    request_id: charge_key.to_string(),
                });
            }
            return Ok(Outcome::ChargeIntentRecorded {
                intent: intent.clone(),
                new: false,
            });
        }
        if self.charge_intents.by_key.len() >= CHARGE_INTENTS_MAX {
            return Err(Rejection::LimitReached {
                what: "charge intents".into(),
                max: CHARGE_INTENTS_MAX as u64,
            });
        }
        let id = self.live_hold(hold_id)?;
        let hold = &self.holds[&id];
        let intent = ChargeIntent {
            charge_key: charge_key.to_string(),
            hold_id: self.ids.format(HOLD_ID_PREFIX, id),
            provider: provider.to_string(),
            amount: hold.amount,
            currency: self.events[&*hold.event_id].currency.clone(),
            recorded_at_ms: self.now_ms,
        };
        self.charge_intents
            .by_key
            .insert(charge_key.to_string(), intent.clone());
        Ok(Outcome::ChargeIntentRecorded { intent, new: true })
    }

    /// Drops the intent under `charge_key`: its provider made no charge under the key.
    pub(crate) fn drop_charge_intent(&mut self, charge_key: &str) -> Result<Outcome, Rejection> {
        let dropped = self.charge_intents.by_key.remove(charge_key).is_some();
        Ok(Outcome::ChargeIntentDropped {
            charge_key: charge_key.to_string(),
            dropped,
        })
    }

    /// The confirm proposed under `request_id` was answered: its charge is accounted for.
    pub(crate) fn resolve_charge_intent(&mut self, request_id: &str) {
        if !self.charge_intents.by_key.is_empty() {
            self.charge_intents.by_key.remove(request_id);
        }
    }

    /// Charge intents recorded at or before `recorded_up_to_ms`, in key order after the key
    /// `after` (from the first without it), at most `limit`: the ones whose charge should
    /// long have been confirmed. A reconciler walks them with `after` as its cursor, so
    /// intents it cannot settle yet do not hide the ones behind them.
    pub fn charge_intents_recorded_by(
        &self,
        recorded_up_to_ms: u64,
        after: Option<&str>,
        limit: usize,
    ) -> Vec<ChargeIntent> {
        use std::ops::Bound;
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.charge_intents
            .by_key
            .range::<str, _>((start, Bound::Unbounded))
            .map(|(_, intent)| intent)
            .filter(|intent| intent.recorded_at_ms <= recorded_up_to_ms)
            .take(limit)
            .cloned()
            .collect()
    }

    /// How many charge intents are recorded.
    pub fn charge_intents_len(&self) -> usize {
        self.charge_intents.by_key.len()
    }

    /// The intent under `charge_key`, if recorded.
    pub fn charge_intent(&self, charge_key: &str) -> Option<&ChargeIntent> {
        self.charge_intents.by_key.get(charge_key)
    }
}
