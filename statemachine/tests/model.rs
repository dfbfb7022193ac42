//! Property tests: random command sequences checked against a small reference model.
//!
//! After every step: the outcome's code matches the model's prediction, every seat's status
//! and every pool's counters match the model, and `check_invariants` holds (a seat is in at
//! most one active hold or booking, `held + booked <= capacity`, summaries equal a recount).
//! A snapshot taken mid-sequence restores an identical state, a frozen copy taken
//! mid-sequence (what snapshots encode while apply goes on) keeps the bytes of its moment
//! whatever is applied after it, and applying the recorded log again from scratch gives
//! identical snapshot bytes.

mod common;

use std::collections::BTreeMap;

use common::{code, payment, START_MS};
use holdfast_statemachine::*;
use proptest::prelude::*;

const SEATS: usize = 8;
const POOL_CAPACITY: u64 = 6;
const CUSTOMERS: usize = 3;
const HOLDS_PER_CUSTOMER: u32 = 3;

#[derive(Clone, Debug)]
enum Op {
    Hold {
        customer: usize,
        seats: Vec<usize>,
        pool: u32,
        ttl_seconds: u32,
    },
    Extend {
        hold: usize,
        ttl_seconds: u32,
    },
    Release {
        hold: usize,
    },
    Confirm {
        hold: usize,
        right_amount: bool,
    },
    Cancel {
        booking: usize,
    },
    Expire,
    Advance {
        ms: u64,
    },
    ClockSkewBack {
        ms: u64,
    },
    KeyedRetry {
        key: usize,
    },
    Snapshot,
    Freeze,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..CUSTOMERS, prop::collection::vec(0..SEATS, 0..3), 0u32..4, 1u32..30)
            .prop_map(|(customer, seats, pool, ttl_seconds)| Op::Hold { customer, seats, pool, ttl_seconds }),
        1 => (0usize..12, 1u32..30).prop_map(|(hold, ttl_seconds)| Op::Extend { hold, ttl_seconds }),
        1 => (0usize..12).prop_map(|hold| Op::Release { hold }),
        3 => (0usize..12, prop::bool::weighted(0.9)).prop_map(|(hold, right_amount)| Op::Confirm { hold, right_amount }),
        1 => (0usize..8).prop_map(|booking| Op::Cancel { booking }),
        1 => Just(Op::Expire),
        2 => (1u64..15_000).prop_map(|ms| Op::Advance { ms }),
        1 => (1u64..5_000).prop_map(|ms| Op::ClockSkewBack { ms }),
        1 => (0usize..6).prop_map(|key| Op::KeyedRetry { key }),
        1 => Just(Op::Snapshot),
        1 => Just(Op::Freeze),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SeatModel {
    Free,
    Held(usize),
    Booked(usize),
}

#[derive(Clone, Debug)]
struct HoldModel {
    customer: usize,
    seats: Vec<usize>,
    pool: u32,
    amount: u64,
    expires_at: u64,
    life_ends_at: u64,
    active: bool,
    expired: bool,
}

#[derive(Clone, Debug)]
struct BookingModel {
    seats: Vec<usize>,
    pool: u32,
    confirmed: bool,
}

/// The reference: plain vectors and linear scans, written without looking at the indexes.
#[derive(Clone, Debug, Default)]
struct Model {
    /// The state's time: the largest entry time applied so far.
    now: u64,
    /// The leader's clock, stamped into the next entry.
    clock: u64,
    seats: Vec<SeatModel>,
    pool_held: u64,
    pool_booked: u64,
    holds: Vec<HoldModel>,
    bookings: Vec<BookingModel>,
}

fn seat_id(seat: usize) -> String {
    format!("M-1-{}", seat + 1)
}

const SEAT_PRICE: u64 = 700;
const POOL_PRICE: u64 = 300;

impl Model {
    fn hold(
        &mut self,
        customer: usize,
        seats: &[usize],
        pool: u32,
        ttl_seconds: u32,
    ) -> &'static str {
        let mut unique = seats.to_vec();
        unique.sort_unstable();
        unique.dedup();
        if unique.len() != seats.len() {
            return "INVALID_FIELD";
        }
        if seats.is_empty() && pool == 0 {
            return "INVALID_FIELD";
        }
        let active = self
            .holds
            .iter()
            .filter(|h| h.active && h.customer == customer)
            .count() as u32;
        if active >= HOLDS_PER_CUSTOMER {
            return "HOLD_LIMIT_REACHED";
        }
        if seats
            .iter()
            .any(|&seat| self.seats[seat] != SeatModel::Free)
        {
            return "SEAT_UNAVAILABLE";
        }
        if u64::from(pool) > POOL_CAPACITY - self.pool_held - self.pool_booked {
            return "POOL_EXHAUSTED";
        }
        let index = self.holds.len();
        for &seat in seats {
            self.seats[seat] = SeatModel::Held(index);
        }
        self.pool_held += u64::from(pool);
        let life_ends_at = self.now + 2 * 3600 * 1000;
        self.holds.push(HoldModel {
            customer,
            seats: seats.to_vec(),
            pool,
            amount: seats.len() as u64 * SEAT_PRICE + u64::from(pool) * POOL_PRICE,
            expires_at: (self.now + u64::from(ttl_seconds) * 1000).min(life_ends_at),
            life_ends_at,
            active: true,
            expired: false,
        });
        "OK"
    }

    fn end_hold(&mut self, hold: usize, booking: Option<usize>) {
        let model = &mut self.holds[hold];
        model.active = false;
        for &seat in &model.seats {
            self.seats[seat] = booking.map_or(SeatModel::Free, SeatModel::Booked);
        }
        self.pool_held -= u64::from(model.pool);
        if booking.is_some() {
            self.pool_booked += u64::from(model.pool);
        }
    }

    fn live(&self, hold: usize) -> Result<(), &'static str> {
        let Some(model) = self.holds.get(hold) else {
            return Err("HOLD_NOT_FOUND");
        };
        // An expired hold answers HOLD_EXPIRED whether or not an expiry entry ended it.
        if model.expired || (model.active && self.now >= model.expires_at) {
            return Err("HOLD_EXPIRED");
        }
        if !model.active {
            return Err("HOLD_NOT_ACTIVE");
        }
        Ok(())
    }

    fn extend(&mut self, hold: usize, ttl_seconds: u32) -> &'static str {
        if let Err(code) = self.live(hold) {
            return code;
        }
        let model = &mut self.holds[hold];
        model.expires_at = (self.now + u64::from(ttl_seconds) * 1000)
            .min(model.life_ends_at)
            .max(model.expires_at);
        "OK"
    }

    fn release(&mut self, hold: usize) -> &'static str {
        match self.live(hold) {
            Ok(()) => {}
            Err("HOLD_EXPIRED") if self.holds[hold].active => {}
            Err(code) => return code,
        }
        self.end_hold(hold, None);
        "OK"
    }

    fn confirm(&mut self, hold: usize, amount: u64) -> &'static str {
        if let Err(code) = self.live(hold) {
            return code;
        }
        if amount != self.holds[hold].amount {
            return "PAYMENT_AMOUNT_MISMATCH";
        }
        let booking = self.bookings.len();
        self.bookings.push(BookingModel {
            seats: self.holds[hold].seats.clone(),
            pool: self.holds[hold].pool,
            confirmed: true,
        });
        self.end_hold(hold, Some(booking));
        "OK"
    }

    fn cancel(&mut self, booking: usize) -> &'static str {
        let Some(model) = self.bookings.get_mut(booking) else {
            return "BOOKING_NOT_FOUND";
        };
        if !model.confirmed {
            return "BOOKING_NOT_ACTIVE";
        }
        model.confirmed = false;
        for &seat in &model.seats {
            self.seats[seat] = SeatModel::Free;
        }
        self.pool_booked -= u64::from(model.pool);
        "OK"
    }

    fn expire(&mut self) -> &'static str {
        let due: Vec<usize> = (0..self.holds.len())
            .filter(|&h| self.holds[h].active && self.holds[h].expires_at <= self.now)
            .collect();
        for hold in due {
            self.end_hold(hold, None);
            self.holds[hold].expired = true;
        }
        "OK"
    }
}

struct Run {
    state: StateMachine,
    model: Model,
    log: Vec<Entry>,
    /// Keyed commands already sent, with their first outcome.
    keyed: Vec<(String, Command, Outcome)>,
    /// Frozen copies taken so far, with the snapshot bytes of the state when each was.
    frozen: Vec<(FrozenState, Vec<u8>)>,
}

impl Run {
    fn new() -> Run {
        // Retention longer than any sequence's time span (at most 120 steps of 15 s), so
        // every retry must replay; and not longer than ended holds are kept (1 h), so a
        // hold's answer is remembered by reference to the hold.
        let config = Config {
            holds_per_customer_per_event_max: HOLDS_PER_CUSTOMER,
            idempotency_retention_ms: 45 * 60 * 1000,
            ..Config::default()
        };
        let mut run = Run {
            state: StateMachine::new(config),
            model: Model {
                now: START_MS,
                clock: START_MS,
                seats: vec![SeatModel::Free; SEATS],
                ..Model::default()
            },
            log: Vec::new(),
            keyed: Vec::new(),
            frozen: Vec::new(),
        };
        let create = CreateEvent {
            event_id: "m".into(),
            name: "model".into(),
            category: Category::Event,
            starts_at_ms: None,
            currency: "EUR".into(),
            seats: vec![],
            seat_blocks: vec![SeatBlock {
                section: "M".into(),
                rows: vec!["1".into()],
                seats_per_row: SEATS as u32,
                price: SEAT_PRICE,
            }],
            pools: vec![PoolSpec {
                id: "P".into(),
                capacity: POOL_CAPACITY,
                price: POOL_PRICE,
            }],
            listing: Default::default(),
        };
        let outcome = run.apply(None, Command::CreateEvent(create));
        assert!(outcome.is_success());
        run
    }

    fn apply(&mut self, request_id: Option<String>, command: Command) -> Outcome {
        let entry = Entry {
            time_ms: self.model.clock,
            request_id,
            command,
        };
        let outcome = self.state.apply(&entry);
        self.log.push(entry);
        outcome
    }

    fn hold_id(&self, hold: usize) -> String {
        format!("h_{}", hold + 1)
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        // Ops that apply an entry stamped with the leader's clock move the state's time.
        if !matches!(
            op,
            Op::Advance { .. }
                | Op::ClockSkewBack { .. }
                | Op::Snapshot
                | Op::Freeze
                | Op::KeyedRetry { .. }
        ) {
            self.model.now = self.model.now.max(self.model.clock);
        }
        let (expected, outcome) = match op {
            Op::Hold {
                customer,
                seats,
                pool,
                ttl_seconds,
            } => {
                let names: Vec<String> = seats.iter().map(|&s| seat_id(s)).collect();
                let pools = if *pool > 0 {
                    vec![PoolQuantity {
                        pool_id: "P".into(),
                        quantity: *pool,
                    }]
                } else {
                    vec![]
                };
                let command = Command::Hold(HoldRequest {
                    event_id: "m".into(),
                    customer_id: format!("c{customer}"),
                    seats: names,
                    pools,
                    best_available: None,
                    ttl_seconds: Some(*ttl_seconds),
                });
                let expected = self.model.hold(*customer, seats, *pool, *ttl_seconds);
                let key = format!("hold:{}", self.keyed.len());
                let outcome = self.apply(Some(key.clone()), command.clone());
                self.keyed.push((key, command, outcome.clone()));
                (expected, outcome)
            }
            Op::Extend { hold, ttl_seconds } => {
                let expected = self.model.extend(*hold, *ttl_seconds);
                (
                    expected,
                    self.apply(
                        None,
                        Command::ExtendHold {
                            hold_id: self.hold_id(*hold),
                            ttl_seconds: *ttl_seconds,
                        },
                    ),
                )
            }
            Op::Release { hold } => {
                let expected = self.model.release(*hold);
                (
                    expected,
                    self.apply(
                        None,
                        Command::ReleaseHold {
                            hold_id: self.hold_id(*hold),
                        },
                    ),
                )
            }
            Op::Confirm { hold, right_amount } => {
                let amount =
                    self.model.holds.get(*hold).map_or(1, |h| h.amount) + u64::from(!right_amount);
                let expected = self.model.confirm(*hold, amount);
                (
                    expected,
                    self.apply(
                        None,
                        Command::Confirm {
                            hold_id: self.hold_id(*hold),
                            payment: payment(amount),
                        },
                    ),
                )
            }
            Op::Cancel { booking } => {
                let expected = self.model.cancel(*booking);
                (
                    expected,
                    self.apply(
                        None,
                        Command::CancelBooking {
                            booking_id: format!("b_{}", booking + 1),
                            reason: String::new(),
                        },
                    ),
                )
            }
            Op::Expire => {
                let expected = self.model.expire();
                (
                    expected,
                    self.apply(None, Command::ExpireHolds { max_holds: 1000 }),
                )
            }
            Op::Advance { ms } => {
                self.model.clock += ms;
                return Ok(());
            }
            Op::ClockSkewBack { ms } => {
                // A new leader whose clock is behind stamps an older time; the state's time
                // must stay where it was.
                self.model.clock = self.model.clock.saturating_sub(*ms);
                self.model.now = self.model.now.max(self.model.clock);
                let entry = Entry {
                    time_ms: self.model.clock,
                    request_id: None,
                    command: Command::ExpireHolds { max_holds: 1000 },
                };
                let outcome = self.state.apply(&entry);
                self.log.push(entry);
                (self.model.expire(), outcome)
            }
            Op::KeyedRetry { key } => {
                let Some((key, command, first)) = self.keyed.get(*key).cloned() else {
                    return Ok(());
                };
                self.model.now = self.model.now.max(self.model.clock);
                let replay = self.apply(Some(key), command);
                prop_assert_eq!(replay, first, "a retried request must get its first answer");
                return Ok(());
            }
            Op::Snapshot => {
                let bytes = self.state.snapshot_bytes();
                let restored = StateMachine::from_snapshot_bytes(&bytes)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(restored.snapshot_bytes(), bytes.clone());
                self.state = restored;
                return Ok(());
            }
            Op::Freeze => {
                let frozen = self.state.frozen();
                let bytes = self.state.snapshot_bytes();
                prop_assert_eq!(frozen.snapshot_bytes(), bytes.clone());
                self.frozen.push((frozen, bytes));
                return Ok(());
            }
        };
        prop_assert_eq!(code(&outcome), expected, "op {:?} gave {:?}", op, outcome);
        Ok(())
    }

    fn compare(&self) -> Result<(), TestCaseError> {
        self.state
            .check_invariants()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let page = self.state.availability("m", None, None, 100).unwrap();
        for (seat, model) in self.model.seats.iter().enumerate() {
            let status = page.seats[seat].status;
            let expected = match model {
                SeatModel::Free => SeatStatus::Available,
                SeatModel::Held(_) => SeatStatus::Held,
                SeatModel::Booked(_) => SeatStatus::Booked,
            };
            prop_assert_eq!(status, expected, "seat {}", seat);
        }
        let pool = &page.pools[0];
        prop_assert_eq!(
            (pool.held, pool.booked),
            (self.model.pool_held, self.model.pool_booked)
        );
        // At most one active hold or confirmed booking per seat, seen from the model's side.
        let mut owners: BTreeMap<usize, usize> = BTreeMap::new();
        for hold in self.model.holds.iter().filter(|h| h.active) {
            for &seat in &hold.seats {
                *owners.entry(seat).or_default() += 1;
            }
        }
        for booking in self.model.bookings.iter().filter(|b| b.confirmed) {
            for &seat in &booking.seats {
                *owners.entry(seat).or_default() += 1;
            }
        }
        prop_assert!(owners.values().all(|&count| count <= 1));
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_match_the_model(ops in prop::collection::vec(op(), 1..120)) {
        let mut run = Run::new();
        for op in &ops {
            run.step(op)?;
            run.compare()?;
        }
        // Applying the same log again from nothing gives the same bytes, and so does
        // applying it in batches, which prefetch ahead: with the same outcomes.
        let mut replica = StateMachine::new(run.state.config().clone());
        let outcomes: Vec<Outcome> = run.log.iter().map(|entry| replica.apply(entry)).collect();
        prop_assert_eq!(replica.snapshot_bytes(), run.state.snapshot_bytes());
        let mut batched = StateMachine::new(run.state.config().clone());
        let mut batched_outcomes = Vec::new();
        for batch in run.log.chunks(7) {
            batched.apply_batch(batch, |outcome| batched_outcomes.push(outcome));
        }
        prop_assert_eq!(batched_outcomes, outcomes);
        prop_assert_eq!(batched.snapshot_bytes(), run.state.snapshot_bytes());
        // Every frozen copy still encodes its own moment, whatever was applied since.
        for (frozen, bytes) in &run.frozen {
            prop_assert_eq!(&frozen.snapshot_bytes(), bytes);
        }
    }
}
