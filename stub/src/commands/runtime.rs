//! `runtime install`: this bundle's runtime, put on the host as `airbin-run`, the
//! trusted runner. A site that pins keys installs it once, from a bundle it verified (or
//! from airbin's own release files), and from then on runs bundles with it as data:
//! `airbin-run x.bin` checks every byte and the signature against the pinned keys before
//! anything else, and never runs the bundle's own launcher or runtime.

use std::io::Read;

use serde::Serialize;

use airbin_format::error::{Error, IoContext, Result};
use airbin_format::signature::Signer;

use super::trust::verify;
use super::{open, Context};
use crate::cli::{RuntimeArgs, RuntimeCommand};
use crate::ui::{out_line, print_json, Envelope};

#[derive(Serialize)]
struct Installed<'a> {
    installed: &'a std::path::Path,
    sha256: &'a str,
    runtime_version: &'static str,
    trust: &'a str,
    bytes: usize,
}

/// The largest runtime taken: a runtime is about 3 MB.
const MAX_RUNTIME: u64 = 64 << 20;

/// `runtime install`: verifies the bundle, then writes this runtime as `airbin-run`.
pub(crate) fn runtime(ctx: &Context, args: &RuntimeArgs) -> Result<()> {
    let RuntimeCommand::Install { to, trust } = &args.command;
    let bundle = open(ctx)?;
    let signer = verify(ctx, &bundle, trust)?;
    // This very program: the runtime the bundle carries (it runs from memory, or from
    // a copy beside the stub, which /proc/self/exe names either way).
    let mut runtime = Vec::new();
    std::fs::File::open("/proc/self/exe")
        .and_then(|f| f.take(MAX_RUNTIME).read_to_end(&mut runtime))
        .ctx("reading the runtime", std::path::Path::new("/proc/self/exe"))?;
    if !runtime.starts_with(b"\x7fELF") {
        return Err(Error::internal("this runtime could not read its own program"));
    }
    std::fs::create_dir_all(to).ctx("creating", to)?;
    let dest = to.join("airbin-run");
    crate::fsx::write_atomic(&dest, &runtime, 0o755)?;
    let sha = airbin_format::digest::to_hex(&<sha2::Sha256 as sha2::Digest>::digest(&runtime));
    let trust = match &signer {
        Signer::Trusted { id, .. } => format!("verified against the pinned key {id}"),
        Signer::Unchecked(id) => format!(
            "TRUSTED ON FIRST USE: the bundle is signed by key {id}, and no key is pinned here to check it against; check the bundle first (airbin verify --key, or minisign -V), and pin its maker's key in /etc/airbin/trusted-keys/"
        ),
        Signer::Unsigned => "TRUSTED ON FIRST USE: the bundle is unsigned, and no key is pinned here; check the bundle first against its maker's .sha256, and pin its maker's key in /etc/airbin/trusted-keys/ before running bundles with airbin-run".to_string(),
    };
    if ctx.ui.json {
        let body = Installed { installed: &dest, sha256: &sha, runtime_version: crate::VERSION, trust: &trust, bytes: runtime.len() };
        print_json(&Envelope::ok("runtime", body));
    } else if !ctx.ui.quiet {
        out_line(&format!("installed airbin-run {} at {} (SHA-256 {sha})", crate::VERSION, dest.display()));
        out_line(&format!("  {trust}"));
        out_line(&format!(
            "next: airbin-run {} [COMMAND]: it checks each bundle against the pinned keys before anything else",
            bundle.path.display()
        ));
    }
    Ok(())
}
