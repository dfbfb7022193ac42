//! What the simulated clients did and what they were told: the input of the checkers.
//!
//! Every client call is one [`Op`], recorded with the simulated time it was invoked and the
//! time it completed. A call whose answer never came (a timeout, a dropped connection, a
//! 5xx that does not say the command was refused) has [`OpResult::Unknown`]: it may or may
//! not have taken effect, and a checker must accept both.

use std::fmt;

use serde::Serialize;

/// Simulated time since the start of the run, in microseconds.
pub type Micros = u64;

/// One client call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Op {
    /// Position in the history (the order of invocation).
    pub id: usize,
    /// The client that made the call; a client makes one call at a time.
    pub client: usize,
    /// The node the call was sent to.
    pub node: u64,
    pub invoked: Micros,
    /// When the answer arrived; `None` when it never did.
    pub completed: Option<Micros>,
    pub call: Call,
    pub result: OpResult,
}

/// How fresh a read is (API.md's read levels).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ReadLevel {
    Stale,
    Bounded,
    Linearizable,
}

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Call {
    /// Hold seats and pool units of one event, all or nothing.
    Hold {
        event_id: String,
        seats: Vec<String>,
        pools: Vec<(String, u64)>,
        ttl_seconds: u64,
    },
    /// Confirm a hold (the client got its id from an earlier `Hold`).
    Confirm { hold_id: String },
    /// Release a hold.
    Release { hold_id: String },
    /// Cancel a booking.
    Cancel { booking_id: String },
    /// Read one seat's status.
    ReadSeat {
        event_id: String,
        seat_id: String,
        level: ReadLevel,
    },
}

/// What a seat read returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum SeatStatus {
    Available,
    Held,
    Booked,
}

/// What the client was told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum OpResult {
    /// A hold was created.
    Held {
        hold_id: String,
        /// Cluster time at which the hold expires, Unix milliseconds.
        expires_at_ms: u64,
    },
    /// The hold became a booking.
    Confirmed {
        booking_id: String,
    },
    Released,
    Cancelled,
    /// A seat read.
    Seat(SeatStatus),
    /// The state machine refused the command (or the node refused it before proposing
    /// it): it certainly changed nothing. `code` is the API's stable error code.
    Rejected {
        code: String,
    },
    /// No answer, or an answer that does not say whether the command was applied.
    Unknown,
}

impl OpResult {
    /// Whether the call certainly completed (accepted or refused).
    pub fn is_definite(&self) -> bool {
        !matches!(self, OpResult::Unknown)
    }
}

/// The whole recorded history of one run, in invocation order.
#[derive(Clone, Debug, Default, Serialize)]
pub struct History {
    pub ops: Vec<Op>,
}

impl History {
    /// Starts recording a call; returns its id for [`History::complete`].
    pub fn invoke(&mut self, client: usize, node: u64, invoked: Micros, call: Call) -> usize {
        let id = self.ops.len();
        self.ops.push(Op {
            id,
            client,
            node,
            invoked,
            completed: None,
            call,
            result: OpResult::Unknown,
        });
        id
    }

    /// Records the answer of call `id`. An [`OpResult::Unknown`] answer leaves the call
    /// open-ended (it may take effect at any later time).
    pub fn complete(&mut self, id: usize, completed: Micros, result: OpResult) {
        let op = &mut self.ops[id];
        if result.is_definite() {
            op.completed = Some(completed);
        }
        op.result = result;
    }
}

impl fmt::Display for Op {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let completed = match self.completed {
            Some(completed) => format!("{completed}"),
            None => "?".into(),
        };
        write!(
            formatter,
            "#{} client {} via node {} [{}..{}] {:?} -> {:?}",
            self.id, self.client, self.node, self.invoked, completed, self.call, self.result
        )
    }
}
