//! Bounded bincode decoding, for every place where bytes from elsewhere are decoded: peer
//! messages, Raft payloads and entries, snapshots.
//!
//! bincode writes a string or byte buffer as its length and then its bytes, and decodes
//! one by allocating the length first and then reading into it. Without a limit a forged
//! length of 2^40 in a 100-byte message is an allocation that aborts the process. Here
//! every decode runs with bincode's byte limit (`with_limit`), which bincode checks
//! against each length before it allocates, and the limit follows the input's length.
//!
//! bincode's limit counts what a decode *claims*, not what it reads: a string claims its
//! length, but an integer claims its size in memory (a `u64` claims 8 bytes, a `u128` 16)
//! while its varint may take one byte of input. So honest input claims at most
//! [`CLAIMED_PER_INPUT_BYTE_MAX`] bytes per byte it takes, and the limit is the smallest
//! of [`LIMIT_TIERS_BYTES`] (steps of four) that is at least that many times the input's
//! length: between 16 and 64 times the input. A length beyond it is refused
//! (`LimitExceeded`) before anything is allocated; one within it can cost at most that
//! much before the read runs out of input. Past the last tier a decode is refused outright.
//!
//! Sequences and maps decoded through serde preallocate at most serde's cautious 1 MiB,
//! so their lengths need no limit of their own.

use serde::de::DeserializeOwned;

/// The most bytes an honest decode claims per byte of input: a `u128` of value 0 takes
/// one byte and claims 16.
pub const CLAIMED_PER_INPUT_BYTE_MAX: u64 = 16;

/// The limits a decode may run with, in steps of four from 64 KiB to 1 TiB.
pub const LIMIT_TIERS_BYTES: [u64; 13] = {
    let mut tiers = [0u64; 13];
    let mut index = 0;
    while index < tiers.len() {
        tiers[index] = 1 << (16 + 2 * index);
        index += 1;
    }
    tiers
};

/// Why bytes did not decode.
pub type DecodeError = bincode::error::DecodeError;

/// The tier a decode of `length` bytes runs with, if any is large enough.
fn tier_of(length: u64) -> Option<usize> {
    let claims = length.checked_mul(CLAIMED_PER_INPUT_BYTE_MAX)?;
    LIMIT_TIERS_BYTES.iter().position(|&tier| claims <= tier)
}

/// `LIMIT_TIERS_BYTES[index]` as a `usize` where it fits, else `usize::MAX` (only on 32-bit
/// targets, where such a tier also means more input than fits in memory).
const fn tier_limit(index: usize) -> usize {
    let shift = 16 + 2 * index as u32;
    if shift < usize::BITS {
        1 << shift
    } else {
        usize::MAX
    }
}

macro_rules! by_tier {
    ($length:expr, $decode:ident, $($argument:expr),*) => {{
        match tier_of($length) {
            Some(0) => $decode::<_, { tier_limit(0) }>($($argument),*),
            Some(1) => $decode::<_, { tier_limit(1) }>($($argument),*),
            Some(2) => $decode::<_, { tier_limit(2) }>($($argument),*),
            Some(3) => $decode::<_, { tier_limit(3) }>($($argument),*),
            Some(4) => $decode::<_, { tier_limit(4) }>($($argument),*),
            Some(5) => $decode::<_, { tier_limit(5) }>($($argument),*),
            Some(6) => $decode::<_, { tier_limit(6) }>($($argument),*),
            Some(7) => $decode::<_, { tier_limit(7) }>($($argument),*),
            Some(8) => $decode::<_, { tier_limit(8) }>($($argument),*),
            Some(9) => $decode::<_, { tier_limit(9) }>($($argument),*),
            Some(10) => $decode::<_, { tier_limit(10) }>($($argument),*),
            Some(11) => $decode::<_, { tier_limit(11) }>($($argument),*),
            Some(12) => $decode::<_, { tier_limit(12) }>($($argument),*),
            _ => Err(DecodeError::LimitExceeded),
        }
    }};
}

fn slice_with_limit<T: DeserializeOwned, const LIMIT: usize>(
    bytes: &[u8],
) -> Result<(T, usize), DecodeError> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard().with_limit::<LIMIT>())
}

fn read_with_limit<T: DeserializeOwned, const LIMIT: usize>(
    mut reader: impl std::io::Read,
) -> Result<T, DecodeError> {
    bincode::serde::decode_from_std_read(
        &mut reader,
        bincode::config::standard().with_limit::<LIMIT>(),
    )
}

/// Decodes a `T` (bincode's standard encoding) from the start of `bytes`, with a limit
/// that follows `bytes.len()`; answers the value and the bytes it used.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), DecodeError> {
    by_tier!(bytes.len() as u64, slice_with_limit, bytes)
}

/// Decodes a `T` from `reader`, which holds at most `length` more bytes (a file's size):
/// the limit follows `length`.
pub fn from_std_read<T: DeserializeOwned, R: std::io::Read>(
    reader: R,
    length: u64,
) -> Result<T, DecodeError> {
    let reader = std::io::Read::take(reader, length);
    by_tier!(length, read_with_limit, reader)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bincode's standard varint for a `u64` above 2^32: the marker 253, then 8 bytes.
    fn forged_length(length: u64) -> Vec<u8> {
        let mut bytes = vec![253];
        bytes.extend_from_slice(&length.to_le_bytes());
        bytes
    }

    #[test]
    fn a_length_prefix_beyond_the_input_is_refused_before_any_allocation() {
        // A string that claims a terabyte, in a 16-byte message: refused by the limit
        // (an allocation of that size would abort the test process).
        let mut bytes = forged_length(1 << 40);
        bytes.extend_from_slice(b"short!!");
        let error = from_slice::<String>(&bytes).unwrap_err();
        assert!(matches!(error, DecodeError::LimitExceeded), "{error:?}");
        // serde decodes a `Vec<u8>` as a sequence, one element at a time with a cautious
        // preallocation, so it runs out of input instead of reaching the limit: refused
        // all the same, and nothing large was allocated.
        let error = from_slice::<Vec<u8>>(&bytes).unwrap_err();
        assert!(
            matches!(
                error,
                DecodeError::LimitExceeded | DecodeError::UnexpectedEnd { .. }
            ),
            "{error:?}"
        );
        let error = from_std_read::<String, _>(bytes.as_slice(), bytes.len() as u64).unwrap_err();
        assert!(matches!(error, DecodeError::LimitExceeded), "{error:?}");
        // Nested inside a structure too.
        let mut nested = vec![2]; // a Vec of two strings
        nested.extend(forged_length(1 << 33));
        let error = from_slice::<Vec<String>>(&nested).unwrap_err();
        assert!(matches!(error, DecodeError::LimitExceeded), "{error:?}");
    }

    #[test]
    fn honest_values_decode_at_every_tier() {
        for size in [0usize, 10, 70_000, 2_000_000] {
            let value = vec!["x".repeat(size), "y".repeat(size / 2)];
            let bytes = bincode::serde::encode_to_vec(&value, bincode::config::standard()).unwrap();
            let (decoded, used): (Vec<String>, usize) = from_slice(&bytes).unwrap();
            assert_eq!(decoded, value);
            assert_eq!(used, bytes.len());
            let decoded: Vec<String> = from_std_read(bytes.as_slice(), bytes.len() as u64).unwrap();
            assert_eq!(decoded, value);
        }
    }

    #[test]
    fn small_integers_that_claim_more_than_they_take_decode() {
        // Each varint takes one byte and claims its size in memory: 8 for a `u64`, 16 for a
        // `u128` — just under a tier boundary of input, both still decode.
        for count in [100usize, 4_000, 50_000, 260_000] {
            let value = (vec![1u64; count], vec![0u128; count / 4]);
            let bytes = bincode::serde::encode_to_vec(&value, bincode::config::standard()).unwrap();
            let (decoded, _): ((Vec<u64>, Vec<u128>), usize) = from_slice(&bytes).unwrap();
            assert_eq!(decoded, value);
            let decoded: (Vec<u64>, Vec<u128>) =
                from_std_read(bytes.as_slice(), bytes.len() as u64).unwrap();
            assert_eq!(decoded, value);
        }
    }

    #[test]
    fn the_limit_follows_the_input() {
        assert_eq!(tier_of(0), Some(0));
        assert_eq!(tier_of(4096), Some(0));
        assert_eq!(tier_of(4097), Some(1));
        for length in [1u64, 1_000, 1 << 20, 5 << 30] {
            let limit = LIMIT_TIERS_BYTES[tier_of(length).unwrap()];
            assert!(limit >= length * CLAIMED_PER_INPUT_BYTE_MAX);
            assert!(limit <= (length * CLAIMED_PER_INPUT_BYTE_MAX * 4).max(1 << 16));
        }
        assert_eq!(tier_of(1 << 37), None);
        assert_eq!(tier_of(u64::MAX), None);
    }

    #[test]
    fn a_reader_is_not_read_past_its_length() {
        let bytes = bincode::serde::encode_to_vec("abcdef", bincode::config::standard()).unwrap();
        // Claims 3 bytes only: the string does not fit and the decode fails.
        assert!(from_std_read::<String, _>(bytes.as_slice(), 3).is_err());
    }
}
