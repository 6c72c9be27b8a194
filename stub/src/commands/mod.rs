//! One file per command of the `.bin`; each entry function's doc line says what the
//! field engineer gets from it. Every `--json` outcome is one `Envelope` (the format
//! crate's console), printed once.
//!
//! Beside the commands: `trust` (the keys this host pins, and verifying first where it
//! pins any), `options` (the command line's values typed once into the install's
//! options and the fan-out's), `tarball` (the support tarball's entries).

mod all_nodes;
mod check;
mod extract;
mod info;
mod install;
mod inventory;
mod list;
mod options;
mod plan;
mod preflight;
mod receipt;
mod runtime;
mod sbom;
mod status;
mod support;
mod tarball;
mod trust;
mod uninstall;

use std::path::{Path, PathBuf};

use airbin_format::error::Result;
use airbin_format::Bundle;

use crate::cli::Command;
use crate::ui::Ui;
pub(crate) use trust::{is_trusted_runner, set_trusted_runner};

pub(crate) struct Context {
    pub(crate) bundle_path: PathBuf,
    /// Where a split bundle's parts are besides beside it (`--parts DIR`).
    pub(crate) parts: Vec<PathBuf>,
    pub(crate) ui: Ui,
}

/// Runs one command of the `.bin`.
pub(crate) fn run(ctx: &Context, command: Command) -> Result<()> {
    match command {
        Command::Install(args) => install::install(ctx, &args),
        Command::Info(args) => info::info(ctx, &args.trust),
        Command::List(args) => list::list(ctx, &args.trust),
        Command::Sbom(args) => sbom::sbom(ctx, &args),
        Command::Receipt(args) => receipt::receipt(ctx, &args),
        Command::Inventory(args) => inventory::inventory(ctx, &args),
        Command::Check(args) => check::check(ctx, &args.trust),
        Command::Extract(args) => extract::extract(ctx, &args),
        Command::Plan(args) => plan::plan(ctx, &args),
        Command::Preflight(args) => preflight::preflight(ctx, &args),
        Command::Status(args) if args.fan_out.all_nodes => all_nodes::status(ctx, &args),
        Command::Status(args) => status::status(ctx, &args),
        Command::Support(args) if args.fan_out.all_nodes => all_nodes::support(ctx, &args),
        Command::Support(args) => support::support(ctx, &args),
        Command::Uninstall(args) => uninstall::uninstall(ctx, &args),
        Command::Runtime(args) => runtime::runtime(ctx, &args),
    }
}

fn open(ctx: &Context) -> Result<Bundle> {
    Bundle::open_parts(&ctx.bundle_path, &ctx.parts)
}

/// Removes the launcher's temporary copy of this runtime: it is running now and the
/// kernel keeps it alive, so the host keeps nothing.
pub(crate) fn remove_launcher_copy(dir: &Path) {
    // The loader's copy, and the runtime where it could not run from memory.
    let _ = std::fs::remove_file(dir.join("airbin-stub"));
    let _ = std::fs::remove_file(dir.join("airbin-runtime"));
    let _ = std::fs::remove_dir(dir);
}
