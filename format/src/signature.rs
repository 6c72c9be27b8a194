//! Signed bundles (format 3): a minisign signature of the bundle's SHA-256, embedded in
//! a fixed 1 KiB block between the index and the trailer, and checked against the keys a
//! site pins. The builder makes the signature (`minisign`); the stub only verifies it
//! (`minisign-verify`: no dependencies, small enough for the static stub).
//!
//! The signed message is `airbin bundle sha256:<hex of every byte before the signature>`:
//! the payload is hashed once, for the digest the stub computes anyway, and the words in
//! front keep the signature from meaning anything to a tool that is not airbin.

use std::fmt;
use std::path::{Path, PathBuf};

use ct_codecs::{Base64, Decoder};

use super::digest::to_hex;
use crate::error::{Error, Result};

/// The signature block's size: a minisign signature (about 300 bytes of text) padded
/// with zeros, so that the builder knows the file's length before it signs.
pub const SIGNATURE_BLOCK: u64 = 1024;

/// Where a site pins the keys it trusts: every `*.pub` file in it.
pub const TRUSTED_KEYS_DIR: &str = "/etc/airbin/trusted-keys";

/// The message an embedded signature signs.
pub fn signed_message(file_sha256: &[u8; 32]) -> Vec<u8> {
    format!("airbin bundle sha256:{}", to_hex(file_sha256)).into_bytes()
}

/// The trusted comment an embedded signature carries (covered by its global signature).
pub fn trusted_comment(name: &str, version: &str, file_sha256: &[u8; 32]) -> String {
    format!("airbin bundle {name} {version} sha256:{}", to_hex(file_sha256))
}

/// A minisign key ID: 8 bytes, shown as minisign shows it (16 upper-case hex digits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

/// The key ID in a minisign base64 line (a public key or a signature): bytes 2..10 after
/// the two algorithm bytes.
fn key_id_of(base64_line: &str, expected_len: usize) -> Option<KeyId> {
    let raw = Base64::decode_to_vec(base64_line.trim(), None).ok()?;
    (raw.len() == expected_len).then(|| KeyId(raw[2..10].try_into().expect("8 bytes")))
}

/// A signature as embedded in a bundle.
pub struct Embedded {
    pub key_id: KeyId,
    signature: minisign_verify::Signature,
}

impl Embedded {
    /// Reads a signature block: minisign's text, then zeros to the end.
    pub fn parse(block: &[u8]) -> std::result::Result<Embedded, &'static str> {
        let end = block.iter().position(|&b| b == 0).unwrap_or(block.len());
        if block[end..].iter().any(|&b| b != 0) {
            return Err("its signature block has bytes after the signature");
        }
        let text = std::str::from_utf8(&block[..end]).map_err(|_| "its signature block is not text")?;
        let signature = minisign_verify::Signature::decode(text).map_err(|_| "its signature block is not a minisign signature")?;
        let key_id = text.lines().nth(1).and_then(|line| key_id_of(line, 74)).ok_or("its signature block is not a minisign signature")?;
        Ok(Embedded { key_id, signature })
    }
}

/// A public key a site trusts, and the file it came from.
pub struct TrustedKey {
    pub id: KeyId,
    pub file: PathBuf,
    key: minisign_verify::PublicKey,
}

impl TrustedKey {
    /// Reads a minisign public key file (`untrusted comment: ...` then the key), or a
    /// file holding the base64 key alone.
    pub fn load(file: &Path) -> Result<TrustedKey> {
        let text = std::fs::read_to_string(file).map_err(|e| {
            Error::usage(format!(
                "the trusted key {} cannot be read ({e}); give a public key made by `airbin keygen` or `minisign -G`",
                file.display()
            ))
        })?;
        TrustedKey::parse(&text, file)
    }

    /// A public key from its text (a `.pub` file's, or the base64 line alone); `file`
    /// names where it came from.
    pub fn parse(text: &str, file: &Path) -> Result<TrustedKey> {
        let bad = |why: String| {
            Error::usage(format!("the trusted key {} {why}; give a public key made by `airbin keygen` or `minisign -G`", file.display()))
        };
        let line = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with("untrusted comment:")).unwrap_or("");
        let key = minisign_verify::PublicKey::from_base64(line).map_err(|_| bad("is not a minisign public key".into()))?;
        let id = key_id_of(line, 42).ok_or_else(|| bad("is not a minisign public key".into()))?;
        Ok(TrustedKey { id, file: file.to_path_buf(), key })
    }
}

/// Where this host pins keys: `TRUSTED_KEYS_DIR`, or `AIRBIN_TRUSTED_KEYS_DIR` in its place.
pub fn pinned_keys_dir() -> PathBuf {
    std::env::var_os("AIRBIN_TRUSTED_KEYS_DIR").map_or_else(|| PathBuf::from(TRUSTED_KEYS_DIR), PathBuf::from)
}

/// The keys pinned by `--trusted-key FILE` and by every `*.pub` in `dir`.
pub fn trusted_keys(files: &[PathBuf], dir: &Path) -> Result<Vec<TrustedKey>> {
    let mut keys: Vec<TrustedKey> = files.iter().map(|f| TrustedKey::load(f)).collect::<Result<_>>()?;
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut pinned: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "pub")).collect();
        pinned.sort();
        for file in pinned {
            keys.push(TrustedKey::load(&file)?);
        }
    }
    Ok(keys)
}

/// Who signed a bundle, as far as this run knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    Unsigned,
    /// Signed, but no key is pinned here: the signature is not checked.
    Unchecked(KeyId),
    /// Signed by a pinned key, and the signature matches.
    Trusted {
        id: KeyId,
        file: PathBuf,
    },
}

impl fmt::Display for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signer::Unsigned => write!(f, "unsigned"),
            Signer::Unchecked(id) => write!(f, "signed by key {id} (not checked: no trusted key is pinned on this host)"),
            Signer::Trusted { id, file } => write!(f, "signed by key {id}, trusted ({})", file.display()),
        }
    }
}

fn key_list(keys: &[TrustedKey]) -> String {
    keys.iter().map(|k| format!("{} ({})", k.id, k.file.display())).collect::<Vec<_>>().join(", ")
}

/// Checks a bundle's embedded signature (if any) over `file_sha256` against the pinned
/// keys. With no key pinned any bundle passes, and says who signed it; with keys
/// pinned, only one signed by one of them.
pub fn check(bundle: &Path, embedded: Option<&Embedded>, file_sha256: &[u8; 32], keys: &[TrustedKey]) -> Result<Signer> {
    let refuse = |why: String| Error::integrity(format!("{} {why}", bundle.display()));
    let Some(embedded) = embedded else {
        if keys.is_empty() {
            return Ok(Signer::Unsigned);
        }
        return Err(refuse(format!(
            "is not signed, and this host trusts only bundles signed by {}: get a signed bundle from its maker, or remove the pinned keys",
            key_list(keys)
        )));
    };
    if keys.is_empty() {
        return Ok(Signer::Unchecked(embedded.key_id));
    }
    let Some(key) = keys.iter().find(|k| k.id == embedded.key_id) else {
        return Err(refuse(format!(
            "is signed by key {}, which this host does not trust (trusted: {}): get a bundle signed by a trusted key, or pin its maker's public key with --trusted-key",
            embedded.key_id,
            key_list(keys)
        )));
    };
    key.key.verify(&signed_message(file_sha256), &embedded.signature, false).map_err(|_| {
        refuse(format!(
            "carries a signature by key {} that does not match its content: it was altered after signing; copy the bundle again from its maker",
            key.id
        ))
    })?;
    Ok(Signer::Trusted { id: key.id, file: key.file.clone() })
}
