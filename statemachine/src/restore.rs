//! Restoring a backup into an empty cluster, through the log.
//!
//! A backup is the state's snapshot bytes (see `snapshot.rs`), usually far larger than one
//! log entry may be. `holdfastctl restore` sends it as [`RestoreChunk`]s in order; each is
//! an ordinary replicated command, so every replica stages the same bytes at the same
//! index. The staged bytes are part of the state (and of its snapshots, from format
//! version 5), so a replica that installs a snapshot in the middle of a restore stages on
//! from where the others are.
//!
//! The last piece checks the whole (its length and SHA-256), decodes it as a snapshot, and
//! replaces the state in the same entry, so no hold or confirm can land between the check
//! that the state is empty and the replacement. Only an *empty* state is replaced: no
//! events, holds, bookings, refunds, webhooks or outbox events, and nothing held or booked
//! before — a restore never merges into or overwrites live data. Two things stay the
//! cluster's own: the retired node ids (they name this cluster's members, not the backed
//! up cluster's), and cluster time, which never moves back.
//!
//! Every piece is idempotent: a piece the state has already staged (a retried request)
//! answers the progress so far, and once a restore completed its pieces answer `done`.
//!
//! Staged bytes never outlive the chance to use them: a write that makes the state
//! non-empty drops them (see [`StateMachine::drop_stale_restore`]), as does a piece refused
//! because the state holds data, a checksum that does not match, or bytes that do not
//! decode. A first piece (offset 0) with another id replaces a restore that was abandoned.
//!
//! Whether the whole decodes depends on the snapshot formats this build reads, so every
//! voter must run the same build while a restore runs (as for any new command); the edge
//! checks the format version of the first piece, so a backup this build cannot read is
//! refused before anything is staged.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::command::RestoreChunk;
use crate::outcome::{Outcome, Rejection, RestoreProgress};
use crate::StateMachine;

/// The largest backup a cluster restores: the staged bytes are held in memory (twice, by
/// a node that keeps a snapshot copy) until the last piece arrives.
pub const RESTORE_BYTES_MAX: u64 = 2 * 1024 * 1024 * 1024;

/// A restore in progress, or the last one completed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Restores {
    /// Pieces staged so far of the restore in progress.
    pub(crate) staging: Option<Staging>,
    /// The id and size of the restore that replaced this state, if one did.
    pub(crate) completed: Option<(u64, u64)>,
}

/// The bytes staged so far of one restore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Staging {
    pub(crate) restore_id: u64,
    pub(crate) total_bytes: u64,
    pub(crate) sha256: [u8; 32],
    /// Encoded as one byte string (length, then the bytes), not byte by byte. Shared with
    /// a frozen copy of the state that a snapshot encodes (see `cowvec.rs`): the next piece
    /// copies it, once, if the copy is still being encoded.
    #[serde(with = "byte_string")]
    pub(crate) data: Arc<Vec<u8>>,
}

/// Bytes as a serde byte string, which bincode writes and reads in one piece.
mod byte_string {
    use std::sync::Arc;

    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        bytes: &Arc<Vec<u8>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Arc<Vec<u8>>, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Vec<u8>;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a byte string")
            }
            fn visit_bytes<E>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
                Ok(bytes.to_vec())
            }
            fn visit_byte_buf<E>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(bytes)
            }
        }
        deserializer.deserialize_byte_buf(Visitor).map(Arc::new)
    }
}

fn refused(reason: impl Into<String>) -> Rejection {
    Rejection::RestoreRefused {
        reason: reason.into(),
    }
}

impl StateMachine {
    /// Whether a restore may replace this state: nothing was ever held, booked or listed.
    fn empty_for_restore(&self) -> bool {
        self.events.is_empty()
            && self.webhooks.last_id == 0
            && self.outbox.events.is_empty()
            && self.last_hold == 0
            && self.last_booking == 0
            && self.last_refund == 0
            && self.restores.completed.is_none()
    }

    /// After every command: a restore in progress ends once the state holds data, since its
    /// last piece would be refused anyway (cheap when none is staged). So a state with
    /// data never has staged pieces.
    pub(crate) fn drop_stale_restore(&mut self) {
        if self.restores.staging.is_some() && !self.empty_for_restore() {
            self.restores.staging = None;
        }
    }

    /// Applies one piece of a restore (see the module documentation).
    pub(crate) fn restore_chunk(&mut self, chunk: &RestoreChunk) -> Result<Outcome, Rejection> {
        let progress = |received_bytes, done| {
            Outcome::RestoreProgress(RestoreProgress {
                restore_id: chunk.restore_id,
                received_bytes,
                total_bytes: chunk.total_bytes,
                done,
            })
        };
        if let Some((restore_id, total_bytes)) = self.restores.completed {
            if restore_id == chunk.restore_id && total_bytes == chunk.total_bytes {
                return Ok(progress(total_bytes, true));
            }
            return Err(refused("this cluster was restored from a backup already"));
        }
        if chunk.total_bytes == 0 || chunk.total_bytes > RESTORE_BYTES_MAX {
            return Err(Rejection::invalid(
                "total_bytes",
                format!("must be 1 to {RESTORE_BYTES_MAX}"),
            ));
        }
        let end = chunk.offset.saturating_add(chunk.data.len() as u64);
        if chunk.data.is_empty() || end > chunk.total_bytes {
            return Err(Rejection::invalid(
                "data",
                "must be non-empty and end within total_bytes",
            ));
        }
        if !self.empty_for_restore() {
            return Err(refused(
                "this cluster holds data: a backup is restored only into an empty cluster",
            ));
        }
        match &mut self.restores.staging {
            Some(staging) if staging.restore_id == chunk.restore_id => {
                if staging.total_bytes != chunk.total_bytes || staging.sha256 != chunk.sha256 {
                    return Err(refused(
                        "this piece names another size or checksum than the restore's first",
                    ));
                }
                let staged = staging.data.len() as u64;
                if end <= staged {
                    // Staged already: a retried request.
                    return Ok(progress(staged, false));
                }
                if chunk.offset != staged {
                    return Err(refused(format!(
                        "pieces go in order: the next piece starts at byte {staged}"
                    )));
                }
                Arc::make_mut(&mut staging.data).extend_from_slice(&chunk.data);
            }
            _ => {
                // A first piece starts a restore, replacing one that was abandoned.
                if chunk.offset != 0 {
                    return Err(refused(
                        "no restore with this id is in progress: the first piece starts at byte 0",
                    ));
                }
                self.restores.staging = Some(Staging {
                    restore_id: chunk.restore_id,
                    total_bytes: chunk.total_bytes,
                    sha256: chunk.sha256,
                    data: Arc::new(chunk.data.clone()),
                });
            }
        }
        let staging = self.restores.staging.as_ref().expect("staged above");
        let staged = staging.data.len() as u64;
        if staged < staging.total_bytes {
            return Ok(progress(staged, false));
        }
        let staging = self.restores.staging.take().expect("staged above");
        if <[u8; 32]>::from(Sha256::digest(staging.data.as_slice())) != staging.sha256 {
            return Err(refused(
                "the restored bytes do not match their SHA-256: nothing was restored",
            ));
        }
        let mut restored = StateMachine::from_snapshot_bytes(&staging.data)
            .map_err(|error| refused(format!("the backup does not decode: {error}")))?;
        restored.now_ms = restored.now_ms.max(self.now_ms);
        restored.retired_nodes = std::mem::take(&mut self.retired_nodes);
        restored.config.faults = self.config.faults;
        restored.restores = Restores {
            staging: None,
            completed: Some((staging.restore_id, staging.total_bytes)),
        };
        *self = restored;
        Ok(progress(staging.total_bytes, true))
    }
}

/// SHA-256 of `bytes`, as a restore's pieces carry it.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Category, Command, CreateEvent, Entry, HoldRequest, Listing, SeatBlock};

    fn entry(time_ms: u64, command: Command) -> Entry {
        Entry {
            time_ms,
            request_id: None,
            command,
        }
    }

    fn source() -> StateMachine {
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
                rows: vec!["1".into()],
                seats_per_row: 20,
                price: 100,
            }],
            pools: vec![],
            listing: Listing::default(),
        });
        state.apply(&entry(1_000, create));
        for n in 1..=5 {
            state.apply(&entry(
                1_000 + n,
                Command::Hold(HoldRequest {
                    event_id: "E".into(),
                    customer_id: format!("c{n}"),
                    seats: vec![format!("A-1-{n}")],
                    pools: vec![],
                    best_available: None,
                    ttl_seconds: Some(600),
                }),
            ));
        }
        state
    }

    fn chunk(restore_id: u64, bytes: &[u8], offset: usize, end: usize) -> Command {
        Command::RestoreChunk(RestoreChunk {
            restore_id,
            offset: offset as u64,
            total_bytes: bytes.len() as u64,
            sha256: sha256(bytes),
            data: bytes[offset..end].to_vec(),
        })
    }

    fn progress(outcome: &Outcome) -> RestoreProgress {
        match outcome {
            Outcome::RestoreProgress(progress) => *progress,
            other => panic!("not a progress: {other:?}"),
        }
    }

    #[test]
    fn pieces_in_order_restore_the_state_across_a_snapshot_in_the_middle() {
        let backup = source().snapshot_bytes();
        let mut target = StateMachine::default();
        target.apply(&entry(5_000, Command::RetireNode { node_id: 9 }));
        let half = backup.len() / 2;
        let first = target.apply(&entry(5_001, chunk(1, &backup, 0, half)));
        assert_eq!(progress(&first).received_bytes, half as u64);
        // A replica that installs a snapshot now stages on from the same place.
        let mut installed = StateMachine::from_snapshot_bytes(&target.snapshot_bytes()).unwrap();
        let last = entry(5_002, chunk(1, &backup, half, backup.len()));
        let done = target.apply(&last);
        assert_eq!(installed.apply(&last), done);
        assert!(progress(&done).done);
        assert_eq!(installed.snapshot_bytes(), target.snapshot_bytes());
        // The booking state is the backup's; cluster time and retired ids are this cluster's.
        assert_eq!(target.holds.iter().count(), 5);
        assert_eq!(target.last_hold, 5);
        assert_eq!(target.now_ms, 5_002);
        assert!(target.retired_nodes.contains(&9));
        target.check_invariants().unwrap();
        // Every piece again answers done; another restore is refused.
        let again = target.apply(&entry(5_003, chunk(1, &backup, 0, half)));
        assert!(progress(&again).done);
        let other = target.apply(&entry(5_004, chunk(2, &backup, 0, half)));
        assert_eq!(
            other.rejection().map(Rejection::code),
            Some(crate::ErrorCode::RestoreRefused)
        );
    }

    #[test]
    fn a_write_that_fills_the_state_drops_a_staged_restore() {
        let backup = source().snapshot_bytes();
        let mut target = StateMachine::default();
        progress(&target.apply(&entry(1, chunk(1, &backup, 0, 10))));
        target.apply(&entry(2, Command::ExpireHolds { max_holds: 10 }));
        assert!(target.restores.staging.is_some(), "an empty state keeps it");
        target.apply(&entry(3, source_event()));
        assert_eq!(target.restores, Restores::default());
    }

    fn source_event() -> Command {
        Command::CreateEvent(CreateEvent {
            event_id: "F".into(),
            name: "F".into(),
            category: Category::Event,
            starts_at_ms: None,
            currency: "EUR".into(),
            seats: vec![],
            seat_blocks: vec![],
            pools: vec![crate::command::PoolSpec {
                id: "GA".into(),
                capacity: 1,
                price: 1,
            }],
            listing: Listing::default(),
        })
    }

    #[test]
    fn a_state_with_data_out_of_order_pieces_and_bad_checksums_are_refused() {
        let backup = source().snapshot_bytes();
        let refused = |outcome: Outcome| {
            assert_eq!(
                outcome.rejection().map(Rejection::code),
                Some(crate::ErrorCode::RestoreRefused),
                "{outcome:?}"
            );
        };
        let mut busy = source();
        refused(busy.apply(&entry(9_000, chunk(1, &backup, 0, backup.len()))));
        assert_eq!(busy.holds.iter().count(), 5);
        assert_eq!(busy.restores, Restores::default());

        let mut target = StateMachine::default();
        refused(target.apply(&entry(1, chunk(1, &backup, 10, 20))));
        progress(&target.apply(&entry(2, chunk(1, &backup, 0, 10))));
        refused(target.apply(&entry(3, chunk(1, &backup, 20, 30))));
        // A piece already staged answers the progress again.
        assert_eq!(
            progress(&target.apply(&entry(4, chunk(1, &backup, 0, 10)))).received_bytes,
            10
        );

        let mut damaged = backup.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        let mut wrong = chunk(3, &damaged, 0, damaged.len());
        if let Command::RestoreChunk(piece) = &mut wrong {
            piece.sha256 = sha256(&backup);
        }
        refused(target.apply(&entry(5, wrong)));
        assert!(target.events.is_empty() && target.restores.staging.is_none());
        // A whole that decodes to nothing valid is refused too.
        let garbage = vec![7u8; 64];
        refused(target.apply(&entry(6, chunk(4, &garbage, 0, garbage.len()))));
        assert!(target.events.is_empty() && target.restores.completed.is_none());
    }
}
