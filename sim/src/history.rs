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
    /// When the call was invoked (its first attempt, for a retried write).
    pub invoked: Micros,
    /// When the answer arrived; `None` when it never did.
    pub completed: Option<Micros>,
    /// What was asked.
    pub call: Call,
    /// What the client was told; [`OpResult::Unknown`] until it is told something definite.
    pub result: OpResult,
}

/// How fresh a read is (API.md's read levels).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ReadLevel {
    /// `consistency=stale`: the node's local state, however far behind.
    Stale,
    /// `consistency=bounded`: the local state if the node heard from the leader recently
    /// (`max_staleness_ms`, default 1000 ms), else the read is forwarded to the leader.
    Bounded,
    /// `consistency=linearizable`: the leader confirms its leadership with a quorum first.
    /// Only reads at this level are checked for linearizability.
    Linearizable,
}

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Call {
    /// Hold seats and pool units of one event, all or nothing.
    Hold {
        /// The event held in.
        event_id: String,
        /// Seat ids (`A-1`); may be empty for a hold of pool units only.
        seats: Vec<String>,
        /// Pool ids with the number of units held of each.
        pools: Vec<(String, u64)>,
        /// The hold's time to live, in seconds.
        ttl_seconds: u64,
    },
    /// Confirm a hold (the client got its id from an earlier `Hold`).
    Confirm {
        /// The hold to confirm.
        hold_id: String,
    },
    /// Release a hold (`POST /booking/cancel` with a `hold_id`).
    Release {
        /// The hold to release.
        hold_id: String,
    },
    /// Cancel a booking.
    Cancel {
        /// The booking to cancel (the client got its id from an earlier `Confirm`).
        booking_id: String,
    },
    /// Read one seat's status. One availability request records one such call per checked
    /// seat, all with the request's interval.
    ReadSeat {
        /// The event read.
        event_id: String,
        /// The seat whose status this call records.
        seat_id: String,
        /// The read's consistency level.
        level: ReadLevel,
    },
}

/// What a seat read returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum SeatStatus {
    /// `AVAILABLE`: neither held nor booked.
    Available,
    /// `HELD`: part of an active hold.
    Held,
    /// `BOOKED`: part of an active booking.
    Booked,
}

/// What the client was told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum OpResult {
    /// A hold was created.
    Held {
        /// The new hold's id.
        hold_id: String,
        /// Cluster time at which the hold expires, Unix milliseconds.
        expires_at_ms: u64,
    },
    /// The hold became a booking.
    Confirmed {
        /// The new booking's id.
        booking_id: String,
    },
    /// The hold was released.
    Released,
    /// The booking was cancelled.
    Cancelled,
    /// A seat read.
    Seat(SeatStatus),
    /// The state machine refused the command (or the node refused it before proposing
    /// it): it certainly changed nothing. `code` is the API's stable error code.
    Rejected {
        /// The error code, or `NO_CODE` when the answer carried none.
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
    /// Every call, indexed by [`Op::id`].
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
