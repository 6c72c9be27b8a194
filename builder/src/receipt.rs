//! `airbin receipt verify`: an auditor's check of an install receipt (the in-toto
//! statement a bundle's run leaves in `.receipts/`): its signature under the site's
//! key, its shape, and with `--bundle` that it names that very bundle.

use std::path::{Path, PathBuf};

use serde::Serialize;

use airbin_format::console::{out_line, print_json, Envelope, Ui};
use airbin_format::error::{Error, IoContext, Result};
use airbin_format::Bundle;

const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
const PREDICATE_TYPE: &str = "https://airbin.dev/receipt/v1";
/// A receipt of a bundle with thousands of steps and parameters stays far below this.
const MAX_RECEIPT: u64 = 16 << 20;

/// What `--json` gives of a receipt that holds.
#[derive(Serialize)]
struct Verified {
    receipt: PathBuf,
    key_id: String,
    operation: String,
    bundle: String,
    version: String,
    sha256: String,
    hostname: String,
    finished_at: String,
    statement: serde_json::Value,
}

/// `airbin receipt verify FILE --key PUB [--bundle X.bin]`: exit 0 when the receipt's
/// `.minisig` holds under PUB and the statement is an airbin receipt (of X.bin); 3 when
/// it was altered, signed by another key or names another bundle; 2 for what is no
/// receipt or no key.
pub(crate) fn verify(file: &Path, key: &Path, bundle: Option<&Path>, ui: &Ui) -> Result<()> {
    let text = airbin_format::files::read_small_nofollow(file, MAX_RECEIPT + 1).ctx("reading", file)?;
    if text.len() as u64 > MAX_RECEIPT {
        return Err(Error::usage(format!("{} is larger than any receipt; give the .intoto.json an install wrote", file.display())));
    }
    let mut sig_path = file.as_os_str().to_owned();
    sig_path.push(".minisig");
    let sig_path = PathBuf::from(sig_path);
    let signature = std::fs::read(&sig_path).map_err(|e| {
        Error::integrity(format!(
            "{} cannot be read ({e}): the receipt is unsigned, or its signature was not copied with it; runs sign receipts with --receipt-key",
            sig_path.display()
        ))
    })?;
    let key_id = airbin_format::signing::verify_detached(std::io::Cursor::new(&text), &signature, key, &file.display().to_string())?;
    let statement: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| Error::usage(format!("{} is not JSON ({e}); give the .intoto.json an install wrote", file.display())))?;
    let field = |pointer: &str| statement.pointer(pointer).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    if field("/_type") != STATEMENT_TYPE || field("/predicateType") != PREDICATE_TYPE {
        return Err(Error::usage(format!(
            "{} is signed, but is no airbin receipt (an in-toto statement of {PREDICATE_TYPE})",
            file.display()
        )));
    }
    let sha256 = field("/subject/0/digest/sha256");
    if let Some(path) = bundle {
        let opened = Bundle::open(path)?;
        if opened.sha256() != sha256 {
            return Err(Error::integrity(format!(
                "{} is the receipt of the bundle with SHA-256 {sha256}, and {} is {} ({} {})",
                file.display(),
                path.display(),
                opened.sha256(),
                opened.index.bundle.name,
                opened.index.bundle.version
            )));
        }
    }
    let verified = Verified {
        receipt: file.to_path_buf(),
        key_id: key_id.to_string(),
        operation: field("/predicate/operation"),
        bundle: field("/predicate/bundle/name"),
        version: field("/predicate/bundle/version"),
        sha256,
        hostname: field("/predicate/host/hostname"),
        finished_at: field("/predicate/run/finished_at"),
        statement,
    };
    match ui.json {
        true => print_json(&Envelope::ok("receipt verify", verified)),
        false => out_line(&format!(
            "{}: OK ({} of {} {} on {} at {}, bundle SHA-256 {}; signed by key {})",
            file.display(),
            verified.operation,
            verified.bundle,
            verified.version,
            verified.hostname,
            verified.finished_at,
            verified.sha256,
            verified.key_id
        )),
    }
    Ok(())
}
