//! `sbom`: the bill of materials the bundle carries, for the site's security team.

use airbin_format::console::{out_line, print_json, Envelope};
use airbin_format::describe;
use airbin_format::error::Result;

use super::{open, trust, Context};
use crate::cli::SbomArgs;

/// `sbom`: the CycloneDX document (or `--format spdx`), its bytes checked against the
/// index as they are read (and the whole bundle first where this host pins keys);
/// `--json` wraps it with the member's digest and the bundle's.
pub(crate) fn sbom(ctx: &Context, args: &SbomArgs) -> Result<()> {
    let bundle = open(ctx)?;
    trust::verified_first_where_pinned(ctx, &bundle, &args.trust)?;
    let (facts, text) = describe::sbom(&bundle, &args.format)?;
    match ctx.ui.json {
        true => print_json(&Envelope::ok("sbom", facts)),
        false => out_line(String::from_utf8_lossy(&text).trim_end()),
    }
    Ok(())
}
