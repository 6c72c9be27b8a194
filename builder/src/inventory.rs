//! `airbin inventory`: what a host holds, taken on any host with airbin on it (a site
//! without a bundle at hand, or the release engineer's mirror of the site), the same
//! document `sh x.bin inventory` writes.

use std::path::PathBuf;

use airbin_format::console::Ui;
use airbin_format::error::Result;
use airbin_format::inventory;

use crate::cli::InventoryArgs;

/// `airbin inventory`: installed records under the state directory, registry blobs,
/// the engine's images; printed, or written to `-o FILE` (signed with `--sign KEY`).
pub(crate) fn run(args: &InventoryArgs, ui: &Ui) -> Result<()> {
    let base = args.state_dir.clone().unwrap_or_else(|| match std::env::var_os("AIRBIN_STATE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from("/var/lib/airbin"),
    });
    let run = inventory::Run {
        state_base: &base,
        registry_roots: &args.registry_root,
        engine: !args.no_engine,
        out: args.out.as_deref(),
        sign: args.sign.as_deref(),
        json: ui.json,
    };
    if let Some(said) = inventory::run(&run)? {
        ui.status(said);
    }
    Ok(())
}
