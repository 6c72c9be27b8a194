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

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::attempt::{self, Shared};
use super::journal::{self, Event, History, Journal, Outcome};
use super::placed::{self, Placed};
use super::plan::{DoneBy, Plan, PlanState};
use super::runner::{already_done, open_log, run_id, StepReport, StepState};
use super::state::StateDir;
use super::{answers, record, roles, Options};
use crate::engines::{self, Removed};
use crate::error::{Error, ExitClass, Result};
use crate::format::registry_pack::{blob_path, V2};
use crate::format::{Bundle, Phase};
use crate::progress::Ui;
use crate::steps::{self, Inputs};

/// The built-in parts of an uninstall, after the bundle's own steps.
pub const PARTS: [&str; 4] = ["remove images", "remove registry files", "remove extracted files", "remove the install record"];

/// What an uninstall will do here.
pub struct Prepared<'a> {
    pub bundle: &'a Bundle,
    pub state: StateDir,
    pub answers: answers::Answers,
    pub role: roles::NodeRole,
    pub installed: Option<record::Installed>,
    /// The bundle's uninstall steps for this role.
    pub plan: Plan,
    pub placed: Placed,
    pub history: History,
    /// What stays, and why (another product's, changed since, there before).
    pub kept: Vec<String>,
}

/// Reads what is installed and what was placed, and plans the uninstall. Changes nothing.
pub fn prepare<'a>(bundle: &'a Bundle, options: &Options) -> Result<Prepared<'a>> {
    let meta = &bundle.index.bundle;
    let state = StateDir::for_bundle(&meta.name);
    state.check()?;
    let installed = record::read(&state);
    let placed = placed::read(&state);
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
    let inputs = Inputs { bundle, config, overrides: &options.overrides, staging: &staging };
    let prepared = steps.iter().map(|s| Ok((s.clone(), steps::prepare(s, &inputs)?))).collect::<Result<Vec<_>>>()?;
    let ours = history.bundle_sha256.as_deref() == Some(bundle.sha256().as_str()) && uninstalling && !options.redo.force;
    let plan = Plan::new(prepared, if ours { DoneBy::Journal(&history) } else { DoneBy::Nothing }, &Default::default(), staging)?;
    let kept = kept(&state, &placed);
    Ok(Prepared { bundle, state, answers, role, installed, plan, placed, history, kept })
}

/// What an uninstall leaves, and why: files changed since the install or there before
/// it, images another product's record names.
fn kept(state: &StateDir, placed: &Placed) -> Vec<String> {
    let others = placed::of_other_products(state);
    let mut kept = Vec::new();
    for image in placed.images.iter().filter(|i| i.placed) {
        if others.iter().any(|o| o.has_image(&image.engine, &image.reference)) {
            kept.push(format!("image {}: another installed product's record names it", image.reference));
        }
    }
    for image in placed.images.iter().filter(|i| !i.placed) {
        kept.push(format!("image {}: it was there before the install", image.reference));
    }
    for file in &placed.files {
        match file_verdict(file) {
            FileVerdict::Changed => kept.push(format!("{}: changed since the install", file.path.display())),
            FileVerdict::WasThere => {
                kept.push(format!("{}: it was there before the install (it holds the bundle's copy now)", file.path.display()))
            }
            _ => {}
        }
    }
    kept
}

#[derive(PartialEq, Eq)]
enum FileVerdict {
    Remove,
    Changed,
    WasThere,
    Gone,
    /// A directory (a tree member's root): its files are listed on their own.
    Tree,
}

fn file_verdict(file: &placed::PlacedFile) -> FileVerdict {
    let Ok(meta) = std::fs::symlink_metadata(&file.path) else { return FileVerdict::Gone };
    if meta.is_dir() {
        return FileVerdict::Tree;
    }
    if file.existed_before {
        return FileVerdict::WasThere;
    }
    match crate::fsx::file_sha256(&file.path) {
        Ok(sha) if !file.sha256.is_empty() && sha == file.sha256 => FileVerdict::Remove,
        _ => FileVerdict::Changed,
    }
}

/// The plan as text or JSON: the uninstall steps, then what goes and what stays.
pub fn plan_json(prepared: &Prepared) -> serde_json::Value {
    let p = &prepared.placed;
    serde_json::json!({
        "role": prepared.role.role,
        "installed": prepared.installed,
        "steps": prepared.plan.steps.iter().map(|s| serde_json::json!({"name": s.name, "kind": s.step.action.kind(), "state": s.state, "does": crate::runlog::mask(&s.prepared.describe())})).collect::<Vec<_>>(),
        "removes": {
            "images": p.images.iter().filter(|i| i.placed).map(|i| &i.reference).collect::<Vec<_>>(),
            "registry_files": p.registries.iter().map(|r| serde_json::json!({"root": r.root, "files": r.files.len()})).collect::<Vec<_>>(),
            "files": p.files.iter().filter(|f| file_verdict(f) == FileVerdict::Remove).map(|f| &f.path).collect::<Vec<_>>(),
            "dirs": p.dirs,
        },
        "kept": prepared.kept,
        "state_dir": prepared.state.root,
    })
}

pub fn print_plan(prepared: &Prepared) {
    use crate::progress::out_line;
    let meta = &prepared.bundle.index.bundle;
    let installed =
        prepared.installed.as_ref().map_or("nothing recorded (a first install that did not finish)".to_string(), |i| i.describe());
    out_line(&format!("uninstall plan for {} on this host (role {}; installed: {installed})", meta.name, prepared.role.role));
    for (n, s) in prepared.plan.steps.iter().enumerate() {
        let state = if s.state == PlanState::Done { "done" } else { "to do" };
        out_line(&format!("  {}. {}  [{state}]  {}", n + 1, s.name, crate::runlog::mask(&s.prepared.describe())));
    }
    let p = &prepared.placed;
    let files = p.files.iter().filter(|f| file_verdict(f) == FileVerdict::Remove).count();
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
pub struct Report {
    pub role: crate::format::Role,
    pub steps: Vec<StepReport>,
    pub kept: Vec<String>,
    pub log: Option<PathBuf>,
}

/// Runs the uninstall: the product's steps, then every removal part, journaled.
pub fn run(prepared: Prepared, options: &Options, ui: &Ui) -> std::result::Result<Report, (Error, Report)> {
    let Prepared { bundle, state, answers, role, plan, placed, kept, installed, .. } = prepared;
    let fail =
        |error: Error, steps: Vec<StepReport>| (error, Report { role: role.role, steps, kept: kept.clone(), log: crate::runlog::path() });
    let meta = &bundle.index.bundle;
    let sha = bundle.sha256();
    let lock = state.lock().map_err(|e| fail(e, Vec::new()))?;
    let history = History::of(&journal::read(&state.journal()));
    let resuming = history.bundle_sha256.as_deref() == Some(sha.as_str()) && history.phase == Some(Phase::Uninstall) && !history.complete;
    for (step, unfinished) in &history.unfinished {
        attempt::stop_leftovers(ui, step, &unfinished.token);
    }
    let run_id = run_id();
    let log = open_log(&state, &run_id).map_err(|e| fail(e, Vec::new()))?;
    ui.status(format!("{} {}: uninstalling; log in {}", meta.name, meta.version, log.display()));
    let mut journal = Journal::open(&state.journal(), &run_id, &sha).map_err(|e| fail(e, Vec::new()))?;
    journal
        .append(Event::RunStarted {
            bundle_sha256: sha.clone(),
            version: meta.version.clone(),
            pid: std::process::id(),
            log: log.clone(),
            reset: !resuming,
            redo: Vec::new(),
            places: vec![state.root.clone()],
            role: Some(role.role),
            phase: Some(Phase::Uninstall),
            fan_out: options.fan_out.clone(),
        })
        .map_err(|e| fail(e, Vec::new()))?;
    let done = |name: &str| resuming && history.done.contains_key(name);

    let recorder = placed::Recorder::none();
    let mut reports = Vec::new();
    let mut error = None;
    if plan.runs_any() {
        if let Err(e) = stage_for_steps(bundle, &state, &answers, &plan, options, ui) {
            error = Some(e);
        }
    }
    let inputs = Inputs { bundle, config: answers.config.as_ref(), overrides: &options.overrides, staging: &plan.staging };
    let installed_version = installed.as_ref().map(|i| i.version.as_str());
    let env = super::runner::environment(
        bundle,
        answers.config.as_ref(),
        &answers.parameters,
        ("uninstall", installed_version),
        role.role,
        &plan.staging,
    );
    let shared = Shared { bundle, engine: None, ui, staging: &plan.staging, env: &env, inputs: &inputs, placed: &recorder };
    for planned in &plan.steps {
        if error.is_some() {
            reports.push(StepReport::not_run(planned, "an earlier step failed"));
            continue;
        }
        if !planned.state.runs() || done(&planned.name) {
            reports.push(already_done(planned));
            continue;
        }
        ui.status(format!("uninstall step {}: {}", planned.name, planned.prepared.describe()));
        let (report, failed) = attempt::run(planned, &shared, &mut journal);
        reports.push(report);
        error = failed;
    }
    let _ = std::fs::remove_dir_all(&plan.staging);
    let others = placed::of_other_products(&state);
    for part in PARTS {
        if error.is_some() {
            reports.push(StepReport {
                name: part.into(),
                kind: "remove",
                state: StepState::NotRun,
                detail: "an earlier step failed".into(),
                attempts: 0,
                seconds: 0.0,
                on_failure: vec![],
            });
            continue;
        }
        if done(part) {
            reports.push(StepReport {
                name: part.into(),
                kind: "remove",
                state: StepState::AlreadyDone,
                detail: "done earlier".into(),
                attempts: 0,
                seconds: 0.0,
                on_failure: vec![],
            });
            continue;
        }
        let started = std::time::Instant::now();
        let token = format!("{run_id}-{part}");
        if let Err(e) = journal.append(Event::StepStarted { step: part.into(), attempt: 1, token: Some(token) }) {
            error = Some(e);
            continue;
        }
        let outcome = match part {
            "remove images" => remove_images(&placed, &others, ui),
            "remove registry files" => remove_registry_files(&placed, &others),
            "remove extracted files" => remove_files(&placed, &others),
            _ => remove_record(&state),
        };
        let seconds = started.elapsed().as_secs_f64();
        let (state_now, detail) = match outcome {
            Ok(detail) => {
                let _ =
                    journal.append(Event::StepDone { step: part.into(), attempt: 1, seconds, detail: detail.clone(), does: String::new() });
                ui.status(format!("{part}: {detail}"));
                (StepState::Done, detail)
            }
            Err(e) => {
                let _ =
                    journal.append(Event::StepFailed { step: part.into(), attempt: 1, seconds, error: crate::runlog::mask(&e.message) });
                let detail = e.message.clone();
                error = Some(Error::new(
                    if e.class == ExitClass::Interrupted { e.class } else { ExitClass::Step },
                    format!("{part} failed: {}", e.message),
                ));
                (StepState::Failed, detail)
            }
        };
        reports.push(StepReport { name: part.into(), kind: "remove", state: state_now, detail, attempts: 1, seconds, on_failure: vec![] });
    }
    let complete = error.is_none();
    let outcome = match &error {
        None => Outcome::Ok,
        Some(e) if e.class == ExitClass::Interrupted => Outcome::Interrupted,
        Some(_) => Outcome::Failed,
    };
    let _ = journal.append(Event::RunFinished { outcome, exit_code: error.as_ref().map_or(0, |e| e.class.code()), complete });
    crate::runlog::sync();
    if complete {
        // The host as before the install: the state directory goes too, log and all.
        crate::runlog::close();
        drop(journal);
        drop(lock);
        let _ = std::fs::remove_dir_all(&state.root);
        return Ok(Report { role: role.role, steps: reports, kept, log: None });
    }
    Err(fail(error.expect("not complete"), reports))
}

/// The uninstall steps run in a staging directory of their own, with the config.
fn stage_for_steps(bundle: &Bundle, state: &StateDir, answers: &answers::Answers, plan: &Plan, options: &Options, ui: &Ui) -> Result<()> {
    bundle.await_verified()?;
    std::fs::create_dir_all(&plan.staging).map_err(|e| Error::io(e, "creating", &plan.staging))?;
    let members = super::members_to_stage(bundle, plan, options);
    if !members.is_empty() {
        crate::extract::extract_members(bundle, &members, &plan.staging, ui)?;
    }
    if let Some(config) = &answers.config {
        crate::fsx::write_atomic(&plan.staging.join("config"), config.staged_text().as_bytes(), 0o600)?;
    }
    let _ = state;
    Ok(())
}

fn remove_images(placed: &Placed, others: &[Placed], ui: &Ui) -> Result<String> {
    let (mut removed, mut absent, mut kept) = (0, 0, 0);
    for image in placed.images.iter().filter(|i| i.placed) {
        if others.iter().any(|o| o.has_image(&image.engine, &image.reference)) {
            kept += 1;
            continue;
        }
        crate::interrupt::check()?;
        let engine = image.engine.engine();
        match engines::remove_image(&engine, &image.reference)? {
            Removed::Yes => removed += 1,
            Removed::NotThere => absent += 1,
            Removed::InUse(why) => {
                return Err(Error::step(format!(
                "{} refused to remove {} ({why}): remove what uses it (docker ps -a --filter ancestor={}), then run the uninstall again",
                engine.name(),
                image.reference,
                image.reference
            )))
            }
        }
        ui.status(format!("removed {} from {}", image.reference, engine.name()));
    }
    Ok(format!("{removed} image reference(s) removed, {absent} gone already, {kept} kept (another product's)"))
}

fn remove_registry_files(placed: &Placed, others: &[Placed]) -> Result<String> {
    let mut removed = 0;
    let mut kept_blobs = 0;
    for registry in &placed.registries {
        let root = &registry.root;
        let ours = |rel: &str| !others.iter().any(|o| o.has_registry_file(root, rel));
        let (blobs, links): (Vec<&String>, Vec<&String>) = registry.files.iter().filter(|f| ours(f)).partition(|f| f.contains("/blobs/"));
        for rel in links {
            removed += remove_file_in(root, rel);
        }
        let referenced = referenced_blobs(root);
        for rel in blobs {
            let hex =
                Path::new(rel.as_str()).parent().and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if referenced.contains(&hex) {
                kept_blobs += 1;
                continue;
            }
            removed += remove_file_in(root, rel);
        }
        let mut dirs: Vec<&String> = registry.dirs.iter().collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
        for dir in dirs {
            let _ = std::fs::remove_dir(root.join(dir));
        }
        // Blob directories the pack's files lived in, emptied.
        for rel in registry.files.iter() {
            let mut dir = Path::new(rel.as_str()).parent();
            while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty() && registry.dirs.iter().any(|x| Path::new(x) == *d)) {
                let _ = std::fs::remove_dir(root.join(d));
                dir = d.parent();
            }
        }
        if registry.created_root {
            let _ = std::fs::remove_dir(root);
        }
    }
    Ok(format!("{removed} file(s) removed, {kept_blobs} blob(s) kept (still referenced)"))
}

/// Removes `rel` below `root` when it is a regular file (never through a link); 1 if it went.
fn remove_file_in(root: &Path, rel: &str) -> usize {
    let path = root.join(rel);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_file() => usize::from(std::fs::remove_file(&path).is_ok()),
        _ => 0,
    }
}

/// Every blob (hex) something left in the root references: each link, and what each
/// manifest a revision link names lists (its config, layers and sub-manifests).
fn referenced_blobs(root: &Path) -> BTreeSet<String> {
    let mut referenced = BTreeSet::new();
    let repositories = root.join(V2).join("repositories");
    let mut manifests = Vec::new();
    for (path, is_dir) in crate::fsx::walk(&repositories) {
        if is_dir || path.file_name().is_none_or(|n| n != "link") {
            continue;
        }
        let Ok(text) = crate::fsx::read_small_nofollow(&path, 4096) else { continue };
        let Some(hex) = String::from_utf8_lossy(&text).strip_prefix("sha256:").map(str::to_string) else { continue };
        if path.to_string_lossy().contains("/_manifests/revisions/") {
            manifests.push(hex.clone());
        }
        referenced.insert(hex);
    }
    for hex in manifests {
        let Ok(raw) = crate::fsx::read_small_nofollow(&root.join(V2).join(blob_path(&hex)), 4 << 20) else { continue };
        let value: serde_json::Value = serde_json::from_slice(&raw).unwrap_or_default();
        let digests = value.pointer("/config/digest").into_iter().chain(
            ["layers", "manifests"]
                .iter()
                .flat_map(|k| value.get(*k).and_then(|v| v.as_array()).into_iter().flatten().filter_map(|d| d.get("digest"))),
        );
        for digest in digests.filter_map(|d| d.as_str()) {
            if let Some(hex) = digest.strip_prefix("sha256:") {
                referenced.insert(hex.to_string());
            }
        }
    }
    referenced
}

fn remove_files(placed: &Placed, others: &[Placed]) -> Result<String> {
    let mut removed = 0;
    let mut kept = 0;
    for file in &placed.files {
        if others.iter().any(|o| o.has_file(&file.path)) {
            kept += 1;
            continue;
        }
        match file_verdict(file) {
            FileVerdict::Remove => removed += usize::from(std::fs::remove_file(&file.path).is_ok()),
            FileVerdict::Changed | FileVerdict::WasThere => kept += 1,
            FileVerdict::Gone | FileVerdict::Tree => {}
        }
    }
    let mut dirs: Vec<&PathBuf> = placed.dirs.iter().collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    let mut dirs_removed = 0;
    for dir in dirs {
        dirs_removed += usize::from(std::fs::remove_dir(dir).is_ok());
    }
    Ok(format!("{removed} file(s) and {dirs_removed} directory(ies) removed, {kept} file(s) kept (changed, or there before)"))
}

fn remove_record(state: &StateDir) -> Result<String> {
    record::remove(state);
    super::remembered::forget_all(state);
    placed::remove(state);
    super::verified::forget(state);
    Ok("the install record, the remembered answers and what was placed are forgotten".into())
}
