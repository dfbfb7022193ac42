//! The replicated state and the one entry point that changes it: [`StateMachine::apply`].

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU64;

use compact_str::CompactString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::command::PoolQuantity;
use crate::command::{Command, Entry};
use crate::idempotency::{IdempotencyTable, Lookup};
use crate::idmap::IdMap;
use crate::inventory::Event;
use crate::limits::Config;
use crate::outbox::Outbox;
use crate::outcome::{BookingStatus, HoldStatus, Outcome, RefundStatus, Rejection};
use crate::shardedmap::ShardedMap;
use crate::timequeue::TimeQueue;

pub(crate) const HOLD_ID_PREFIX: &str = "h_";
pub(crate) const BOOKING_ID_PREFIX: &str = "b_";
pub(crate) const REFUND_ID_PREFIX: &str = "r_";

/// How many entries ahead [`StateMachine::apply_batch`] prefetches. Measured: 2 and 4 are
/// within a few percent of each other, 2 slightly ahead, and 8 or 16 no better.
const PREFETCH_DISTANCE: usize = 2;

/// Seats of one hold whose records are prefetched (almost every hold has fewer).
const PREFETCH_SEATS_MAX: usize = 4;

/// `prefix` followed by `sequence` in decimal: the spelling of webhook ids, which stay
/// sequential (hold, booking and refund ids go through the state's `IdKey`, see `ids.rs`).
pub(crate) fn format_id(prefix: &'static str, sequence: u64) -> String {
    crate::ids::IdKey::default().format(prefix, sequence)
}

/// The number a [`format_id`] spelling names.
pub(crate) fn parse_id(prefix: &str, id: &str) -> Option<u64> {
    crate::ids::IdKey::default().parse(prefix, id)
}

/// Positions of seats in an event's seat table: inline for up to four (almost every hold),
/// so a hold's seat list is not an allocation of its own. Serialised as a sequence, like a
/// `Vec`.
pub(crate) type Positions = smallvec::SmallVec<[u32; 4]>;

/// A hold: items taken for one customer until it is confirmed, released or expires.
///
/// Every hold ever made passes through here, so the record is kept small (144 bytes): the
/// end time is only meaningful once the hold has ended (see [`Hold::ended_at`]), and a
/// booking id is never 0. It serialises as the plain record it stands for ([`HoldRecord`]),
/// the end time and booking as options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hold {
    pub event_id: CompactString,
    pub customer_id: CompactString,
    /// Positions of the held seats in the event's seat table.
    pub seats: Positions,
    pub pools: Box<[PoolQuantity]>,
    pub amount: u64,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    pub life_ends_at_ms: u64,
    /// When the hold stopped being active; 0 while it is. Read it through
    /// [`Hold::ended_at`].
    pub ended_at_ms: u64,
    pub booking: Option<NonZeroU64>,
    pub status: HoldStatus,
}

// Every hold is one of these; keep it from growing unnoticed.
const _: () = assert!(std::mem::size_of::<Hold>() <= 144);

impl Hold {
    /// When the hold stopped being active: `None` exactly while it is.
    pub fn ended_at(&self) -> Option<u64> {
        (self.status != HoldStatus::Active).then_some(self.ended_at_ms)
    }

    /// Ends the hold at `now_ms` with `status` (not [`HoldStatus::Active`]).
    pub fn end(&mut self, status: HoldStatus, now_ms: u64, booking: Option<NonZeroU64>) {
        debug_assert_ne!(status, HoldStatus::Active);
        self.status = status;
        self.ended_at_ms = now_ms;
        self.booking = booking;
    }
}

/// A [`Hold`] as snapshots hold it.
#[derive(Serialize, Deserialize)]
struct HoldRecord<Id, Seats, Pools> {
    event_id: Id,
    customer_id: Id,
    seats: Seats,
    pools: Pools,
    amount: u64,
    created_at_ms: u64,
    expires_at_ms: u64,
    life_ends_at_ms: u64,
    status: HoldStatus,
    ended_at_ms: Option<u64>,
    booking: Option<NonZeroU64>,
}

impl Serialize for Hold {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        HoldRecord {
            event_id: &*self.event_id,
            customer_id: &*self.customer_id,
            seats: &self.seats,
            pools: &*self.pools,
            amount: self.amount,
            created_at_ms: self.created_at_ms,
            expires_at_ms: self.expires_at_ms,
            life_ends_at_ms: self.life_ends_at_ms,
            status: self.status,
            ended_at_ms: self.ended_at(),
            booking: self.booking,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Hold {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Hold, D::Error> {
        let record =
            HoldRecord::<CompactString, Positions, Box<[PoolQuantity]>>::deserialize(deserializer)?;
        let ended_at_ms = match (record.status, record.ended_at_ms) {
            (HoldStatus::Active, None) => 0,
            (HoldStatus::Active, Some(_)) | (_, None) => {
                return Err(serde::de::Error::custom(
                    "a hold's end time disagrees with its status",
                ))
            }
            (_, Some(ended_at_ms)) => ended_at_ms,
        };
        Ok(Hold {
            event_id: record.event_id,
            customer_id: record.customer_id,
            seats: record.seats,
            pools: record.pools,
            amount: record.amount,
            created_at_ms: record.created_at_ms,
            expires_at_ms: record.expires_at_ms,
            life_ends_at_ms: record.life_ends_at_ms,
            ended_at_ms,
            booking: record.booking,
            status: record.status,
        })
    }
}

/// A confirmed (or later cancelled) booking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Booking {
    pub hold: u64,
    pub event_id: CompactString,
    pub customer_id: CompactString,
    pub seats: Positions,
    pub pools: Box<[PoolQuantity]>,
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
    /// Failed attempts recorded (`RefundAttemptFailed`).
    pub attempts: u32,
    pub last_attempt_at_ms: Option<u64>,
    /// Why the last attempt failed.
    pub failure_reason: Option<String>,
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
    pub(crate) customer_bookings: ShardedMap<CompactString, Vec<u64>>,
    /// Events that are not cancelled, by start time and by category (see `search.rs`).
    pub(crate) search_index: crate::search::SearchIndex,
    /// Ids of the refunds still `Pending`, so the refund worker and `GET /refunds` find them
    /// without walking every refund ever recorded.
    pub(crate) pending_refunds: BTreeSet<u64>,
    /// What each payment went to, by `(provider, payment_id)`: a confirm retried after its
    /// idempotency key was forgotten must answer the booking its payment already bought,
    /// never record a refund of it (see `holds.rs`, `StateMachine::confirm`).
    pub(crate) payment_uses: ShardedMap<PaymentKey, PaymentUse>,
    /// Where the notifier delivers outbox events (canonical; serialised after the outbox).
    pub(crate) webhooks: crate::webhooks::Webhooks,
    /// A backup restore in progress, or the one that made this state (canonical;
    /// serialised last, see `restore.rs`).
    pub(crate) restores: crate::restore::Restores,
    /// Charges about to be made (canonical; serialised after the restore, see
    /// `intents.rs`).
    pub(crate) charge_intents: crate::intents::ChargeIntents,
    /// How hold, booking and refund ids are spelled (canonical; serialised after the
    /// charge intents, see `ids.rs`).
    pub(crate) ids: crate::ids::IdKey,
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
            customer_bookings: ShardedMap::default(),
            search_index: crate::search::SearchIndex::default(),
            pending_refunds: BTreeSet::new(),
            payment_uses: ShardedMap::default(),
            webhooks: crate::webhooks::Webhooks::default(),
            restores: crate::restore::Restores::default(),
            charge_intents: crate::intents::ChargeIntents::default(),
            ids: crate::ids::IdKey::default(),
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

    /// Whether the answer to `request_id` is remembered and will still be at cluster time
    /// `at_ms` (it is forgotten once the idempotency retention has passed since it was
    /// stored).
    pub fn remembers_request_at(&self, request_id: &str, at_ms: u64) -> bool {
        self.idempotency
            .stored_at_ms(request_id)
            .is_some_and(|stored| {
                stored.saturating_add(self.config.idempotency_retention_ms) > at_ms
            })
    }

    /// Cluster time as of the last applied entry, in Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Applies one entry. Deterministic: the same sequence of entries gives the same state
    /// and the same outcomes on every replica.
    pub fn apply(&mut self, entry: &Entry) -> Outcome {
        let outcome = self.apply_entry(entry);
        match &entry.command {
            Command::Confirm { hold_id, payment } => {
                self.settle_confirm(entry.request_id.as_deref(), hold_id, payment, outcome)
            }
            _ => outcome,
        }
    }

    /// A confirm's charge is accounted for once the confirm is answered: its charge intent
    /// (under its request id) is resolved. A confirm refused for reusing another request's
    /// key still carries a charge: it records the refund owed, as any refused confirm does.
    /// Only a confirm the idempotency table turned away unapplied (full, or an invalid
    /// request id) leaves its intent, for the node to propose it again.
    fn settle_confirm(
        &mut self,
        request_id: Option<&str>,
        hold_id: &str,
        payment: &crate::command::PaymentRecord,
        outcome: Outcome,
    ) -> Outcome {
        let unapplied = matches!(
            outcome,
            Outcome::Rejected(Rejection::IdempotencyTableFull { .. })
        ) || request_id.is_some_and(|id| !request_id_is_valid(id));
        if unapplied {
            return outcome;
        }
        let outcome = match outcome {
            Outcome::Rejected(rejection @ Rejection::IdempotencyKeyReused { .. }) => {
                self.refund_unbooked_charge(hold_id, payment, rejection)
            }
            outcome => outcome,
        };
        if let Some(request_id) = request_id {
            self.resolve_charge_intent(request_id);
        }
        outcome
    }

    fn apply_entry(&mut self, entry: &Entry) -> Outcome {
        self.now_ms = self.now_ms.max(entry.time_ms);
        self.idempotency
            .evict_expired(self.now_ms, self.config.idempotency_retention_ms);
        self.prune_ended_holds();

        let Some(request_id) = entry.request_id.as_deref() else {
            if let Err(rejection) = self.outbox_admits(&entry.command) {
                return Outcome::Rejected(rejection);
            }
            return self.execute(&entry.command);
        };
        let fingerprint = self.idempotency.fingerprint(&entry.command);
        let vacancy = match self.idempotency.lookup(request_id, fingerprint) {
            Lookup::Replay(record) => {
                return record.outcome(&crate::holds::remembered_answers(
                    self.ids,
                    &self.holds,
                    &self.events,
                ));
            }
            Lookup::Conflict => {
                return Outcome::Rejected(Rejection::IdempotencyKeyReused {
                    request_id: request_id.to_string(),
                })
            }
            Lookup::Absent(vacancy) => vacancy,
        };
        if !request_id_is_valid(request_id) {
            return Outcome::Rejected(Rejection::invalid(
                "request_id",
                format!("must be 1 to {} bytes", crate::limits::REQUEST_ID_BYTES_MAX),
            ));
        }
        let entries_max = self
            .config
            .idempotency_entries_max
            .min(crate::idempotency::RECORDS_MAX);
        if self.idempotency.len() >= entries_max {
            // Evicting a live key could let a retry apply twice: shed the write instead.
            return Outcome::Rejected(Rejection::IdempotencyTableFull {
                entries: self.idempotency.len() as u64,
            });
        }
        // Like a full idempotency table, a full outbox is decided before the command
        // applies and not remembered: a retry once the webhook caught up applies afresh.
        if let Err(rejection) = self.outbox_admits(&entry.command) {
            return Outcome::Rejected(rejection);
        }
        let outcome = self.execute(&entry.command);
        if let Outcome::Rejected(rejection) = &outcome {
            if rejection.refuses_the_request_itself() {
                return outcome;
            }
        }
        // A successful hold (always the one just made) is remembered by reference when the
        // hold will outlive the record; anything else by its encoding.
        let held = match &outcome {
            Outcome::Held(view) if self.config.remembers_holds_by_reference() => {
                debug_assert_eq!(
                    self.ids.parse(HOLD_ID_PREFIX, &view.hold_id),
                    Some(self.last_hold)
                );
                Some((self.last_hold, view.expires_at_ms))
            }
            _ => None,
        };
        self.idempotency.insert(
            vacancy,
            request_id,
            fingerprint,
            self.now_ms,
            &outcome,
            held,
        );
        outcome
    }

    /// Applies `entries` in order, as [`StateMachine::apply`] applies each, handing each
    /// outcome to `answer` — and faster: while it applies one entry, the memory the entry
    /// [`PREFETCH_DISTANCE`] places later will read is already on its way into the cache.
    ///
    /// A hold reads a few lines of large tables at random (its request id's index line, its
    /// customer's, its seats'), each a cache and TLB miss that stalls the processor for
    /// longer than the rest of the hold takes. Prefetched ahead, those misses overlap with
    /// the work of the entries before it: 1.6–2.3× the holds a second of applying them one
    /// by one (medians over paired runs, see BENCHMARKS.md). A prefetch changes nothing observable: the outcomes and the
    /// state are exactly those of applying one entry at a time.
    pub fn apply_batch(&mut self, entries: &[Entry], mut answer: impl FnMut(Outcome)) {
        for entry in entries.iter().take(PREFETCH_DISTANCE) {
            self.prefetch(entry);
        }
        for (index, entry) in entries.iter().enumerate() {
            if let Some(later) = entries.get(index + PREFETCH_DISTANCE) {
                self.prefetch(later);
            }
            answer(self.apply(entry));
        }
    }

    /// Asks the processor for the lines of the large tables that applying `entry` reads
    /// first: its request id's slot in the idempotency index and, for a hold, its
    /// customer's slot and its block seats' records. Reads nothing else and changes
    /// nothing; a wrong guess (an entry rejected early, an earlier entry changing what this
    /// one will read) costs only the wasted fetch.
    fn prefetch(&self, entry: &Entry) {
        if let Some(request_id) = entry.request_id.as_deref() {
            self.idempotency.prefetch(request_id);
        }
        if let Command::Hold(request) = &entry.command {
            if let Some(event) = self.events.get(&request.event_id) {
                event.customer_holds.prefetch(&request.customer_id);
                for seat in request.seats.iter().take(PREFETCH_SEATS_MAX) {
                    event.prefetch_seat(seat);
                }
            }
        }
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
            Command::UpdateEvent(update) => self.update_event(update),
            Command::CancelEvent { event_id, reason } => self.cancel_event(event_id, reason),
            Command::RefundAttemptFailed {
                refund_id,
                attempt,
                reason,
                give_up,
            } => self.refund_attempt_failed(refund_id, *attempt, reason, *give_up),
            Command::AddWebhook {
                url,
                secret,
                events,
            } => self.add_webhook(url, secret, events),
            Command::RemoveWebhook { webhook_id } => self.remove_webhook(webhook_id),
            Command::AckWebhook { webhook_id, up_to } => {
                self.acknowledge_webhook(webhook_id, *up_to)
            }
            Command::RestoreChunk(chunk) => self.restore_chunk(chunk),
            Command::RecordChargeIntent {
                charge_key,
                hold_id,
                provider,
            } => self.record_charge_intent(charge_key, hold_id, provider),
            Command::DropChargeIntent { charge_key } => self.drop_charge_intent(charge_key),
            Command::SetIdKey { key } => self.set_id_key(*key),
        };
        self.drop_stale_restore();
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
            match hold.ended_at() {
                None => {
                    self.expiry_queue.insert(hold.expires_at_ms, id);
                    if let Some(event) = self.events.get_mut(&*hold.event_id) {
                        let tag = event.customer_holds.tag(&hold.customer_id);
                        event.customer_holds.add(tag, &hold.customer_id);
                    }
                }
                Some(ended_at) => {
                    self.ended_holds.insert(ended_at, id);
                }
            }
        }
        self.search_index = crate::search::SearchIndex::build(&self.events);
        self.customer_bookings.clear();
        for (id, booking) in self.bookings.iter() {
            self.customer_bookings
                .get_or_default(booking.customer_id.clone())
                .push(id);
        }
        self.pending_refunds = self
            .refunds
            .iter()
            .filter(|(_, refund)| refund.status == RefundStatus::Pending)
            .map(|(id, _)| id)
            .collect();
        self.payment_uses = payment_uses(&self.bookings, &self.refunds);
    }
}

/// Whether `apply` takes `id` as a request id (else it refuses the entry unapplied).
fn request_id_is_valid(id: &str) -> bool {
    !id.is_empty() && id.len() <= crate::limits::REQUEST_ID_BYTES_MAX
}

/// A payment's name: its provider and the provider's id for it.
pub(crate) type PaymentKey = (CompactString, CompactString);

/// The key of a payment record.
pub(crate) fn payment_key(provider: &str, payment_id: &str) -> PaymentKey {
    (
        CompactString::from(provider),
        CompactString::from(payment_id),
    )
}

/// What a payment went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PaymentUse {
    /// It paid for this booking (confirmed or cancelled since).
    Booking(u64),
    /// It is owed back by this refund, recorded when its confirm was refused.
    Refund(u64),
}

/// The payment index of `bookings` and `refunds`, built from scratch. A cancelled booking's
/// refund shares the booking's payment; the booking names it.
pub(crate) fn payment_uses(
    bookings: &IdMap<Booking>,
    refunds: &IdMap<Refund>,
) -> ShardedMap<PaymentKey, PaymentUse> {
    let mut uses = ShardedMap::default();
    for (id, refund) in refunds.iter() {
        if refund.booking.is_none() {
            uses.insert(
                payment_key(&refund.provider, &refund.payment_id),
                PaymentUse::Refund(id),
            );
        }
    }
    for (id, booking) in bookings.iter() {
        uses.insert(
            payment_key(&booking.payment.provider, &booking.payment.payment_id),
            PaymentUse::Booking(id),
        );
    }
    uses
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record as it was declared before it was packed: snapshots must not change.
    #[derive(Serialize)]
    struct Plain {
        event_id: &'static str,
        customer_id: &'static str,
        seats: Vec<u32>,
        pools: Vec<PoolQuantity>,
        amount: u64,
        created_at_ms: u64,
        expires_at_ms: u64,
        life_ends_at_ms: u64,
        status: HoldStatus,
        ended_at_ms: Option<u64>,
        booking: Option<u64>,
    }

    fn encode<T: Serialize>(value: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap()
    }

    #[test]
    fn a_hold_serialises_as_its_plain_record_and_refuses_an_inconsistent_one() {
        let pools = vec![PoolQuantity {
            pool_id: "GA".into(),
            quantity: 2,
        }];
        let mut hold = Hold {
            event_id: "E".into(),
            customer_id: "c".into(),
            seats: Positions::from_slice(&[3, 9]),
            pools: pools.clone().into_boxed_slice(),
            amount: 4500,
            created_at_ms: 1_700_000_000_000,
            expires_at_ms: 1_700_000_600_000,
            life_ends_at_ms: 1_700_007_200_000,
            ended_at_ms: 0,
            booking: None,
            status: HoldStatus::Active,
        };
        let mut plain = Plain {
            event_id: "E",
            customer_id: "c",
            seats: vec![3, 9],
            pools,
            amount: 4500,
            created_at_ms: 1_700_000_000_000,
            expires_at_ms: 1_700_000_600_000,
            life_ends_at_ms: 1_700_007_200_000,
            status: HoldStatus::Active,
            ended_at_ms: None,
            booking: None,
        };
        let decode = |bytes: &[u8]| {
            bincode::serde::decode_from_slice::<Hold, _>(bytes, bincode::config::standard())
                .map(|(hold, _)| hold)
        };
        assert_eq!(encode(&hold), encode(&plain));
        assert_eq!(decode(&encode(&plain)).unwrap(), hold);

        hold.end(HoldStatus::Confirmed, 1_700_000_100_000, NonZeroU64::new(7));
        (plain.status, plain.ended_at_ms, plain.booking) =
            (HoldStatus::Confirmed, Some(1_700_000_100_000), Some(7));
        assert_eq!(hold.ended_at(), Some(1_700_000_100_000));
        assert_eq!(encode(&hold), encode(&plain));
        assert_eq!(decode(&encode(&plain)).unwrap(), hold);

        plain.ended_at_ms = None;
        assert!(
            decode(&encode(&plain)).is_err(),
            "ended without an end time"
        );
        (plain.status, plain.ended_at_ms, plain.booking) = (HoldStatus::Active, Some(1), None);
        assert!(decode(&encode(&plain)).is_err(), "active with an end time");
        (plain.ended_at_ms, plain.booking) = (None, Some(0));
        assert!(decode(&encode(&plain)).is_err(), "booking 0");
    }
}
