//! bincode encoding into memory, the counterpart of [`crate::decode`]: every place that
//! encodes entries, outcomes or peer payloads appends to a vector it sized itself.

use serde::Serialize;

/// Why a value did not encode (into memory only a serialiser's own refusal, such as a
/// sequence of unknown length).
pub type EncodeError = bincode::error::EncodeError;

/// bincode's writer for a `Vec`, appending without going through `std::io::Write`.
struct VecWriter<'a>(&'a mut Vec<u8>);

impl bincode::enc::write::Writer for VecWriter<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// Appends `value` to `bytes` in bincode's standard encoding. A vector with room for it
/// is written once, without reallocating (`bincode::serde::encode_to_vec` starts from an
/// empty one: a batch of a thousand holds grew through a dozen reallocations, each copying
/// what was written so far into fresh memory).
pub fn append<T: Serialize>(value: &T, bytes: &mut Vec<u8>) -> Result<(), EncodeError> {
    bincode::serde::encode_into_writer(value, VecWriter(bytes), bincode::config::standard())
}
