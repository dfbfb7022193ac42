//! The newest log entries, kept decoded beside the RocksDB log.
//!
//! openraft reads every entry back from the log store twice or more after appending it:
//! the leader's replication stream to each follower reads what it sends, and every node's
//! state machine worker reads what it applies. Decoding a [`crate::Batch`] of a thousand
//! holds from its bytes again each time was 7 % of a leader's CPU under the SDK's batches.
//! An entry's payload is shared ([`crate::Batch`] holds an `Arc`), so handing out a cached
//! entry is a reference count, not a copy.
//!
//! **Invariant:** the cache holds a contiguous run of entries exactly as the log holds
//! them (written, synced, not truncated or purged since). Anything else is a miss and is
//! read from RocksDB, so the cache can only be smaller than the truth, never different:
//! entries enter after their synced write returned, and leave before a truncate or purge
//! is written.

use std::collections::VecDeque;

use crate::types::LogEntry;

/// Bounds of the cache: most entries, and most encoded bytes (an entry's size in the log).
#[derive(Clone, Copy, Debug)]
pub struct LogCacheLimits {
    /// Most entries kept (default 64).
    pub entries: usize,
    /// Most encoded bytes kept, summed over the entries' sizes in the log (default 8 MiB).
    pub bytes: usize,
}

impl Default for LogCacheLimits {
    fn default() -> Self {
        // What replication and apply read back is the last few entries (the node keeps two
        // in flight); a follower far behind reads from RocksDB. A decoded entry takes three
        // to four times its encoded bytes, so 8 MiB encoded is about 30 MiB of memory.
        LogCacheLimits {
            entries: 64,
            bytes: 8 * 1024 * 1024,
        }
    }
}

/// A contiguous run of the newest entries, each with its encoded size.
#[derive(Debug, Default)]
pub struct LogCache {
    entries: VecDeque<(LogEntry, usize)>,
    bytes: usize,
    limits: LogCacheLimits,
}

impl LogCache {
    /// An empty cache that keeps at most `limits`, dropping its oldest entries first.
    pub fn new(limits: LogCacheLimits) -> LogCache {
        LogCache {
            entries: VecDeque::new(),
            bytes: 0,
            limits,
        }
    }

    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|(entry, _)| entry.log_id.index)
    }

    fn next_index(&self) -> Option<u64> {
        self.entries.back().map(|(entry, _)| entry.log_id.index + 1)
    }

    /// Adds entries just written (in index order, each with its encoded size). Entries
    /// that do not follow the cached run replace it.
    pub fn appended(&mut self, written: impl IntoIterator<Item = (LogEntry, usize)>) {
        for (entry, bytes) in written {
            if self
                .next_index()
                .is_some_and(|next| next != entry.log_id.index)
            {
                self.clear();
            }
            self.bytes += bytes;
            self.entries.push_back((entry, bytes));
        }
        while self.entries.len() > self.limits.entries || self.bytes > self.limits.bytes {
            self.pop_front();
        }
    }

    /// Forgets the entries from `index` on (a truncate).
    pub fn truncated(&mut self, index: u64) {
        while self.next_index().is_some_and(|next| next > index) {
            self.pop_back();
        }
    }

    /// Forgets the entries up to and including `index` (a purge).
    pub fn purged(&mut self, index: u64) {
        while self.first_index().is_some_and(|first| first <= index) {
            self.pop_front();
        }
    }

    /// Forgets everything (a write whose outcome is not known).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    fn pop_front(&mut self) {
        if let Some((_, bytes)) = self.entries.pop_front() {
            self.bytes -= bytes;
        }
    }

    fn pop_back(&mut self) {
        if let Some((_, bytes)) = self.entries.pop_back() {
            self.bytes -= bytes;
        }
    }

    /// The entries `[start, end)`, if the cache holds every one of them.
    pub fn get(&self, start: u64, end: u64) -> Option<Vec<LogEntry>> {
        let (first, next) = (self.first_index()?, self.next_index()?);
        if start < first || end > next || start >= end {
            return None;
        }
        let from = (start - first) as usize;
        let to = (end - first) as usize;
        Some(
            self.entries
                .range(from..to)
                .map(|(entry, _)| entry.clone())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Batch, LogId};
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(term: u64, index: u64) -> LogEntry {
        LogEntry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(Batch::default()),
        }
    }

    fn indexes(entries: Option<Vec<LogEntry>>) -> Option<Vec<(u64, u64)>> {
        entries.map(|entries| {
            entries
                .iter()
                .map(|entry| (entry.log_id.leader_id.term, entry.log_id.index))
                .collect()
        })
    }

    #[test]
    fn serves_only_ranges_it_holds_whole() {
        let mut cache = LogCache::new(LogCacheLimits::default());
        assert_eq!(indexes(cache.get(1, 2)), None);
        cache.appended((5..10).map(|index| (entry(1, index), 10)));
        assert_eq!(indexes(cache.get(5, 7)), Some(vec![(1, 5), (1, 6)]));
        assert_eq!(indexes(cache.get(9, 10)), Some(vec![(1, 9)]));
        assert_eq!(indexes(cache.get(4, 7)), None, "starts before the cache");
        assert_eq!(indexes(cache.get(8, 11)), None, "ends after it");
        assert_eq!(indexes(cache.get(7, 7)), None, "empty");
    }

    #[test]
    fn a_truncate_and_a_new_term_replace_the_suffix() {
        let mut cache = LogCache::new(LogCacheLimits::default());
        cache.appended((1..6).map(|index| (entry(1, index), 10)));
        cache.truncated(4);
        assert_eq!(indexes(cache.get(4, 5)), None);
        cache.appended([(entry(2, 4), 10)]);
        assert_eq!(indexes(cache.get(3, 5)), Some(vec![(1, 3), (2, 4)]));
        assert_eq!(cache.bytes, 40);
    }

    #[test]
    fn a_gap_restarts_the_run_and_a_purge_drops_the_prefix() {
        let mut cache = LogCache::new(LogCacheLimits::default());
        cache.appended((1..4).map(|index| (entry(1, index), 10)));
        cache.appended([(entry(1, 7), 10)]);
        assert_eq!(indexes(cache.get(1, 2)), None);
        assert_eq!(indexes(cache.get(7, 8)), Some(vec![(1, 7)]));
        cache.appended((8..10).map(|index| (entry(1, index), 10)));
        cache.purged(8);
        assert_eq!(indexes(cache.get(8, 9)), None);
        assert_eq!(indexes(cache.get(9, 10)), Some(vec![(1, 9)]));
    }

    #[test]
    fn stays_within_its_entry_and_byte_bounds() {
        let mut cache = LogCache::new(LogCacheLimits {
            entries: 3,
            bytes: 100,
        });
        cache.appended((1..6).map(|index| (entry(1, index), 10)));
        assert_eq!(indexes(cache.get(2, 3)), None);
        assert_eq!(indexes(cache.get(3, 6)).map(|run| run.len()), Some(3));
        cache.appended([(entry(1, 6), 95)]);
        assert_eq!(indexes(cache.get(5, 7)), None);
        assert_eq!(indexes(cache.get(6, 7)), Some(vec![(1, 6)]));
    }
}
