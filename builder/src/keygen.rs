//! `airbin keygen`: a signing key pair for a release line.

use std::path::PathBuf;

use serde::Serialize;

use airbin_format::console::{out_line, print_json, Envelope, Ui};
use airbin_format::error::Result;

use crate::assemble::signing;
use crate::cli::KeygenArgs;

#[derive(Serialize)]
struct KeyPair {
    secret_key: PathBuf,
    public_key: PathBuf,
    key_id: String,
}

/// `airbin keygen`: prints where the pair went and the key ID a site pins.
pub(crate) fn run(args: &KeygenArgs, ui: &Ui) -> Result<()> {
    let files = signing::keygen(&args.out, args.no_password, args.force)?;
    if ui.json {
        let pair = KeyPair { secret_key: files.secret, public_key: files.public, key_id: files.id.to_string() };
        print_json(&Envelope::ok("keygen", pair));
    } else if !ui.quiet {
        out_line(&format!("secret key: {} (keep it secret)", files.secret.display()));
        out_line(&format!(
            "public key: {} (copy it to /etc/airbin/trusted-keys/ on the sites that install your bundles)",
            files.public.display()
        ));
        out_line(&format!("key ID:     {}", files.id));
    }
    Ok(())
}
