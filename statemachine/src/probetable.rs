//! [`ProbeTable`]: a hash index whose slot is its own tag, so that a lookup reads one cache
//! line, and whose line can be fetched ahead of the lookup ([`ProbeTable::prefetch`]).
//!
//! hashbrown keeps a table's tags apart from its slots: a probe reads a line of tags, then
//! an insert writes a line of slots elsewhere, two random lines per keyed write. On the
//! machines we measure, a random line of a large table costs about 150 ns (a cache and a
//! TLB miss), which made the idempotency index a third of a keyed hold's time. Here a slot
//! is `(tag, value)`, 8 bytes for a `u32` value: the home slot of a key and its neighbours
//! share one line, and since the home slot is computed from the key's hash alone, the
//! state machine can prefetch it for an entry a few entries ahead of the one it applies
//! ([`crate::StateMachine::apply_batch`]).
//!
//! Linear probing, at most half full, and backward-shift deletion (no tombstones): an
//! unsuccessful lookup reads 2.5 slots on average and a successful one 1.5. The tag is 31
//! bits of the key's hash with the low bit set (a zero tag marks an empty slot), and the
//! home slot is derived from the tag, so the table grows and deletes from its tags without
//! reading the keys. Equal tags are confirmed by the caller's comparison, so a collision of
//! tags costs a comparison and never a wrong answer.
//!
//! The table is looked up, never iterated, so where its entries sit (which depends on the
//! hasher's per-process seed) cannot reach any outcome.
//!
//! **Growing never stops the world.** A table that outgrows its slots gets one of twice the
//! size and keeps the old one beside it; every insert then moves the entries of the next
//! [`MOVE_PER_INSERT`] old slots, until the old table is empty and dropped. Meanwhile a
//! lookup searches both. An old slot whose entry moved or was removed holds a tombstone
//! (tag 2, never a key's tag, which is odd), which probes pass; nothing is inserted into the
//! old table, so its probes stay as short as they were. Moving everything at once was a
//! stall of tens of milliseconds for a table of a million entries (rehashing, and the kernel
//! zeroing the new table's pages), with apply and every read waiting behind it. The new
//! table is allocated zeroed (`calloc`), so its pages are zeroed as they are first written,
//! not all at once.

use std::hash::BuildHasher;

/// Fibonacci hashing's multiplier, 2^64 / φ: spreads a tag's bits over the home slot.
const SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;

/// Slots of the smallest table that holds anything.
const SLOTS_MIN: usize = 16;

/// Old slots whose entries move to the new table with each insert while the table grows.
/// The move is over after a quarter of the inserts that take the new table to its limit
/// (an old table of `n` slots moves in `n / 8` inserts; the next growth is `n / 2` away).
const MOVE_PER_INSERT: usize = 8;

/// An empty slot: a probe that meets one stops.
const EMPTY: u64 = 0;

/// A slot of an old table whose entry moved or was removed: probes pass it.
const TOMBSTONE: u64 = 2 << 32;

/// The tag of `key` under `hasher`: 31 bits of its hash with the low bit set (never zero).
pub(crate) fn tag(hasher: &impl BuildHasher, key: &str) -> u32 {
    tag_of_hash(hasher.hash_one(key))
}

fn tag_of_hash(hash: u64) -> u32 {
    (hash >> 32) as u32 | 1
}

/// A slot: the tag in the high half, the value in the low half.
fn pack(tag: u32, value: u32) -> u64 {
    u64::from(tag) << 32 | u64::from(value)
}

fn tag_of(slot: u64) -> u32 {
    (slot >> 32) as u32
}

fn value_of(slot: u64) -> u32 {
    slot as u32
}

/// Whether `slot` holds an entry (a key's tag is odd).
fn holds_entry(slot: u64) -> bool {
    tag_of(slot) & 1 == 1
}

/// The slot of `slots` (a power of two of them, at least one) where probing for `tag`
/// starts.
fn home(slots: &[u64], tag: u32) -> usize {
    let bits = slots.len().trailing_zeros();
    (u64::from(tag).wrapping_mul(SPREAD) >> (64 - bits)) as usize
}

/// The slot of `slots` holding `tag`'s entry for which `is_it` holds.
fn position(slots: &[u64], tag: u32, mut is_it: impl FnMut(u32) -> bool) -> Option<usize> {
    if slots.is_empty() {
        return None;
    }
    let mask = slots.len() - 1;
    let mut at = home(slots, tag);
    loop {
        let slot = slots[at];
        if slot == EMPTY {
            return None;
        }
        if tag_of(slot) == tag && is_it(value_of(slot)) {
            return Some(at);
        }
        at = (at + 1) & mask;
    }
}

/// Puts `slot` in the first empty slot of `slots` from its home on. There is one.
fn place(slots: &mut [u64], slot: u64) {
    let mask = slots.len() - 1;
    let mut at = home(slots, tag_of(slot));
    while slots[at] != EMPTY {
        at = (at + 1) & mask;
    }
    slots[at] = slot;
}

/// A hash index of `u32` values by 31-bit tag (see the module's documentation).
#[derive(Clone, Debug, Default)]
pub(crate) struct ProbeTable {
    /// A power of two of them, or none. At most half hold entries.
    slots: Box<[u64]>,
    /// Entries in `slots` and `old` together.
    len: usize,
    /// While the table grows, the table before (else none): its slots before `moved` hold
    /// no entry any more.
    old: Box<[u64]>,
    moved: usize,
}

impl ProbeTable {
    pub fn len(&self) -> usize {
        self.len
    }

    /// Asks the processor to fetch the line where a lookup of `tag` starts.
    pub fn prefetch(&self, tag: u32) {
        if !self.slots.is_empty() {
            crate::prefetch::prefetch(&self.slots[home(&self.slots, tag)]);
        }
        if !self.old.is_empty() {
            crate::prefetch::prefetch(&self.old[home(&self.old, tag)]);
        }
    }

    /// The value stored under `tag` for which `is_it` holds.
    pub fn find(&self, tag: u32, mut is_it: impl FnMut(u32) -> bool) -> Option<u32> {
        position(&self.slots, tag, &mut is_it)
            .map(|at| value_of(self.slots[at]))
            .or_else(|| position(&self.old, tag, is_it).map(|at| value_of(self.old[at])))
    }

    /// Stores `value` under `tag`. The caller knows it is not stored yet.
    pub fn insert(&mut self, tag: u32, value: u32) {
        debug_assert_eq!(tag & 1, 1, "a key's tag is odd");
        self.move_some(MOVE_PER_INSERT);
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow(self.len + 1);
        }
        place(&mut self.slots, pack(tag, value));
        self.len += 1;
    }

    /// Makes room for `entries` without growing again, and ends any move.
    pub fn reserve(&mut self, entries: usize) {
        if entries * 2 > self.slots.len() {
            self.grow(entries);
        }
        self.move_some(self.old.len());
    }

    /// Starts moving every entry into a table of at least twice `entries` slots.
    fn grow(&mut self, entries: usize) {
        self.move_some(self.old.len());
        let slots = (entries * 2).next_power_of_two().max(SLOTS_MIN);
        // A `vec!` of zeros allocates zeroed memory: fresh pages are zeroed when first
        // written.
        let new = vec![EMPTY; slots].into_boxed_slice();
        self.old = std::mem::replace(&mut self.slots, new);
        self.moved = 0;
        if self.len == 0 {
            self.old = Box::default();
        }
    }

    /// Moves the entries of the next `count` old slots into the new table, and drops the
    /// old table once it is empty.
    fn move_some(&mut self, count: usize) {
        if self.old.is_empty() {
            return;
        }
        let end = self.moved.saturating_add(count).min(self.old.len());
        for at in self.moved..end {
            let slot = self.old[at];
            if holds_entry(slot) {
                place(&mut self.slots, slot);
                self.old[at] = TOMBSTONE;
            }
        }
        self.moved = end;
        if self.moved == self.old.len() {
            self.old = Box::default();
            self.moved = 0;
        }
    }

    /// Removes the value stored under `tag` for which `is_it` holds, and returns it.
    pub fn remove(&mut self, tag: u32, mut is_it: impl FnMut(u32) -> bool) -> Option<u32> {
        if let Some(at) = position(&self.old, tag, &mut is_it) {
            self.len -= 1;
            return Some(value_of(std::mem::replace(&mut self.old[at], TOMBSTONE)));
        }
        let mut hole = position(&self.slots, tag, is_it)?;
        let removed = value_of(self.slots[hole]);
        self.len -= 1;
        // Backward-shift deletion: pull each later entry of the run back into the hole
        // when the hole lies between its home and where it sits, so every entry stays
        // reachable from its home without crossing an empty slot.
        let mask = self.slots.len() - 1;
        let mut at = hole;
        loop {
            at = (at + 1) & mask;
            let slot = self.slots[at];
            if slot == EMPTY {
                break;
            }
            let home = home(&self.slots, tag_of(slot));
            // Distance from home to where it sits, and from home to the hole, along the
            // probe direction.
            if (hole.wrapping_sub(home) & mask) < (at.wrapping_sub(home) & mask) {
                self.slots[hole] = slot;
                hole = at;
            }
        }
        self.slots[hole] = EMPTY;
        Some(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Clone, Debug)]
    enum Step {
        Insert(u64),
        Remove(u64),
        Find(u64),
    }

    /// Keys and their hashes from a small range of tags, so that collisions of tags and
    /// long runs happen.
    fn hash_of(key: u64) -> u64 {
        (key % 23) << 33 | key
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => (0..400u64).prop_map(Step::Insert),
            2 => (0..400u64).prop_map(Step::Remove),
            2 => (0..400u64).prop_map(Step::Find),
        ]
    }

    proptest! {
        #[test]
        fn it_answers_as_a_map_does(steps in proptest::collection::vec(step(), 1..600)) {
            let mut table = ProbeTable::default();
            let mut model = HashMap::new();
            for step in steps {
                match step {
                    Step::Insert(key) => {
                        if let std::collections::hash_map::Entry::Vacant(vacant) = model.entry(key) {
                            vacant.insert(());
                            table.insert(tag_of_hash(hash_of(key)), key as u32);
                        }
                    }
                    Step::Remove(key) => {
                        let removed = table.remove(tag_of_hash(hash_of(key)), |value| value == key as u32);
                        prop_assert_eq!(removed.is_some(), model.remove(&key).is_some());
                    }
                    Step::Find(key) => {
                        let found = table.find(tag_of_hash(hash_of(key)), |value| value == key as u32);
                        prop_assert_eq!(found, model.contains_key(&key).then_some(key as u32));
                    }
                }
                prop_assert_eq!(table.len(), model.len());
                prop_assert!(table.slots.is_empty() || table.len() * 2 <= table.slots.len());
                let entries = |slots: &[u64]| slots.iter().filter(|&&slot| holds_entry(slot)).count();
                prop_assert_eq!(entries(&table.slots) + entries(&table.old), table.len());
            }
            for key in 0..400u64 {
                let found = table.find(tag_of_hash(hash_of(key)), |value| value == key as u32);
                prop_assert_eq!(found.is_some(), model.contains_key(&key));
            }
        }
    }

    #[test]
    fn a_removal_keeps_a_run_that_wraps_around_the_end_reachable() {
        let mut table = ProbeTable::default();
        table.reserve(8);
        let slots = table.slots.len();
        // Tags whose home is the last slot: their run wraps to the start.
        let last: Vec<u32> = (1..u32::MAX)
            .step_by(2)
            .filter(|&tag| home(&table.slots, tag) == slots - 1)
            .take(4)
            .collect();
        for (value, &tag) in last.iter().enumerate() {
            table.insert(tag, value as u32);
        }
        assert_eq!(table.remove(last[0], |value| value == 0), Some(0));
        for (value, &tag) in last.iter().enumerate().skip(1) {
            assert_eq!(table.find(tag, |v| v == value as u32), Some(value as u32));
        }
        assert_eq!(table.find(last[0], |v| v == 0), None);
    }

    #[test]
    fn a_growing_table_answers_from_both_tables_until_the_move_ends() {
        let tag = |key: u32| tag_of_hash(hash_of(u64::from(key)));
        let mut table = ProbeTable::default();
        for key in 0..8 {
            table.insert(tag(key), key);
        }
        assert_eq!((table.slots.len(), table.old.len()), (16, 0));
        // The ninth entry outgrows 16 slots: 32 new ones, the 16 old kept beside them.
        table.insert(tag(8), 8);
        assert_eq!((table.slots.len(), table.old.len()), (32, 16));
        for key in 0..9 {
            assert_eq!(table.find(tag(key), |value| value == key), Some(key));
        }
        assert_eq!(table.remove(tag(3), |value| value == 3), Some(3));
        assert_eq!(table.find(tag(3), |value| value == 3), None);
        // Each insert moves eight old slots: two more end the move.
        table.insert(tag(9), 9);
        assert_eq!(table.old.len(), 16);
        table.insert(tag(10), 10);
        assert!(table.old.is_empty(), "the old table is dropped once empty");
        assert_eq!(table.len(), 10);
        for key in (0..11).filter(|&key| key != 3) {
            assert_eq!(table.find(tag(key), |value| value == key), Some(key));
        }
        assert_eq!(table.find(tag(3), |value| value == 3), None);
    }
}
