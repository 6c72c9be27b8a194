//! Keys and signatures in minisign's format: `airbin keygen` makes a pair, `airbin
//! build --sign` signs the bundle's digest (embedded, see `format::signature`) and the
//! whole file (the detached `.minisig` that `minisign -V` checks).

use std::fs;
use std::io::{self, IsTerminal};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use minisign::{KeyPair, PublicKey, SecretKey, SecretKeyBox};

use airbin_format::error::{Error, IoContext, Result};
use airbin_format::signature::{signed_message, trusted_comment, KeyId};

/// The environment variable that holds a key's password for unattended builds.
pub(crate) const PASSWORD_ENV: &str = "AIRBIN_KEY_PASSWORD";

fn key_id(bytes: &[u8]) -> KeyId {
    KeyId(bytes.try_into().expect("minisign key IDs are 8 bytes"))
}

/// The password from `AIRBIN_KEY_PASSWORD`; `None` on a terminal, where minisign asks.
fn password(what: &str) -> Result<Option<String>> {
    match std::env::var(PASSWORD_ENV) {
        Ok(password) => Ok(Some(password)),
        Err(_) if io::stdin().is_terminal() => Ok(None),
        Err(_) => Err(Error::usage(format!("{what} needs a password: set {PASSWORD_ENV}, or run on a terminal to be asked"))),
    }
}

pub(crate) struct SigningKey {
    pub(crate) id: KeyId,
    secret: SecretKey,
    public: PublicKey,
}

impl SigningKey {
    /// Reads a minisign secret key (made by `airbin keygen` or `minisign -G`).
    pub(crate) fn load(path: &Path) -> Result<SigningKey> {
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
    pub(crate) fn trusted_key(&self, path: &Path) -> Result<airbin_format::signature::TrustedKey> {
        airbin_format::signature::TrustedKey::parse(&self.public.to_base64(), path)
    }

    fn sign(&self, data: impl io::Read, trusted: &str) -> io::Result<String> {
        let untrusted = format!("signature from airbin key {}", self.id);
        minisign::sign(Some(&self.public), &self.secret, data, Some(trusted), Some(&untrusted))
            .map(|signature| signature.into_string())
            .map_err(io::Error::other)
    }

    /// The embedded signature: of the bundle's digest.
    pub(crate) fn sign_digest(&self, name: &str, version: &str, digest: &[u8; 32]) -> io::Result<String> {
        self.sign(&signed_message(digest)[..], &trusted_comment(name, version, digest))
    }

    /// The detached signature: of the whole file at `path`.
    pub(crate) fn sign_file(&self, path: &Path, file_name: &str, file_sha256: &str) -> Result<String> {
        let file = fs::File::open(path).ctx("reading", path)?;
        self.sign(io::BufReader::with_capacity(1 << 20, file), &format!("airbin bundle {file_name} sha256:{file_sha256}"))
            .ctx("signing", path)
    }
}

/// What `keygen` wrote.
pub(crate) struct KeyFiles {
    pub(crate) secret: PathBuf,
    pub(crate) public: PathBuf,
    pub(crate) id: KeyId,
}

/// Makes a key pair: `<out>.key` (0600, encrypted unless `no_password`) and `<out>.pub`.
pub(crate) fn keygen(out: &Path, no_password: bool, force: bool) -> Result<KeyFiles> {
    let secret_path = out.with_extension("key");
    let public_path = out.with_extension("pub");
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(Error::usage(format!(
            "-o {}: the directory {} does not exist; create it, or give -o in one that does",
            out.display(),
            dir.display()
        )));
    }
    for path in [&secret_path, &public_path] {
        if !force && fs::symlink_metadata(path).is_ok() {
            return Err(Error::usage(format!("{} exists; keep it, or give --force to replace it", path.display())));
        }
    }
    let pair = match no_password {
        true => KeyPair::generate_unencrypted_keypair(),
        false => KeyPair::generate_encrypted_keypair(password("a new key")?),
    }
    .map_err(|e| Error::internal(format!("making a key pair: {e}")))?;
    let id = key_id(pair.pk.keynum());
    let comment = format!("airbin secret key {id}");
    let secret_text = pair.sk.to_box(Some(&comment)).map_err(|e| Error::internal(format!("encoding the key: {e}")))?.to_string();
    let public_text = pair.pk.to_box().map_err(|e| Error::internal(format!("encoding the key: {e}")))?.to_string();
    if force {
        let _ = fs::remove_file(&secret_path);
    }
    let mut secret = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&secret_path).ctx("creating", &secret_path)?;
    io::Write::write_all(&mut secret, secret_text.as_bytes()).ctx("writing", &secret_path)?;
    fs::write(&public_path, public_text).ctx("writing", &public_path)?;
    Ok(KeyFiles { secret: secret_path, public: public_path, id })
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
