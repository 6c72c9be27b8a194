//! `install` (the default), `plan` and `preflight`.

use serde_json::json;

use super::{damage_first, envelope, open, print_json, verify, Context};
use crate::cli::{AnswersArgs, EngineArgs, InstallArgs, PlanArgs, PreflightArgs};
use crate::error::{Error, Result};
use crate::install::upgrade::{Change, Same};
use crate::install::{self, answers::Given, Options, Report, StepState, Stopped};
use crate::progress::out_line;
use crate::steps::Overrides;

/// Where the values come from, typed once. The registry flags are `--set`s of the keys
/// the restore steps read them from (so every step using the key sees them), and stand
/// in for a root or an address the spec fixes.
fn given(bundle: &crate::format::Bundle, answers: &AnswersArgs, json: bool, noexec: bool) -> Result<(Given, Overrides)> {
    let mut sets = answers.set.iter().map(|s| install::params::parse_set(s)).collect::<Result<Vec<_>>>()?;
    for step in &bundle.index.steps {
        if let crate::format::Action::RestoreRegistry { root_from_config, address_from_config, .. } = &step.action {
            if let (Some(key), Some(root)) = (root_from_config, &answers.registry_root) {
                sets.push((key.clone(), crate::fsx::absolute(root).display().to_string()));
            }
            if let (Some(key), Some(address)) = (address_from_config, &answers.registry_address) {
                sets.push((key.clone(), address.clone()));
            }
        }
    }
    // Someone at a terminal: stdin is one (stderr may go to a file).
    let terminal = nix::unistd::isatty(std::io::stdin()).unwrap_or(false);
    let given = Given {
        config: answers.config.clone(),
        use_sample: answers.use_sample,
        sets,
        interactive: terminal && !answers.yes && !json,
        answered: Vec::new(),
        forget_secrets: answers.forget_secrets,
        noexec,
    };
    let overrides =
        Overrides { engine: None, registry_root: answers.registry_root.clone(), registry_address: answers.registry_address.clone() };
    Ok((given, overrides))
}

/// The install's options from its arguments (`plan`'s and `preflight`'s are a part of them).
pub(super) fn install_options(bundle: &crate::format::Bundle, args: &InstallArgs, json: bool) -> Result<Options> {
    let (given, mut overrides) = given(bundle, &args.answers, json, args.noexec)?;
    overrides.engine = args.engine.engine.clone();
    Ok(Options {
        target: args.target.clone(),
        keep: args.keep,
        noexec: args.noexec,
        redo: install::plan::Redo { force: args.redo.force, from: args.redo.from.clone() },
        overrides,
        containerd_namespace: args.engine.containerd_namespace.clone(),
        given,
        skip_preflight: args.skip_preflight.clone(),
        role: args.role.role,
        allow_downgrade: args.redo.allow_downgrade,
        fan_out: std::env::var("AIRBIN_FAN_OUT").ok().filter(|t| !t.is_empty() && t.len() < 100),
    })
}

/// `plan`'s arguments, as the install they describe.
fn planned_install(args: &PlanArgs) -> InstallArgs {
    InstallArgs {
        target: args.target.clone(),
        answers: args.answers.clone(),
        role: args.role.clone(),
        engine: EngineArgs { engine: args.engine.clone(), ..EngineArgs::default() },
        redo: args.redo.clone(),
        trust: args.trust.clone(),
        ..InstallArgs::default()
    }
}

/// `plan` (and `install --dry-run`): this host's steps, what each does with which
/// values, and which are done already. Changes nothing.
pub fn plan(ctx: &Context, args: &PlanArgs) -> Result<()> {
    let bundle = open(ctx)?;
    verify(ctx, &bundle, &args.trust)?;
    let options = install_options(&bundle, &planned_install(args), ctx.ui.json)?;
    if args.uninstall {
        return super::uninstall::show_plan(ctx, &bundle, &options);
    }
    show_plan(ctx, &bundle, &options)
}

fn show_plan(ctx: &Context, bundle: &crate::format::Bundle, options: &Options) -> Result<()> {
    let prepared = install::prepare(bundle, options)?;
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
pub fn preflight(ctx: &Context, args: &PreflightArgs) -> Result<()> {
    let bundle = open(ctx)?;
    // Where keys are pinned, nothing (the registry a step names, the engine) is asked
    // before the bundle's digest and signature pass.
    super::verified_first_where_pinned(ctx, &bundle, &args.trust)?;
    let preflight_of = InstallArgs {
        target: args.target.clone(),
        skip_preflight: args.skip_preflight.clone(),
        answers: args.answers.clone(),
        role: args.role.clone(),
        engine: args.engine.clone(),
        redo: args.redo.clone(),
        trust: args.trust.clone(),
        ..InstallArgs::default()
    };
    let options = install_options(&bundle, &preflight_of, ctx.ui.json)?;
    let prepared = install::prepare(&bundle, &options)?;
    let ready = install::check_host(&prepared, &options)?;
    let role = &prepared.role;
    let to_run = if prepared.change.nothing_to_do() && options.redo.from.is_none() { 0 } else { prepared.plan.to_run().count() };
    if ctx.ui.json {
        print_json(&envelope(
            "preflight",
            None,
            json!({"bundle": bundle.index.bundle, "role": role.role, "role_why": role.explain(), "steps_to_run": to_run,
                   "engine": ready.engine.as_ref().map(|e| e.name())}),
        ));
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

/// The command line's values for the fan-out, and the flags every node's run is given.
pub fn fan_out(args: &InstallArgs) -> install::nodes::FanOut {
    let mut pass = Vec::new();
    let mut flag = |name: &str, value: Option<&str>| {
        pass.push(name.to_string());
        pass.extend(value.map(str::to_string));
    };
    if let Some(engine) = &args.engine.engine {
        flag("--engine", Some(engine));
    }
    if args.engine.containerd_namespace != EngineArgs::default().containerd_namespace {
        flag("--containerd-namespace", Some(&args.engine.containerd_namespace));
    }
    if args.redo.force {
        flag("--force", None);
    }
    if let Some(from) = &args.redo.from {
        flag("--from", Some(from));
    }
    for skip in &args.skip_preflight {
        flag("--skip-preflight", Some(skip));
    }
    if let Some(root) = &args.answers.registry_root {
        flag("--registry-root", Some(&root.display().to_string()));
    }
    if let Some(address) = &args.answers.registry_address {
        flag("--registry-address", Some(address));
    }
    if args.keep {
        flag("--keep", None);
    }
    if args.redo.allow_downgrade {
        flag("--allow-downgrade", None);
    }
    for set in &args.answers.set {
        flag("--set", Some(set));
    }
    if args.noexec {
        flag("--noexec", None);
    }
    if args.answers.forget_secrets {
        flag("--forget-secrets", None);
    }
    install::nodes::FanOut {
        parallel: args.fan_out.parallel,
        ssh_options: args.fan_out.ssh_option.clone(),
        remote_dir: args.fan_out.remote_dir.clone(),
        pass,
        control_dir: None,
        keys: Vec::new(),
        tag: format!("{}-{}", crate::progress::timestamp().replace(':', ""), crate::fsx::random_hex()),
    }
}

/// Flags that mean something only with --all-nodes.
fn check_fan_out_flags(args: &InstallArgs) -> Result<()> {
    let f = &args.fan_out;
    if !f.all_nodes && (f.parallel != 0 || !f.ssh_option.is_empty() || f.remote_dir.is_some()) {
        return Err(Error::usage("--parallel, --ssh-option and --remote-dir go with --all-nodes; add it, or leave them out"));
    }
    Ok(())
}

/// `install`: verifies the bundle, resolves the values, plans, checks the host, stages
/// what the steps read from disk and runs every step not done yet; says what was done,
/// where the log is and what to do next. A rerun resumes.
pub fn install(ctx: &Context, args: &InstallArgs) -> Result<()> {
    check_fan_out_flags(args)?;
    if args.dry_run {
        let bundle = open(ctx)?;
        verify(ctx, &bundle, &args.trust)?;
        return show_plan(ctx, &bundle, &install_options(&bundle, args, ctx.ui.json)?);
    }
    if args.fan_out.all_nodes {
        return super::nodes::install(ctx, args);
    }
    let bundle = open(ctx)?;
    let keys = super::verified_first_where_pinned(ctx, &bundle, &args.trust)?;
    if args.answers.forget_secrets {
        // Asked for on purpose: gone now, whatever becomes of this run.
        install::remembered::forget_secrets(&install::state::StateDir::for_bundle(&bundle.index.bundle.name));
    }
    let options = install_options(&bundle, args, ctx.ui.json)?;
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
        let installed = install_verified_as_it_goes(ctx, &bundle, &options, &|| mark_if_due(true));
        let _ = verifier.join().expect("the verifier panicked");
        installed
    })
}

/// On a terminal, the missing values are asked for before the bundle's verification
/// starts drawing its progress: the questions get the terminal to themselves.
fn ask_first(bundle: &crate::format::Bundle, mut options: Options) -> Result<Options> {
    if !options.given.interactive || options.noexec {
        return Ok(options);
    }
    let state = install::state::StateDir::for_bundle(&bundle.index.bundle.name);
    let answers = install::answers::resolve(bundle, &options.given, &state)?;
    let asked = answers.parameters.iter().filter(|p| p.from == install::params::From::Prompt);
    options.given.answered = asked.map(|p| (p.name.clone(), p.actual.clone())).chain(answers.asked).collect();
    Ok(options)
}

fn install_verified_as_it_goes(ctx: &Context, bundle: &crate::format::Bundle, options: &Options, began: &(dyn Fn() + Sync)) -> Result<()> {
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
                None if ctx.ui.json => print_json(&envelope("install", Some(&error), json!({"bundle": meta}))),
                None => {}
            }
            Err(error)
        }
    }
}

fn summarize(ctx: &Context, bundle: &crate::format::Bundle, report: &Report, error: Option<&Error>, options: &Options) {
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
    if ctx.ui.quiet {
        return;
    }
    let bin = crate::shell::bundle();
    let count = |state: StepState| report.steps.iter().filter(|s| s.state == state).count();
    let headline = match error {
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
        Some(e) if e.class == crate::error::ExitClass::Interrupted => "install INTERRUPTED".to_string(),
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
        None if report.nothing_to_do => format!("next: {bin} status shows the last run; --from STEP or --force redoes steps on purpose"),
        None if options.noexec => format!("next: {bin} (without --noexec) runs the steps"),
        None => format!("next: {bin} status --verify checks the host against this install; running the bundle again redoes nothing"),
        Some(e) if e.class == crate::error::ExitClass::Interrupted => format!("next: run {bin} again: the steps done are not redone"),
        Some(_) => format!("next: fix what the error says, then run {bin} again: the steps done are not redone ({bin} support collects the logs for the vendor)"),
    };
    out_line(&next);
}
