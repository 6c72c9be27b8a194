//! `inventory`: what this site holds, for the release engineer who builds its delta.

use airbin_format::console::{print_json, Envelope};
use airbin_format::error::Result;
use airbin_format::inventory::{self, Collect};
use airbin_format::signing::SigningKey;

use super::{open, Context};
use crate::cli::InventoryArgs;
use crate::install::state::StateDir;

/// `inventory`: the installed records of every product under the state directory, the
/// blobs of the registry roots, the engine's images with their layers; printed, or
/// written to `-o FILE` (signed with `--sign KEY`).
pub(crate) fn inventory(ctx: &Context, args: &InventoryArgs) -> Result<()> {
    let bundle = open(ctx)?;
    let state = StateDir::for_bundle(&bundle.index.bundle.name);
    let base = state.root.parent().unwrap_or(std::path::Path::new("/")).to_path_buf();
    let key = args.sign.as_deref().map(SigningKey::load).transpose()?;
    let roots = match args.registry_root.is_empty() {
        true => inventory::default_registry_roots(&base),
        false => args.registry_root.clone(),
    };
    let taken = inventory::collect(&Collect { state_base: &base, registry_roots: &roots, engine: !args.no_engine })?;
    match (ctx.ui.json, &args.out) {
        (true, None) => {
            if key.is_some() {
                return inventory::write(&taken, None, key.as_ref());
            }
            print_json(&Envelope::ok("inventory", serde_json::json!({"inventory": taken})))
        }
        (json, out) => {
            inventory::write(&taken, out.as_deref(), key.as_ref())?;
            if json {
                print_json(&Envelope::ok("inventory", serde_json::json!({"out": out, "inventory": taken})));
            } else if let Some(out) = out {
                let blobs: usize = taken.registries.iter().map(|r| r.blobs.len()).sum();
                ctx.ui.status(format!(
                    "wrote {}: {} product(s), {blobs} registry blob(s) in {} root(s), {} image(s)",
                    out.display(),
                    taken.installed.len(),
                    taken.registries.len(),
                    taken.images.len()
                ));
            }
        }
    }
    Ok(())
}
