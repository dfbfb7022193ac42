//! Events and their inventory: seats (unique items) and pools (fungible capacity), with the
//! admin commands that change them and the availability queries that read them.

use std::collections::BTreeMap;
use std::hash::BuildHasher;

use compact_str::CompactString;
use hashbrown::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::chunkdeque::ChunkDeque;
use crate::command::{Category, CreateEvent, Listing, PoolSpec, SeatBlock, SeatSpec};
use crate::cowvec::CowVec;
use crate::limits::*;
use crate::outcome::{
    AvailabilityPage, EventChange, EventInfo, Outcome, PoolView, Rejection, SeatStatus, SeatView,
    Summary,
};
use crate::probetable::{self, ProbeTable};
use crate::StateMachine;

/// What holds a seat. Removed seats keep their position so that positions never move.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum SeatState {
    Available,
    Held(u64),
    Booked(u64),
    Removed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Seat {
    /// Inline when short (up to 24 bytes, which seat ids almost always are): a seat lookup
    /// compares the id in the seat itself instead of following a pointer to the heap, and a
    /// million-seat venue is not a million small allocations.
    pub id: CompactString,
    /// Position of the seat's row in [`Event::rows`].
    pub row: u32,
    pub number: u32,
    pub price: u64,
    pub state: SeatState,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Row {
    pub section: Box<str>,
    pub name: Box<str>,
    /// Positions of the row's seats, ordered by seat number.
    pub seats: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pool {
    pub capacity: u64,
    pub held: u64,
    pub booked: u64,
    pub price: u64,
}

impl Pool {
    pub fn available(&self) -> u64 {
        self.capacity - self.held - self.booked
    }
}

/// Seat id → position, without storing the ids twice: a raw hash table of positions whose
/// hashes are computed from the seat table. Lookup only; never iterated.
#[derive(Clone, Default)]
pub(crate) struct SeatIndex {
    table: hashbrown::HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
}

impl std::fmt::Debug for SeatIndex {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "SeatIndex({} seats)", self.table.len())
    }
}

impl SeatIndex {
    fn find(&self, seats: &CowVec<Seat>, id: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(id);
        self.table
            .find(hash, |&position| &*seats[position as usize].id == id)
            .copied()
    }

    fn insert(&mut self, seats: &CowVec<Seat>, position: u32) {
        let hash = self.hasher.hash_one(&*seats[position as usize].id);
        let hasher = &self.hasher;
        self.table.insert_unique(hash, position, |&other| {
            hasher.hash_one(&*seats[other as usize].id)
        });
    }

    fn reserve(&mut self, seats: &CowVec<Seat>, additional: usize) {
        let hasher = &self.hasher;
        self.table.reserve(additional, |&other| {
            hasher.hash_one(&*seats[other as usize].id)
        });
    }

    fn remove(&mut self, seats: &CowVec<Seat>, id: &str) {
        let hash = self.hasher.hash_one(id);
        if let Ok(entry) = self
            .table
            .find_entry(hash, |&position| &*seats[position as usize].id == id)
        {
            entry.remove();
        }
    }
}

/// A shortcut to the seats made by seat blocks, which are most seats of a large venue.
///
/// A block's seat is named `{section}-{row}-{number}`, and a block lays each row's seats out
/// at consecutive positions in number order. For such a row, a seat's position is the row's
/// first position plus the seat's distance from the row's first number: found by a lookup in
/// the table of rows and one read of the seat itself, where the [`SeatIndex`] probes a table
/// as large as the venue. Every answer is checked against the seat's own id (ids are unique
/// within an event), and anything not found this way (listed seats, rows that are not one
/// run, removed seats) is looked up in the [`SeatIndex`].
///
/// A row's slot holds everything a lookup reads: the row's key (inline when short, as
/// block rows' keys are) and its run. A lookup reads one slot and nothing it points to; the
/// rows themselves (and their names on the heap) are read only when seats are added. Two
/// rows may share a key (section `A-1` row `2` and section `A` row `1-2`): a lookup takes
/// the first, and the check against the seat's id sends a miss to the [`SeatIndex`].
#[derive(Clone, Default)]
pub(crate) struct RowIndex {
    table: hashbrown::HashTable<RowSlot>,
    hasher: hashbrown::DefaultHashBuilder,
}

/// One row in a [`RowIndex`].
#[derive(Clone, Debug)]
struct RowSlot {
    /// `{section}-{name}`, the part of a block seat's id before its number.
    key: CompactString,
    /// The row's position in [`Event::rows`].
    row: u32,
    /// The row's run, when its seats are numbered and placed consecutively.
    run: Option<Run>,
}

/// Seats numbered `first_number..first_number + len` at positions
/// `first_position..first_position + len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    first_number: u32,
    first_position: u32,
    len: u32,
}

impl std::fmt::Debug for RowIndex {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "RowIndex({} rows)", self.table.len())
    }
}

impl RowIndex {
    /// Builds `{section}-{name}` in `key` (a buffer reused between calls) and hashes it.
    fn hash(&self, section: &str, name: &str, key: &mut String) -> u64 {
        key.clear();
        key.push_str(section);
        key.push('-');
        key.push_str(name);
        self.hasher.hash_one(key.as_str())
    }

    /// The position of the row `name` of `section`. Compared with the row itself: two rows
    /// can share a key (section `A-1` row `2`, section `A` row `1-2`).
    fn row(&self, rows: &CowVec<Row>, section: &str, name: &str, key: &mut String) -> Option<u32> {
        let hash = self.hash(section, name, key);
        self.table
            .find(hash, |slot| {
                let row = &rows[slot.row as usize];
                *row.section == *section && *row.name == *name
            })
            .map(|slot| slot.row)
    }

    /// Takes in `rows[row]`, the row after the last one it knows, with no run yet.
    fn add_row(&mut self, rows: &CowVec<Row>, row: usize, key: &mut String) {
        debug_assert_eq!(row, self.table.len());
        let hash = self.hash(&rows[row].section, &rows[row].name, key);
        let slot = RowSlot {
            key: CompactString::from(key.as_str()),
            row: row as u32,
            run: None,
        };
        let hasher = &self.hasher;
        self.table
            .insert_unique(hash, slot, |slot| hasher.hash_one(slot.key.as_str()));
    }

    /// Recomputes the runs of rows that gained seats.
    fn refresh_runs(&mut self, rows: &CowVec<Row>, seats: &CowVec<Seat>, touched: &[u32]) {
        let mut key = String::new();
        for &row in touched {
            let hash = self.hash(
                &rows[row as usize].section,
                &rows[row as usize].name,
                &mut key,
            );
            if let Some(slot) = self.table.find_mut(hash, |slot| slot.row == row) {
                slot.run = run_of(&rows[row as usize], seats);
            }
        }
    }

    fn rebuild(&mut self, rows: &CowVec<Row>, seats: &CowVec<Seat>) {
        self.table.clear();
        self.table
            .reserve(rows.len(), |slot| self.hasher.hash_one(slot.key.as_str()));
        let mut key = String::new();
        for row in 0..rows.len() {
            self.add_row(rows, row, &mut key);
        }
        let all: Vec<u32> = (0..rows.len() as u32).collect();
        self.refresh_runs(rows, seats, &all);
    }

    /// Where the block seat named `id` would be, if it is one: its row's first position
    /// plus its distance from the row's first number. Not checked against the seat itself.
    fn candidate(&self, id: &str) -> Option<u32> {
        // `{prefix}-{number}`, the number at most nine digits (so it fits a u32).
        let bytes = id.as_bytes();
        let digits = bytes
            .iter()
            .rev()
            .take_while(|byte| byte.is_ascii_digit())
            .count();
        if digits == 0 || digits > 9 || digits >= bytes.len() {
            return None;
        }
        let dash = bytes.len() - digits - 1;
        if bytes[dash] != b'-' {
            return None;
        }
        let number = bytes[dash + 1..]
            .iter()
            .fold(0u32, |number, digit| number * 10 + u32::from(digit - b'0'));
        let prefix = &id[..dash];
        let hash = self.hasher.hash_one(prefix);
        let run = self.table.find(hash, |slot| slot.key == prefix)?.run?;
        let offset = number.checked_sub(run.first_number)?;
        (offset < run.len).then_some(run.first_position + offset)
    }

    /// The position of the block seat named `id`, if it is one.
    fn find(&self, seats: &CowVec<Seat>, id: &str) -> Option<u32> {
        let position = self.candidate(id)?;
        let seat = &seats[position as usize];
        (*seat.id == *id && seat.state != SeatState::Removed).then_some(position)
    }

    /// Per row, in row order, `(first number, first position)` of its run.
    #[cfg(test)]
    fn runs(&self) -> Vec<Option<(u32, u32)>> {
        let mut runs = vec![None; self.table.len()];
        for slot in &self.table {
            runs[slot.row as usize] = slot.run.map(|run| (run.first_number, run.first_position));
        }
        runs
    }
}

/// The run of a row whose seats are numbered and placed consecutively.
fn run_of(row: &Row, seats: &CowVec<Seat>) -> Option<Run> {
    let &first = row.seats.first()?;
    let first_number = seats[first as usize].number;
    let consecutive = row.seats.iter().enumerate().all(|(offset, &position)| {
        position == first + offset as u32
            && seats[position as usize].number == first_number.wrapping_add(offset as u32)
    });
    consecutive.then_some(Run {
        first_number,
        first_position: first,
        len: row.seats.len() as u32,
    })
}

/// Active holds per customer of one event, for the per-customer limit. A hold looks its
/// customer up once: the tag is computed once and handed to the later update.
///
/// Customers sit in a slab of 32-byte entries (id and count; a forgotten customer's entry
/// is reused), in chunks so that it grows without copying (see `chunkdeque.rs`), found through a [`ProbeTable`] of slab positions: a customer's first hold,
/// the usual case in a sale, reads one line of the index and no entry, and that line can
/// be prefetched ([`CustomerHolds::prefetch`]).
///
/// Ids here and in the holds are [`CompactString`]s, copied rather than shared: a shared
/// (`Arc`) id costs an atomic increment per hold, and an atomic instruction waits for every
/// store before it, on a path that writes fresh memory.
#[derive(Clone, Default)]
pub(crate) struct CustomerHolds {
    index: ProbeTable,
    /// Customers with holds, and free entries (no holds, empty id) listed in `free`.
    entries: ChunkDeque<CustomerEntry>,
    free: ChunkDeque<u32>,
    hasher: hashbrown::DefaultHashBuilder,
}

#[derive(Clone, Default)]
struct CustomerEntry {
    id: CompactString,
    holds: u32,
}

impl std::fmt::Debug for CustomerHolds {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let customers = self.entries.len() - self.free.len();
        write!(formatter, "CustomerHolds({customers} customers)")
    }
}

impl CustomerHolds {
    /// The tag of `customer_id`, for [`CustomerHolds::count`] and [`CustomerHolds::add`].
    pub fn tag(&self, customer_id: &str) -> u32 {
        probetable::tag(&self.hasher, customer_id)
    }

    /// Asks the processor to fetch the index line a lookup of `customer_id` reads.
    pub fn prefetch(&self, customer_id: &str) {
        self.index.prefetch(self.tag(customer_id));
    }

    /// The slab position of the customer with this tag and id.
    fn entry(&self, tag: u32, customer_id: &str) -> Option<u32> {
        self.index
            .find(tag, |at| *self.entries[at as usize].id == *customer_id)
    }

    /// Active holds of the customer whose id has `tag`.
    pub fn count(&self, tag: u32, customer_id: &str) -> u32 {
        self.entry(tag, customer_id)
            .map_or(0, |at| self.entries[at as usize].holds)
    }

    /// Counts one more hold of the customer whose id has `tag`.
    pub fn add(&mut self, tag: u32, customer_id: &str) {
        if let Some(at) = self.entry(tag, customer_id) {
            self.entries[at as usize].holds += 1;
            return;
        }
        let entry = CustomerEntry {
            id: CompactString::from(customer_id),
            holds: 1,
        };
        let at = match self.free.pop_back() {
            Some(at) => {
                self.entries[at as usize] = entry;
                at
            }
            None => {
                self.entries.push_back(entry);
                u32::try_from(self.entries.len() - 1).expect("customers of one event fit u32")
            }
        };
        self.index.insert(tag, at);
    }

    /// Counts one hold fewer; a customer with none left is forgotten.
    pub fn remove_one(&mut self, customer_id: &str) {
        let tag = self.tag(customer_id);
        let Some(at) = self.entry(tag, customer_id) else {
            debug_assert!(false, "a hold's customer is counted");
            return;
        };
        let entry = &mut self.entries[at as usize];
        entry.holds -= 1;
        if entry.holds == 0 {
            *entry = CustomerEntry::default();
            self.index.remove(tag, |other| other == at);
            self.free.push_back(at);
        }
    }

    pub fn total(&self) -> u64 {
        self.entries
            .iter()
            .map(|entry| u64::from(entry.holds))
            .sum()
    }

    pub fn clear(&mut self) {
        *self = CustomerHolds {
            hasher: self.hasher,
            ..CustomerHolds::default()
        };
    }
}

/// One event: description, inventory and counters.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Event {
    pub name: String,
    pub category: Category,
    pub starts_at_ms: Option<u64>,
    pub currency: String,
    /// Bumped by every change to the event; the ETag of its availability.
    pub version: u64,
    /// In shared chunks, as is `seats`: a frozen copy for a snapshot shares them.
    pub rows: CowVec<Row>,
    pub seats: CowVec<Seat>,
    pub pools: BTreeMap<String, Pool>,
    /// Venue, city, end, description and tags.
    pub listing: Listing,
    /// When the event was cancelled; holds are refused from then on.
    pub cancelled_at_ms: Option<u64>,
    #[serde(skip)]
    pub index: SeatIndex,
    #[serde(skip)]
    pub row_index: RowIndex,
    #[serde(skip)]
    pub summary: Summary,
    /// Active holds per customer. Looked up, never iterated.
    #[serde(skip)]
    pub customer_holds: CustomerHolds,
    /// The rows of each section, in creation order. Looked up, never iterated.
    #[serde(skip)]
    pub section_rows: HashMap<Box<str>, Vec<u32>>,
}

impl Event {
    /// The event's canonical fields, sharing its seats and rows (see `cowvec.rs`), without
    /// the derived indexes: what a snapshot encodes.
    pub fn frozen(&self) -> Event {
        Event {
            name: self.name.clone(),
            category: self.category,
            starts_at_ms: self.starts_at_ms,
            currency: self.currency.clone(),
            version: self.version,
            rows: self.rows.clone(),
            seats: self.seats.clone(),
            pools: self.pools.clone(),
            listing: self.listing.clone(),
            cancelled_at_ms: self.cancelled_at_ms,
            index: SeatIndex::default(),
            row_index: RowIndex::default(),
            summary: Summary::default(),
            customer_holds: CustomerHolds::default(),
            section_rows: HashMap::new(),
        }
    }

    /// Asks the processor to fetch the record of block seat `id`, which a lookup of the
    /// seat reads (found through one slot of the row table).
    pub fn prefetch_seat(&self, id: &str) {
        if let Some(position) = self.row_index.candidate(id) {
            self.seats.prefetch(position as usize);
        }
    }

    pub fn seat_position(&self, id: &str) -> Option<u32> {
        self.row_index
            .find(&self.seats, id)
            .or_else(|| self.index.find(&self.seats, id))
    }

    pub fn rebuild_derived(&mut self) {
        self.index = SeatIndex::default();
        self.index.reserve(&self.seats, self.seats.len());
        self.summary = Summary::default();
        self.customer_holds.clear();
        self.section_rows.clear();
        for (position, row) in self.rows.iter().enumerate() {
            self.section_rows
                .entry(row.section.clone())
                .or_default()
                .push(position as u32);
        }
        for position in 0..self.seats.len() {
            let state = self.seats[position].state;
            if state != SeatState::Removed {
                self.index.insert(&self.seats, position as u32);
            }
            self.count_seat(state, 1);
        }
        self.row_index.rebuild(&self.rows, &self.seats);
    }

    /// Adds (`sign = 1`) or removes (`sign = -1`) one seat in `state` from the summary.
    pub fn count_seat(&mut self, state: SeatState, sign: i64) {
        let apply = |counter: &mut u64| *counter = counter.wrapping_add_signed(sign);
        match state {
            SeatState::Removed => return,
            SeatState::Available => apply(&mut self.summary.seats_available),
            SeatState::Held(_) => apply(&mut self.summary.seats_held),
            SeatState::Booked(_) => apply(&mut self.summary.seats_booked),
        }
        apply(&mut self.summary.seats_total);
    }

    /// Moves a seat to `state`, keeping the summary exact.
    pub fn set_seat_state(&mut self, position: u32, state: SeatState) {
        let old = self.seats[position as usize].state;
        self.count_seat(old, -1);
        self.count_seat(state, 1);
        self.seats[position as usize].state = state;
    }

    pub fn seat_view(&self, position: u32) -> SeatView {
        let seat = &self.seats[position as usize];
        let row = &self.rows[seat.row as usize];
        SeatView {
            id: String::from(&*seat.id),
            section: String::from(&*row.section),
            row: String::from(&*row.name),
            number: seat.number,
            price: seat.price,
            status: match seat.state {
                SeatState::Available | SeatState::Removed => SeatStatus::Available,
                SeatState::Held(_) => SeatStatus::Held,
                SeatState::Booked(_) => SeatStatus::Booked,
            },
        }
    }

    fn pool_views(&self) -> Vec<PoolView> {
        self.pools
            .iter()
            .map(|(id, pool)| PoolView {
                id: id.clone(),
                capacity: pool.capacity,
                available: pool.available(),
                held: pool.held,
                booked: pool.booked,
                price: pool.price,
            })
            .collect()
    }
}

/// Whether every byte of `bytes` is plain: printable ASCII (`!` to `~`) but not `/`.
/// Ids shorter than eight bytes are checked a byte at a time, longer ones a word at a time
/// with the bit tricks of "Bit Twiddling Hacks" (Sean Eron Anderson): each test below is
/// exact about whether any byte of the word matches.
fn plain_id_bytes(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let plain = |word: u64| {
        // A byte below `!` (space, control characters).
        let low = word.wrapping_sub(ONES * 0x21) & !word & HIGHS;
        // A byte above `~` (DEL, or not ASCII at all): adding 0x7f - `~` = 1 sets its high
        // bit, if it is not set already.
        let high = (word.wrapping_add(ONES) | word) & HIGHS;
        // A `/`: a zero byte after xor with it.
        let slash = word ^ (ONES * u64::from(b'/'));
        let slash = slash.wrapping_sub(ONES) & !slash & HIGHS;
        low | high | slash == 0
    };
    if bytes.len() < 8 {
        return bytes
            .iter()
            .all(|&byte| (b'!'..=b'~').contains(&byte) && byte != b'/');
    }
    let word = |at: usize| u64::from_ne_bytes(bytes[at..at + 8].try_into().expect("eight bytes"));
    // Whole words, then the last eight bytes (overlapping the last whole word; a byte seen
    // twice is harmless, and there is no copy of a short tail).
    (0..bytes.len() / 8).all(|index| plain(word(index * 8))) && plain(word(bytes.len() - 8))
}

/// Checks an id: 1 to [`ID_BYTES_MAX`] bytes, no space, control character or `/`. Every id
/// of every command passes here, so the common case (printable ASCII) is checked a word at
/// a time; the rest is left to [`check_id_closely`].
#[inline]
pub(crate) fn validate_id(field: &str, id: &str) -> Result<(), Rejection> {
    if id.is_empty() || id.len() > ID_BYTES_MAX || !plain_id_bytes(id.as_bytes()) {
        return check_id_closely(field, id);
    }
    Ok(())
}

/// [`validate_id`] for an id that is empty, too long or not plain ASCII: Unicode letters
/// pass, Unicode spaces and control characters do not.
#[cold]
#[inline(never)]
fn check_id_closely(field: &str, id: &str) -> Result<(), Rejection> {
    if id.is_empty() || id.len() > ID_BYTES_MAX {
        return Err(Rejection::invalid(
            field,
            format!("must be 1 to {ID_BYTES_MAX} bytes"),
        ));
    }
    if id
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '/')
    {
        return Err(Rejection::invalid(
            field,
            "must not contain spaces, control characters or '/'",
        ));
    }
    Ok(())
}

pub(crate) fn validate_text(field: &str, text: &str) -> Result<(), Rejection> {
    if text.len() > TEXT_BYTES_MAX || text.chars().any(char::is_control) {
        return Err(Rejection::invalid(
            field,
            format!("must be at most {TEXT_BYTES_MAX} bytes without control characters"),
        ));
    }
    Ok(())
}

fn validate_price(field: &str, price: u64) -> Result<(), Rejection> {
    if price > PRICE_MAX {
        return Err(Rejection::invalid(
            field,
            format!("must be at most {PRICE_MAX}"),
        ));
    }
    Ok(())
}

/// Seats to add, expanded from listed seats and seat blocks and checked against each other.
/// Names are borrowed from the command: a block of a million seats makes a million short
/// inline ids and nothing else.
struct NewSeats<'a> {
    /// `(section, name)` of the rows the seats go in.
    rows: Vec<(&'a str, &'a str)>,
    seats: Vec<NewSeat>,
}

struct NewSeat {
    id: CompactString,
    /// Index into [`NewSeats::rows`].
    row: u32,
    number: u32,
    price: u64,
}

fn expand_seats<'a>(
    listed: &'a [SeatSpec],
    blocks: &'a [SeatBlock],
    existing: usize,
) -> Result<NewSeats<'a>, Rejection> {
    if listed.len() > SEATS_PER_COMMAND_MAX {
        return Err(Rejection::TooManyItems {
            items: listed.len() as u64,
            max: SEATS_PER_COMMAND_MAX as u64,
        });
    }
    let mut total = existing as u64 + listed.len() as u64;
    for block in blocks {
        validate_id("seat_blocks.section", &block.section)?;
        validate_price("seat_blocks.price", block.price)?;
        if block.rows.is_empty() || block.rows.len() > SEAT_BLOCK_ROWS_MAX {
            return Err(Rejection::invalid(
                "seat_blocks.rows",
                format!("must name 1 to {SEAT_BLOCK_ROWS_MAX} rows"),
            ));
        }
        if block.seats_per_row == 0 || block.seats_per_row > SEAT_BLOCK_SEATS_PER_ROW_MAX {
            return Err(Rejection::InvalidQuantity {
                field: "seat_blocks.seats_per_row".into(),
                reason: format!("must be 1 to {SEAT_BLOCK_SEATS_PER_ROW_MAX}"),
            });
        }
        for row in &block.rows {
            validate_id("seat_blocks.rows", row)?;
        }
        total += block.rows.len() as u64 * u64::from(block.seats_per_row);
    }
    if total > SEATS_PER_EVENT_MAX as u64 {
        return Err(Rejection::TooManyItems {
            items: total,
            max: SEATS_PER_EVENT_MAX as u64,
        });
    }
    let mut new = NewSeats {
        rows: Vec::new(),
        seats: Vec::with_capacity((total as usize).saturating_sub(existing)),
    };
    let mut listed_rows: HashMap<(&str, &str), u32> = HashMap::new();
    for seat in listed {
        validate_id("seats.id", &seat.id)?;
        validate_id("seats.section", &seat.section)?;
        validate_id("seats.row", &seat.row)?;
        validate_price("seats.price", seat.price)?;
        let names = (seat.section.as_str(), seat.row.as_str());
        let row = *listed_rows.entry(names).or_insert_with(|| {
            new.rows.push(names);
            new.rows.len() as u32 - 1
        });
        new.seats.push(NewSeat {
            id: CompactString::from(seat.id.as_str()),
            row,
            number: seat.number,
            price: seat.price,
        });
    }
    // A block's seat ids: the row's `{section}-{row}-` written once, then each number.
    let mut id = String::new();
    let mut digits = itoa::Buffer::new();
    for block in blocks {
        for row_name in &block.rows {
            new.rows.push((&block.section, row_name));
            let row = new.rows.len() as u32 - 1;
            id.clear();
            id.push_str(&block.section);
            id.push('-');
            id.push_str(row_name);
            id.push('-');
            let prefix = id.len();
            for number in 1..=block.seats_per_row {
                id.truncate(prefix);
                id.push_str(digits.format(number));
                validate_id("seat_blocks", &id)?;
                new.seats.push(NewSeat {
                    id: CompactString::from(id.as_str()),
                    row,
                    number,
                    price: block.price,
                });
            }
        }
    }
    let mut seen = HashSet::with_capacity(new.seats.len());
    let duplicates: Vec<String> = new
        .seats
        .iter()
        .filter(|seat| !seen.insert(seat.id.as_str()))
        .map(|seat| seat.id.to_string())
        .collect();
    drop(seen);
    if !duplicates.is_empty() {
        return Err(Rejection::ItemExists {
            item_ids: first_few(duplicates),
        });
    }
    Ok(new)
}

fn validate_pools(pools: &[PoolSpec], existing: &BTreeMap<String, Pool>) -> Result<(), Rejection> {
    if existing.len() + pools.len() > POOLS_PER_EVENT_MAX {
        return Err(Rejection::TooManyItems {
            items: (existing.len() + pools.len()) as u64,
            max: POOLS_PER_EVENT_MAX as u64,
        });
    }
    let mut seen = HashSet::new();
    let mut duplicates = Vec::new();
    for pool in pools {
        validate_id("pools.id", &pool.id)?;
        validate_price("pools.price", pool.price)?;
        if pool.capacity > POOL_CAPACITY_MAX {
            return Err(Rejection::InvalidQuantity {
                field: "pools.capacity".into(),
                reason: format!("must be at most {POOL_CAPACITY_MAX}"),
            });
        }
        if !seen.insert(pool.id.as_str()) || existing.contains_key(&pool.id) {
            duplicates.push(pool.id.clone());
        }
    }
    if !duplicates.is_empty() {
        return Err(Rejection::ItemExists {
            item_ids: first_few(duplicates),
        });
    }
    Ok(())
}

/// Keeps rejection details small however many items were wrong.
pub(crate) fn first_few(mut items: Vec<String>) -> Vec<String> {
    items.truncate(20);
    items
}

fn validate_currency(currency: &str) -> Result<(), Rejection> {
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Rejection::invalid(
            "currency",
            "must be an ISO 4217 code such as EUR",
        ));
    }
    Ok(())
}

impl StateMachine {
    pub(crate) fn event_mut(&mut self, event_id: &str) -> Result<&mut Event, Rejection> {
        self.events
            .get_mut(event_id)
            .ok_or_else(|| Rejection::EventNotFound {
                event_id: event_id.to_string(),
            })
    }

    pub(crate) fn create_event(&mut self, create: &CreateEvent) -> Result<Outcome, Rejection> {
        validate_id("event_id", &create.event_id)?;
        validate_text("name", &create.name)?;
        validate_currency(&create.currency)?;
        if self.events.contains_key(&create.event_id) {
            return Err(Rejection::EventExists {
                event_id: create.event_id.clone(),
            });
        }
        if self.events.len() >= EVENTS_MAX {
            return Err(Rejection::LimitReached {
                what: "events".into(),
                max: EVENTS_MAX as u64,
            });
        }
        crate::listing::validate_listing(&create.listing, create.starts_at_ms)?;
        let new_seats = expand_seats(&create.seats, &create.seat_blocks, 0)?;
        validate_pools(&create.pools, &BTreeMap::new())?;

        let mut event = Event {
            name: create.name.clone(),
            category: create.category,
            starts_at_ms: create.starts_at_ms,
            currency: create.currency.clone(),
            version: 1,
            rows: CowVec::default(),
            seats: CowVec::default(),
            pools: BTreeMap::new(),
            listing: create.listing.clone(),
            cancelled_at_ms: None,
            index: SeatIndex::default(),
            row_index: RowIndex::default(),
            summary: Summary::default(),
            customer_holds: CustomerHolds::default(),
            section_rows: HashMap::new(),
        };
        insert_seats(&mut event, new_seats);
        insert_pools(&mut event, &create.pools);
        self.search_index.insert(&create.event_id, &event);
        self.events.insert(create.event_id.clone(), event);
        Ok(Outcome::EventCreated(EventChange {
            event_id: create.event_id.clone(),
            version: 1,
        }))
    }

    pub(crate) fn add_seats(
        &mut self,
        event_id: &str,
        seats: &[SeatSpec],
        blocks: &[SeatBlock],
    ) -> Result<Outcome, Rejection> {
        let event = self.event_mut(event_id)?;
        if seats.is_empty() && blocks.is_empty() {
            return Err(Rejection::invalid(
                "seats",
                "name at least one seat or seat block",
            ));
        }
        let new_seats = expand_seats(seats, blocks, event.summary.seats_total as usize)?;
        let existing: Vec<String> = new_seats
            .seats
            .iter()
            .filter(|seat| event.seat_position(&seat.id).is_some())
            .map(|seat| seat.id.to_string())
            .collect();
        if !existing.is_empty() {
            return Err(Rejection::ItemExists {
                item_ids: first_few(existing),
            });
        }
        if event.seats.len() + new_seats.seats.len() > u32::MAX as usize {
            return Err(Rejection::LimitReached {
                what: "seat positions".into(),
                max: u32::MAX.into(),
            });
        }
        insert_seats(event, new_seats);
        Ok(changed(event_id, event))
    }

    pub(crate) fn add_pools(
        &mut self,
        event_id: &str,
        pools: &[PoolSpec],
    ) -> Result<Outcome, Rejection> {
        let event = self.event_mut(event_id)?;
        if pools.is_empty() {
            return Err(Rejection::invalid("pools", "name at least one pool"));
        }
        validate_pools(pools, &event.pools)?;
        insert_pools(event, pools);
        Ok(changed(event_id, event))
    }

    pub(crate) fn set_pool_capacity(
        &mut self,
        event_id: &str,
        pool_id: &str,
        capacity: u64,
    ) -> Result<Outcome, Rejection> {
        let event = self.event_mut(event_id)?;
        let pool = event
            .pools
            .get_mut(pool_id)
            .ok_or_else(|| Rejection::PoolNotFound {
                pools: vec![pool_id.to_string()],
            })?;
        if capacity > POOL_CAPACITY_MAX {
            return Err(Rejection::InvalidQuantity {
                field: "capacity".into(),
                reason: format!("must be at most {POOL_CAPACITY_MAX}"),
            });
        }
        let in_use = pool.held + pool.booked;
        if capacity < in_use {
            return Err(Rejection::CapacityBelowUsage {
                pool_id: pool_id.to_string(),
                in_use,
            });
        }
        pool.capacity = capacity;
        Ok(changed(event_id, event))
    }

    pub(crate) fn remove_seat(
        &mut self,
        event_id: &str,
        seat_id: &str,
    ) -> Result<Outcome, Rejection> {
        let event = self.event_mut(event_id)?;
        let position = event
            .seat_position(seat_id)
            .ok_or_else(|| Rejection::SeatNotFound {
                seats: vec![seat_id.to_string()],
            })?;
        if event.seats[position as usize].state != SeatState::Available {
            return Err(Rejection::ItemInUse {
                item_id: seat_id.to_string(),
            });
        }
        event.index.remove(&event.seats, seat_id);
        event.set_seat_state(position, SeatState::Removed);
        Ok(changed(event_id, event))
    }

    pub(crate) fn remove_pool(
        &mut self,
        event_id: &str,
        pool_id: &str,
    ) -> Result<Outcome, Rejection> {
        let event = self.event_mut(event_id)?;
        let pool = event
            .pools
            .get(pool_id)
            .ok_or_else(|| Rejection::PoolNotFound {
                pools: vec![pool_id.to_string()],
            })?;
        if pool.held + pool.booked > 0 {
            return Err(Rejection::ItemInUse {
                item_id: pool_id.to_string(),
            });
        }
        event.pools.remove(pool_id);
        Ok(changed(event_id, event))
    }

    /// An event's description and counters.
    pub fn event(&self, event_id: &str) -> Option<EventInfo> {
        let event = self.events.get(event_id)?;
        Some(EventInfo {
            event_id: event_id.to_string(),
            name: event.name.clone(),
            category: event.category,
            starts_at_ms: event.starts_at_ms,
            currency: event.currency.clone(),
            version: event.version,
            summary: event.summary,
            pools: event.pools.len() as u64,
        })
    }

    /// Event ids in order, after `after`, at most `limit`.
    pub fn event_ids(&self, after: Option<&str>, limit: usize) -> Vec<String> {
        use std::ops::Bound;
        let start = after.map_or(Bound::Unbounded, |after| Bound::Excluded(after.to_string()));
        self.events
            .range((start, Bound::Unbounded))
            .take(limit)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// An event's seat counters and version, in constant time.
    pub fn summary(&self, event_id: &str) -> Option<(Summary, u64)> {
        self.events
            .get(event_id)
            .map(|event| (event.summary, event.version))
    }

    /// A page of an event's seats in creation order (optionally of one section) with all of
    /// its pools. `after` is the last seat id of the previous page.
    pub fn availability(
        &self,
        event_id: &str,
        section: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<AvailabilityPage, Rejection> {
        let event = self
            .events
            .get(event_id)
            .ok_or_else(|| Rejection::EventNotFound {
                event_id: event_id.to_string(),
            })?;
        let limit = limit.clamp(1, AVAILABILITY_PAGE_SEATS_MAX);
        let start = match after {
            None => 0,
            Some(after) => {
                event
                    .seat_position(after)
                    .ok_or_else(|| Rejection::SeatNotFound {
                        seats: vec![after.to_string()],
                    })? as usize
                    + 1
            }
        };
        let mut seats = Vec::with_capacity(limit.min(event.seats.len()));
        let mut next_after = None;
        // One section: only its rows' seats are visited (in position order), not every
        // seat of the event, so a section page of a 1,000,000-seat venue stays cheap.
        let section_positions: Option<Vec<u32>> = section.map(|section| {
            let rows = event
                .section_rows
                .get(section)
                .map_or(&[][..], Vec::as_slice);
            let mut positions: Vec<u32> = rows
                .iter()
                .flat_map(|&row| event.rows[row as usize].seats.iter().copied())
                .filter(|&position| position as usize >= start)
                .collect();
            positions.sort_unstable();
            positions
        });
        let all_positions = start as u32..event.seats.len() as u32;
        let positions: Box<dyn Iterator<Item = u32>> = match &section_positions {
            Some(positions) => Box::new(positions.iter().copied()),
            None => Box::new(all_positions),
        };
        for position in positions {
            if event.seats[position as usize].state == SeatState::Removed {
                continue;
            }
            if seats.len() == limit {
                next_after = seats.last().map(|seat: &SeatView| seat.id.clone());
                break;
            }
            seats.push(event.seat_view(position));
        }
        Ok(AvailabilityPage {
            event_id: event_id.to_string(),
            currency: event.currency.clone(),
            version: event.version,
            summary: event.summary,
            seats,
            pools: event.pool_views(),
            next_after,
        })
    }
}

fn changed(event_id: &str, event: &mut Event) -> Outcome {
    event.version += 1;
    Outcome::InventoryChanged(EventChange {
        event_id: event_id.to_string(),
        version: event.version,
    })
}

fn insert_seats(event: &mut Event, new_seats: NewSeats) {
    let mut key = String::new();
    // The event's row for each of the new seats' rows, added where it has none yet.
    let rows: Vec<u32> = new_seats
        .rows
        .iter()
        .map(|&(section, name)| {
            if let Some(row) = event.row_index.row(&event.rows, section, name, &mut key) {
                return row;
            }
            let row = event.rows.len() as u32;
            let section: Box<str> = section.into();
            event
                .section_rows
                .entry(section.clone())
                .or_default()
                .push(row);
            event.rows.push(Row {
                section,
                name: name.into(),
                seats: Vec::new(),
            });
            event.row_index.add_row(&event.rows, row as usize, &mut key);
            row
        })
        .collect();
    event.index.reserve(&event.seats, new_seats.seats.len());
    for seat in new_seats.seats {
        let row = rows[seat.row as usize];
        let position = event.seats.len() as u32;
        event.seats.push(Seat {
            id: seat.id,
            row,
            number: seat.number,
            price: seat.price,
            state: SeatState::Available,
        });
        event.index.insert(&event.seats, position);
        event.count_seat(SeatState::Available, 1);
        event.rows[row as usize].seats.push(position);
    }
    let mut touched_rows = rows;
    touched_rows.sort_unstable();
    touched_rows.dedup();
    for &row in &touched_rows {
        let seats = &event.seats;
        event.rows[row as usize]
            .seats
            .sort_by_key(|&position| (seats[position as usize].number, position));
    }
    event
        .row_index
        .refresh_runs(&event.rows, &event.seats, &touched_rows);
}

fn insert_pools(event: &mut Event, pools: &[PoolSpec]) {
    for pool in pools {
        event.pools.insert(
            pool.id.clone(),
            Pool {
                capacity: pool.capacity,
                held: 0,
                booked: 0,
                price: pool.price,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Customers spread over many chunks of the slab (`chunkdeque.rs`, 2,048 entries a
    /// chunk), forgotten and their entries reused, counted as a map would.
    #[test]
    fn customer_counts_hold_across_chunks_and_reuse() {
        let mut holds = CustomerHolds::default();
        let mut model: std::collections::HashMap<String, u32> = Default::default();
        let name = |n: u32| format!("customer-{n}");
        for round in 0..3u32 {
            for n in 0..9_000u32 {
                if (n + round) % 4 != 0 {
                    let id = name(n);
                    holds.add(holds.tag(&id), &id);
                    *model.entry(id).or_default() += 1;
                }
            }
            for n in (0..9_000u32).filter(|n| n % 5 == round) {
                let id = name(n);
                if let Some(count) = model.get_mut(&id) {
                    holds.remove_one(&id);
                    *count -= 1;
                    if *count == 0 {
                        model.remove(&id);
                    }
                }
            }
        }
        for n in 0..9_000u32 {
            let id = name(n);
            let expected = model.get(&id).copied().unwrap_or(0);
            assert_eq!(holds.count(holds.tag(&id), &id), expected, "{id}");
        }
        assert_eq!(
            holds.total(),
            model.values().map(|&count| u64::from(count)).sum::<u64>()
        );
    }
    use crate::command::{Command, Entry};
    use crate::StateMachine;

    fn apply(state: &mut StateMachine, command: Command) {
        let outcome = state.apply(&Entry {
            time_ms: 1,
            request_id: None,
            command,
        });
        assert!(outcome.is_success(), "{outcome:?}");
    }

    fn block(section: &str, rows: &[&str], seats_per_row: u32) -> SeatBlock {
        SeatBlock {
            section: section.into(),
            rows: rows.iter().map(|row| row.to_string()).collect(),
            seats_per_row,
            price: 100,
        }
    }

    fn listed(id: &str, section: &str, row: &str, number: u32) -> SeatSpec {
        SeatSpec {
            id: id.into(),
            section: section.into(),
            row: row.into(),
            number,
            price: 100,
        }
    }

    /// The row shortcut and the full index agree on every name: each seat, each removed
    /// seat, and names that look like block seats but are not.
    fn assert_lookups_agree(event: &Event, extra_names: &[&str]) {
        let names = event
            .seats
            .iter()
            .map(|seat| seat.id.to_string())
            .chain(extra_names.iter().map(|name| name.to_string()));
        for name in names {
            assert_eq!(
                event.seat_position(&name),
                event.index.find(&event.seats, &name),
                "{name}"
            );
        }
    }

    #[test]
    fn the_word_at_a_time_id_check_agrees_with_a_byte_at_a_time_one() {
        let by_byte = |bytes: &[u8]| {
            bytes
                .iter()
                .all(|&b| (b'!'..=b'~').contains(&b) && b != b'/')
        };
        // Every byte value in every position of ids up to 17 bytes long.
        for length in 1..=17 {
            for position in 0..length {
                for byte in 0..=255u8 {
                    let mut id = vec![b'x'; length];
                    id[position] = byte;
                    assert_eq!(plain_id_bytes(&id), by_byte(&id), "{id:?}");
                }
            }
        }
        // Neighbours interact through borrows in the word arithmetic.
        for first in 0..=255u8 {
            for second in [0x00, 0x20, 0x21, 0x2e, 0x2f, 0x30, 0x7e, 0x7f, 0x80, 0xff] {
                for id in [[first, second], [second, first]] {
                    let mut word = *b"abcdefgh";
                    word[3..5].copy_from_slice(&id);
                    assert_eq!(plain_id_bytes(&word), by_byte(&word), "{word:?}");
                }
            }
        }
    }

    #[test]
    fn the_row_shortcut_finds_what_the_seat_index_finds() {
        let mut state = StateMachine::default();
        apply(
            &mut state,
            Command::CreateEvent(CreateEvent {
                event_id: "e".into(),
                name: "E".into(),
                category: Category::Event,
                starts_at_ms: None,
                currency: "EUR".into(),
                // A listed seat named like a block seat of another row, and a row whose
                // seats are listed with a gap in their numbers.
                seats: vec![
                    listed("A-1-9", "B", "7", 1),
                    listed("C-1-1", "C", "1", 1),
                    listed("C-1-3", "C", "1", 3),
                ],
                seat_blocks: vec![block("A", &["1", "2"], 5), block("A-x", &["y-1"], 3)],
                pools: vec![],
                listing: Default::default(),
            }),
        );
        let extras = [
            "A-1-0",
            "A-1-6",
            "A-1-99999999999",
            "A-3-1",
            "A-1-",
            "-1-1",
            "A1",
            "C-1-2",
        ];
        assert_lookups_agree(&state.events["e"], &extras);
        // Rows B-7, C-1 (a gap), A-1, A-2 and A-x/y-1, in the order their seats came.
        assert_eq!(
            state.events["e"].row_index.runs(),
            [
                Some((1, 0)),
                None,
                Some((1, 3)),
                Some((1, 8)),
                Some((1, 13))
            ]
        );

        // Seats added to a block row after the fact, a listed seat in a row of its own
        // whose key (`A-x-y-1`) is the block row `A-x`/`y-1`'s, and a removed seat.
        apply(
            &mut state,
            Command::AddSeats {
                event_id: "e".into(),
                seats: vec![listed("A-1-6", "A", "1", 6), listed("Z-1", "A-x-y", "1", 1)],
                seat_blocks: vec![block("D", &["1"], 2)],
            },
        );
        let event = &state.events["e"];
        let own_row =
            &event.rows[event.seats[event.seat_position("Z-1").unwrap() as usize].row as usize];
        assert_eq!((&*own_row.section, &*own_row.name), ("A-x-y", "1"));
        apply(
            &mut state,
            Command::RemoveSeat {
                event_id: "e".into(),
                seat_id: "A-2-3".into(),
            },
        );
        assert_lookups_agree(&state.events["e"], &extras);
        assert_eq!(state.events["e"].seat_position("A-2-3"), None);
        let runs = &state.events["e"].row_index.runs();
        assert_eq!(runs[2], None, "A-1-6 sits apart from the rest of its row");
        assert_eq!(runs[5], Some((1, 17)), "the new row D-1");

        // And after a snapshot restore.
        let restored = StateMachine::from_snapshot_bytes(&state.snapshot_bytes()).unwrap();
        assert_lookups_agree(&restored.events["e"], &extras);
        assert_eq!(
            restored.events["e"].row_index.runs(),
            state.events["e"].row_index.runs()
        );
    }
}
