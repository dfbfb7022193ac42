//! Named limits of the booking domain. Every bound the state machine enforces lives here,
//! so that the HTTP edge, the SDK and the tests agree on one number.

/// Longest accepted identifier (event, seat, pool, customer, section, row), in bytes.
pub const ID_BYTES_MAX: usize = 64;
/// Longest accepted free text (event name, cancel reason, payment provider and id), in bytes.
pub const TEXT_BYTES_MAX: usize = 256;
/// Longest accepted client request id (idempotency key plus its route scope), in bytes.
pub const REQUEST_ID_BYTES_MAX: usize = 200;
/// Items in one hold: seats plus pool lines plus best-available count.
pub const HOLD_ITEMS_MAX: usize = 100;
/// Largest quantity of one pool line in a hold.
pub const HOLD_POOL_QUANTITY_MAX: u32 = 100;
/// Shortest hold time-to-live a request may ask for.
pub const HOLD_TTL_SECONDS_MIN: u32 = 1;
/// Longest hold time-to-live a single request may ask for.
pub const HOLD_TTL_SECONDS_MAX: u32 = 7200;
/// Time-to-live of a hold whose request does not name one.
pub const HOLD_TTL_SECONDS_DEFAULT: u32 = 600;
/// Seats listed one by one in one admin command.
pub const SEATS_PER_COMMAND_MAX: usize = 50_000;
/// Seats one event may have: its existing seats plus those an admin command lists or its
/// seat blocks produce.
pub const SEATS_PER_EVENT_MAX: usize = 2_000_000;
/// Rows named by one seat block.
pub const SEAT_BLOCK_ROWS_MAX: usize = 1_000;
/// Seats per row of one seat block.
pub const SEAT_BLOCK_SEATS_PER_ROW_MAX: u32 = 5_000;
/// Pools of one event.
pub const POOLS_PER_EVENT_MAX: usize = 10_000;
/// Capacity of one pool.
pub const POOL_CAPACITY_MAX: u64 = 100_000_000;
/// Price of one seat or pool unit, in minor units.
pub const PRICE_MAX: u64 = 1_000_000_000;
/// Events the state machine keeps.
pub const EVENTS_MAX: usize = 100_000;
/// Holds an `ExpireHolds` entry may end at most.
pub const EXPIRE_HOLDS_PER_ENTRY_MAX: u32 = 10_000;
/// Page size of availability listings.
pub const AVAILABILITY_PAGE_SEATS_MAX: usize = 5_000;
/// Page size of a customer's booking history.
pub const HISTORY_PAGE_MAX: usize = 100;
/// Webhooks a cluster keeps at most.
pub const WEBHOOKS_MAX: usize = 64;
/// Longest webhook URL.
pub const WEBHOOK_URL_BYTES_MAX: usize = 2_048;
/// Longest webhook secret.
pub const WEBHOOK_SECRET_BYTES_MAX: usize = 256;
/// Event types one webhook may list.
pub const WEBHOOK_EVENT_TYPES_MAX: usize = 16;
/// Largest page of `GET /refunds`.
pub const REFUNDS_PAGE_MAX: usize = 100;
/// Charges recorded as about to be made and not yet confirmed (see `intents.rs`); a confirm
/// past it is refused before anything is charged.
pub const CHARGE_INTENTS_MAX: usize = 100_000;
/// Refunds one page of `GET /refunds` by a status other than `PENDING` walks at most.
pub const REFUNDS_SCAN_MAX: usize = 10_000;
/// Longest venue or city label of a listing, in bytes.
pub const LISTING_LABEL_BYTES_MAX: usize = 128;
/// Longest description of a listing, in bytes.
pub const LISTING_TEXT_BYTES_MAX: usize = 4_096;
/// Tags of one event.
pub const TAGS_PER_EVENT_MAX: usize = 16;
/// Longest tag, in bytes.
pub const TAG_BYTES_MAX: usize = 32;
/// Events in one page of a search.
pub const SEARCH_PAGE_MAX: usize = 500;
/// Longest search text (`q`), in bytes.
pub const SEARCH_TEXT_BYTES_MAX: usize = 128;
/// Nights a hotel search may name (`nights_from` to `nights_to`, both included).
pub const SEARCH_NIGHTS_MAX: usize = 90;
/// Outbox events kept while no webhook is configured: nobody has a claim on them, so the
/// outbox is a window of the newest ones for change-stream readers (`GET /changes`, the
/// gRPC `WatchChanges`) to resume in, and older ones are trimmed (counted in `dropped`).
/// The smaller of this and [`Config::outbox_events_max`] applies.
pub const OUTBOX_UNCLAIMED_EVENTS_MAX: usize = 65_536;
/// Ended holds pruned per applied entry, so that pruning never makes one entry slow.
pub const ENDED_HOLDS_PRUNED_PER_ENTRY_MAX: usize = 64;

/// Tunable limits, part of the replicated state: every replica applies with the same
/// values, because they travel inside the snapshot and are changed only at creation.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Config {
    /// Longest life of a hold, extensions included, in milliseconds (default 2 h).
    pub hold_life_ms_max: u64,
    /// Active holds one customer may have on one event.
    pub holds_per_customer_per_event_max: u32,
    /// How long a request id and its answer are remembered, in log milliseconds.
    pub idempotency_retention_ms: u64,
    /// Request ids remembered at once; a full table of live ids sheds new writes.
    pub idempotency_entries_max: usize,
    /// The outbox's bound. With a webhook configured, events are kept until every webhook
    /// acknowledged them, and a write that would add events is refused (`OUTBOX_FULL`)
    /// when the events held plus those already promised (one for the end of each active
    /// hold, one for the settlement of each pending refund) would pass it. With none, the
    /// newest `min(this, OUTBOX_UNCLAIMED_EVENTS_MAX)` are kept and older ones trimmed.
    pub outbox_events_max: usize,
    /// How long ended holds stay readable, in log milliseconds.
    pub ended_hold_retention_ms: u64,
    /// Test-only breakage, off by default and never serialised (a snapshot always restores
    /// a correct machine). See [`Faults`].
    #[serde(skip)]
    pub faults: Faults,
}

/// Test-only ways to break the state machine, so that the simulations (`holdfast-sim`)
/// can prove that their checkers notice a double booking. Nothing in production sets them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Hold named seats without checking that they are available.
    pub skip_seat_check: bool,
}

impl Config {
    /// Whether ended holds are remembered at least as long as request ids, so that a hold
    /// outlives the record of the request that made it and the record can keep the answer
    /// by reference to the hold.
    pub(crate) fn remembers_holds_by_reference(&self) -> bool {
        self.ended_hold_retention_ms >= self.idempotency_retention_ms
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hold_life_ms_max: 2 * 60 * 60 * 1000,
            holds_per_customer_per_event_max: 8,
            idempotency_retention_ms: 15 * 60 * 1000,
            idempotency_entries_max: 2_000_000,
            outbox_events_max: 1_000_000,
            ended_hold_retention_ms: 60 * 60 * 1000,
            faults: Faults::default(),
        }
    }
}
