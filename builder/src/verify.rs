//! `airbin verify`: a finished bundle checked as a site checks it.

use std::path::{Path, PathBuf};

use airbin_format::console::{out_line, print_json, Envelope, Ui};
use airbin_format::describe::{self, Checked};
use airbin_format::error::Result;
use airbin_format::{signature, Bundle};

/// `airbin verify`: the length, the SHA-256 of every byte, and the signature against
/// `--key` and the keys this host pins; the same verdict as the bundle's own `check`.
pub(crate) fn verify(path: &Path, key_files: &[PathBuf], ui: &Ui) -> Result<()> {
    let bundle = Bundle::open(path)?;
    let keys = signature::trusted_keys(key_files, &signature::pinned_keys_dir())?;
    let progress = ui.progress("check", bundle.digested_len());
    let signer = bundle.verify(&keys, &|n| progress.inc(n))?;
    progress.finish();
    if ui.json {
        print_json(&Envelope::ok("verify", Checked::new(&bundle, &signer)));
    } else if !ui.quiet {
        out_line(&describe::checked_line(&bundle, &signer));
    }
    Ok(())
}
