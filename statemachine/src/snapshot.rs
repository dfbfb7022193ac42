//! Snapshots: the whole canonical state as bytes, and back.
//!
//! Layout: the 8-byte magic `HFSNAP\0\0`, a little-endian `u32` format version, then the
//! state in bincode's standard encoding. Every map is ordered, so the same state always
//! gives the same bytes; derived indexes are not written and are rebuilt on restore.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use serde::{Deserialize, Serialize, Serializer};

use crate::idempotency::{IdempotencyTable, Record};
use crate::idmap::IdMap;
use crate::inventory::Event;
use crate::limits::Config;
use crate::outbox::Outbox;
use crate::state::{Booking, Hold, Refund};
use crate::StateMachine;

/// The magic bytes that open every snapshot.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"HFSNAP\0\0";
/// The snapshot format this build writes and reads.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;

/// Why a snapshot could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a Holdfast snapshot (bad magic bytes)")]
    BadMagic,
    #[error("snapshot format version {found} is not supported by this build (it reads version {supported})")]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error("snapshot is corrupt: {0}")]
    Corrupt(String),
    #[error("snapshot I/O failed: {0}")]
    Io(#[from] std::io::Error),
}

impl SnapshotError {
    /// A stable code for logs and the wire.
    pub fn code(&self) -> &'static str {
        match self {
            SnapshotError::BadMagic => "SNAPSHOT_BAD_MAGIC",
            SnapshotError::UnsupportedVersion { .. } => "SNAPSHOT_UNSUPPORTED_VERSION",
            SnapshotError::Corrupt(_) => "SNAPSHOT_CORRUPT",
            SnapshotError::Io(_) => "SNAPSHOT_IO",
        }
    }
}

struct RecordsRef<'a>(&'a IdempotencyTable);

impl Serialize for RecordsRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.records())
    }
}

#[derive(Serialize)]
struct SnapshotRef<'a> {
    config: &'a Config,
    now_ms: u64,
    last_hold: u64,
    last_booking: u64,
    last_refund: u64,
    events: &'a BTreeMap<String, Event>,
    holds: &'a IdMap<Hold>,
    bookings: &'a IdMap<Booking>,
    refunds: &'a IdMap<Refund>,
    idempotency: RecordsRef<'a>,
    outbox: &'a Outbox,
    retired_nodes: &'a BTreeSet<u64>,
}

#[derive(Deserialize)]
struct SnapshotOwned {
    config: Config,
    now_ms: u64,
    last_hold: u64,
    last_booking: u64,
    last_refund: u64,
    events: BTreeMap<String, Event>,
    holds: IdMap<Hold>,
    bookings: IdMap<Booking>,
    refunds: IdMap<Refund>,
    idempotency: Vec<Record>,
    outbox: Outbox,
    retired_nodes: BTreeSet<u64>,
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
}

impl StateMachine {
    /// Writes the whole state to `writer`.
    pub fn write_snapshot<W: Write>(&self, mut writer: W) -> Result<(), SnapshotError> {
        writer.write_all(&SNAPSHOT_MAGIC)?;
        writer.write_all(&SNAPSHOT_FORMAT_VERSION.to_le_bytes())?;
        let snapshot = SnapshotRef {
            config: &self.config,
            now_ms: self.now_ms,
            last_hold: self.last_hold,
            last_booking: self.last_booking,
            last_refund: self.last_refund,
            events: &self.events,
            holds: &self.holds,
            bookings: &self.bookings,
            refunds: &self.refunds,
            idempotency: RecordsRef(&self.idempotency),
            outbox: &self.outbox,
            retired_nodes: &self.retired_nodes,
        };
        bincode::serde::encode_into_std_write(&snapshot, &mut writer, bincode_config()).map_err(
            |error| match error {
                bincode::error::EncodeError::Io { inner, .. } => SnapshotError::Io(inner),
                other => SnapshotError::Corrupt(other.to_string()),
            },
        )?;
        Ok(())
    }

    /// The whole state as bytes.
    pub fn snapshot_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.write_snapshot(&mut bytes)
            .expect("writing a snapshot into memory cannot fail");
        bytes
    }

    /// Reads a state written by [`StateMachine::write_snapshot`].
    pub fn read_snapshot<R: Read>(mut reader: R) -> Result<StateMachine, SnapshotError> {
        let mut header = [0u8; 12];
        reader
            .read_exact(&mut header)
            .map_err(|_| SnapshotError::BadMagic)?;
        if header[..8] != SNAPSHOT_MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let version = u32::from_le_bytes(header[8..12].try_into().expect("four bytes"));
        if version != SNAPSHOT_FORMAT_VERSION {
            return Err(SnapshotError::UnsupportedVersion {
                found: version,
                supported: SNAPSHOT_FORMAT_VERSION,
            });
        }
        let snapshot: SnapshotOwned =
            bincode::serde::decode_from_std_read(&mut reader, bincode_config())
                .map_err(|error| SnapshotError::Corrupt(error.to_string()))?;
        let mut state = StateMachine::new(snapshot.config);
        state.now_ms = snapshot.now_ms;
        state.last_hold = snapshot.last_hold;
        state.last_booking = snapshot.last_booking;
        state.last_refund = snapshot.last_refund;
        state.events = snapshot.events;
        state.holds = snapshot.holds;
        state.bookings = snapshot.bookings;
        state.refunds = snapshot.refunds;
        state.idempotency = IdempotencyTable::from_records(snapshot.idempotency);
        state.outbox = snapshot.outbox;
        state.retired_nodes = snapshot.retired_nodes;
        state.rebuild_derived();
        state
            .check_invariants()
            .map_err(|violation| SnapshotError::Corrupt(violation.to_string()))?;
        Ok(state)
    }

    /// Restores a state from bytes.
    pub fn from_snapshot_bytes(bytes: &[u8]) -> Result<StateMachine, SnapshotError> {
        StateMachine::read_snapshot(bytes)
    }
}
