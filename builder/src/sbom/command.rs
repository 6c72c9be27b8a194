//! `airbin sbom`: the SBOM a finished bundle carries, as `sh X.bin sbom` prints it.

use std::path::Path;

use airbin_format::console::{out_line, print_json, Envelope, Ui};
use airbin_format::error::Result;
use airbin_format::{describe, Bundle};

/// `airbin sbom X.bin`: the CycloneDX document (or with `--format spdx` the SPDX one),
/// read through the index's digests; `--json` wraps it with the member's and the
/// bundle's digests.
pub(crate) fn run(path: &Path, format: &str, ui: &Ui) -> Result<()> {
    let bundle = Bundle::open(path)?;
    let (facts, text) = describe::sbom(&bundle, format)?;
    match ui.json {
        true => print_json(&Envelope::ok("sbom", facts)),
        false => out_line(String::from_utf8_lossy(&text).trim_end()),
    }
    Ok(())
}
