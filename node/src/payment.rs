//! The payment seam: a [`PaymentProvider`] charges a customer before the confirm is
//! proposed, and [`SandboxProvider`] is the built-in development provider.
//!
//! **Charges are idempotent on the request id.** The confirm handler passes
//! `"confirm:<Idempotency-Key>"` as [`ChargeRequest::idempotency_key`]; a provider must
//! answer a repeated key with the original [`Charge`] (never charge twice), refuse the key
//! with another request ([`PaymentError::KeyReused`]), and let
//! [`PaymentProvider::find_charge`] tell whether a key was charged. A retried confirm
//! therefore proposes the same `PaymentRecord`, which the state machine recognises as the
//! same request and answers with the original outcome. Real providers (Stripe and the
//! like) offer exactly this through their own idempotency keys.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;

/// What to charge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargeRequest {
    /// The scoped idempotency key (`confirm:<key>`), when the client sent one.
    pub idempotency_key: Option<String>,
    /// The hold being paid for, recorded with the charge.
    pub hold_id: String,
    /// Minor units.
    pub amount: u64,
    /// The hold's ISO 4217 currency code (three upper-case letters, as the event stores it).
    pub currency: String,
    /// `card` (the only method today).
    pub method: String,
    /// The provider's token for the payment instrument.
    pub token: String,
}

/// A successful charge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Charge {
    /// The provider's id of the charge, recorded in the booking's payment and named by a
    /// refund ([`RefundRequest::payment_id`]).
    pub payment_id: String,
    /// The hold the charge paid for ([`ChargeRequest::hold_id`]).
    pub hold_id: String,
    /// The amount charged, in minor units.
    pub amount: u64,
    /// The ISO 4217 currency code of `amount`.
    pub currency: String,
}

/// Why a charge did not happen. Nothing was charged in any of these cases.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// The instrument was declined (`402 PAYMENT_DECLINED`).
    #[error("payment declined: {reason}")]
    Declined {
        /// The provider's explanation, passed to the client in the error's details.
        reason: String,
    },
    /// The token or method is not one the provider knows (`400 INVALID_FIELD`).
    #[error("invalid payment {field}: {reason}")]
    InvalidInstrument {
        /// The request field at fault, as the client names it (`payment.method` or
        /// `payment.token`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The idempotency key was used for a different charge (`409 IDEMPOTENCY_KEY_REUSED`).
    #[error("idempotency key {key} was used for another charge")]
    KeyReused {
        /// The scoped key ([`ChargeRequest::idempotency_key`]) that was reused.
        key: String,
    },
    /// The provider could not be reached (`503 PAYMENT_UNAVAILABLE`); retry.
    #[error("payment provider unavailable: {message}")]
    Unavailable {
        /// What went wrong: no connection, a timeout, an unreadable answer, or the provider's
        /// status and message. It becomes the client's error message.
        message: String,
    },
}

/// Money to give back for a charge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundRequest {
    /// The refund's id (`r_<n>`): the provider's idempotency key, so that paying the same
    /// refund again (another pass, another leader) never pays twice.
    pub refund_id: String,
    /// The charge to refund.
    pub payment_id: String,
    /// Minor units.
    pub amount: u64,
    /// The ISO 4217 currency code of `amount`, the charge's.
    pub currency: String,
}

/// A refund the provider made (or had made already for the same refund id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundReceipt {
    /// The provider's id of the refund.
    pub provider_refund_id: String,
}

/// Why a refund was not made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RefundError {
    /// The provider refused it for good (unknown charge, already refunded elsewhere, a
    /// refund larger than the charge): trying again cannot help.
    #[error("refund refused: {reason}")]
    Refused {
        /// The provider's explanation.
        reason: String,
    },
    /// The provider could not be reached or failed; trying again later may succeed.
    #[error("payment provider unavailable: {message}")]
    Unavailable {
        /// What went wrong: no connection, a timeout, an unreadable answer, or the provider's
        /// status and message.
        message: String,
    },
}

/// A payment provider. Implementations must make [`PaymentProvider::charge`] idempotent on
/// [`ChargeRequest::idempotency_key`] (see the module documentation), and
/// [`PaymentProvider::refund`] idempotent on [`RefundRequest::refund_id`].
#[async_trait]
pub trait PaymentProvider: Send + Sync + 'static {
    /// The provider name recorded in bookings (`PaymentRecord::provider`).
    fn name(&self) -> &str;

    /// Charges, or returns the charge already made for the same idempotency key.
    async fn charge(&self, request: ChargeRequest) -> Result<Charge, PaymentError>;

    /// The charge made for `idempotency_key`, if any.
    async fn find_charge(&self, idempotency_key: &str) -> Result<Option<Charge>, PaymentError>;

    /// Refunds a charge, or returns the refund already made for the same refund id.
    async fn refund(&self, request: RefundRequest) -> Result<RefundReceipt, RefundError>;
}

/// The sandbox token that always succeeds.
pub const SANDBOX_TOKEN_SUCCESS: &str = "tok_visa";
/// The sandbox token that is always declined.
pub const SANDBOX_TOKEN_DECLINED: &str = "tok_declined";
/// Prefix of sandbox tokens that succeed after a delay: `tok_visa_delay_<ms>`, at most
/// [`SANDBOX_DELAY_MS_MAX`]. Lets tests put time between the charge and the confirm.
pub const SANDBOX_TOKEN_DELAY_PREFIX: &str = "tok_visa_delay_";
/// Longest delay a `tok_visa_delay_<ms>` token may ask for.
pub const SANDBOX_DELAY_MS_MAX: u64 = 10_000;
/// Keyed charges the sandbox remembers by default.
pub const SANDBOX_CHARGES_REMEMBERED_DEFAULT: usize = 100_000;

/// The development provider: `tok_visa` succeeds, `tok_visa_delay_<ms>` succeeds after a
/// delay, `tok_declined` is declined, any other token is invalid. Keeps a bounded in-memory
/// map of idempotency key → charge (oldest forgotten first), so a retried confirm on the
/// same node never charges twice. Like a real provider, which keeps keys server-side, a
/// keyed charge's payment id is derived from the key alone, so a retry through another node
/// (or after a restart) names the same charge and the replayed booking refers to it.
pub struct SandboxProvider {
    charges: Mutex<KeyedCharges>,
    /// Refunds made, by refund id (bounded like the charges).
    refunds: Mutex<KeyedRefunds>,
    charges_remembered_max: usize,
    sequence: AtomicU64,
    /// Distinguishes payment ids of different processes.
    instance: u64,
}

#[derive(Default)]
struct KeyedRefunds {
    by_id: HashMap<String, (RefundRequest, RefundReceipt)>,
    order: VecDeque<String>,
    made: u64,
}

#[derive(Default)]
struct KeyedCharges {
    by_key: HashMap<String, (ChargeRequest, Charge)>,
    order: VecDeque<String>,
}

impl Default for SandboxProvider {
    fn default() -> Self {
        SandboxProvider::new(SANDBOX_CHARGES_REMEMBERED_DEFAULT)
    }
}

impl SandboxProvider {
    /// A sandbox remembering at most `charges_remembered_max` keyed charges.
    pub fn new(charges_remembered_max: usize) -> SandboxProvider {
        let instance = crate::replica::wall_clock_ms() ^ u64::from(std::process::id()) << 40;
        SandboxProvider {
            charges: Mutex::new(KeyedCharges::default()),
            refunds: Mutex::new(KeyedRefunds::default()),
            charges_remembered_max: charges_remembered_max.max(1),
            sequence: AtomicU64::new(0),
            instance,
        }
    }

    /// Charges made (successful `charge` calls that were not replays).
    pub fn charges_made(&self) -> u64 {
        self.sequence.load(Ordering::Relaxed)
    }

    /// Refunds made (successful `refund` calls that were not replays).
    pub fn refunds_made(&self) -> u64 {
        self.refunds.lock().expect("sandbox lock poisoned").made
    }

    /// Whether the refund `refund_id` was made (among the refunds it remembers).
    pub fn refunded(&self, refund_id: &str) -> bool {
        self.refunds
            .lock()
            .expect("sandbox lock poisoned")
            .by_id
            .contains_key(refund_id)
    }

    fn new_payment_id(&self, request: &ChargeRequest) -> String {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed) + 1;
        match &request.idempotency_key {
            Some(key) => format!(
                "pay_sbx_{:016x}",
                xxhash_rust::xxh3::xxh3_64(key.as_bytes())
            ),
            None => format!("pay_sbx_{:016x}{sequence}", self.instance),
        }
    }

    fn check_instrument(request: &ChargeRequest) -> Result<(), PaymentError> {
        if request.method != "card" {
            return Err(PaymentError::InvalidInstrument {
                field: "payment.method".into(),
                reason: "the sandbox accepts only \"card\"".into(),
            });
        }
        if let Some(delay) = request.token.strip_prefix(SANDBOX_TOKEN_DELAY_PREFIX) {
            return match delay.parse::<u64>() {
                Ok(delay_ms) if delay_ms <= SANDBOX_DELAY_MS_MAX => Ok(()),
                _ => Err(PaymentError::InvalidInstrument {
                    field: "payment.token".into(),
                    reason: format!(
                        "{SANDBOX_TOKEN_DELAY_PREFIX}<ms> takes 0 to {SANDBOX_DELAY_MS_MAX} ms"
                    ),
                }),
            };
        }
        match request.token.as_str() {
            SANDBOX_TOKEN_SUCCESS => Ok(()),
            SANDBOX_TOKEN_DECLINED => Err(PaymentError::Declined {
                reason: "the card was declined (sandbox token tok_declined)".into(),
            }),
            _ => Err(PaymentError::InvalidInstrument {
                field: "payment.token".into(),
                reason: format!(
                    "unknown sandbox token; use {SANDBOX_TOKEN_SUCCESS} or {SANDBOX_TOKEN_DECLINED}"
                ),
            }),
        }
    }
}

#[async_trait]
impl PaymentProvider for SandboxProvider {
    fn name(&self) -> &str {
        "sandbox"
    }

    async fn charge(&self, request: ChargeRequest) -> Result<Charge, PaymentError> {
        if let Some(delay_ms) = request
            .token
            .strip_prefix(SANDBOX_TOKEN_DELAY_PREFIX)
            .and_then(|delay| delay.parse::<u64>().ok())
        {
            tokio::time::sleep(std::time::Duration::from_millis(
                delay_ms.min(SANDBOX_DELAY_MS_MAX),
            ))
            .await;
        }
        let Some(key) = request.idempotency_key.clone() else {
            SandboxProvider::check_instrument(&request)?;
            return Ok(Charge {
                payment_id: self.new_payment_id(&request),
                hold_id: request.hold_id,
                amount: request.amount,
                currency: request.currency,
            });
        };
        let mut charges = self.charges.lock().expect("sandbox lock poisoned");
        if let Some((first_request, charge)) = charges.by_key.get(&key) {
            if *first_request != request {
                return Err(PaymentError::KeyReused { key });
            }
            return Ok(charge.clone());
        }
        // Declines are not remembered: a retry after one is evaluated afresh.
        SandboxProvider::check_instrument(&request)?;
        let charge = Charge {
            payment_id: self.new_payment_id(&request),
            hold_id: request.hold_id.clone(),
            amount: request.amount,
            currency: request.currency.clone(),
        };
        if charges.order.len() >= self.charges_remembered_max {
            if let Some(oldest) = charges.order.pop_front() {
                charges.by_key.remove(&oldest);
            }
        }
        charges.order.push_back(key.clone());
        charges.by_key.insert(key, (request, charge.clone()));
        Ok(charge)
    }

    async fn find_charge(&self, idempotency_key: &str) -> Result<Option<Charge>, PaymentError> {
        let charges = self.charges.lock().expect("sandbox lock poisoned");
        Ok(charges
            .by_key
            .get(idempotency_key)
            .map(|(_, charge)| charge.clone()))
    }

    /// Refunds any charge once per refund id; the same id with another charge or amount is
    /// refused, as a real provider refuses a reused idempotency key.
    async fn refund(&self, request: RefundRequest) -> Result<RefundReceipt, RefundError> {
        let mut refunds = self.refunds.lock().expect("sandbox lock poisoned");
        if let Some((first, receipt)) = refunds.by_id.get(&request.refund_id) {
            if *first != request {
                return Err(RefundError::Refused {
                    reason: format!(
                        "refund {} was made for another charge or amount",
                        request.refund_id
                    ),
                });
            }
            return Ok(receipt.clone());
        }
        let receipt = RefundReceipt {
            provider_refund_id: format!(
                "re_sbx_{:016x}",
                xxhash_rust::xxh3::xxh3_64(request.refund_id.as_bytes())
            ),
        };
        if refunds.order.len() >= self.charges_remembered_max {
            if let Some(oldest) = refunds.order.pop_front() {
                refunds.by_id.remove(&oldest);
            }
        }
        refunds.made += 1;
        refunds.order.push_back(request.refund_id.clone());
        refunds
            .by_id
            .insert(request.refund_id.clone(), (request, receipt.clone()));
        Ok(receipt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(key: Option<&str>, token: &str, amount: u64) -> ChargeRequest {
        ChargeRequest {
            idempotency_key: key.map(str::to_string),
            hold_id: "h_1".into(),
            amount,
            currency: "EUR".into(),
            method: "card".into(),
            token: token.into(),
        }
    }

    #[tokio::test]
    async fn keyed_charge_is_made_once() {
        let sandbox = SandboxProvider::new(2);
        let first = sandbox
            .charge(request(Some("confirm:k"), "tok_visa", 900))
            .await;
        let again = sandbox
            .charge(request(Some("confirm:k"), "tok_visa", 900))
            .await;
        assert_eq!(first, again);
        assert_eq!(sandbox.charges_made(), 1);
        assert_eq!(
            sandbox.find_charge("confirm:k").await.unwrap(),
            Some(first.unwrap())
        );
        assert!(matches!(
            sandbox
                .charge(request(Some("confirm:k"), "tok_visa", 901))
                .await,
            Err(PaymentError::KeyReused { .. })
        ));
    }

    #[tokio::test]
    async fn declined_and_unknown_tokens_charge_nothing() {
        let sandbox = SandboxProvider::default();
        assert!(matches!(
            sandbox
                .charge(request(Some("k"), "tok_declined", 900))
                .await,
            Err(PaymentError::Declined { .. })
        ));
        assert!(matches!(
            sandbox.charge(request(None, "tok_nope", 900)).await,
            Err(PaymentError::InvalidInstrument { .. })
        ));
        assert_eq!(sandbox.find_charge("k").await.unwrap(), None);
        assert_eq!(sandbox.charges_made(), 0);
    }

    #[tokio::test]
    async fn a_refund_is_made_once_per_refund_id() {
        let sandbox = SandboxProvider::default();
        let request = RefundRequest {
            refund_id: "r_1".into(),
            payment_id: "pay_1".into(),
            amount: 900,
            currency: "EUR".into(),
        };
        let first = sandbox.refund(request.clone()).await.unwrap();
        assert_eq!(sandbox.refund(request.clone()).await.unwrap(), first);
        assert_eq!(sandbox.refunds_made(), 1);
        let other = RefundRequest {
            amount: 901,
            ..request
        };
        assert!(matches!(
            sandbox.refund(other).await,
            Err(RefundError::Refused { .. })
        ));
    }

    #[tokio::test]
    async fn remembered_charges_are_bounded() {
        let sandbox = SandboxProvider::new(2);
        for key in ["a", "b", "c"] {
            sandbox
                .charge(request(Some(key), "tok_visa", 1))
                .await
                .unwrap();
        }
        assert_eq!(sandbox.find_charge("a").await.unwrap(), None);
        assert!(sandbox.find_charge("c").await.unwrap().is_some());
    }
}
