//! The simulated clients: customers who hold, confirm, release, cancel and read
//! overlapping seats and pool units through random nodes, recording every call and answer
//! in the [`History`] the checkers read.
//!
//! Every write carries its own `Idempotency-Key`. A write that gets no answer (or a 5xx) is
//! retried with the same key on another node, a bounded number of times; if none answers,
//! its result is [`OpResult::Unknown`]. One logical call is one [`crate::history::Op`], from
//! its first attempt to its definite answer.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use http::Method;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::client::{self, Answer};
use crate::history::{Call, History, Micros, OpResult, ReadLevel, SeatStatus};

/// The one event the clients book.
pub const EVENT_ID: &str = "sim";
/// Seats held with a long time to live: their histories are checked for linearizability.
pub const CHECKED_SEATS: [&str; 8] = ["A-1", "A-2", "A-3", "A-4", "A-5", "A-6", "A-7", "A-8"];
/// Seats held for a few seconds only: they exercise expiry (and confirms that come late).
pub const EXPIRING_SEATS: [&str; 4] = ["X-1", "X-2", "X-3", "X-4"];
/// The general-admission pool.
pub const POOL_ID: &str = "GA";
/// Units in [`POOL_ID`]: few, so that pool holds contend.
pub const POOL_CAPACITY: u64 = 6;
/// Time to live of holds on the checked seats: longer than any run.
pub const LONG_TTL_SECONDS: u64 = 7_200;
/// Active holds a client keeps at most (the state machine allows 8 per customer).
const CLIENT_HOLDS_MAX: usize = 5;

/// What every simulated client shares: the history and the cluster's entry points.
#[derive(Debug)]
pub struct Shared {
    /// Every call of every client, in invocation order.
    pub history: RefCell<History>,
    /// Set once the cluster is initialised and the event exists.
    pub ready: Cell<bool>,
    /// The hosts clients send requests to.
    pub hosts: RefCell<Vec<String>>,
    /// Sim time (ms) after which clients start no new calls.
    pub stop_at_ms: u64,
    /// Deadline of one HTTP attempt.
    pub request_deadline: Duration,
    /// Attempts of one write at most.
    pub write_attempts_max: u32,
    /// Answers `503 OUTBOX_FULL` received (any attempt of any write).
    pub outbox_full_answers: Cell<usize>,
}

/// Simulated time, in microseconds since the start.
pub fn now_micros() -> Micros {
    turmoil::sim_elapsed().unwrap_or_default().as_micros() as Micros
}

fn now_ms() -> u64 {
    now_micros() / 1_000
}

/// The inventory the clients book, as `POST /admin/events` takes it.
pub fn event_body() -> Value {
    let seats: Vec<Value> = CHECKED_SEATS
        .iter()
        .chain(EXPIRING_SEATS.iter())
        .map(|id| {
            let (section, number) = id.split_once('-').expect("seat ids are SECTION-NUMBER");
            json!({"id": id, "section": section, "row": section,
                   "number": number.parse::<u32>().expect("numeric"), "price": 1000})
        })
        .collect();
    json!({
        "event_id": EVENT_ID, "name": "Simulated show", "category": "event",
        "starts_at": "2026-06-01T20:00:00Z", "currency": "EUR",
        "seats": seats,
        "pools": [{"id": POOL_ID, "capacity": POOL_CAPACITY, "price": 500}],
    })
}

#[derive(Clone, Debug)]
struct MyHold {
    hold_id: String,
    ttl_seconds: u64,
    expiring: bool,
}

/// One simulated customer.
pub struct Customer {
    index: usize,
    shared: Rc<Shared>,
    rng: StdRng,
    holds: Vec<MyHold>,
    bookings: Vec<String>,
    next_key: u64,
}

impl Customer {
    /// Customer `c-{index}`, whose choices come from a generator seeded with `seed` and
    /// `index` (so the same seed replays the same calls).
    pub fn new(index: usize, seed: u64, shared: Rc<Shared>) -> Customer {
        Customer {
            index,
            shared,
            rng: StdRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            holds: Vec::new(),
            bookings: Vec::new(),
            next_key: 0,
        }
    }

    /// Runs calls until the stop time.
    pub async fn run(mut self) {
        while !self.shared.ready.get() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        while now_ms() < self.shared.stop_at_ms {
            let think_ms = self.rng.gen_range(5..120);
            tokio::time::sleep(Duration::from_millis(think_ms)).await;
            let roll = self.rng.gen_range(0..100);
            match roll {
                0..=34 => self.hold().await,
                35..=59 => self.confirm().await,
                60..=69 => self.release().await,
                70..=77 => self.cancel().await,
                _ => self.read().await,
            }
        }
    }

    fn customer_id(&self) -> String {
        format!("c-{}", self.index)
    }

    fn pick_host(&mut self) -> String {
        let hosts = self.shared.hosts.borrow();
        hosts[self.rng.gen_range(0..hosts.len())].clone()
    }

    fn invoke(&self, node: &str, call: Call) -> usize {
        let node = node.trim_start_matches('n').parse().unwrap_or(0);
        self.shared
            .history
            .borrow_mut()
            .invoke(self.index, node, now_micros(), call)
    }

    fn complete(&self, op: usize, result: OpResult) {
        self.shared
            .history
            .borrow_mut()
            .complete(op, now_micros(), result);
    }

    /// Sends a keyed write, retrying on silence or a 5xx with the same key on other nodes.
    /// `None` when no attempt got a definite answer. `503 OUTBOX_FULL` is definite (decided
    /// in apply, nothing stored, the key not remembered) only when every attempt got it: an
    /// earlier attempt without an answer may still commit.
    async fn write(&mut self, first_host: &str, path: &str, body: &Value) -> Option<Answer> {
        self.next_key += 1;
        let key = format!("c{}-{}", self.index, self.next_key);
        let mut host = first_host.to_string();
        let mut refused_for_outbox = None;
        let mut every_attempt_refused_for_outbox = true;
        for attempt in 0..self.shared.write_attempts_max {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(self.rng.gen_range(100..400))).await;
                host = self.pick_host();
            }
            let answer = client::send(
                &host,
                Method::POST,
                path,
                Some(&key),
                Some(body),
                self.shared.request_deadline,
            )
            .await;
            match answer {
                Ok(answer) if answer.status < 500 => return Some(answer),
                Ok(answer) if answer.code() == Some("OUTBOX_FULL") => {
                    let count = self.shared.outbox_full_answers.get();
                    self.shared.outbox_full_answers.set(count + 1);
                    refused_for_outbox = Some(answer);
                }
                _ => every_attempt_refused_for_outbox = false,
            }
        }
        refused_for_outbox.filter(|_| every_attempt_refused_for_outbox)
    }

    async fn hold(&mut self) {
        if self.holds.len() >= CLIENT_HOLDS_MAX {
            return self.release().await;
        }
        let kind = self.rng.gen_range(0..10);
        let (seats, pools, ttl_seconds, expiring) = match kind {
            0..=5 => {
                let count = if self.rng.gen_bool(0.3) { 2 } else { 1 };
                let mut seats = Vec::new();
                while seats.len() < count {
                    let seat = CHECKED_SEATS[self.rng.gen_range(0..CHECKED_SEATS.len())];
                    if !seats.contains(&seat.to_string()) {
                        seats.push(seat.to_string());
                    }
                }
                (seats, Vec::new(), LONG_TTL_SECONDS, false)
            }
            6..=7 => {
                let seat = EXPIRING_SEATS[self.rng.gen_range(0..EXPIRING_SEATS.len())];
                let ttl = self.rng.gen_range(1..=3);
                (vec![seat.to_string()], Vec::new(), ttl, true)
            }
            _ => {
                let quantity = self.rng.gen_range(1..=2);
                (
                    Vec::new(),
                    vec![(POOL_ID.to_string(), quantity)],
                    LONG_TTL_SECONDS,
                    false,
                )
            }
        };
        let host = self.pick_host();
        let body = json!({
            "event_id": EVENT_ID, "customer_id": self.customer_id(), "seats": seats,
            "pools": pools.iter().map(|(id, quantity)| json!({"pool_id": id, "quantity": quantity})).collect::<Vec<_>>(),
            "ttl_seconds": ttl_seconds,
        });
        let call = Call::Hold {
            event_id: EVENT_ID.into(),
            seats,
            pools,
            ttl_seconds,
        };
        self.recorded_write(
            &host,
            call,
            "/booking/hold",
            &body,
            201,
            |customer, answer| {
                let hold_id = answer.body["hold_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let expires_at_ms = answer.body["expires_at"]
                    .as_str()
                    .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
                    .map_or(0, |time| time.timestamp_millis() as u64);
                customer.holds.push(MyHold {
                    hold_id: hold_id.clone(),
                    ttl_seconds,
                    expiring,
                });
                OpResult::Held {
                    hold_id,
                    expires_at_ms,
                }
            },
        )
        .await;
    }

    /// Records `call`, sends it as a keyed write to `host` (see [`Customer::write`]) and
    /// records its result: what `accepted` makes of an answer with the `accepted_status`,
    /// the rejection for any other definite answer, `Unknown` without one.
    async fn recorded_write(
        &mut self,
        host: &str,
        call: Call,
        path: &str,
        body: &Value,
        accepted_status: u16,
        accepted: impl FnOnce(&mut Customer, &Answer) -> OpResult,
    ) {
        let op = self.invoke(host, call);
        let result = match self.write(host, path, body).await {
            Some(answer) if answer.status == accepted_status => accepted(self, &answer),
            Some(answer) => rejected(&answer),
            None => OpResult::Unknown,
        };
        self.complete(op, result);
    }

    fn take_hold(&mut self) -> Option<MyHold> {
        if self.holds.is_empty() {
            return None;
        }
        let position = self.rng.gen_range(0..self.holds.len());
        Some(self.holds.swap_remove(position))
    }

    async fn confirm(&mut self) {
        let Some(hold) = self.take_hold() else {
            return;
        };
        // Some confirms of short holds come after their time: they must be refused.
        if hold.expiring && self.rng.gen_bool(0.4) {
            let late_ms = hold.ttl_seconds * 1_000 + self.rng.gen_range(200..1_500);
            tokio::time::sleep(Duration::from_millis(late_ms)).await;
        }
        let host = self.pick_host();
        let body =
            json!({"hold_id": hold.hold_id, "payment": {"method": "card", "token": "tok_visa"}});
        let call = Call::Confirm {
            hold_id: hold.hold_id,
        };
        self.recorded_write(
            &host,
            call,
            "/booking/confirm",
            &body,
            200,
            |customer, answer| {
                let booking_id = answer.body["booking_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                customer.bookings.push(booking_id.clone());
                OpResult::Confirmed { booking_id }
            },
        )
        .await;
    }

    async fn release(&mut self) {
        let Some(hold) = self.take_hold() else {
            return;
        };
        let host = self.pick_host();
        let body = json!({"hold_id": hold.hold_id});
        let call = Call::Release {
            hold_id: hold.hold_id,
        };
        self.recorded_write(&host, call, "/booking/cancel", &body, 200, |_, _| {
            OpResult::Released
        })
        .await;
    }

    async fn cancel(&mut self) {
        if self.bookings.is_empty() {
            return;
        }
        let position = self.rng.gen_range(0..self.bookings.len());
        let booking_id = self.bookings.swap_remove(position);
        let host = self.pick_host();
        let body = json!({"booking_id": booking_id, "reason": "simulated"});
        let call = Call::Cancel { booking_id };
        self.recorded_write(&host, call, "/booking/cancel", &body, 200, |_, _| {
            OpResult::Cancelled
        })
        .await;
    }

    /// Reads the whole event once and records one seat read per checked seat, all with the
    /// interval of the one request.
    async fn read(&mut self) {
        let level = match self.rng.gen_range(0..10) {
            0..=5 => ReadLevel::Linearizable,
            6..=7 => ReadLevel::Bounded,
            _ => ReadLevel::Stale,
        };
        let consistency = match level {
            ReadLevel::Linearizable => "linearizable",
            ReadLevel::Bounded => "bounded",
            ReadLevel::Stale => "stale",
        };
        let host = self.pick_host();
        let ops: Vec<usize> = CHECKED_SEATS
            .iter()
            .map(|seat| {
                self.invoke(
                    &host,
                    Call::ReadSeat {
                        event_id: EVENT_ID.into(),
                        seat_id: seat.to_string(),
                        level,
                    },
                )
            })
            .collect();
        let path = format!("/availability?event_id={EVENT_ID}&section=A&consistency={consistency}");
        let answer = client::send(
            &host,
            Method::GET,
            &path,
            None,
            None,
            self.shared.request_deadline,
        )
        .await;
        for (op, seat) in ops.into_iter().zip(CHECKED_SEATS) {
            let result = match &answer {
                Ok(answer) if answer.status == 200 => {
                    seat_status(&answer.body, seat).map_or(OpResult::Unknown, OpResult::Seat)
                }
                Ok(answer) if answer.status < 500 => rejected(answer),
                _ => OpResult::Unknown,
            };
            self.complete(op, result);
        }
    }
}

fn rejected(answer: &Answer) -> OpResult {
    OpResult::Rejected {
        code: answer.code().unwrap_or("NO_CODE").to_string(),
    }
}

fn seat_status(body: &Value, seat: &str) -> Option<SeatStatus> {
    let seats = body["seats"].as_array()?;
    let status = seats
        .iter()
        .find(|entry| entry["id"].as_str() == Some(seat))?["status"]
        .as_str()?;
    match status {
        "AVAILABLE" => Some(SeatStatus::Available),
        "HELD" => Some(SeatStatus::Held),
        "BOOKED" => Some(SeatStatus::Booked),
        _ => None,
    }
}
