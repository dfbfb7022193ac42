//! Per-seat linearizability checker.
//!
//! Checks that what the clients were told about every seat is explained by *some* sequential
//! order of their calls that respects real time (a call that completed before another was
//! invoked comes first), under a per-seat sequential specification:
//!
//! ```text
//! state:   Free | Held(hold) | Booked(booking)
//! Hold     -> Held{h}                        needs Free,             becomes Held(h)
//! Hold     -> Rejected SEAT_UNAVAILABLE      needs not Free (holds of one seat only)
//! Confirm h -> Confirmed{b}                  needs Held(h),          becomes Booked(b)
//! Confirm h -> Rejected HOLD_NOT_ACTIVE |
//!              HOLD_EXPIRED | HOLD_NOT_FOUND needs not Held(h)
//! Release h -> Released                      needs Held(h),          becomes Free
//! Release h -> Rejected HOLD_*  (as above)   needs not Held(h)
//! Cancel b  -> Cancelled                     needs Booked(b),        becomes Free
//! Cancel b  -> Rejected BOOKING_NOT_ACTIVE |
//!              BOOKING_NOT_FOUND             needs not Booked(b)
//! ReadSeat (Linearizable) -> Seat(s)         needs s to match (Available/Held/Booked)
//! ```
//!
//! Every other rejection code (validation, `HOLD_LIMIT_REACHED`, `OVERLOADED`, `NOT_LEADER`,
//! `PAYMENT_AMOUNT_MISMATCH`, ...) means "changed nothing" and constrains nothing: such calls
//! are dropped. Reads at `Stale` or `Bounded` level are not checked. A booking keeps no trace
//! of its hold in the model state: nothing in the specification above depends on it.
//!
//! # Assumptions and modelling choices
//!
//! - **Holds never expire.** The harness gives the holds on the seats it checks long TTLs, so
//!   the model has no expiry: a hold stays until it is confirmed or released. (`HOLD_EXPIRED`
//!   is then only accepted where the hold is not the seat's active holder.) A run whose holds
//!   do expire will show false violations here.
//! - **Which seat an id belongs to** comes from the history itself: a hold id maps to the seats
//!   of the `Hold` call whose `Held` result returned it, a booking id to the seats of the hold
//!   whose `Confirmed` result returned it. Calls on ids the history never returned (an id made
//!   up, a hold of pool units only) are skipped.
//! - **Multi-seat and pool holds are projected, not skipped.** A hold of seats `[a, b]` (or of
//!   seats and pool units) that succeeded is checked on each of its seats as if it were a
//!   single-seat hold with the same interval, and so are the confirm/release/cancel calls on
//!   it. The projection of a linearizable history onto one seat is linearizable, so this adds
//!   no false violation; skipping such holds instead would (a seat held by a two-seat hold
//!   would look free to the single-seat calls after it). What the projection cannot check is
//!   the all-or-nothing atomicity across seats, and a `SEAT_UNAVAILABLE` refusal of a hold of
//!   several seats (it only says *some* seat was taken) is dropped.
//! - **Unknown results** (no completion time) may take effect at any time after their
//!   invocation, or never. An unknown hold that takes effect leaves the seat held by a hold
//!   whose id nobody learned, so nobody can confirm or release it: it stays held. An unknown
//!   confirm that takes effect books the seat under a booking id nobody learned, so no cancel
//!   of a known booking matches it. Unknown reads constrain nothing and are dropped. An
//!   `Unknown` result's completion time, if the harness recorded one, is ignored.
//! - A definite result without a completion time is taken to complete at the end of time, and
//!   a completion earlier than the invocation is clamped to the invocation.
//! - Two calls where one completed at exactly the instant the other was invoked are treated as
//!   concurrent (either order is allowed).
//!
//! # Algorithm
//!
//! The history is partitioned by seat (sorted: `BTreeMap`) and each seat is checked on its own
//! with a Wing–Gong / Lowe (WGL) depth-first search over configurations (set of calls already
//! linearized as a bitset, model state), each configuration explored at most once (memoized).
//! A call may be linearized next only if it was invoked no later than the earliest completion
//! among the definite calls not yet linearized; a branch dies as soon as that call cannot be
//! placed. Two reductions keep the search small:
//!
//! - A call that does not change the state (a read, a refusal) and is allowed in the current
//!   state is placed at once, without branching: placing it early never prevents anything,
//!   because it leaves the state alone and only relaxes the real-time constraints.
//! - Unknown calls with the same effect are interchangeable, and only one of them can ever take
//!   effect (an unknown hold leaves the seat held forever; hold and booking ids are unique), so
//!   only the earliest-invoked one of each kind is kept. (Should the history return one hold
//!   or booking id twice, the unknown calls on it are all kept.)
//!
//! The search stops with [`Outcome::Inconclusive`] once it has explored more than
//! `max_states_per_seat` configurations. Memory is about `max_states_per_seat` times
//! (ops on the seat / 8 + 48) bytes.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::history::{Call, History, Micros, OpResult, ReadLevel, SeatStatus};

/// A bound on the configurations explored per seat that is generous for the harness's
/// histories and still finishes in about a second.
pub const DEFAULT_MAX_STATES_PER_SEAT: usize = 1_000_000;

/// What the checker concluded about one seat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SeatVerdict {
    /// The seat's event.
    pub event_id: String,
    /// The seat.
    pub seat_id: String,
    /// The calls on this seat that were checked (dropped and skipped calls not counted).
    pub ops: usize,
    /// Whether some order explains them.
    pub outcome: Outcome,
}

/// The result of the search on one seat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Outcome {
    /// Some order of the calls that respects real time explains every result.
    Linearizable,
    /// No order of the calls explains the results; `explanation` shows the longest order found
    /// and the calls that could not come next.
    NotLinearizable {
        /// A human-readable account: the order found and the calls it could not place.
        explanation: String,
    },
    /// The search gave up after exploring `explored` configurations.
    Inconclusive {
        /// Configurations explored before giving up.
        explored: usize,
    },
}

/// The verdicts of every seat that had at least one checked call, sorted by (event, seat).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// One verdict per seat.
    pub seats: Vec<SeatVerdict>,
}

impl Report {
    /// The seats whose history is not linearizable.
    pub fn violations(&self) -> Vec<&SeatVerdict> {
        self.seats
            .iter()
            .filter(|seat| matches!(seat.outcome, Outcome::NotLinearizable { .. }))
            .collect()
    }

    /// How many seats the search gave up on.
    pub fn inconclusive(&self) -> usize {
        self.seats
            .iter()
            .filter(|seat| matches!(seat.outcome, Outcome::Inconclusive { .. }))
            .count()
    }

    /// How many calls were checked, over all seats.
    pub fn checked_ops(&self) -> usize {
        self.seats.iter().map(|seat| seat.ops).sum()
    }
}

impl fmt::Display for SeatVerdict {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "seat {}/{} ({} ops): ",
            self.event_id, self.seat_id, self.ops
        )?;
        match &self.outcome {
            Outcome::Linearizable => write!(formatter, "linearizable"),
            Outcome::NotLinearizable { explanation } => {
                write!(formatter, "NOT linearizable: {explanation}")
            }
            Outcome::Inconclusive { explored } => write!(
                formatter,
                "inconclusive (gave up after {explored} configurations)"
            ),
        }
    }
}

/// Checks every seat of `history`; see the module documentation for the model.
///
/// The search of a seat gives up, with [`Outcome::Inconclusive`], once it has explored more
/// than `max_states_per_seat` configurations; [`DEFAULT_MAX_STATES_PER_SEAT`] (10^6) takes
/// about half a second in a release build, two in a debug one.
pub fn check(history: &History, max_states_per_seat: usize) -> Report {
    let partition = Partition::of(history);
    let seats = partition
        .seats
        .into_iter()
        .map(|((event_id, seat_id), ops)| {
            let ops = drop_redundant_unknowns(ops);
            let search = Search::new(&ops);
            let outcome = match search.run(max_states_per_seat) {
                Verdict::Linearizable => Outcome::Linearizable,
                Verdict::Bounded(explored) => Outcome::Inconclusive { explored },
                Verdict::Stuck(best) => Outcome::NotLinearizable {
                    explanation: Explainer {
                        history,
                        ops: &ops,
                        search: &search,
                        holds: &partition.holds,
                        bookings: &partition.bookings,
                    }
                    .explain(&event_id, &seat_id, &best),
                },
            };
            SeatVerdict {
                event_id,
                seat_id,
                ops: ops.len(),
                outcome,
            }
        })
        .collect();
    Report { seats }
}

// ---------------------------------------------------------------------------------------------
// The model.

/// Hold and booking ids, interned to small numbers.
#[derive(Default)]
struct Ids {
    index: HashMap<String, u32>,
    names: Vec<String>,
}

impl Ids {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.index.get(name) {
            return id;
        }
        let id = u32::try_from(self.names.len()).expect("fewer than 2^32 ids");
        self.index.insert(name.to_string(), id);
        self.names.push(name.to_string());
        id
    }

    fn get(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

    fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }
}

/// One seat's state. `None` stands for an id nobody learned (an unknown-result call took
/// effect).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum State {
    Free,
    Held(Option<u32>),
    Booked(Option<u32>),
}

/// What one call does to one seat, given its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Step {
    /// A hold took the seat (`None`: an unknown hold, whose id nobody learned).
    Acquire(Option<u32>),
    /// A hold refused with `SEAT_UNAVAILABLE`.
    NotFree,
    /// A confirm of `hold` booked the seat (`booking` is `None` for an unknown confirm).
    Book { hold: u32, booking: Option<u32> },
    /// A confirm or release refused because the hold is not active.
    NotHeldBy(u32),
    /// A release freed the seat.
    Release(u32),
    /// A cancel freed the seat.
    Cancel(u32),
    /// A cancel refused because the booking is not active.
    NotBookedAs(u32),
    /// A linearizable read.
    Read(SeatStatus),
}

impl Step {
    /// Whether the step leaves every state as it is (when it is allowed at all).
    fn is_identity(self) -> bool {
        matches!(
            self,
            Step::NotFree | Step::NotHeldBy(_) | Step::NotBookedAs(_) | Step::Read(_)
        )
    }

    /// The state after the step, or `None` when the step is not allowed in `state`.
    fn apply(self, state: State) -> Option<State> {
        match (self, state) {
            (Step::Acquire(hold), State::Free) => Some(State::Held(hold)),
            (Step::NotFree, State::Held(_) | State::Booked(_)) => Some(state),
            (Step::Book { hold, booking }, State::Held(Some(holder))) if holder == hold => {
                Some(State::Booked(booking))
            }
            (Step::NotHeldBy(hold), _) if state != State::Held(Some(hold)) => Some(state),
            (Step::Release(hold), State::Held(Some(holder))) if holder == hold => Some(State::Free),
            (Step::Cancel(booking), State::Booked(Some(b))) if b == booking => Some(State::Free),
            (Step::NotBookedAs(booking), _) if state != State::Booked(Some(booking)) => Some(state),
            (Step::Read(SeatStatus::Available), State::Free)
            | (Step::Read(SeatStatus::Held), State::Held(_))
            | (Step::Read(SeatStatus::Booked), State::Booked(_)) => Some(state),
            _ => None,
        }
    }
}

/// One call, as seen by one seat.
#[derive(Clone, Copy, Debug)]
struct SeatOp {
    /// Index in `History::ops`.
    index: usize,
    invoked: Micros,
    /// `None` for an unknown result: it may take effect at any time after `invoked`, or never.
    completed: Option<Micros>,
    step: Step,
}

type SeatKey = (String, String);

/// The history split by seat.
struct Partition {
    holds: Ids,
    bookings: Ids,
    seats: BTreeMap<SeatKey, Vec<SeatOp>>,
}

const HOLD_INACTIVE_CODES: [&str; 3] = ["HOLD_NOT_ACTIVE", "HOLD_EXPIRED", "HOLD_NOT_FOUND"];
const BOOKING_INACTIVE_CODES: [&str; 2] = ["BOOKING_NOT_ACTIVE", "BOOKING_NOT_FOUND"];

/// Whether `result` is a refusal with one of `codes`.
fn refused_with(result: &OpResult, codes: &[&str]) -> bool {
    matches!(result, OpResult::Rejected { code } if codes.contains(&code.as_str()))
}

impl Partition {
    fn of(history: &History) -> Partition {
        let mut holds = Ids::default();
        let mut hold_seats: HashMap<u32, BTreeSet<SeatKey>> = HashMap::new();
        for op in &history.ops {
            if let (
                Call::Hold {
                    event_id, seats, ..
                },
                OpResult::Held { hold_id, .. },
            ) = (&op.call, &op.result)
            {
                if seats.is_empty() {
                    continue;
                }
                let hold = holds.intern(hold_id);
                let entry = hold_seats.entry(hold).or_default();
                entry.extend(seats.iter().map(|seat| (event_id.clone(), seat.clone())));
            }
        }
        let mut bookings = Ids::default();
        let mut booking_seats: HashMap<u32, BTreeSet<SeatKey>> = HashMap::new();
        for op in &history.ops {
            if let (Call::Confirm { hold_id }, OpResult::Confirmed { booking_id }) =
                (&op.call, &op.result)
            {
                if let Some(seats) = holds.get(hold_id).map(|hold| &hold_seats[&hold]) {
                    let booking = bookings.intern(booking_id);
                    let entry = booking_seats.entry(booking).or_default();
                    entry.extend(seats.iter().cloned());
                }
            }
        }

        let mut seats: BTreeMap<SeatKey, Vec<SeatOp>> = BTreeMap::new();
        let mut add = |seat: SeatKey, op: SeatOp| seats.entry(seat).or_default().push(op);
        for (index, op) in history.ops.iter().enumerate() {
            let completed = op
                .result
                .is_definite()
                .then(|| op.completed.unwrap_or(Micros::MAX).max(op.invoked));
            let seat_op = |step| SeatOp {
                index,
                invoked: op.invoked,
                completed,
                step,
            };
            let refused_with = |codes: &[&str]| refused_with(&op.result, codes);
            match &op.call {
                Call::Hold {
                    event_id, seats, ..
                } => {
                    let targets: BTreeSet<&String> = seats.iter().collect();
                    let step = match &op.result {
                        OpResult::Held { hold_id, .. } => Step::Acquire(holds.get(hold_id)),
                        OpResult::Unknown => Step::Acquire(None),
                        OpResult::Rejected { code }
                            if code == "SEAT_UNAVAILABLE" && targets.len() == 1 =>
                        {
                            Step::NotFree
                        }
                        _ => continue,
                    };
                    for seat in targets {
                        add((event_id.clone(), seat.clone()), seat_op(step));
                    }
                }
                Call::Confirm { hold_id } | Call::Release { hold_id } => {
                    let Some(hold) = holds.get(hold_id) else {
                        continue;
                    };
                    let confirm = matches!(op.call, Call::Confirm { .. });
                    let step = match &op.result {
                        OpResult::Confirmed { booking_id } if confirm => Step::Book {
                            hold,
                            booking: bookings.get(booking_id),
                        },
                        OpResult::Unknown if confirm => Step::Book {
                            hold,
                            booking: None,
                        },
                        OpResult::Released | OpResult::Unknown if !confirm => Step::Release(hold),
                        OpResult::Rejected { .. } if refused_with(&HOLD_INACTIVE_CODES) => {
                            Step::NotHeldBy(hold)
                        }
                        _ => continue,
                    };
                    for seat in &hold_seats[&hold] {
                        add(seat.clone(), seat_op(step));
                    }
                }
                Call::Cancel { booking_id } => {
                    let Some(booking) = bookings.get(booking_id) else {
                        continue;
                    };
                    let step = match &op.result {
                        OpResult::Cancelled | OpResult::Unknown => Step::Cancel(booking),
                        OpResult::Rejected { .. } if refused_with(&BOOKING_INACTIVE_CODES) => {
                            Step::NotBookedAs(booking)
                        }
                        _ => continue,
                    };
                    for seat in &booking_seats[&booking] {
                        add(seat.clone(), seat_op(step));
                    }
                }
                Call::ReadSeat {
                    event_id,
                    seat_id,
                    level: ReadLevel::Linearizable,
                } => {
                    if let OpResult::Seat(status) = op.result {
                        add(
                            (event_id.clone(), seat_id.clone()),
                            seat_op(Step::Read(status)),
                        );
                    }
                }
                Call::ReadSeat { .. } => {}
            }
        }
        for ops in seats.values_mut() {
            ops.sort_by_key(|op| (op.invoked, op.index));
        }
        Partition {
            holds,
            bookings,
            seats,
        }
    }
}

/// Keeps only the earliest-invoked of the unknown calls with the same step, where only one of
/// them can ever take effect: an unknown hold leaves the seat held for good, and a hold (a
/// booking) that only one call returned is active at most once, so at most one release or
/// confirm of it (cancel of it) takes effect. The earliest may take effect wherever a later one
/// could, so nothing is lost. `ops` is sorted by invocation.
fn drop_redundant_unknowns(ops: Vec<SeatOp>) -> Vec<SeatOp> {
    let mut acquired: HashMap<u32, usize> = HashMap::new();
    let mut booked: HashMap<u32, usize> = HashMap::new();
    for op in &ops {
        match op.step {
            Step::Acquire(Some(hold)) => *acquired.entry(hold).or_default() += 1,
            Step::Book {
                booking: Some(booking),
                ..
            } => *booked.entry(booking).or_default() += 1,
            _ => {}
        }
    }
    let mut seen = HashSet::new();
    ops.into_iter()
        .filter(|op| {
            if op.completed.is_some() {
                return true;
            }
            let once = match op.step {
                Step::Acquire(None) => true,
                Step::Book { hold, .. } | Step::Release(hold) => {
                    acquired.get(&hold).copied().unwrap_or(0) <= 1
                }
                Step::Cancel(booking) => booked.get(&booking).copied().unwrap_or(0) <= 1,
                _ => false,
            };
            !once || seen.insert(op.step)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The search.

/// A fixed-size bitset.
#[derive(Clone, Debug)]
struct Bits {
    words: Vec<u64>,
}

impl Bits {
    fn new(len: usize) -> Bits {
        Bits {
            words: vec![0; len.div_ceil(64)],
        }
    }

    fn set(&mut self, index: usize) {
        self.words[index / 64] |= 1 << (index % 64);
    }

    fn clear(&mut self, index: usize) {
        self.words[index / 64] &= !(1 << (index % 64));
    }

    fn get(&self, index: usize) -> bool {
        self.words[index / 64] & (1 << (index % 64)) != 0
    }

    /// The first index in `from..end` whose bit is clear.
    fn next_clear(&self, from: usize, end: usize) -> Option<usize> {
        let mut index = from;
        while index < end {
            let word = index / 64;
            let clear = !self.words[word] >> (index % 64);
            if clear != 0 {
                let found = index + clear.trailing_zeros() as usize;
                return (found < end).then_some(found);
            }
            index = (word + 1) * 64;
        }
        None
    }

    fn key(&self) -> Box<[u64]> {
        self.words.clone().into_boxed_slice()
    }
}

/// The deepest configuration the search reached, for the explanation of a violation.
#[derive(Debug)]
struct Best {
    /// Definite calls placed.
    placed: usize,
    /// Unknown calls taken to have taken effect.
    unknown_taken: usize,
    /// The calls placed, in order (indices into the seat's calls).
    path: Vec<usize>,
    state: State,
}

enum Verdict {
    Linearizable,
    Stuck(Best),
    Bounded(usize),
}

/// One configuration on the search stack.
struct Frame {
    /// The call placed to reach this configuration (`None` for the start).
    entered_by: Option<usize>,
    /// The state before it.
    prev: State,
    /// Calls `..limit` were invoked no later than the earliest pending completion.
    limit: usize,
    /// A state-preserving call allowed here: the only move tried from this configuration.
    forced: Option<usize>,
    /// The next call to try.
    cursor: usize,
}

struct Search<'a> {
    ops: &'a [SeatOp],
    /// The definite calls, by completion.
    by_completion: Vec<usize>,
    /// A call's position in `by_completion` (`usize::MAX` for unknown calls).
    rank: Vec<usize>,
}

impl<'a> Search<'a> {
    fn new(ops: &'a [SeatOp]) -> Search<'a> {
        let mut by_completion: Vec<usize> = (0..ops.len())
            .filter(|&i| ops[i].completed.is_some())
            .collect();
        by_completion.sort_by_key(|&i| (ops[i].completed, i));
        let mut rank = vec![usize::MAX; ops.len()];
        for (position, &i) in by_completion.iter().enumerate() {
            rank[i] = position;
        }
        Search {
            ops,
            by_completion,
            rank,
        }
    }

    /// Calls `..limit` may come next in a configuration where `done` (by completion rank) are
    /// placed; `None` when every definite call is placed.
    fn limit(&self, done: &Bits) -> Option<usize> {
        let first_pending = done.next_clear(0, self.by_completion.len())?;
        let deadline = self.ops[self.by_completion[first_pending]]
            .completed
            .expect("definite");
        Some(self.ops.partition_point(|op| op.invoked <= deadline))
    }

    fn frame(
        &self,
        entered_by: Option<usize>,
        prev: State,
        placed: &Bits,
        done: &Bits,
        state: State,
    ) -> Frame {
        let limit = self.limit(done).unwrap_or(self.ops.len());
        let mut forced = None;
        let mut cursor = 0;
        while let Some(i) = placed.next_clear(cursor, limit) {
            let step = self.ops[i].step;
            if step.is_identity() && step.apply(state).is_some() {
                forced = Some(i);
                break;
            }
            cursor = i + 1;
        }
        Frame {
            entered_by,
            prev,
            limit,
            forced,
            cursor: 0,
        }
    }

    /// The next call to place from the configuration `frame`, with the state after it.
    fn next_move(&self, frame: &mut Frame, placed: &Bits, state: State) -> Option<(usize, State)> {
        if let Some(i) = frame.forced.take() {
            frame.cursor = frame.limit;
            return Some((i, state));
        }
        while let Some(i) = placed.next_clear(frame.cursor, frame.limit) {
            frame.cursor = i + 1;
            if let Some(next) = self.ops[i].step.apply(state) {
                return Some((i, next));
            }
        }
        None
    }

    fn run(&self, max_states: usize) -> Verdict {
        let definite = self.by_completion.len();
        if definite == 0 {
            return Verdict::Linearizable;
        }
        let mut placed = Bits::new(self.ops.len());
        let mut done = Bits::new(definite);
        let mut state = State::Free;
        let mut placed_definite = 0;
        let mut unknown_taken = 0;
        let mut visited: HashSet<(Box<[u64]>, State)> = HashSet::new();
        visited.insert((placed.key(), state));
        let mut best = Best {
            placed: 0,
            unknown_taken: 0,
            path: Vec::new(),
            state,
        };
        let mut stack = vec![self.frame(None, state, &placed, &done, state)];
        while let Some(frame) = stack.last_mut() {
            let Some((i, next)) = self.next_move(frame, &placed, state) else {
                let frame = stack.pop().expect("not empty");
                if let Some(i) = frame.entered_by {
                    placed.clear(i);
                    if self.ops[i].completed.is_some() {
                        done.clear(self.rank[i]);
                        placed_definite -= 1;
                    } else {
                        unknown_taken -= 1;
                    }
                    state = frame.prev;
                }
                continue;
            };
            placed.set(i);
            let is_definite = self.ops[i].completed.is_some();
            if is_definite {
                done.set(self.rank[i]);
            }
            if !visited.insert((placed.key(), next)) {
                placed.clear(i);
                if is_definite {
                    done.clear(self.rank[i]);
                }
                continue;
            }
            if visited.len() > max_states {
                return Verdict::Bounded(visited.len());
            }
            if is_definite {
                placed_definite += 1;
            } else {
                unknown_taken += 1;
            }
            if placed_definite == definite {
                return Verdict::Linearizable;
            }
            let prev = state;
            state = next;
            if (placed_definite, Reverse(unknown_taken))
                > (best.placed, Reverse(best.unknown_taken))
            {
                best = Best {
                    placed: placed_definite,
                    unknown_taken,
                    path: stack
                        .iter()
                        .filter_map(|frame| frame.entered_by)
                        .chain([i])
                        .collect(),
                    state,
                };
            }
            stack.push(self.frame(Some(i), prev, &placed, &done, state));
        }
        Verdict::Stuck(best)
    }
}

// ---------------------------------------------------------------------------------------------
// Explanations.

/// At most this many calls of the longest linearizable prefix are shown (the last ones).
const PREFIX_SHOWN: usize = 40;

struct Explainer<'a> {
    history: &'a History,
    ops: &'a [SeatOp],
    search: &'a Search<'a>,
    holds: &'a Ids,
    bookings: &'a Ids,
}

impl Explainer<'_> {
    fn explain(&self, event_id: &str, seat_id: &str, best: &Best) -> String {
        // Writing to a `String` cannot fail.
        self.write_explanation(event_id, seat_id, best)
            .expect("formatting into a String")
    }

    fn write_explanation(
        &self,
        event_id: &str,
        seat_id: &str,
        best: &Best,
    ) -> Result<String, fmt::Error> {
        let definite = self.search.by_completion.len();
        let mut text = String::new();
        writeln!(
            text,
            "no order of the {} checked calls on seat {event_id}/{seat_id} explains their \
             results.",
            self.ops.len()
        )?;
        write!(
            text,
            "Longest linearizable prefix: {} of {definite} definite calls",
            best.placed
        )?;
        if best.unknown_taken > 0 {
            write!(
                text,
                " (and {} unknown-result calls taking effect)",
                best.unknown_taken
            )?;
        }
        writeln!(
            text,
            ", after which the seat is {}:",
            self.state(best.state)
        )?;
        if best.path.len() > PREFIX_SHOWN {
            writeln!(
                text,
                "  ... {} earlier calls",
                best.path.len() - PREFIX_SHOWN
            )?;
        }
        for &i in &best.path[best.path.len().saturating_sub(PREFIX_SHOWN)..] {
            write!(text, "  {}", self.history.ops[self.ops[i].index])?;
            if self.ops[i].completed.is_none() {
                write!(text, "  <- unknown result, taken to have taken effect here")?;
            }
            writeln!(text)?;
        }
        if best.path.is_empty() {
            writeln!(text, "  (none)")?;
        }

        let mut placed = Bits::new(self.ops.len());
        let mut done = Bits::new(definite);
        for &i in &best.path {
            placed.set(i);
            if self.ops[i].completed.is_some() {
                done.set(self.search.rank[i]);
            }
        }
        let limit = self.search.limit(&done).unwrap_or(self.ops.len());
        writeln!(text, "None of the calls that could come next can:")?;
        let mut cursor = 0;
        while let Some(i) = placed.next_clear(cursor, limit) {
            cursor = i + 1;
            let op = self.ops[i];
            if op.completed.is_none() {
                continue;
            }
            writeln!(text, "  {}", self.history.ops[op.index])?;
            match op.step.apply(best.state) {
                Some(_) => writeln!(
                    text,
                    "    allowed here, but no order of the rest works after it"
                )?,
                None => writeln!(
                    text,
                    "    {}, but the seat is {}",
                    self.requirement(op.step),
                    self.state(best.state)
                )?,
            }
        }
        if let Some(&first) = self.search.by_completion.iter().find(|&&i| !placed.get(i)) {
            writeln!(
                text,
                "(#{} is the pending call that completed first, at {}: no call invoked after \
                 that may come before it)",
                self.history.ops[self.ops[first].index].id,
                self.ops[first].completed.expect("definite"),
            )?;
        }
        Ok(text)
    }

    fn state(&self, state: State) -> String {
        match state {
            State::Free => "free".into(),
            State::Held(Some(hold)) => format!("held by hold {}", self.holds.name(hold)),
            State::Held(None) => "held by an unknown-result hold (whose id nobody learned)".into(),
            State::Booked(Some(booking)) => format!("booked as {}", self.bookings.name(booking)),
            State::Booked(None) => {
                "booked by an unknown-result confirm (whose booking id nobody learned)".into()
            }
        }
    }

    fn requirement(&self, step: Step) -> String {
        match step {
            Step::Acquire(_) => "a successful hold needs the seat free".into(),
            Step::NotFree => "a SEAT_UNAVAILABLE refusal needs the seat not free".into(),
            Step::Book { hold, .. } => format!(
                "a successful confirm needs the seat held by hold {}",
                self.holds.name(hold)
            ),
            Step::NotHeldBy(hold) => format!(
                "this refusal needs hold {} not to be the seat's active holder",
                self.holds.name(hold)
            ),
            Step::Release(hold) => format!(
                "a successful release needs the seat held by hold {}",
                self.holds.name(hold)
            ),
            Step::Cancel(booking) => format!(
                "a successful cancel needs the seat booked as {}",
                self.bookings.name(booking)
            ),
            Step::NotBookedAs(booking) => format!(
                "this refusal needs the seat not booked as {}",
                self.bookings.name(booking)
            ),
            Step::Read(status) => format!(
                "a linearizable read of {status:?} needs the seat {}",
                match status {
                    SeatStatus::Available => "free",
                    SeatStatus::Held => "held",
                    SeatStatus::Booked => "booked",
                }
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Op;

    const EVENT: &str = "e1";

    /// Builds a history; every call comes from its own client.
    #[derive(Default)]
    struct Builder {
        history: History,
    }

    impl Builder {
        /// A call answered definitely between `invoked` and `completed`.
        fn at(
            &mut self,
            invoked: Micros,
            completed: Micros,
            call: Call,
            result: OpResult,
        ) -> usize {
            assert!(result.is_definite());
            let client = self.history.ops.len();
            let id = self.history.invoke(client, 1, invoked, call);
            self.history.complete(id, completed, result);
            id
        }

        /// A call whose answer never came.
        fn unknown(&mut self, invoked: Micros, call: Call) -> usize {
            let client = self.history.ops.len();
            self.history.invoke(client, 1, invoked, call)
        }

        fn op(&self, id: usize) -> &Op {
            &self.history.ops[id]
        }
    }

    fn hold(seat: &str) -> Call {
        hold_many(&[seat])
    }

    fn hold_many(seats: &[&str]) -> Call {
        Call::Hold {
            event_id: EVENT.into(),
            seats: seats.iter().map(|seat| seat.to_string()).collect(),
            pools: Vec::new(),
            ttl_seconds: 3600,
        }
    }

    fn confirm(hold_id: &str) -> Call {
        Call::Confirm {
            hold_id: hold_id.into(),
        }
    }

    fn release(hold_id: &str) -> Call {
        Call::Release {
            hold_id: hold_id.into(),
        }
    }

    fn cancel(booking_id: &str) -> Call {
        Call::Cancel {
            booking_id: booking_id.into(),
        }
    }

    fn read(seat: &str) -> Call {
        read_at(seat, ReadLevel::Linearizable)
    }

    fn read_at(seat: &str, level: ReadLevel) -> Call {
        Call::ReadSeat {
            event_id: EVENT.into(),
            seat_id: seat.into(),
            level,
        }
    }

    fn held(hold_id: &str) -> OpResult {
        OpResult::Held {
            hold_id: hold_id.into(),
            expires_at_ms: 1_000_000,
        }
    }

    fn confirmed(booking_id: &str) -> OpResult {
        OpResult::Confirmed {
            booking_id: booking_id.into(),
        }
    }

    fn rejected(code: &str) -> OpResult {
        OpResult::Rejected { code: code.into() }
    }

    const AVAILABLE: OpResult = OpResult::Seat(SeatStatus::Available);
    const HELD: OpResult = OpResult::Seat(SeatStatus::Held);
    const BOOKED: OpResult = OpResult::Seat(SeatStatus::Booked);

    fn verdict<'a>(report: &'a Report, seat: &str) -> &'a SeatVerdict {
        report
            .seats
            .iter()
            .find(|verdict| verdict.event_id == EVENT && verdict.seat_id == seat)
            .unwrap_or_else(|| panic!("seat {seat} not in the report: {report:#?}"))
    }

    fn assert_linearizable(history: &History) -> Report {
        let report = check(history, DEFAULT_MAX_STATES_PER_SEAT);
        for seat in &report.seats {
            assert_eq!(seat.outcome, Outcome::Linearizable, "{seat}");
        }
        report
    }

    /// Asserts seat `seat` is the only violation; returns its explanation.
    fn assert_violation(history: &History, seat: &str) -> String {
        let report = check(history, DEFAULT_MAX_STATES_PER_SEAT);
        let violations = report.violations();
        assert_eq!(violations.len(), 1, "{report:#?}");
        assert_eq!(violations[0].seat_id, seat);
        assert_eq!(report.inconclusive(), 0);
        match &violations[0].outcome {
            Outcome::NotLinearizable { explanation } => explanation.clone(),
            _ => unreachable!(),
        }
    }

    // --- Known-good histories. -----------------------------------------------------------

    #[test]
    fn empty_history_has_no_seats() {
        let report = check(&History::default(), DEFAULT_MAX_STATES_PER_SEAT);
        assert!(report.seats.is_empty());
        assert!(report.violations().is_empty());
        assert_eq!(report.checked_ops(), 0);
    }

    #[test]
    fn concurrent_holds_exactly_one_wins() {
        let mut b = Builder::default();
        // The first one invoked answers last and lost: it must come after the winner.
        b.at(0, 30, hold("A"), rejected("SEAT_UNAVAILABLE"));
        b.at(5, 20, hold("A"), held("h1"));
        b.at(10, 25, hold("A"), rejected("SEAT_UNAVAILABLE"));
        b.at(40, 50, read("A"), HELD);
        let report = assert_linearizable(&b.history);
        assert_eq!(verdict(&report, "A").ops, 4);
    }

    #[test]
    fn hold_confirm_cancel_hold_again() {
        let mut b = Builder::default();
        b.at(0, 10, hold("A"), held("h1"));
        b.at(11, 12, read("A"), HELD);
        b.at(20, 30, confirm("h1"), confirmed("b1"));
        b.at(31, 32, read("A"), BOOKED);
        b.at(33, 34, hold("A"), rejected("SEAT_UNAVAILABLE"));
        b.at(35, 36, release("h1"), rejected("HOLD_NOT_ACTIVE"));
        b.at(37, 38, confirm("h1"), rejected("HOLD_NOT_ACTIVE"));
        b.at(40, 50, cancel("b1"), OpResult::Cancelled);
        b.at(51, 52, cancel("b1"), rejected("BOOKING_NOT_ACTIVE"));
        b.at(53, 54, read("A"), AVAILABLE);
        b.at(60, 70, hold("A"), held("h2"));
        b.at(71, 80, release("h2"), OpResult::Released);
        b.at(81, 82, confirm("h2"), rejected("HOLD_EXPIRED"));
        b.at(83, 84, release("h2"), rejected("HOLD_NOT_FOUND"));
        b.at(85, 86, read("A"), AVAILABLE);
        let report = assert_linearizable(&b.history);
        assert_eq!(report.seats.len(), 1);
        assert_eq!(verdict(&report, "A").ops, 15);
        assert_eq!(report.checked_ops(), 15);
    }

    #[test]
    fn overlapping_ops_linearize_out_of_invocation_and_completion_order() {
        let mut b = Builder::default();
        b.at(0, 10, hold("A"), held("h1"));
        // A slow release: the hold of h2 completed first, yet must come after it.
        b.at(20, 100, release("h1"), OpResult::Released);
        b.at(30, 40, hold("A"), held("h2"));
        b.at(50, 60, read("A"), HELD);
        b.at(70, 80, confirm("h2"), confirmed("b2"));
        b.at(90, 95, read("A"), BOOKED);
        assert_linearizable(&b.history);
    }

    #[test]
    fn reads_concurrent_with_a_hold_may_see_either_state() {
        let mut b = Builder::default();
        b.at(0, 100, hold("A"), held("h1"));
        b.at(10, 20, read("A"), AVAILABLE);
        b.at(15, 50, read("A"), AVAILABLE);
        b.at(30, 40, read("A"), HELD);
        b.at(60, 70, read("A"), HELD);
        b.at(110, 120, read("A"), HELD);
        assert_linearizable(&b.history);
    }

    #[test]
    fn completion_at_the_instant_of_invocation_counts_as_concurrent() {
        let mut b = Builder::default();
        b.at(0, 10, read("A"), HELD);
        b.at(10, 20, hold("A"), held("h1"));
        assert_linearizable(&b.history);
    }

    #[test]
    fn unknown_hold_that_took_effect() {
        let mut b = Builder::default();
        b.unknown(0, hold("A"));
        b.at(10, 20, hold("A"), rejected("SEAT_UNAVAILABLE"));
        b.at(30, 40, read("A"), HELD);
        b.at(50, 60, hold("A"), rejected("SEAT_UNAVAILABLE"));
        assert_linearizable(&b.history);
    }

    #[test]
    fn unknown_hold_that_did_not_take_effect() {
        let mut b = Builder::default();
        b.unknown(0, hold("A"));
        b.at(10, 20, hold("A"), held("h1"));
        b.at(30, 40, release("h1"), OpResult::Released);
        b.at(50, 60, read("A"), AVAILABLE);
        b.at(70, 80, hold("A"), held("h2"));
        assert_linearizable(&b.history);
    }

    #[test]
    fn unknown_hold_taking_effect_long_after_its_invocation() {
        let mut b = Builder::default();
        b.at(0, 10, hold("A"), held("h1"));
        b.unknown(5, hold("A"));
        b.at(20, 30, release("h1"), OpResult::Released);
        b.at(40, 50, read("A"), AVAILABLE);
        // The unknown hold took effect between 50 and 60.
        b.at(60, 70, hold("A"), rejected("SEAT_UNAVAILABLE"));
        b.at(80, 90, read("A"), HELD);
        assert_linearizable(&b.history);
    }

    #[test]
    fn unknown_confirm_that_took_effect() {
        let mut b = Builder::default();
        b.at(0, 10, hold("A"), held("h1"));
        b.unknown(20, confirm("h1"));
        b.at(30, 40, read("A"), BOOKED);
        b.at(50, 60, release("h1"), rejected("HOLD_NOT_ACTIVE"));
        b.at(70, 80, hold("A"), rejected("SEAT_UNAVAILABLE"));
        assert_linearizable(&b.history);
    }

    #[test]
    fn unknown_confirm_that_did_not_take_effect() {
        let mut b = Builder::default();
        b.at(0, 10, hold("A"), held("h1"));
        b.unknown(20, confirm("h1"));
        b.at(30, 40, release("h1"), OpResult::Released);
        b.at(50, 60, read("A"), AVAILABLE);
        assert_linearizable(&b.history);
    }

    #[test]
    fn unknown_release_and_cancel_that_took_effect() {
        let mut b = Builder::default();
        b.at(0, 10, hold("A"), held("h1"));
        b.unknown(20, release("h1"));
        b.at(30, 40, hold("A"), held("h2"));
        b.at(50, 60, confirm("h2"), confirmed("b2"));
        b.unknown(70, cancel("b2"));
        b.at(80, 90, read("A"), AVAILABLE);
        b.at(100, 110, hold("A"), held("h3"));
        assert_linearizable(&b.history);
    }

    #[test]
    fn refusals_that_do_not_say_anything_are_dropped() {
        let mut b = Builder::default();
        b.at(0, 10, hold("A"), rejected("NOT_LEADER"));
        b.at(11, 12, hold("A"), rejected("OVERLOADED"));
        b.at(13, 14, hold("A"), rejected("HOLD_LIMIT_REACHED"));
        b.at(15, 16, hold("A"), rejected("NO_QUORUM"));
        b.at(20, 30, read("A"), AVAILABLE);
        b.at(40, 50, hold("A"), held("h1"));
        b.at(51, 52, confirm("h1"), rejected("PAYMENT_AMOUNT_MISMATCH"));
        b.at(53, 54, release("h1"), rejected("NOT_LEADER"));
        b.at(55, 56, read("A"), rejected("NOT_LEADER"));
        b.at(60, 70, read("A"), HELD);
        b.at(80, 90, release("h1"), OpResult::Released);
        let report = assert_linearizable(&b.history);
        assert_eq!(verdict(&report, "A").ops, 4);
    }

    #[test]
    fn calls_on_ids_the_history_never_returned_are_skipped() {
        let mut b = Builder::default();
        b.at(0, 10, hold("A"), held("h1"));
        b.at(20, 30, confirm("h-made-up"), confirmed("b9"));
        b.at(31, 32, release("h-made-up"), OpResult::Released);
        b.at(33, 34, cancel("b9"), OpResult::Cancelled);
        b.at(35, 36, cancel("b-made-up"), OpResult::Cancelled);
        b.at(40, 50, read("A"), HELD);
        let report = assert_linearizable(&b.history);
        assert_eq!(report.checked_ops(), 2);
    }

    #[test]
    fn multi_seat_and_pool_holds_are_projected_on_each_seat() {
        let mut b = Builder::default();
        b.at(0, 10, hold_many(&["A", "B"]), held("h1"));
        b.at(20, 30, hold("A"), rejected("SEAT_UNAVAILABLE"));
        b.at(20, 30, hold("B"), rejected("SEAT_UNAVAILABLE"));
        // Says some seat of the three was taken: dropped.
        b.at(
            20,
            30,
            hold_many(&["A", "B", "C"]),
            rejected("SEAT_UNAVAILABLE"),
        );
        b.at(40, 50, read("B"), HELD);
        b.at(60, 70, confirm("h1"), confirmed("b1"));
        b.at(80, 90, read("A"), BOOKED);
        b.at(100, 110, cancel("b1"), OpResult::Cancelled);
        b.at(120, 130, read("B"), AVAILABLE);
        let seat_and_pool = Call::Hold {
            event_id: EVENT.into(),
            seats: vec!["A".into()],
            pools: vec![("floor".into(), 2)],
            ttl_seconds: 3600,
        };
        b.at(140, 150, seat_and_pool, held("h2"));
        let pool_only = Call::Hold {
            event_id: EVENT.into(),
            seats: Vec::new(),
            pools: vec![("floor".into(), 2)],
            ttl_seconds: 3600,
        };
        b.at(140, 150, pool_only, held("h3"));
        b.at(160, 170, confirm("h3"), confirmed("b3"));
        b.at(180, 190, read("A"), HELD);
        let report = assert_linearizable(&b.history);
        let seats: Vec<&str> = report.seats.iter().map(|s| s.seat_id.as_str()).collect();
        assert_eq!(seats, ["A", "B"]);
        // A: hold, refusal, confirm, read, cancel, hold, read. B: hold, refusal, read, confirm,
        // cancel, read.
        assert_eq!(verdict(&report, "A").ops, 7);
        assert_eq!(verdict(&report, "B").ops, 6);
    }

    #[test]
    fn seats_are_checked_independently_and_reported_in_order() {
        let mut b = Builder::default();
        b.at(0, 10, hold("B"), held("h1"));
        b.at(0, 10, hold("A"), held("h2"));
        b.at(0, 10, hold("A10"), held("h3"));
        b.history.invoke(99, 1, 5, {
            Call::Hold {
                event_id: "e0".into(),
                seats: vec!["Z".into()],
                pools: Vec::new(),
                ttl_seconds: 60,
            }
        });
        b.at(20, 30, hold("B"), held("h4"));
        let report = check(&b.history, DEFAULT_MAX_STATES_PER_SEAT);
        let seats: Vec<(&str, &str)> = report
            .seats
            .iter()
            .map(|s| (s.event_id.as_str(), s.seat_id.as_str()))
            .collect();
        assert_eq!(
            seats,
            [("e0", "Z"), ("e1", "A"), ("e1", "A10"), ("e1", "B")]
        );
        assert_eq!(report.violations().len(), 1);
        assert_eq!(report.violations()[0].seat_id, "B");
        assert_eq!(report.inconclusive(), 0);
        assert_eq!(report.checked_ops(), 5);
        // Deterministic, explanation included.
        assert_eq!(report, check(&b.history, DEFAULT_MAX_STATES_PER_SEAT));
    }

    // --- Known-bad histories. ------------------------------------------------------------

    #[test]
    fn double_hold_in_sequence_is_a_violation() {
        let mut b = Builder::default();
        let first = b.at(0, 10, hold("A"), held("h1"));
        b.at(12, 15, read("A"), HELD);
        let second = b.at(20, 30, hold("A"), held("h2"));
        let explanation = assert_violation(&b.history, "A");
        assert!(
            explanation.contains(&b.op(first).to_string()),
            "{explanation}"
        );
        assert!(
            explanation.contains(&b.op(second).to_string()),
            "{explanation}"
        );
        assert!(explanation.contains("held by hold h1"), "{explanation}");
        assert!(
            explanation.contains("a successful hold needs the seat free"),
            "{explanation}"
        );
    }

    #[test]
    fn double_hold_of_concurrent_calls_is_a_violation() {
        let mut b = Builder::default();
        b.at(0, 10, hold("A"), held("h1"));
        b.at(5, 15, hold("A"), held("h2"));
        assert_violation(&b.history, "A");
    }

    #[test]
    fn double_booking_through_two_confirms_is_a_violation() {
        let mut b = Builder::default();
        b.at(0, 10, hold("A"), held("h1"));
        b.at(5, 15, hold("A"), held("h2"));
        b.at(20, 30, confirm("h1"), confirmed("b1"));
        b.at(20, 30, confirm("h2"), confirmed("b2"));
        assert_violation(&b.history, "A");
    }

    #[test]
    fn double_hold_is_a_violation_even_with_an_unknown_release_of_another_hold() {
        let mut b = Builder::default();
        b.at(0, 10, hold("A"), held("h1"));
        b.at(0, 10, hold("B"), held("h9"));
        b.unknown(12, release("h9"));
        b.at(20, 30, hold("A"), held("h2"));
        assert_violation(&b.history, "A");
    }

    #[test]
    fn confirm_after_release_is_a_violation() {
        let mut b = Builder::default();
        b.at(0, 10, hold("A"), held("h1"));
        let released = b.at(20, 30, release("h1"), OpResult::Released);
        let confirmed = b.at(40, 50, confirm("h1"), confirmed("b1"));
        let explanation = assert_violation(&b.history, "A");
        assert!(
            explanation.contains(&b.op(released).to_string()),
            "{explanation}"
        );
        assert!(
            explanation.contains(&b.op(confirmed).to_string()),
            "{explanation}"
        );
        assert!(
            explanation.contains("needs the seat held by hold h1, but the seat is free"),
            "{explanation}"
        );
    }

    #[test]
    fn confirm_of_a_hold_that_lost_the_seat_is_a_violation() {
        let mut b = Builder::default();
        b.at(0, 10, hold("A"), held("h1"));
        b.at(20, 30, release("h1"), OpResult::Released);
        b.at(40, 50, hold("A"), held("h2"));
        b.at(60, 70, confirm("h1"), confirmed("b1"));
        assert_violation(&b.history, "A");
    }

    #[test]
    fn linearizable_read_of_available_under_a_completed_hold_is_a_violation() {
        let mut b = Builder::default();
        b.at(0, 10, hold("A"), held("h1"));
        let stale = b.at(20, 30, read("A"), AVAILABLE);
        let explanation = assert_violation(&b.history, "A");
        assert!(
            explanation.contains(&b.op(stale).to_string()),
            "{explanation}"
        );
        assert!(
            explanation.contains("needs the seat free, but the seat is held by hold h1"),
            "{explanation}"
        );
    }

    #[test]
    fn seat_unavailable_when_the_seat_was_certainly_free_is_a_violation() {
        let mut b = Builder::default();
        b.at(0, 10, hold("A"), rejected("SEAT_UNAVAILABLE"));
        assert_violation(&b.history, "A");

        let mut b = Builder::default();
        b.at(0, 10, hold("A"), held("h1"));
        b.at(20, 30, confirm("h1"), confirmed("b1"));
        b.at(40, 50, cancel("b1"), OpResult::Cancelled);
        b.at(60, 70, hold("A"), rejected("SEAT_UNAVAILABLE"));
        assert_violation(&b.history, "A");
    }

    #[test]
    fn linearizable_read_of_a_past_state_is_a_violation() {
        let mut b = Builder::default();
        b.at(0, 10, hold("A"), held("h1"));
        b.at(20, 30, confirm("h1"), confirmed("b1"));
        b.at(40, 50, read("A"), HELD);
        assert_violation(&b.history, "A");
    }

    #[test]
    fn reads_going_back_in_time_are_a_violation() {
        let mut b = Builder::default();
        b.at(0, 100, hold("A"), held("h1"));
        b.at(10, 20, read("A"), AVAILABLE);
        b.at(30, 40, read("A"), HELD);
        // Each read alone fits the concurrent hold; not after the one that saw it held.
        b.at(50, 60, read("A"), AVAILABLE);
        assert_violation(&b.history, "A");
    }

    #[test]
    fn read_that_completed_before_the_hold_was_invoked_cannot_see_it() {
        let mut b = Builder::default();
        let read_op = b.at(0, 5, read("A"), HELD);
        b.at(10, 20, hold("A"), held("h1"));
        let explanation = assert_violation(&b.history, "A");
        assert!(
            explanation.contains(&b.op(read_op).to_string()),
            "{explanation}"
        );
        assert!(explanation.contains("(none)"), "{explanation}");

        // The same calls overlapping in time are fine.
        let mut b = Builder::default();
        b.at(0, 15, read("A"), HELD);
        b.at(10, 20, hold("A"), held("h1"));
        assert_linearizable(&b.history);
    }

    #[test]
    fn refusal_of_an_active_hold_is_a_violation() {
        let mut b = Builder::default();
        b.at(0, 10, hold("A"), held("h1"));
        b.at(20, 30, release("h1"), rejected("HOLD_NOT_ACTIVE"));
        assert_violation(&b.history, "A");
    }

    #[test]
    fn refusal_of_an_active_booking_is_a_violation() {
        let mut b = Builder::default();
        b.at(0, 10, hold("A"), held("h1"));
        b.at(20, 30, confirm("h1"), confirmed("b1"));
        b.at(40, 50, cancel("b1"), rejected("BOOKING_NOT_FOUND"));
        assert_violation(&b.history, "A");
    }

    #[test]
    fn double_cancel_is_a_violation() {
        let mut b = Builder::default();
        b.at(0, 10, hold("A"), held("h1"));
        b.at(20, 30, confirm("h1"), confirmed("b1"));
        b.at(40, 50, cancel("b1"), OpResult::Cancelled);
        b.at(60, 70, cancel("b1"), OpResult::Cancelled);
        assert_violation(&b.history, "A");
    }

    #[test]
    fn an_unknown_hold_cannot_explain_a_double_hold() {
        let mut b = Builder::default();
        b.unknown(0, hold("A"));
        b.at(10, 20, hold("A"), held("h1"));
        b.at(30, 40, hold("A"), held("h2"));
        assert_violation(&b.history, "A");
    }

    #[test]
    fn a_seat_taken_by_an_unknown_hold_stays_taken() {
        let mut b = Builder::default();
        b.unknown(0, hold("A"));
        b.at(10, 20, hold("A"), rejected("SEAT_UNAVAILABLE"));
        b.at(30, 40, hold("A"), held("h1"));
        let explanation = assert_violation(&b.history, "A");
        assert!(explanation.contains("unknown-result hold"), "{explanation}");
    }

    #[test]
    fn an_unknown_confirm_cannot_be_cancelled_by_a_known_booking() {
        let mut b = Builder::default();
        b.at(0, 10, hold("A"), held("h1"));
        b.unknown(20, confirm("h1"));
        b.at(30, 40, read("A"), BOOKED);
        b.at(50, 60, hold("A"), held("h2"));
        assert_violation(&b.history, "A");
    }

    #[test]
    fn a_double_hold_through_a_multi_seat_hold_is_a_violation() {
        let mut b = Builder::default();
        b.at(0, 10, hold_many(&["A", "B"]), held("h1"));
        b.at(20, 30, hold("B"), held("h2"));
        assert_violation(&b.history, "B");
    }

    // --- Scope, bounds and scale. --------------------------------------------------------

    #[test]
    fn stale_and_bounded_reads_are_not_checked() {
        let mut b = Builder::default();
        b.at(0, 10, hold("A"), held("h1"));
        b.at(20, 30, read_at("A", ReadLevel::Stale), AVAILABLE);
        b.at(20, 30, read_at("A", ReadLevel::Bounded), AVAILABLE);
        b.at(20, 30, read_at("B", ReadLevel::Stale), BOOKED);
        let report = assert_linearizable(&b.history);
        assert_eq!(report.seats.len(), 1, "B has no checked call");
        assert_eq!(report.checked_ops(), 1);

        // The same read at the linearizable level bites.
        b.at(20, 30, read("A"), AVAILABLE);
        assert_violation(&b.history, "A");
    }

    /// `clients` clients each hold the seat and release it, all concurrently, and a final read
    /// says the seat is held when it certainly is free: the search must try every order.
    fn concurrent_churn(clients: u64) -> History {
        let mut b = Builder::default();
        for client in 0..clients {
            let hold_id = format!("h{client}");
            b.at(client, 1000 + client, hold("A"), held(&hold_id));
        }
        for client in 0..clients {
            let hold_id = format!("h{client}");
            b.at(
                1000 + clients + client,
                3000,
                release(&hold_id),
                OpResult::Released,
            );
        }
        b.at(5000, 5010, read("A"), HELD);
        b.history
    }

    #[test]
    fn state_bound_yields_inconclusive() {
        let history = concurrent_churn(2);
        let report = check(&history, DEFAULT_MAX_STATES_PER_SEAT);
        assert_eq!(report.violations().len(), 1, "{report:#?}");

        let mut b = Builder::default();
        for client in 0..8u64 {
            b.at(client, 1000, hold("A"), held(&format!("h{client}")));
        }
        let history = b.history;
        let full = check(&history, DEFAULT_MAX_STATES_PER_SEAT);
        let Outcome::NotLinearizable { .. } = full.seats[0].outcome else {
            panic!("{full:#?}");
        };
        let report = check(&history, 3);
        assert_eq!(report.inconclusive(), 1);
        assert!(report.violations().is_empty());
        assert_eq!(
            report.seats[0].outcome,
            Outcome::Inconclusive { explored: 4 }
        );
        assert_eq!(report.checked_ops(), 8);
    }

    #[test]
    fn hard_non_linearizable_history_hits_the_bound() {
        // `pairs` holds and releases of distinct holds, all concurrent, then a read that says
        // held when the seat is certainly free: refuting it visits every subset of completed
        // pairs, about 2^pairs * (pairs + 1) configurations.
        let pairs = 10u64;
        let mut b = Builder::default();
        for pair in 0..pairs {
            let hold_id = format!("h{pair}");
            b.at(pair, 1000, hold("A"), held(&hold_id));
            b.at(pair, 1000, release(&hold_id), OpResult::Released);
        }
        b.at(2000, 2010, read("A"), HELD);
        let full = check(&b.history, DEFAULT_MAX_STATES_PER_SEAT);
        assert_eq!(full.violations().len(), 1, "{full:#?}");
        let bounded = check(&b.history, 1000);
        assert_eq!(bounded.inconclusive(), 1, "{bounded:#?}");
        assert!(bounded.violations().is_empty());
        assert_eq!(
            bounded.seats[0].outcome,
            Outcome::Inconclusive { explored: 1001 }
        );
        // Without the read, the first order tried works.
        b.history.ops.pop();
        let report = check(&b.history, 100);
        assert_eq!(report.seats[0].outcome, Outcome::Linearizable);
    }

    #[test]
    fn many_concurrent_reads_do_not_blow_up() {
        // Without placing state-preserving calls greedily, refuting this explores 2^100 sets
        // of reads.
        let mut b = Builder::default();
        b.at(0, 1000, hold("A"), held("h1"));
        for i in 0..200 {
            let status = if i % 2 == 0 { AVAILABLE } else { HELD };
            b.at(1 + i, 999, read("A"), status);
        }
        b.at(2000, 2010, hold("A"), held("h2"));
        let report = check(&b.history, 10_000);
        assert_eq!(report.violations().len(), 1, "{report:#?}");
        assert_eq!(report.checked_ops(), 202);
    }

    #[test]
    fn many_unknown_calls_do_not_blow_up() {
        let mut b = Builder::default();
        b.at(0, 10, hold("A"), held("h1"));
        for i in 0..300 {
            b.unknown(11 + i, hold("A"));
            b.unknown(11 + i, release("h1"));
            b.unknown(11 + i, confirm("h1"));
            b.unknown(11 + i, read("A"));
            b.unknown(11 + i, release("h-unknown"));
        }
        b.at(400, 410, read("A"), BOOKED);
        b.at(420, 430, hold("A"), rejected("SEAT_UNAVAILABLE"));
        let report = check(&b.history, 10_000);
        assert_eq!(report.seats[0].outcome, Outcome::Linearizable);
        // hold, the earliest unknown hold, release and confirm, the two definite calls.
        assert_eq!(report.checked_ops(), 6);

        b.at(440, 450, hold("A"), held("h2"));
        let report = check(&b.history, 10_000);
        assert_eq!(report.violations().len(), 1, "{report:#?}");
    }

    #[test]
    fn unknown_releases_of_a_hold_id_returned_twice_are_all_kept() {
        // Hold ids are unique in a correct run; if one is returned twice the deduplication of
        // unknown calls on it must not make up a violation.
        let mut b = Builder::default();
        b.at(0, 10, hold("A"), held("h1"));
        b.unknown(15, release("h1"));
        b.at(20, 30, hold("A"), held("h1"));
        b.unknown(35, release("h1"));
        b.at(40, 50, hold("A"), held("h2"));
        let report = assert_linearizable(&b.history);
        assert_eq!(report.checked_ops(), 5);
    }

    #[test]
    fn long_sequential_history_is_checked_in_linear_states() {
        let mut b = Builder::default();
        let mut t = 0;
        for round in 0..1000 {
            let hold_id = format!("h{round}");
            let booking_id = format!("b{round}");
            b.at(t, t + 5, hold("A"), held(&hold_id));
            b.at(t + 1, t + 6, read("A"), HELD);
            b.at(t + 10, t + 15, confirm(&hold_id), confirmed(&booking_id));
            b.at(t + 20, t + 25, cancel(&booking_id), OpResult::Cancelled);
            t += 30;
        }
        // Bounded to a bit more than one configuration per call.
        let report = check(&b.history, 4_100);
        assert_eq!(report.seats[0].outcome, Outcome::Linearizable);
        assert_eq!(report.checked_ops(), 4000);
    }

    #[test]
    fn explanation_elides_a_long_prefix() {
        let mut b = Builder::default();
        let mut t = 0;
        for round in 0..100 {
            let hold_id = format!("h{round}");
            b.at(t, t + 5, hold("A"), held(&hold_id));
            b.at(t + 10, t + 15, release(&hold_id), OpResult::Released);
            t += 20;
        }
        let bad = b.at(t, t + 5, read("A"), HELD);
        let explanation = assert_violation(&b.history, "A");
        assert!(
            explanation.contains("... 160 earlier calls"),
            "{explanation}"
        );
        assert!(
            explanation.contains("200 of 201 definite calls"),
            "{explanation}"
        );
        assert!(
            explanation.contains(&b.op(bad).to_string()),
            "{explanation}"
        );
        assert!(
            !explanation.contains(&format!("{}\n", b.op(0))),
            "{explanation}"
        );
    }

    // --- Randomized cross-checks. ---------------------------------------------------------

    /// A small deterministic generator (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, bound: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound
        }
    }

    /// Linearizability by enumerating every order: exponential, for small histories only.
    fn brute_force(ops: &[SeatOp]) -> bool {
        fn search(ops: &[SeatOp], used: &mut [bool], state: State) -> bool {
            let pending = |i: usize, used: &[bool]| !used[i] && ops[i].completed.is_some();
            if (0..ops.len()).all(|i| !pending(i, used)) {
                return true;
            }
            for i in 0..ops.len() {
                let must_wait = (0..ops.len())
                    .any(|j| pending(j, used) && ops[j].completed < Some(ops[i].invoked));
                if used[i] || must_wait {
                    continue;
                }
                if let Some(next) = ops[i].step.apply(state) {
                    used[i] = true;
                    if search(ops, used, next) {
                        return true;
                    }
                    used[i] = false;
                }
            }
            false
        }
        search(ops, &mut vec![false; ops.len()], State::Free)
    }

    /// A random small history on seat A, mostly not linearizable.
    fn random_history(rng: &mut Rng) -> History {
        // Ids are unique, but now and then one is returned twice.
        fn fresh(rng: &mut Rng, next: &mut u64, prefix: &str) -> String {
            if *next == 0 || rng.below(10) != 0 {
                *next += 1;
            }
            format!("{prefix}{}", *next - 1)
        }
        let mut b = Builder::default();
        let mut next_hold = 0;
        let mut next_booking = 0;
        for _ in 0..1 + rng.below(7) {
            let invoked = rng.below(30);
            let completed = invoked + rng.below(15);
            let (call, result) = match rng.below(5) {
                0 => {
                    let result = match rng.below(3) {
                        0 => held(&fresh(rng, &mut next_hold, "h")),
                        1 => rejected("SEAT_UNAVAILABLE"),
                        _ => OpResult::Unknown,
                    };
                    (hold("A"), result)
                }
                1 => {
                    let call = confirm(&format!("h{}", rng.below(3)));
                    let result = match rng.below(3) {
                        0 => confirmed(&fresh(rng, &mut next_booking, "b")),
                        1 => rejected("HOLD_NOT_ACTIVE"),
                        _ => OpResult::Unknown,
                    };
                    (call, result)
                }
                2 => {
                    let call = release(&format!("h{}", rng.below(3)));
                    let result = [
                        OpResult::Released,
                        rejected("HOLD_EXPIRED"),
                        OpResult::Unknown,
                    ][rng.below(3) as usize]
                        .clone();
                    (call, result)
                }
                3 => {
                    let call = cancel(&format!("b{}", rng.below(3)));
                    let result = [
                        OpResult::Cancelled,
                        rejected("BOOKING_NOT_ACTIVE"),
                        OpResult::Unknown,
                    ][rng.below(3) as usize]
                        .clone();
                    (call, result)
                }
                _ => (
                    read("A"),
                    [AVAILABLE, HELD, BOOKED][rng.below(3) as usize].clone(),
                ),
            };
            if result.is_definite() {
                b.at(invoked, completed, call, result);
            } else {
                b.unknown(invoked, call);
            }
        }
        b.history
    }

    #[test]
    fn agrees_with_brute_force_on_random_small_histories() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut good, mut bad) = (0, 0);
        for _ in 0..20_000 {
            let history = random_history(&mut rng);
            let raw = Partition::of(&history)
                .seats
                .remove(&(EVENT.to_string(), "A".to_string()))
                .unwrap_or_default();
            let expected = brute_force(&raw);
            let report = check(&history, DEFAULT_MAX_STATES_PER_SEAT);
            let actual = report.violations().is_empty();
            assert_eq!(report.inconclusive(), 0);
            assert_eq!(actual, expected, "{:#?}\n{report:#?}", history.ops);
            if expected {
                good += 1;
            } else {
                bad += 1;
            }
        }
        // Both verdicts are well exercised.
        assert!(good > 2_000 && bad > 2_000, "{good} good, {bad} bad");
    }

    /// A history of `calls` concurrent calls on seat A that took effect at a random instant
    /// of their interval (or, for some unknown-result ones, never), answered by the model.
    fn linearizable_history(rng: &mut Rng, calls: usize) -> History {
        struct Plan {
            invoked: Micros,
            completed: Micros,
            point: Micros,
            kind: u64,
            unknown: bool,
            takes_effect: bool,
        }
        let mut plans: Vec<Plan> = (0..calls)
            .map(|_| {
                let invoked = rng.below(400);
                let length = 1 + rng.below(60);
                Plan {
                    invoked,
                    completed: invoked + length,
                    point: invoked + rng.below(length + 1),
                    kind: rng.below(5),
                    unknown: rng.below(6) == 0,
                    takes_effect: rng.below(2) == 0,
                }
            })
            .collect();
        plans.sort_by_key(|plan| plan.point);
        let (mut holds, mut bookings) = (Vec::new(), Vec::new());
        let mut state: Option<(bool, Option<String>)> = None; // (booked, id)
        let mut answered = Vec::new();
        for (n, plan) in plans.iter().enumerate() {
            let applies = !plan.unknown || plan.takes_effect;
            let pick = |ids: &Vec<String>, rng: &mut Rng| {
                (!ids.is_empty()).then(|| ids[rng.below(ids.len() as u64) as usize].clone())
            };
            let (call, result) = match plan.kind {
                0 => match &state {
                    None => {
                        let id = format!("h{n}");
                        if applies {
                            state = Some((false, (!plan.unknown).then(|| id.clone())));
                        }
                        if !plan.unknown {
                            holds.push(id.clone());
                        }
                        (hold("A"), held(&id))
                    }
                    Some(_) => (hold("A"), rejected("SEAT_UNAVAILABLE")),
                },
                1 | 2 if !holds.is_empty() => {
                    let id = pick(&holds, rng).expect("not empty");
                    let active = state == Some((false, Some(id.clone())));
                    match (plan.kind, active) {
                        (1, true) => {
                            let booking = format!("b{n}");
                            if applies {
                                state = Some((true, (!plan.unknown).then(|| booking.clone())));
                            }
                            if !plan.unknown {
                                bookings.push(booking.clone());
                            }
                            (confirm(&id), confirmed(&booking))
                        }
                        (_, true) => {
                            if applies {
                                state = None;
                            }
                            (release(&id), OpResult::Released)
                        }
                        (1, false) => (confirm(&id), rejected("HOLD_NOT_ACTIVE")),
                        (_, false) => (release(&id), rejected("HOLD_NOT_FOUND")),
                    }
                }
                3 if !bookings.is_empty() => {
                    let id = pick(&bookings, rng).expect("not empty");
                    if state == Some((true, Some(id.clone()))) {
                        if applies {
                            state = None;
                        }
                        (cancel(&id), OpResult::Cancelled)
                    } else {
                        (cancel(&id), rejected("BOOKING_NOT_ACTIVE"))
                    }
                }
                _ => {
                    let status = match &state {
                        None => AVAILABLE,
                        Some((false, _)) => HELD,
                        Some((true, _)) => BOOKED,
                    };
                    (read("A"), status)
                }
            };
            let result = if plan.unknown {
                OpResult::Unknown
            } else {
                result
            };
            answered.push((plan.invoked, plan.completed, call, result));
        }
        answered.sort_by_key(|(invoked, ..)| *invoked);
        let mut b = Builder::default();
        for (invoked, completed, call, result) in answered {
            if result.is_definite() {
                b.at(invoked, completed, call, result);
            } else {
                b.unknown(invoked, call);
            }
        }
        b.history
    }

    #[test]
    fn random_histories_that_happened_are_linearizable() {
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        for round in 0..500 {
            let history = linearizable_history(&mut rng, 10 + round % 60);
            let report = check(&history, DEFAULT_MAX_STATES_PER_SEAT);
            for seat in &report.seats {
                assert_eq!(seat.outcome, Outcome::Linearizable, "{seat}");
            }
        }
    }

    #[test]
    fn bits_find_clear_bits_across_words() {
        let mut bits = Bits::new(130);
        for i in 0..130 {
            bits.set(i);
        }
        assert_eq!(bits.next_clear(0, 130), None);
        bits.clear(64);
        bits.clear(129);
        assert_eq!(bits.next_clear(0, 130), Some(64));
        assert_eq!(bits.next_clear(64, 130), Some(64));
        assert_eq!(bits.next_clear(65, 130), Some(129));
        assert_eq!(bits.next_clear(65, 129), None);
        assert!(!bits.get(64));
        assert!(bits.get(63));
    }
}
