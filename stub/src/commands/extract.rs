//! `extract`: members written to disk, verified.

use std::path::PathBuf;

use serde::Serialize;

use airbin_format::console::{print_json, Envelope};
use airbin_format::error::Result;

use super::{open, trust, Context};
use crate::cli::ExtractArgs;
use crate::unpack::{self, select_members};

#[derive(Serialize)]
struct Extracted {
    target: PathBuf,
    extracted: Vec<PathBuf>,
}

/// `extract`: writes the members (all, or those named) into the target, with their mode
/// bits, while every byte is verified on another thread; nothing is left in the target
/// if verification fails (members go into place only after it passed).
pub(crate) fn extract(ctx: &Context, args: &ExtractArgs) -> Result<()> {
    let bundle = open(ctx)?;
    let members = select_members(&bundle, &args.members)?;
    let keys = trust::verified_first_where_pinned(ctx, &bundle, &args.trust)?;
    let target =
        args.target.clone().unwrap_or_else(|| PathBuf::from(format!("{}-{}", bundle.index.bundle.name, bundle.index.bundle.version)));
    let written = std::thread::scope(|scope| {
        let verifier = bundle.verify_in_background(scope, &keys);
        // Members go into place only after the verdict: an Ok is a verified one.
        let written = unpack::extract_members(&bundle, &members, &target, &ctx.ui).map_err(|e| trust::damage_first(&bundle, e));
        let _ = verifier.join().expect("the verifier panicked");
        written
    })
    .map_err(|e| match e.class.is_about_a_place() {
        true => e.hint(" (or extract elsewhere: --target DIR)"),
        false => e,
    })?;
    if ctx.ui.json {
        print_json(&Envelope::ok("extract", Extracted { target, extracted: written }));
    } else {
        ctx.ui.status(format!("extracted {} member(s) into {}", written.len(), target.display()));
    }
    Ok(())
}
