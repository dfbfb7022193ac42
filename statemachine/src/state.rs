//! The replicated state and the one entry point that changes it: [`StateMachine::apply`].

use compact_str::CompactString;
use std::collections::{BTreeMap, BTreeSet};

use hashbrown::HashMap;

use serde::{Deserialize, Serialize};

use crate::command::PoolQuantity;
use crate::command::{Command, Entry};
use crate::idempotency::{IdempotencyTable, Lookup};
use crate::idmap::IdMap;
use crate::inventory::Event;
use crate::limits::Config;
use crate::outbox::Outbox;
use crate::outcome::{BookingStatus, HoldStatus, Outcome, RefundStatus, Rejection};
use crate::timequeue::TimeQueue;

pub(crate) const HOLD_ID_PREFIX: &str = "h_";
pub(crate) const BOOKING_ID_PREFIX: &str = "b_";
pub(crate) const REFUND_ID_PREFIX: &str = "r_";

/// `prefix` followed by `sequence` in decimal, inline (without an allocation or the
/// formatting machinery: every hold answer builds one).
pub(crate) fn compact_id(prefix: &'static str, sequence: u64) -> CompactString {
    let mut id = CompactString::const_new(prefix);
    id.push_str(itoa::Buffer::new().format(sequence));
    id
}

/// [`compact_id`] as a `String`, for the outbox and expiry answers.
pub(crate) fn format_id(prefix: &'static str, sequence: u64) -> String {
    compact_id(prefix, sequence).into_string()
}

pub(crate) fn parse_id(prefix: &str, id: &str) -> Option<u64> {
    let digits = id.strip_prefix(prefix)?;
    // Leading zeros or signs would let two spellings name one record.
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Positions of seats in an event's seat table: inline for up to four (almost every hold),
/// so a hold's seat list is not an allocation of its own. Serialised as a sequence, like a
/// `Vec`.
pub(crate) type Positions = smallvec::SmallVec<[u32; 4]>;

/// A hold: items taken for one customer until it is confirmed, released or expires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Hold {
    pub event_id: CompactString,
    pub customer_id: CompactString,
    /// Positions of the held seats in the event's seat table.
    pub seats: Positions,
    pub pools: Vec<PoolQuantity>,
    pub amount: u64,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    pub life_ends_at_ms: u64,
    pub status: HoldStatus,
    pub ended_at_ms: Option<u64>,
    pub booking: Option<u64>,
}

/// A confirmed (or later cancelled) booking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Booking {
    pub hold: u64,
    pub event_id: CompactString,
    pub customer_id: CompactString,
    pub seats: Positions,
    pub pools: Vec<PoolQuantity>,
    pub amount: u64,
    pub payment: crate::command::PaymentRecord,
    pub created_at_ms: u64,
    pub status: BookingStatus,
    pub cancelled_at_ms: Option<u64>,
    pub cancel_reason: Option<String>,
    pub refund: Option<u64>,
}

/// Money owed back to a customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Refund {
    pub hold: u64,
    pub booking: Option<u64>,
    pub provider: String,
    pub payment_id: String,
    pub amount: u64,
    pub currency: String,
    pub created_at_ms: u64,
    pub status: RefundStatus,
    pub refunded_at_ms: Option<u64>,
}

/// The whole booking state of a cluster.
///
/// Canonical fields are serialised into snapshots; derived fields (indexes, counters) are
/// rebuilt from them on restore, so a restored replica equals one that applied the log.
#[derive(Clone, Debug)]
pub struct StateMachine {
    pub(crate) config: Config,
    pub(crate) now_ms: u64,
    pub(crate) last_hold: u64,
    pub(crate) last_booking: u64,
    pub(crate) last_refund: u64,
    pub(crate) events: BTreeMap<String, Event>,
    pub(crate) holds: IdMap<Hold>,
    pub(crate) bookings: IdMap<Booking>,
    pub(crate) refunds: IdMap<Refund>,
    pub(crate) idempotency: IdempotencyTable,
    pub(crate) outbox: Outbox,
    /// Raft node ids that left the cluster; they are never admitted again.
    pub(crate) retired_nodes: BTreeSet<u64>,
    // Derived state below.
    /// Active holds by `(expires_at_ms, hold)`.
    pub(crate) expiry_queue: TimeQueue,
    /// Ended holds by `(ended_at_ms, hold)`, pruned after their retention.
    pub(crate) ended_holds: TimeQueue,
    /// Bookings of each customer in ascending id order. Looked up, never iterated.
    pub(crate) customer_bookings: HashMap<CompactString, Vec<u64>>,
}

impl Default for StateMachine {
    fn default() -> Self {
        StateMachine::new(Config::default())
    }
}

impl StateMachine {
    /// An empty state with the given limits.
    pub fn new(config: Config) -> StateMachine {
        StateMachine {
            config,
            now_ms: 0,
            last_hold: 0,
            last_booking: 0,
            last_refund: 0,
            events: BTreeMap::new(),
            holds: IdMap::default(),
            bookings: IdMap::default(),
            refunds: IdMap::default(),
            idempotency: IdempotencyTable::default(),
            outbox: Outbox::default(),
            retired_nodes: BTreeSet::new(),
            expiry_queue: TimeQueue::default(),
            ended_holds: TimeQueue::default(),
            customer_bookings: HashMap::new(),
        }
    }

    /// The limits this state applies with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether a Raft node id was retired and may not join again.
    pub fn is_node_retired(&self, node_id: u64) -> bool {
        self.retired_nodes.contains(&node_id)
    }

    /// Whether the answer to `request_id` is remembered: applying a command with it again
    /// replays that answer and changes nothing.
    pub fn remembers_request(&self, request_id: &str) -> bool {
        self.idempotency.contains(request_id)
    }

    /// Cluster time as of the last applied entry, in Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Applies one entry. Deterministic: the same sequence of entries gives the same state
    /// and the same outcomes on every replica.
    pub fn apply(&mut self, entry: &Entry) -> Outcome {
        self.now_ms = self.now_ms.max(entry.time_ms);
        self.idempotency
            .evict_expired(self.now_ms, self.config.idempotency_retention_ms);
        self.prune_ended_holds();

        let Some(request_id) = entry.request_id.as_deref() else {
            return self.execute(&entry.command);
        };
        let fingerprint = self.idempotency.fingerprint(&entry.command);
        let vacancy = match self.idempotency.lookup(request_id, fingerprint) {
            Lookup::Replay(record) => return record.outcome(),
            Lookup::Conflict => {
                return Outcome::Rejected(Rejection::IdempotencyKeyReused {
                    request_id: request_id.to_string(),
                })
            }
            Lookup::Absent(vacancy) => vacancy,
        };
        if request_id.is_empty() || request_id.len() > crate::limits::REQUEST_ID_BYTES_MAX {
            return Outcome::Rejected(Rejection::invalid(
                "request_id",
                format!("must be 1 to {} bytes", crate::limits::REQUEST_ID_BYTES_MAX),
            ));
        }
        if self.idempotency.len() >= self.config.idempotency_entries_max {
            // Evicting a live key could let a retry apply twice: shed the write instead.
            return Outcome::Rejected(Rejection::IdempotencyTableFull {
                entries: self.idempotency.len() as u64,
            });
        }
        let outcome = self.execute(&entry.command);
        self.idempotency
            .insert(vacancy, request_id, fingerprint, self.now_ms, &outcome);
        outcome
    }

    fn execute(&mut self, command: &Command) -> Outcome {
        let result = match command {
            Command::CreateEvent(create) => self.create_event(create),
            Command::AddSeats {
                event_id,
                seats,
                seat_blocks,
            } => self.add_seats(event_id, seats, seat_blocks),
            Command::AddPools { event_id, pools } => self.add_pools(event_id, pools),
            Command::SetPoolCapacity {
                event_id,
                pool_id,
                capacity,
            } => self.set_pool_capacity(event_id, pool_id, *capacity),
            Command::RemoveSeat { event_id, seat_id } => self.remove_seat(event_id, seat_id),
            Command::RemovePool { event_id, pool_id } => self.remove_pool(event_id, pool_id),
            Command::Hold(request) => self.hold(request),
            Command::ExtendHold {
                hold_id,
                ttl_seconds,
            } => self.extend_hold(hold_id, *ttl_seconds),
            Command::ReleaseHold { hold_id } => self.release_hold(hold_id),
            Command::Confirm { hold_id, payment } => return self.confirm(hold_id, payment),
            Command::CancelBooking { booking_id, reason } => {
                self.cancel_booking(booking_id, reason)
            }
            Command::MarkRefunded { refund_id } => self.mark_refunded(refund_id),
            Command::ExpireHolds { max_holds } => self.expire_holds(*max_holds),
            Command::AckOutbox { up_to } => self.acknowledge_outbox(*up_to),
            Command::RetireNode { node_id } => {
                self.retired_nodes.insert(*node_id);
                Ok(Outcome::NodeRetired { node_id: *node_id })
            }
        };
        result.unwrap_or_else(Outcome::Rejected)
    }

    /// Forgets ended holds whose retention has passed, a bounded number per entry.
    fn prune_ended_holds(&mut self) {
        let retention = self.config.ended_hold_retention_ms;
        for _ in 0..crate::limits::ENDED_HOLDS_PRUNED_PER_ENTRY_MAX {
            let Some((ended_at, hold)) = self.ended_holds.first() else {
                return;
            };
            if ended_at.saturating_add(retention) > self.now_ms {
                return;
            }
            self.ended_holds.pop_first();
            self.holds.remove(&hold);
        }
    }

    /// Rebuilds every derived index from the canonical state (after a snapshot restore).
    pub(crate) fn rebuild_derived(&mut self) {
        self.expiry_queue.clear();
        self.ended_holds.clear();
        for event in self.events.values_mut() {
            event.rebuild_derived();
        }
        for (id, hold) in self.holds.iter() {
            match hold.ended_at_ms {
                None => {
                    self.expiry_queue.insert(hold.expires_at_ms, id);
                    if let Some(event) = self.events.get_mut(&*hold.event_id) {
                        let hash = event.customer_holds.hash(&hold.customer_id);
                        event.customer_holds.add(hash, &hold.customer_id);
                    }
                }
                Some(ended_at) => {
                    self.ended_holds.insert(ended_at, id);
                }
            }
        }
        self.customer_bookings.clear();
        for (id, booking) in self.bookings.iter() {
            self.customer_bookings
                .entry(booking.customer_id.clone())
                .or_default()
                .push(id);
        }
    }
}
