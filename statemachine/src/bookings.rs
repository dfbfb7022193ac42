//! Bookings after confirmation: cancellation with a refund owed, refunds paid out, and the
//! queries that read bookings and a customer's history.

use compact_str::CompactString;

use crate::inventory::{validate_text, SeatState};
use crate::limits::{HISTORY_PAGE_MAX, REFUNDS_PAGE_MAX, REFUNDS_SCAN_MAX};
use crate::outcome::{
    BookingPage, BookingStatus, BookingView, OutboxKind, Outcome, RefundPage, RefundStatus,
    RefundView, Rejection,
};
use crate::state::{Refund, BOOKING_ID_PREFIX, HOLD_ID_PREFIX, REFUND_ID_PREFIX};
use crate::StateMachine;

impl StateMachine {
    pub(crate) fn cancel_booking(
        &mut self,
        booking_id: &str,
        reason: &str,
    ) -> Result<Outcome, Rejection> {
        validate_text("reason", reason)?;
        let not_found = || Rejection::BookingNotFound {
            booking_id: booking_id.to_string(),
        };
        let id = self
            .ids
            .parse(BOOKING_ID_PREFIX, booking_id)
            .ok_or_else(not_found)?;
        let booking = self.bookings.get(&id).ok_or_else(not_found)?;
        if booking.status != BookingStatus::Confirmed {
            return Err(Rejection::BookingNotActive {
                booking_id: booking_id.to_string(),
            });
        }
        let now_ms = self.now_ms;
        let skip_seat_check = self.config.faults.skip_seat_check;
        let booking = self.bookings.get_mut(&id).expect("booking exists");
        booking.status = BookingStatus::Cancelled;
        booking.cancelled_at_ms = Some(now_ms);
        booking.cancel_reason = Some(reason.to_string());
        let event = self
            .events
            .get_mut(&*booking.event_id)
            .expect("a booking's event exists");
        for &position in &booking.seats {
            // See `end_hold`: under the test-only fault the checkers must notice, not this.
            debug_assert!(
                skip_seat_check || event.seats[position as usize].state == SeatState::Booked(id),
                "a booked seat names its booking"
            );
            event.set_seat_state(position, SeatState::Available);
        }
        for line in &booking.pools {
            let pool = event
                .pools
                .get_mut(&line.pool_id)
                .expect("a booked pool exists");
            pool.booked -= u64::from(line.quantity);
        }
        event.version += 1;
        let currency = event.currency.clone();
        let booking = booking.clone();
        self.emit(OutboxKind::BookingCancelled {
            booking_id: booking_id.to_string(),
            event_id: String::from(&*booking.event_id),
            customer_id: String::from(&*booking.customer_id),
            reason: reason.to_string(),
        });
        if booking.payment.amount > 0 {
            let hold_id = self.ids.format(HOLD_ID_PREFIX, booking.hold);
            let refund = self.record_refund(&hold_id, Some(id), &booking.payment, currency);
            let refund_id = self
                .ids
                .parse(REFUND_ID_PREFIX, &refund.refund_id)
                .expect("just formatted");
            self.bookings.get_mut(&id).expect("booking exists").refund = Some(refund_id);
        }
        Ok(Outcome::BookingCancelled(Box::new(self.booking_view(id))))
    }

    pub(crate) fn mark_refunded(&mut self, refund_id: &str) -> Result<Outcome, Rejection> {
        let not_found = || Rejection::RefundNotFound {
            refund_id: refund_id.to_string(),
        };
        let id = self
            .ids
            .parse(REFUND_ID_PREFIX, refund_id)
            .ok_or_else(not_found)?;
        let now_ms = self.now_ms;
        let refund = self.refunds.get_mut(&id).ok_or_else(not_found)?;
        if refund.status != RefundStatus::Pending {
            return Err(Rejection::RefundNotPending {
                refund_id: refund_id.to_string(),
            });
        }
        refund.status = RefundStatus::Refunded;
        refund.refunded_at_ms = Some(now_ms);
        self.pending_refunds.remove(&id);
        self.emit(OutboxKind::RefundPaid {
            refund_id: refund_id.to_string(),
        });
        Ok(Outcome::RefundMarked(Box::new(
            self.refund_view(id).expect("refund exists"),
        )))
    }

    /// Records a failed attempt to pay a pending refund (see `Command::RefundAttemptFailed`).
    /// The attempt number makes the report count once: a repeated proposal, or a report
    /// from a leader that was replaced mid-attempt, is refused as stale and changes nothing.
    pub(crate) fn refund_attempt_failed(
        &mut self,
        refund_id: &str,
        attempt: u32,
        reason: &str,
        give_up: bool,
    ) -> Result<Outcome, Rejection> {
        validate_text("reason", reason)?;
        let not_found = || Rejection::RefundNotFound {
            refund_id: refund_id.to_string(),
        };
        let id = self
            .ids
            .parse(REFUND_ID_PREFIX, refund_id)
            .ok_or_else(not_found)?;
        let now_ms = self.now_ms;
        let refund = self.refunds.get_mut(&id).ok_or_else(not_found)?;
        if refund.status != RefundStatus::Pending {
            return Err(Rejection::RefundNotPending {
                refund_id: refund_id.to_string(),
            });
        }
        if Some(attempt) != refund.attempts.checked_add(1) {
            return Err(Rejection::RefundAttemptStale {
                refund_id: refund_id.to_string(),
                attempts: refund.attempts,
            });
        }
        refund.attempts = attempt;
        refund.last_attempt_at_ms = Some(now_ms);
        refund.failure_reason = Some(reason.to_string());
        if give_up {
            refund.status = RefundStatus::Failed;
            self.pending_refunds.remove(&id);
            self.emit(OutboxKind::RefundFailed {
                refund_id: refund_id.to_string(),
                reason: reason.to_string(),
            });
        }
        Ok(Outcome::RefundAttemptRecorded(Box::new(
            self.refund_view(id).expect("refund exists"),
        )))
    }

    pub(crate) fn refund_view_of(&self, id: u64, refund: &Refund, hold_id: &str) -> RefundView {
        RefundView {
            refund_id: self.ids.format(REFUND_ID_PREFIX, id),
            status: refund.status,
            hold_id: hold_id.to_string(),
            booking_id: refund
                .booking
                .map(|booking| self.ids.format(BOOKING_ID_PREFIX, booking)),
            provider: refund.provider.clone(),
            payment_id: refund.payment_id.clone(),
            amount: refund.amount,
            currency: refund.currency.clone(),
            created_at_ms: refund.created_at_ms,
            refunded_at_ms: refund.refunded_at_ms,
            attempts: refund.attempts,
            last_attempt_at_ms: refund.last_attempt_at_ms,
            reason: refund.failure_reason.clone(),
        }
    }

    pub(crate) fn refund_view(&self, id: u64) -> Option<RefundView> {
        let refund = self.refunds.get(&id)?;
        Some(self.refund_view_of(id, refund, &self.ids.format(HOLD_ID_PREFIX, refund.hold)))
    }

    /// A refund by id.
    pub fn refund_by_id(&self, refund_id: &str) -> Option<RefundView> {
        self.refund_view(self.ids.parse(REFUND_ID_PREFIX, refund_id)?)
    }

    /// Refunds still to be paid out, oldest first, at most `limit`.
    pub fn pending_refunds(&self, limit: usize) -> Vec<RefundView> {
        self.pending_refunds
            .iter()
            .take(limit)
            .filter_map(|&id| self.refund_view(id))
            .collect()
    }

    /// Refunds oldest first, of one status when `status` is given, with an id above the
    /// refund `after`, at most `limit` (capped at [`REFUNDS_PAGE_MAX`]). Pending refunds
    /// come from their index; the other statuses are found by walking the refunds in id
    /// order, at most [`REFUNDS_SCAN_MAX`] of them per page (a page may then end early,
    /// with `next_after` to go on from).
    pub fn refunds_page(
        &self,
        status: Option<RefundStatus>,
        after: Option<&str>,
        limit: usize,
    ) -> RefundPage {
        let limit = limit.clamp(1, REFUNDS_PAGE_MAX);
        let first = match after {
            // An `after` that names no refund of ours starts past every refund.
            Some(after) => self
                .ids
                .parse(REFUND_ID_PREFIX, after)
                .map_or(u64::MAX, |id| id + 1),
            None => 0,
        };
        let mut refunds = Vec::new();
        let mut next_after = None;
        if status == Some(RefundStatus::Pending) {
            let mut ids = self.pending_refunds.range(first..);
            for &id in ids.by_ref().take(limit) {
                refunds.extend(self.refund_view(id));
            }
            if ids.next().is_some() {
                next_after = refunds.last().map(|view| view.refund_id.clone());
            }
            return RefundPage {
                refunds,
                next_after,
            };
        }
        let mut walked = self.refunds.iter_from(first);
        for (scanned, (id, refund)) in walked.by_ref().enumerate() {
            if refunds.len() == limit || scanned == REFUNDS_SCAN_MAX {
                next_after = Some(self.ids.format(REFUND_ID_PREFIX, id - 1));
                break;
            }
            if status.is_none_or(|status| status == refund.status) {
                refunds.push(self.refund_view_of(
                    id,
                    refund,
                    &self.ids.format(HOLD_ID_PREFIX, refund.hold),
                ));
            }
        }
        RefundPage {
            refunds,
            next_after,
        }
    }

    pub(crate) fn booking_view(&self, id: u64) -> BookingView {
        let booking = &self.bookings[&id];
        let event = &self.events[&*booking.event_id];
        BookingView {
            booking_id: self.ids.compact(BOOKING_ID_PREFIX, id),
            hold_id: self.ids.compact(HOLD_ID_PREFIX, booking.hold),
            status: booking.status,
            event_id: booking.event_id.clone(),
            customer_id: booking.customer_id.clone(),
            seats: booking
                .seats
                .iter()
                .map(|&p| event.seats[p as usize].id.clone())
                .collect(),
            pools: booking.pools.to_vec(),
            amount: booking.amount,
            currency: CompactString::from(event.currency.as_str()),
            payment: booking.payment.clone(),
            created_at_ms: booking.created_at_ms,
            cancelled_at_ms: booking.cancelled_at_ms,
            cancel_reason: booking.cancel_reason.clone(),
            refund: booking.refund.and_then(|refund| self.refund_view(refund)),
        }
    }

    /// A booking by id.
    pub fn booking_by_id(&self, booking_id: &str) -> Option<BookingView> {
        let id = self.ids.parse(BOOKING_ID_PREFIX, booking_id)?;
        self.bookings
            .contains_key(&id)
            .then(|| self.booking_view(id))
    }

    /// A customer's bookings, newest first, after the booking `after`, at most `limit`
    /// (capped at [`HISTORY_PAGE_MAX`]).
    pub fn customer_bookings(
        &self,
        customer_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> BookingPage {
        let limit = limit.clamp(1, HISTORY_PAGE_MAX);
        let ids: &[u64] = self
            .customer_bookings
            .get(customer_id)
            .map_or(&[], Vec::as_slice);
        // `ids` ascend; the page walks them backwards from just below `after`.
        let end = match after.and_then(|after| self.ids.parse(BOOKING_ID_PREFIX, after)) {
            Some(after) => ids.partition_point(|&id| id < after),
            None if after.is_some() => 0,
            None => ids.len(),
        };
        let start = end.saturating_sub(limit);
        let bookings: Vec<BookingView> = ids[start..end]
            .iter()
            .rev()
            .map(|&id| self.booking_view(id))
            .collect();
        let next_after = (start > 0)
            .then(|| bookings.last().map(|b| b.booking_id.to_string()))
            .flatten();
        BookingPage {
            bookings,
            next_after,
        }
    }
}
