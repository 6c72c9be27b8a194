//! `uninstall`: the bundle's `when: uninstall` steps (its product's own undoing), then
//! the removal of what the install placed, and nothing else, each part journaled like
//! an install's steps so that a killed uninstall resumes:
//!
//! - images a load step created that no other product's record names (the engine
//!   keeps the layers another image shares);
//! - registry files a restore step placed: the links, then the blobs nothing left in
//!   the root references, then the directories it made, emptied;
//! - files an extract step wrote, when they are as it wrote them (a changed one is
//!   kept and listed, as is one that was there before the install), and the
//!   directories it made, emptied;
//! - the record, the remembered answers and at last the state directory itself.

use std::path::PathBuf;

use serde::Serialize;

mod removal;

use super::attempt::{self, Shared};
use super::journal::{self, Event, History, Journal, Outcome};
use super::plan::{DoneBy, Plan, PlanState};
use super::report::{already_done, StepReport, StepState};
use super::runner::{open_log, run_id};
use super::state::{Lock, StateDir};
use super::{answers, record, roles, Options};
use crate::steps::placed::{self, Placed};
use crate::steps::{self, Inputs};
use crate::ui::Ui;
use airbin_format::error::{Error, ExitClass, Result};
use airbin_format::{Bundle, Phase};

/// The built-in parts of an uninstall, after the bundle's own steps.
pub(crate) const PARTS: [&str; 4] = ["remove images", "remove registry files", "remove extracted files", "remove the install record"];

/// What an uninstall will do here.
pub(crate) struct Prepared<'a> {
    pub(crate) bundle: &'a Bundle,
    pub(crate) state: StateDir,
    pub(crate) answers: answers::Answers,
    pub(crate) role: roles::NodeRole,
    pub(crate) installed: Option<record::Installed>,
    /// The bundle's uninstall steps for this role.
    pub(crate) plan: Plan,
    pub(crate) placed: Placed,
    /// What stays, and why (another product's, changed since, there before).
    pub(crate) kept: Vec<String>,
}

/// Reads what is installed and what was placed, and plans the uninstall. Changes nothing.
pub(crate) fn prepare<'a>(bundle: &'a Bundle, options: &Options) -> Result<Prepared<'a>> {
    let meta = &bundle.index.bundle;
    let state = StateDir::for_bundle(&meta.name);
    state.check()?;
    let installed = record::read(&state);
    let placed = placed::read(&state.placed());
    let history = History::of(&journal::read(&state.journal()));
    let uninstalling = history.phase == Some(Phase::Uninstall) && !history.complete;
    if installed.is_none() && placed.is_empty() && !uninstalling {
        return Err(Error::new(
            ExitClass::Host,
            format!("nothing of {} is installed on this host: there is nothing to uninstall", meta.name),
        ));
    }
    if let Some(installed) = &installed {
        let same_version = installed.version == meta.version || meta.hotfix_of.as_deref() == Some(installed.version.as_str());
        if !same_version && !options.redo.force {
            return Err(Error::host(format!(
                "{} {} is installed here, and this bundle is {}: uninstall with the bundle of {} (its uninstall steps are that version's), or give --force to use this one's",
                meta.name,
                installed.describe(),
                meta.version,
                installed.version
            )));
        }
    }
    let answers = answers::resolve(bundle, &options.given, &state)?;
    let config = answers.config.as_ref();
    let role = match options.role {
        Some(role) => roles::NodeRole { role, why: roles::Why::Flag },
        None => {
            let list = roles::node_list(&bundle.index.config, config)?;
            let path = config.map_or_else(String::new, |c| c.path.display().to_string());
            roles::resolve(None, list.as_ref(), &roles::ThisHost::detect(), &path)?
        }
    };
    // The product's own undoing runs where it was installed (a failed first install
    // left no record: only what it placed is removed).
    let steps: Vec<steps::Step> = match &installed {
        Some(_) => bundle.index.steps.iter().filter(|s| s.when == Phase::Uninstall && s.runs_on(role.role)).cloned().collect(),
        None => Vec::new(),
    };
    let staging = state.staging();
    let inputs =
        Inputs { bundle, config: config.map(|c| c as &dyn crate::steps::ConfigValues), overrides: &options.overrides, staging: &staging };
    let prepared = steps.iter().map(|s| Ok((s.clone(), steps::prepare(s, &inputs)?))).collect::<Result<Vec<_>>>()?;
    let ours = history.bundle_sha256.as_deref() == Some(bundle.sha256().as_str()) && uninstalling && !options.redo.force;
    let plan = Plan::new(prepared, if ours { DoneBy::Journal(&history) } else { DoneBy::Nothing }, &Default::default(), staging)?;
    let kept = removal::kept(&state, &placed);
    Ok(Prepared { bundle, state, answers, role, installed, plan, placed, kept })
}

/// The plan as text or JSON: the uninstall steps, then what goes and what stays.
pub(crate) fn plan_json(prepared: &Prepared) -> serde_json::Value {
    let p = &prepared.placed;
    serde_json::json!({
        "role": prepared.role.role,
        "installed": prepared.installed,
        "steps": prepared.plan.steps.iter().map(|s| serde_json::json!({"name": s.name, "kind": s.step.action.kind(), "state": s.state, "does": crate::ui::runlog::mask(&s.prepared.describe())})).collect::<Vec<_>>(),
        "removes": {
            "images": p.images.iter().filter(|i| i.placed).map(|i| &i.reference).collect::<Vec<_>>(),
            "registry_files": p.registries.iter().map(|r| serde_json::json!({"root": r.root, "files": r.files.len()})).collect::<Vec<_>>(),
            "files": p.files.iter().filter(|f| removal::file_verdict(f) == removal::FileVerdict::Remove).map(|f| &f.path).collect::<Vec<_>>(),
            "dirs": p.dirs,
        },
        "kept": prepared.kept,
        "state_dir": prepared.state.root,
    })
}

pub(crate) fn print_plan(prepared: &Prepared) {
    use crate::ui::out_line;
    let meta = &prepared.bundle.index.bundle;
    let installed =
        prepared.installed.as_ref().map_or("nothing recorded (a first install that did not finish)".to_string(), |i| i.describe());
    out_line(&format!("uninstall plan for {} on this host (role {}; installed: {installed})", meta.name, prepared.role.role));
    for (n, s) in prepared.plan.steps.iter().enumerate() {
        let state = if s.state == PlanState::Done { "done" } else { "to do" };
        out_line(&format!("  {}. {}  [{state}]  {}", n + 1, s.name, crate::ui::runlog::mask(&s.prepared.describe())));
    }
    let p = &prepared.placed;
    let files = p.files.iter().filter(|f| removal::file_verdict(f) == removal::FileVerdict::Remove).count();
    let registry: usize = p.registries.iter().map(|r| r.files.len()).sum();
    let images: Vec<&str> = p.images.iter().filter(|i| i.placed).map(|i| i.reference.as_str()).collect();
    out_line(&format!("  then: remove {} image reference(s): {}", images.len(), images.join(", ")));
    out_line(&format!("        remove {registry} registry file(s) it placed (blobs only where nothing else references them)"));
    out_line(&format!("        remove {files} file(s) extract steps wrote, and the directories they made"));
    out_line(&format!("        remove the install record and the state directory {}", prepared.state.root.display()));
    for kept in &prepared.kept {
        out_line(&format!("  keeps {kept}"));
    }
}

/// What an uninstall did.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) role: airbin_format::Role,
    pub(crate) steps: Vec<StepReport>,
    pub(crate) kept: Vec<String>,
    pub(crate) log: Option<PathBuf>,
}

/// Runs the uninstall: the product's steps, then every removal part, journaled. A
/// finished one gives its report and the receipt it left.
pub(crate) fn run(prepared: Prepared, options: &Options, ui: &Ui) -> std::result::Result<(Report, Option<PathBuf>), (Error, Report)> {
    let role = prepared.role.role;
    let kept = prepared.kept.clone();
    let fail = |error: Error, steps: Vec<StepReport>| (error, Report { role, steps, kept: kept.clone(), log: crate::ui::runlog::path() });
    let mut run = Uninstalling::begin(&prepared, options, ui).map_err(|e| fail(e, Vec::new()))?;
    let (mut reports, error) = run.steps(&prepared, options);
    let _ = std::fs::remove_dir_all(&prepared.plan.staging);
    let error = run.parts(&prepared, error, &mut reports);
    let complete = error.is_none();
    let outcome = match &error {
        None => Outcome::Ok,
        Some(e) if e.class == ExitClass::Interrupted => Outcome::Interrupted,
        Some(_) => Outcome::Failed,
    };
    let _ = run.journal.append(Event::RunFinished { outcome, exit_code: error.as_ref().map_or(0, |e| e.class.code()), complete });
    crate::ui::runlog::sync();
    match error {
        None => {
            // The receipt first (it reads the journal), kept beside the state directory.
            let finished = super::receipt::Finished {
                bundle: prepared.bundle,
                state: &prepared.state,
                operation: "uninstall",
                parameters: &[],
                steps: &reports,
                run_id: &run.run_id,
                key: options.receipt_key.as_ref().map(|k| k.0.as_ref()),
            };
            let receipt = super::receipt::write(&finished)
                .map_err(|e| ui.status(format!("warning: the uninstall is done, and its receipt could not be written: {}", e.message)))
                .ok();
            // The host as before the install: the state directory goes too, log and all.
            crate::ui::runlog::close();
            drop(run);
            let _ = std::fs::remove_dir_all(&prepared.state.root);
            Ok((Report { role, steps: reports, kept, log: None }, receipt))
        }
        Some(error) => Err(fail(error, reports)),
    }
}

/// An uninstall under way: the state directory locked, the run journaled.
struct Uninstalling<'a> {
    ui: &'a Ui,
    journal: Journal,
    _lock: Lock,
    history: History,
    /// A killed uninstall of this very bundle: what it finished is not done again.
    resuming: bool,
    run_id: String,
}

impl<'a> Uninstalling<'a> {
    fn begin(prepared: &Prepared, options: &Options, ui: &'a Ui) -> Result<Uninstalling<'a>> {
        let (bundle, state) = (prepared.bundle, &prepared.state);
        let meta = &bundle.index.bundle;
        let sha = bundle.sha256();
        let lock = state.lock()?;
        let history = History::of(&journal::read(&state.journal()));
        let resuming =
            history.bundle_sha256.as_deref() == Some(sha.as_str()) && history.phase == Some(Phase::Uninstall) && !history.complete;
        for (step, unfinished) in &history.unfinished {
            super::leftovers::stop_and_say(ui, step, &unfinished.token);
        }
        let run_id = run_id();
        let log = open_log(state, &run_id)?;
        ui.status(format!("{} {}: uninstalling; log in {}", meta.name, meta.version, log.display()));
        let mut journal = Journal::open(&state.journal(), &run_id, &sha)?;
        journal.append(Event::RunStarted {
            bundle_sha256: sha.clone(),
            version: meta.version.clone(),
            pid: std::process::id(),
            log,
            reset: !resuming,
            redo: Vec::new(),
            places: vec![state.root.clone()],
            role: Some(prepared.role.role),
            phase: Some(Phase::Uninstall),
            fan_out: options.fan_out.clone(),
        })?;
        Ok(Uninstalling { ui, journal, _lock: lock, history, resuming, run_id })
    }

    fn done(&self, name: &str) -> bool {
        self.resuming && self.history.done.contains_key(name)
    }

    /// The bundle's `when: uninstall` steps, staged like an install's.
    fn steps(&mut self, prepared: &Prepared, options: &Options) -> (Vec<StepReport>, Option<Error>) {
        let (bundle, answers, plan, ui) = (prepared.bundle, &prepared.answers, &prepared.plan, self.ui);
        let mut error = None;
        if plan.runs_any() {
            error = stage_for_steps(bundle, answers, plan, options, ui).err();
        }
        let config = answers.config.as_ref().map(|c| c as &dyn crate::steps::ConfigValues);
        let inputs = Inputs { bundle, config, overrides: &options.overrides, staging: &plan.staging };
        let kind = ("uninstall", prepared.installed.as_ref().map(|i| i.version.as_str()));
        let env =
            super::staging::environment(bundle, answers.config.as_ref(), &answers.parameters, kind, prepared.role.role, &plan.staging);
        let recorder = placed::Recorder::none();
        let shared = Shared { bundle, engine: None, ui, staging: &plan.staging, env: &env, inputs: &inputs, placed: &recorder };
        let mut reports = Vec::new();
        for planned in &plan.steps {
            if error.is_some() {
                reports.push(StepReport::not_run(planned, "an earlier step failed"));
                continue;
            }
            if !planned.state.runs() || self.done(&planned.name) {
                reports.push(already_done(planned));
                continue;
            }
            ui.status(format!("uninstall step {}: {}", planned.name, planned.prepared.describe()));
            let (report, failed) = attempt::run(planned, &shared, &mut self.journal);
            reports.push(report);
            error = failed;
        }
        (reports, error)
    }

    /// Every removal part in turn, each journaled; the first failure stops the rest.
    fn parts(&mut self, prepared: &Prepared, mut error: Option<Error>, reports: &mut Vec<StepReport>) -> Option<Error> {
        let others = removal::of_other_products(&prepared.state);
        let part_report = |name: &str, state, detail: String, attempts, seconds| StepReport {
            name: name.into(),
            kind: "remove",
            state,
            detail,
            attempts,
            seconds,
            on_failure: vec![],
        };
        for part in PARTS {
            if error.is_some() {
                reports.push(part_report(part, StepState::NotRun, "an earlier step failed".into(), 0, 0.0));
                continue;
            }
            if self.done(part) {
                reports.push(part_report(part, StepState::AlreadyDone, "done earlier".into(), 0, 0.0));
                continue;
            }
            let started = std::time::Instant::now();
            let token = format!("{}-{part}", self.run_id);
            if let Err(e) = self.journal.append(Event::StepStarted { step: part.into(), attempt: 1, token: Some(token) }) {
                error = Some(e);
                continue;
            }
            let outcome = match part {
                "remove images" => removal::remove_images(&prepared.placed, &others, self.ui),
                "remove registry files" => removal::remove_registry_files(&prepared.placed, &others),
                "remove extracted files" => removal::remove_files(&prepared.placed, &others),
                _ => removal::remove_record(&prepared.state),
            };
            let seconds = started.elapsed().as_secs_f64();
            let (state, detail) = self.journal_part(part, outcome, seconds, &mut error);
            reports.push(part_report(part, state, detail, 1, seconds));
        }
        error
    }

    /// Journals how a removal part ended, and says so.
    fn journal_part(&mut self, part: &str, outcome: Result<String>, seconds: f64, error: &mut Option<Error>) -> (StepState, String) {
        match outcome {
            Ok(detail) => {
                let done = Event::StepDone { step: part.into(), attempt: 1, seconds, detail: detail.clone(), does: String::new() };
                let _ = self.journal.append(done);
                self.ui.status(format!("{part}: {detail}"));
                (StepState::Done, detail)
            }
            Err(e) => {
                let masked = crate::ui::runlog::mask(&e.message);
                let _ = self.journal.append(Event::StepFailed { step: part.into(), attempt: 1, seconds, error: masked });
                let class = if e.class == ExitClass::Interrupted { e.class } else { ExitClass::Step };
                *error = Some(Error::new(class, format!("{part} failed: {}", e.message)));
                (StepState::Failed, e.message)
            }
        }
    }
}

/// The uninstall steps run in a staging directory of their own, with the config.
fn stage_for_steps(bundle: &Bundle, answers: &answers::Answers, plan: &Plan, options: &Options, ui: &Ui) -> Result<()> {
    bundle.await_verified()?;
    std::fs::create_dir_all(&plan.staging).map_err(|e| Error::io(e, "creating", &plan.staging))?;
    let members = super::staging::members_to_stage(bundle, plan, options);
    if !members.is_empty() {
        crate::unpack::extract_members(bundle, &members, &plan.staging, ui)?;
    }
    if let Some(config) = &answers.config {
        crate::fsx::write_atomic(&plan.staging.join("config"), config.staged_text().as_bytes(), 0o600)?;
    }
    Ok(())
}
