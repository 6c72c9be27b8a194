//! `airbin keygen`: a signing key pair in minisign's format. Signing itself is the
//! format crate's (`airbin_format::signing`), which the runtime's receipts share.

use std::fs;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use minisign::KeyPair;

use airbin_format::error::{Error, IoContext, Result};
use airbin_format::signature::KeyId;
pub(crate) use airbin_format::signing::SigningKey;
use airbin_format::signing::{key_id, password};

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
