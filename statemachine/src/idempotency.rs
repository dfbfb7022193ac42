//! The idempotency table: the outcome of every request id, remembered for a retention window
//! of log time. A key inside its window is never evicted; when the table is full of live keys
//! the state machine sheds new keyed writes instead (see [`crate::StateMachine::apply`]).

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::command::Command;
use crate::outcome::Outcome;

/// A stable 64-bit fingerprint of a command: xxh3 over its canonical bincode encoding, so
/// every replica and every binary version computes the same value.
pub(crate) fn fingerprint(command: &Command) -> u64 {
    let bytes = bincode::serde::encode_to_vec(command, bincode::config::standard())
        .expect("encoding a command into memory cannot fail");
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub request_id: String,
    pub fingerprint: u64,
    pub stored_at_ms: u64,
    pub outcome: Outcome,
}

pub(crate) enum Lookup<'a> {
    Absent,
    Replay(&'a Outcome),
    Conflict,
}

/// Records in log order, plus a lookup index into them.
///
/// `records` is a queue in insertion order, which is also `stored_at_ms` order because log
/// time never goes backwards; `index` maps a request id to its record's absolute position
/// (`first_position` is the absolute position of `records[0]`).
#[derive(Clone, Debug, Default)]
pub(crate) struct IdempotencyTable {
    records: VecDeque<Record>,
    first_position: u64,
    index: HashMap<String, u64>,
}

impl IdempotencyTable {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn contains(&self, request_id: &str) -> bool {
        self.index.contains_key(request_id)
    }

    pub fn lookup(&self, request_id: &str, fingerprint: u64) -> Lookup<'_> {
        let Some(&position) = self.index.get(request_id) else {
            return Lookup::Absent;
        };
        let record = &self.records[(position - self.first_position) as usize];
        if record.fingerprint == fingerprint {
            Lookup::Replay(&record.outcome)
        } else {
            Lookup::Conflict
        }
    }

    pub fn insert(&mut self, request_id: &str, fingerprint: u64, now_ms: u64, outcome: Outcome) {
        let position = self.first_position + self.records.len() as u64;
        self.index.insert(request_id.to_string(), position);
        self.records.push_back(Record {
            request_id: request_id.to_string(),
            fingerprint,
            stored_at_ms: now_ms,
            outcome,
        });
    }

    /// Forgets records whose retention window has passed.
    pub fn evict_expired(&mut self, now_ms: u64, retention_ms: u64) {
        while let Some(front) = self.records.front() {
            if front.stored_at_ms.saturating_add(retention_ms) > now_ms {
                return;
            }
            let record = self.records.pop_front().expect("front exists");
            self.index.remove(&record.request_id);
            self.first_position += 1;
        }
    }

    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.records.iter()
    }

    pub fn from_records(records: Vec<Record>) -> IdempotencyTable {
        let mut table = IdempotencyTable::default();
        for record in records {
            let position = table.records.len() as u64;
            table.index.insert(record.request_id.clone(), position);
            table.records.push_back(record);
        }
        table
    }
}
