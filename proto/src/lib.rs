//! Wire types of Holdfast: the protobuf messages and tonic services for node-to-node Raft
//! RPC ([`raft`]) and for the client-facing booking service ([`booking`]).
//!
//! The code is generated at build time from `proto/holdfast/*.proto` by `protox` and
//! `tonic-prost-build`; no `protoc` binary is needed.

/// Node-to-node Raft RPC: an envelope around bincode-encoded openraft messages.
pub mod raft {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("holdfast.raft.v1");
}

/// The client-facing booking service (mirrors the HTTP API of API.md).
pub mod booking {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("holdfast.booking.v1");
}

/// The backup file: what `GET /cluster/backup` answers and `holdfastctl backup FILE`
/// writes. A fixed header (magic, format version, the log index the copy includes, the
/// length and SHA-256 of the state bytes), then the state bytes: the state machine's
/// snapshot encoding, which `POST /cluster/restore` takes back in pieces.
pub mod backup {
    /// The bytes that open every backup file.
    pub const MAGIC: [u8; 8] = *b"HFBACKUP";
    /// The header format this build writes and reads.
    pub const VERSION: u32 = 1;
    /// The header's length in bytes.
    pub const HEADER_BYTES: usize = 8 + 4 + 8 + 8 + 32;

    /// What the header says about the state bytes after it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct BackupHeader {
        /// The last log entry the copy includes.
        pub index: u64,
        /// The state bytes' length.
        pub length: u64,
        /// The state bytes' SHA-256.
        pub sha256: [u8; 32],
    }

    impl BackupHeader {
        /// The header's bytes.
        pub fn encode(&self) -> [u8; HEADER_BYTES] {
            let mut bytes = [0u8; HEADER_BYTES];
            bytes[..8].copy_from_slice(&MAGIC);
            bytes[8..12].copy_from_slice(&VERSION.to_le_bytes());
            bytes[12..20].copy_from_slice(&self.index.to_le_bytes());
            bytes[20..28].copy_from_slice(&self.length.to_le_bytes());
            bytes[28..].copy_from_slice(&self.sha256);
            bytes
        }

        /// Reads the header at the start of `bytes`; why not, when it is not one.
        pub fn decode(bytes: &[u8]) -> Result<BackupHeader, String> {
            let Some(header) = bytes.get(..HEADER_BYTES) else {
                return Err(format!(
                    "too short for a backup ({} bytes, the header alone is {HEADER_BYTES})",
                    bytes.len()
                ));
            };
            if header[..8] != MAGIC {
                return Err("not a Holdfast backup (bad magic bytes)".into());
            }
            let word = |range: std::ops::Range<usize>| {
                u64::from_le_bytes(header[range].try_into().expect("eight bytes"))
            };
            let version = u32::from_le_bytes(header[8..12].try_into().expect("four bytes"));
            if version != VERSION {
                return Err(format!(
                    "backup format version {version} is not supported (this build reads {VERSION})"
                ));
            }
            Ok(BackupHeader {
                index: word(12..20),
                length: word(20..28),
                sha256: header[28..].try_into().expect("32 bytes"),
            })
        }
    }

    /// Lower-case hex of `bytes` (how checksums are shown and sent in query strings).
    pub fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// The 32 bytes of a 64-digit hex SHA-256.
    pub fn parse_sha256(text: &str) -> Option<[u8; 32]> {
        if text.len() != 64 || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (index, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * index..2 * index + 2], 16).ok()?;
        }
        Some(bytes)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_header_reads_back_and_anything_else_is_refused() {
            let header = BackupHeader {
                index: 42,
                length: 7,
                sha256: [9; 32],
            };
            assert_eq!(BackupHeader::decode(&header.encode()), Ok(header));
            assert!(BackupHeader::decode(&header.encode()[..HEADER_BYTES - 1]).is_err());
            let mut other = header.encode();
            other[8] = 2;
            assert!(BackupHeader::decode(&other)
                .unwrap_err()
                .contains("version 2"));
            assert!(BackupHeader::decode(&[0; HEADER_BYTES]).is_err());
            assert_eq!(parse_sha256(&hex(&[0xab; 32])), Some([0xab; 32]));
            assert_eq!(parse_sha256("zz"), None);
        }
    }
}

/// Version of the envelope's `payload` encoding in [`raft::RaftRequest`] and
/// [`raft::RaftReply`]. Bumped whenever the encoding of a payload changes (2: members
/// carry their incarnation).
pub const RAFT_WIRE_FORMAT_VERSION: u32 = 2;

/// Version of the encoding of commands and outcomes in [`booking::ProposeRequest`] and
/// [`booking::ProposeResponse`].
pub const PROPOSE_WIRE_FORMAT_VERSION: u32 = 1;
