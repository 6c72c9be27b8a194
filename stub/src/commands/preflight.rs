//! `preflight`: whether this host is ready for its part.

use serde::Serialize;

use airbin_format::console::{out_line, print_json, Envelope};
use airbin_format::error::Result;
use airbin_format::{BundleMeta, Role};

use super::{open, options, trust, Context};
use crate::cli::PreflightArgs;
use crate::install;

#[derive(Serialize)]
struct Ready<'a> {
    bundle: &'a BundleMeta,
    role: Role,
    role_why: String,
    steps_to_run: usize,
    engine: Option<String>,
}

/// `preflight`: whether this host is ready for its part (its role's steps not done
/// yet): every problem at once, exit 7 if any. Reads the index only (it is checked on
/// open); `install` verifies every byte before anything lands.
pub(crate) fn preflight(ctx: &Context, args: &PreflightArgs) -> Result<()> {
    let bundle = open(ctx)?;
    // Where keys are pinned, nothing (the registry a step names, the engine) is asked
    // before the bundle's digest and signature pass.
    trust::verified_first_where_pinned(ctx, &bundle, &args.trust)?;
    let options = options::install_options(&bundle, &options::preflighted_install(args), ctx.ui.json)?;
    let prepared = install::prepare(&bundle, &options)?;
    let ready = install::check_host(&prepared, &options)?;
    let role = &prepared.role;
    let to_run = if prepared.change.nothing_to_do() && options.redo.from.is_none() { 0 } else { prepared.plan.to_run().count() };
    if ctx.ui.json {
        let engine = ready.engine.as_ref().map(|e| e.name());
        let body = Ready { bundle: &bundle.index.bundle, role: role.role, role_why: role.explain(), steps_to_run: to_run, engine };
        print_json(&Envelope::ok("preflight", body));
    } else if !ctx.ui.quiet {
        let engine = ready.engine.as_ref().map(|e| format!("; images load into {}", e.name())).unwrap_or_default();
        out_line(&format!(
            "{} {}: this host is ready for its part (role {}, {}): {to_run} step(s) to run{engine}",
            bundle.index.bundle.name,
            bundle.index.bundle.version,
            role.role,
            role.explain()
        ));
    }
    Ok(())
}
