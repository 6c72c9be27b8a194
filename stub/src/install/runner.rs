//! The run: a prepared plan executed, as a `Run` value that owns what a run holds.
//!
//! 1. `Run::begin`: preflight; the state directory locked; the plan made again from
//!    what the journal says under the lock; what a killed run left swept (temporaries,
//!    staging, processes). With every step done, the run ends here.
//! 2. `Run::start`: the log opened, the plan and the decisions logged, the run
//!    journaled and its answers remembered.
//! 3. `Run::steps`: what the steps read is staged (once the bundle's verdict is in),
//!    then each step runs in turn (`attempt`).
//! 4. `Run::finish`: the record moves once every step is done; the end journaled;
//!    staging goes, whatever the end.

use std::fs;
use std::path::PathBuf;

use airbin_format::error::{Error, ExitClass, Result};
use airbin_format::{Action, Bundle, Phase};

use super::answers::{self, Answers};
use super::attempt::{self, Shared};
use super::journal::{self, Event, History, Journal, Outcome};
use super::plan::{done_by, Plan, PlanState};
use super::report::{already_done, interrupted, Report, StepReport, StepState, Stopped};
use super::roles::NodeRole;
use super::staging::{environment, members_to_stage, stage};
use super::state::{Lock, StateDir};
use super::{check_host, param_values, preflight, receipt, record, upgrade, Options, Prepared};
use crate::fsx;
use crate::steps::placed::Recorder;
use crate::steps::{Inputs, Needs};
use crate::ui::{runlog, Ui};

/// Steps 4 to 6 of the install: checks, locks, sweeps, stages and runs the plan.
/// `began` hears when the run has begun for real: its state directory locked, its start
/// journaled (never for a run refused before that, nor for `--noexec`).
pub(crate) fn run(prepared: Prepared, options: &Options, ui: &Ui, began: &(dyn Fn() + Sync)) -> std::result::Result<Report, Stopped> {
    refuse_over_unfinished(prepared.bundle, &prepared.history, options)?;
    // Preflight, before anything lands (the lock and the log included); with every
    // step done, nothing needs the host to be ready.
    let ready = match nothing_to_do(&prepared.change, &prepared.plan, options) {
        true => preflight::Ready { engine: None },
        false => check_host(&prepared, options)?,
    };
    let mut run = Run::begin(prepared, options, ui)?;
    if nothing_to_do(&run.change, &run.plan, options) {
        return run.finish_with_nothing_to_do().map_err(Stopped::from);
    }
    let mut journal = run.start(&ready, began)?;
    let outcome = run.steps(&ready, &mut journal);
    run.finish(outcome, journal)
}

/// A run under way: the state directory it holds locked, and what it decided.
struct Run<'a> {
    bundle: &'a Bundle,
    options: &'a Options,
    ui: &'a Ui,
    state: StateDir,
    lock: Option<Lock>,
    /// The state directory's outermost part this run created, if it created one.
    made_here: Option<PathBuf>,
    history: History,
    plan: Plan,
    role: NodeRole,
    change: upgrade::Change,
    answers: Answers,
    needs: Vec<Needs>,
    swept: (usize, u64),
    sha: String,
    log: Option<PathBuf>,
    run_id: String,
}

impl<'a> Run<'a> {
    /// Locks the state directory, plans again from the journal under the lock, and
    /// sweeps what a killed run left.
    fn begin(prepared: Prepared<'a>, options: &'a Options, ui: &'a Ui) -> Result<Run<'a>> {
        let Prepared { bundle, state, answers, plan, role, change, .. } = prepared;
        let sha = bundle.sha256();
        // A run that finds the bundle damaged before any step is done leaves no state
        // directory it made itself (it may have started before the verdict).
        let made_here = fsx::first_missing_ancestor(&state.root);
        let lock = state.lock()?;
        // Read again under the lock: another run may have finished in between.
        let history = History::of(&journal::read(&state.journal()));
        refuse_over_unfinished(bundle, &history, options)?;
        let steps = plan.steps.into_iter().map(|s| (s.step, s.prepared)).collect();
        let plan = Plan::new(steps, done_by(&change, &history, &sha, options), &options.redo, plan.staging)?;
        say_if_killed(&history, ui);
        let needs: Vec<Needs> = plan.to_run().map(|s| s.prepared.needs(bundle, &s.name)).collect();
        let swept = super::leftovers::sweep(&history, &state, &plan.staging, &needs, ui);
        let lock = Some(lock);
        let run_id = run_id();
        Ok(Run { bundle, options, ui, state, lock, made_here, history, plan, role, change, answers, needs, swept, sha, log: None, run_id })
    }

    /// Opens the log, says what the run will do, journals its start and remembers its
    /// answers.
    fn start(&mut self, ready: &preflight::Ready, began: &(dyn Fn() + Sync)) -> Result<Journal> {
        let (bundle, options, meta) = (self.bundle, self.options, &self.bundle.index.bundle);
        let run_id = self.run_id.clone();
        let log = open_log(&self.state, &run_id)?;
        self.ui.status(format!("{} {}: log in {}", meta.name, meta.version, log.display()));
        self.log_decisions(ready);
        // A --noexec run runs no step: it leaves the journal as it was.
        let mut journal = Journal::open(&self.state.journal(), &run_id, &self.sha)?.recording(!options.noexec);
        let journal_is_ours =
            self.history.bundle_sha256.as_deref() == Some(self.sha.as_str()) && self.history.phase == Some(self.change.phase());
        let mut places: Vec<PathBuf> = vec![self.plan.staging.clone(), self.state.root.clone()];
        places.extend(self.needs.iter().flat_map(|n| n.writes.iter().cloned()));
        journal.append(Event::RunStarted {
            bundle_sha256: self.sha.clone(),
            version: meta.version.clone(),
            pid: std::process::id(),
            log: log.clone(),
            reset: options.redo.force || !journal_is_ours || matches!(self.change, upgrade::Change::Reinstall { .. }),
            redo: self.plan.redone(),
            places,
            role: Some(self.role.role),
            phase: Some(self.change.phase()),
            fan_out: options.fan_out.clone(),
        })?;
        self.log = Some(log);
        if !options.noexec {
            answers::remember(&self.state, &bundle.index, &self.answers, options.given.forget_secrets)?;
            began();
        }
        Ok(journal)
    }

    /// The bundle, the role, the kind of install, the config, preflight and each step's
    /// decision, in the log.
    fn log_decisions(&self, ready: &preflight::Ready) {
        let (bundle, options) = (self.bundle, self.options);
        runlog::line(&format!("bundle {} SHA-256 {}, airbin runtime {}", bundle.path.display(), self.sha, crate::VERSION));
        runlog::line(&format!("role {} ({})", self.role.role, self.role.explain()));
        runlog::line(&self.change.describe(&bundle.index.bundle));
        if let Some(config) = &self.answers.config {
            runlog::line(&format!("config {} ({})", config.path.display(), config.source.as_str()));
        }
        let engine = ready.engine.as_ref().map(|e| format!("; images load into {}", e.name())).unwrap_or_default();
        let skipped = if options.skip_preflight.is_empty() { "none".into() } else { options.skip_preflight.join(", ") };
        runlog::line(&format!("preflight passed (skipped: {skipped}){engine}"));
        for step in &self.plan.steps {
            let decision = match (step.state, &step.done_at) {
                (PlanState::Done, Some(at)) => format!("done {at}: not run again"),
                (PlanState::Redo, _) => "done earlier: redone on purpose".to_string(),
                _ => "to do".to_string(),
            };
            runlog::line(&format!("plan: {}: {decision}; {}", step.name, step.prepared.describe()));
        }
    }

    /// Stages what the steps read (once, before the first step that is not a load or a
    /// restore), then runs every step of the plan in turn.
    fn steps(&self, ready: &preflight::Ready, journal: &mut Journal) -> std::result::Result<Vec<StepReport>, (Vec<StepReport>, Error)> {
        let (bundle, options, plan, ui) = (self.bundle, self.options, &self.plan, self.ui);
        let config = self.answers.config.as_ref();
        let placed = if options.noexec { Recorder::none() } else { Recorder::new(&self.state.placed()) };
        let kind = (self.change.as_str(), self.change.installed_version());
        let env = environment(bundle, config, &self.answers.parameters, kind, self.role.role, &plan.staging);
        let to_stage = members_to_stage(bundle, plan, options);
        let inputs = Inputs {
            bundle,
            config: config.map(|c| c as &dyn crate::steps::ConfigValues),
            overrides: &options.overrides,
            staging: &plan.staging,
        };
        let shared =
            Shared { bundle, engine: ready.engine.as_ref(), ui, staging: &plan.staging, env: &env, inputs: &inputs, placed: &placed };
        // Verified before anything but a load or a restore acts on the bundle's bytes, and
        // staged then: the loads and restores that come first overlap the verification.
        let mut staged = false;
        let mut verify_and_stage = || -> Result<()> {
            if !staged {
                bundle.await_verified()?;
                ui.status(format!("{} {}: bundle verified", bundle.index.bundle.name, bundle.index.bundle.version));
                stage(bundle, &to_stage, config, &plan.staging, ui, options.target.is_some())?;
                staged = true;
            }
            Ok(())
        };
        if options.noexec {
            let not_run = |why: &str| plan.steps.iter().map(|s| StepReport::not_run(s, why)).collect::<Vec<_>>();
            verify_and_stage().map_err(|e| (not_run("staging failed"), e))?;
            ui.status(format!("--noexec: staged in {}; no step ran", plan.staging.display()));
            let steps = &bundle.index.steps;
            return Ok(steps.iter().map(|s| StepReport::untouched(s, StepState::NotRun, "--noexec: no step ran".into())).collect());
        }
        let (mut reports, mut failed) = (Vec::new(), None);
        for (n, planned) in plan.steps.iter().enumerate() {
            let at = format!("step {}/{} {}", n + 1, plan.steps.len(), planned.name);
            if failed.is_some() {
                reports.push(StepReport::not_run(planned, "an earlier step failed"));
                continue;
            }
            if !planned.state.runs() {
                ui.status(format!("{at}: done already ({})", planned.done_at.as_deref().unwrap_or("")));
                reports.push(already_done(planned));
                continue;
            }
            // Loads and restores hold back their commit themselves (the end of the stream,
            // the placement): they overlap the verification. Everything else waits for it.
            if !matches!(planned.step.action, Action::LoadImages(_) | Action::RestoreRegistry(_)) {
                if let Err(e) = verify_and_stage() {
                    let why = if e.class == ExitClass::Integrity { "the bundle failed its check" } else { "staging failed" };
                    reports.push(StepReport::not_run(planned, why));
                    failed = Some(e);
                    continue;
                }
            }
            ui.status(format!("{at}: {}", planned.prepared.describe()));
            let (report, error) = attempt::run(planned, &shared, journal);
            if error.is_none() {
                ui.status(format!("{at}: done, {}", report.detail));
            }
            reports.push(report);
            failed = error;
        }
        // With only loads (or no steps), staging still holds the config and the tools.
        match failed.or_else(|| verify_and_stage().err()) {
            None => Ok(reports),
            Some(error) => Err((reports, error)),
        }
    }

    /// Moves the record once every step is done, journals the end, and removes staging
    /// (and a state directory this run made, when the bundle was found damaged first).
    fn finish(
        mut self,
        outcome: std::result::Result<Vec<StepReport>, (Vec<StepReport>, Error)>,
        mut journal: Journal,
    ) -> std::result::Result<Report, Stopped> {
        let options = self.options;
        let (steps, error) = match outcome {
            Ok(steps) => (steps, None),
            Err((steps, error)) => (steps, Some(error)),
        };
        let complete = error.is_none() && !options.noexec;
        let ended = match &error {
            None => Outcome::Ok,
            Some(e) if e.class == ExitClass::Interrupted => Outcome::Interrupted,
            Some(_) => Outcome::Failed,
        };
        let exit_code = error.as_ref().map_or(0, |e| e.class.code());
        // The record moves only once every step is done: a failed upgrade leaves the old one.
        let error = match (complete, error) {
            (true, None) => self.write_record().err(),
            (_, Some(e)) if e.class == ExitClass::Interrupted => Some(interrupted(&steps)),
            (_, error) => error,
        };
        let _ = journal.append(Event::RunFinished { outcome: ended, exit_code, complete });
        runlog::sync();
        // Staging never outlives its run (it holds the config, secrets included), unless
        // asked to keep it; with no steps at all, staging is what the install is for.
        let keep = options.keep || options.target.is_some() || options.noexec || self.plan.steps.is_empty();
        if !keep && self.plan.staging.exists() {
            let _ = fs::remove_dir_all(&self.plan.staging);
        }
        let damaged = error.as_ref().is_some_and(|e| e.class == ExitClass::Integrity);
        if let (true, Some(made)) = (damaged && !steps.iter().any(|s| s.state == StepState::Done), &self.made_here) {
            runlog::close();
            drop(self.lock.take());
            let _ = fs::remove_dir_all(made);
            self.log = None;
        }
        let staging = (keep && self.plan.staging.exists()).then(|| self.plan.staging.clone());
        let receipt = match complete && error.is_none() {
            true => self.write_receipt(&steps),
            false => None,
        };
        let report = Report {
            role: self.role.role,
            steps,
            staging,
            log: self.log,
            nothing_to_do: false,
            swept: self.swept,
            change: self.change,
            receipt,
        };
        match error {
            None => Ok(report),
            Some(error) => Err(Stopped { error, report: Some(Box::new(report)) }),
        }
    }

    /// Every step is done: a run killed after its last step, before it could say so or
    /// write the record, is finished now; nothing else happens.
    fn finish_with_nothing_to_do(self) -> Result<Report> {
        let meta = &self.bundle.index.bundle;
        let journal_is_ours = self.history.bundle_sha256.as_deref() == Some(self.sha.as_str());
        self.ui.status(format!("{} {}: {}", meta.name, meta.version, self.change.describe(meta)));
        if journal_is_ours && !self.history.complete && !self.plan.steps.is_empty() {
            // Killed after its last step, before it said it had finished: a run of its own
            // says it now, start and end, and the record follows.
            let mut journal = Journal::open(&self.state.journal(), &run_id(), &self.sha)?;
            journal.append(Event::RunStarted {
                bundle_sha256: self.sha.clone(),
                version: meta.version.clone(),
                pid: std::process::id(),
                log: PathBuf::new(),
                reset: false,
                redo: Vec::new(),
                places: Vec::new(),
                role: Some(self.role.role),
                phase: Some(self.change.phase()),
                fan_out: None,
            })?;
            if !matches!(self.change, upgrade::Change::Same { .. }) {
                self.write_record()?;
            }
            journal.append(Event::RunFinished { outcome: Outcome::Ok, exit_code: 0, complete: true })?;
        }
        let steps: Vec<StepReport> = self.plan.steps.iter().map(already_done).collect();
        // The run that finishes a killed one's install leaves its receipt.
        let receipt = match journal_is_ours && !self.history.complete && !self.plan.steps.is_empty() {
            true => self.write_receipt(&steps),
            false => None,
        };
        Ok(Report {
            role: self.role.role,
            steps,
            staging: None,
            log: None,
            nothing_to_do: true,
            swept: self.swept,
            change: self.change,
            receipt,
        })
    }

    /// The run's receipt; a receipt that cannot be written is said, and the install it
    /// would describe stands.
    fn write_receipt(&self, steps: &[StepReport]) -> Option<PathBuf> {
        let finished = receipt::Finished {
            bundle: self.bundle,
            state: &self.state,
            operation: self.change.as_str(),
            parameters: &self.answers.parameters,
            steps,
            run_id: &self.run_id,
            key: self.options.receipt_key.as_ref().map(|k| k.0.as_ref()),
        };
        match receipt::write(&finished) {
            Ok(path) => {
                self.ui.status(format!("receipt: {} (sh this bundle receipt prints it)", path.display()));
                Some(path)
            }
            Err(e) => {
                self.ui.status(format!("warning: every step is done, and the receipt could not be written: {}", e.message));
                None
            }
        }
    }

    fn write_record(&self) -> Result<()> {
        write_record(self.bundle, &self.state, &self.change, &self.answers.parameters)
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

fn write_record(bundle: &Bundle, state: &StateDir, change: &upgrade::Change, parameters: &[param_values::Resolved]) -> Result<()> {
    let finished = record::Finished { index: &bundle.index, sha256: &bundle.sha256(), how: change.as_str(), parameters };
    record::write(state, &finished)
        .map(drop)
        .map_err(|e| Error::new(e.class, format!("every step is done, and the install record could not be written: {}", e.message)))
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

/// A run's id, in the journal and the log's name: when it started, and its PID.
pub(crate) fn run_id() -> String {
    format!("{}-{}", crate::ui::timestamp().replace(':', ""), std::process::id())
}

pub(crate) fn open_log(state: &StateDir, run_id: &str) -> Result<PathBuf> {
    let logs = state.logs();
    state.subdir(&logs)?;
    let log = logs.join(format!("install-{run_id}.log"));
    runlog::open(&log)?;
    Ok(log)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::install::journal::Done;
    use crate::install::plan::Redo;

    fn unfinished_other_bundle(phase: Option<Phase>) -> History {
        History {
            bundle_sha256: Some("f".repeat(64)),
            version: Some("0.9".into()),
            done: [("a".to_string(), Done { at: "then".into(), does: String::new() })].into(),
            complete: false,
            phase,
            ..History::default()
        }
    }

    #[test]
    fn another_bundles_unfinished_run_stops_this_one_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = crate::testing::bundle_with_steps(dir.path(), "[]");
        let options = Options::default();
        let err = refuse_over_unfinished(&bundle, &unfinished_other_bundle(Some(Phase::Install)), &options).expect_err("refused");
        assert_eq!(err.class, ExitClass::Host);
        assert!(
            err.message.contains("an install of unit 0.9 (another bundle, SHA-256 ffffffffffff) is unfinished here (done: a)"),
            "{}",
            err.message
        );
        assert!(err.message.contains("finish it with that bundle (install), or give --force"), "{}", err.message);
        let err = refuse_over_unfinished(&bundle, &unfinished_other_bundle(Some(Phase::Uninstall)), &options).expect_err("refused");
        assert!(err.message.starts_with("an uninstall of unit"), "{}", err.message);
        let forced = Options { redo: Redo { force: true, from: None }, ..Options::default() };
        assert!(refuse_over_unfinished(&bundle, &unfinished_other_bundle(Some(Phase::Install)), &forced).is_ok());
        // Its own unfinished run is what a rerun resumes.
        let own = History { bundle_sha256: Some(bundle.sha256()), ..unfinished_other_bundle(Some(Phase::Install)) };
        assert!(refuse_over_unfinished(&bundle, &own, &options).is_ok());
    }

    #[test]
    fn nothing_to_do_unless_a_step_runs_or_is_redone_on_purpose() {
        let plan = |steps| Plan { steps, staging: PathBuf::from("/nonexistent") };
        let same = upgrade::Change::Same {
            installed: "1.0".into(),
            since: "then".into(),
            this_build: false,
            is: upgrade::Same::Recorded,
            phase: Phase::Install,
        };
        let options = Options::default();
        assert!(nothing_to_do(&same, &plan(Vec::new()), &options));
        let from = Options { redo: Redo { force: false, from: Some("a".into()) }, ..Options::default() };
        assert!(!nothing_to_do(&same, &plan(Vec::new()), &from), "--from redoes steps of an installed version");
        // A first install with no steps stages its members: that is not nothing.
        assert!(!nothing_to_do(&upgrade::Change::Install, &plan(Vec::new()), &options));
    }

    #[test]
    fn a_run_id_says_when_it_started_and_which_process() {
        let id = run_id();
        assert!(id.ends_with(&format!("-{}", std::process::id())), "{id}");
        assert!(!id.contains(':'), "a file name part: {id}");
    }
}
