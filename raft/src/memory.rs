//! An in-memory disk for simulations: the Raft log and the snapshot of one node, with the
//! same durability contract as the RocksDB log store and the snapshot files.
//!
//! RocksDB writes to the real disk and cannot be told to lose data, so the turmoil
//! simulations (`holdfast-sim`) run nodes on a [`MemoryDisk`] instead. It keeps two
//! copies of everything:
//!
//! - **written**: what the process sees. It survives a process crash (the kernel still
//!   has the data), which is what a simulated crash and restart reopen.
//! - **durable**: what survives a power loss. A synced write makes everything written
//!   before it durable, in order, like RocksDB's write-ahead log; an unsynced write
//!   (the committed log id) becomes durable with the next synced one.
//!
//! [`MemoryDisk::power_loss`] throws away what is not durable. The contract mirrors
//! [`crate::log_store`]: the vote and appended entries are synced before `save_vote`
//! returns or the append callback fires, truncate and purge are synced, the committed id
//! is not; a snapshot is replaced atomically and synced.
//!
//! [`MemoryDisk::set_skip_sync`] is a test-only fault: syncs do nothing, so an
//! acknowledged entry can be lost in a power loss. The simulation's checkers must catch it.

// openraft's trait methods return its own `StorageError`, which is large.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};

use crate::types::{LogEntry, LogId, SnapshotMeta, StorageError, TypeConfig, Vote};

/// One node's disk contents.
#[derive(Clone, Debug, Default)]
struct Contents {
    vote: Option<Vote>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
    entries: BTreeMap<u64, LogEntry>,
    /// The current snapshot: its metadata and the whole snapshot file.
    snapshot: Option<(SnapshotMeta, Arc<Vec<u8>>)>,
}

/// One write, as it reaches the disk.
#[derive(Clone, Debug)]
enum Write {
    Vote(Vote),
    Committed(Option<LogId>),
    Append(Vec<LogEntry>),
    /// Delete entries from this index on.
    Truncate(u64),
    /// Delete entries up to and including this id, and remember it.
    Purge(LogId),
    Snapshot(SnapshotMeta, Arc<Vec<u8>>),
}

impl Contents {
    fn apply(&mut self, write: &Write) {
        match write {
            Write::Vote(vote) => self.vote = Some(*vote),
            Write::Committed(committed) => self.committed = *committed,
            Write::Append(entries) => {
                for entry in entries {
                    self.entries.insert(entry.log_id.index, entry.clone());
                }
            }
            Write::Truncate(index) => {
                self.entries.split_off(index);
            }
            Write::Purge(log_id) => {
                self.last_purged = Some(*log_id);
                self.entries = self.entries.split_off(&(log_id.index + 1));
            }
            Write::Snapshot(meta, bytes) => self.snapshot = Some((meta.clone(), bytes.clone())),
        }
    }
}

#[derive(Debug, Default)]
struct Disk {
    written: Contents,
    durable: Contents,
    /// Written but not yet synced, oldest first.
    unsynced: Vec<Write>,
    skip_sync: bool,
    syncs: u64,
}

impl Disk {
    fn write(&mut self, write: Write, sync: bool) {
        self.written.apply(&write);
        self.unsynced.push(write);
        if sync && !self.skip_sync {
            self.syncs += 1;
            for write in self.unsynced.drain(..) {
                self.durable.apply(&write);
            }
        }
    }
}

/// A node's in-memory disk. Clones share it; keep one per simulated host, outside the
/// host, so that it outlives crashes.
#[derive(Clone, Debug, Default)]
pub struct MemoryDisk {
    disk: Arc<Mutex<Disk>>,
}

impl MemoryDisk {
    /// An empty disk: no log, no vote, no snapshot.
    pub fn new() -> MemoryDisk {
        MemoryDisk::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Disk> {
        self.disk.lock().expect("memory disk lock poisoned")
    }

    /// A power loss: everything written since the last sync is gone.
    pub fn power_loss(&self) {
        let mut disk = self.lock();
        disk.written = disk.durable.clone();
        disk.unsynced.clear();
    }

    /// Test-only fault: when set, syncs do nothing.
    pub fn set_skip_sync(&self, skip: bool) {
        self.lock().skip_sync = skip;
    }

    /// Number of syncs so far.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// Writes that a power loss now would lose.
    pub fn unsynced_writes(&self) -> usize {
        self.lock().unsynced.len()
    }

    /// The current snapshot file, if any.
    pub(crate) fn snapshot(&self) -> Option<(SnapshotMeta, Arc<Vec<u8>>)> {
        self.lock().written.snapshot.clone()
    }

    /// Replaces the snapshot atomically and syncs it (write, fsync, rename, fsync dir).
    pub(crate) fn put_snapshot(&self, meta: SnapshotMeta, bytes: Vec<u8>) {
        self.lock()
            .write(Write::Snapshot(meta, Arc::new(bytes)), true);
    }

    /// The Raft log store on this disk.
    pub fn log_store(&self) -> MemoryLogStore {
        MemoryLogStore { disk: self.clone() }
    }
}

/// [`RaftLogStorage`] on a [`MemoryDisk`]. Every operation completes at once, so the
/// simulation stays on its own thread and deterministic.
#[derive(Clone, Debug)]
pub struct MemoryLogStore {
    disk: MemoryDisk,
}

impl RaftLogReader<TypeConfig> for MemoryLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<LogEntry>, StorageError> {
        let disk = self.disk.lock();
        Ok(disk
            .written
            .entries
            .range(range)
            .map(|(_, entry)| entry.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for MemoryLogStore {
    type LogReader = MemoryLogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let disk = self.disk.lock();
        let last_purged_log_id = disk.written.last_purged;
        let last_log_id = disk
            .written
            .entries
            .last_key_value()
            .map(|(_, entry)| entry.log_id)
            .or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.disk.lock().write(Write::Vote(*vote), true);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.disk.lock().written.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not synced, as in the RocksDB store: a hint for replay.
        self.disk.lock().write(Write::Committed(committed), false);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.disk.lock().written.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = LogEntry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<LogEntry> = entries.into_iter().collect();
        self.disk.lock().write(Write::Append(entries), true);
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.disk.lock().write(Write::Truncate(log_id.index), true);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.disk.lock().write(Write::Purge(log_id), true);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64) -> LogEntry {
        LogEntry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
            payload: openraft::EntryPayload::Blank,
        }
    }

    #[test]
    fn a_power_loss_keeps_synced_writes_and_the_unsynced_ones_before_them() {
        let disk = MemoryDisk::new();
        let mut inner = disk.lock();
        inner.write(Write::Append(vec![entry(1)]), true);
        inner.write(Write::Committed(Some(entry(1).log_id)), false);
        inner.write(Write::Append(vec![entry(2)]), true);
        inner.write(Write::Committed(Some(entry(2).log_id)), false);
        drop(inner);
        disk.power_loss();
        let inner = disk.lock();
        assert_eq!(inner.written.entries.len(), 2);
        assert_eq!(inner.written.committed, Some(entry(1).log_id));
    }

    #[test]
    fn skipping_syncs_loses_appended_entries_in_a_power_loss() {
        let disk = MemoryDisk::new();
        disk.set_skip_sync(true);
        disk.lock().write(Write::Append(vec![entry(1)]), true);
        assert_eq!(disk.unsynced_writes(), 1);
        disk.power_loss();
        assert!(disk.lock().written.entries.is_empty());
    }

    #[test]
    fn purge_and_truncate_keep_one_contiguous_range() {
        let disk = MemoryDisk::new();
        let mut inner = disk.lock();
        inner.write(Write::Append((1..=10).map(entry).collect()), true);
        inner.write(Write::Purge(entry(3).log_id), true);
        inner.write(Write::Truncate(8), true);
        let indexes: Vec<u64> = inner.written.entries.keys().copied().collect();
        assert_eq!(indexes, vec![4, 5, 6, 7]);
        assert_eq!(inner.durable.entries.len(), 4);
    }
}
