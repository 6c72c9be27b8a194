//! `plan` (and `install --dry-run`, `uninstall --dry-run`): what a run would do.

use serde::Serialize;

use airbin_format::console::{print_json, Envelope};
use airbin_format::error::Result;
use airbin_format::{Bundle, BundleMeta};

use super::{open, options, trust, Context};
use crate::cli::PlanArgs;
use crate::install::{self, uninstall, Options};

#[derive(Serialize)]
struct Planned<'a> {
    bundle: &'a BundleMeta,
    plan: serde_json::Value,
}

/// `plan` (and `install --dry-run`): this host's steps, what each does with which
/// values, and which are done already. Changes nothing.
pub(crate) fn plan(ctx: &Context, args: &PlanArgs) -> Result<()> {
    let bundle = open(ctx)?;
    trust::verify(ctx, &bundle, &args.trust)?;
    let options = options::install_options(&bundle, &options::planned_install(args), ctx.ui.json)?;
    match args.uninstall {
        true => show_uninstall(ctx, &bundle, &options),
        false => show_install(ctx, &bundle, &options),
    }
}

/// The install's plan, as `plan` and `install --dry-run` show it.
pub(crate) fn show_install(ctx: &Context, bundle: &Bundle, options: &Options) -> Result<()> {
    let prepared = install::prepare(bundle, options)?;
    match ctx.ui.json {
        true => print_json(&Envelope::ok("plan", Planned { bundle: &bundle.index.bundle, plan: install::plan_json(&prepared) })),
        false => install::print_plan(&prepared),
    }
    Ok(())
}

/// The uninstall's plan: its steps, and what the install placed that goes.
pub(crate) fn show_uninstall(ctx: &Context, bundle: &Bundle, options: &Options) -> Result<()> {
    let prepared = uninstall::prepare(bundle, options)?;
    let command = crate::ui::command();
    match ctx.ui.json {
        true => print_json(&Envelope::ok(command, Planned { bundle: &bundle.index.bundle, plan: uninstall::plan_json(&prepared) })),
        false => uninstall::print_plan(&prepared),
    }
    Ok(())
}
