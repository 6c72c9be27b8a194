//! `airbin inspect`: what a finished bundle is and carries, from its index (checked on
//! open), in the same words and JSON as the bundle's own `info`.

use std::path::Path;

use airbin_format::console::{out_line, print_json, Envelope, Ui};
use airbin_format::error::Result;
use airbin_format::{describe, params, Bundle};

/// `airbin inspect`: name, version, arch, who built it when, who signed it, members with
/// kinds and sizes, images and registry repositories, steps.
pub(crate) fn inspect(path: &Path, ui: &Ui) -> Result<()> {
    let bundle = Bundle::open(path)?;
    match ui.json {
        true => print_json(&Envelope::ok("inspect", describe::info(&bundle))),
        false => describe::info_lines(&bundle).iter().for_each(|l| out_line(l)),
    }
    Ok(())
}

/// `airbin inspect --schema`: the parameters as JSON Schema, from the index alone
/// (the schema itself is the document: what a portal reads).
pub(crate) fn schema(path: &Path, ui: &Ui) -> Result<()> {
    let bundle = Bundle::open(path)?;
    let meta = &bundle.index.bundle;
    let schema = params::json_schema(&meta.name, &meta.version, &bundle.index.parameters);
    match ui.json {
        true => print_json(&Envelope::ok("inspect", serde_json::json!({"schema": schema}))),
        false => print_json(&schema),
    }
    Ok(())
}
