//! The fixed-size trailer at the very end of a bundle.
//!
//! Its last 48 bytes (builder version, trailer length, format version, magic) keep their
//! place in every format version, so a stub can always say which builder made a bundle
//! whose format it does not know.

use super::{FORMAT_VERSION, OLDEST_FORMAT};

pub const TRAILER_LEN: u64 = 160;
pub const MAGIC: [u8; 8] = *b"AIRBIN\r\n";
const BUILDER_VERSION_LEN: usize = 32;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trailer {
    /// SHA-256 of every byte before the signature block (or the trailer, unsigned):
    /// launcher, stub, members, index.
    pub file_sha256: [u8; 32],
    /// SHA-256 of the index alone, so `info` and `list` can trust it without hashing
    /// the whole payload.
    pub index_sha256: [u8; 32],
    pub index_offset: u64,
    pub index_len: u64,
    /// Length of the whole file, trailer included.
    pub total_len: u64,
    pub stub_offset: u64,
    pub stub_len: u64,
    /// Bytes of the signature block between the index and the trailer: 0 (unsigned,
    /// and always in formats 1 and 2) or `SIGNATURE_BLOCK`.
    pub signature_len: u32,
    pub builder_version: String,
    pub format_version: u32,
}

/// What the stable tail of a trailer says, readable whatever the format version.
#[derive(Debug, PartialEq, Eq)]
pub struct TrailerTail {
    pub format_version: u32,
    pub trailer_len: u32,
    pub builder_version: String,
}

impl Trailer {
    pub fn encode(&self) -> [u8; TRAILER_LEN as usize] {
        let mut out = [0u8; TRAILER_LEN as usize];
        out[0..32].copy_from_slice(&self.file_sha256);
        out[32..64].copy_from_slice(&self.index_sha256);
        out[64..72].copy_from_slice(&self.index_offset.to_le_bytes());
        out[72..80].copy_from_slice(&self.index_len.to_le_bytes());
        out[80..88].copy_from_slice(&self.total_len.to_le_bytes());
        out[88..96].copy_from_slice(&self.stub_offset.to_le_bytes());
        out[96..104].copy_from_slice(&self.stub_len.to_le_bytes());
        out[104..108].copy_from_slice(&self.signature_len.to_le_bytes());
        // 108..112 reserved, zero.
        let version = self.builder_version.as_bytes();
        let n = version.len().min(BUILDER_VERSION_LEN);
        out[112..112 + n].copy_from_slice(&version[..n]);
        out[144..148].copy_from_slice(&(TRAILER_LEN as u32).to_le_bytes());
        out[148..152].copy_from_slice(&self.format_version.to_le_bytes());
        out[152..160].copy_from_slice(&MAGIC);
        out
    }

    /// Reads the stable tail from the last 48 bytes of a file; `None` when the magic is
    /// not there (not a bundle, or truncated, or bytes appended).
    pub fn decode_tail(last48: &[u8; 48]) -> Option<TrailerTail> {
        if last48[40..48] != MAGIC {
            return None;
        }
        let version_bytes = &last48[0..32];
        let end = version_bytes.iter().position(|&b| b == 0).unwrap_or(32);
        Some(TrailerTail {
            builder_version: String::from_utf8_lossy(&version_bytes[..end]).into_owned(),
            trailer_len: u32::from_le_bytes(last48[32..36].try_into().unwrap()),
            format_version: u32::from_le_bytes(last48[36..40].try_into().unwrap()),
        })
    }

    /// Decodes a trailer of a format this runtime reads.
    pub fn decode(raw: &[u8; TRAILER_LEN as usize]) -> Option<Trailer> {
        let tail = Trailer::decode_tail(raw[112..160].try_into().unwrap())?;
        if !(OLDEST_FORMAT..=FORMAT_VERSION).contains(&tail.format_version) || tail.trailer_len as u64 != TRAILER_LEN {
            return None;
        }
        let u64_at = |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().unwrap());
        Some(Trailer {
            file_sha256: raw[0..32].try_into().unwrap(),
            index_sha256: raw[32..64].try_into().unwrap(),
            index_offset: u64_at(64),
            index_len: u64_at(72),
            total_len: u64_at(80),
            stub_offset: u64_at(88),
            stub_len: u64_at(96),
            signature_len: u32::from_le_bytes(raw[104..108].try_into().unwrap()),
            builder_version: tail.builder_version,
            format_version: tail.format_version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let trailer = Trailer {
            file_sha256: [7; 32],
            index_sha256: [9; 32],
            index_offset: 1 << 33,
            index_len: 4242,
            total_len: (1 << 33) + 4242 + TRAILER_LEN,
            stub_offset: 4096,
            stub_len: 1_100_000,
            signature_len: 1024,
            builder_version: "0.1.0".into(),
            format_version: FORMAT_VERSION,
        };
        let raw = trailer.encode();
        assert_eq!(Trailer::decode(&raw), Some(trailer));
    }

    #[test]
    fn unknown_version_still_names_its_builder() {
        let mut raw = Trailer {
            file_sha256: [0; 32],
            index_sha256: [0; 32],
            index_offset: 0,
            index_len: 0,
            total_len: 0,
            stub_offset: 0,
            stub_len: 0,
            signature_len: 0,
            builder_version: "9.9.9".into(),
            format_version: FORMAT_VERSION,
        }
        .encode();
        raw[148..152].copy_from_slice(&77u32.to_le_bytes());
        assert_eq!(Trailer::decode(&raw), None);
        let tail = Trailer::decode_tail(raw[112..160].try_into().unwrap()).unwrap();
        assert_eq!(tail.format_version, 77);
        assert_eq!(tail.builder_version, "9.9.9");
    }

    #[test]
    fn a_damaged_magic_is_no_trailer() {
        let mut raw = [0u8; 48];
        raw[40..48].copy_from_slice(b"AIRBIN\r\r");
        assert_eq!(Trailer::decode_tail(&raw), None);
    }
}
