//! `install` (the default) and `plan`.

use serde_json::json;

use super::{damage_first, envelope, open, print_json, verify, Context};
use crate::cli::Global;
use crate::error::{Error, Result};
use crate::install::{self, runner::StepState, Options, Report, Stopped};
use crate::progress::out_line;
use crate::steps::Overrides;

/// The command line's values, typed once for the install.
fn options(global: &Global) -> Result<Options> {
    let sets = global.set.iter().map(|s| install::params::parse_set(s)).collect::<Result<Vec<_>>>()?;
    // Someone at a terminal: stdin is one (stderr may go to a file).
    let terminal = nix::unistd::isatty(std::io::stdin()).unwrap_or(false);
    Ok(Options {
        target: global.target.clone(),
        keep: global.keep,
        noexec: global.noexec,
        redo: install::plan::Redo { force: global.force, from: global.from.clone() },
        overrides: Overrides {
            engine: global.engine.clone(),
            registry_root: global.registry_root.clone(),
            registry_address: global.registry_address.clone(),
        },
        containerd_namespace: global.containerd_namespace.clone(),
        config: global.config.clone(),
        use_sample: global.use_sample,
        skip_preflight: global.skip_preflight.clone(),
        role: global.role,
        sets,
        answers: Vec::new(),
        interactive: terminal && !global.yes && !global.json,
        allow_downgrade: global.allow_downgrade,
    })
}

/// `plan` (and `install --dry-run`): this host's steps, what each does with which
/// values from the config, and which are done already. Changes nothing.
pub fn plan(ctx: &Context) -> Result<()> {
    let bundle = open(ctx)?;
    verify(ctx, &bundle)?;
    let prepared = install::prepare(&bundle, &options(&ctx.global)?)?;
    if ctx.ui.json {
        print_json(&envelope("plan", None, json!({"bundle": bundle.index.bundle, "plan": install::plan_json(&prepared)})));
    } else {
        install::print_plan(&prepared);
    }
    Ok(())
}

/// `preflight`: whether this host is ready for its part (its role's steps not done
/// yet): every problem at once, exit 7 if any. Reads the index only (it is checked on
/// open); `install` verifies every byte before anything lands.
pub fn preflight(ctx: &Context) -> Result<()> {
    let bundle = open(ctx)?;
    let options = options(&ctx.global)?;
    let prepared = install::prepare(&bundle, &options)?;
    let ready = install::check_host(&prepared, &options)?;
    let role = &prepared.role;
    let to_run = prepared.plan.to_run().count();
    if ctx.ui.json {
        print_json(&envelope(
            "preflight",
            None,
            json!({"bundle": bundle.index.bundle, "role": role.role, "role_why": role.explain(), "steps_to_run": to_run,
                   "engine": ready.engine.as_ref().map(|e| e.name())}),
        ));
    } else if !ctx.global.quiet {
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

/// The command line's values for the fan-out, and the flags every node's run is given.
pub fn fan_out(global: &Global) -> install::nodes::FanOut {
    let mut pass = Vec::new();
    let mut flag = |name: &str, value: Option<&str>| {
        pass.push(name.to_string());
        pass.extend(value.map(str::to_string));
    };
    if let Some(engine) = &global.engine {
        flag("--engine", Some(engine));
    }
    if global.containerd_namespace != "k8s.io" {
        flag("--containerd-namespace", Some(&global.containerd_namespace));
    }
    if global.force {
        flag("--force", None);
    }
    if let Some(from) = &global.from {
        flag("--from", Some(from));
    }
    for skip in &global.skip_preflight {
        flag("--skip-preflight", Some(skip));
    }
    if let Some(root) = &global.registry_root {
        flag("--registry-root", Some(&root.display().to_string()));
    }
    if let Some(address) = &global.registry_address {
        flag("--registry-address", Some(address));
    }
    if global.keep {
        flag("--keep", None);
    }
    if global.allow_downgrade {
        flag("--allow-downgrade", None);
    }
    for set in &global.set {
        flag("--set", Some(set));
    }
    if global.noexec {
        flag("--noexec", None);
    }
    install::nodes::FanOut {
        parallel: global.parallel,
        ssh_options: global.ssh_option.clone(),
        remote_dir: global.remote_dir.clone(),
        pass,
        control_dir: None,
    }
}

/// `install`: verifies the bundle, reads and checks the config, plans, checks the
/// host, stages what the steps read from disk and runs every step not done yet; says
/// what was done, where the log is and what to do next. A rerun resumes.
pub fn install(ctx: &Context) -> Result<()> {
    if ctx.global.dry_run {
        return plan(ctx);
    }
    if ctx.global.all_nodes {
        return super::nodes::install(ctx);
    }
    let bundle = open(ctx)?;
    let keys = super::trusted_keys(&ctx.global)?;
    let answers = ask_first(ctx, &bundle)?;
    let state = install::state::StateDir::for_bundle(&bundle.index.bundle.name);
    let identity = bundle.identity()?;
    // A rerun on the very file an earlier run verified hashes only what it reads.
    if !ctx.global.force && install::verified::recall(&state, &bundle) {
        bundle.recall_verified(&keys)?;
        ctx.ui.status(format!(
            "{}: verified in full by an earlier run and not written since; members are checked as they are read (--force checks every byte again)",
            bundle.path.display()
        ));
        let installed = install_verified_as_it_goes(ctx, &bundle, &answers, &|| {});
        if installed.as_ref().is_err_and(|e| e.class == crate::error::ExitClass::Integrity) {
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
        let installed = install_verified_as_it_goes(ctx, &bundle, &answers, &|| mark_if_due(true));
        let _ = verifier.join().expect("the verifier panicked");
        installed
    })
}

/// On a terminal, the parameters' missing values are asked for before the bundle's
/// verification starts drawing its progress: the questions get the terminal to
/// themselves. Returns the answers, by parameter name.
fn ask_first(ctx: &Context, bundle: &crate::format::Bundle) -> Result<Vec<(String, String)>> {
    let options = options(&ctx.global)?;
    if !options.interactive || bundle.index.parameters.is_empty() || ctx.global.dry_run {
        return Ok(Vec::new());
    }
    let prepared = install::prepare(bundle, &options)?;
    let asked = prepared.parameters.iter().filter(|p| p.from == install::params::From::Prompt);
    Ok(asked.map(|p| (p.name.clone(), p.actual.clone())).collect())
}

fn install_verified_as_it_goes(
    ctx: &Context,
    bundle: &crate::format::Bundle,
    answers: &[(String, String)],
    began: &(dyn Fn() + Sync),
) -> Result<()> {
    let meta = &bundle.index.bundle;
    let options = Options { answers: answers.to_vec(), ..options(&ctx.global)? };
    let prepared = install::prepare(bundle, &options).map_err(|e| damage_first(bundle, e))?;
    // A dropped SSH session must not end the install: it goes on, logging to its file.
    crate::interrupt::ignore_hangup();
    let bin = bundle.path.display().to_string();
    match install::run(prepared, &options, &ctx.ui, began) {
        // Every step but a load waits for the verdict; a run of loads only (or of none)
        // is not finished before it either.
        Ok(report) => match bundle.await_verified() {
            Ok(()) => {
                summarize(ctx, bundle, &report, None, &bin);
                Ok(())
            }
            Err(damage) => Err(damage),
        },
        Err(Stopped { error, report }) => {
            let error = damage_first(bundle, error);
            match report {
                Some(report) => summarize(ctx, bundle, &report, Some(&error), &bin),
                None if ctx.ui.json => print_json(&envelope("install", Some(&error), json!({"bundle": meta}))),
                None => {}
            }
            Err(error)
        }
    }
}

fn summarize(ctx: &Context, bundle: &crate::format::Bundle, report: &Report, error: Option<&Error>, bin: &str) {
    let meta = &bundle.index.bundle;
    if ctx.ui.json {
        print_json(&envelope(
            "install",
            error,
            json!({
                "bundle": meta, "sha256": bundle.sha256(), "role": report.role, "steps": report.steps, "staging": report.staging,
                "nothing_to_do": report.nothing_to_do, "swept": {"count": report.swept.0, "bytes": report.swept.1},
                "change": report.change,
            }),
        ));
        return;
    }
    if ctx.global.quiet {
        return;
    }
    let count = |state: StepState| report.steps.iter().filter(|s| s.state == state).count();
    let headline = match error {
        None if matches!(report.change, install::upgrade::Change::Same { this_build: false, .. }) => report.change.describe(meta),
        None if report.nothing_to_do => match &report.change {
            install::upgrade::Change::Same { .. } => {
                format!("nothing to do: all {} steps were done already; {}", report.steps.len(), report.change.describe(meta))
            }
            _ => format!("nothing to do: all {} steps were done already", report.steps.len()),
        },
        None if ctx.global.noexec => "staged; no step ran (--noexec)".to_string(),
        None => format!(
            "{} finished: {} step(s) done, {} done already",
            if matches!(report.change, install::upgrade::Change::Same { .. }) { "install" } else { report.change.as_str() },
            count(StepState::Done),
            count(StepState::AlreadyDone)
        ),
        Some(e) if e.class == crate::error::ExitClass::Interrupted => "install INTERRUPTED".to_string(),
        Some(_) => {
            let failed = report.steps.iter().find(|s| s.state == StepState::Failed).map_or("?", |s| s.name.as_str());
            match &report.change {
                install::upgrade::Change::Upgrade { from } | install::upgrade::Change::Downgrade { from } => {
                    format!("{} from {from} FAILED at step '{failed}'; {from} is still recorded as installed", report.change.as_str())
                }
                install::upgrade::Change::Hotfix { on } => format!("hotfix FAILED at step '{failed}'; {on} is still recorded without it"),
                _ => format!("install FAILED at step '{failed}'"),
            }
        }
    };
    out_line(&format!("{} {}: {headline}", meta.name, meta.version));
    let width = report.steps.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for step in &report.steps {
        out_line(&format!("  {:12}  {:width$}  {}", step.state.label(), step.name, step.detail));
        for extra in &step.on_failure {
            out_line(&format!("  {:12}  {:width$}    on_failure {}: {}", "", "", extra.name, extra.state.label()));
        }
    }
    if let Some(staging) = &report.staging {
        out_line(&format!("  staged in {}", staging.display()));
    }
    if let Some(log) = &report.log {
        out_line(&format!("  log: {}", log.display()));
    }
    let next = match error {
        None if report.nothing_to_do => format!("next: sh {bin} status shows the last run; --force or --from STEP redoes steps on purpose"),
        None if ctx.global.noexec => format!("next: sh {bin} (without --noexec) runs the steps"),
        None => format!("next: sh {bin} status shows this run again; running the bundle again redoes nothing"),
        Some(_) => format!("next: fix what the error says, then run sh {bin} again: the steps done are not redone (sh {bin} support collects the logs for the vendor)"),
    };
    out_line(&next);
}
