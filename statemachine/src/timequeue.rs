//! [`TimeQueue`]: holds ordered by a time, earliest first — active holds by when they
//! expire, ended holds by when they ended.
//!
//! Nearly every insert is the newest key: a new hold expires after the holds before it with
//! the same TTL, and its id is the highest yet. `std`'s B-tree searches each node linearly
//! from its smallest key, so a plain `BTreeSet<(u64, u64)>` compares a new key against every
//! key on its way down the right edge (about 700 instructions a hold at half a million
//! holds). Stored in descending order, the newest key is the smallest: the search stops at
//! the first key of every node, and an insert costs the tree's depth. The earliest entry is
//! then the last one, which a B-tree reaches as cheaply as the first.

use std::cmp::Reverse;
use std::collections::BTreeSet;

/// `(time_ms, hold)` pairs, iterated earliest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TimeQueue {
    /// `(time_ms, hold)` packed into one `u128` (time in the high half), descending.
    entries: BTreeSet<Reverse<u128>>,
}

fn pack(time_ms: u64, hold: u64) -> Reverse<u128> {
    Reverse((u128::from(time_ms) << 64) | u128::from(hold))
}

fn unpack(Reverse(key): &Reverse<u128>) -> (u64, u64) {
    ((key >> 64) as u64, *key as u64)
}

impl TimeQueue {
    pub fn insert(&mut self, time_ms: u64, hold: u64) -> bool {
        self.entries.insert(pack(time_ms, hold))
    }

    pub fn remove(&mut self, time_ms: u64, hold: u64) -> bool {
        self.entries.remove(&pack(time_ms, hold))
    }

    pub fn contains(&self, time_ms: u64, hold: u64) -> bool {
        self.entries.contains(&pack(time_ms, hold))
    }

    /// The earliest entry.
    pub fn first(&self) -> Option<(u64, u64)> {
        self.entries.last().map(unpack)
    }

    pub fn pop_first(&mut self) -> Option<(u64, u64)> {
        self.entries.pop_last().as_ref().map(unpack)
    }

    /// Entries earliest first.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.entries.iter().rev().map(unpack)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_out_earliest_first_by_time_then_hold() {
        let mut queue = TimeQueue::default();
        for (time, hold) in [
            (5, 2),
            (3, 9),
            (5, 1),
            (u64::MAX, 0),
            (3, 10),
            (0, u64::MAX),
        ] {
            assert!(queue.insert(time, hold));
        }
        assert!(!queue.insert(5, 1), "an entry is stored once");
        let order: Vec<_> = queue.iter().collect();
        assert_eq!(
            order,
            [
                (0, u64::MAX),
                (3, 9),
                (3, 10),
                (5, 1),
                (5, 2),
                (u64::MAX, 0)
            ]
        );
        assert_eq!(queue.first(), Some((0, u64::MAX)));
        assert!(queue.remove(3, 9) && !queue.remove(3, 9));
        assert!(queue.contains(3, 10) && !queue.contains(3, 9));
        assert_eq!(queue.pop_first(), Some((0, u64::MAX)));
        assert_eq!(queue.pop_first(), Some((3, 10)));
        assert_eq!(queue.len(), 3);
    }
}
