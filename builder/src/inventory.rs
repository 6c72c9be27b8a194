//! `airbin inventory`: what a host holds, taken on any host with airbin on it (a site
//! without a bundle at hand, or the release engineer's mirror of the site), the same
//! document `sh x.bin inventory` writes.

use std::path::PathBuf;

use airbin_format::console::{print_json, Envelope, Ui};
use airbin_format::error::Result;
use airbin_format::inventory::{self, Collect};
use airbin_format::signing::SigningKey;

use crate::cli::InventoryArgs;

/// `airbin inventory`: installed records under the state directory, registry blobs,
/// the engine's images; printed, or written to `-o FILE` (signed with `--sign KEY`).
pub(crate) fn run(args: &InventoryArgs, ui: &Ui) -> Result<()> {
    let base = args.state_dir.clone().unwrap_or_else(|| match std::env::var_os("AIRBIN_STATE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from("/var/lib/airbin"),
    });
    let key = args.sign.as_deref().map(SigningKey::load).transpose()?;
    let roots = match args.registry_root.is_empty() {
        true => inventory::default_registry_roots(&base),
        false => args.registry_root.clone(),
    };
    let taken = inventory::collect(&Collect { state_base: &base, registry_roots: &roots, engine: !args.no_engine })?;
    if ui.json && args.out.is_none() && key.is_none() {
        print_json(&Envelope::ok("inventory", serde_json::json!({"inventory": taken})));
        return Ok(());
    }
    inventory::write(&taken, args.out.as_deref(), key.as_ref())?;
    if let Some(out) = &args.out {
        match ui.json {
            true => print_json(&Envelope::ok("inventory", serde_json::json!({"out": out, "inventory": taken}))),
            false => {
                let blobs: usize = taken.registries.iter().map(|r| r.blobs.len()).sum();
                ui.status(format!(
                    "wrote {}: {} product(s), {blobs} registry blob(s), {} image(s)",
                    out.display(),
                    taken.installed.len(),
                    taken.images.len()
                ));
            }
        }
    }
    Ok(())
}
