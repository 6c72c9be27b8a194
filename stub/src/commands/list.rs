//! `list`: the members, one a line.

use serde::Serialize;

use airbin_format::console::{out_line, print_json, Envelope};
use airbin_format::error::Result;
use airbin_format::{describe, Member};

use super::{open, trust, Context};
use crate::cli::TrustArgs;

#[derive(Serialize)]
struct Members<'a> {
    members: &'a [Member],
}

/// `list`: the members, one a line: name, kind, size; the images and registry
/// repositories they carry.
pub(crate) fn list(ctx: &Context, trust: &TrustArgs) -> Result<()> {
    let bundle = open(ctx)?;
    trust::verified_first_where_pinned(ctx, &bundle, trust)?;
    match ctx.ui.json {
        true => print_json(&Envelope::ok("list", Members { members: &bundle.index.members })),
        false => describe::member_lines(&bundle.index.members).iter().for_each(|l| out_line(l)),
    }
    Ok(())
}
