//! `info`: what the bundle is and carries, from its index.

use airbin_format::console::{out_line, print_json, Envelope};
use airbin_format::describe;
use airbin_format::error::Result;

use super::{open, trust, Context};
use crate::cli::TrustArgs;

/// `info`: what the bundle is (name, version, arch, who built it when, who signed it)
/// and what it carries: members with kinds and sizes, images and registry repositories,
/// steps. The same lines and JSON as the builder's `airbin inspect`.
pub(crate) fn info(ctx: &Context, trust: &TrustArgs) -> Result<()> {
    let bundle = open(ctx)?;
    trust::verified_first_where_pinned(ctx, &bundle, trust)?;
    match ctx.ui.json {
        true => print_json(&Envelope::ok("info", describe::info(&bundle))),
        false => describe::info_lines(&bundle).iter().for_each(|l| out_line(l)),
    }
    Ok(())
}
