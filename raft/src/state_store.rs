//! The state machine store: the in-memory [`StateMachine`] with the log id it has applied
//! up to and the membership it has seen, plus its snapshots on disk.
//!
//! Snapshot file (`snapshots/current.snapshot`):
//!
//! ```text
//! b"HFRSNAP\0" | format version u32 LE | meta length u32 LE | meta (JSON) | state machine snapshot
//! ```
//!
//! The state machine part is `StateMachine::write_snapshot`, which has its own magic and
//! version. The whole file is what a leader streams to a follower, so the follower gets
//! the metadata and checks the format before it installs anything.
//!
//! **How a snapshot avoids stopping apply and reads:** it encodes a *frozen* copy of the
//! state ([`holdfast_statemachine::FrozenState`]) taken under the state's read lock. The
//! state keeps its large parts (seats, rows, holds, bookings, refunds, idempotency records,
//! the outbox) in shared chunks, so the freeze clones a pointer per chunk — 0.7–0.9 ms for
//! the apply benchmark's 1,000,000-seat state with its holds, bookings, idempotency records
//! and outbox (a 118 MB snapshot) on an idle machine, 1.8–5.6 ms in a node under load, lock
//! wait included (the `freeze_us` of the `snapshot encoded` log line) — and apply goes on
//! at once, copying a chunk the first time it writes one the frozen copy still holds. The snapshot
//! then encodes the copy on a thread of its own while apply and reads go on against the
//! state. (Encoding the state itself under its lock stalled both for 0.2–0.7 s at that
//! size; the copy that replaced that, a second state applying every entry again, cost each
//! node a fifth of its processor time under load and twice the memory.)
//!
//! **Invariant:** the snapshot on disk is replaced atomically: written to a temporary file,
//! fsynced, renamed over `current.snapshot`, and the directory fsynced. A crash leaves the
//! old snapshot or the new one, never a torn one.
//! In a simulation the snapshot lives on a [`MemoryDisk`] instead of in files, with the
//! same contract (replaced atomically, synced) and no thread, so that a run replays the
//! same way every time.
//!
//! **Invariant:** the applied log id and membership live in the same struct as the state,
//! under the same lock, so they never disagree with it. At start the store restores the
//! last snapshot; openraft then re-applies the log from there up to the committed id.

use std::fs;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use holdfast_statemachine::{FrozenState, Outcome, StateMachine};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder,
    StorageIOError,
};
use tokio::io::AsyncSeekExt;

use crate::applied::AppliedWaiters;
use crate::data_dir::sync_parent_dir;
use crate::error::Error;
use crate::memory::MemoryDisk;
use crate::types::{
    LogEntry, LogId, SnapshotData, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

/// Version of the snapshot file layout (header and metadata around the state).
pub const SNAPSHOT_FILE_FORMAT_VERSION: u32 = 1;

const SNAPSHOT_FILE_MAGIC: [u8; 8] = *b"HFRSNAP\0";

const CURRENT_SNAPSHOT_FILE_NAME: &str = "current.snapshot";
/// Snapshot metadata is a log id and a membership: small. A larger length means a corrupt
/// or foreign file, refused before allocating.
const SNAPSHOT_META_BYTES_MAX: u32 = 16 * 1024 * 1024;
const SNAPSHOT_IO_BUFFER_BYTES: usize = 256 * 1024;
/// A snapshot file is flushed to the disk in chunks of this size (see
/// [`write_snapshot_file`]).
const SNAPSHOT_SYNC_BYTES: usize = 4 * 1024 * 1024;

/// The replicated state as of a log id.
#[derive(Clone, Debug)]
pub struct AppliedState {
    /// The booking state machine.
    pub machine: StateMachine,
    /// The last log entry applied to `machine`.
    pub last_applied: Option<LogId>,
    /// The last membership applied.
    pub last_membership: StoredMembership,
    /// When (by this process's monotonic clock) the last entry that carried state machine
    /// commands was applied here; `None` until one is. A new leader carries cluster time
    /// on from the applied time plus the time elapsed since (see `holdfast-node`'s
    /// `ClusterClock`), so that time does not fall back by the election gap.
    pub applied_at: Option<tokio::time::Instant>,
}

impl AppliedState {
    fn new(machine: StateMachine) -> AppliedState {
        AppliedState {
            machine,
            last_applied: None,
            last_membership: StoredMembership::default(),
            applied_at: None,
        }
    }

    /// The state a snapshot restores.
    fn restored(machine: StateMachine, meta: &SnapshotMeta) -> AppliedState {
        AppliedState {
            machine,
            last_applied: meta.last_log_id,
            last_membership: meta.last_membership.clone(),
            applied_at: None,
        }
    }

    /// Index of the last applied entry, 0 before any.
    pub fn applied_index(&self) -> u64 {
        self.last_applied.map_or(0, |log_id| log_id.index)
    }
}

/// Handle on the state machine store. Clones share the same state.
#[derive(Clone)]
pub struct StateMachineStore {
    shared: Arc<Shared>,
}

/// Where the snapshot is kept.
enum Place {
    /// `current.snapshot` in this directory.
    Files(PathBuf),
    /// A simulation's in-memory disk.
    Memory(MemoryDisk),
}

struct Shared {
    state: RwLock<AppliedState>,
    place: Place,
    /// Metadata of `current.snapshot`, if there is one.
    current_snapshot: Mutex<Option<SnapshotMeta>>,
    /// Serialises building and installing snapshot files.
    snapshot_files: tokio::sync::Mutex<()>,
    next_snapshot_sequence: AtomicU64,
    /// Size of the last snapshot built, to size the next one's buffer.
    last_snapshot_bytes: AtomicU64,
    /// Set while a command that may take long applies (see [`StateMachineStore::read`]).
    long_apply: AtomicBool,
    /// Who waits for which applied index ([`StateMachineStore::applied_waiter`]).
    applied_waiters: AppliedWaiters,
}

/// The nice value the snapshot thread runs at (0 is normal, 19 the lowest priority).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const SNAPSHOT_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority to [`SNAPSHOT_NICE`] (on Linux the
/// nice value is per thread). A thread that may not lower it runs at normal priority.
/// Elsewhere (where the call would renice the whole process) it does nothing.
///
/// (Linux's idle class, `SCHED_IDLE`, was tried instead: 3 % more holds a second, but the
/// snapshot took up to twice as long to encode and the requests' p99.9 grew by a quarter;
/// see BENCHMARKS.md.)
fn background_priority() {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::process::setpriority_process(None, SNAPSHOT_NICE) {
        tracing::debug!(%error, "the snapshot thread keeps its priority");
    }
}

/// Runs `blocking` so that the async worker it is called on, if any, hands its other
/// tasks to another thread meanwhile (`tokio::task::block_in_place`). On a
/// single-threaded runtime (a simulation's), where nothing else could run meanwhile
/// anyway, and off any runtime, it just runs it.
fn off_worker<T>(blocking: impl FnOnce() -> T) -> T {
    let multi_thread = tokio::runtime::Handle::try_current().is_ok_and(|runtime| {
        runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
    });
    if multi_thread {
        tokio::task::block_in_place(blocking)
    } else {
        blocking()
    }
}

/// Applies one log entry to `state`, handing each state machine outcome to `outcome`.
fn apply_entry(state: &mut AppliedState, entry: &LogEntry, mut outcome: impl FnMut(Outcome)) {
    state.last_applied = Some(entry.log_id);
    match &entry.payload {
        EntryPayload::Blank => {}
        EntryPayload::Normal(batch) => {
            state.applied_at = Some(tokio::time::Instant::now());
            // In one batch, so that each entry's memory is prefetched while the ones before
            // it apply.
            state.machine.apply_batch(&batch.entries, &mut outcome);
        }
        EntryPayload::Membership(membership) => {
            state.last_membership = StoredMembership::new(Some(entry.log_id), membership.clone());
        }
    }
}

impl StateMachineStore {
    /// Opens the store over `snapshot_dir`, restoring the last snapshot if there is one;
    /// `initial` is the state used when there is none.
    pub fn open(snapshot_dir: &Path, initial: StateMachine) -> Result<StateMachineStore, Error> {
        fs::create_dir_all(snapshot_dir).map_err(|error| Error::storage(snapshot_dir, error))?;
        remove_temporary_files(snapshot_dir)?;
        let current_path = snapshot_dir.join(CURRENT_SNAPSHOT_FILE_NAME);
        let (state, current_snapshot) = if current_path.exists() {
            let (meta, machine) = read_snapshot_file(&current_path)?;
            let state = AppliedState::restored(machine, &meta);
            (state, Some(meta))
        } else {
            (AppliedState::new(initial), None)
        };
        Ok(StateMachineStore::with(
            Place::Files(snapshot_dir.to_owned()),
            state,
            current_snapshot,
        ))
    }

    /// Opens the store over a simulation's in-memory disk, restoring its snapshot if there
    /// is one.
    pub fn open_in_memory(
        disk: &MemoryDisk,
        initial: StateMachine,
    ) -> Result<StateMachineStore, Error> {
        let (state, current_snapshot) = match disk.snapshot() {
            Some((_, bytes)) => {
                let (meta, machine) =
                    read_snapshot(bytes.as_slice(), bytes.len() as u64, "in-memory snapshot")?;
                let state = AppliedState::restored(machine, &meta);
                (state, Some(meta))
            }
            None => (AppliedState::new(initial), None),
        };
        Ok(StateMachineStore::with(
            Place::Memory(disk.clone()),
            state,
            current_snapshot,
        ))
    }

    fn with(
        place: Place,
        state: AppliedState,
        current_snapshot: Option<SnapshotMeta>,
    ) -> StateMachineStore {
        let shared = Arc::new(Shared {
            applied_waiters: AppliedWaiters::new(state.applied_index()),
            state: RwLock::new(state),
            place,
            current_snapshot: Mutex::new(current_snapshot),
            snapshot_files: tokio::sync::Mutex::new(()),
            next_snapshot_sequence: AtomicU64::new(1),
            last_snapshot_bytes: AtomicU64::new(0),
            long_apply: AtomicBool::new(false),
        });
        StateMachineStore { shared }
    }

    /// Runs `read` on the current state. Keep it short: apply waits meanwhile.
    ///
    /// While a long command applies ([`holdfast_statemachine::Command::may_take_long`], up
    /// to a second or so), the read waits for it off its async worker, whose other tasks go
    /// on (heartbeats, the peer server): a node whose workers all waited on the state's
    /// lock would hear nothing from its leader and stand for election once the apply ended.
    /// (A read that checked just before such an apply began waits on its worker, as every
    /// read does for the microseconds of an ordinary apply.)
    pub fn read<T>(&self, read: impl FnOnce(&AppliedState) -> T) -> T {
        let read_state = || {
            let state = self.shared.state.read().expect("state lock poisoned");
            read(&state)
        };
        if self.shared.long_apply.load(Ordering::Acquire) {
            return off_worker(read_state);
        }
        read_state()
    }

    /// The index of the last applied entry.
    pub fn applied_index(&self) -> u64 {
        self.read(AppliedState::applied_index)
    }

    /// `None` if the entry at `index` is applied already; else what completes once it is
    /// (each waiter is woken once, when its index is applied: see `applied.rs`).
    pub fn applied_waiter(&self, index: u64) -> Option<tokio::sync::oneshot::Receiver<()>> {
        self.shared.applied_waiters.wait(index)
    }

    /// The snapshot bytes of the state machine (not the file with its metadata): equal on
    /// every replica that applied the same log.
    pub fn state_snapshot_bytes(&self) -> Vec<u8> {
        self.read(|state| state.machine.snapshot_bytes())
    }

    /// A backup: the state machine's snapshot bytes as of every entry applied so far, with
    /// the index of the last of them. Encoded from a frozen copy, like a snapshot, so apply
    /// and reads go on meanwhile; blocking (run it off the async workers).
    pub fn backup_bytes(&self) -> (u64, Vec<u8>) {
        let (index, frozen) = self.read(|state| (state.applied_index(), state.machine.frozen()));
        let hint = self.shared.last_snapshot_bytes.load(Ordering::Relaxed);
        let mut bytes = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
        frozen
            .write_snapshot(&mut bytes)
            .expect("writing a snapshot into memory cannot fail");
        (index, bytes)
    }

    /// Opens the current snapshot for reading, as openraft streams it to a follower.
    async fn open_current(&self, meta: &SnapshotMeta) -> Result<SnapshotData, StorageError> {
        match &self.shared.place {
            Place::Files(snapshot_dir) => {
                let file = tokio::fs::File::open(snapshot_dir.join(CURRENT_SNAPSHOT_FILE_NAME))
                    .await
                    .map_err(|error| snapshot_error(Some(meta), ErrorVerb::Read, error))?;
                Ok(SnapshotData::File(file))
            }
            Place::Memory(disk) => {
                let (_, bytes) = disk.snapshot().ok_or_else(|| {
                    snapshot_error(Some(meta), ErrorVerb::Read, "the snapshot is gone")
                })?;
                Ok(SnapshotData::Memory(std::io::Cursor::new(bytes.to_vec())))
            }
        }
    }

    fn next_sequence(&self) -> u64 {
        self.shared
            .next_snapshot_sequence
            .fetch_add(1, Ordering::Relaxed)
    }
}

fn remove_temporary_files(snapshot_dir: &Path) -> Result<(), Error> {
    let entries =
        fs::read_dir(snapshot_dir).map_err(|error| Error::storage(snapshot_dir, error))?;
    for entry in entries {
        let path = entry
            .map_err(|error| Error::storage(snapshot_dir, error))?
            .path();
        if path.extension().is_some_and(|extension| extension == "tmp") {
            fs::remove_file(&path).map_err(|error| Error::storage(&path, error))?;
        }
    }
    Ok(())
}

fn snapshot_error(
    meta: Option<&SnapshotMeta>,
    verb: ErrorVerb,
    error: impl std::fmt::Display,
) -> StorageError {
    let subject = match meta {
        Some(meta) => ErrorSubject::Snapshot(Some(meta.signature())),
        None => ErrorSubject::Snapshot(None),
    };
    StorageIOError::new(subject, verb, AnyError::error(error.to_string())).into()
}

/// Writes the snapshot file layout (header, metadata, state machine) to `writer`.
fn encode_snapshot(
    writer: &mut impl Write,
    meta: &SnapshotMeta,
    machine: &FrozenState,
) -> std::io::Result<()> {
    let meta_bytes = serde_json::to_vec(meta).expect("snapshot metadata serialises");
    let meta_length = u32::try_from(meta_bytes.len()).expect("snapshot metadata below 4 GiB");
    writer.write_all(&SNAPSHOT_FILE_MAGIC)?;
    writer.write_all(&SNAPSHOT_FILE_FORMAT_VERSION.to_le_bytes())?;
    writer.write_all(&meta_length.to_le_bytes())?;
    writer.write_all(&meta_bytes)?;
    machine.write_snapshot(writer).map_err(|error| match error {
        holdfast_statemachine::SnapshotError::Io(error) => error,
        other => std::io::Error::other(other.to_string()),
    })
}

/// Writes an encoded snapshot file and makes it durable, flushed to the disk a
/// [`SNAPSHOT_SYNC_BYTES`] chunk at a time.
///
/// Written whole and synced once, the file's tens of megabytes sat dirty in the page cache
/// until the end, and the log's next fsync (on ext4 a journal commit, which in its default
/// `data=ordered` mode writes such data first) waited for all of them: every write in
/// flight stalled while a snapshot was written. Synced in chunks, a log fsync waits for one
/// chunk at most (RocksDB's `bytes_per_sync` does the same for its own files).
fn write_snapshot_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut file = fs::File::create(path).map_err(|error| Error::storage(path, error))?;
    for chunk in bytes.chunks(SNAPSHOT_SYNC_BYTES) {
        file.write_all(chunk)
            .and_then(|()| file.sync_data())
            .map_err(|error| Error::storage(path, error))?;
    }
    file.sync_all().map_err(|error| Error::storage(path, error))
}

/// The state frozen for a snapshot: its metadata, the copy, and how long the freeze took
/// (waiting for the read lock included).
struct Frozen {
    meta: SnapshotMeta,
    state: FrozenState,
    took: std::time::Duration,
}

/// The state as of every entry applied so far, frozen (see the module documentation), with
/// the metadata of a snapshot of it. The state's read lock is held only while freezing.
fn freeze(shared: &Shared, sequence: u64) -> Frozen {
    let started = std::time::Instant::now();
    let state = shared.state.read().expect("state lock poisoned");
    let snapshot_id = match state.last_applied {
        Some(log_id) => format!("{}-{}-{sequence}", log_id.leader_id.term, log_id.index),
        None => format!("0-0-{sequence}"),
    };
    let meta = SnapshotMeta {
        last_log_id: state.last_applied,
        last_membership: state.last_membership.clone(),
        snapshot_id,
    };
    let frozen = state.machine.frozen();
    drop(state);
    Frozen {
        meta,
        state: frozen,
        took: started.elapsed(),
    }
}

/// Encodes a frozen state as a snapshot file's bytes; apply and reads go on meanwhile (see
/// the module documentation).
///
/// The state is encoded rather than cloned: its bytes are written in one sequential pass
/// into a buffer sized by the last snapshot.
fn encode(shared: &Shared, frozen: Frozen) -> (SnapshotMeta, Vec<u8>) {
    let started = std::time::Instant::now();
    let hint = shared.last_snapshot_bytes.load(Ordering::Relaxed);
    let mut bytes = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    encode_snapshot(&mut bytes, &frozen.meta, &frozen.state)
        .expect("encoding into memory cannot fail");
    let encoding = started.elapsed();
    let encode_ms = encoding.as_millis() as u64;
    metrics::histogram!(crate::metrics::SNAPSHOT_ENCODE_SECONDS).record(encoding);
    metrics::histogram!(crate::metrics::SNAPSHOT_FREEZE_SECONDS).record(frozen.took);
    // What apply copied meanwhile is freed with the copy, here rather than on apply's path.
    let Frozen { meta, state, took } = frozen;
    drop(state);
    shared
        .last_snapshot_bytes
        .store(bytes.len() as u64, Ordering::Relaxed);
    tracing::info!(
        snapshot = %meta.snapshot_id,
        bytes = bytes.len(),
        freeze_us = took.as_micros() as u64,
        encode_ms,
        "snapshot encoded"
    );
    (meta, bytes)
}

/// Opens, reads and checks the snapshot file at `path`.
fn read_snapshot_file(path: &Path) -> Result<(SnapshotMeta, StateMachine), Error> {
    let file = fs::File::open(path).map_err(|error| Error::storage(path, error))?;
    let length = file
        .metadata()
        .map_err(|error| Error::storage(path, error))?
        .len();
    read_snapshot(file, length, &path.display().to_string())
}

/// Reads and checks a snapshot file's layout from `source`, which holds `length` bytes:
/// magic, format version, metadata, then the state machine's snapshot (its own magic and
/// version, decoded with a limit that follows `length`, and checked with
/// `check_invariants`). `what` names it in errors.
fn read_snapshot(
    source: impl Read,
    length: u64,
    what: &str,
) -> Result<(SnapshotMeta, StateMachine), Error> {
    let mut reader = BufReader::with_capacity(SNAPSHOT_IO_BUFFER_BYTES, source);
    let corrupt = |message: String| Error::Corrupt {
        what: format!("snapshot {what}"),
        message,
    };
    let mut header = [0u8; 16];
    reader
        .read_exact(&mut header)
        .map_err(|error| corrupt(format!("short header: {error}")))?;
    if header[..8] != SNAPSHOT_FILE_MAGIC {
        return Err(corrupt("not a Holdfast snapshot file".into()));
    }
    let version = u32::from_le_bytes(header[8..12].try_into().expect("four bytes"));
    if version != SNAPSHOT_FILE_FORMAT_VERSION {
        return Err(Error::UnsupportedFormat {
            what: format!("snapshot {what}"),
            found: version,
            supported: SNAPSHOT_FILE_FORMAT_VERSION,
        });
    }
    let meta_length = u32::from_le_bytes(header[12..16].try_into().expect("four bytes"));
    if meta_length > SNAPSHOT_META_BYTES_MAX {
        return Err(corrupt(format!("metadata of {meta_length} bytes")));
    }
    let mut meta_bytes = vec![0u8; meta_length as usize];
    reader
        .read_exact(&mut meta_bytes)
        .map_err(|error| corrupt(format!("short metadata: {error}")))?;
    let meta: SnapshotMeta = serde_json::from_slice(&meta_bytes)
        .map_err(|error| corrupt(format!("metadata: {error}")))?;
    let remaining = length.saturating_sub(header.len() as u64 + u64::from(meta_length));
    let machine =
        StateMachine::read_snapshot(&mut reader, remaining).map_err(|error| match error {
            holdfast_statemachine::SnapshotError::UnsupportedVersion { found, supported } => {
                Error::UnsupportedFormat {
                    what: format!("state machine snapshot in {what}"),
                    found,
                    supported,
                }
            }
            other => corrupt(other.to_string()),
        })?;
    Ok((meta, machine))
}

/// Copies a received snapshot into a temporary file beside `current.snapshot`, fsyncs it,
/// checks it completely — layout, versions, a bounded decode, the state's invariants, and
/// that it is the snapshot the leader announced (`announced`) — and only then renames it
/// into place. A snapshot that fails any check leaves the current one untouched.
fn persist_received_snapshot(
    mut received: fs::File,
    snapshot_dir: &Path,
    sequence: u64,
    announced: &SnapshotMeta,
) -> Result<(SnapshotMeta, StateMachine), Error> {
    let temporary = snapshot_dir.join(format!("installing-{sequence}.tmp"));
    received
        .seek(SeekFrom::Start(0))
        .map_err(|error| Error::storage(&temporary, error))?;
    let mut reader = BufReader::with_capacity(SNAPSHOT_IO_BUFFER_BYTES, received);
    let file = fs::File::create(&temporary).map_err(|error| Error::storage(&temporary, error))?;
    let mut writer = BufWriter::with_capacity(SNAPSHOT_IO_BUFFER_BYTES, file);
    std::io::copy(&mut reader, &mut writer).map_err(|error| Error::storage(&temporary, error))?;
    let file = writer
        .into_inner()
        .map_err(|error| Error::storage(&temporary, error))?;
    file.sync_all()
        .map_err(|error| Error::storage(&temporary, error))?;
    drop(file);
    let decoded = read_snapshot_file(&temporary)
        .and_then(|decoded| check_announced(decoded, announced, &temporary.display().to_string()));
    let (meta, machine) = match decoded {
        Ok(decoded) => decoded,
        Err(error) => {
            let _ = fs::remove_file(&temporary);
            return Err(error);
        }
    };
    let current = snapshot_dir.join(CURRENT_SNAPSHOT_FILE_NAME);
    fs::rename(&temporary, &current).map_err(|error| Error::storage(&current, error))?;
    sync_parent_dir(&current)?;
    Ok((meta, machine))
}

/// A received snapshot must be the one the leader announced: the same last log id.
fn check_announced(
    decoded: (SnapshotMeta, StateMachine),
    announced: &SnapshotMeta,
    what: &str,
) -> Result<(SnapshotMeta, StateMachine), Error> {
    if decoded.0.last_log_id != announced.last_log_id {
        return Err(Error::Corrupt {
            what: format!("snapshot {what}"),
            message: format!(
                "the file is for {:?}, the leader announced {:?}",
                decoded.0.last_log_id, announced.last_log_id
            ),
        });
    }
    Ok(decoded)
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let _files = self.shared.snapshot_files.lock().await;
        let sequence = self.next_sequence();
        let shared = self.shared.clone();
        let meta = match &self.shared.place {
            Place::Files(snapshot_dir) => {
                let snapshot_dir = snapshot_dir.clone();
                // Encoding takes a while on a large state (half a second of a core for a
                // million seats): off the async workers, on a thread of its own that freezes
                // the state at normal priority and then encodes it at nice 10, so that on a
                // busy machine it takes the time the request path leaves over rather than
                // stretching the requests' tail.
                let (sender, receiver) = tokio::sync::oneshot::channel();
                let build = move || {
                    // Frozen at normal priority: a thread at low priority that held the
                    // state's lock would keep apply waiting while others ran.
                    let frozen = freeze(&shared, sequence);
                    background_priority();
                    let (meta, bytes) = encode(&shared, frozen);
                    let temporary = snapshot_dir.join(format!("building-{sequence}.tmp"));
                    let written = write_snapshot_file(&temporary, &bytes).and_then(|()| {
                        let current = snapshot_dir.join(CURRENT_SNAPSHOT_FILE_NAME);
                        fs::rename(&temporary, &current)
                            .map_err(|error| Error::storage(&current, error))?;
                        sync_parent_dir(&current)
                    });
                    if written.is_err() {
                        let _ = fs::remove_file(&temporary);
                    }
                    let _ = sender.send((meta, written));
                };
                std::thread::Builder::new()
                    .name("holdfast-snapshot".into())
                    .spawn(build)
                    .map_err(|error| snapshot_error(None, ErrorVerb::Write, error))?;
                let (meta, written) = receiver
                    .await
                    .map_err(|error| snapshot_error(None, ErrorVerb::Write, error))?;
                written.map_err(|error| snapshot_error(Some(&meta), ErrorVerb::Write, error))?;
                meta
            }
            Place::Memory(disk) => {
                let (meta, bytes) = encode(&shared, freeze(&shared, sequence));
                disk.put_snapshot(meta.clone(), bytes);
                meta
            }
        };
        *self
            .shared
            .current_snapshot
            .lock()
            .expect("snapshot lock poisoned") = Some(meta.clone());
        let data = self.open_current(&meta).await?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(data),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok(self.read(|state| (state.last_applied, state.last_membership.clone())))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<Outcome>>, StorageError>
    where
        I: IntoIterator<Item = LogEntry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<LogEntry> = entries.into_iter().collect();
        let apply = || {
            let mut replies = Vec::with_capacity(entries.len());
            let mut state = self.shared.state.write().expect("state lock poisoned");
            let started = std::time::Instant::now();
            for entry in &entries {
                let mut outcomes = Vec::new();
                if let EntryPayload::Normal(batch) = &entry.payload {
                    outcomes.reserve_exact(batch.entries.len());
                }
                apply_entry(&mut state, entry, |outcome| outcomes.push(outcome));
                replies.push(outcomes);
            }
            metrics::histogram!(crate::metrics::APPLY_SECONDS).record(started.elapsed());
            replies
        };
        // Creating a million-seat event takes this task's worker for about a second. Tasks
        // queued behind it on that worker (a heartbeat's replication, the peer server's
        // connection) would wait as long, and followers that hear nothing for a lease stand
        // for election: so a long apply hands the worker's other tasks to another thread
        // first, and reads meanwhile wait off their workers too (see `read`).
        let long = entries.iter().any(|entry| match &entry.payload {
            EntryPayload::Normal(batch) => batch.entries.iter().any(|e| e.command.may_take_long()),
            _ => false,
        });
        let replies = if long {
            self.shared.long_apply.store(true, Ordering::Release);
            let replies = off_worker(apply);
            self.shared.long_apply.store(false, Ordering::Release);
            replies
        } else {
            apply()
        };
        if let Some(last) = entries.last() {
            self.shared.applied_waiters.applied(last.log_id.index);
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotData>, StorageError> {
        let snapshot_dir = match &self.shared.place {
            Place::Files(snapshot_dir) => snapshot_dir,
            Place::Memory(_) => {
                return Ok(Box::new(SnapshotData::Memory(std::io::Cursor::new(
                    Vec::new(),
                ))))
            }
        };
        // The chunks go straight to disk, so receiving a snapshot takes bounded memory. The
        // file is unlinked at once: it lives as long as its handle and a crash leaves
        // nothing behind.
        let path = snapshot_dir.join(format!("receiving-{}.tmp", self.next_sequence()));
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .await
            .map_err(|error| snapshot_error(None, ErrorVerb::Write, error))?;
        tokio::fs::remove_file(&path)
            .await
            .map_err(|error| snapshot_error(None, ErrorVerb::Write, error))?;
        Ok(Box::new(SnapshotData::File(file)))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<SnapshotData>,
    ) -> Result<(), StorageError> {
        let _files = self.shared.snapshot_files.lock().await;
        let (_, machine) = match (*snapshot, &self.shared.place) {
            (SnapshotData::File(mut file), Place::Files(snapshot_dir)) => {
                file.flush_and_rewind()
                    .await
                    .map_err(|error| snapshot_error(Some(meta), ErrorVerb::Read, error))?;
                let received = file.into_std().await;
                let snapshot_dir = snapshot_dir.clone();
                let sequence = self.next_sequence();
                let announced = meta.clone();
                tokio::task::spawn_blocking(move || {
                    persist_received_snapshot(received, &snapshot_dir, sequence, &announced)
                })
                .await
                .map_err(|error| snapshot_error(Some(meta), ErrorVerb::Write, error))?
                .map_err(|error| snapshot_error(Some(meta), ErrorVerb::Write, error))?
            }
            (SnapshotData::Memory(cursor), Place::Memory(disk)) => {
                let bytes = cursor.into_inner();
                let decoded =
                    read_snapshot(bytes.as_slice(), bytes.len() as u64, "received in memory")
                        .and_then(|decoded| check_announced(decoded, meta, "received in memory"))
                        .map_err(|error| snapshot_error(Some(meta), ErrorVerb::Read, error))?;
                disk.put_snapshot(decoded.0.clone(), bytes);
                decoded
            }
            _ => {
                return Err(snapshot_error(
                    Some(meta),
                    ErrorVerb::Write,
                    "received snapshot data does not match the store's kind",
                ))
            }
        };
        // Both paths above checked the snapshot against `meta` before keeping it.
        let restored = AppliedState::restored(machine, meta);
        let replaced = std::mem::replace(
            &mut *self.shared.state.write().expect("state lock poisoned"),
            restored,
        );
        // The old state is freed after the lock is let go.
        drop(replaced);
        if let Some(last) = meta.last_log_id {
            self.shared.applied_waiters.applied(last.index);
        }
        *self
            .shared
            .current_snapshot
            .lock()
            .expect("snapshot lock poisoned") = Some(meta.clone());
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let _files = self.shared.snapshot_files.lock().await;
        let meta = self
            .shared
            .current_snapshot
            .lock()
            .expect("snapshot lock poisoned")
            .clone();
        let Some(meta) = meta else {
            return Ok(None);
        };
        let data = self.open_current(&meta).await?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(data),
        }))
    }
}

/// Flushes buffered writes of a received snapshot and moves back to its start.
trait FlushAndRewind {
    async fn flush_and_rewind(&mut self) -> std::io::Result<()>;
}

impl FlushAndRewind for tokio::fs::File {
    async fn flush_and_rewind(&mut self) -> std::io::Result<()> {
        tokio::io::AsyncWriteExt::flush(self).await?;
        self.seek(SeekFrom::Start(0)).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store in `directory` that applied one entry: an event of 10 seats.
    async fn store_with_event(directory: &Path) -> StateMachineStore {
        let mut store = StateMachineStore::open(directory, StateMachine::default()).unwrap();
        store
            .apply([entry(1, crate::testing::workload::create_event(10))])
            .await
            .unwrap();
        store
    }

    /// Entry `index` of term 1, one command.
    fn entry(index: u64, command: holdfast_statemachine::Entry) -> LogEntry {
        LogEntry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(crate::types::Batch::single(command)),
        }
    }

    /// A large event: `seats` seats in rows of 1,000.
    fn seated_event(seats: u32) -> holdfast_statemachine::Entry {
        let mut entry = crate::testing::workload::create_event(1);
        if let holdfast_statemachine::Command::CreateEvent(create) = &mut entry.command {
            create.seat_blocks = vec![holdfast_statemachine::SeatBlock {
                section: "S".into(),
                rows: (0..seats.div_ceil(1_000))
                    .map(|row| row.to_string())
                    .collect(),
                seats_per_row: 1_000,
                price: 100,
            }];
        }
        entry
    }

    /// On one async worker: while a long command applies (an event of 300,000 seats) and
    /// a read waits for it, a third task still runs. (Applied and read on the worker
    /// itself, both would hold it: heartbeats on such a node wait out the apply, and its
    /// followers stand for election.)
    #[test]
    fn a_long_apply_and_a_read_behind_it_leave_the_worker_to_other_tasks() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let directory = tempfile::tempdir().unwrap();
            let mut store =
                StateMachineStore::open(directory.path(), StateMachine::default()).unwrap();
            let applying = Arc::new(AtomicBool::new(true));
            let reading = Arc::new(AtomicBool::new(false));
            let reader = {
                let (store, applying, reading) = (store.clone(), applying.clone(), reading.clone());
                tokio::spawn(async move {
                    while !store.shared.long_apply.load(Ordering::Acquire)
                        && applying.load(Ordering::Acquire)
                    {
                        tokio::task::yield_now().await;
                    }
                    reading.store(true, Ordering::Release);
                    let index = store.applied_index();
                    reading.store(false, Ordering::Release);
                    index
                })
            };
            let meanwhile = {
                let (applying, reading) = (applying.clone(), reading.clone());
                tokio::spawn(async move {
                    let mut saw_both_waiting = false;
                    while applying.load(Ordering::Acquire) {
                        saw_both_waiting |= reading.load(Ordering::Acquire);
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    }
                    saw_both_waiting
                })
            };
            let applier = tokio::spawn(async move {
                let replies = store
                    .apply([entry(1, seated_event(300_000))])
                    .await
                    .unwrap();
                applying.store(false, Ordering::Release);
                replies
            });
            let replies = applier.await.unwrap();
            assert!(
                matches!(replies[0][0], Outcome::EventCreated(_)),
                "{:?}",
                replies[0]
            );
            assert_eq!(reader.await.unwrap(), 1, "the read waited for the apply");
            assert!(
                meanwhile.await.unwrap(),
                "another task ran while the apply and the read waited"
            );
        });
    }

    #[test]
    fn a_snapshot_file_of_an_unknown_format_is_refused() {
        let directory = tempfile::tempdir().unwrap();
        let mut bytes = SNAPSHOT_FILE_MAGIC.to_vec();
        bytes.extend_from_slice(&7u32.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        fs::write(directory.path().join(CURRENT_SNAPSHOT_FILE_NAME), bytes).unwrap();
        let error = StateMachineStore::open(directory.path(), StateMachine::default())
            .err()
            .expect("refused");
        assert_eq!(error.code(), "UNSUPPORTED_FORMAT");
    }

    #[tokio::test]
    async fn a_built_snapshot_is_restored_at_open() {
        let directory = tempfile::tempdir().unwrap();
        let mut store = StateMachineStore::open(directory.path(), StateMachine::default()).unwrap();
        let log_id = LogId::new(openraft::CommittedLeaderId::new(1, 1), 1);
        let batch = crate::types::Batch::single(crate::testing::workload::create_event(10));
        store
            .apply([LogEntry {
                log_id,
                payload: EntryPayload::Normal(batch),
            }])
            .await
            .unwrap();
        let snapshot = store.build_snapshot().await.unwrap();
        assert_eq!(snapshot.meta.last_log_id, Some(log_id));
        let expected = store.state_snapshot_bytes();
        drop(store);
        let reopened = StateMachineStore::open(directory.path(), StateMachine::default()).unwrap();
        assert_eq!(reopened.applied_index(), 1);
        assert!(reopened.state_snapshot_bytes() == expected);
    }

    #[tokio::test]
    async fn apply_and_reads_go_on_while_a_snapshot_encodes_its_frozen_copy() {
        let directory = tempfile::tempdir().unwrap();
        let mut store = store_with_event(directory.path()).await;
        let before = store.state_snapshot_bytes();
        // A snapshot freezes the state, then encodes the copy while apply goes on.
        let Frozen {
            meta,
            state: frozen,
            ..
        } = freeze(&store.shared, 0);
        assert_eq!(meta.last_log_id.map(|log_id| log_id.index), Some(1));
        let replies = store
            .apply([entry(2, crate::testing::workload::hold(1))])
            .await
            .unwrap();
        assert!(
            matches!(replies[0][0], Outcome::Held(_)),
            "{:?}",
            replies[0]
        );
        assert_eq!(store.applied_index(), 2);
        // The copy is the state as of entry 1, byte for byte, though the state moved on.
        let mut encoded = Vec::new();
        frozen.write_snapshot(&mut encoded).unwrap();
        assert!(encoded == before);
        assert!(store.state_snapshot_bytes() != before);
        drop(frozen);
        // The next snapshot is the state as of entry 2, and a reopened store restores it.
        let snapshot = store.build_snapshot().await.unwrap();
        assert_eq!(
            snapshot.meta.last_log_id.map(|log_id| log_id.index),
            Some(2)
        );
        let expected = store.state_snapshot_bytes();
        drop(store);
        let reopened = StateMachineStore::open(directory.path(), StateMachine::default()).unwrap();
        assert!(reopened.state_snapshot_bytes() == expected);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_snapshot_thread_alone_runs_at_background_priority() {
        let before = rustix::process::getpriority_process(None).unwrap();
        let lowered = std::thread::spawn(|| {
            background_priority();
            rustix::process::getpriority_process(None).unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(lowered, SNAPSHOT_NICE.max(before));
        assert_eq!(
            rustix::process::getpriority_process(None).unwrap(),
            before,
            "the caller's own priority is unchanged"
        );
    }

    #[tokio::test]
    async fn a_received_snapshot_is_checked_before_it_replaces_the_current_one() {
        use tokio::io::AsyncWriteExt;

        let directory = tempfile::tempdir().unwrap();
        let mut store = StateMachineStore::open(directory.path(), StateMachine::default()).unwrap();
        let log_id = LogId::new(openraft::CommittedLeaderId::new(1, 1), 1);
        let batch = crate::types::Batch::single(crate::testing::workload::create_event(10));
        store
            .apply([LogEntry {
                log_id,
                payload: EntryPayload::Normal(batch),
            }])
            .await
            .unwrap();
        let built = store.build_snapshot().await.unwrap();
        let current = directory.path().join(CURRENT_SNAPSHOT_FILE_NAME);
        let before = fs::read(&current).unwrap();
        let state_before = store.state_snapshot_bytes();

        // The state machine part with a string length of 2^40 where the event id starts.
        let mut forged = before.clone();
        let state_start = forged.len() - state_before.len();
        forged.truncate(state_start + 12);
        forged.push(253);
        forged.extend_from_slice(&(1u64 << 40).to_le_bytes());
        forged.extend_from_slice(b"padding");
        let other_log_id = Some(LogId::new(openraft::CommittedLeaderId::new(1, 1), 7));
        let cases: [(&str, Vec<u8>, Option<LogId>); 4] = [
            (
                "garbage",
                b"garbage, not a snapshot".to_vec(),
                built.meta.last_log_id,
            ),
            (
                "truncated",
                before[..before.len() / 2].to_vec(),
                built.meta.last_log_id,
            ),
            ("a forged field", forged, built.meta.last_log_id),
            ("another log id", before.clone(), other_log_id),
        ];
        for (what, bytes, last_log_id) in cases {
            let mut data = store.begin_receiving_snapshot().await.unwrap();
            data.write_all(&bytes).await.unwrap();
            let meta = SnapshotMeta {
                last_log_id,
                ..built.meta.clone()
            };
            let result = store.install_snapshot(&meta, data).await;
            assert!(result.is_err(), "{what}: installed");
            assert!(
                fs::read(&current).unwrap() == before,
                "{what}: current replaced"
            );
            assert!(
                store.state_snapshot_bytes() == state_before,
                "{what}: state replaced"
            );
        }
        let leftovers: Vec<_> = fs::read_dir(directory.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .filter(|name| name != CURRENT_SNAPSHOT_FILE_NAME)
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
