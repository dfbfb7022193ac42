//! Snapshots: the whole canonical state as bytes, and back.
//!
//! Layout: the 8-byte magic `HFSNAP\0\0`, a little-endian `u32` format version, then the
//! state in bincode's standard encoding. Every map is ordered, so the same state always
//! gives the same bytes; derived indexes are not written and are rebuilt on restore.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::idempotency::{IdempotencyTable, Kept, RecordOwned};
use crate::idmap::IdMap;
use crate::inventory::Event;
use crate::limits::Config;
use crate::outbox::Outbox;
use crate::outcome::Outcome;
use crate::restore::Restores;
use crate::state::{Booking, Hold, Refund, HOLD_ID_PREFIX};
use crate::webhooks::Webhooks;
use crate::StateMachine;

/// The magic bytes that open every snapshot.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"HFSNAP\0\0";
/// The snapshot format this build writes and reads. Version 2 added events' listings
/// (venue, city, end, description, tags) and cancellation; version 3 added refunds' failed
/// attempts and the `Failed` status (and `RefundFailed` outbox events), and webhooks;
/// version 4 added the `HoldPlaced` and `HoldReleased` outbox events and event types;
/// version 5 appended a restore in progress (see `restore.rs`) after the webhooks, and the
/// `RestoreChunk` command and its outcome and refusal (a version 3 or 4 snapshot has no
/// restore in progress and is read as one without it); version 6 appended the charge
/// intents (see `intents.rs`) and the id key (see `ids.rs`), and the commands and outcomes
/// that change them (an older snapshot has neither: sequential ids).
/// Version 4 only appended enum variants, so a version 3 snapshot is a version 4 snapshot
/// without them and is read as one ([`SNAPSHOT_FORMAT_VERSION_OLDEST_READ`]); a build that
/// reads only version 3 refuses a version 4 snapshot by its version, instead of failing on
/// the first new variant. Any other version is refused with
/// [`SnapshotError::UnsupportedVersion`], never misread.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 6;
/// The oldest snapshot format this build reads (see [`SNAPSHOT_FORMAT_VERSION`]).
pub const SNAPSHOT_FORMAT_VERSION_OLDEST_READ: u32 = 3;

/// The length of the snapshot header: the magic, then the format version.
pub const SNAPSHOT_HEADER_BYTES: usize = SNAPSHOT_MAGIC.len() + 4;

/// The format version the snapshot header at the start of `bytes` names, when it is one
/// this build reads.
pub fn snapshot_format_version(bytes: &[u8]) -> Result<u32, SnapshotError> {
    let header = bytes
        .get(..SNAPSHOT_HEADER_BYTES)
        .ok_or(SnapshotError::BadMagic)?;
    if header[..SNAPSHOT_MAGIC.len()] != SNAPSHOT_MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    let version = u32::from_le_bytes(
        header[SNAPSHOT_MAGIC.len()..]
            .try_into()
            .expect("four bytes"),
    );
    if !(SNAPSHOT_FORMAT_VERSION_OLDEST_READ..=SNAPSHOT_FORMAT_VERSION).contains(&version) {
        return Err(SnapshotError::UnsupportedVersion {
            found: version,
            supported: SNAPSHOT_FORMAT_VERSION,
        });
    }
    Ok(version)
}

/// Why a snapshot could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The bytes do not open with [`SNAPSHOT_MAGIC`] and a version (too short, or not a
    /// snapshot at all).
    #[error("not a Holdfast snapshot (bad magic bytes)")]
    BadMagic,
    /// The header names a format version this build does not read (below
    /// [`SNAPSHOT_FORMAT_VERSION_OLDEST_READ`] or above [`SNAPSHOT_FORMAT_VERSION`]);
    /// nothing after the header was read.
    #[error("snapshot format version {found} is not supported by this build (it reads version {supported})")]
    UnsupportedVersion {
        /// The version the header names.
        found: u32,
        /// The newest version this build reads ([`SNAPSHOT_FORMAT_VERSION`]).
        supported: u32,
    },
    /// The body does not decode within its length, or decodes to a state that breaks an
    /// invariant ([`StateMachine::check_invariants`]); the text says which.
    #[error("snapshot is corrupt: {0}")]
    Corrupt(String),
    /// The writer failed while a snapshot was written. (A reader that fails is reported
    /// as `BadMagic` in the header and as `Corrupt` in the body.)
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

/// The state before the idempotency records, in snapshot order.
#[derive(Serialize)]
struct HeadRef<'a> {
    config: &'a Config,
    now_ms: u64,
    last_hold: u64,
    last_booking: u64,
    last_refund: u64,
    events: &'a BTreeMap<String, Event>,
    holds: &'a IdMap<Hold>,
    bookings: &'a IdMap<Booking>,
    refunds: &'a IdMap<Refund>,
}

/// The state after the idempotency records.
#[derive(Serialize)]
struct TailRef<'a> {
    outbox: &'a Outbox,
    retired_nodes: &'a BTreeSet<u64>,
    webhooks: &'a Webhooks,
}

/// The idempotency records as one serde sequence: with [`HeadRef`] before it and
/// [`TailRef`] after it, the snapshot as one value, which [`StateMachine::write_snapshot`]
/// must equal byte for byte (bincode encodes a tuple as its elements one after another,
/// exactly as it does a struct's fields).
#[cfg(test)]
struct RecordsRef<'a>(&'a StateMachine);

#[cfg(test)]
impl Serialize for RecordsRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let state = self.0;
        let rebuild = crate::holds::remembered_answers(state.ids, &state.holds, &state.events);
        serializer.collect_seq(state.idempotency.records().map(|record| {
            crate::idempotency::RecordRef {
                request_id: record.request_id(),
                fingerprint: record.fingerprint,
                stored_at_ms: record.stored_at_ms,
                outcome: record.outcome(&rebuild),
            }
        }))
    }
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
    idempotency: Vec<RecordOwned>,
    outbox: Outbox,
    retired_nodes: BTreeSet<u64>,
    webhooks: Webhooks,
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
}

fn encode<T: Serialize, W: Write>(value: &T, writer: &mut W) -> Result<(), SnapshotError> {
    bincode::serde::encode_into_std_write(value, writer, bincode_config())
        .map(|_| ())
        .map_err(|error| match error {
            bincode::error::EncodeError::Io { inner, .. } => SnapshotError::Io(inner),
            other => SnapshotError::Corrupt(other.to_string()),
        })
}

/// The canonical state as of one moment, sharing its large parts with the live state: the
/// seats and rows of every event, the holds, bookings, refunds, idempotency records and the
/// outbox are kept in shared chunks (`cowvec.rs`, `idmap.rs`), so taking it costs a pointer
/// per chunk plus the small fields, and apply goes on at once, copying a chunk the first
/// time it writes one this copy still holds. Encoding it gives exactly the bytes the state
/// would have given then ([`StateMachine::write_snapshot`]).
///
/// This is how a snapshot is built without stopping apply or reads for longer than the
/// freeze: lock the state, call [`StateMachine::frozen`], let go, encode.
pub struct FrozenState {
    /// A state with the canonical fields only (derived indexes empty): encoded, never
    /// applied to or read.
    state: StateMachine,
}

impl FrozenState {
    /// Writes the frozen state as a snapshot (see [`StateMachine::write_snapshot`]).
    pub fn write_snapshot<W: Write>(&self, writer: W) -> Result<(), SnapshotError> {
        self.state.write_snapshot(writer)
    }

    /// The frozen state as snapshot bytes.
    pub fn snapshot_bytes(&self) -> Vec<u8> {
        self.state.snapshot_bytes()
    }
}

impl StateMachine {
    /// The canonical state as of now, sharing its large parts with this one (see
    /// [`FrozenState`]). Costs a pointer per chunk of every large sequence and a copy of
    /// each event's description; the derived indexes are left out.
    pub fn frozen(&self) -> FrozenState {
        let mut state = StateMachine::new(self.config.clone());
        state.now_ms = self.now_ms;
        state.last_hold = self.last_hold;
        state.last_booking = self.last_booking;
        state.last_refund = self.last_refund;
        state.events = self
            .events
            .iter()
            .map(|(id, event)| (id.clone(), event.frozen()))
            .collect();
        state.holds = self.holds.clone();
        state.bookings = self.bookings.clone();
        state.refunds = self.refunds.clone();
        state.idempotency = self.idempotency.frozen();
        state.outbox = self.outbox.clone();
        state.retired_nodes = self.retired_nodes.clone();
        state.webhooks = self.webhooks.clone();
        state.restores = self.restores.clone();
        state.charge_intents = self.charge_intents.clone();
        state.ids = self.ids;
        FrozenState { state }
    }

    /// Writes the whole state to `writer`.
    ///
    /// bincode frames nothing: a struct is its fields one after another, a sequence its
    /// length then its elements. So the snapshot is written in pieces — the fields before
    /// the idempotency records, each record with its outcome copied as the encoded bytes
    /// the table keeps, the fields after — and the bytes equal those of the whole state
    /// encoded as one value (checked by a test), without decoding a single
    /// remembered outcome.
    pub fn write_snapshot<W: Write>(&self, mut writer: W) -> Result<(), SnapshotError> {
        writer.write_all(&SNAPSHOT_MAGIC)?;
        writer.write_all(&SNAPSHOT_FORMAT_VERSION.to_le_bytes())?;
        encode(&self.snapshot_head(), &mut writer)?;
        encode(&(self.idempotency.len() as u64), &mut writer)?;
        let mut outcome = Vec::new();
        for record in self.idempotency.records() {
            encode(
                &(record.request_id(), record.fingerprint, record.stored_at_ms),
                &mut writer,
            )?;
            match record.kept() {
                Kept::Encoded(encoded) => writer.write_all(encoded)?,
                &Kept::Held {
                    hold,
                    expires_at_ms,
                } => {
                    outcome.clear();
                    self.write_answer_as_made(hold, expires_at_ms, &mut outcome);
                    writer.write_all(&outcome)?;
                }
            }
        }
        encode(&self.snapshot_tail(), &mut writer)?;
        encode(&self.restores, &mut writer)?;
        encode(&self.charge_intents, &mut writer)?;
        encode(&self.ids, &mut writer)
    }

    fn snapshot_head(&self) -> HeadRef<'_> {
        HeadRef {
            config: &self.config,
            now_ms: self.now_ms,
            last_hold: self.last_hold,
            last_booking: self.last_booking,
            last_refund: self.last_refund,
            events: &self.events,
            holds: &self.holds,
            bookings: &self.bookings,
            refunds: &self.refunds,
        }
    }

    fn snapshot_tail(&self) -> TailRef<'_> {
        TailRef {
            outbox: &self.outbox,
            retired_nodes: &self.retired_nodes,
            webhooks: &self.webhooks,
        }
    }

    /// The whole state as bytes.
    pub fn snapshot_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.write_snapshot(&mut bytes)
            .expect("writing a snapshot into memory cannot fail");
        bytes
    }

    /// Reads a state written by [`StateMachine::write_snapshot`] from `reader`, which holds
    /// at most `length` bytes of it: no length inside the snapshot may claim more than
    /// that (see [`crate::decode`]), and nothing past it is read.
    pub fn read_snapshot<R: Read>(
        mut reader: R,
        length: u64,
    ) -> Result<StateMachine, SnapshotError> {
        let mut header = [0u8; SNAPSHOT_HEADER_BYTES];
        reader
            .read_exact(&mut header)
            .map_err(|_| SnapshotError::BadMagic)?;
        let version = snapshot_format_version(&header)?;
        let body_length = length.saturating_sub(header.len() as u64);
        let snapshot: SnapshotOwned = crate::decode::from_std_read(&mut reader, body_length)
            .map_err(|error| SnapshotError::Corrupt(error.to_string()))?;
        let restores: Restores = if version >= 5 {
            crate::decode::from_std_read(&mut reader, body_length)
                .map_err(|error| SnapshotError::Corrupt(error.to_string()))?
        } else {
            Restores::default()
        };
        let (charge_intents, ids): (crate::intents::ChargeIntents, crate::ids::IdKey) =
            if version >= 6 {
                crate::decode::from_std_read(&mut reader, body_length)
                    .map_err(|error| SnapshotError::Corrupt(error.to_string()))?
            } else {
                Default::default()
            };
        let mut state = StateMachine::new(snapshot.config);
        state.now_ms = snapshot.now_ms;
        state.last_hold = snapshot.last_hold;
        state.last_booking = snapshot.last_booking;
        state.last_refund = snapshot.last_refund;
        state.events = snapshot.events;
        state.holds = snapshot.holds;
        state.bookings = snapshot.bookings;
        state.refunds = snapshot.refunds;
        // Before the records below: a remembered hold answer names its hold by keyed id.
        state.ids = ids;
        // A hold's answer is kept by reference again when the hold is there and rebuilds
        // to exactly that answer, as it was when the record was made.
        let by_reference = state.config.remembers_holds_by_reference();
        let records = snapshot
            .idempotency
            .into_iter()
            .map(|record| {
                record.into_record(|outcome| {
                    let Outcome::Held(view) = outcome else {
                        return None;
                    };
                    let hold = state
                        .ids
                        .parse(HOLD_ID_PREFIX, &view.hold_id)
                        .filter(|_| by_reference)?;
                    let rebuilt = crate::holds::answer_as_made(
                        state.ids,
                        &state.holds,
                        &state.events,
                        hold,
                        view.expires_at_ms,
                    )?;
                    (rebuilt == *outcome).then_some((hold, view.expires_at_ms))
                })
            })
            .collect();
        state.idempotency = IdempotencyTable::from_records(records);
        state.outbox = snapshot.outbox;
        state.retired_nodes = snapshot.retired_nodes;
        state.webhooks = snapshot.webhooks;
        state.restores = restores;
        state.charge_intents = charge_intents;
        state.rebuild_derived();
        state
            .check_invariants()
            .map_err(|violation| SnapshotError::Corrupt(violation.to_string()))?;
        Ok(state)
    }

    /// Restores a state from bytes.
    pub fn from_snapshot_bytes(bytes: &[u8]) -> Result<StateMachine, SnapshotError> {
        StateMachine::read_snapshot(bytes, bytes.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Category, Command};
    use crate::command::{CreateEvent, Entry, HoldRequest, PoolSpec, SeatBlock};

    #[test]
    fn the_snapshot_written_in_pieces_equals_the_state_encoded_as_one_value() {
        let mut state = StateMachine::default();
        let create = Command::CreateEvent(CreateEvent {
            event_id: "E".into(),
            name: "E".into(),
            category: Category::Event,
            starts_at_ms: None,
            currency: "EUR".into(),
            seats: vec![],
            seat_blocks: vec![SeatBlock {
                section: "A".into(),
                rows: vec!["1".into(), "2".into()],
                seats_per_row: 10,
                price: 100,
            }],
            pools: vec![PoolSpec {
                id: "GA".into(),
                capacity: 10,
                price: 50,
            }],
            listing: crate::command::Listing {
                venue: Some("Hall".into()),
                city: Some("Lyon".into()),
                ends_at_ms: None,
                description: None,
                tags: vec!["jazz".into()],
            },
        });
        state.apply(&Entry {
            time_ms: 1,
            request_id: Some("create".into()),
            command: create,
        });
        for n in 1..=10u32 {
            state.apply(&Entry {
                time_ms: 1 + u64::from(n),
                request_id: (n % 2 == 0).then(|| format!("hold-{n}")),
                command: Command::Hold(HoldRequest {
                    event_id: "E".into(),
                    customer_id: format!("c{n}"),
                    seats: vec![format!("A-1-{n}")],
                    pools: vec![],
                    best_available: None,
                    ttl_seconds: Some(60),
                }),
            });
        }
        let whole = (
            state.snapshot_head(),
            RecordsRef(&state),
            state.snapshot_tail(),
            &state.restores,
            &state.charge_intents,
            &state.ids,
        );
        let mut expected = SNAPSHOT_MAGIC.to_vec();
        expected.extend(SNAPSHOT_FORMAT_VERSION.to_le_bytes());
        expected.extend(bincode::serde::encode_to_vec(&whole, bincode_config()).unwrap());
        assert_eq!(state.idempotency.len(), 6);
        assert_eq!(state.snapshot_bytes(), expected);
        let restored = StateMachine::from_snapshot_bytes(&expected).unwrap();
        assert_eq!(restored.snapshot_bytes(), expected);
    }
}
