//! Bounded bincode decoding, for every place where bytes from elsewhere are decoded: peer
//! messages, Raft payloads and entries, snapshots.
//!
//! bincode writes a string or byte buffer as its length and then its bytes, and decodes
//! one by allocating the length first and then reading into it. Without a limit a forged
//! length of 2^40 in a 100-byte message is an allocation that aborts the process. Here
//! every decode runs with bincode's byte limit (`with_limit`), which bincode checks
//! against each length before it allocates, and the limit follows the input: it is the
//! smallest of [`LIMIT_TIERS_BYTES`] that is at least the input's length. A length
//! beyond it is refused (`LimitExceeded`) before anything is allocated; one within it can
//! cost at most one tier (16 times the input, and never less than 64 KiB) before the read
//! fails. Honest input never reaches the limit: the lengths bincode claims are those of
//! strings and byte buffers, whose bytes are all in the input.
//!
//! Sequences and maps decoded through serde preallocate at most serde's cautious 1 MiB,
//! so their lengths need no limit of their own.

use serde::de::DeserializeOwned;

/// The limits of a decode, by the length of the input: the first one that is at least
/// that long applies. Past the last one a decode is refused outright.
pub const LIMIT_TIERS_BYTES: [u64; 6] = [1 << 16, 1 << 20, 1 << 24, 1 << 28, 1 << 32, 1 << 36];

/// Why bytes did not decode.
pub type DecodeError = bincode::error::DecodeError;

macro_rules! by_tier {
    ($length:expr, $decode:ident, $($argument:expr),*) => {{
        let length: u64 = $length;
        if length <= LIMIT_TIERS_BYTES[0] {
            $decode::<_, { 1 << 16 }>($($argument),*)
        } else if length <= LIMIT_TIERS_BYTES[1] {
            $decode::<_, { 1 << 20 }>($($argument),*)
        } else if length <= LIMIT_TIERS_BYTES[2] {
            $decode::<_, { 1 << 24 }>($($argument),*)
        } else if length <= LIMIT_TIERS_BYTES[3] {
            $decode::<_, { 1 << 28 }>($($argument),*)
        } else if cfg!(target_pointer_width = "64") && length <= LIMIT_TIERS_BYTES[4] {
            $decode::<_, { large_limit(32) }>($($argument),*)
        } else if cfg!(target_pointer_width = "64") && length <= LIMIT_TIERS_BYTES[5] {
            $decode::<_, { large_limit(36) }>($($argument),*)
        } else {
            Err(DecodeError::LimitExceeded)
        }
    }};
}

/// `1 << shift` where it fits a `usize`, else `usize::MAX` (only reached on 32-bit
/// targets, where the tiers that use it are never chosen).
const fn large_limit(shift: u32) -> usize {
    if shift < usize::BITS {
        1 << shift
    } else {
        usize::MAX
    }
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
        let error = from_slice::<Vec<u8>>(&bytes).unwrap_err();
        assert!(matches!(error, DecodeError::LimitExceeded), "{error:?}");
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
    fn a_reader_is_not_read_past_its_length() {
        let bytes = bincode::serde::encode_to_vec("abcdef", bincode::config::standard()).unwrap();
        // Claims 3 bytes only: the string does not fit and the decode fails.
        assert!(from_std_read::<String, _>(bytes.as_slice(), 3).is_err());
    }
}
