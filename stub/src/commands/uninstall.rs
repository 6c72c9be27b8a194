//! `uninstall` (and `plan --uninstall`, `uninstall --dry-run`): the bundle's uninstall
//! steps, then what the install placed, removed; the host as it was before.

use serde_json::json;

use super::{envelope, open, print_json, verify, Context};
use crate::cli::{RedoArgs, UninstallArgs};
use crate::error::Result;
use crate::format::Bundle;
use crate::install::{self, uninstall, Options};
use crate::progress::out_line;

/// The uninstall's plan, as `plan --uninstall` and `uninstall --dry-run` show it.
pub fn show_plan(ctx: &Context, bundle: &Bundle, options: &Options) -> Result<()> {
    let prepared = uninstall::prepare(bundle, options)?;
    if ctx.ui.json {
        print_json(&envelope(super::command(), None, json!({"bundle": bundle.index.bundle, "plan": uninstall::plan_json(&prepared)})));
    } else {
        uninstall::print_plan(&prepared);
    }
    Ok(())
}

/// `uninstall`: verifies the bundle, runs its uninstall steps, removes what the install
/// placed and nothing else, and forgets the install; a killed uninstall resumes.
pub fn uninstall(ctx: &Context, args: &UninstallArgs) -> Result<()> {
    let bundle = open(ctx)?;
    verify(ctx, &bundle, &args.trust)?;
    let redo = RedoArgs { force: args.force, from: None, allow_downgrade: false };
    let install_args = crate::cli::InstallArgs {
        answers: args.answers.clone(),
        role: args.role.clone(),
        engine: args.engine.clone(),
        redo,
        skip_preflight: args.skip_preflight.clone(),
        trust: args.trust.clone(),
        ..Default::default()
    };
    let options = super::install::install_options(&bundle, &install_args, ctx.ui.json)?;
    if args.dry_run {
        return show_plan(ctx, &bundle, &options);
    }
    let prepared = uninstall::prepare(&bundle, &options)?;
    check_engines(&prepared, &options)?;
    crate::interrupt::ignore_hangup();
    let meta = &bundle.index.bundle;
    match uninstall::run(prepared, &options, &ctx.ui) {
        Ok(report) => {
            if ctx.ui.json {
                print_json(&envelope(
                    "uninstall",
                    None,
                    json!({"bundle": meta, "role": report.role, "steps": report.steps, "kept": report.kept}),
                ));
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
                print_json(&envelope(
                    "uninstall",
                    Some(&error),
                    json!({"bundle": meta, "role": report.role, "steps": report.steps, "kept": report.kept}),
                ));
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

fn print_steps(steps: &[install::StepReport]) {
    let width = steps.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for step in steps {
        out_line(&format!("  {:12}  {:width$}  {}", step.state.label(), step.name, step.detail));
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
            return Err(crate::error::Error::host(format!(
                "preflight engine: {} does not answer: start it, then run the uninstall again (the install's images are to be removed from it)",
                engine.name(),
            )));
        }
    }
    Ok(())
}
