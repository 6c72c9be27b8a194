//! `check`: is the bundle intact, and who signed it.

use airbin_format::console::{out_line, print_json, Envelope};
use airbin_format::describe::{self, Checked};
use airbin_format::error::Result;

use super::{open, trust, Context};
use crate::cli::TrustArgs;

/// `check`: the length, then the SHA-256 of every byte, then the signature; says the
/// bundle is intact or exactly what is wrong with it.
pub(crate) fn check(ctx: &Context, trust: &TrustArgs) -> Result<()> {
    let bundle = open(ctx)?;
    let signer = trust::verify(ctx, &bundle, trust)?;
    if ctx.ui.json {
        print_json(&Envelope::ok("check", Checked::new(&bundle, &signer)));
    } else if !ctx.ui.quiet {
        out_line(&describe::checked_line(&bundle, &signer));
    }
    Ok(())
}
