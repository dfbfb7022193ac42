//! Booking writes: hold, extend, confirm (with payment) and cancel.

use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use holdfast_statemachine::{Command, HoldStatus, HoldView, Outcome, PaymentRecord};
use serde_json::json;

use crate::app::{write_answer, AppState};
use crate::charges;
use crate::error::ApiError;
use crate::extract::{ApiJson, IdempotencyKey};
use crate::metrics::{self, outcome_label};
use crate::payment::{Charge, ChargeRequest};
use crate::replica::{self, CommittedOutcome, Proposal, ReadRequest};
use crate::validate;
use crate::wire::{
    BookingJson, CancelBody, ConfirmBody, ErrorBody, ExtendBody, HoldBody, HoldJson, RefundJson,
};

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

fn label<T>(result: &Result<T, ApiError>, success: &str) -> String {
    match result {
        Ok(_) => success.to_string(),
        Err(error) => outcome_label(error.code),
    }
}

/// Takes items for a customer, all or nothing.
#[utoipa::path(
    post, path = "/booking/hold", tag = "booking",
    request_body = HoldBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "1–128 characters; a retry returns the first answer")),
    responses(
        (status = 201, description = "Held", body = HoldJson),
        (status = 400, description = "INVALID_FIELD, INVALID_QUANTITY, INVALID_TTL, TOO_MANY_ITEMS, INVALID_JSON", body = ErrorBody),
        (status = 404, description = "EVENT_NOT_FOUND, SEAT_NOT_FOUND, POOL_NOT_FOUND", body = ErrorBody),
        (status = 409, description = "SEAT_UNAVAILABLE, POOL_EXHAUSTED (details.unavailable), NO_ADJACENT_SEATS, HOLD_LIMIT_REACHED, IDEMPOTENCY_KEY_REUSED", body = ErrorBody),
        (status = 413, description = "BODY_TOO_LARGE", body = ErrorBody),
        (status = 503, description = "NO_LEADER, OVERLOADED", body = ErrorBody),
    )
)]
pub async fn hold(
    State(state): State<AppState>,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<HoldBody>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let result = hold_inner(&state, key, body).await;
    metrics::observe(metrics::HOLD_SECONDS, started);
    metrics::count(metrics::HOLDS_TOTAL, label(&result, "held"));
    result
}

async fn hold_inner(
    state: &AppState,
    key: IdempotencyKey,
    body: HoldBody,
) -> Result<Response, ApiError> {
    let command = validate::hold(body)?;
    let committed = propose(state, key.request_id("hold"), command).await?;
    match &committed.outcome {
        Outcome::Held(view) => Ok(write_answer(
            StatusCode::CREATED,
            committed.index,
            &HoldJson::from_view(view, Some(committed.index)),
        )),
        other => Err(unexpected(other)),
    }
}

/// Pushes a hold's expiry later, within its maximum life.
#[utoipa::path(
    post, path = "/booking/extend", tag = "booking",
    request_body = ExtendBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "1–128 characters")),
    responses(
        (status = 200, description = "Extended", body = HoldJson),
        (status = 404, description = "HOLD_NOT_FOUND", body = ErrorBody),
        (status = 409, description = "HOLD_NOT_ACTIVE", body = ErrorBody),
        (status = 410, description = "HOLD_EXPIRED", body = ErrorBody),
    )
)]
pub async fn extend(
    State(state): State<AppState>,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<ExtendBody>,
) -> Result<Response, ApiError> {
    validate::record_id("hold_id", &body.hold_id)?;
    let ttl_seconds = validate::ttl_seconds(body.ttl_seconds)?;
    let command = Command::ExtendHold {
        hold_id: body.hold_id,
        ttl_seconds,
    };
    let committed = propose(&state, key.request_id("extend"), command).await?;
    match &committed.outcome {
        Outcome::Extended(view) => Ok(write_answer(
            StatusCode::OK,
            committed.index,
            &HoldJson::from_view(view, Some(committed.index)),
        )),
        other => Err(unexpected(other)),
    }
}

/// Charges the payment, then turns the hold into a booking.
#[utoipa::path(
    post, path = "/booking/confirm", tag = "booking",
    request_body = ConfirmBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "1–128 characters; a retry never charges twice")),
    responses(
        (status = 200, description = "Confirmed", body = BookingJson),
        (status = 402, description = "PAYMENT_DECLINED", body = ErrorBody),
        (status = 404, description = "HOLD_NOT_FOUND", body = ErrorBody),
        (status = 409, description = "HOLD_NOT_ACTIVE; details.refund when a charge was refunded", body = ErrorBody),
        (status = 410, description = "HOLD_EXPIRED; details.refund when a charge was refunded", body = ErrorBody),
    )
)]
pub async fn confirm(
    State(state): State<AppState>,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<ConfirmBody>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let result = confirm_inner(&state, key, body).await;
    metrics::observe(metrics::CONFIRM_SECONDS, started);
    let outcome = match &result {
        Err(error) if error.details.get("refund").is_some() => {
            format!("refunded_{}", outcome_label(error.code))
        }
        _ => label(&result, "confirmed"),
    };
    metrics::count(metrics::CONFIRMS_TOTAL, outcome);
    result
}

/// Whether a hold can be confirmed now; the early answer (nothing charged) if not.
fn check_confirmable(hold_id: &str, hold: Option<&HoldView>, now_ms: u64) -> Result<(), ApiError> {
    let Some(hold) = hold else {
        return Err(ApiError::from(
            holdfast_statemachine::Rejection::HoldNotFound {
                hold_id: hold_id.to_string(),
            },
        ));
    };
    let expired = hold.status == HoldStatus::Expired
        || (hold.status == HoldStatus::Active && hold.expires_at_ms <= now_ms);
    if expired {
        return Err(ApiError::from(
            holdfast_statemachine::Rejection::HoldExpired {
                hold_id: hold_id.to_string(),
                expired_at_ms: hold.expires_at_ms,
            },
        ));
    }
    if hold.status != HoldStatus::Active {
        return Err(ApiError::from(
            holdfast_statemachine::Rejection::HoldNotActive {
                hold_id: hold_id.to_string(),
                status: hold.status,
            },
        ));
    }
    Ok(())
}

async fn confirm_inner(
    state: &AppState,
    key: IdempotencyKey,
    body: ConfirmBody,
) -> Result<Response, ApiError> {
    validate::record_id("hold_id", &body.hold_id)?;
    let method = body.payment.method.unwrap_or_else(|| "card".to_string());
    validate::text("payment.method", &method)?;
    if body.payment.token.is_empty() {
        return Err(ApiError::invalid_field("payment.token", "is required"));
    }
    validate::text("payment.token", &body.payment.token)?;
    let request_id = key.request_id("confirm");

    // Read the hold through the leader: a follower that has not applied it yet must not
    // answer HOLD_NOT_FOUND.
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
    let now_ms = now_ms.max(state.replica.cluster_time_ms());

    // A retry of a request that was already charged skips the early checks: the
    // provider gives back the same charge and the state machine the first answer (or, if
    // the first attempt never reached it, a refund for the charge). The charge may have
    // been made through another node (the first attempt's), whose provider client this
    // node does not share: then the replicated idempotency table says the confirm was
    // committed, and charging again with the same key gets the same charge back from the
    // provider.
    let prior_charge = match &request_id {
        Some(request_id) => state.payments.find_charge(request_id).await?,
        None => None,
    };
    if prior_charge.is_none() && !remembered {
        check_confirmable(&body.hold_id, hold.as_ref(), now_ms)?;
    }
    let (amount, currency) = match (&hold, &prior_charge) {
        (Some(hold), _) => (hold.amount, hold.currency.to_string()),
        (None, Some(charge)) => (charge.amount, charge.currency.clone()),
        // `check_confirmable` answers 404 for a missing hold without a prior charge.
        (None, None) => {
            return Err(ApiError::from(
                holdfast_statemachine::Rejection::HoldNotFound {
                    hold_id: body.hold_id,
                },
            ))
        }
    };
    // A slot before the charge: from here until the state machine answers, the charge is
    // this node's to account for (see `crate::charges`).
    let slot = state.charges.reserve()?;
    let charge = charge(
        state,
        prior_charge.is_some() || remembered,
        ChargeRequest {
            idempotency_key: request_id.clone(),
            hold_id: body.hold_id.clone(),
            amount,
            currency,
            method,
            token: body.payment.token,
        },
    )
    .await?;

    // Without a client key the confirm still gets a request id, named after its charge
    // (a scope no client key can produce), so that it can be proposed again safely.
    let request_id =
        request_id.unwrap_or_else(|| format!("{CHARGE_REQUEST_SCOPE}{}", charge.payment_id));
    let proposal = Proposal {
        request_id: Some(request_id),
        command: Command::Confirm {
            hold_id: body.hold_id,
            payment: PaymentRecord {
                provider: state.payments.name().to_string(),
                payment_id: charge.payment_id.clone(),
                amount: charge.amount,
            },
        },
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
    match &committed.outcome {
        Outcome::Confirmed(view) => Ok(write_answer(
            StatusCode::OK,
            committed.index,
            &BookingJson::from_view(view, Some(committed.index)),
        )),
        Outcome::ConfirmRefused { rejection, refund } => {
            let mut error = ApiError::from(rejection);
            if let Some(details) = error.details.as_object_mut() {
                details.insert("refund".into(), json!(RefundJson::from_view(refund)));
            }
            Err(error)
        }
        other => Err(unexpected(other)),
    }
}

/// Charges through the provider; `replay` when the key was charged before (the provider
/// hands back that charge).
async fn charge(
    state: &AppState,
    replay: bool,
    request: ChargeRequest,
) -> Result<Charge, ApiError> {
    let started = Instant::now();
    let charged = state.payments.charge(request).await;
    metrics::observe(metrics::PAYMENT_SECONDS, started);
    let outcome = match &charged {
        Ok(_) if replay => "reused".to_string(),
        Ok(_) => "charged".to_string(),
        Err(error) => outcome_label(ApiError::from(error.clone()).code),
    };
    metrics::count(metrics::PAYMENTS_TOTAL, outcome);
    Ok(charged?)
}

/// Scope of the request id a confirm without an Idempotency-Key gets: client keys are
/// always scoped `confirm:`, so these never meet one.
pub const CHARGE_REQUEST_SCOPE: &str = "charge:";

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

/// Releases a hold, or cancels a booking (recording a refund owed).
#[utoipa::path(
    post, path = "/booking/cancel", tag = "booking",
    request_body = CancelBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "1–128 characters")),
    responses(
        (status = 200, description = "Cancelled: a hold (hold_id) or a booking with its refund (booking_id)", body = BookingJson),
        (status = 404, description = "HOLD_NOT_FOUND, BOOKING_NOT_FOUND", body = ErrorBody),
        (status = 409, description = "HOLD_NOT_ACTIVE, BOOKING_NOT_ACTIVE", body = ErrorBody),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<CancelBody>,
) -> Result<Response, ApiError> {
    let (kind, result) = match (body.hold_id, body.booking_id) {
        (Some(hold_id), None) => ("hold", cancel_hold(&state, key, hold_id).await),
        (None, Some(booking_id)) => {
            let reason = body.reason.unwrap_or_default();
            (
                "booking",
                cancel_booking(&state, key, booking_id, reason).await,
            )
        }
        _ => {
            return Err(ApiError::invalid_field(
                "hold_id",
                "give exactly one of hold_id and booking_id",
            ))
        }
    };
    metrics::count_cancel(kind, label(&result, "cancelled"));
    result
}

async fn cancel_hold(
    state: &AppState,
    key: IdempotencyKey,
    hold_id: String,
) -> Result<Response, ApiError> {
    validate::record_id("hold_id", &hold_id)?;
    let committed = propose(
        state,
        key.request_id("cancel"),
        Command::ReleaseHold { hold_id },
    )
    .await?;
    match &committed.outcome {
        Outcome::Released(view) => Ok(write_answer(
            StatusCode::OK,
            committed.index,
            &HoldJson::from_view(view, Some(committed.index)),
        )),
        other => Err(unexpected(other)),
    }
}

async fn cancel_booking(
    state: &AppState,
    key: IdempotencyKey,
    booking_id: String,
    reason: String,
) -> Result<Response, ApiError> {
    validate::record_id("booking_id", &booking_id)?;
    validate::text("reason", &reason)?;
    let command = Command::CancelBooking { booking_id, reason };
    let committed = propose(state, key.request_id("cancel"), command).await?;
    match &committed.outcome {
        Outcome::BookingCancelled(view) => Ok(write_answer(
            StatusCode::OK,
            committed.index,
            &BookingJson::from_view(view, Some(committed.index)),
        )),
        other => Err(unexpected(other)),
    }
}
