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

use std::hash::BuildHasher;

/// Fibonacci hashing's multiplier, 2^64 / φ: spreads a tag's bits over the home slot.
const SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;

/// Slots of the smallest table that holds anything.
const SLOTS_MIN: usize = 16;

/// The tag of `key` under `hasher`: 31 bits of its hash with the low bit set (never zero).
pub(crate) fn tag(hasher: &impl BuildHasher, key: &str) -> u32 {
    tag_of_hash(hasher.hash_one(key))
}

fn tag_of_hash(hash: u64) -> u32 {
    (hash >> 32) as u32 | 1
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Slot<V> {
    /// 0 when the slot is empty.
    tag: u32,
    value: V,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct ProbeTable<V> {
    /// A power of two of them, or none.
    slots: Box<[Slot<V>]>,
    len: usize,
}

impl<V: Copy + Default> ProbeTable<V> {
    pub fn len(&self) -> usize {
        self.len
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The slot where probing for `tag` starts. The table has slots.
    fn home(&self, tag: u32) -> usize {
        let bits = self.slots.len().trailing_zeros();
        (u64::from(tag).wrapping_mul(SPREAD) >> (64 - bits)) as usize
    }

    /// Asks the processor to fetch the line where a lookup of `tag` starts.
    pub fn prefetch(&self, tag: u32) {
        if !self.slots.is_empty() {
            crate::prefetch::prefetch(&self.slots[self.home(tag)]);
        }
    }

    /// The slot holding `tag`'s entry for which `is_it` holds.
    fn position(&self, tag: u32, mut is_it: impl FnMut(V) -> bool) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.mask();
        let mut at = self.home(tag);
        loop {
            let slot = self.slots[at];
            if slot.tag == 0 {
                return None;
            }
            if slot.tag == tag && is_it(slot.value) {
                return Some(at);
            }
            at = (at + 1) & mask;
        }
    }

    /// The value stored under `tag` for which `is_it` holds.
    pub fn find(&self, tag: u32, is_it: impl FnMut(V) -> bool) -> Option<V> {
        self.position(tag, is_it).map(|at| self.slots[at].value)
    }

    /// Stores `value` under `tag`. The caller knows it is not stored yet.
    pub fn insert(&mut self, tag: u32, value: V) {
        debug_assert_ne!(tag, 0);
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow(self.len + 1);
        }
        self.place(Slot { tag, value });
        self.len += 1;
    }

    /// Puts `slot` in the first free slot from its home on. There is one.
    fn place(&mut self, slot: Slot<V>) {
        let mask = self.mask();
        let mut at = self.home(slot.tag);
        while self.slots[at].tag != 0 {
            at = (at + 1) & mask;
        }
        self.slots[at] = slot;
    }

    /// Makes room for `entries` without growing again.
    pub fn reserve(&mut self, entries: usize) {
        if entries * 2 > self.slots.len() {
            self.grow(entries);
        }
    }

    /// Moves every entry into a table of at least twice `entries` slots.
    fn grow(&mut self, entries: usize) {
        let slots = (entries * 2).next_power_of_two().max(SLOTS_MIN);
        let old = std::mem::replace(&mut self.slots, vec![Slot::default(); slots].into());
        for slot in old.iter().filter(|slot| slot.tag != 0) {
            self.place(*slot);
        }
    }

    /// Removes the value stored under `tag` for which `is_it` holds, and returns it.
    pub fn remove(&mut self, tag: u32, is_it: impl FnMut(V) -> bool) -> Option<V> {
        let mut hole = self.position(tag, is_it)?;
        let removed = self.slots[hole].value;
        self.len -= 1;
        // Backward-shift deletion: pull each later entry of the run back into the hole
        // when the hole lies between its home and where it sits, so every entry stays
        // reachable from its home without crossing an empty slot.
        let mask = self.mask();
        let mut at = hole;
        loop {
            at = (at + 1) & mask;
            let slot = self.slots[at];
            if slot.tag == 0 {
                break;
            }
            let home = self.home(slot.tag);
            // Distance from home to where it sits, and from home to the hole, along the
            // probe direction.
            if (hole.wrapping_sub(home) & mask) < (at.wrapping_sub(home) & mask) {
                self.slots[hole] = slot;
                hole = at;
            }
        }
        self.slots[hole] = Slot::default();
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
            let mut table = ProbeTable::<u32>::default();
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
            }
            for key in 0..400u64 {
                let found = table.find(tag_of_hash(hash_of(key)), |value| value == key as u32);
                prop_assert_eq!(found.is_some(), model.contains_key(&key));
            }
        }
    }

    #[test]
    fn a_removal_keeps_a_run_that_wraps_around_the_end_reachable() {
        let mut table = ProbeTable::<u32>::default();
        table.reserve(8);
        let slots = table.slots.len();
        // Tags whose home is the last slot: their run wraps to the start.
        let last: Vec<u32> = (1..u32::MAX)
            .step_by(2)
            .filter(|&tag| table.home(tag) == slots - 1)
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
}
