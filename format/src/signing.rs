//! Signing with a minisign secret key (made by `airbin keygen` or `minisign -G`), for
//! both programs: `airbin build --sign` signs the bundle's digest (embedded, see
//! `signature`) and the whole file (the detached `.minisig` that `minisign -V`
//! checks); an install with `--receipt-key` signs its receipt the same way.

use std::fs;
use std::io::{self, IsTerminal};
use std::path::Path;

use minisign::{PublicKey, SecretKey, SecretKeyBox};

use crate::error::{Error, IoContext, Result};
use crate::signature::{signed_message, trusted_comment, KeyId};

/// The environment variable that holds a key's password for unattended builds.
pub const PASSWORD_ENV: &str = "AIRBIN_KEY_PASSWORD";

pub fn key_id(bytes: &[u8]) -> KeyId {
    KeyId(bytes.try_into().expect("minisign key IDs are 8 bytes"))
}

/// The password from `AIRBIN_KEY_PASSWORD`; `None` on a terminal, where minisign asks.
pub fn password(what: &str) -> Result<Option<String>> {
    match std::env::var(PASSWORD_ENV) {
        Ok(password) => Ok(Some(password)),
        Err(_) if io::stdin().is_terminal() => Ok(None),
        Err(_) => Err(Error::usage(format!("{what} needs a password: set {PASSWORD_ENV}, or run on a terminal to be asked"))),
    }
}

pub struct SigningKey {
    pub id: KeyId,
    secret: SecretKey,
    public: PublicKey,
}

impl SigningKey {
    /// Reads a minisign secret key (made by `airbin keygen` or `minisign -G`).
    pub fn load(path: &Path) -> Result<SigningKey> {
        let bad = |why: String| Error::usage(format!("the signing key {} {why}", path.display()));
        let text = fs::read_to_string(path).map_err(|e| bad(format!("cannot be read ({e}); give the .key file `airbin keygen` wrote")))?;
        let boxed = SecretKeyBox::from_string(&text).map_err(|e| bad(format!("is not a minisign secret key ({e})")))?;
        let secret = match is_encrypted(&text) {
            // An unencrypted key the minisign crate cannot read (the minisign tool's `-W`
            // keys, for one): say so rather than ask for a password it does not have.
            Some(false) => boxed
                .into_unencrypted_secret_key()
                .map_err(|e| bad(format!("cannot be opened ({e}); make signing keys with `airbin keygen`")))?,
            _ => boxed
                .into_secret_key(password("signing")?)
                .map_err(|e| bad(format!("cannot be opened ({e}); check the password in {PASSWORD_ENV}")))?,
        };
        let public = PublicKey::from_secret_key(&secret).map_err(|e| bad(format!("has no usable public half ({e})")))?;
        Ok(SigningKey { id: key_id(public.keynum()), secret, public })
    }

    /// The public half, as a key a bundle is checked against.
    pub fn trusted_key(&self, path: &Path) -> Result<crate::signature::TrustedKey> {
        crate::signature::TrustedKey::parse(&self.public.to_base64(), path)
    }

    /// A minisign signature of `data` with `trusted` as its trusted comment.
    pub fn sign(&self, data: impl io::Read, trusted: &str) -> io::Result<String> {
        let untrusted = format!("signature from airbin key {}", self.id);
        minisign::sign(Some(&self.public), &self.secret, data, Some(trusted), Some(&untrusted))
            .map(|signature| signature.into_string())
            .map_err(io::Error::other)
    }

    /// The embedded signature: of the bundle's digest.
    pub fn sign_digest(&self, name: &str, version: &str, digest: &[u8; 32]) -> io::Result<String> {
        self.sign(&signed_message(digest)[..], &trusted_comment(name, version, digest))
    }

    /// The detached signature: of the whole file at `path`.
    pub fn sign_file(&self, path: &Path, file_name: &str, file_sha256: &str) -> Result<String> {
        let file = fs::File::open(path).ctx("reading", path)?;
        self.sign(io::BufReader::with_capacity(1 << 20, file), &format!("airbin bundle {file_name} sha256:{file_sha256}"))
            .ctx("signing", path)
    }
}

/// Whether a minisign secret key file is encrypted, from its key line: the KDF
/// algorithm after the signature algorithm is scrypt (`Sc`) or none (two zero bytes).
fn is_encrypted(text: &str) -> Option<bool> {
    use ct_codecs::{Base64, Decoder};
    let line = text.lines().nth(1)?;
    let bytes = Base64::decode_to_vec(line.trim(), None).ok()?;
    match bytes.get(2..4)? {
        b"Sc" => Some(true),
        [0, 0] => Some(false),
        _ => None,
    }
}

/// Checks a detached minisign signature (`signature`, the text of a `.minisig`) of
/// `data` under the public key in the file `key`. `Err` says which of the two is wrong:
/// usage for a key that is none, integrity for a signature that does not hold.
pub fn verify_detached(data: impl io::Read + io::Seek, signature: &[u8], key: &Path, what: &str) -> Result<KeyId> {
    let text_key = std::fs::read_to_string(key).ctx("reading", key)?;
    let public = minisign::PublicKeyBox::from_string(&text_key)
        .and_then(|b| b.into_public_key())
        .map_err(|e| Error::usage(format!("--key {} is not a minisign public key ({e})", key.display())))?;
    let boxed = minisign::SignatureBox::from_string(&String::from_utf8_lossy(signature))
        .map_err(|e| Error::integrity(format!("the signature of {what} is not a minisign signature ({e})")))?;
    minisign::verify(&public, &boxed, data, true, false, false)
        .map_err(|_| Error::integrity(format!("the signature of {what} does not hold under the key {}", key.display())))?;
    Ok(key_id(public.keynum()))
}
