//! `install`, the default command: the whole install flow of `install/`, verified as
//! it goes, and its summary.

use serde::Serialize;

use airbin_format::console::{out_line, print_json, Envelope};
use airbin_format::error::{Error, ExitClass, Result};
use airbin_format::{Bundle, BundleMeta};

use super::trust::{damage_first, verified_first_where_pinned, verify};
use super::{all_nodes, open, options, plan, Context};
use crate::cli::InstallArgs;
use crate::install::upgrade::{Change, Same};
use crate::install::{self, Options, Report, StepReport, StepState, Stopped};

/// What `install --json` says besides its steps.
#[derive(Serialize)]
struct Installed<'a> {
    bundle: &'a BundleMeta,
    sha256: String,
    role: airbin_format::Role,
    staging: &'a Option<std::path::PathBuf>,
    nothing_to_do: bool,
    swept: Swept,
    change: &'a Change,
    /// The receipt a finished run wrote (`receipt` prints it).
    #[serde(skip_serializing_if = "Option::is_none")]
    receipt: &'a Option<std::path::PathBuf>,
}

#[derive(Serialize)]
struct Swept {
    count: usize,
    bytes: u64,
}

#[derive(Serialize)]
struct Refused<'a> {
    bundle: &'a BundleMeta,
}

/// `install`: verifies the bundle, resolves the values, plans, checks the host, stages
/// what the steps read from disk and runs every step not done yet; says what was done,
/// where the log is and what to do next. A rerun resumes.
pub(crate) fn install(ctx: &Context, args: &InstallArgs) -> Result<()> {
    options::check_fan_out_flags(args)?;
    if args.dry_run {
        let bundle = open(ctx)?;
        verify(ctx, &bundle, &args.trust)?;
        return plan::show_install(ctx, &bundle, &options::install_options(&bundle, args, ctx.ui.json)?);
    }
    if args.fan_out.all_nodes {
        return all_nodes::install(ctx, args);
    }
    let bundle = open(ctx)?;
    let keys = verified_first_where_pinned(ctx, &bundle, &args.trust)?;
    if args.answers.forget_secrets {
        // Asked for on purpose: gone now, whatever becomes of this run.
        install::remembered::forget_secrets(&install::state::StateDir::for_bundle(&bundle.index.bundle.name));
    }
    let options = options::install_options(&bundle, args, ctx.ui.json)?;
    let options = ask_first(&bundle, options)?;
    let state = install::state::StateDir::for_bundle(&bundle.index.bundle.name);
    let identity = bundle.identity()?;
    // A rerun on the very file an earlier run verified hashes only what it reads.
    if !args.redo.force && !bundle.verified_whole() && install::verified::recall(&state, &bundle) {
        bundle.recall_verified(&keys)?;
        ctx.ui.status(format!(
            "{}: verified in full by an earlier run and not written since; members are checked as they are read (--force checks every byte again)",
            bundle.path.display()
        ));
        let installed = install_verified_as_it_goes(ctx, &bundle, &options, &|| {});
        if installed.as_ref().is_err_and(|e| e.class == ExitClass::Integrity) {
            install::verified::forget(&state);
        }
        return installed;
    }
    // The mark goes down once both the verdict has passed and the run has begun (a run
    // refused before it begins leaves the state directory as it was), whichever comes
    // last: a run killed after that leaves it too.
    let marking = std::sync::Mutex::new((false, false)); // (began, marked)
    let mark_if_due = |began_now: bool| {
        let mut guard = marking.lock().unwrap_or_else(|e| e.into_inner());
        let (began, marked) = &mut *guard;
        *began |= began_now;
        if *began && !*marked && bundle.verified_whole() {
            *marked = install::verified::remember(&state, &bundle, &identity);
        }
    };
    // Every byte is verified on another thread while the steps start: an image streams
    // into its engine meanwhile, its end held back until the verdict (engines::load);
    // every other step, and staging, waits for it (install::run).
    std::thread::scope(|scope| {
        let verifier = bundle.verify_in_background(scope, &keys);
        scope.spawn(|| {
            let _ = bundle.await_verified();
            mark_if_due(false);
        });
        let installed = install_verified_as_it_goes(ctx, &bundle, &options, &|| mark_if_due(true));
        let _ = verifier.join().expect("the verifier panicked");
        installed
    })
}

/// On a terminal, the missing values are asked for before the bundle's verification
/// starts drawing its progress: the questions get the terminal to themselves.
fn ask_first(bundle: &Bundle, mut options: Options) -> Result<Options> {
    if !options.given.interactive || options.noexec {
        return Ok(options);
    }
    let state = install::state::StateDir::for_bundle(&bundle.index.bundle.name);
    let answers = install::answers::resolve(bundle, &options.given, &state)?;
    let asked = answers.parameters.iter().filter(|p| p.from == install::param_values::From::Prompt);
    options.given.answered = asked.map(|p| (p.name.clone(), p.actual.clone())).chain(answers.asked).collect();
    Ok(options)
}

fn install_verified_as_it_goes(ctx: &Context, bundle: &Bundle, options: &Options, began: &(dyn Fn() + Sync)) -> Result<()> {
    let meta = &bundle.index.bundle;
    let prepared = install::prepare(bundle, options).map_err(|e| damage_first(bundle, e))?;
    // A dropped SSH session must not end the install: it goes on, logging to its file.
    crate::interrupt::ignore_hangup();
    match install::run(prepared, options, &ctx.ui, began) {
        // Every step but a load waits for the verdict; a run of loads only (or of none)
        // is not finished before it either.
        Ok(report) => match bundle.await_verified() {
            Ok(()) => {
                summarize(ctx, bundle, &report, None, options);
                Ok(())
            }
            Err(damage) => Err(damage),
        },
        Err(Stopped { error, report }) => {
            let error = damage_first(bundle, error);
            match report {
                Some(report) => summarize(ctx, bundle, &report, Some(&error), options),
                None if ctx.ui.json => print_json(&Envelope::ended("install", Some(&error), Refused { bundle: meta })),
                None => {}
            }
            Err(error)
        }
    }
}

fn summarize(ctx: &Context, bundle: &Bundle, report: &Report, error: Option<&Error>, options: &Options) {
    let meta = &bundle.index.bundle;
    if ctx.ui.json {
        let body = Installed {
            bundle: meta,
            sha256: bundle.sha256(),
            role: report.role,
            staging: &report.staging,
            nothing_to_do: report.nothing_to_do,
            swept: Swept { count: report.swept.0, bytes: report.swept.1 },
            change: &report.change,
            receipt: &report.receipt,
        };
        print_json(&Envelope::ended("install", error, body).with_steps(report.steps.clone()));
        return;
    }
    if ctx.ui.quiet {
        return;
    }
    out_line(&format!("{} {}: {}", meta.name, meta.version, headline(meta, report, error, options)));
    print_steps(&report.steps);
    if let Some(staging) = &report.staging {
        out_line(&format!("  staged in {}", staging.display()));
    }
    if let Some(log) = &report.log {
        out_line(&format!("  log: {}", log.display()));
    }
    out_line(&next(report, error, options));
}

/// The summary's first line: what the run did, or where it stopped.
fn headline(meta: &BundleMeta, report: &Report, error: Option<&Error>, options: &Options) -> String {
    let count = |state: StepState| report.steps.iter().filter(|s| s.state == state).count();
    match error {
        None if report.nothing_to_do => match &report.change {
            change @ Change::Same { is: Same::ThisBuild | Same::Recorded, .. } => {
                format!("nothing to do: all {} steps were done already; {}", report.steps.len(), change.describe(meta))
            }
            change @ Change::Same { .. } => change.describe(meta),
            _ => format!("nothing to do: all {} steps were done already", report.steps.len()),
        },
        None if options.noexec => "staged; no step ran (--noexec)".to_string(),
        None => format!(
            "{} finished: {} step(s) done, {} done already",
            if matches!(report.change, Change::Same { .. }) { "install" } else { report.change.as_str() },
            count(StepState::Done),
            count(StepState::AlreadyDone)
        ),
        Some(e) if e.class == ExitClass::Interrupted => "install INTERRUPTED".to_string(),
        Some(_) => {
            let failed = report.steps.iter().find(|s| s.state == StepState::Failed).map_or("?", |s| s.name.as_str());
            match &report.change {
                Change::Upgrade { from, .. } | Change::Downgrade { from, .. } => {
                    format!("{} from {from} FAILED at step '{failed}'; {from} is still recorded as installed", report.change.as_str())
                }
                Change::Hotfix { on } => format!("hotfix FAILED at step '{failed}'; {on} is still recorded without it"),
                _ => format!("install FAILED at step '{failed}'"),
            }
        }
    }
}

/// Each step's state, name and what it did; on_failure steps under their step.
pub(crate) fn print_steps(steps: &[StepReport]) {
    let width = steps.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for step in steps {
        out_line(&format!("  {:12}  {:width$}  {}", step.state.label(), step.name, step.detail));
        for extra in &step.on_failure {
            out_line(&format!("  {:12}  {:width$}    on_failure {}: {}", "", "", extra.name, extra.state.label()));
        }
    }
}

/// The summary's last line: what to do next.
fn next(report: &Report, error: Option<&Error>, options: &Options) -> String {
    let bin = crate::shell::bundle();
    match error {
        None if report.nothing_to_do => format!("next: {bin} status shows the last run; --from STEP or --force redoes steps on purpose"),
        None if options.noexec => format!("next: {bin} (without --noexec) runs the steps"),
        None => format!("next: {bin} status --verify checks the host against this install; running the bundle again redoes nothing"),
        Some(e) if e.class == ExitClass::Interrupted => format!("next: run {bin} again: the steps done are not redone"),
        Some(_) => format!("next: fix what the error says, then run {bin} again: the steps done are not redone ({bin} support collects the logs for the vendor)"),
    }
}
