//! Fixtures shared by the state machine's tests.
#![allow(dead_code)]

use holdfast_statemachine::*;

pub struct Harness {
    pub state: StateMachine,
    pub now_ms: u64,
    /// Charges made by [`Harness::confirm`], which names each after its number.
    pub charges: u64,
}

pub const START_MS: u64 = 1_700_000_000_000;

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
    }
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with_config(Config::default())
    }

    pub fn with_config(config: Config) -> Harness {
        Harness {
            state: StateMachine::new(config),
            now_ms: START_MS,
            charges: 0,
        }
    }

    /// A cinema with rows A and B of 10 seats (900 each) and a pool GA of 5 (2500 each).
    pub fn cinema() -> Harness {
        let mut harness = Harness::new();
        let outcome = harness.run(Command::CreateEvent(cinema_event("film")));
        assert!(outcome.is_success(), "{outcome:?}");
        harness
    }

    pub fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
    }

    pub fn run(&mut self, command: Command) -> Outcome {
        self.state.apply(&Entry {
            time_ms: self.now_ms,
            request_id: None,
            command,
        })
    }

    pub fn run_keyed(&mut self, key: &str, command: Command) -> Outcome {
        self.state.apply(&Entry {
            time_ms: self.now_ms,
            request_id: Some(key.into()),
            command,
        })
    }

    pub fn hold(&mut self, customer: &str, seats: &[&str], pools: &[(&str, u32)]) -> Outcome {
        self.run(Command::Hold(hold_request("film", customer, seats, pools)))
    }

    pub fn held(&mut self, customer: &str, seats: &[&str]) -> HoldView {
        match self.hold(customer, seats, &[]) {
            Outcome::Held(view) => *view,
            other => panic!("expected a hold, got {other:?}"),
        }
    }

    /// Confirms `hold` with a new charge of its amount.
    pub fn confirm(&mut self, hold: &HoldView) -> Outcome {
        self.charges += 1;
        self.run(Command::Confirm {
            hold_id: hold.hold_id.to_string(),
            payment: PaymentRecord {
                provider: "sandbox".into(),
                payment_id: format!("pay_h{}", self.charges),
                amount: hold.amount,
            },
        })
    }

    pub fn booked(&mut self, customer: &str, seats: &[&str]) -> BookingView {
        let hold = self.held(customer, seats);
        match self.confirm(&hold) {
            Outcome::Confirmed(view) => *view,
            other => panic!("expected a booking, got {other:?}"),
        }
    }

    pub fn summary(&self) -> Summary {
        self.state.summary("film").expect("event exists").0
    }

    pub fn version(&self) -> u64 {
        self.state.summary("film").expect("event exists").1
    }

    pub fn pool(&self, id: &str) -> PoolView {
        let page = self.state.availability("film", None, None, 1).unwrap();
        page.pools
            .into_iter()
            .find(|pool| pool.id == id)
            .expect("pool exists")
    }

    pub fn seat_status(&self, id: &str) -> SeatStatus {
        let page = self.state.availability("film", None, None, 5000).unwrap();
        page.seats
            .into_iter()
            .find(|seat| seat.id == id)
            .expect("seat exists")
            .status
    }
}

pub fn cinema_event(event_id: &str) -> CreateEvent {
    CreateEvent {
        event_id: event_id.into(),
        name: "Film night".into(),
        category: Category::Movie,
        starts_at_ms: Some(START_MS + 86_400_000),
        currency: "EUR".into(),
        seats: vec![],
        seat_blocks: vec![SeatBlock {
            section: "S".into(),
            rows: vec!["A".into(), "B".into()],
            seats_per_row: 10,
            price: 900,
        }],
        pools: vec![PoolSpec {
            id: "GA".into(),
            capacity: 5,
            price: 2500,
        }],
        listing: Default::default(),
    }
}

pub fn hold_request(
    event: &str,
    customer: &str,
    seats: &[&str],
    pools: &[(&str, u32)],
) -> HoldRequest {
    HoldRequest {
        event_id: event.into(),
        customer_id: customer.into(),
        seats: seats.iter().map(|s| s.to_string()).collect(),
        pools: pools
            .iter()
            .map(|(pool, quantity)| PoolQuantity {
                pool_id: pool.to_string(),
                quantity: *quantity,
            })
            .collect(),
        best_available: None,
        ttl_seconds: Some(600),
    }
}

/// A new payment of `amount`: every call names another charge, as a provider's ids do.
pub fn payment(amount: u64) -> PaymentRecord {
    static CHARGES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let charge = CHARGES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    PaymentRecord {
        provider: "sandbox".into(),
        payment_id: format!("pay_{charge}"),
        amount,
    }
}

pub fn code(outcome: &Outcome) -> &'static str {
    outcome
        .rejection()
        .map_or("OK", |rejection| rejection.code().as_str())
}
