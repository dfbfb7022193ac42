//! The idempotency table: the outcome of every request id, remembered for a retention window
//! of log time. A key inside its window is never evicted; when the table is full of live keys
//! the state machine sheds new keyed writes instead (see [`crate::StateMachine::apply`]).
//!
//! The table is on the hot path of every keyed write and holds up to
//! [`crate::Config::idempotency_entries_max`] records, so each record is compact: the request
//! id stored once, inline when short (the lookup index, a [`ProbeTable`], holds positions,
//! not a second copy of the id), and the outcome kept by reference to the hold it made
//! ([`Kept::Held`]) or in its bincode encoding, decoded only when a retry replays it.

use compact_str::CompactString;
use hashbrown::DefaultHashBuilder;
use serde::{Deserialize, Serialize};

use crate::command::Command;
use crate::idmap::IdMap;
use crate::outcome::Outcome;
use crate::probetable::{self, ProbeTable};

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
}

/// Encodes `value` into `scratch` (cleared first) in bincode's standard encoding.
fn encode_into<T: Serialize>(value: &T, scratch: &mut Vec<u8>) {
    scratch.clear();
    crate::encode::append(value, scratch).expect("encoding into memory cannot fail");
}

/// A stable 64-bit fingerprint of a command: xxh3 over its canonical bincode encoding, so
/// every replica and every binary version computes the same value. `scratch` is a buffer
/// reused between calls.
pub(crate) fn fingerprint(command: &Command, scratch: &mut Vec<u8>) -> u64 {
    match command {
        Command::Hold(request) => {
            scratch.clear();
            crate::fastcode::hold_command(request, scratch);
        }
        command => encode_into(command, scratch),
    }
    xxhash_rust::xxh3::xxh3_64(scratch)
}

/// Encodes `outcome` into `scratch` (cleared first) in bincode's standard encoding.
fn encode_outcome(outcome: &Outcome, scratch: &mut Vec<u8>) {
    match outcome {
        Outcome::Held(view) => {
            scratch.clear();
            crate::fastcode::held(view, scratch);
        }
        outcome => encode_into(outcome, scratch),
    }
}

/// How a record keeps its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kept {
    /// The outcome in bincode's standard encoding (deterministic, so equal outcomes give
    /// equal bytes).
    Encoded(Box<[u8]>),
    /// A hold that succeeded, by reference: its answer is the hold's view as it was made,
    /// which differs from the hold's view now only in what can change after it — the status
    /// (still active), the expiry (before any extension) and the booking (none yet). Kept
    /// only when ended holds are remembered at least as long as request ids
    /// ([`crate::Config::remembers_holds_by_reference`]), so the hold outlives the record.
    Held { hold: u64, expires_at_ms: u64 },
}

/// One remembered answer. The outcome of a successful hold, the bulk of all keyed writes,
/// takes no allocation (see [`Kept::Held`]); any other is kept in its bincode encoding and
/// decoded only when a retry replays it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    request_id: CompactString,
    kept: Kept,
    pub fingerprint: u64,
    pub stored_at_ms: u64,
}

/// Rebuilds the answer of a hold kept by reference: `(hold id, expiry as made)` to the
/// `Outcome::Held` the hold got.
pub(crate) type RebuildHeld<'a> = &'a dyn Fn(u64, u64) -> Outcome;

impl Record {
    fn new(request_id: &str, fingerprint: u64, stored_at_ms: u64, kept: Kept) -> Record {
        Record {
            request_id: CompactString::from(request_id),
            kept,
            fingerprint,
            stored_at_ms,
        }
    }

    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The remembered outcome.
    pub fn outcome(&self, rebuild: RebuildHeld<'_>) -> Outcome {
        match &self.kept {
            Kept::Encoded(bytes) => {
                bincode::serde::decode_from_slice(bytes, bincode_config())
                    .expect("the table encoded this outcome itself")
                    .0
            }
            Kept::Held {
                hold,
                expires_at_ms,
            } => rebuild(*hold, *expires_at_ms),
        }
    }

    /// How the outcome is kept.
    pub fn kept(&self) -> &Kept {
        &self.kept
    }
}

/// A record as snapshots hold it: the outcome as a value, so the snapshot format does not
/// depend on how the table keeps it in memory. (Snapshots are written in pieces, see
/// [`crate::StateMachine::write_snapshot`]; tests compare them with this.)
#[cfg(test)]
#[derive(Serialize)]
pub(crate) struct RecordRef<'a> {
    pub request_id: &'a str,
    pub fingerprint: u64,
    pub stored_at_ms: u64,
    pub outcome: Outcome,
}

#[derive(Deserialize)]
pub(crate) struct RecordOwned {
    pub request_id: String,
    pub fingerprint: u64,
    pub stored_at_ms: u64,
    pub outcome: Outcome,
}

impl RecordOwned {
    /// The record, its outcome kept by reference when `by_reference` gives the hold it
    /// names and that hold's answer is the outcome, else encoded.
    pub fn into_record(self, by_reference: impl FnOnce(&Outcome) -> Option<(u64, u64)>) -> Record {
        let kept = match by_reference(&self.outcome) {
            Some((hold, expires_at_ms)) => Kept::Held {
                hold,
                expires_at_ms,
            },
            None => {
                let mut bytes = Vec::new();
                encode_outcome(&self.outcome, &mut bytes);
                Kept::Encoded(bytes.into_boxed_slice())
            }
        };
        Record::new(&self.request_id, self.fingerprint, self.stored_at_ms, kept)
    }
}

/// Where a request id that is not in the table goes (its tag, computed once).
pub(crate) struct Vacancy {
    tag: u32,
}

pub(crate) enum Lookup<'a> {
    /// Not in the table: [`IdempotencyTable::insert`] it with this vacancy.
    Absent(Vacancy),
    /// The same command was applied under this id: replay [`Record::outcome`].
    Replay(&'a Record),
    Conflict,
}

/// Records in log order, plus a lookup index into them.
///
/// `records` holds them by absolute position, a queue in insertion order, which is also
/// `stored_at_ms` order because log time never goes backwards; `first_position` is the
/// position of the oldest. It is an [`IdMap`] rather than a `VecDeque`: growing takes one
/// page-sized chunk at a time, where a queue doubling at a million records copied all of
/// them into fresh memory (7 % of a leader's CPU under a stream of holds, mostly the
/// kernel zeroing the new pages).
/// The index maps a request id's tag to its record's position modulo 2^32 (the live
/// records span fewer than [`RECORDS_MAX`] positions, so it names one of them): 8 bytes a
/// key, one cache line a lookup, prefetchable ([`ProbeTable`]).
#[derive(Clone, Default)]
pub(crate) struct IdempotencyTable {
    records: IdMap<Record>,
    first_position: u64,
    index: ProbeTable,
    hasher: DefaultHashBuilder,
    /// Reused encoding buffer (fingerprints and outcomes); not state.
    scratch: Vec<u8>,
}

/// Records the table holds at most: the index names positions modulo 2^32.
pub(crate) const RECORDS_MAX: usize = u32::MAX as usize;

impl std::fmt::Debug for IdempotencyTable {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("IdempotencyTable")
            .field("records", &self.records().collect::<Vec<_>>())
            .field("first_position", &self.first_position)
            .finish_non_exhaustive()
    }
}

impl IdempotencyTable {
    /// The records, sharing their chunks (see `cowvec.rs`), without the index: what a
    /// snapshot encodes.
    pub fn frozen(&self) -> IdempotencyTable {
        IdempotencyTable {
            records: self.records.clone(),
            first_position: self.first_position,
            index: ProbeTable::default(),
            hasher: self.hasher,
            scratch: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    fn tag(&self, request_id: &str) -> u32 {
        probetable::tag(&self.hasher, request_id)
    }

    /// The record at the position the index names `position` (modulo 2^32).
    fn record_at(&self, position: u32) -> &Record {
        let offset = position.wrapping_sub(self.first_position as u32);
        &self.records[&(self.first_position + u64::from(offset))]
    }

    /// The record of `request_id`, and the id's tag.
    fn find(&self, request_id: &str) -> (Option<&Record>, u32) {
        let tag = self.tag(request_id);
        let record = self
            .index
            .find(tag, |position| {
                *self.record_at(position).request_id == *request_id
            })
            .map(|position| self.record_at(position));
        (record, tag)
    }

    pub fn contains(&self, request_id: &str) -> bool {
        self.find(request_id).0.is_some()
    }

    /// When the answer to `request_id` was stored (cluster time, ms), if it is remembered.
    pub fn stored_at_ms(&self, request_id: &str) -> Option<u64> {
        self.find(request_id).0.map(|record| record.stored_at_ms)
    }

    /// Asks the processor to fetch the index line a lookup of `request_id` reads.
    pub fn prefetch(&self, request_id: &str) {
        self.index.prefetch(self.tag(request_id));
    }

    /// The fingerprint of `command` (see [`fingerprint`]), computed in the table's buffer.
    pub fn fingerprint(&mut self, command: &Command) -> u64 {
        fingerprint(command, &mut self.scratch)
    }

    pub fn lookup(&self, request_id: &str, fingerprint: u64) -> Lookup<'_> {
        match self.find(request_id) {
            (None, tag) => Lookup::Absent(Vacancy { tag }),
            (Some(record), _) if record.fingerprint == fingerprint => Lookup::Replay(record),
            (Some(_), _) => Lookup::Conflict,
        }
    }

    /// Remembers `outcome` for a request id that [`IdempotencyTable::lookup`] found absent,
    /// before anything else was inserted. `held` is the hold id and expiry of a successful
    /// hold to keep by reference, or `None` to keep the outcome encoded.
    pub fn insert(
        &mut self,
        vacancy: Vacancy,
        request_id: &str,
        fingerprint: u64,
        now_ms: u64,
        outcome: &Outcome,
        held: Option<(u64, u64)>,
    ) {
        let kept = match held {
            Some((hold, expires_at_ms)) => Kept::Held {
                hold,
                expires_at_ms,
            },
            None => {
                encode_outcome(outcome, &mut self.scratch);
                Kept::Encoded(self.scratch.as_slice().into())
            }
        };
        self.push(
            Record::new(request_id, fingerprint, now_ms, kept),
            vacancy.tag,
        );
    }

    fn push(&mut self, record: Record, tag: u32) {
        debug_assert_eq!(tag, self.tag(&record.request_id));
        assert!(
            self.records.len() < RECORDS_MAX,
            "the state machine keeps the table below RECORDS_MAX"
        );
        let position = self.first_position + self.records.len() as u64;
        self.records.insert(position, record);
        self.index.insert(tag, position as u32);
        debug_assert_eq!(self.index.len(), self.records.len());
    }

    /// Forgets records whose retention window has passed.
    pub fn evict_expired(&mut self, now_ms: u64, retention_ms: u64) {
        while let Some(front) = self.records.get(&self.first_position) {
            if front.stored_at_ms.saturating_add(retention_ms) > now_ms {
                return;
            }
            let tag = self.tag(&front.request_id);
            let position = self.first_position as u32;
            let removed = self.index.remove(tag, |other| other == position);
            debug_assert!(removed.is_some(), "every record is indexed");
            self.records.remove(&self.first_position);
            self.first_position += 1;
        }
    }

    /// The records, oldest first; the iterator knows its length (serde sequences need it).
    pub fn records(&self) -> impl ExactSizeIterator<Item = &Record> {
        self.records.values()
    }

    pub fn from_records(records: Vec<Record>) -> IdempotencyTable {
        let mut table = IdempotencyTable::default();
        table.index.reserve(records.len());
        for record in records {
            let tag = table.tag(&record.request_id);
            table.push(record, tag);
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::HoldRequest;
    use crate::outcome::Rejection;

    fn hold(customer: &str) -> Command {
        Command::Hold(HoldRequest {
            event_id: "E".into(),
            customer_id: customer.into(),
            seats: vec!["A-1".into()],
            pools: vec![],
            best_available: None,
            ttl_seconds: Some(60),
        })
    }

    #[test]
    fn the_fingerprint_is_xxh3_of_the_standard_encoding() {
        let command = hold("c");
        let bytes = bincode::serde::encode_to_vec(&command, bincode_config()).unwrap();
        let mut scratch = vec![0xff; 3];
        assert_eq!(
            fingerprint(&command, &mut scratch),
            xxhash_rust::xxh3::xxh3_64(&bytes)
        );
        assert_ne!(
            fingerprint(&hold("d"), &mut scratch),
            fingerprint(&command, &mut scratch)
        );
    }

    fn remember(
        table: &mut IdempotencyTable,
        request_id: &str,
        fingerprint: u64,
        now_ms: u64,
        outcome: &Outcome,
    ) {
        let Lookup::Absent(vacancy) = table.lookup(request_id, fingerprint) else {
            panic!("{request_id} is new");
        };
        table.insert(vacancy, request_id, fingerprint, now_ms, outcome, None);
    }

    fn no_holds(_: u64, _: u64) -> Outcome {
        unreachable!("no hold is kept by reference here")
    }

    #[test]
    fn records_replay_their_outcome_and_survive_eviction_of_older_ones() {
        let mut table = IdempotencyTable::default();
        let outcome = |n: u64| Outcome::Rejected(Rejection::IdempotencyTableFull { entries: n });
        for n in 0..100u64 {
            remember(&mut table, &format!("k{n}"), n, n * 10, &outcome(n));
        }
        table.evict_expired(500, 100); // forgets stored_at <= 400, i.e. k0..=k40
        assert_eq!(table.len(), 59);
        assert!(!table.contains("k40"));
        for n in 41..100u64 {
            let key = format!("k{n}");
            assert!(
                matches!(table.lookup(&key, n), Lookup::Replay(found) if found.outcome(&no_holds) == outcome(n))
            );
            assert!(matches!(table.lookup(&key, n + 1), Lookup::Conflict));
        }
        let restored = IdempotencyTable::from_records(table.records().cloned().collect());
        assert_eq!(restored.len(), 59);
        assert!(
            matches!(restored.lookup("k99", 99), Lookup::Replay(found) if found.outcome(&no_holds) == outcome(99))
        );
        assert!(matches!(restored.lookup("k40", 40), Lookup::Absent(_)));
    }

    #[test]
    fn a_record_restores_from_its_outcome_value_either_way_it_is_kept() {
        let mut table = IdempotencyTable::default();
        let outcome = Outcome::NodeRetired { node_id: 7 };
        remember(&mut table, "k", 1, 2, &outcome);
        let record = table.records().next().unwrap();
        assert_eq!(
            record.kept(),
            &Kept::Encoded(
                bincode::serde::encode_to_vec(&outcome, bincode_config())
                    .unwrap()
                    .into()
            )
        );
        let owned = RecordOwned {
            request_id: "k".into(),
            fingerprint: 1,
            stored_at_ms: 2,
            outcome: outcome.clone(),
        };
        assert_eq!(&owned.into_record(|_| None), record);

        // Kept by reference: the outcome is whatever the hold rebuilds to.
        let rebuilt = Outcome::NodeRetired { node_id: 9 };
        let rebuild = |hold: u64, expires_at_ms: u64| {
            assert_eq!((hold, expires_at_ms), (5, 600));
            rebuilt.clone()
        };
        let Lookup::Absent(vacancy) = table.lookup("h", 3) else {
            panic!("h is new");
        };
        table.insert(vacancy, "h", 3, 4, &rebuilt, Some((5, 600)));
        let Lookup::Replay(found) = table.lookup("h", 3) else {
            panic!("h is remembered");
        };
        assert_eq!(found.outcome(&rebuild), rebuilt);
        assert_eq!(
            found.kept(),
            &Kept::Held {
                hold: 5,
                expires_at_ms: 600
            }
        );
        let owned = RecordOwned {
            request_id: "h".into(),
            fingerprint: 3,
            stored_at_ms: 4,
            outcome: rebuilt.clone(),
        };
        assert_eq!(&owned.into_record(|_| Some((5, 600))), found);
    }
}
