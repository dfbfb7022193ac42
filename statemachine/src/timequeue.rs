//! [`TimeQueue`]: holds ordered by a time, earliest first — active holds by when they
//! expire, ended holds by when they ended.
//!
//! Nearly every insert is the newest key: a new hold expires after the holds before it with
//! the same TTL, and its id is the highest yet. Those keys are appended to a sorted queue
//! (`run`, in chunks: see `chunkdeque.rs`) in constant time; a B-tree would search its whole right edge for each of them. A
//! key that is not above every key in the run (a shorter TTL than the holds before it, an
//! extension) goes into a B-tree beside it (`others`). Removing a key from the run marks it
//! dead in place (found by binary search), so a removal moves nothing; dead keys are dropped
//! when they reach the front, which they do within the longest life of a hold, so they cost
//! at most 16 bytes per hold the state keeps anyway. Every query merges the two in order.

use std::collections::BTreeSet;

use crate::chunkdeque::ChunkDeque;

/// Marks a dead key in the run. Hold ids are sequence numbers far below 2^63.
const DEAD: u64 = 1 << 63;

/// `(time_ms, hold)` pairs, iterated earliest first.
#[derive(Clone, Debug, Default)]
pub(crate) struct TimeQueue {
    /// Keys in ascending order, some marked [`DEAD`]; the front one is alive.
    run: ChunkDeque<(u64, u64)>,
    /// Dead keys in `run`.
    dead: usize,
    /// Keys that arrived below the end of `run`.
    others: BTreeSet<(u64, u64)>,
}

impl PartialEq for TimeQueue {
    fn eq(&self, other: &TimeQueue) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for TimeQueue {}

impl TimeQueue {
    /// Adds `(time_ms, hold)`; false if it was there.
    pub fn insert(&mut self, time_ms: u64, hold: u64) -> bool {
        debug_assert!(hold < DEAD);
        let key = (time_ms, hold);
        let above_run = self
            .run
            .back()
            .is_none_or(|&(time, last)| key > (time, last & !DEAD));
        // `others` is nearly always empty or below the run, so this costs nothing.
        if above_run && self.others.last().is_none_or(|&last| last < key) {
            self.run.push_back(key);
            return true;
        }
        if self.find_in_run(key).is_some() {
            return false;
        }
        self.others.insert(key)
    }

    /// The index of the live `key` in the run.
    fn find_in_run(&self, key: (u64, u64)) -> Option<usize> {
        let index = self
            .run
            .partition_point(|&(time, hold)| (time, hold & !DEAD) < key);
        let &(time, hold) = self.run.get(index)?;
        (time == key.0 && hold == key.1).then_some(index)
    }

    /// Removes `(time_ms, hold)`; false if it was not there.
    pub fn remove(&mut self, time_ms: u64, hold: u64) -> bool {
        let key = (time_ms, hold);
        // The earliest key (an expiry, the oldest ended hold) without a search.
        if self.run.front() == Some(&key) {
            self.run.pop_front();
            self.drop_dead_front();
            return true;
        }
        let Some(index) = self.find_in_run(key) else {
            return self.others.remove(&key);
        };
        self.run[index].1 |= DEAD;
        self.dead += 1;
        self.drop_dead_front();
        true
    }

    fn drop_dead_front(&mut self) {
        while self.run.front().is_some_and(|&(_, hold)| hold & DEAD != 0) {
            self.run.pop_front();
            self.dead -= 1;
        }
    }

    pub fn contains(&self, time_ms: u64, hold: u64) -> bool {
        let key = (time_ms, hold);
        self.find_in_run(key).is_some() || self.others.contains(&key)
    }

    /// The earliest entry.
    pub fn first(&self) -> Option<(u64, u64)> {
        match (self.run.front(), self.others.first()) {
            (Some(&run), Some(&other)) => Some(run.min(other)),
            (run, other) => run.or(other).copied(),
        }
    }

    pub fn pop_first(&mut self) -> Option<(u64, u64)> {
        let first = self.first()?;
        if self.run.front() == Some(&first) {
            self.run.pop_front();
            self.drop_dead_front();
        } else {
            self.others.pop_first();
        }
        Some(first)
    }

    /// Entries earliest first.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut run = self
            .run
            .iter()
            .copied()
            .filter(|&(_, hold)| hold & DEAD == 0)
            .peekable();
        let mut others = self.others.iter().copied().peekable();
        std::iter::from_fn(move || match (run.peek(), others.peek()) {
            (Some(a), Some(b)) if a < b => run.next(),
            (Some(_), Some(_)) | (None, _) => others.next(),
            (Some(_), None) => run.next(),
        })
    }

    pub fn len(&self) -> usize {
        self.run.len() - self.dead + self.others.len()
    }

    pub fn clear(&mut self) {
        self.run.clear();
        self.dead = 0;
        self.others.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn entries_come_out_earliest_first_by_time_then_hold() {
        let mut queue = TimeQueue::default();
        for (time, hold) in [
            (5, 2),
            (3, 9),
            (5, 1),
            (u64::MAX, 0),
            (3, 10),
            (0, DEAD - 1),
        ] {
            assert!(queue.insert(time, hold));
        }
        assert!(!queue.insert(5, 1), "an entry is stored once");
        assert!(!queue.insert(u64::MAX, 0), "an entry is stored once");
        let order: Vec<_> = queue.iter().collect();
        assert_eq!(
            order,
            [
                (0, DEAD - 1),
                (3, 9),
                (3, 10),
                (5, 1),
                (5, 2),
                (u64::MAX, 0)
            ]
        );
        assert_eq!(queue.first(), Some((0, DEAD - 1)));
        assert!(queue.remove(3, 9) && !queue.remove(3, 9));
        assert!(queue.contains(3, 10) && !queue.contains(3, 9));
        assert_eq!(queue.pop_first(), Some((0, DEAD - 1)));
        assert_eq!(queue.pop_first(), Some((3, 10)));
        assert_eq!(queue.len(), 3);
    }

    /// A run many chunks long (`chunkdeque.rs`, 4,096 keys a chunk): removals in the middle
    /// and at the front, searches and order across chunk boundaries, against a `BTreeSet`.
    #[test]
    fn a_long_run_across_chunks_matches_a_btreeset() {
        let mut queue = TimeQueue::default();
        let mut model = std::collections::BTreeSet::new();
        for hold in 0..20_000u64 {
            // Mostly in order (the run), every 97th key out of order (beside it).
            let time = if hold % 97 == 0 {
                hold / 2
            } else {
                1_000_000 + hold
            };
            assert_eq!(queue.insert(time, hold), model.insert((time, hold)));
        }
        for hold in (0..20_000u64).filter(|hold| hold % 3 == 0 || (4_000..8_300).contains(hold)) {
            let time = if hold % 97 == 0 {
                hold / 2
            } else {
                1_000_000 + hold
            };
            assert_eq!(queue.remove(time, hold), model.remove(&(time, hold)));
        }
        for _ in 0..5_000 {
            assert_eq!(queue.pop_first(), model.pop_first());
        }
        assert_eq!(queue.len(), model.len());
        assert!(queue.iter().eq(model.iter().copied()));
        for hold in (0..20_000u64).step_by(7) {
            let time = if hold % 97 == 0 {
                hold / 2
            } else {
                1_000_000 + hold
            };
            assert_eq!(queue.contains(time, hold), model.contains(&(time, hold)));
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u64, u64),
        Remove(u64, u64),
        PopFirst,
    }

    fn op() -> impl Strategy<Value = Op> {
        // Small ranges, so that keys repeat, collide and arrive both in and out of order.
        prop_oneof![
            4 => (0..40u64, 0..8u64).prop_map(|(time, hold)| Op::Insert(time, hold)),
            2 => (0..40u64, 0..8u64).prop_map(|(time, hold)| Op::Remove(time, hold)),
            1 => Just(Op::PopFirst),
        ]
    }

    proptest! {
        /// The queue behaves exactly as a `BTreeSet` of the same pairs.
        #[test]
        fn matches_a_btreeset(ops in proptest::collection::vec(op(), 1..200)) {
            let mut queue = TimeQueue::default();
            let mut model = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Insert(time, hold) => {
                        prop_assert_eq!(queue.insert(time, hold), model.insert((time, hold)));
                    }
                    Op::Remove(time, hold) => {
                        prop_assert_eq!(queue.remove(time, hold), model.remove(&(time, hold)));
                    }
                    Op::PopFirst => prop_assert_eq!(queue.pop_first(), model.pop_first()),
                }
                prop_assert_eq!(queue.len(), model.len());
                prop_assert_eq!(queue.first(), model.first().copied());
                prop_assert!(queue.iter().eq(model.iter().copied()));
                for &(time, hold) in &model {
                    prop_assert!(queue.contains(time, hold));
                }
            }
        }
    }
}
