//! The install, as a plan that is computed, checked, then executed:
//!
//! 1. the bundle is being verified (by the caller, on another thread): no step but an
//!    image load or a registry restore starts before its verdict, and those hold back
//!    their commit until then (the end of the stream: `engines::load`; the placement:
//!    `registry::restore`), so nothing commits unverified bytes;
//! 2. the product's config is found and read, this node's role found (`--role`, or
//!    this host's address in the config's node list: `roles`), and the config checked:
//!    every required key and every key this role's steps take a value from, all listed
//!    at once;
//! 3. every step of the role is prepared (its values resolved) and the plan made: this
//!    host's steps minus those the journal records as done for this very bundle;
//! 4. preflight checks what the steps to run need, and reports every problem at once;
//! 5. the state directory is locked, the run's log opened, leftovers of a killed run
//!    swept from every place a run writes;
//! 6. each step runs, journaled as it starts and ends; before the first that is not an
//!    image load or a restore, the members the steps read from disk are staged, with the
//!    config as `config`;
//! 7. the report says what was done, where the log is, and what to do next.

pub mod config;
pub mod journal;
pub mod nodes;
pub mod params;
pub mod plan;
pub mod preflight;
pub mod record;
pub mod roles;
pub mod runner;
mod show;
pub mod state;
pub mod upgrade;
pub mod verified;

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, ExitClass, IoContext, Result};
use crate::extract;
use crate::format::{Action, Bundle, Member, Role};
use crate::fsx;
use crate::progress::Ui;
use crate::runlog;
use crate::steps::{self, Inputs, Needs, Overrides};
use config::{ProductConfig, Source};
use journal::{Event, History, Journal, Outcome};
use plan::{Plan, PlanState, Redo};
use roles::NodeRole;
use runner::{StepReport, StepState};
pub use show::{plan_json, print_plan};
use state::StateDir;

/// The install's options, typed once at the command line's edge.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Stage here instead of the state directory's `staging/` (kept afterwards).
    pub target: Option<PathBuf>,
    pub keep: bool,
    /// Stage every member, run no step.
    pub noexec: bool,
    pub redo: Redo,
    pub overrides: Overrides,
    pub containerd_namespace: String,
    pub config: Option<PathBuf>,
    pub use_sample: bool,
    pub skip_preflight: Vec<String>,
    /// This node's role, when given (`--role`); else found from the config's node lists.
    pub role: Option<Role>,
    /// `--set KEY=VALUE` pairs, for the bundle's parameters.
    pub sets: Vec<(String, String)>,
    /// A terminal to ask for missing required values on (not with `--yes` or `--json`).
    pub interactive: bool,
    /// Values asked for on the terminal already, by parameter name.
    pub answers: Vec<(String, String)>,
    /// Install over a newer version on purpose.
    pub allow_downgrade: bool,
}

/// What an install did, for the summary and `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub role: Role,
    pub steps: Vec<StepReport>,
    /// Where the members were staged, when kept.
    pub staging: Option<PathBuf>,
    pub log: Option<PathBuf>,
    /// Every step was done already: nothing ran.
    pub nothing_to_do: bool,
    /// Leftovers of a killed run removed first: how many, and their bytes.
    pub swept: (usize, u64),
    /// What this run was to what was installed.
    pub change: upgrade::Change,
}

/// An install that stopped: the error, and what it had done.
pub struct Stopped {
    pub error: Error,
    pub report: Option<Box<Report>>,
}

impl From<Error> for Stopped {
    fn from(error: Error) -> Stopped {
        Stopped { error, report: None }
    }
}

/// Everything up to the plan: what `plan` shows and `install` executes.
pub struct Prepared<'a> {
    pub bundle: &'a Bundle,
    pub state: StateDir,
    pub config: Option<ProductConfig>,
    pub plan: Plan,
    pub history: History,
    /// This node's role, and why.
    pub role: NodeRole,
    /// The bundle's steps that do not run on this node's role.
    pub other_roles: Vec<steps::Step>,
    /// Keys of the config the bundle uses, with their values (masked where secret).
    pub config_values: Vec<(String, String)>,
    /// Every parameter, its value (masked where secret) and where it came from.
    pub parameters: Vec<params::Resolved>,
    /// What is installed here, and what this bundle is to it.
    pub installed: Option<record::Installed>,
    pub change: upgrade::Change,
    /// The bundle's steps of this role that are not part of this kind of install.
    pub other_phase: Vec<steps::Step>,
}

/// Steps 2 and 3: config, prepared steps, the plan (read-only: nothing is written).
pub fn prepare<'a>(bundle: &'a Bundle, options: &Options) -> Result<Prepared<'a>> {
    let meta = &bundle.index.bundle;
    let state = StateDir::for_bundle(&meta.name);
    let all_steps = if options.noexec { &[][..] } else { &bundle.index.steps[..] };
    let mut config = load_config(bundle, options, all_steps)?;
    let parameters = match (&mut config, bundle.index.parameters.is_empty()) {
        (_, true) if !options.sets.is_empty() => {
            return Err(Error::usage(format!(
                "--set {}: this bundle declares no parameters; its values come from the product's config",
                options.sets[0].0
            )))
        }
        // --noexec runs no step: nothing takes a value.
        (Some(config), false) if !options.noexec => {
            let terminal = params::Terminal;
            let prompter = options.interactive.then_some(&terminal as &dyn params::Prompter);
            params::resolve(
                &bundle.index.parameters,
                config,
                &options.sets,
                &options.answers,
                prompter,
                &bundle.path.display().to_string(),
            )?
        }
        _ => Vec::new(),
    };
    let role = match options.role {
        Some(role) => NodeRole { role, why: roles::Why::Flag },
        // --noexec runs no step, and may have no config to find the role in.
        None if options.noexec && config.is_none() => NodeRole::single(),
        None => {
            let list = roles::node_list(&bundle.index.config, config.as_ref())?;
            let path = config.as_ref().map_or_else(String::new, |c| c.path.display().to_string());
            roles::resolve(None, list.as_ref(), &roles::ThisHost::detect(), &path)?
        }
    };
    let installed = record::read(&state);
    let change = if options.noexec {
        upgrade::Change::Install
    } else {
        upgrade::decide(meta, &bundle.sha256(), installed.as_ref(), options.redo.force, options.allow_downgrade)?
    };
    let (steps, other_roles): (Vec<steps::Step>, Vec<steps::Step>) = all_steps.iter().cloned().partition(|s| s.runs_on(role.role));
    let (steps, other_phase): (Vec<steps::Step>, Vec<steps::Step>) = steps.into_iter().partition(|s| s.when.includes(change.phase()));
    // Keys that parameters hold were checked against their declarations.
    let unchecked =
        |keys: Vec<String>| keys.into_iter().filter(|k| !bundle.index.parameters.iter().any(|p| p.key() == k)).collect::<Vec<_>>();
    if let Some(config) = config.as_ref().filter(|_| !options.noexec) {
        check_missing(config, &unchecked(used_keys(bundle, &steps, &options.overrides)))?;
    }
    let steps = &steps[..];
    if let Some(config) = &config {
        runlog::add_secrets(config.flat().into_iter().filter(|(k, _)| config.is_secret(k)).map(|(_, v)| v));
    }
    let staging = options.target.clone().map(|t| fsx::absolute(&t)).unwrap_or_else(|| state.staging());
    let inputs = Inputs { bundle, config: config.as_ref(), overrides: &options.overrides, staging: &staging };
    let prepared = steps.iter().map(|s| Ok((s.clone(), steps::prepare(s, &inputs)?))).collect::<Result<Vec<_>>>()?;
    let history = History::of(&journal::read(&state.journal()));
    let sha = bundle.sha256();
    let this_bundle = history.bundle_sha256.as_deref() == Some(sha.as_str());
    let plan = Plan::new(prepared, &history, this_bundle, &options.redo, staging)?;
    let config_values = match &config {
        Some(config) => unchecked(used_keys(bundle, steps, &options.overrides))
            .into_iter()
            .map(|key| {
                let value = config.shown(&key).unwrap_or_else(|| "(not set)".into());
                let shown = if config.is_secret(&key) { "********".into() } else { value };
                (key, shown)
            })
            .collect(),
        None => Vec::new(),
    };
    Ok(Prepared { bundle, state, config, plan, history, role, other_roles, config_values, parameters, installed, change, other_phase })
}

/// The config keys the bundle needs: those the spec requires and those steps name.
fn used_keys(bundle: &Bundle, steps: &[steps::Step], overrides: &Overrides) -> Vec<String> {
    let mut keys: Vec<String> = bundle.index.config.required.clone();
    for step in steps.iter().chain(steps.iter().flat_map(|s| &s.on_failure)) {
        let mut add = |key: &str| {
            if !keys.iter().any(|k| k == key) {
                keys.push(key.to_string());
            }
        };
        match &step.action {
            Action::RestoreRegistry { root_from_config, address_from_config, .. } => {
                root_from_config.iter().filter(|_| overrides.registry_root.is_none()).for_each(|k| add(k));
                address_from_config.iter().filter(|_| overrides.registry_address.is_none()).for_each(|k| add(k));
            }
            Action::Extract { to, .. } => config::referenced_keys(to).iter().for_each(|k| add(k)),
            Action::WaitFor { tcp, http } => tcp.iter().chain(http).flat_map(|t| config::referenced_keys(t)).for_each(|k| add(&k)),
            Action::Command { run } => run.iter().flat_map(|w| config::referenced_keys(w)).for_each(|k| add(&k)),
            Action::PushImages { registry, prefix, username, password, .. } => std::iter::once(registry)
                .chain(prefix)
                .chain(username)
                .chain(password)
                .flat_map(|t| config::referenced_keys(t))
                .for_each(|k| add(&k)),
            Action::LoadImages { .. } => {}
        }
        step.env.values().flat_map(|v| config::referenced_keys(v)).for_each(|k| add(&k));
    }
    keys
}

/// Whether the install needs the product's config: it runs the product's commands, or
/// requires keys, or a step takes a value from it.
fn needs_config(bundle: &Bundle, steps: &[steps::Step], overrides: &Overrides) -> bool {
    !bundle.index.config.required.is_empty()
        || !used_keys(bundle, steps, overrides).is_empty()
        || steps.iter().any(|s| matches!(s.action, Action::Command { .. }))
}

fn load_config(bundle: &Bundle, options: &Options, steps: &[steps::Step]) -> Result<Option<ProductConfig>> {
    let sample = bundle.index.config_sample();
    let config = if options.use_sample {
        let sample = sample.ok_or_else(|| Error::usage("--use-sample: this bundle carries no config sample; give --config FILE"))?;
        Some(sample_config(bundle, sample)?)
    } else {
        match config::locate(options.config.as_deref(), &bundle.path) {
            Some((path, source)) => Some(config::load(&path, source)?),
            // The parameters are the answers: --set, defaults and prompts give them.
            None if !bundle.index.parameters.is_empty() && !options.noexec => Some(config::empty(&bundle.path)),
            None if needs_config(bundle, steps, &options.overrides) && !options.noexec => return Err(no_config(bundle, sample)),
            None => None,
        }
    };
    Ok(config)
}

/// Every key of `keys` the config lacks, in one message. (`--noexec` runs no step: a
/// config, if there is one, is only staged, and not checked.)
fn check_missing(config: &ProductConfig, keys: &[String]) -> Result<()> {
    let missing = config.missing(keys.iter().map(String::as_str));
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::usage(format!(
        "{}: {} missing or empty: {}; set {} (see the bundle's config sample) and run again",
        config.path.display(),
        if missing.len() == 1 { "a key the bundle needs is" } else { "keys the bundle needs are" },
        missing.join(", "),
        if missing.len() == 1 { "it" } else { "them" },
    )))
}

/// The error for a bundle that needs a config and was given none: where the sample is
/// and the two commands that start from it.
fn no_config(bundle: &Bundle, sample: Option<&Member>) -> Error {
    let bin = bundle.path.display();
    let beside = config::beside_bundle(&bundle.path);
    match sample {
        Some(sample) => Error::usage(format!(
            "this bundle needs the product's config, and there is none at {} (or --config FILE); start from its sample: sh {bin} extract {} --target . && cp {} {} , edit it, then run the bundle again (or --use-sample to install with the sample as it is)",
            beside.display(),
            sample.name,
            sample.name,
            beside.display()
        )),
        None => Error::usage(format!("this bundle needs the product's config: put it at {} or give --config FILE", beside.display())),
    }
}

/// The bundle's config sample, taken as the config (`--use-sample`); read from the
/// bundle (it is small: capped at 1 MiB).
pub fn sample_config(bundle: &Bundle, sample: &Member) -> Result<ProductConfig> {
    use std::io::Read;
    let mut text = String::new();
    bundle
        .content_reader(sample)?
        .take(1 << 20)
        .read_to_string(&mut text)
        .map_err(|e| Error::usage(format!("the bundle's config sample {} is not text ({e})", sample.name)))?;
    let base = bundle.path.parent().map_or_else(|| PathBuf::from("."), fsx::absolute);
    config::parse(PathBuf::from(format!("{}:{}", bundle.path.display(), sample.name)), Source::Sample, base, text)
}

/// A different bundle over an unfinished install stops, saying what is unfinished.
fn refuse_over_unfinished(bundle: &Bundle, history: &History, options: &Options) -> Result<()> {
    if !history.unfinished_other(&bundle.sha256()) || options.redo.force {
        return Ok(());
    }
    let done: Vec<&str> = history.done.keys().map(String::as_str).collect();
    Err(Error::host(format!(
        "an install of {} {} (another bundle, SHA-256 {}) is unfinished here{}; finish it with that bundle, or give --force to install this one over it",
        bundle.index.bundle.name,
        history.version.as_deref().unwrap_or("?"),
        history.bundle_sha256.as_deref().map_or("?", |s| &s[..12.min(s.len())]),
        if done.is_empty() { String::new() } else { format!(" (done: {})", done.join(", ")) }
    )))
}

/// Steps 4 to 7: checks, locks, sweeps, stages and runs the plan.
/// `began` hears when the run has begun for real: its state directory locked, its start
/// journaled (never for a run refused before that, nor for `--noexec`).
pub fn run(prepared: Prepared, options: &Options, ui: &Ui, began: &(dyn Fn() + Sync)) -> std::result::Result<Report, Stopped> {
    // Another build of the installed version: nothing to do. (This very bundle: the
    // journal says what is done, and redoes a step whose values changed.)
    if let (upgrade::Change::Same { this_build: false, .. }, None) = (&prepared.change, &options.redo.from) {
        let meta = &prepared.bundle.index.bundle;
        ui.status(format!("{} {}: {}", meta.name, meta.version, prepared.change.describe(meta)));
        return Ok(Report {
            role: prepared.role.role,
            steps: Vec::new(),
            staging: None,
            log: None,
            nothing_to_do: true,
            swept: (0, 0),
            change: prepared.change,
        });
    }
    refuse_over_unfinished(prepared.bundle, &prepared.history, options)?;
    let nothing_to_do = !prepared.plan.steps.is_empty() && !prepared.plan.runs_any() && !options.noexec;
    // Preflight, before anything lands (the lock and the log included); with every
    // step done, nothing needs the host to be ready.
    let ready = if nothing_to_do { preflight::Ready { engine: None } } else { check_host(&prepared, options)? };
    let Prepared { bundle, state, config, plan, history, role, parameters, change, .. } = prepared;
    let meta = &bundle.index.bundle;
    let sha = bundle.sha256();
    let to_stage = members_to_stage(bundle, &plan, options);
    if nothing_to_do {
        ui.status(format!("{} {}: every step is done already (journal {})", meta.name, meta.version, state.journal().display()));
        if !history.complete {
            // Killed after its last step, before it could say it had finished: say it now.
            let _lock = state.lock()?;
            Journal::open(&state.journal(), &run_id(), &sha)?.append(Event::RunFinished {
                outcome: Outcome::Ok,
                exit_code: 0,
                complete: true,
            })?;
        }
        let steps = plan.steps.iter().map(already_done).collect();
        // Killed after its last step, before the record: the record says it now. (`Same`
        // is the record naming this very bundle.)
        if !matches!(change, upgrade::Change::Same { .. }) {
            let _lock = state.lock()?;
            record::write(&state, &record::Finished { index: &bundle.index, sha256: &sha, how: change.clone(), parameters: &parameters })?;
        }
        return Ok(Report { role: role.role, steps, staging: None, log: None, nothing_to_do: true, swept: (0, 0), change });
    }
    let needs: Vec<Needs> = plan.to_run().map(|s| s.prepared.needs(bundle)).collect();
    let staging = plan.staging.clone();

    // A run that finds the bundle damaged before any step is done leaves no state
    // directory it made itself (it may have started before the verdict: `stage_and_run`).
    let made_here = fsx::first_missing_ancestor(&state.root);
    let lock = state.lock()?;
    // Read again under the lock: another run may have finished in between.
    let history = History::of(&journal::read(&state.journal()));
    refuse_over_unfinished(bundle, &history, options)?;
    let this_bundle = history.bundle_sha256.as_deref() == Some(sha.as_str());
    let plan =
        Plan::new(plan.steps.into_iter().map(|s| (s.step, s.prepared)).collect(), &history, this_bundle, &options.redo, plan.staging)?;

    let run_id = run_id();
    let log = open_log(&state, &run_id)?;
    ui.status(format!("{} {}: log in {}", meta.name, meta.version, log.display()));
    runlog::line(&format!("bundle {} SHA-256 {sha}, airbin runtime {}", bundle.path.display(), crate::VERSION));
    runlog::line(&format!("role {} ({})", role.role, role.explain()));
    runlog::line(&change.describe(meta));
    if let Some(config) = &config {
        runlog::line(&format!("config {} ({})", config.path.display(), config.source.as_str()));
    }
    let engine = ready.engine.as_ref().map(|e| format!("; images load into {}", e.name())).unwrap_or_default();
    runlog::line(&format!(
        "preflight passed (skipped: {}){engine}",
        if options.skip_preflight.is_empty() { "none".into() } else { options.skip_preflight.join(", ") }
    ));
    for step in &plan.steps {
        let decision = match (step.state, &step.done_at) {
            (PlanState::Done, Some(at)) => format!("done {at}: not run again"),
            (PlanState::Redo, _) => "done earlier: redone on purpose".to_string(),
            _ => "to do".to_string(),
        };
        runlog::line(&format!("plan: {}: {decision}; {}", step.name, step.prepared.describe()));
    }

    // Leftovers of a killed run, wherever a run writes.
    let mut places: Vec<PathBuf> = vec![staging.clone(), state.root.clone()];
    places.extend(needs.iter().flat_map(|n| n.writes.iter().cloned()));
    for place in &history.places {
        if !places.contains(place) {
            places.push(place.clone());
        }
    }
    let swept = sweep(&places, &state, &sha);
    if swept.0 > 0 {
        ui.status(format!("swept {} leftover(s) of an interrupted run, {} freed", swept.0, indicatif::HumanBytes(swept.1)));
    }

    // A --noexec run runs no step: it leaves the journal as it was.
    let mut journal = Journal::open(&state.journal(), &run_id, &sha)?.recording(!options.noexec);
    let reset = options.redo.force || !this_bundle;
    journal.append(Event::RunStarted {
        bundle_sha256: sha.clone(),
        version: meta.version.clone(),
        pid: std::process::id(),
        log: log.clone(),
        reset,
        redo: plan.redone(),
        places: places.clone(),
        role: Some(role.role),
        phase: Some(change.phase()),
    })?;
    if !options.noexec {
        began();
    }

    let run = Run { parameters: &parameters, change: &change, role: role.role };
    let result = stage_and_run(bundle, &state, &plan, config.as_ref(), &run, options, ui, &ready, &mut journal, &to_stage, &staging);
    let (steps, error) = match result {
        Ok(steps) => (steps, None),
        Err((steps, error)) => (steps, Some(error)),
    };
    let complete = error.is_none() && !options.noexec;
    let outcome = match &error {
        None => Outcome::Ok,
        Some(e) if e.class == ExitClass::Interrupted => Outcome::Interrupted,
        Some(_) => Outcome::Failed,
    };
    let exit_code = error.as_ref().map_or(0, |e| e.class.code());
    // The record moves only once every step is done: a failed upgrade leaves the old one.
    let error = match (complete, error) {
        (true, None) => {
            record::write(&state, &record::Finished { index: &bundle.index, sha256: &sha, how: change.clone(), parameters: &parameters })
                .err()
                .map(|e| Error::new(e.class, format!("every step is done, and the install record could not be written: {}", e.message)))
        }
        (_, error) => error,
    };
    let _ = journal.append(Event::RunFinished { outcome, exit_code, complete });
    runlog::sync();

    // makeself's rule: staging goes once everything is done, unless asked to keep it.
    // With no steps at all, staging is what the install is for.
    let keep = options.keep || options.target.is_some() || options.noexec || !complete || plan.steps.is_empty();
    if !keep && staging.exists() {
        let _ = fs::remove_dir_all(&staging);
    }
    let mut log = Some(log);
    let damaged = error.as_ref().is_some_and(|e| e.class == ExitClass::Integrity);
    if let (true, Some(made)) = (damaged && !steps.iter().any(|s| s.state == StepState::Done), made_here) {
        runlog::close();
        drop(lock);
        let _ = fs::remove_dir_all(&made);
        log = None;
    }
    let report =
        Report { role: role.role, steps, staging: (keep && staging.exists()).then_some(staging), log, nothing_to_do: false, swept, change };
    match error {
        None => Ok(report),
        Some(error) => Err(Stopped { error, report: Some(Box::new(report)) }),
    }
}

/// Preflight: whether this host can run the steps still to do, every problem in one
/// report. Runs before anything lands (the lock and the log included).
pub fn check_host(prepared: &Prepared, options: &Options) -> Result<preflight::Ready> {
    let bundle = prepared.bundle;
    let mut needs: Vec<Needs> = prepared.plan.to_run().map(|s| s.prepared.needs(bundle)).collect();
    let staging_bytes: u64 = members_to_stage(bundle, &prepared.plan, options).iter().map(|m| m.unpacked_bytes).sum();
    needs.push(Needs { space: vec![(prepared.plan.staging.clone(), staging_bytes)], ..Needs::default() });
    let host = preflight::Host {
        bundle: &bundle.index.bundle,
        requires: &bundle.index.requires,
        skip: &options.skip_preflight,
        containerd_namespace: &options.containerd_namespace,
    };
    preflight::check(&host, &needs)
}

#[allow(clippy::too_many_arguments)]
fn stage_and_run(
    bundle: &Bundle,
    state: &StateDir,
    plan: &Plan,
    config: Option<&ProductConfig>,
    run: &Run,
    options: &Options,
    ui: &Ui,
    ready: &preflight::Ready,
    journal: &mut Journal,
    to_stage: &[&Member],
    staging: &Path,
) -> std::result::Result<Vec<StepReport>, (Vec<StepReport>, Error)> {
    let not_run = |plan: &Plan, why: &str| {
        plan.steps.iter().map(|s| if s.state.runs() { StepReport::not_run(s, why) } else { already_done(s) }).collect::<Vec<_>>()
    };
    // Verified before anything but a load or a restore acts on the bundle's bytes, and
    // staged then: the loads and restores that come first overlap the verification.
    let mut staged = false;
    let mut verify_and_stage = || -> Result<()> {
        if !staged {
            bundle.await_verified()?;
            ui.status(format!("{} {}: bundle verified", bundle.index.bundle.name, bundle.index.bundle.version));
            stage(bundle, state, to_stage, config, staging, ui)?;
            staged = true;
        }
        Ok(())
    };
    if options.noexec {
        if let Err(e) = verify_and_stage() {
            return Err((not_run(plan, "staging failed"), e));
        }
        ui.status(format!("--noexec: staged in {}; no step ran", staging.display()));
        let reports =
            bundle.index.steps.iter().map(|s| StepReport::untouched(s, StepState::NotRun, "--noexec: no step ran".into())).collect();
        return Ok(reports);
    }
    let env = environment(bundle, config, run, staging);
    let overrides = &options.overrides;
    let inputs = Inputs { bundle, config, overrides, staging };
    let shared = runner::Shared { bundle, engine: ready.engine.as_ref(), ui, staging, env: &env, inputs: &inputs };
    let total = plan.steps.len();
    let mut reports = Vec::new();
    let mut failed = None;
    for (n, planned) in plan.steps.iter().enumerate() {
        if failed.is_some() {
            reports.push(StepReport::not_run(planned, "an earlier step failed"));
            continue;
        }
        if !planned.state.runs() {
            ui.status(format!("step {}/{total} {}: done already ({})", n + 1, planned.name, planned.done_at.as_deref().unwrap_or("")));
            reports.push(already_done(planned));
            continue;
        }
        // Loads and restores hold back their commit themselves (the end of the stream, the
        // placement): they overlap the verification. Everything else waits for it.
        if !matches!(planned.step.action, Action::LoadImages { .. } | Action::RestoreRegistry { .. }) {
            if let Err(e) = verify_and_stage() {
                let why = if e.class == ExitClass::Integrity { "the bundle failed its check" } else { "staging failed" };
                reports.push(StepReport::not_run(planned, why));
                failed = Some(e);
                continue;
            }
        }
        ui.status(format!("step {}/{total} {}: {}", n + 1, planned.name, planned.prepared.describe()));
        let (report, error) = runner::run(planned, &shared, journal);
        if error.is_none() {
            ui.status(format!("step {}/{total} {}: done, {}", n + 1, planned.name, report.detail));
        }
        reports.push(report);
        failed = error;
    }
    // With only loads (or no steps), staging still holds the config and the tools.
    if failed.is_none() {
        failed = verify_and_stage().err();
    }
    match failed {
        None => Ok(reports),
        Some(error) => Err((reports, error)),
    }
}

fn already_done(planned: &plan::PlannedStep) -> StepReport {
    StepReport::untouched(&planned.step, StepState::AlreadyDone, format!("done {}", planned.done_at.as_deref().unwrap_or("earlier")))
}

/// A run's id, in the journal and the log's name: when it started, and its PID.
fn run_id() -> String {
    format!("{}-{}", crate::progress::timestamp().replace(':', ""), std::process::id())
}

fn open_log(state: &StateDir, run_id: &str) -> Result<PathBuf> {
    let logs = state.logs();
    fs::create_dir_all(&logs).ctx("creating the log directory", &logs)?;
    let log = logs.join(format!("install-{run_id}.log"));
    runlog::open(&log)?;
    Ok(log)
}

/// Members the run reads from disk: those no built-in step streams from the bundle.
/// With `--noexec`, every member.
fn members_to_stage<'a>(bundle: &'a Bundle, plan: &Plan, options: &Options) -> Vec<&'a Member> {
    if options.noexec {
        return bundle.index.members.iter().collect();
    }
    // Images and registry packs stream from the bundle; extracted members are staged
    // too, since a command step may run the tool it installs.
    let consumed: Vec<&str> = plan
        .steps
        .iter()
        .filter(|s| matches!(s.step.action, Action::LoadImages { .. } | Action::RestoreRegistry { .. } | Action::PushImages { .. }))
        .filter_map(|s| s.step.action.member())
        .collect();
    bundle.index.members.iter().filter(|m| !consumed.contains(&m.name.as_str())).collect()
}

/// Removes the leftovers of killed runs from every place, and the state directory's
/// staging when it was staged for another bundle. Returns (how many, bytes).
fn sweep(places: &[PathBuf], state: &StateDir, sha: &str) -> (usize, u64) {
    let mut total = (0, 0);
    for place in places {
        let (n, bytes) = fsx::sweep(place);
        total = (total.0 + n, total.1 + bytes);
    }
    let staging = state.staging();
    if staging.exists() && fs::read_to_string(state.staged_for()).map_or(true, |s| s.trim() != sha) {
        let bytes = fsx::tree_bytes(&staging);
        let stale: Vec<PathBuf> = fs::read_dir(&staging).map(|rd| rd.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        for path in &stale {
            fsx::remove_any(path);
        }
        if !stale.is_empty() {
            total = (total.0 + stale.len(), total.1 + bytes);
        }
    }
    total
}

/// Stages the members, then the config as `config`. The state directory's own staging
/// keeps what an earlier run of this bundle staged; a `--target` is staged afresh.
fn stage(bundle: &Bundle, state: &StateDir, members: &[&Member], config: Option<&ProductConfig>, staging: &Path, ui: &Ui) -> Result<()> {
    fs::create_dir_all(staging).ctx("creating the staging directory", staging)?;
    let own = staging == state.staging();
    let missing: Vec<&Member> = members.iter().copied().filter(|m| !own || !staging.join(&m.name).exists()).collect();
    if !missing.is_empty() {
        let written = extract::extract_members(bundle, &missing, staging, ui)?;
        ui.status(format!("staged {} member(s) into {}", written.len(), staging.display()));
    }
    if let Some(config) = config {
        // The answers file holds the secrets: for root's eyes only.
        fsx::write_atomic(&staging.join("config"), config.staged_text().as_bytes(), 0o600)?;
    }
    if own {
        fs::write(state.staged_for(), bundle.sha256()).ctx("writing", &state.staged_for())?;
    }
    Ok(())
}

/// What this run is, for its steps' environment.
struct Run<'a> {
    parameters: &'a [params::Resolved],
    change: &'a upgrade::Change,
    role: Role,
}

/// The environment of every command step.
fn environment(bundle: &Bundle, config: Option<&ProductConfig>, run: &Run, staging: &Path) -> Vec<(String, String)> {
    let (role, parameters) = (run.role, run.parameters);
    let meta = &bundle.index.bundle;
    let mut env = vec![
        ("AIRBIN_STAGING".to_string(), staging.display().to_string()),
        ("AIRBIN_BUNDLE_NAME".to_string(), meta.name.clone()),
        ("AIRBIN_BUNDLE_VERSION".to_string(), meta.version.clone()),
        ("AIRBIN_BUNDLE_SHA256".to_string(), bundle.sha256()),
        ("AIRBIN_BUNDLE".to_string(), fsx::absolute(&bundle.path).display().to_string()),
        ("AIRBIN_ROLE".to_string(), role.to_string()),
        ("AIRBIN_INSTALL_KIND".to_string(), run.change.as_str().to_string()),
        ("AIRBIN_INSTALLED_VERSION".to_string(), run.change.installed_version().unwrap_or("").to_string()),
    ];
    if let Some(log) = runlog::path() {
        env.push(("AIRBIN_LOG".to_string(), log.display().to_string()));
    }
    if let Some(config) = config {
        env.push(("AIRBIN_CONFIG".to_string(), staging.join("config").display().to_string()));
        for (key, value) in config.flat() {
            env.push((config::env_name("AIRBIN_CONFIG_", &key), value));
        }
    }
    for param in parameters {
        env.push((config::env_name("AIRBIN_PARAM_", &param.name), param.actual.clone()));
    }
    env
}
