//! Invariant checks over the whole state. Used by the property tests, by snapshot restore
//! (a snapshot that breaks them is corrupt) and by the simulation checkers.

use std::collections::{BTreeMap, BTreeSet};

use crate::inventory::SeatState;
use crate::outcome::{BookingStatus, HoldStatus, RefundStatus, Summary};
use crate::StateMachine;

/// A broken invariant, described.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invariant violated: {0}")]
pub struct InvariantViolation(pub String);

macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(InvariantViolation(format!($($message)+)));
        }
    };
}

impl StateMachine {
    /// Checks every invariant of the state; linear in its size.
    ///
    /// - every seat is in at most one active hold or confirmed booking, and its state says so;
    /// - for every pool, `held` and `booked` equal the sums over active holds and confirmed
    ///   bookings, and `held + booked <= capacity`;
    /// - every event's summary equals a recount;
    /// - the expiry queue holds exactly the active holds;
    /// - a cancelled event has nothing held or booked;
    /// - the search indexes list exactly the events that are not cancelled, at their start.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        let mut pool_use: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
        let mut active_holds = 0usize;
        // Active holds per event, counted once instead of once per event.
        let mut active_per_event: BTreeMap<&str, u64> = BTreeMap::new();
        for (id, hold) in self.holds.iter() {
            let Some(event) = self.events.get(&*hold.event_id) else {
                return Err(InvariantViolation(format!(
                    "hold {id} names a missing event"
                )));
            };
            if hold.status != HoldStatus::Active {
                continue;
            }
            active_holds += 1;
            *active_per_event.entry(&*hold.event_id).or_default() += 1;
            ensure!(
                self.expiry_queue.contains(hold.expires_at_ms, id),
                "active hold {id} is not in the expiry queue"
            );
            ensure!(
                hold.expires_at_ms <= hold.life_ends_at_ms,
                "hold {id} outlives its maximum life"
            );
            for &position in &hold.seats {
                let state = event.seats.get(position as usize).map(|seat| seat.state);
                ensure!(
                    state == Some(SeatState::Held(id)),
                    "seat {position} of active hold {id} is {state:?}"
                );
            }
            for line in &hold.pools {
                pool_use
                    .entry((&hold.event_id, &line.pool_id))
                    .or_default()
                    .0 += u64::from(line.quantity);
            }
        }
        ensure!(
            active_holds == self.expiry_queue.len(),
            "expiry queue has {} entries for {active_holds} active holds",
            self.expiry_queue.len()
        );
        for (id, booking) in self.bookings.iter() {
            if booking.status != BookingStatus::Confirmed {
                continue;
            }
            let event = &self.events[&*booking.event_id];
            for &position in &booking.seats {
                let state = event.seats.get(position as usize).map(|seat| seat.state);
                ensure!(
                    state == Some(SeatState::Booked(id)),
                    "seat {position} of booking {id} is {state:?}"
                );
            }
            for line in &booking.pools {
                pool_use
                    .entry((&booking.event_id, &line.pool_id))
                    .or_default()
                    .1 += u64::from(line.quantity);
            }
        }
        for (event_id, event) in &self.events {
            let mut recount = Summary::default();
            let mut customer_holds = 0u64;
            for seat in &event.seats {
                match seat.state {
                    SeatState::Removed => continue,
                    SeatState::Available => recount.seats_available += 1,
                    SeatState::Held(hold) => {
                        recount.seats_held += 1;
                        let owner = self.holds.get(&hold);
                        ensure!(
                            owner.is_some_and(
                                |h| h.status == HoldStatus::Active && *h.event_id == **event_id
                            ),
                            "seat {} is held by hold {hold}, which is not active",
                            seat.id
                        );
                    }
                    SeatState::Booked(booking) => {
                        recount.seats_booked += 1;
                        let owner = self.bookings.get(&booking);
                        ensure!(
                            owner.is_some_and(|b| b.status == BookingStatus::Confirmed
                                && *b.event_id == **event_id),
                            "seat {} is booked by booking {booking}, which is not confirmed",
                            seat.id
                        );
                    }
                }
                recount.seats_total += 1;
            }
            ensure!(
                recount == event.summary,
                "event {event_id} summary {:?} differs from recount {recount:?}",
                event.summary
            );
            for (pool_id, pool) in &event.pools {
                let (held, booked) = pool_use
                    .remove(&(event_id.as_str(), pool_id.as_str()))
                    .unwrap_or_default();
                ensure!(pool.held == held && pool.booked == booked, "pool {event_id}/{pool_id} counts held {} booked {} but holds and bookings use {held} and {booked}", pool.held, pool.booked);
                ensure!(
                    pool.held + pool.booked <= pool.capacity,
                    "pool {event_id}/{pool_id} is over capacity"
                );
            }
            customer_holds += event.customer_holds.total();
            let active_here = active_per_event
                .get(event_id.as_str())
                .copied()
                .unwrap_or(0);
            ensure!(customer_holds == active_here, "event {event_id} counts {customer_holds} customer holds for {active_here} active holds");
            if event.cancelled_at_ms.is_some() {
                let in_use = event.summary.seats_held
                    + event.summary.seats_booked
                    + event
                        .pools
                        .values()
                        .map(|pool| pool.held + pool.booked)
                        .sum::<u64>();
                ensure!(
                    in_use == 0,
                    "cancelled event {event_id} still has {in_use} items held or booked"
                );
            }
        }
        if let Err(difference) = self.search_index_is_exact() {
            return Err(InvariantViolation(difference));
        }
        let pending: BTreeSet<u64> = self
            .refunds
            .iter()
            .filter(|(_, refund)| refund.status == RefundStatus::Pending)
            .map(|(id, _)| id)
            .collect();
        ensure!(
            pending == self.pending_refunds,
            "the pending refunds index {:?} differs from the pending refunds {:?}",
            self.pending_refunds,
            pending
        );
        ensure!(
            crate::state::payment_uses(&self.bookings, &self.refunds) == self.payment_uses,
            "the payment index differs from the bookings and refunds"
        );
        let last_event = self.outbox.next_index.saturating_sub(1);
        for (id, webhook) in &self.webhooks.by_id {
            ensure!(
                webhook.delivered_up_to <= last_event,
                "webhook {id} acknowledged {} beyond the last outbox event {last_event}",
                webhook.delivered_up_to
            );
        }
        for (id, refund) in self.refunds.iter() {
            ensure!(
                (refund.status == RefundStatus::Failed) <= refund.failure_reason.is_some(),
                "failed refund {id} has no reason"
            );
            ensure!(
                (refund.status == RefundStatus::Refunded) == refund.refunded_at_ms.is_some(),
                "refund {id} is {:?} with refunded_at_ms {:?}",
                refund.status,
                refund.refunded_at_ms
            );
        }
        ensure!(
            pool_use.is_empty(),
            "holds or bookings use pools that do not exist: {:?}",
            pool_use.keys().collect::<Vec<_>>()
        );
        Ok(())
    }
}
