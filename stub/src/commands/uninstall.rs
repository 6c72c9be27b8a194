//! `uninstall`: the product removed, and only what its install placed.

use serde::Serialize;

use airbin_format::console::{out_line, print_json, Envelope};
use airbin_format::error::{Error, Result};
use airbin_format::{BundleMeta, Role};

use super::install::print_steps;
use super::{open, options, plan, trust, Context};
use crate::cli::UninstallArgs;
use crate::install::{uninstall, Options};

#[derive(Serialize)]
struct Uninstalled<'a> {
    bundle: &'a BundleMeta,
    role: Role,
    kept: &'a [String],
    receipt: Option<&'a std::path::Path>,
}

/// `uninstall`: verifies the bundle, runs its uninstall steps, removes what the install
/// placed and nothing else, and forgets the install; a killed uninstall resumes.
pub(crate) fn uninstall(ctx: &Context, args: &UninstallArgs) -> Result<()> {
    let bundle = open(ctx)?;
    trust::verify(ctx, &bundle, &args.trust)?;
    let options = options::install_options(&bundle, &options::uninstalled_install(args), ctx.ui.json)?;
    if args.dry_run {
        return plan::show_uninstall(ctx, &bundle, &options);
    }
    let prepared = uninstall::prepare(&bundle, &options)?;
    check_engines(&prepared, &options)?;
    crate::interrupt::ignore_hangup();
    let meta = &bundle.index.bundle;
    match uninstall::run(prepared, &options, &ctx.ui) {
        Ok((report, receipt)) => {
            if ctx.ui.json {
                let body = Uninstalled { bundle: meta, role: report.role, kept: &report.kept, receipt: receipt.as_deref() };
                print_json(&Envelope::ok("uninstall", body).with_steps(report.steps.clone()));
            } else if !ctx.ui.quiet {
                out_line(&format!("{} {}: uninstalled", meta.name, meta.version));
                print_steps(&report.steps);
                for kept in &report.kept {
                    out_line(&format!("  kept {kept}"));
                }
                out_line(&format!("next: nothing of {} is recorded on this host any more; the state directory is gone", meta.name));
            }
            Ok(())
        }
        Err((error, report)) => {
            if ctx.ui.json {
                let body = Uninstalled { bundle: meta, role: report.role, kept: &report.kept, receipt: None };
                print_json(&Envelope::ended("uninstall", Some(&error), body).with_steps(report.steps.clone()));
            } else if !ctx.ui.quiet {
                out_line(&format!("{} {}: uninstall FAILED", meta.name, meta.version));
                print_steps(&report.steps);
                out_line(&format!(
                    "next: fix what the error says, then run {} uninstall again: the parts done are not redone",
                    crate::shell::bundle()
                ));
            }
            Err(error)
        }
    }
}

/// Every engine an image was loaded into must answer before anything is removed.
fn check_engines(prepared: &uninstall::Prepared, options: &Options) -> Result<()> {
    if options.skip_preflight.iter().any(|s| s == "engine") {
        return Ok(());
    }
    let mut engines: Vec<crate::engines::Engine> = prepared.placed.images.iter().map(|i| i.engine.engine()).collect();
    engines.dedup();
    for engine in engines {
        if !crate::engines::answers(&engine) {
            return Err(Error::host(format!(
                "preflight engine: {} does not answer: start it, then run the uninstall again (the install's images are to be removed from it)",
                engine.name(),
            )));
        }
    }
    Ok(())
}
