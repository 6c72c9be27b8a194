//! `airbin diff`: what changed from one bundle of a product to the next.

use std::path::Path;

use airbin_format::console::{out_line, print_json, Envelope, Ui};
use airbin_format::error::Result;
use airbin_format::Bundle;

/// `airbin diff`: members, images and tags, registry repositories and blobs,
/// parameters and steps, from the two indexes (each checked on open); the bytes are not read.
pub(crate) fn diff(old: &Path, new: &Path, ui: &Ui) -> Result<()> {
    let (a, b) = (Bundle::open(old)?, Bundle::open(new)?);
    let diff = airbin_format::diff::diff(&a.index, &b.index);
    if ui.json {
        print_json(&Envelope::ok("diff", serde_json::json!({"diff": diff.to_json()})));
    } else if !ui.quiet {
        out_line(&format!("{} -> {}", diff.from, diff.to));
        for line in diff.lines() {
            out_line(&line);
        }
    }
    Ok(())
}
