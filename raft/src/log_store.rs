//! The Raft log in RocksDB: vote, log entries, committed log id and last purged log id.
//!
//! Layout: column family `logs` maps the big-endian entry index to
//! `[LOG_ENTRY_FORMAT_VERSION] ++ bincode(entry)`; column family `meta` holds `vote`,
//! `committed` and `last_purged`, each `[LOG_ENTRY_FORMAT_VERSION] ++ json(value)`.
//!
//! **Invariant:** the vote and appended entries are fsynced (`WriteOptions::set_sync`)
//! before `save_vote` returns or the append callback fires, so nothing is acknowledged to
//! a peer or a client before it is durable.
//!
//! Why there is no store-level group commit: openraft 0.9's core waits for each append's
//! flush callback before its next command, and meanwhile gathers the client writes that
//! queued up into its next append, so appends already grow with load. A flusher thread
//! (unsynced write, then one shared `flush_wal(true)` per group of callbacks) was tried and
//! measured five to ten times slower in `holdfast-raft-bench` than one synced write per
//! append, so it was removed. Further grouping belongs in the node, which packs many client
//! commands into one [`crate::Batch`] entry.
//! **Invariant:** the stored entries are one contiguous range `(last_purged, last]`:
//! truncate deletes a suffix and purge deletes a prefix (recording `last_purged` in the
//! same atomic, synced write batch), so neither leaves a hole.
//! **Invariant:** all writes go through one mutex, in the order openraft issued them.

// openraft's trait methods return its own `StorageError`, which is large; the helpers here
// return the same type so errors pass through unchanged.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, StorageIOError};
use rocksdb::{
    ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Error;
use crate::log_cache::{LogCache, LogCacheLimits};
use crate::types::{LogEntry, LogId, NodeId, StorageError, TypeConfig, Vote};

/// Version of the encoding of every stored log entry and log metadata value. Version 2
/// added each member's incarnation to membership entries; version 1 values are still read
/// (the metadata values did not change; see `legacy.rs` for the entries).
pub const LOG_ENTRY_FORMAT_VERSION: u8 = 2;
const LOG_ENTRY_FORMAT_VERSION_V1: u8 = 1;

const LOGS: &str = "logs";
const META: &str = "meta";
const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";
const KEY_INCARNATION: &[u8] = b"incarnation";
/// RocksDB flushes the files it writes in the background (memtable flushes, compactions)
/// to the disk this many bytes at a time, instead of syncing each whole file at its end.
/// Synced only at the end, a flush leaves tens of megabytes dirty in the page cache, and
/// the log's next fsync (on ext4 a journal commit, which in its default `data=ordered`
/// mode writes such data first) can wait for all of them, as it did for the snapshot file
/// before that was written the same way (`state_store.rs`, `write_snapshot_file`). Via the
/// leader it measured 4 % more holds a second (BENCHMARKS.md).
const BYTES_PER_SYNC: u64 = 1024 * 1024;

/// The RocksDB log store. Cloning it gives another handle on the same database (openraft
/// uses clones as log readers).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
    /// The buffer to encode the next appended entry into: the last one's size and an
    /// eighth (entries of one workload are of similar sizes), at most
    /// [`ENTRY_BYTES_HINT_MAX`].
    entry_bytes_hint: usize,
}

/// The largest buffer an entry is encoded into up front (a larger entry grows it).
const ENTRY_BYTES_HINT_MAX: usize = 1 << 20;

struct Inner {
    db: DB,
    path: PathBuf,
    /// Serialises every write, so the order on disk is the order openraft asked for.
    write_lock: Mutex<()>,
    /// Tests only: while set, every write fails as a dying disk's would.
    refuse_writes: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// The newest entries, decoded (see `log_cache.rs`).
    cache: Mutex<LogCache>,
}

/// The error a write gets while [`LogStore::refusing_writes_when`]'s switch is on.
#[derive(Debug, thiserror::Error)]
#[error("the disk refused the write (test fault)")]
struct RefusedWrite;

impl LogStore {
    /// Opens (or creates) the log database at `path`.
    pub fn open(path: &Path) -> Result<LogStore, Error> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_bytes_per_sync(BYTES_PER_SYNC);
        let families = [LOGS, META]
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&options, path, families)
            .map_err(|error| Error::storage(path, error))?;
        let store = LogStore {
            inner: Arc::new(Inner {
                db,
                path: path.to_owned(),
                write_lock: Mutex::new(()),
                refuse_writes: None,
                cache: Mutex::new(LogCache::new(LogCacheLimits::default())),
            }),
            entry_bytes_hint: 0,
        };
        // Decode what is there now, so a directory written by another format fails at
        // start with a clear message rather than later inside Raft.
        store.check_format()?;
        Ok(store)
    }

    /// The data directory incarnation this log was written under, if it records one (a
    /// log written before incarnations, or a new one, does not). See
    /// `DataDir::confirm_incarnation`.
    pub fn incarnation(&self) -> Result<Option<u64>, Error> {
        self.read_meta::<u64>(KEY_INCARNATION)
            .map_err(|error| self.corrupt(error))
    }

    /// Records the directory's incarnation in the log, durably.
    pub fn record_incarnation(&self, incarnation: u64) -> Result<(), Error> {
        let _guard = self
            .inner
            .write_lock
            .lock()
            .expect("log write lock poisoned");
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.inner
            .db
            .put_cf_opt(
                self.meta(),
                KEY_INCARNATION,
                encode_meta(&incarnation),
                &options,
            )
            .map_err(|error| Error::storage(&self.inner.path, error))
    }

    /// Whether the log holds nothing at all: no vote, no entry, nothing purged.
    pub fn is_empty(&self) -> Result<bool, Error> {
        let corrupt = |error| self.corrupt(error);
        Ok(self.read_meta::<Vote>(KEY_VOTE).map_err(corrupt)?.is_none()
            && self
                .read_meta::<LogId>(KEY_LAST_PURGED)
                .map_err(corrupt)?
                .is_none()
            && self.last_entry_log_id().map_err(corrupt)?.is_none())
    }

    /// A value of this log that does not read, as the error of the log as a whole.
    fn corrupt(&self, error: StorageError) -> Error {
        Error::Corrupt {
            what: format!("raft log at {}", self.inner.path.display()),
            message: error.to_string(),
        }
    }

    fn check_format(&self) -> Result<(), Error> {
        let corrupt = |error| self.corrupt(error);
        self.read_meta::<Vote>(KEY_VOTE).map_err(corrupt)?;
        self.read_meta::<LogId>(KEY_LAST_PURGED).map_err(corrupt)?;
        self.last_entry_log_id().map_err(corrupt)?;
        Ok(())
    }

    fn logs(&self) -> &rocksdb::ColumnFamily {
        self.inner
            .db
            .cf_handle(LOGS)
            .expect("column family `logs` exists")
    }

    fn meta(&self) -> &rocksdb::ColumnFamily {
        self.inner
            .db
            .cf_handle(META)
            .expect("column family `meta` exists")
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        let bytes = self
            .inner
            .db
            .get_cf(self.meta(), key)
            .map_err(|error| read_error(ErrorSubject::Store, &error))?;
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let (_, body) =
            check_version(&bytes).map_err(|error| read_error(ErrorSubject::Store, &error))?;
        let value = serde_json::from_slice(body)
            .map_err(|error| read_error(ErrorSubject::Store, &error))?;
        Ok(Some(value))
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>, StorageError> {
        let mut iterator = self.inner.db.iterator_cf(self.logs(), IteratorMode::End);
        match iterator.next() {
            None => Ok(None),
            Some(item) => {
                let (_, value) = item.map_err(|error| read_error(ErrorSubject::Logs, &error))?;
                Ok(Some(decode_entry(&value)?.log_id))
            }
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, LogCache> {
        self.inner.cache.lock().expect("log cache lock poisoned")
    }

    /// Runs `write` on a blocking thread under the write lock.
    /// Tests only: every write fails while `switch` is on (a dying disk), so that the
    /// node's handling of storage failures can be tested with real processes.
    pub fn refusing_writes_when(mut self, switch: Arc<std::sync::atomic::AtomicBool>) -> LogStore {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.refuse_writes = Some(switch);
        }
        self
    }

    async fn write<F>(&self, write: F) -> Result<(), StorageError>
    where
        F: FnOnce(&Inner, &WriteOptions) -> Result<(), StorageError> + Send + 'static,
    {
        if self
            .inner
            .refuse_writes
            .as_ref()
            .is_some_and(|switch| switch.load(std::sync::atomic::Ordering::Relaxed))
        {
            return Err(write_error(ErrorSubject::Logs, &RefusedWrite));
        }
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let asked = std::time::Instant::now();
            let _guard = inner.write_lock.lock().expect("log write lock poisoned");
            let started = std::time::Instant::now();
            let mut options = WriteOptions::default();
            options.set_sync(true);
            let written = write(&inner, &options);
            // As etcd's "slow fdatasync": a synced write this slow stalls every election
            // and commit of this node, and is the disk's doing (or the machine's).
            let took = started.elapsed();
            if took >= SLOW_WRITE {
                tracing::warn!(
                    took_ms = took.as_millis() as u64,
                    waited_ms = (started - asked).as_millis() as u64,
                    "slow synced write to the Raft log"
                );
            }
            written
        })
        .await
        .map_err(|error| write_error(ErrorSubject::Logs, &error))?
    }
}

/// A synced log write slower than this is logged as a warning.
const SLOW_WRITE: std::time::Duration = std::time::Duration::from_millis(100);

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn encode_versioned(body: Vec<u8>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(body.len() + 1);
    bytes.push(LOG_ENTRY_FORMAT_VERSION);
    bytes.extend_from_slice(&body);
    bytes
}

fn encode_meta<T: Serialize>(value: &T) -> Vec<u8> {
    encode_versioned(serde_json::to_vec(value).expect("log metadata serialises"))
}

fn encode_entry(entry: &LogEntry, capacity: usize) -> Result<Vec<u8>, StorageError> {
    encode_after(&[LOG_ENTRY_FORMAT_VERSION], entry, capacity).map_err(|error| {
        StorageIOError::write_log_entry(entry.log_id, AnyError::new(&error)).into()
    })
}

/// `prefix`, then `value` in bincode's standard encoding, in one buffer of `capacity`
/// bytes (a guess, such as the size of the last such value) that grows only when the guess
/// was short.
pub(crate) fn encode_after<T: Serialize>(
    prefix: &[u8],
    value: &T,
    capacity: usize,
) -> Result<Vec<u8>, holdfast_statemachine::encode::EncodeError> {
    let mut bytes = Vec::with_capacity(capacity.max(prefix.len()));
    bytes.extend_from_slice(prefix);
    holdfast_statemachine::encode::append(value, &mut bytes)?;
    Ok(bytes)
}

#[derive(Debug, thiserror::Error)]
#[error(
    "stored value has format version {found}; this build reads version {LOG_ENTRY_FORMAT_VERSION}"
)]
struct UnknownVersion {
    found: u8,
}

/// The version and body of a stored value of a version this build reads.
fn check_version(bytes: &[u8]) -> Result<(u8, &[u8]), UnknownVersion> {
    match bytes.split_first() {
        Some((&version, body))
            if version == LOG_ENTRY_FORMAT_VERSION || version == LOG_ENTRY_FORMAT_VERSION_V1 =>
        {
            Ok((version, body))
        }
        Some((&found, _)) => Err(UnknownVersion { found }),
        None => Err(UnknownVersion { found: 0 }),
    }
}

fn decode_entry(bytes: &[u8]) -> Result<LogEntry, StorageError> {
    let (version, body) =
        check_version(bytes).map_err(|error| read_error(ErrorSubject::Logs, &error))?;
    let decoded = if version == LOG_ENTRY_FORMAT_VERSION_V1 {
        holdfast_statemachine::decode::from_slice(body)
            .map(|(entry, _)| crate::legacy::upgrade_entry(entry))
    } else {
        holdfast_statemachine::decode::from_slice(body).map(|(entry, _)| entry)
    };
    decoded.map_err(|error| read_error(ErrorSubject::Logs, &error))
}

fn read_error<E: std::error::Error + 'static>(
    subject: ErrorSubject<NodeId>,
    error: &E,
) -> StorageError {
    StorageIOError::new(subject, ErrorVerb::Read, AnyError::new(error)).into()
}

fn write_error<E: std::error::Error + 'static>(
    subject: ErrorSubject<NodeId>,
    error: &E,
) -> StorageError {
    StorageIOError::new(subject, ErrorVerb::Write, AnyError::new(error)).into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<LogEntry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(&index) => index,
            Bound::Excluded(&index) => index + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&index) => index.checked_add(1),
            Bound::Excluded(&index) => Some(index),
            Bound::Unbounded => None,
        };
        if let Some(entries) = end.and_then(|end| self.cache().get(start, end)) {
            return Ok(entries);
        }
        let mode = IteratorMode::From(&index_key(start), Direction::Forward);
        let mut entries = Vec::new();
        for item in self.inner.db.iterator_cf(self.logs(), mode) {
            let (key, value) = item.map_err(|error| read_error(ErrorSubject::Logs, &error))?;
            let index = u64::from_be_bytes(key.as_ref().try_into().expect("8-byte log key"));
            if !range.contains(&index) {
                break;
            }
            entries.push(decode_entry(&value)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id = self.read_meta::<LogId>(KEY_LAST_PURGED)?;
        let last_log_id = self.last_entry_log_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let bytes = encode_meta(vote);
        self.write(move |inner, options| {
            let meta = inner
                .db
                .cf_handle(META)
                .expect("column family `meta` exists");
            let mut batch = WriteBatch::default();
            batch.put_cf(meta, KEY_VOTE, bytes);
            inner
                .db
                .write_opt(batch, options)
                .map_err(|error| write_error(ErrorSubject::Vote, &error))
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.read_meta(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let bytes = encode_meta(&committed);
        // The committed id is a hint for replay at restart: losing the latest one only
        // means re-applying less on start, never applying something uncommitted. So it is
        // written without its own fsync; the next synced write makes it durable, because
        // RocksDB's write-ahead log is synced in order.
        let inner = Arc::clone(&self.inner);
        let _guard = inner.write_lock.lock().expect("log write lock poisoned");
        inner
            .db
            .put_cf(self.meta(), KEY_COMMITTED, bytes)
            .map_err(|error| write_error(ErrorSubject::Store, &error))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.read_meta::<Option<LogId>>(KEY_COMMITTED)?.flatten())
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
        let mut encoded = Vec::new();
        let mut written = Vec::new();
        for entry in entries {
            let bytes = encode_entry(&entry, self.entry_bytes_hint)?;
            let length = bytes.len();
            self.entry_bytes_hint = length.saturating_add(length / 8).min(ENTRY_BYTES_HINT_MAX);
            encoded.push((index_key(entry.log_id.index), bytes));
            written.push((entry, length));
        }
        let started = std::time::Instant::now();
        let result = self
            .write(move |inner, options| {
                let logs = inner
                    .db
                    .cf_handle(LOGS)
                    .expect("column family `logs` exists");
                let mut batch = WriteBatch::default();
                for (key, value) in &encoded {
                    batch.put_cf(logs, key, value);
                }
                inner
                    .db
                    .write_opt(batch, options)
                    .map_err(|error| write_error(ErrorSubject::Logs, &error))
            })
            .await;
        metrics::histogram!(crate::metrics::LOG_APPEND_SECONDS).record(started.elapsed());
        // The callback fires only now, after the synced write returned (and the entries
        // are in the cache, where openraft's next read of them looks first).
        if result.is_ok() {
            self.cache().appended(written);
        }
        match &result {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(error) => callback.log_io_completed(Err(std::io::Error::other(error.to_string()))),
        }
        result
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Deletes the suffix [log_id.index, end): what remains stays contiguous.
        self.cache().truncated(log_id.index);
        self.write(move |inner, options| {
            let logs = inner
                .db
                .cf_handle(LOGS)
                .expect("column family `logs` exists");
            let mut batch = WriteBatch::default();
            batch.delete_range_cf(logs, index_key(log_id.index), index_key(u64::MAX));
            batch.delete_cf(logs, index_key(u64::MAX));
            inner
                .db
                .write_opt(batch, options)
                .map_err(|error| write_error(ErrorSubject::Logs, &error))
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Records the new last purged id and deletes the prefix [0, log_id.index] in one
        // atomic write: a crash leaves either both or neither.
        let bytes = encode_meta(&log_id);
        self.cache().purged(log_id.index);
        self.write(move |inner, options| {
            let logs = inner
                .db
                .cf_handle(LOGS)
                .expect("column family `logs` exists");
            let meta = inner
                .db
                .cf_handle(META)
                .expect("column family `meta` exists");
            let mut batch = WriteBatch::default();
            batch.put_cf(meta, KEY_LAST_PURGED, bytes);
            batch.delete_range_cf(
                logs,
                index_key(0),
                index_key(log_id.index.saturating_add(1)),
            );
            inner
                .db
                .write_opt(batch, options)
                .map_err(|error| write_error(ErrorSubject::Logs, &error))
        })
        .await
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_of_an_unknown_format_is_refused_at_open() {
        let directory = tempfile::tempdir().unwrap();
        {
            let store = LogStore::open(directory.path()).unwrap();
            let mut value = vec![9u8];
            value.extend_from_slice(b"from the future");
            store
                .inner
                .db
                .put_cf(store.logs(), index_key(1), value)
                .unwrap();
        }
        let error = LogStore::open(directory.path()).err().expect("refused");
        assert_eq!(error.code(), "CORRUPT_DATA");
        assert!(error.to_string().contains("format version 9"), "{error}");
    }

    #[test]
    fn every_stored_entry_starts_with_the_format_version() {
        let entry = LogEntry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), 7),
            payload: openraft::EntryPayload::Blank,
        };
        let bytes = encode_entry(&entry, 0).unwrap();
        assert_eq!(bytes[0], LOG_ENTRY_FORMAT_VERSION);
        assert_eq!(decode_entry(&bytes).unwrap(), entry);
    }

    #[test]
    fn a_membership_entry_keeps_its_incarnations_and_one_of_version_1_is_read() {
        use crate::legacy::{NodeInfoV1, TypeConfigV1};
        use crate::types::NodeInfo;
        use std::collections::{BTreeMap, BTreeSet};
        let log_id = LogId::new(openraft::CommittedLeaderId::new(2, 1), 9);
        let member = |incarnation| NodeInfo {
            raft_addr: "10.0.0.1:7101".into(),
            http_addr: "10.0.0.1:7001".into(),
            region: "eu".into(),
            incarnation,
        };
        let entry = LogEntry {
            log_id,
            payload: openraft::EntryPayload::Membership(openraft::Membership::new(
                vec![BTreeSet::from([1])],
                BTreeMap::from([(1, member(0xfeed))]),
            )),
        };
        assert_eq!(
            decode_entry(&encode_entry(&entry, 0).unwrap()).unwrap(),
            entry
        );

        // An entry as the previous build wrote it: version byte 1, members without one.
        let old = openraft::Entry::<TypeConfigV1> {
            log_id,
            payload: openraft::EntryPayload::Membership(openraft::Membership::new(
                vec![BTreeSet::from([1])],
                BTreeMap::from([(
                    1,
                    NodeInfoV1 {
                        raft_addr: "10.0.0.1:7101".into(),
                        http_addr: "10.0.0.1:7001".into(),
                        region: "eu".into(),
                    },
                )]),
            )),
        };
        let mut bytes = vec![LOG_ENTRY_FORMAT_VERSION_V1];
        bytes.extend(bincode::serde::encode_to_vec(&old, bincode::config::standard()).unwrap());
        let read = decode_entry(&bytes).unwrap();
        let openraft::EntryPayload::Membership(membership) = read.payload else {
            panic!("a membership entry: {read:?}");
        };
        assert_eq!(read.log_id, log_id);
        assert_eq!(membership.get_node(&1), Some(&member(0)));
        assert_eq!(membership.voter_ids().collect::<Vec<_>>(), vec![1]);
    }
}
