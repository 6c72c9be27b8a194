//! `airbin runtime`: the trusted runner for a site, from the builder it trusts.

use std::path::Path;

use serde::Serialize;

use airbin_format::console::{out_line, print_json, Envelope, Ui};
use airbin_format::error::{Error, Result};

use crate::assemble::stubs;
use crate::cli::RuntimeArgs;

#[derive(Serialize)]
struct Written<'a> {
    written: &'a Path,
    arch: &'a str,
    sha256: String,
    bytes: usize,
}

/// `airbin runtime`: writes `airbin-run`, the runtime every bundle of this airbin
/// carries, for a site to install once and run bundles with as data.
pub(crate) fn run(args: &RuntimeArgs, ui: &Ui) -> Result<()> {
    let arch = airbin_format::arch::canonical(&args.arch)
        .ok_or_else(|| Error::usage(format!("--arch {}: give amd64 (x86_64) or arm64 (aarch64)", args.arch)))?;
    let runtime = stubs::for_arch(arch).runtime().map_err(|e| Error::internal(format!("unpacking the runtime: {e}")))?;
    airbin_format::files::write_atomic(&args.out, &runtime, 0o755)?;
    let sha256 = airbin_format::digest::to_hex(&<sha2::Sha256 as sha2::Digest>::digest(&runtime));
    if ui.json {
        print_json(&Envelope::ok("runtime", Written { written: &args.out, arch, sha256, bytes: runtime.len() }));
    } else if !ui.quiet {
        out_line(&format!("{} (airbin-run {} for {arch}, SHA-256 {sha256})", args.out.display(), crate::assemble::VERSION));
    }
    Ok(())
}
