//! Holds: taking items atomically for one customer, extending, releasing, confirming into a
//! booking, and expiring by log time.

use std::collections::BTreeMap;
use std::num::NonZeroU64;

use compact_str::CompactString;

use crate::command::{BestAvailable, HoldRequest, PaymentRecord, PoolQuantity};
use crate::idmap::IdMap;
use crate::ids::IdKey;
use crate::inventory::{first_few, validate_id, Event, SeatState};
use crate::limits::*;
use crate::outcome::{BookingStatus, RefundStatus};
use crate::outcome::{HoldStatus, HoldView, OutboxKind, Outcome, PoolShortage, Rejection};
use crate::state::{
    payment_key, Booking, Hold, PaymentUse, Positions, Refund, BOOKING_ID_PREFIX, HOLD_ID_PREFIX,
    REFUND_ID_PREFIX,
};
use crate::StateMachine;

fn validate_ttl(ttl_seconds: u32) -> Result<u64, Rejection> {
    if !(HOLD_TTL_SECONDS_MIN..=HOLD_TTL_SECONDS_MAX).contains(&ttl_seconds) {
        return Err(Rejection::InvalidTtl { ttl_seconds });
    }
    Ok(u64::from(ttl_seconds) * 1000)
}

/// Checks the shape of a hold request, before anything is looked up.
fn validate_hold_request(request: &HoldRequest) -> Result<u64, Rejection> {
    validate_id("event_id", &request.event_id)?;
    validate_id("customer_id", &request.customer_id)?;
    let ttl_ms = validate_ttl(request.ttl_seconds.unwrap_or(HOLD_TTL_SECONDS_DEFAULT))?;
    let best_count = request
        .best_available
        .as_ref()
        .map_or(0, |best| u64::from(best.count));
    let items = request.seats.len() as u64 + request.pools.len() as u64 + best_count;
    if items > HOLD_ITEMS_MAX as u64 {
        return Err(Rejection::TooManyItems {
            items,
            max: HOLD_ITEMS_MAX as u64,
        });
    }
    if items == 0 && request.best_available.is_none() {
        return Err(Rejection::invalid(
            "seats",
            "name at least one seat, pool or best_available",
        ));
    }
    if let Some(best) = &request.best_available {
        if best.count == 0 {
            return Err(Rejection::InvalidQuantity {
                field: "best_available.count".into(),
                reason: format!("must be 1 to {HOLD_ITEMS_MAX}"),
            });
        }
        if let Some(section) = &best.section {
            validate_id("best_available.section", section)?;
        }
    }
    for seat in &request.seats {
        validate_id("seats", seat)?;
    }
    if let Some(seat) = first_duplicate(request.seats.iter().map(String::as_str)) {
        return Err(Rejection::invalid(
            "seats",
            format!("seat {seat} is named twice"),
        ));
    }
    for line in &request.pools {
        validate_id("pools.pool_id", &line.pool_id)?;
        if line.quantity == 0 || line.quantity > HOLD_POOL_QUANTITY_MAX {
            return Err(Rejection::InvalidQuantity {
                field: "pools.quantity".into(),
                reason: format!("must be 1 to {HOLD_POOL_QUANTITY_MAX}"),
            });
        }
    }
    if let Some(pool) = first_duplicate(request.pools.iter().map(|line| line.pool_id.as_str())) {
        return Err(Rejection::invalid(
            "pools",
            format!("pool {pool} is named twice"),
        ));
    }
    Ok(ttl_ms)
}

/// The first name that appears twice. Lists are at most [`HOLD_ITEMS_MAX`] long, so a
/// quadratic scan without allocation beats hashing.
fn first_duplicate<'a>(names: impl ExactSizeIterator<Item = &'a str> + Clone) -> Option<&'a str> {
    if names.len() < 2 {
        return None;
    }
    names.clone().enumerate().find_map(|(index, name)| {
        names
            .clone()
            .take(index)
            .any(|other| other == name)
            .then_some(name)
    })
}

/// Finds the named seats and checks that all are available (unless the test-only fault
/// `skip_seat_check` says not to).
fn resolve_seats(
    event: &Event,
    names: &[String],
    check_available: bool,
) -> Result<Positions, Rejection> {
    let mut positions = Positions::with_capacity(names.len());
    let mut missing = Vec::new();
    let mut taken = Vec::new();
    for name in names {
        match event.seat_position(name) {
            None => missing.push(name.clone()),
            Some(position) => {
                if check_available && event.seats[position as usize].state != SeatState::Available {
                    taken.push(name.clone());
                }
                positions.push(position);
            }
        }
    }
    if !missing.is_empty() {
        return Err(Rejection::SeatNotFound {
            seats: first_few(missing),
        });
    }
    if !taken.is_empty() {
        return Err(Rejection::SeatUnavailable {
            seats: first_few(taken),
        });
    }
    Ok(positions)
}

/// Checks that every pool line exists and has the quantity free.
fn check_pools(event: &Event, lines: &[PoolQuantity]) -> Result<(), Rejection> {
    if lines.is_empty() {
        return Ok(());
    }
    let missing: Vec<String> = lines
        .iter()
        .filter(|line| !event.pools.contains_key(&line.pool_id))
        .map(|line| line.pool_id.clone())
        .collect();
    if !missing.is_empty() {
        return Err(Rejection::PoolNotFound {
            pools: first_few(missing),
        });
    }
    let short: Vec<PoolShortage> = lines
        .iter()
        .filter_map(|line| {
            let available = event.pools[&line.pool_id].available();
            (u64::from(line.quantity) > available).then(|| PoolShortage {
                pool_id: line.pool_id.clone(),
                requested: line.quantity,
                available,
            })
        })
        .collect();
    if !short.is_empty() {
        return Err(Rejection::PoolExhausted { pools: short });
    }
    Ok(())
}

/// A run of adjacent available seats in one row: `seats[start..end]` of the row's list.
struct Placement {
    row: usize,
    start: usize,
    orphan: bool,
    distance_from_center: u64,
}

/// Chooses `best.count` seats next to each other in one row.
///
/// Rows are ranked in creation order (admins list the best rows first); within a row the
/// block nearest the row's centre wins. A block that would leave a single empty seat beside
/// it (an orphan nobody can buy with a friend) is taken only when no other block exists.
fn choose_best_available(
    event: &Event,
    best: &BestAvailable,
    excluded: &[u32],
) -> Result<Vec<u32>, Rejection> {
    let count = best.count as usize;
    let free = |position: u32| {
        event.seats[position as usize].state == SeatState::Available
            && !excluded.contains(&position)
    };
    let mut fallback: Option<Placement> = None;
    for (row_position, row) in event.rows.iter().enumerate() {
        if best
            .section
            .as_deref()
            .is_some_and(|section| *row.section != *section)
        {
            continue;
        }
        let numbers = |index: usize| event.seats[row.seats[index] as usize].number;
        let row_center = match (row.seats.first(), row.seats.last()) {
            (Some(&first), Some(&last)) => {
                u64::from(event.seats[first as usize].number)
                    + u64::from(event.seats[last as usize].number)
            }
            _ => continue,
        };
        let mut row_best: Option<Placement> = None;
        let mut run_start = 0;
        while run_start < row.seats.len() {
            if !free(row.seats[run_start]) {
                run_start += 1;
                continue;
            }
            let mut run_end = run_start + 1;
            while run_end < row.seats.len()
                && free(row.seats[run_end])
                && numbers(run_end) == numbers(run_end - 1) + 1
            {
                run_end += 1;
            }
            let run_length = run_end - run_start;
            for start in run_start..=(run_end.saturating_sub(count)).max(run_start) {
                if run_length < count {
                    break;
                }
                let left_gap = start - run_start;
                let right_gap = run_end - (start + count);
                let block_center =
                    u64::from(numbers(start)) + u64::from(numbers(start + count - 1));
                let candidate = Placement {
                    row: row_position,
                    start,
                    orphan: left_gap == 1 || right_gap == 1,
                    distance_from_center: block_center.abs_diff(row_center),
                };
                let better = row_best.as_ref().is_none_or(|current| {
                    (candidate.orphan, candidate.distance_from_center)
                        < (current.orphan, current.distance_from_center)
                });
                if better {
                    row_best = Some(candidate);
                }
            }
            run_start = run_end;
        }
        match row_best {
            Some(placement) if !placement.orphan => {
                return Ok(take_placement(event, &placement, count))
            }
            Some(placement) if fallback.is_none() => fallback = Some(placement),
            _ => {}
        }
    }
    if let Some(placement) = fallback {
        return Ok(take_placement(event, &placement, count));
    }
    if best.allow_split {
        let chosen: Vec<u32> = event
            .rows
            .iter()
            .filter(|row| {
                best.section
                    .as_deref()
                    .is_none_or(|section| *row.section == *section)
            })
            .flat_map(|row| row.seats.iter().copied())
            .filter(|&position| free(position))
            .take(count)
            .collect();
        if chosen.len() == count {
            return Ok(chosen);
        }
    }
    Err(Rejection::NoAdjacentSeats {
        count: best.count,
        section: best.section.clone(),
    })
}

fn take_placement(event: &Event, placement: &Placement, count: usize) -> Vec<u32> {
    event.rows[placement.row].seats[placement.start..placement.start + count].to_vec()
}

/// A hold's pool lines, copied. Nearly every hold of seats has none, and `Vec::clone` of an
/// empty list is not free.
#[inline]
fn clone_lines(lines: &[PoolQuantity]) -> Vec<PoolQuantity> {
    if lines.is_empty() {
        Vec::new()
    } else {
        lines.to_vec()
    }
}

/// The answer about `hold` (id `id`) of `event`.
fn hold_view(ids: IdKey, event: &Event, id: u64, hold: &Hold) -> HoldView {
    HoldView {
        hold_id: ids.compact(HOLD_ID_PREFIX, id),
        status: hold.status,
        event_id: hold.event_id.clone(),
        customer_id: hold.customer_id.clone(),
        seats: hold
            .seats
            .iter()
            .map(|&p| event.seats[p as usize].id.clone())
            .collect(),
        pools: clone_lines(&hold.pools),
        amount: hold.amount,
        currency: CompactString::from(event.currency.as_str()),
        created_at_ms: hold.created_at_ms,
        expires_at_ms: hold.expires_at_ms,
        life_ends_at_ms: hold.life_ends_at_ms,
        booking_id: hold
            .booking
            .map(|booking| ids.compact(BOOKING_ID_PREFIX, booking.get())),
    }
}

/// The answer hold `id` got when it was made, for a replay of the request that made it: its
/// view now, with the status, expiry and booking it had then (the rest of a hold never
/// changes). `None` when the hold or its event is not there.
pub(crate) fn answer_as_made(
    ids: IdKey,
    holds: &IdMap<Hold>,
    events: &BTreeMap<String, Event>,
    id: u64,
    expires_at_ms: u64,
) -> Option<Outcome> {
    let hold = holds.get(&id)?;
    let mut view = hold_view(ids, events.get(&*hold.event_id)?, id, hold);
    view.status = HoldStatus::Active;
    view.expires_at_ms = expires_at_ms;
    view.booking_id = None;
    Some(Outcome::Held(Box::new(view)))
}

/// Rebuilds the answers that request-id records keep by reference
/// ([`crate::idempotency::Kept::Held`]): their holds are there as long as the records are.
pub(crate) fn remembered_answers<'a>(
    ids: IdKey,
    holds: &'a IdMap<Hold>,
    events: &'a BTreeMap<String, Event>,
) -> impl Fn(u64, u64) -> Outcome + 'a {
    move |id, expires_at_ms| {
        answer_as_made(ids, holds, events, id, expires_at_ms)
            .expect("a hold remembered by reference outlives its request id")
    }
}

impl StateMachine {
    pub(crate) fn hold(&mut self, request: &HoldRequest) -> Result<Outcome, Rejection> {
        let ttl_ms = validate_hold_request(request)?;
        let StateMachine {
            config,
            now_ms,
            last_hold,
            events,
            holds,
            expiry_queue,
            ..
        } = self;
        let holds_max = config.holds_per_customer_per_event_max;
        let event = events
            .get_mut(&request.event_id)
            .ok_or_else(|| Rejection::EventNotFound {
                event_id: request.event_id.clone(),
            })?;
        if event.cancelled_at_ms.is_some() {
            return Err(Rejection::EventCancelled {
                event_id: request.event_id.clone(),
            });
        }
        let customer_tag = event.customer_holds.tag(&request.customer_id);
        let active = event
            .customer_holds
            .count(customer_tag, &request.customer_id);
        if active >= holds_max {
            return Err(Rejection::HoldLimitReached {
                customer_id: request.customer_id.clone(),
                max: holds_max,
            });
        }
        let check_seats = !config.faults.skip_seat_check;
        let mut seats = resolve_seats(event, &request.seats, check_seats)?;
        check_pools(event, &request.pools)?;
        if let Some(best) = &request.best_available {
            let chosen = choose_best_available(event, best, &seats)?;
            seats.extend(chosen);
        }
        let amount = seats
            .iter()
            .map(|&p| event.seats[p as usize].price)
            .sum::<u64>()
            + request
                .pools
                .iter()
                .map(|line| event.pools[&line.pool_id].price * u64::from(line.quantity))
                .sum::<u64>();

        // Everything is checked: from here on the hold cannot fail.
        *last_hold += 1;
        let hold_id = *last_hold;
        for &position in &seats {
            event.set_seat_state(position, SeatState::Held(hold_id));
        }
        for line in &request.pools {
            event
                .pools
                .get_mut(&line.pool_id)
                .expect("pool checked above")
                .held += u64::from(line.quantity);
        }
        event.version += 1;
        event.customer_holds.add(customer_tag, &request.customer_id);
        let now_ms = *now_ms;
        let life_ends_at_ms = now_ms.saturating_add(config.hold_life_ms_max);
        let hold = Hold {
            event_id: CompactString::from(request.event_id.as_str()),
            customer_id: CompactString::from(request.customer_id.as_str()),
            seats,
            pools: clone_lines(&request.pools).into_boxed_slice(),
            amount,
            created_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(ttl_ms).min(life_ends_at_ms),
            life_ends_at_ms,
            status: HoldStatus::Active,
            ended_at_ms: 0,
            booking: None,
        };
        expiry_queue.insert(hold.expires_at_ms, hold_id);
        let view = hold_view(self.ids, event, hold_id, &hold);
        holds.insert(hold_id, hold);
        // Copies of inline ids: no allocation for ids of up to 24 bytes.
        self.emit(OutboxKind::HoldPlaced {
            hold_id: view.hold_id.clone(),
            event_id: view.event_id.clone(),
            customer_id: view.customer_id.clone(),
            amount: view.amount,
            currency: view.currency.clone(),
            expires_at_ms: view.expires_at_ms,
        });
        Ok(Outcome::Held(Box::new(view)))
    }

    /// Finds an active, unexpired hold.
    pub(crate) fn live_hold(&self, hold_id: &str) -> Result<u64, Rejection> {
        let not_found = || Rejection::HoldNotFound {
            hold_id: hold_id.to_string(),
        };
        let id = self
            .ids
            .parse(HOLD_ID_PREFIX, hold_id)
            .ok_or_else(not_found)?;
        let hold = self.holds.get(&id).ok_or_else(not_found)?;
        // An expired hold answers HOLD_EXPIRED whether or not an expiry entry ended it yet.
        if hold.status == HoldStatus::Expired
            || (hold.status == HoldStatus::Active && self.now_ms >= hold.expires_at_ms)
        {
            return Err(Rejection::HoldExpired {
                hold_id: hold_id.to_string(),
                expired_at_ms: hold.expires_at_ms,
            });
        }
        if hold.status != HoldStatus::Active {
            return Err(Rejection::HoldNotActive {
                hold_id: hold_id.to_string(),
                status: hold.status,
            });
        }
        if self.now_ms >= hold.expires_at_ms {
            return Err(Rejection::HoldExpired {
                hold_id: hold_id.to_string(),
                expired_at_ms: hold.expires_at_ms,
            });
        }
        Ok(id)
    }

    pub(crate) fn extend_hold(
        &mut self,
        hold_id: &str,
        ttl_seconds: u32,
    ) -> Result<Outcome, Rejection> {
        let ttl_ms = validate_ttl(ttl_seconds)?;
        let id = self.live_hold(hold_id)?;
        let now_ms = self.now_ms;
        let hold = self.holds.get_mut(&id).expect("live hold exists");
        let expires_at_ms = now_ms
            .saturating_add(ttl_ms)
            .min(hold.life_ends_at_ms)
            .max(hold.expires_at_ms);
        self.expiry_queue.remove(hold.expires_at_ms, id);
        hold.expires_at_ms = expires_at_ms;
        self.expiry_queue.insert(expires_at_ms, id);
        let hold = &self.holds[&id];
        Ok(Outcome::Extended(Box::new(self.hold_view(id, hold))))
    }

    /// Releases an active hold. A hold whose time has passed but that no expiry entry has
    /// ended yet may still be released: its items are freed either way.
    pub(crate) fn release_hold(&mut self, hold_id: &str) -> Result<Outcome, Rejection> {
        let id = match self.live_hold(hold_id) {
            Ok(id) => id,
            // Due but not yet ended by an expiry entry: releasing frees the items all the same.
            Err(rejection @ Rejection::HoldExpired { .. }) => {
                let id = self
                    .ids
                    .parse(HOLD_ID_PREFIX, hold_id)
                    .expect("parsed before");
                if self.holds[&id].status != HoldStatus::Active {
                    return Err(rejection);
                }
                id
            }
            Err(rejection) => return Err(rejection),
        };
        self.end_hold(id, HoldStatus::Released, None);
        self.emit_released(id);
        let hold = &self.holds[&id];
        Ok(Outcome::Released(Box::new(self.hold_view(id, hold))))
    }

    /// Tells the outbox that hold `id` was released.
    pub(crate) fn emit_released(&mut self, id: u64) {
        let hold = &self.holds[&id];
        let kind = OutboxKind::HoldReleased {
            hold_id: self.ids.compact(HOLD_ID_PREFIX, id),
            event_id: hold.event_id.clone(),
            customer_id: hold.customer_id.clone(),
        };
        self.emit(kind);
    }

    /// Ends an active hold: frees its items (or books them, for a confirm) and updates every
    /// index that tracks active holds.
    pub(crate) fn end_hold(&mut self, id: u64, status: HoldStatus, booking: Option<u64>) {
        let now_ms = self.now_ms;
        let skip_seat_check = self.config.faults.skip_seat_check;
        let hold = self.holds.get_mut(&id).expect("hold exists");
        debug_assert_eq!(hold.status, HoldStatus::Active);
        hold.end(status, now_ms, booking.and_then(NonZeroU64::new));
        self.expiry_queue.remove(hold.expires_at_ms, id);
        self.ended_holds.insert(now_ms, id);
        let event = self
            .events
            .get_mut(&*hold.event_id)
            .expect("a hold's event exists");
        let seat_state = booking.map_or(SeatState::Available, SeatState::Booked);
        for &position in &hold.seats {
            // The test-only fault double-books on purpose; the simulations' checkers, not
            // this assertion, must be the ones to notice.
            debug_assert!(
                skip_seat_check || event.seats[position as usize].state == SeatState::Held(id),
                "a held seat names its hold"
            );
            event.set_seat_state(position, seat_state);
        }
        for line in &hold.pools {
            let pool = event
                .pools
                .get_mut(&line.pool_id)
                .expect("a held pool exists");
            pool.held -= u64::from(line.quantity);
            if booking.is_some() {
                pool.booked += u64::from(line.quantity);
            }
        }
        event.version += 1;
        event.customer_holds.remove_one(&hold.customer_id);
    }

    /// Confirms a hold into a booking. A refused confirm whose payment was charged records a
    /// refund owed in the same entry.
    ///
    /// A payment the state already knows is never used twice and never refunded twice: a
    /// confirm whose payment bought this hold's booking (a retry whose idempotency key was
    /// forgotten, or whose hold was pruned since) answers that booking; one whose payment
    /// bought another hold's booking is refused without a refund (it is that booking's
    /// money); one whose payment is already owed back answers that refund.
    pub(crate) fn confirm(&mut self, hold_id: &str, payment: &PaymentRecord) -> Outcome {
        let used = self
            .payment_uses
            .get(&payment_key(&payment.provider, &payment.payment_id))
            .copied();
        match used {
            Some(PaymentUse::Booking(booking)) => {
                let hold = self.bookings[&booking].hold;
                if self.ids.parse(HOLD_ID_PREFIX, hold_id) == Some(hold) {
                    return Outcome::Confirmed(Box::new(self.booking_view(booking)));
                }
                return Outcome::Rejected(Rejection::invalid(
                    "payment",
                    format!(
                        "{} {} paid for booking {}",
                        payment.provider,
                        payment.payment_id,
                        self.ids.format(BOOKING_ID_PREFIX, booking)
                    ),
                ));
            }
            Some(PaymentUse::Refund(refund)) => {
                // Money being given back cannot buy the hold: answer its refund.
                let rejection = self.live_hold(hold_id).err().unwrap_or_else(|| {
                    Rejection::invalid(
                        "payment",
                        format!(
                            "{} {} is owed back by refund {}",
                            payment.provider,
                            payment.payment_id,
                            self.ids.format(REFUND_ID_PREFIX, refund)
                        ),
                    )
                });
                return self.refund_unbooked_charge(hold_id, payment, rejection);
            }
            None => {}
        }
        match self.try_confirm(hold_id, payment) {
            Ok(outcome) => outcome,
            Err(rejection) => self.refund_unbooked_charge(hold_id, payment, rejection),
        }
    }

    /// The answer to a confirm refused with `rejection` before its payment bought anything:
    /// the payment is owed back (a refund recorded in the same entry) when it is a charge
    /// the state does not know yet, its refund when it is owed back already.
    pub(crate) fn refund_unbooked_charge(
        &mut self,
        hold_id: &str,
        payment: &PaymentRecord,
        rejection: Rejection,
    ) -> Outcome {
        if payment.amount == 0 || !payment.is_recordable() {
            return Outcome::Rejected(rejection);
        }
        match self
            .payment_uses
            .get(&payment_key(&payment.provider, &payment.payment_id))
            .copied()
        {
            // It is a booking's money: never refunded for another request.
            Some(PaymentUse::Booking(_)) => Outcome::Rejected(rejection),
            Some(PaymentUse::Refund(refund)) => {
                let refund = self.refund_view(refund).expect("an indexed refund exists");
                Outcome::ConfirmRefused { rejection, refund }
            }
            None => {
                let hold = self.ids.parse(HOLD_ID_PREFIX, hold_id);
                let currency = hold
                    .and_then(|id| self.holds.get(&id))
                    .and_then(|hold| self.events.get(&*hold.event_id))
                    .map_or_else(String::new, |event| event.currency.clone());
                let refund = self.record_refund(hold_id, None, payment, currency);
                Outcome::ConfirmRefused { rejection, refund }
            }
        }
    }

    fn try_confirm(
        &mut self,
        hold_id: &str,
        payment: &PaymentRecord,
    ) -> Result<Outcome, Rejection> {
        if !payment.is_recordable() {
            return Err(Rejection::invalid(
                "payment",
                "provider and payment_id must be 1 to 256 bytes",
            ));
        }
        let id = self.live_hold(hold_id)?;
        let hold = &self.holds[&id];
        if payment.amount != hold.amount {
            return Err(Rejection::PaymentAmountMismatch {
                expected: hold.amount,
                charged: payment.amount,
            });
        }
        self.last_booking += 1;
        let booking_id = self.last_booking;
        let booking = Booking {
            hold: id,
            event_id: hold.event_id.clone(),
            customer_id: hold.customer_id.clone(),
            seats: hold.seats.clone(),
            pools: hold.pools.clone(),
            amount: hold.amount,
            payment: payment.clone(),
            created_at_ms: self.now_ms,
            status: BookingStatus::Confirmed,
            cancelled_at_ms: None,
            cancel_reason: None,
            refund: None,
        };
        self.end_hold(id, HoldStatus::Confirmed, Some(booking_id));
        let currency = self.events[&*booking.event_id].currency.clone();
        self.emit(OutboxKind::BookingConfirmed {
            booking_id: self.ids.format(BOOKING_ID_PREFIX, booking_id),
            hold_id: hold_id.to_string(),
            event_id: String::from(&*booking.event_id),
            customer_id: String::from(&*booking.customer_id),
            amount: booking.amount,
            currency,
        });
        self.customer_bookings
            .get_or_default(booking.customer_id.clone())
            .push(booking_id);
        self.payment_uses.insert(
            payment_key(&payment.provider, &payment.payment_id),
            PaymentUse::Booking(booking_id),
        );
        self.bookings.insert(booking_id, booking);
        Ok(Outcome::Confirmed(Box::new(self.booking_view(booking_id))))
    }

    pub(crate) fn record_refund(
        &mut self,
        hold_id: &str,
        booking: Option<u64>,
        payment: &PaymentRecord,
        currency: String,
    ) -> crate::outcome::RefundView {
        self.last_refund += 1;
        let refund_id = self.last_refund;
        let refund = Refund {
            hold: self.ids.parse(HOLD_ID_PREFIX, hold_id).unwrap_or(0),
            booking,
            provider: payment.provider.clone(),
            payment_id: payment.payment_id.clone(),
            amount: payment.amount,
            currency,
            created_at_ms: self.now_ms,
            status: RefundStatus::Pending,
            refunded_at_ms: None,
            attempts: 0,
            last_attempt_at_ms: None,
            failure_reason: None,
        };
        let view = self.refund_view_of(refund_id, &refund, hold_id);
        self.emit(OutboxKind::RefundOwed {
            refund_id: view.refund_id.clone(),
            hold_id: hold_id.to_string(),
            booking_id: view.booking_id.clone(),
            amount: refund.amount,
            currency: refund.currency.clone(),
        });
        if booking.is_none() {
            // A booking's refund shares the booking's payment, which the booking names.
            self.payment_uses.insert(
                payment_key(&payment.provider, &payment.payment_id),
                PaymentUse::Refund(refund_id),
            );
        }
        self.refunds.insert(refund_id, refund);
        self.pending_refunds.insert(refund_id);
        view
    }

    pub(crate) fn expire_holds(&mut self, max_holds: u32) -> Result<Outcome, Rejection> {
        if max_holds == 0 || max_holds > EXPIRE_HOLDS_PER_ENTRY_MAX {
            return Err(Rejection::InvalidQuantity {
                field: "max_holds".into(),
                reason: format!("must be 1 to {EXPIRE_HOLDS_PER_ENTRY_MAX}"),
            });
        }
        let mut hold_ids = Vec::new();
        while hold_ids.len() < max_holds as usize {
            let Some((expires_at_ms, id)) = self.expiry_queue.first() else {
                break;
            };
            if expires_at_ms > self.now_ms {
                break;
            }
            self.end_hold(id, HoldStatus::Expired, None);
            let hold = &self.holds[&id];
            let kind = OutboxKind::HoldExpired {
                hold_id: self.ids.format(HOLD_ID_PREFIX, id),
                event_id: String::from(&*hold.event_id),
                customer_id: String::from(&*hold.customer_id),
            };
            self.emit(kind);
            hold_ids.push(self.ids.format(HOLD_ID_PREFIX, id));
        }
        Ok(Outcome::HoldsExpired { hold_ids })
    }

    /// Appends the bincode encoding of [`answer_as_made`] to `out`, written from the hold
    /// itself. Snapshots write every remembered hold answer this way, while apply waits:
    /// building the view first costs ~250 instructions more a record. The snapshot test
    /// that compares the piecewise writer with the one-value encoding (which goes through
    /// [`answer_as_made`]) keeps the two equal.
    pub(crate) fn write_answer_as_made(&self, id: u64, expires_at_ms: u64, out: &mut Vec<u8>) {
        let hold = self
            .holds
            .get(&id)
            .expect("a hold remembered by reference outlives its request id");
        let event = &self.events[&*hold.event_id];
        crate::fastcode::held_fields(
            crate::fastcode::HeldFields {
                hold_id: &self.ids.compact(HOLD_ID_PREFIX, id),
                status: HoldStatus::Active,
                event_id: &hold.event_id,
                customer_id: &hold.customer_id,
                seats: hold
                    .seats
                    .iter()
                    .map(|&position| event.seats[position as usize].id.as_str()),
                pools: &hold.pools,
                amount: hold.amount,
                currency: &event.currency,
                created_at_ms: hold.created_at_ms,
                expires_at_ms,
                life_ends_at_ms: hold.life_ends_at_ms,
                booking_id: None,
            },
            out,
        );
    }

    pub(crate) fn hold_view(&self, id: u64, hold: &Hold) -> HoldView {
        hold_view(self.ids, &self.events[&*hold.event_id], id, hold)
    }

    /// A hold, active or recently ended.
    pub fn hold_by_id(&self, hold_id: &str) -> Option<HoldView> {
        let id = self.ids.parse(HOLD_ID_PREFIX, hold_id)?;
        self.holds.get(&id).map(|hold| self.hold_view(id, hold))
    }

    /// The earliest expiry among active holds, for the leader's expiry ticker.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.expiry_queue
            .first()
            .map(|(expires_at_ms, _)| expires_at_ms)
    }

    /// Active holds whose time has passed at `now_ms`, counted up to `limit`.
    pub fn holds_due(&self, now_ms: u64, limit: usize) -> usize {
        self.expiry_queue
            .iter()
            .take_while(|&(at, _)| at <= now_ms)
            .take(limit)
            .count()
    }

    /// Active holds.
    pub fn active_holds(&self) -> usize {
        self.expiry_queue.len()
    }
}
