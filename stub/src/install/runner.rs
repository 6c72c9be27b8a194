//! The run: a prepared plan executed. Preflight, then under the state directory's
//! lock: what a killed run left is swept (temporaries, staging, processes), the log
//! opened, the run journaled and its answers remembered; each step runs in turn
//! (`attempt`); the record moves once every step is done; staging goes when the run
//! ends, whatever the end.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::attempt::{self, Shared};
use super::journal::{self, Event, History, Journal, Outcome};
use super::plan::{Plan, PlanState, PlannedStep};
use super::{answers, check_host, config::ProductConfig, done_by, members_to_stage, params, preflight, record, upgrade};
use super::{Options, Prepared, Report, Stopped};
use crate::error::{Error, ExitClass, IoContext, Result};
use crate::format::{Action, Bundle, Member, Phase, Role};
use crate::fsx;
use crate::progress::Ui;
use crate::runlog;
use crate::steps::{self, Inputs, Needs};

use super::state::StateDir;

/// What became of a step in this run, for the summary, `status` and `--json`.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum StepState {
    /// Done by this run.
    Done,
    /// Done by an earlier run, not run again.
    AlreadyDone,
    Failed,
    /// Not run: an earlier step failed, or `--noexec`.
    NotRun,
}

impl StepState {
    pub fn label(self) -> &'static str {
        match self {
            StepState::Done => "done",
            StepState::AlreadyDone => "already done",
            StepState::Failed => "FAILED",
            StepState::NotRun => "not run",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    pub name: String,
    pub kind: &'static str,
    pub state: StepState,
    pub detail: String,
    /// Attempts this run made (0 when it made none).
    pub attempts: u32,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub on_failure: Vec<StepReport>,
}

impl StepReport {
    /// A step this run did not run, with why.
    pub fn untouched(step: &steps::Step, state: StepState, detail: String) -> StepReport {
        StepReport { name: step.name(), kind: step.action.kind(), state, detail, attempts: 0, seconds: 0.0, on_failure: vec![] }
    }

    pub fn not_run(step: &PlannedStep, why: &str) -> StepReport {
        StepReport::untouched(&step.step, StepState::NotRun, why.into())
    }
}

/// Steps 4 to 6 of the install: checks, locks, sweeps, stages and runs the plan.
/// `began` hears when the run has begun for real: its state directory locked, its start
/// journaled (never for a run refused before that, nor for `--noexec`).
pub fn run(prepared: Prepared, options: &Options, ui: &Ui, began: &(dyn Fn() + Sync)) -> std::result::Result<Report, Stopped> {
    refuse_over_unfinished(prepared.bundle, &prepared.history, options)?;
    // Preflight, before anything lands (the lock and the log included); with every
    // step done, nothing needs the host to be ready.
    let ready = if nothing_to_do(&prepared.change, &prepared.plan, options) {
        preflight::Ready { engine: None }
    } else {
        check_host(&prepared, options)?
    };
    let Prepared { bundle, state, answers, plan, role, change, .. } = prepared;
    let meta = &bundle.index.bundle;
    let sha = bundle.sha256();

    // A run that finds the bundle damaged before any step is done leaves no state
    // directory it made itself (it may have started before the verdict).
    let made_here = fsx::first_missing_ancestor(&state.root);
    let lock = state.lock()?;
    // Read again under the lock: another run may have finished in between.
    let history = History::of(&journal::read(&state.journal()));
    refuse_over_unfinished(bundle, &history, options)?;
    let plan = Plan::new(
        plan.steps.into_iter().map(|s| (s.step, s.prepared)).collect(),
        done_by(&change, &history, &sha, options),
        &options.redo,
        plan.staging,
    )?;
    say_if_killed(&history, ui);
    let needs: Vec<Needs> = plan.to_run().map(|s| s.prepared.needs(bundle, &s.name)).collect();
    let swept = sweep_leftovers(&history, &state, &plan.staging, &needs, ui);

    if nothing_to_do(&change, &plan, options) {
        return finish_with_nothing_to_do(bundle, &state, &history, &plan, role.role, change, &answers, swept, ui).map_err(Stopped::from);
    }

    let run_id = run_id();
    let log = open_log(&state, &run_id)?;
    ui.status(format!("{} {}: log in {}", meta.name, meta.version, log.display()));
    runlog::line(&format!("bundle {} SHA-256 {sha}, airbin runtime {}", bundle.path.display(), crate::VERSION));
    runlog::line(&format!("role {} ({})", role.role, role.explain()));
    runlog::line(&change.describe(meta));
    if let Some(config) = &answers.config {
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

    // A --noexec run runs no step: it leaves the journal as it was.
    let mut journal = Journal::open(&state.journal(), &run_id, &sha)?.recording(!options.noexec);
    let journal_is_ours = history.bundle_sha256.as_deref() == Some(sha.as_str()) && history.phase == Some(change.phase());
    let mut places: Vec<PathBuf> = vec![plan.staging.clone(), state.root.clone()];
    places.extend(needs.iter().flat_map(|n| n.writes.iter().cloned()));
    journal.append(Event::RunStarted {
        bundle_sha256: sha.clone(),
        version: meta.version.clone(),
        pid: std::process::id(),
        log: log.clone(),
        reset: options.redo.force || !journal_is_ours || matches!(change, upgrade::Change::Reinstall { .. }),
        redo: plan.redone(),
        places,
        role: Some(role.role),
        phase: Some(change.phase()),
        fan_out: options.fan_out.clone(),
    })?;
    if !options.noexec {
        answers::remember(&state, &bundle.index, &answers, options.given.forget_secrets)?;
        began();
    }

    let placed = if options.noexec { super::placed::Recorder::none() } else { super::placed::Recorder::new(&state) };
    let kind = (change.as_str(), change.installed_version());
    let env = environment(bundle, answers.config.as_ref(), &answers.parameters, kind, role.role, &plan.staging);
    let to_stage = members_to_stage(bundle, &plan, options);
    let inputs = Inputs { bundle, config: answers.config.as_ref(), overrides: &options.overrides, staging: &plan.staging };
    let shared = Shared { bundle, engine: ready.engine.as_ref(), ui, staging: &plan.staging, env: &env, inputs: &inputs, placed: &placed };
    let result = stage_and_run(&shared, &plan, answers.config.as_ref(), &to_stage, options, &mut journal);
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
        (true, None) => write_record(bundle, &state, &sha, &change, &answers.parameters).err(),
        (_, Some(e)) if e.class == ExitClass::Interrupted => Some(interrupted(&steps)),
        (_, error) => error,
    };
    let _ = journal.append(Event::RunFinished { outcome, exit_code, complete });
    runlog::sync();

    // Staging never outlives its run (it holds the config, secrets included), unless
    // asked to keep it; with no steps at all, staging is what the install is for.
    let keep = options.keep || options.target.is_some() || options.noexec || plan.steps.is_empty();
    if !keep && plan.staging.exists() {
        let _ = fs::remove_dir_all(&plan.staging);
    }
    let mut log = Some(log);
    let damaged = error.as_ref().is_some_and(|e| e.class == ExitClass::Integrity);
    if let (true, Some(made)) = (damaged && !steps.iter().any(|s| s.state == StepState::Done), made_here) {
        runlog::close();
        drop(lock);
        let _ = fs::remove_dir_all(&made);
        log = None;
    }
    let staging = (keep && plan.staging.exists()).then(|| plan.staging.clone());
    let report = Report { role: role.role, steps, staging, log, nothing_to_do: false, swept, change };
    match error {
        None => Ok(report),
        Some(error) => Err(Stopped { error, report: Some(Box::new(report)) }),
    }
}

fn nothing_to_do(change: &upgrade::Change, plan: &Plan, options: &Options) -> bool {
    (change.nothing_to_do() && options.redo.from.is_none()) || (!plan.steps.is_empty() && !plan.runs_any() && !options.noexec)
}

/// Says what a killed run left: which step it was in, and its PID.
fn say_if_killed(history: &History, ui: &Ui) {
    let Some(killed) = &history.killed else { return };
    let at = match &killed.step {
        Some(step) => format!("at step '{step}'"),
        None => "between steps".to_string(),
    };
    ui.status(format!("the last run (pid {}, {}) was killed {at}; resuming", killed.pid, killed.run));
}

/// Every place a run writes, cleared of what killed runs left: temporaries, the
/// staging directory (it holds the config), processes a killed or failed step started.
fn sweep_leftovers(history: &History, state: &StateDir, staging: &Path, needs: &[Needs], ui: &Ui) -> (usize, u64) {
    for (step, unfinished) in &history.unfinished {
        attempt::stop_leftovers(ui, step, &unfinished.token);
    }
    let mut places: Vec<PathBuf> = vec![staging.to_path_buf(), state.root.clone()];
    places.extend(needs.iter().flat_map(|n| n.writes.iter().cloned()));
    places.extend(history.places.iter().cloned());
    places.dedup();
    let mut total = (0, 0);
    for place in &places {
        let (n, bytes) = fsx::sweep(place);
        total = (total.0 + n, total.1 + bytes);
    }
    // The state directory's own staging belongs to no run now (we hold the lock).
    let own = state.staging();
    if own.exists() {
        let bytes = fsx::tree_bytes(&own);
        fsx::remove_any(&own);
        total = (total.0 + 1, total.1 + bytes);
    }
    // (Runs before 0.6 kept staging with a mark of the bundle it was staged for.)
    let _ = fs::remove_file(state.root.join("staged-for"));
    if total.0 > 0 {
        ui.status(format!("swept {} leftover(s) of an interrupted run, {} freed", total.0, indicatif::HumanBytes(total.1)));
    }
    total
}

/// Every step is done: a run killed after its last step, before it could say so or
/// write the record, is finished now; nothing else happens.
#[allow(clippy::too_many_arguments)]
fn finish_with_nothing_to_do(
    bundle: &Bundle,
    state: &StateDir,
    history: &History,
    plan: &Plan,
    role: Role,
    change: upgrade::Change,
    answers: &answers::Answers,
    swept: (usize, u64),
    ui: &Ui,
) -> Result<Report> {
    let meta = &bundle.index.bundle;
    let sha = bundle.sha256();
    let journal_is_ours = history.bundle_sha256.as_deref() == Some(sha.as_str());
    ui.status(format!("{} {}: {}", meta.name, meta.version, change.describe(meta)));
    if journal_is_ours && !history.complete && !plan.steps.is_empty() {
        // Killed after its last step, before it said it had finished: a run of its own
        // says it now, start and end, and the record follows.
        let mut journal = Journal::open(&state.journal(), &run_id(), &sha)?;
        journal.append(Event::RunStarted {
            bundle_sha256: sha.clone(),
            version: meta.version.clone(),
            pid: std::process::id(),
            log: PathBuf::new(),
            reset: false,
            redo: Vec::new(),
            places: Vec::new(),
            role: Some(role),
            phase: Some(change.phase()),
            fan_out: None,
        })?;
        if !matches!(change, upgrade::Change::Same { .. }) {
            write_record(bundle, state, &sha, &change, &answers.parameters)?;
        }
        journal.append(Event::RunFinished { outcome: Outcome::Ok, exit_code: 0, complete: true })?;
    }
    let steps = plan.steps.iter().map(already_done).collect();
    Ok(Report { role, steps, staging: None, log: None, nothing_to_do: true, swept, change })
}

fn write_record(bundle: &Bundle, state: &StateDir, sha: &str, change: &upgrade::Change, parameters: &[params::Resolved]) -> Result<()> {
    record::write(state, &record::Finished { index: &bundle.index, sha256: sha, how: change.clone(), parameters })
        .map(drop)
        .map_err(|e| Error::new(e.class, format!("every step is done, and the install record could not be written: {}", e.message)))
}

/// Ctrl-C or SIGTERM in the middle: what is true of the run, and what the next does.
fn interrupted(steps: &[StepReport]) -> Error {
    let done = steps.iter().filter(|s| matches!(s.state, StepState::Done | StepState::AlreadyDone)).count();
    let at = steps.iter().find(|s| s.state == StepState::Failed).map(|s| s.name.clone());
    let stopped = match at {
        Some(step) => format!("interrupted in step '{step}', which was stopped (it starts over on the next run)"),
        None => "interrupted between steps".to_string(),
    };
    Error::new(
        ExitClass::Interrupted,
        format!(
            "{stopped}; run the bundle again to go on: the {done} step(s) done are not redone ({} status shows this run)",
            crate::shell::bundle()
        ),
    )
}

/// A different bundle (or an uninstall) over an unfinished run stops, saying what is
/// unfinished.
fn refuse_over_unfinished(bundle: &Bundle, history: &History, options: &Options) -> Result<()> {
    let unfinished_uninstall = history.phase == Some(Phase::Uninstall) && !history.complete && history.bundle_sha256.is_some();
    if options.redo.force || !(history.unfinished_other(&bundle.sha256()) || unfinished_uninstall) {
        return Ok(());
    }
    let done: Vec<&str> = history.done.keys().map(String::as_str).collect();
    let what = if unfinished_uninstall { "an uninstall" } else { "an install" };
    Err(Error::host(format!(
        "{what} of {} {} (another bundle, SHA-256 {}) is unfinished here{}; finish it with that bundle ({}), or give --force to install this one over it",
        bundle.index.bundle.name,
        history.version.as_deref().unwrap_or("?"),
        history.bundle_sha256.as_deref().map_or("?", |s| &s[..12.min(s.len())]),
        if done.is_empty() { String::new() } else { format!(" (done: {})", done.join(", ")) },
        if unfinished_uninstall { "uninstall" } else { "install" },
    )))
}

/// Stages what the steps read (once, before the first step that is not a load or a
/// restore), then runs every step of the plan in turn.
fn stage_and_run(
    shared: &Shared,
    plan: &Plan,
    config: Option<&ProductConfig>,
    to_stage: &[&Member],
    options: &Options,
    journal: &mut Journal,
) -> std::result::Result<Vec<StepReport>, (Vec<StepReport>, Error)> {
    let (bundle, ui) = (shared.bundle, shared.ui);
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
            stage(bundle, to_stage, config, shared.staging, ui, options.target.is_some())?;
            staged = true;
        }
        Ok(())
    };
    if options.noexec {
        if let Err(e) = verify_and_stage() {
            return Err((not_run(plan, "staging failed"), e));
        }
        ui.status(format!("--noexec: staged in {}; no step ran", shared.staging.display()));
        let reports =
            bundle.index.steps.iter().map(|s| StepReport::untouched(s, StepState::NotRun, "--noexec: no step ran".into())).collect();
        return Ok(reports);
    }
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
        let (report, error) = attempt::run(planned, shared, journal);
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

pub fn already_done(planned: &PlannedStep) -> StepReport {
    StepReport::untouched(&planned.step, StepState::AlreadyDone, format!("done {}", planned.done_at.as_deref().unwrap_or("earlier")))
}

/// A run's id, in the journal and the log's name: when it started, and its PID.
pub fn run_id() -> String {
    format!("{}-{}", crate::progress::timestamp().replace(':', ""), std::process::id())
}

pub fn open_log(state: &StateDir, run_id: &str) -> Result<PathBuf> {
    let logs = state.logs();
    state.subdir(&logs)?;
    let log = logs.join(format!("install-{run_id}.log"));
    runlog::open(&log)?;
    Ok(log)
}

/// Stages the members, then the config as `config`. A full or unwritable staging
/// directory says how to choose another.
fn stage(bundle: &Bundle, members: &[&Member], config: Option<&ProductConfig>, staging: &Path, ui: &Ui, own_target: bool) -> Result<()> {
    let hint = |e: Error| match (e.class.is_about_a_place(), own_target) {
        (true, false) => e.hint(" (or stage elsewhere: --target DIR)"),
        (true, true) => e.hint(" (or give another --target DIR)"),
        _ => e,
    };
    if own_target {
        fs::create_dir_all(staging).ctx("creating the staging directory", staging).map_err(hint)?;
    } else {
        // The state directory's own: this user's alone.
        super::state::StateDir { root: staging.parent().unwrap_or(staging).to_path_buf() }.subdir(staging)?;
    }
    if !members.is_empty() {
        let written = crate::extract::extract_members(bundle, members, staging, ui).map_err(hint)?;
        ui.status(format!("staged {} member(s) into {}", written.len(), staging.display()));
    }
    if let Some(config) = config {
        // The answers file holds the secrets: for root's eyes only.
        fsx::write_atomic(&staging.join("config"), config.staged_text().as_bytes(), 0o600).map_err(hint)?;
    }
    Ok(())
}

/// The environment of every command step; `kind` is the run's (`install`, `upgrade`,
/// `uninstall`...) and the version installed before it.
pub(crate) fn environment(
    bundle: &Bundle,
    config: Option<&ProductConfig>,
    parameters: &[params::Resolved],
    kind: (&str, Option<&str>),
    role: Role,
    staging: &Path,
) -> Vec<(String, String)> {
    let meta = &bundle.index.bundle;
    let mut env = vec![
        ("AIRBIN_STAGING".to_string(), staging.display().to_string()),
        ("AIRBIN_BUNDLE_NAME".to_string(), meta.name.clone()),
        ("AIRBIN_BUNDLE_VERSION".to_string(), meta.version.clone()),
        ("AIRBIN_BUNDLE_SHA256".to_string(), bundle.sha256()),
        ("AIRBIN_BUNDLE".to_string(), fsx::absolute(&bundle.path).display().to_string()),
        ("AIRBIN_ROLE".to_string(), role.to_string()),
        ("AIRBIN_INSTALL_KIND".to_string(), kind.0.to_string()),
        ("AIRBIN_INSTALLED_VERSION".to_string(), kind.1.unwrap_or("").to_string()),
    ];
    if let Some(log) = runlog::path() {
        env.push(("AIRBIN_LOG".to_string(), log.display().to_string()));
    }
    if let Some(config) = config {
        env.push(("AIRBIN_CONFIG".to_string(), staging.join("config").display().to_string()));
        for (key, value) in config.flat() {
            env.push((super::config::env_name("AIRBIN_CONFIG_", &key), value));
        }
    }
    for param in parameters {
        env.push((super::config::env_name("AIRBIN_PARAM_", &param.name), param.actual.clone()));
    }
    env
}
