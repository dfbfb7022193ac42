//! The typed service layer every edge calls, with domain types in and domain outcomes out:
//! booking writes (hold, extend, confirm with payment, cancel) and the batch of them here;
//! lookups, history and availability in [`reads`]; admin inventory in [`admin`]; cluster
//! operations in [`cluster`]. Search is [`crate::search`]'s, backup and restore
//! [`crate::backup`]'s.
//!
//! The HTTP handlers ([`crate::booking`], [`crate::reads`], [`crate::admin`],
//! [`crate::cluster`]) and the gRPC services ([`crate::grpc`]) are thin siblings over it:
//! each converts its own wire types into these requests and the answers back into its own;
//! neither calls the other. Validation, idempotency scoping, owner checks, the payment flow
//! and the per-operation metrics live here, once, so the two edges cannot drift apart.
//! Who may call what is decided by each edge before it calls, from one table
//! ([`crate::auth::required_role`]) and one check ([`crate::auth::check`]). Failures are one
//! error type, [`ApiError`], whose code each edge renders in its own way.

pub mod admin;
pub mod cluster;
pub mod reads;

use std::time::Instant;

use axum::http::StatusCode;
use holdfast_statemachine::{
    BookingView, ChargeIntent, Command, ErrorCode, HoldStatus, HoldView, Outcome, PaymentRecord,
    Rejection,
};
use serde_json::json;

use crate::app::AppState;
use crate::auth::Caller;
use crate::charges;
use crate::error::ApiError;
use crate::extract::IdempotencyKey;
use crate::metrics::{self, outcome_label};
use crate::payment::{Charge, ChargeRequest, PaymentError};
use crate::replica::{self, CommittedOutcome, Proposal, ReadRequest};
use crate::validate;
use crate::wire::{CancelBody, ConfirmBody, ExtendBody, HoldBody, RefundJson};

/// Most operations in one batch (API.md: 1,000).
pub const BATCH_OPERATIONS_MAX: usize = 1_000;

/// Largest body of `POST /booking/batch` (API.md: 1 MiB).
pub const BATCH_BODY_BYTES_MAX: usize = 1024 * 1024;

/// Scope of the request id a confirm without an Idempotency-Key gets: client keys are
/// always scoped `confirm:`, so these never meet one.
pub const CHARGE_REQUEST_SCOPE: &str = "charge:";

/// A write's answer with the log index that produced it.
#[derive(Clone, Debug, PartialEq)]
pub struct Committed<T> {
    /// The state machine's answer.
    pub value: T,
    /// The log index that first produced it: the entry's own, or the original entry's when
    /// the request id was a replay ([`CommittedOutcome::index`]), so a retry's body matches.
    pub index: u64,
}

/// What a cancel ended: a hold (released) or a booking (with its refund).
#[derive(Clone, Debug, PartialEq)]
pub enum Cancelled {
    /// The hold was released; its seats and units are free again.
    Hold(Box<HoldView>),
    /// The booking was cancelled; the view carries the refund it recorded, if any.
    Booking(Box<BookingView>),
}

/// One operation of a batch, with its own idempotency key.
#[derive(Clone, Debug)]
pub enum Operation {
    /// A hold, as `POST /booking/hold` takes it.
    Hold(HoldBody),
    /// An extend, as `POST /booking/extend` takes it.
    Extend(ExtendBody),
    /// A confirm with its payment, as `POST /booking/confirm` takes it.
    Confirm(ConfirmBody),
    /// A release of a hold or a cancel of a booking (exactly one of the two ids), as
    /// `POST /booking/cancel` takes it.
    Cancel(CancelBody),
}

/// What an operation is, for its metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Hold,
    Extend,
    Confirm,
    ReleaseHold,
    CancelBooking,
}

impl Operation {
    fn kind(&self) -> Kind {
        match self {
            Operation::Hold(_) => Kind::Hold,
            Operation::Extend(_) => Kind::Extend,
            Operation::Confirm(_) => Kind::Confirm,
            Operation::Cancel(body) if body.booking_id.is_some() => Kind::CancelBooking,
            Operation::Cancel(_) => Kind::ReleaseHold,
        }
    }

    /// The route name that scopes its idempotency key, as its own route does.
    fn route(&self) -> &'static str {
        match self {
            Operation::Hold(_) => "hold",
            Operation::Extend(_) => "extend",
            Operation::Confirm(_) => "confirm",
            Operation::Cancel(_) => "cancel",
        }
    }
}

/// An operation's answer, as its own route would have given it.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// A hold was placed (`201 Created`).
    Held(Committed<Box<HoldView>>),
    /// A hold's expiry was pushed later.
    Extended(Committed<Box<HoldView>>),
    /// A hold was charged and became a booking.
    Confirmed(Committed<Box<BookingView>>),
    /// A hold was released or a booking cancelled.
    Cancelled(Committed<Cancelled>),
}

impl Answer {
    /// The HTTP status of the answer on its own route.
    pub fn status(&self) -> StatusCode {
        match self {
            Answer::Held(_) => StatusCode::CREATED,
            _ => StatusCode::OK,
        }
    }
}

/// One entry of a batch as an edge hands it over: the parsed operation with its key, or
/// the error that parsing it gave (answered in its place, nothing proposed).
pub type BatchItem = Result<(IdempotencyKey, Operation), ApiError>;

/// The error code of a result that failed.
fn code_of<T>(result: &Result<T, ApiError>) -> Option<ErrorCode> {
    result.as_ref().err().map(|error| error.code)
}

/// A metric's outcome label: `success`, or the failure's code.
fn label(code: Option<ErrorCode>, success: &str) -> String {
    code.map_or_else(|| success.to_string(), outcome_label)
}

/// Proposes one command; a system failure becomes its API error.
pub(crate) async fn propose(
    state: &AppState,
    request_id: Option<String>,
    command: Command,
) -> Result<CommittedOutcome, ApiError> {
    let proposal = Proposal {
        request_id,
        command,
    };
    Ok(replica::propose_one(&*state.replica, proposal).await?)
}

/// An outcome that is not the expected success: its rejection, or an internal error.
pub(crate) fn unexpected(outcome: &Outcome) -> ApiError {
    match outcome.rejection() {
        Some(rejection) => ApiError::from(rejection),
        None => ApiError::internal(format!("unexpected outcome {outcome:?}")),
    }
}

// ---- Hold, extend, cancel: one command each -----------------------------------------

/// A hold, extend or cancel turned into its command (validated), or the edge's refusal.
fn command_of(operation: Operation) -> Result<Command, ApiError> {
    match operation {
        Operation::Hold(body) => validate::hold(body),
        Operation::Extend(body) => {
            validate::record_id("hold_id", &body.hold_id)?;
            let ttl_seconds = validate::ttl_seconds(body.ttl_seconds)?;
            Ok(Command::ExtendHold {
                hold_id: body.hold_id,
                ttl_seconds,
            })
        }
        Operation::Cancel(body) => match (body.hold_id, body.booking_id) {
            (Some(hold_id), None) => {
                validate::record_id("hold_id", &hold_id)?;
                Ok(Command::ReleaseHold { hold_id })
            }
            (None, Some(booking_id)) => {
                let reason = body.reason.unwrap_or_default();
                validate::record_id("booking_id", &booking_id)?;
                validate::text("reason", &reason)?;
                Ok(Command::CancelBooking { booking_id, reason })
            }
            _ => Err(ApiError::invalid_field(
                "hold_id",
                "give exactly one of hold_id and booking_id",
            )),
        },
        Operation::Confirm(_) => Err(ApiError::internal(
            "a confirm is not a single command (it charges first)",
        )),
    }
}

/// The answer of a committed hold, extend or cancel.
fn answer_of(committed: CommittedOutcome) -> Result<Answer, ApiError> {
    let index = committed.index;
    match committed.outcome {
        Outcome::Held(value) => Ok(Answer::Held(Committed { value, index })),
        Outcome::Extended(value) => Ok(Answer::Extended(Committed { value, index })),
        Outcome::Released(view) => Ok(Answer::Cancelled(Committed {
            value: Cancelled::Hold(view),
            index,
        })),
        Outcome::BookingCancelled(view) => Ok(Answer::Cancelled(Committed {
            value: Cancelled::Booking(view),
            index,
        })),
        other => Err(unexpected(&other)),
    }
}

/// Counts one finished operation in the per-route metrics.
fn count(kind: Kind, result: &Result<Answer, ApiError>) {
    count_n(kind, code_of(result), 1);
}

/// Counts `n` operations of `kind` that succeeded (`None`) or failed with `code`.
fn count_n(kind: Kind, code: Option<ErrorCode>, n: u64) {
    match kind {
        Kind::Hold => metrics::count_n(metrics::HOLDS_TOTAL, label(code, "held"), n),
        Kind::ReleaseHold => metrics::count_cancel_n("hold", label(code, "cancelled"), n),
        Kind::CancelBooking => metrics::count_cancel_n("booking", label(code, "cancelled"), n),
        Kind::Extend | Kind::Confirm => {}
    }
}

/// The outcomes of a batch's operations, counted together and recorded once per kind and
/// outcome when the batch ends (a metric's lookup costs more than the count).
#[derive(Default)]
struct Tally(Vec<(Kind, Option<ErrorCode>, u64)>);

impl Tally {
    fn add(&mut self, kind: Kind, result: &Result<Answer, ApiError>) {
        let code = code_of(result);
        match self
            .0
            .iter_mut()
            .find(|(counted, counted_code, _)| *counted == kind && *counted_code == code)
        {
            Some((_, _, n)) => *n += 1,
            None => self.0.push((kind, code, 1)),
        }
    }

    fn record(self) {
        for (kind, code, n) in self.0 {
            count_n(kind, code, n);
        }
    }
}

// ---- Owners ----------------------------------------------------------------------------

/// Whose an operation is: the customer it names (a hold), or the hold or booking it acts on.
#[derive(Clone, Debug)]
enum Owned {
    Customer(String),
    Hold(String),
    Booking(String),
    /// A malformed operation, refused on its own before any owner matters.
    Nothing,
}

impl Owned {
    fn of(operation: &Operation) -> Owned {
        match operation {
            Operation::Hold(body) => Owned::Customer(body.customer_id.clone()),
            Operation::Extend(body) => Owned::Hold(body.hold_id.clone()),
            Operation::Confirm(body) => Owned::Hold(body.hold_id.clone()),
            Operation::Cancel(body) => match (&body.hold_id, &body.booking_id) {
                (Some(hold_id), None) => Owned::Hold(hold_id.clone()),
                (None, Some(booking_id)) => Owned::Booking(booking_id.clone()),
                _ => Owned::Nothing,
            },
        }
    }
}

/// How long after now a retried hold's remembered answer must still be remembered for the
/// retry not to count against the velocity limits (see [`refused_owners`]).
const RETRY_MARGIN_MS: u64 = 60_000;

/// For a caller whose key is bound to one customer (API.md, Authentication): the refusal of
/// each operation that is about another customer — a hold naming another `customer_id`,
/// or another customer's hold or booking (`403 FORBIDDEN`) — or about a hold or booking
/// that does not exist (its `404`, as the command would answer). `None` where the operation
/// may go on; all `None` for any other caller, without a read.
///
/// One linearizable read for them all: a hold's or booking's owner never changes once it
/// exists, so what the read sees still holds when the command applies, and an id that
/// does not exist yet is refused here instead of racing its creation.
///
/// A hold that passes is then counted against the hold velocity limits
/// ([`crate::rate::Admission::admit_hold`]), which refuse it with `429 RATE_LIMITED` —
/// unless it is the retry of a hold the state already answered (its request id, one per
/// operation in `request_ids`, is remembered): a retry replays that answer and takes
/// nothing, so it is not counted again. The state is read as this node has it: a node
/// behind may count a retry, never let a new hold through uncounted; and a remembered
/// answer counts only while it will still be remembered a minute from now (in cluster time
/// as this node would stamp it), so a key about to be forgotten, which would make a new
/// hold, is counted.
async fn refused_owners(
    state: &AppState,
    caller: &Caller,
    owned: &[Owned],
    request_ids: &[Option<&str>],
) -> Result<Vec<Option<ApiError>>, ApiError> {
    let mut refusals = refused_by_owner(state, caller, owned).await?;
    // Only holds are counted: an extend, release, confirm or cancel reads nothing more.
    let holds_to_count = refusals
        .iter()
        .zip(owned)
        .any(|(refusal, owned)| refusal.is_none() && matches!(owned, Owned::Customer(_)));
    if !holds_to_count {
        return Ok(refusals);
    }
    let remembered_until = state
        .replica
        .cluster_time_ms()
        .saturating_add(RETRY_MARGIN_MS);
    let new_holds: Vec<bool> = replica::read_now(&*state.replica, |machine| {
        owned
            .iter()
            .zip(request_ids)
            .map(|(owned, request_id)| {
                matches!(owned, Owned::Customer(_))
                    && !request_id.is_some_and(|request_id| {
                        machine.remembers_request_at(request_id, remembered_until)
                    })
            })
            .collect()
    })
    .0;
    for ((refusal, owned), new_hold) in refusals.iter_mut().zip(owned).zip(new_holds) {
        if let (None, Owned::Customer(customer_id), true) = (&refusal, owned, new_hold) {
            *refusal = state.admission.admit_hold(caller, customer_id).err();
        }
    }
    Ok(refusals)
}

async fn refused_by_owner(
    state: &AppState,
    caller: &Caller,
    owned: &[Owned],
) -> Result<Vec<Option<ApiError>>, ApiError> {
    if caller.customer.is_none() {
        return Ok(vec![None; owned.len()]);
    }
    let records = owned
        .iter()
        .any(|owned| matches!(owned, Owned::Hold(_) | Owned::Booking(_)));
    let owners: Vec<Option<String>> = if records {
        replica::read(&*state.replica, ReadRequest::LINEARIZABLE, |machine| {
            owned
                .iter()
                .map(|owned| match owned {
                    Owned::Hold(id) => machine.hold_by_id(id).map(|hold| hold.customer_id.into()),
                    Owned::Booking(id) => machine
                        .booking_by_id(id)
                        .map(|booking| booking.customer_id.into()),
                    Owned::Customer(_) | Owned::Nothing => None,
                })
                .collect()
        })
        .await?
        .0
    } else {
        vec![None; owned.len()]
    };
    Ok(owned
        .iter()
        .zip(owners)
        .map(|(owned, owner)| {
            let refused = match (owned, owner) {
                (Owned::Customer(customer_id), _) => caller.may_act_for(customer_id),
                (Owned::Hold(_) | Owned::Booking(_), Some(owner)) => caller.may_act_for(&owner),
                (Owned::Hold(hold_id), None) => Err(ApiError::from(Rejection::HoldNotFound {
                    hold_id: hold_id.clone(),
                })),
                (Owned::Booking(booking_id), None) => {
                    Err(ApiError::from(Rejection::BookingNotFound {
                        booking_id: booking_id.clone(),
                    }))
                }
                (Owned::Nothing, _) => Ok(()),
            };
            refused.err()
        })
        .collect())
}

/// Runs one hold, extend or cancel through the log.
async fn single(
    state: &AppState,
    caller: &Caller,
    key: IdempotencyKey,
    operation: Operation,
) -> Result<Answer, ApiError> {
    let request_id = key.request_id(operation.route());
    let owned = Owned::of(&operation);
    let command = command_of(operation)?;
    if let Some(refusal) = refused_owners(state, caller, &[owned], &[request_id.as_deref()])
        .await?
        .pop()
        .flatten()
    {
        return Err(refusal);
    }
    answer_of(propose(state, request_id, command).await?)
}

/// Takes items for a customer, all or nothing.
pub async fn hold(
    state: &AppState,
    caller: &Caller,
    key: IdempotencyKey,
    body: HoldBody,
) -> Result<Committed<Box<HoldView>>, ApiError> {
    let started = Instant::now();
    let result = single(state, caller, key, Operation::Hold(body)).await;
    metrics::observe(metrics::HOLD_SECONDS, started);
    count(Kind::Hold, &result);
    match result? {
        Answer::Held(held) => Ok(held),
        other => Err(ApiError::internal(format!("unexpected answer {other:?}"))),
    }
}

/// Pushes a hold's expiry later, within its maximum life.
pub async fn extend(
    state: &AppState,
    caller: &Caller,
    key: IdempotencyKey,
    body: ExtendBody,
) -> Result<Committed<Box<HoldView>>, ApiError> {
    match single(state, caller, key, Operation::Extend(body)).await? {
        Answer::Extended(extended) => Ok(extended),
        other => Err(ApiError::internal(format!("unexpected answer {other:?}"))),
    }
}

/// Releases a hold, or cancels a booking (recording a refund owed).
pub async fn cancel(
    state: &AppState,
    caller: &Caller,
    key: IdempotencyKey,
    body: CancelBody,
) -> Result<Committed<Cancelled>, ApiError> {
    let operation = Operation::Cancel(body);
    let kind = operation.kind();
    let result = single(state, caller, key, operation).await;
    count(kind, &result);
    match result? {
        Answer::Cancelled(cancelled) => Ok(cancelled),
        other => Err(ApiError::internal(format!("unexpected answer {other:?}"))),
    }
}

// ---- Confirm: charge, then commit -----------------------------------------------------

/// Charges the payment, then turns the hold into a booking.
pub async fn confirm(
    state: &AppState,
    caller: &Caller,
    key: IdempotencyKey,
    body: ConfirmBody,
) -> Result<Committed<Box<BookingView>>, ApiError> {
    let started = Instant::now();
    let result = confirm_inner(state, caller, key, body).await;
    metrics::observe(metrics::CONFIRM_SECONDS, started);
    let outcome = match &result {
        Err(error) if error.details.get("refund").is_some() => {
            format!("refunded_{}", outcome_label(error.code))
        }
        _ => label(code_of(&result), "confirmed"),
    };
    metrics::count(metrics::CONFIRMS_TOTAL, outcome);
    result
}

/// Whether a hold can be confirmed now; the early answer (nothing charged) if not.
fn check_confirmable(hold_id: &str, hold: Option<&HoldView>, now_ms: u64) -> Result<(), ApiError> {
    let Some(hold) = hold else {
        return Err(ApiError::from(Rejection::HoldNotFound {
            hold_id: hold_id.to_string(),
        }));
    };
    let expired = hold.status == HoldStatus::Expired
        || (hold.status == HoldStatus::Active && hold.expires_at_ms <= now_ms);
    if expired {
        return Err(ApiError::from(Rejection::HoldExpired {
            hold_id: hold_id.to_string(),
            expired_at_ms: hold.expires_at_ms,
        }));
    }
    if hold.status != HoldStatus::Active {
        return Err(ApiError::from(Rejection::HoldNotActive {
            hold_id: hold_id.to_string(),
            status: hold.status,
        }));
    }
    Ok(())
}

async fn confirm_inner(
    state: &AppState,
    caller: &Caller,
    key: IdempotencyKey,
    body: ConfirmBody,
) -> Result<Committed<Box<BookingView>>, ApiError> {
    validate::record_id("hold_id", &body.hold_id)?;
    let method = body.payment.method.unwrap_or_else(|| "card".to_string());
    validate::text("payment.method", &method)?;
    if body.payment.token.is_empty() {
        return Err(ApiError::invalid_field("payment.token", "is required"));
    }
    validate::text("payment.token", &body.payment.token)?;
    let request_id = key.request_id("confirm");
    // Without a client key the confirm still gets a key of its own, in a scope no client
    // key can produce, so that its charge is idempotent and its intent can be found.
    // Drawn from `RaftRng`: the system's randomness, or a simulation's seeded generator.
    let charge_key = request_id.clone().unwrap_or_else(|| {
        use rand::Rng;
        let random: u128 = holdfast_raft::runtime::RaftRng.gen();
        format!("{CHARGE_REQUEST_SCOPE}{random:032x}")
    });
    // A slot before anything is charged: from here until the state machine answers, the
    // charge is this node's to account for (see `crate::charges`).
    let slot = state.charges.reserve()?;

    // The hold, read through the leader (a follower that has not applied it yet must not
    // answer HOLD_NOT_FOUND), and the provider's charge under the key, for a retry of a
    // request already charged. One after the other: running them beside the intent below
    // made simulation runs differ between two runs of one seed in one process (see
    // issue 15's notes), so the confirm keeps this order until that is understood.
    let (hold, now_ms, remembered) =
        replica::read(&*state.replica, ReadRequest::LINEARIZABLE, |machine| {
            let remembered = request_id
                .as_deref()
                .is_some_and(|request_id| machine.remembers_request(request_id));
            (
                machine.hold_by_id(&body.hold_id),
                machine.now_ms(),
                remembered,
            )
        })
        .await
        .map(|(answer, _)| answer)?;
    let prior_charge = match &request_id {
        Some(request_id) => state.payments.find_charge(request_id).await?,
        None => None,
    };
    let now_ms = now_ms.max(state.replica.cluster_time_ms());
    let (replay, amount, currency) = confirm_checks(
        caller,
        &body.hold_id,
        hold,
        now_ms,
        remembered,
        prior_charge,
    )?;
    // Durable before the provider is called: should this node stop between the charge and
    // the commit, the leader's reconciler finds the charge by the key. It checks the hold
    // again, in log order, and names the price to charge.
    let (amount, currency, intent_recorded) = if replay {
        (amount, currency, false)
    } else {
        let (intent, new) =
            record_charge_intent(state, charge_key.clone(), body.hold_id.clone()).await?;
        (intent.amount, intent.currency, new)
    };
    let charging = Charging {
        state: state.clone(),
        slot,
        replay,
        intent_recorded,
        charge_key: charge_key.clone(),
        request: ChargeRequest {
            idempotency_key: Some(charge_key),
            hold_id: body.hold_id,
            amount,
            currency,
            method,
            token: body.payment.token,
        },
    };
    // The charge and its commit run to the end whether or not the caller waits: a dropped
    // connection or a gRPC deadline must not stop a charge halfway (slots bound them).
    match tokio::spawn(charging.run()).await {
        Ok(result) => result,
        Err(error) => Err(ApiError::internal(format!(
            "the confirm task failed: {error}"
        ))),
    }
}

/// What a confirm may go on with, from the hold it read and the provider's charge under
/// its key: whether it replays a charged request, and the amount and currency of the hold
/// (or of the charge); or its early answer, with nothing charged.
fn confirm_checks(
    caller: &Caller,
    hold_id: &str,
    hold: Option<HoldView>,
    now_ms: u64,
    remembered: bool,
    prior_charge: Option<Charge>,
) -> Result<(bool, u64, String), ApiError> {
    // Before anything is charged: a key bound to a customer confirms only its own holds.
    if let Some(hold) = &hold {
        caller.may_act_for(&hold.customer_id)?;
    } else if caller.customer.is_some() && !remembered {
        return Err(ApiError::from(Rejection::HoldNotFound {
            hold_id: hold_id.to_string(),
        }));
    }
    // A retry of a request that was already charged skips the early checks: the
    // provider gives back the same charge and the state machine the first answer (or, if
    // the first attempt never reached it, a refund for the charge). The charge may have
    // been made through another node (the first attempt's), whose provider client this
    // node does not share: then the replicated idempotency table says the confirm was
    // committed, and charging again with the same key gets the same charge back from the
    // provider.
    let replay = prior_charge.is_some() || remembered;
    if !replay {
        check_confirmable(hold_id, hold.as_ref(), now_ms)?;
    }
    match (&hold, &prior_charge) {
        (Some(hold), _) => Ok((replay, hold.amount, hold.currency.to_string())),
        (None, Some(charge)) => Ok((replay, charge.amount, charge.currency.clone())),
        // `check_confirmable` answers 404 for a missing hold without a prior charge.
        (None, None) => Err(ApiError::from(Rejection::HoldNotFound {
            hold_id: hold_id.to_string(),
        })),
    }
}

/// Drops the charge intent this confirm recorded and then did not charge (best effort: the
/// leader's reconciler drops it later otherwise, once the provider confirms no charge).
async fn drop_charge_intent(state: &AppState, charge_key: &str) {
    let proposal = Proposal {
        request_id: None,
        command: Command::DropChargeIntent {
            charge_key: charge_key.to_string(),
        },
    };
    if let Err(error) = replica::propose_one(&*state.replica, proposal).await {
        tracing::warn!(%error, charge_key, "could not drop a charge intent");
    }
}

/// Records the charge intent under `charge_key` for `hold_id` (see
/// `holdfast_statemachine::ChargeIntent`): a hold that ended is refused here, before
/// anything is charged.
async fn record_charge_intent(
    state: &AppState,
    charge_key: String,
    hold_id: String,
) -> Result<(ChargeIntent, bool), ApiError> {
    let proposal = Proposal {
        request_id: None,
        command: Command::RecordChargeIntent {
            charge_key,
            hold_id,
            provider: state.payments.name().to_string(),
        },
    };
    let committed = replica::propose_one(&*state.replica, proposal).await?;
    match committed.outcome {
        Outcome::ChargeIntentRecorded { intent, new } => Ok((intent, new)),
        Outcome::Rejected(rejection) => Err(ApiError::from(rejection)),
        other => Err(unexpected(&other)),
    }
}

/// One confirm from its charge to the state machine's answer, run as a task of its own.
struct Charging {
    state: AppState,
    slot: charges::ChargeSlot,
    /// The key was charged before (the provider hands back that charge).
    replay: bool,
    /// This confirm recorded the charge intent under the key.
    intent_recorded: bool,
    /// The charge's idempotency key, and the confirm's request id.
    charge_key: String,
    request: ChargeRequest,
}

impl Charging {
    async fn run(self) -> Result<Committed<Box<BookingView>>, ApiError> {
        let Charging {
            state,
            slot,
            replay,
            intent_recorded,
            charge_key,
            request,
        } = self;
        let hold_id = request.hold_id.clone();
        let charge = match charge(&state, replay, request).await {
            Ok(charge) => charge,
            // No answer is not "nothing charged": ask for the charge by its key.
            Err(failure @ PaymentError::Unavailable { .. }) => {
                match state.payments.find_charge(&charge_key).await {
                    Ok(Some(charge)) => charge,
                    Ok(None) | Err(_) => {
                        return Err(
                            charge_failed(&state, intent_recorded, &charge_key, failure).await
                        )
                    }
                }
            }
            Err(failure) => {
                return Err(charge_failed(&state, intent_recorded, &charge_key, failure).await)
            }
        };
        let payment = PaymentRecord {
            provider: state.payments.name().to_string(),
            payment_id: charge.payment_id.clone(),
            amount: charge.amount,
        };
        if !payment.is_recordable() {
            return Err(unrecordable_charge(&state, intent_recorded, &charge_key, &charge).await);
        }
        let proposal = Proposal {
            request_id: Some(charge_key),
            command: Command::Confirm { hold_id, payment },
        };
        let answered = match replica::propose_one(&*state.replica, proposal.clone()).await {
            Ok(committed) if charges::is_answer(&committed) => Ok(committed),
            Ok(committed) => Err(unexpected(&committed.outcome)),
            Err(error) => Err(ApiError::from(error)),
        };
        let committed = match answered {
            Ok(committed) => committed,
            Err(error) => {
                let payment_id = charge.payment_id.clone();
                state.charges.hand_over(slot, proposal, payment_id);
                return Err(charged_but_not_committed(error, &charge));
            }
        };
        drop(slot);
        let index = committed.index;
        match committed.outcome {
            Outcome::Confirmed(value) => Ok(Committed { value, index }),
            Outcome::ConfirmRefused { rejection, refund } => {
                let mut error = ApiError::from(&rejection);
                if let Some(details) = error.details.as_object_mut() {
                    details.insert("refund".into(), json!(RefundJson::from_view(&refund)));
                }
                Err(error)
            }
            other => Err(unexpected(&other)),
        }
    }
}

/// What a confirm whose charge failed answers, after accounting for its intent.
///
/// A refusal (declined, an invalid instrument, a key used for another charge) charged
/// nothing under this key: the intent this confirm recorded is dropped. A provider that did
/// not answer may have charged all the same: when a lookup by its key found no charge
/// either (the provider may still be making it), the intent stays for the leader's reconciler, which
/// asks again later and books or refunds what it finds.
async fn charge_failed(
    state: &AppState,
    intent_recorded: bool,
    charge_key: &str,
    failure: PaymentError,
) -> ApiError {
    let mut error = ApiError::from(failure.clone());
    if !intent_recorded {
        return error;
    }
    if let PaymentError::Unavailable { .. } = failure {
        if let Some(details) = error.details.as_object_mut() {
            details.insert("charge".into(), json!("UNKNOWN"));
            details.insert(
                "retry".into(),
                json!("the provider did not say whether it charged; retry with the same Idempotency-Key (the charge is reused, never repeated), or the cluster books or refunds it once the provider answers"),
            );
        }
        return error;
    }
    drop_charge_intent(state, charge_key).await;
    error
}

/// What a confirm answers whose charge the state cannot record (the provider answered a
/// payment id it refuses): the node gives the money back through the provider and drops
/// the intent; when the refund cannot be made now, the intent this confirm recorded stays
/// and the leader's reconciler refunds it later (a retry, which recorded none, says only
/// that the refund is not confirmed: retrying asks again). Nothing is booked either way.
async fn unrecordable_charge(
    state: &AppState,
    intent_recorded: bool,
    charge_key: &str,
    charge: &Charge,
) -> ApiError {
    let refunded = charges::refund_unrecordable(
        &*state.payments,
        charge_key,
        charge,
        charges::INTENT_CALL_TIMEOUT_MAX,
    )
    .await;
    let (charge_state, retry) = match refunded {
        Err(crate::payment::RefundError::Unavailable { .. }) if intent_recorded => (
            "REFUND_PENDING",
            "the cluster refunds the charge once the provider answers; nothing was booked",
        ),
        Err(crate::payment::RefundError::Unavailable { .. }) => (
            "REFUND_UNCONFIRMED",
            "the provider did not answer the refund; retry with the same Idempotency-Key to ask again (a refund is never paid twice); nothing was booked",
        ),
        Ok(_) => {
            drop_charge_intent(state, charge_key).await;
            ("REFUNDED", "the charge was given back; nothing was booked")
        }
        // Logged at `error` for an operator, who settles it with the provider.
        Err(crate::payment::RefundError::Refused { .. }) => {
            drop_charge_intent(state, charge_key).await;
            (
                "REFUND_REFUSED",
                "the provider refused to give the charge back; nothing was booked: contact the operator",
            )
        }
    };
    let mut error = ApiError::from(PaymentError::Unavailable {
        message: "the payment provider answered a payment id that cannot be recorded".into(),
    });
    if let Some(details) = error.details.as_object_mut() {
        details.insert("charge".into(), json!(charge_state));
        details.insert("retry".into(), json!(retry));
    }
    error
}

/// Charges through the provider; `replay` when the key was charged before (the provider
/// hands back that charge).
async fn charge(
    state: &AppState,
    replay: bool,
    request: ChargeRequest,
) -> Result<Charge, PaymentError> {
    let started = Instant::now();
    let charged = state.payments.charge(request).await;
    metrics::observe(metrics::PAYMENT_SECONDS, started);
    let outcome = match &charged {
        Ok(_) if replay => "reused".to_string(),
        Ok(_) => "charged".to_string(),
        Err(error) => outcome_label(ApiError::from(error.clone()).code),
    };
    metrics::count(metrics::PAYMENTS_TOTAL, outcome);
    charged
}

/// The charge succeeded but the confirm got no answer (no leader, overload, a commit that
/// timed out): the node keeps proposing it until it books or records the refund
/// (`crate::charges`); a retry with the same Idempotency-Key reuses the charge and gets
/// that answer.
fn charged_but_not_committed(mut api_error: ApiError, charge: &Charge) -> ApiError {
    if let Some(details) = api_error.details.as_object_mut() {
        details.insert("payment_id".into(), json!(charge.payment_id));
        details.insert("confirm".into(), json!("PENDING"));
        details.insert(
            "retry".into(),
            json!("the node keeps proposing this confirm until it books or records a refund; retry with the same Idempotency-Key to learn which (the charge is reused, never repeated)"),
        );
    }
    api_error
}

// ---- Batch ---------------------------------------------------------------------------

/// A batch of `operations` operations is refused whole (`400 TOO_MANY_ITEMS`) over
/// [`BATCH_OPERATIONS_MAX`]; each edge asks before it parses the operations.
pub fn check_batch_size(operations: usize) -> Result<(), ApiError> {
    if operations <= BATCH_OPERATIONS_MAX {
        return Ok(());
    }
    Err(ApiError::from(Rejection::TooManyItems {
        items: operations as u64,
        max: BATCH_OPERATIONS_MAX as u64,
    }))
}

/// Runs independent booking operations together, one answer each, in order.
///
/// Holds, extends and cancels that pass validation are proposed in one call, so the
/// batcher commits them in as few Raft entries as fit; confirms charge first and run
/// concurrently beside them. One operation's refusal never affects another's, and every
/// key is scoped by its operation's route exactly as on that route, so a batch operation
/// and the same request on its own route replay each other. A system failure of the shared
/// proposal (overload, no leader) is every proposed operation's answer: each is safe to
/// retry with its key.
pub async fn batch(
    state: &AppState,
    caller: &Caller,
    items: Vec<BatchItem>,
) -> Vec<Result<Answer, ApiError>> {
    let started = Instant::now();
    let count_all = items.len();
    let mut answers: Vec<Option<Result<Answer, ApiError>>> = vec![None; count_all];
    let mut tally = Tally::default();
    // The valid operations, in three lists of one entry each: (position, kind), owner,
    // proposal.
    let mut checked = Vec::with_capacity(count_all);
    let mut owned = Vec::with_capacity(count_all);
    let mut proposals = Vec::with_capacity(count_all);
    let mut confirms = Vec::new();
    for (position, item) in items.into_iter().enumerate() {
        let (key, operation) = match item {
            Ok(item) => item,
            Err(error) => {
                answers[position] = Some(Err(error));
                continue;
            }
        };
        if let Operation::Confirm(body) = operation {
            confirms.push((position, key, body));
            continue;
        }
        let request_id = key.request_id(operation.route());
        let kind = operation.kind();
        let owner = Owned::of(&operation);
        match command_of(operation) {
            Ok(command) => {
                checked.push((position, kind));
                owned.push(owner);
                proposals.push(Proposal {
                    request_id,
                    command,
                });
            }
            Err(error) => {
                let result = Err(error);
                tally.add(kind, &result);
                answers[position] = Some(result);
            }
        }
    }
    let request_ids: Vec<Option<&str>> = proposals
        .iter()
        .map(|proposal| proposal.request_id.as_deref())
        .collect();
    let refusals = match refused_owners(state, caller, &owned, &request_ids).await {
        Ok(refusals) => refusals,
        Err(error) => vec![Some(error); owned.len()],
    };
    let mut proposed = Vec::with_capacity(checked.len()); // (position, kind) of each proposal
    let mut kept = Vec::with_capacity(checked.len());
    for (((position, kind), proposal), refusal) in checked.into_iter().zip(proposals).zip(refusals)
    {
        match refusal {
            Some(error) => {
                let result = Err(error);
                tally.add(kind, &result);
                answers[position] = Some(result);
            }
            None => {
                kept.push(proposal);
                proposed.push((position, kind));
            }
        }
    }
    let proposals = kept;
    let commit = async {
        if proposals.is_empty() {
            return Ok(Vec::new());
        }
        state.replica.propose(proposals).await
    };
    let confirming = futures::future::join_all(confirms.into_iter().map(
        |(position, key, body)| async move {
            let result = confirm(state, caller, key, body)
                .await
                .map(Answer::Confirmed);
            (position, result)
        },
    ));
    let (committed, confirmed) = tokio::join!(commit, confirming);
    match committed {
        Ok(outcomes) if outcomes.len() == proposed.len() => {
            for ((position, kind), outcome) in proposed.into_iter().zip(outcomes) {
                let result = answer_of(outcome);
                tally.add(kind, &result);
                answers[position] = Some(result);
            }
        }
        Ok(outcomes) => {
            let error = ApiError::internal(format!(
                "the replica answered {} outcomes for {} proposals",
                outcomes.len(),
                proposed.len()
            ));
            for (position, _) in proposed {
                answers[position] = Some(Err(error.clone()));
            }
        }
        Err(error) => {
            let error = ApiError::from(error);
            for (position, kind) in proposed {
                let result = Err(error.clone());
                tally.add(kind, &result);
                answers[position] = Some(result);
            }
        }
    }
    for (position, result) in confirmed {
        answers[position] = Some(result);
    }
    tally.record();
    metrics::observe(metrics::BATCH_SECONDS, started);
    metrics::count_batch(count_all);
    answers
        .into_iter()
        .map(|answer| answer.unwrap_or_else(|| Err(ApiError::internal("operation not answered"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_counts_each_kind_and_outcome_once() {
        let mut tally = Tally::default();
        let unavailable = || ApiError::new(ErrorCode::SeatUnavailable, "taken");
        tally.add(Kind::Hold, &Err(unavailable()));
        tally.add(
            Kind::Hold,
            &Err(ApiError::new(ErrorCode::InvalidField, "bad")),
        );
        tally.add(Kind::Hold, &Err(unavailable()));
        tally.add(Kind::ReleaseHold, &Err(unavailable()));
        assert_eq!(
            tally.0,
            [
                (Kind::Hold, Some(ErrorCode::SeatUnavailable), 2),
                (Kind::Hold, Some(ErrorCode::InvalidField), 1),
                (Kind::ReleaseHold, Some(ErrorCode::SeatUnavailable), 1),
            ]
        );
    }
}
