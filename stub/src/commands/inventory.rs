//! `inventory`: what this site holds, for the release engineer who builds its delta.

use airbin_format::error::Result;
use airbin_format::inventory;

use super::{open, trust, Context};
use crate::cli::InventoryArgs;
use crate::install::state::StateDir;

/// `inventory`: the installed records of every product under the state directory, the
/// blobs of the registry roots, the engine's images with their layers; printed, or
/// written to `-o FILE` (signed with `--sign KEY`).
pub(crate) fn inventory(ctx: &Context, args: &InventoryArgs) -> Result<()> {
    let bundle = open(ctx)?;
    // Where keys are pinned, nothing of the host is read for an unverified bundle.
    trust::verified_first_where_pinned(ctx, &bundle, &args.trust)?;
    let state = StateDir::for_bundle(&bundle.index.bundle.name);
    let base = state.root.parent().unwrap_or(std::path::Path::new("/")).to_path_buf();
    let run = inventory::Run {
        state_base: &base,
        registry_roots: &args.registry_root,
        engine: !args.no_engine,
        out: args.out.as_deref(),
        sign: args.sign.as_deref(),
        json: ctx.ui.json,
    };
    if let Some(said) = inventory::run(&run)? {
        ctx.ui.status(said);
    }
    Ok(())
}
