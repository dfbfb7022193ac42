//! How record ids are spelled: hold, booking and refund ids are a keyed permutation of
//! their sequence numbers, so that one id tells nothing about the others.
//!
//! Records are numbered in order (1, 2, 3 …), which keeps the tables dense. Until a cluster
//! sets its id key (`SetIdKey`, proposed by the node once, before any record exists) ids
//! are the numbers themselves (`h_1`); with a key an id is the prefix and 16 hex digits of
//! a 64-bit block cipher over the number (`h_3f9a0c1d2e4b5a69`): a balanced Feistel network
//! of [`ROUNDS`] rounds whose round function is xxh3 keyed by the cluster's key. Guessing
//! another customer's hold id is then a guess among 2^64 values, not the next number. The
//! permutation is exact (every id decodes to the one number it came from), so lookups,
//! pages and cursors work on numbers as before. It is not a cryptographic cipher: it makes
//! ids unguessable to callers who never see the key, which never leaves the cluster; owner
//! checks (`403 FORBIDDEN`) stay the line of defence.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// Feistel rounds: four give a permutation no better distinguishable by its outputs than a
/// random one, for a pseudorandom round function.
const ROUNDS: u64 = 4;

/// The cluster's id key; `None` spells ids as their numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IdKey {
    key: Option<[u64; 2]>,
}

impl IdKey {
    pub(crate) fn new(key: [u64; 2]) -> IdKey {
        IdKey { key: Some(key) }
    }

    pub(crate) fn is_set(&self) -> bool {
        self.key.is_some()
    }

    /// `prefix` and the spelling of `sequence`, inline (no allocation: every hold answer
    /// builds one).
    pub(crate) fn compact(&self, prefix: &'static str, sequence: u64) -> CompactString {
        let mut id = CompactString::const_new(prefix);
        match self.key {
            None => id.push_str(itoa::Buffer::new().format(sequence)),
            Some(key) => {
                let block = permute(key, sequence);
                for shift in (0..16).rev() {
                    let digit = ((block >> (shift * 4)) & 0xf) as u8;
                    id.push(char::from(if digit < 10 {
                        b'0' + digit
                    } else {
                        b'a' + digit - 10
                    }));
                }
            }
        }
        id
    }

    /// [`IdKey::compact`] as a `String`.
    pub(crate) fn format(&self, prefix: &'static str, sequence: u64) -> String {
        self.compact(prefix, sequence).into_string()
    }

    /// The number `id` spells, if it is an id of this kind: exactly one spelling per
    /// number (no leading zeros, no upper case), so two strings never name one record.
    pub(crate) fn parse(&self, prefix: &str, id: &str) -> Option<u64> {
        let digits = id.strip_prefix(prefix)?;
        match self.key {
            None => {
                if digits.is_empty()
                    || digits.starts_with('0')
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                {
                    return None;
                }
                digits.parse().ok()
            }
            Some(key) => {
                if digits.len() != 16
                    || !digits
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                {
                    return None;
                }
                let block = u64::from_str_radix(digits, 16).ok()?;
                Some(unpermute(key, block))
            }
        }
    }
}

impl crate::StateMachine {
    /// Whether this state still spells ids as their numbers and has handed none out: the
    /// node proposes a random key for it.
    pub fn wants_id_key(&self) -> bool {
        !self.ids.is_set() && self.last_hold == 0 && self.last_booking == 0 && self.last_refund == 0
    }

    pub(crate) fn set_id_key(&mut self, key: [u64; 2]) -> Result<crate::Outcome, crate::Rejection> {
        if !self.wants_id_key() {
            return Err(crate::Rejection::invalid(
                "key",
                "ids are keyed once, before any hold, booking or refund exists",
            ));
        }
        self.ids = IdKey::new(key);
        Ok(crate::Outcome::IdKeySet)
    }
}

fn round(key: [u64; 2], round: u64, half: u32) -> u32 {
    let seed = key[(round % 2) as usize] ^ round.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    xxhash_rust::xxh3::xxh3_64_with_seed(&half.to_le_bytes(), seed) as u32
}

fn permute(key: [u64; 2], value: u64) -> u64 {
    let (mut left, mut right) = ((value >> 32) as u32, value as u32);
    for r in 0..ROUNDS {
        (left, right) = (right, left ^ round(key, r, right));
    }
    (u64::from(left) << 32) | u64::from(right)
}

fn unpermute(key: [u64; 2], block: u64) -> u64 {
    let (mut left, mut right) = ((block >> 32) as u32, block as u32);
    for r in (0..ROUNDS).rev() {
        (left, right) = (right ^ round(key, r, left), left);
    }
    (u64::from(left) << 32) | u64::from(right)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_ids_are_a_permutation_with_one_spelling_each() {
        let ids = IdKey::new([0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210]);
        let mut seen = std::collections::HashSet::new();
        for sequence in (1..5_000).chain([u64::MAX, u64::MAX - 1, 1 << 40]) {
            let id = ids.format("h_", sequence);
            assert_eq!(id.len(), 18, "{id}");
            assert_eq!(ids.parse("h_", &id), Some(sequence), "{id}");
            assert!(seen.insert(id.clone()), "{id} twice");
        }
        // Neighbours share nothing visible.
        let (one, two) = (ids.format("h_", 1), ids.format("h_", 2));
        let common = one
            .chars()
            .zip(two.chars())
            .skip(2)
            .filter(|(a, b)| a == b)
            .count();
        assert!(common < 8, "{one} {two}");
        // Other spellings are refused: the sequential one, upper case, wrong lengths.
        for bad in [
            "h_1",
            "h_",
            "b_3f9a0c1d2e4b5a69",
            "h_3F9A0C1D2E4B5A69",
            "h_3f9a0c1d2e4b5a6",
            "h_3f9a0c1d2e4b5a690",
        ] {
            assert_eq!(ids.parse("h_", bad), None, "{bad}");
        }
        // Another key spells the same number otherwise.
        let other = IdKey::new([1, 2]);
        assert_ne!(other.format("h_", 1), one);
    }

    #[test]
    fn without_a_key_ids_are_their_numbers() {
        let ids = IdKey::default();
        assert_eq!(ids.format("b_", 42), "b_42");
        assert_eq!(ids.parse("b_", "b_42"), Some(42));
        for bad in ["b_042", "b_", "b_-1", "b_+1", "h_42"] {
            assert_eq!(ids.parse("b_", bad), None, "{bad}");
        }
    }
}
