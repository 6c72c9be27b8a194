//! The install, as a plan that is computed, checked, then executed:
//!
//! 1. the bundle is being verified (by the caller, on another thread): no step but an
//!    image load or a registry restore starts before its verdict, and those hold back
//!    their commit until then (the end of the stream: `engines::load`; the placement:
//!    `registry::restore`), so nothing commits unverified bytes;
//! 2. every value is resolved once into the answers (`answers`: the config file, the
//!    answers remembered from the last run, `--set`, defaults, prompts), this node's
//!    role found (`--role`, or this host's address in the config's node list: `roles`),
//!    and the config checked: every key this role's steps take a value from;
//! 3. what this bundle is to what is installed is decided (`upgrade`: the install-kind
//!    table of docs/STATE.md), every step of the role prepared, and the plan made: this
//!    host's steps minus those done (by the journal of this very bundle, or, for an
//!    installed version, by the record);
//! 4. preflight checks what the steps to run need, and reports every problem at once;
//! 5. `runner`: the state directory is locked, leftovers of a killed run swept (files,
//!    processes), the log opened, the answers remembered, then each step runs,
//!    journaled as it starts and ends; the members the role's steps read from disk are
//!    staged first, with the config as `config`; staging goes when the run ends;
//! 6. the report says what was done, where the log is, and what to do next.

pub mod answers;
mod attempt;
pub mod config;
pub mod drift;
pub mod journal;
pub mod leftovers;
pub mod nodes;
pub mod params;
pub mod placed;
pub mod plan;
pub mod preflight;
pub mod record;
pub mod remembered;
pub mod roles;
pub mod runner;
mod show;
pub mod state;
pub mod uninstall;
pub mod upgrade;
pub mod verified;

use std::path::PathBuf;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::{Action, Bundle, Member, MemberKind, Role};
use crate::fsx;
use crate::steps::{self, Inputs, Needs, Overrides};
pub use answers::Answers;
use config::ProductConfig;
use journal::History;
use plan::{DoneBy, Plan, Redo};
use roles::NodeRole;
pub use runner::{run, StepReport, StepState};
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
    /// Where the values come from.
    pub given: answers::Given,
    pub skip_preflight: Vec<String>,
    /// This node's role, when given (`--role`); else found from the config's node lists.
    pub role: Option<Role>,
    /// Install over a newer version on purpose.
    pub allow_downgrade: bool,
    /// The `--all-nodes` run this one is part of (its tag, for the journal).
    pub fan_out: Option<String>,
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
    pub answers: Answers,
    pub plan: Plan,
    pub history: History,
    /// This node's role, and why.
    pub role: NodeRole,
    /// The bundle's steps that do not run on this node's role.
    pub other_roles: Vec<steps::Step>,
    /// Keys of the config the role's steps use, with their values (masked where secret)
    /// and, where it differs, the last run's.
    pub config_values: Vec<(String, String, Option<String>)>,
    /// What is installed here, and what this bundle is to it.
    pub installed: Option<record::Installed>,
    pub change: upgrade::Change,
    /// The bundle's steps of this role that are not part of this kind of run.
    pub other_phase: Vec<steps::Step>,
}

impl Prepared<'_> {
    pub fn config(&self) -> Option<&ProductConfig> {
        self.answers.config.as_ref()
    }
}

/// Steps 2 and 3: answers, role, what this bundle is to the host, the plan (read-only:
/// nothing is written).
pub fn prepare<'a>(bundle: &'a Bundle, options: &Options) -> Result<Prepared<'a>> {
    let meta = &bundle.index.bundle;
    let state = StateDir::for_bundle(&meta.name);
    // Everything read from it steers this run: it must be this user's alone.
    state.check()?;
    let answers = answers::resolve(bundle, &options.given, &state)?;
    let config = answers.config.as_ref();
    let role = match options.role {
        Some(role) => NodeRole { role, why: roles::Why::Flag },
        // --noexec runs no step, and may have no config to find the role in.
        None if options.noexec && config.is_none() => NodeRole::single(),
        None => {
            let list = roles::node_list(&bundle.index.config, config)?;
            let path = config.map_or_else(String::new, |c| c.path.display().to_string());
            roles::resolve(None, list.as_ref(), &roles::ThisHost::detect(), &path)?
        }
    };
    let history = History::of(&journal::read(&state.journal()));
    let installed = record::read(&state);
    let sha = bundle.sha256();
    let change = if options.noexec {
        upgrade::Change::Install
    } else {
        let last = upgrade::LastRun { bundle_sha256: history.bundle_sha256.as_deref(), complete: history.complete };
        let asked =
            upgrade::Asked { force: options.redo.force, allow_downgrade: options.allow_downgrade, from: options.redo.from.is_some() };
        upgrade::decide(meta, &sha, installed.as_ref(), last, asked)?
    };
    let all_steps = if options.noexec { &[][..] } else { &bundle.index.steps[..] };
    let (steps, other_roles): (Vec<steps::Step>, Vec<steps::Step>) = all_steps.iter().cloned().partition(|s| s.runs_on(role.role));
    let (steps, other_phase): (Vec<steps::Step>, Vec<steps::Step>) = steps.into_iter().partition(|s| s.when.includes(change.phase()));
    // Keys that parameters hold were checked against their declarations.
    let unchecked: Vec<String> =
        role_keys(bundle, &steps).into_iter().filter(|k| !bundle.index.parameters.iter().any(|p| p.key() == k)).collect();
    if let Some(config) = config.filter(|_| !options.noexec) {
        check_missing(bundle, config, &unchecked)?;
    }
    let staging = options.target.clone().map(|t| fsx::absolute(&t)).unwrap_or_else(|| state.staging());
    let inputs = Inputs { bundle, config, overrides: &options.overrides, staging: &staging };
    let prepared = steps.iter().map(|s| Ok((s.clone(), steps::prepare(s, &inputs)?))).collect::<Result<Vec<_>>>()?;
    let plan = Plan::new(prepared, done_by(&change, &history, &sha, options), &options.redo, staging)?;
    let config_values = match config {
        Some(config) => unchecked
            .into_iter()
            .map(|key| {
                let value = config.shown(&key).unwrap_or_else(|| "(not set)".into());
                let secret = config.is_secret(&key);
                let was = answers.last.text(&key).filter(|was| *was != value);
                let shown = if secret { crate::format::params::MASK.into() } else { value };
                let was = was.map(|w| if secret { "(another value)".into() } else { w });
                (key, shown, was)
            })
            .collect(),
        None => Vec::new(),
    };
    Ok(Prepared { bundle, state, answers, plan, history, role, other_roles, config_values, installed, change, other_phase })
}

/// What counts as done: this very bundle's journal, the record of the version
/// installed, or nothing.
pub(crate) fn done_by<'h>(change: &'h upgrade::Change, history: &'h History, sha: &str, options: &Options) -> DoneBy<'h> {
    let journal_is_ours = history.bundle_sha256.as_deref() == Some(sha) && history.phase != Some(crate::format::Phase::Uninstall);
    match change {
        upgrade::Change::Same { this_build: true, .. } => DoneBy::Journal(history),
        upgrade::Change::Same { since, .. } => DoneBy::Record(since),
        upgrade::Change::Reinstall { .. } => DoneBy::Nothing,
        _ if options.redo.force || !journal_is_ours => DoneBy::Nothing,
        _ => DoneBy::Journal(history),
    }
}

/// The config keys this role's steps use, and those the spec requires.
fn role_keys(bundle: &Bundle, steps: &[steps::Step]) -> Vec<String> {
    let mut keys: Vec<String> = bundle.index.config.required.clone();
    for step in steps.iter().chain(steps.iter().flat_map(|s| &s.on_failure)) {
        for key in answers::step_keys(step) {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys
}

/// Every key the role's steps need that the values lack, in one message.
fn check_missing(bundle: &Bundle, config: &ProductConfig, keys: &[String]) -> Result<()> {
    let missing: Vec<String> = config.missing(keys.iter().map(String::as_str)).into_iter().map(str::to_string).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if config.source == config::Source::NoFile {
        return Err(answers::no_config(bundle, &config.path, &missing));
    }
    Err(Error::usage(format!(
        "{}: {} missing or empty: {}; set {} there (see the bundle's config sample) or with --set KEY=VALUE, and run again",
        crate::shell::quote_path(&config.path),
        if missing.len() == 1 { "a key the bundle needs is" } else { "keys the bundle needs are" },
        missing.join(", "),
        if missing.len() == 1 { "it" } else { "them" },
    )))
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
    config::parse(PathBuf::from(format!("{}:{}", bundle.path.display(), sample.name)), config::Source::Sample, base, text)
}

/// Preflight: whether this host can run the steps still to do, every problem in one
/// report. Runs before anything lands (the lock and the log included).
pub fn check_host(prepared: &Prepared, options: &Options) -> Result<preflight::Ready> {
    let bundle = prepared.bundle;
    let mut needs: Vec<Needs> = prepared.plan.to_run().map(|s| s.prepared.needs(bundle, &s.name)).collect();
    let staging_bytes: u64 = members_to_stage(bundle, &prepared.plan, options).iter().map(|m| m.unpacked_bytes).sum();
    let moved_by = if options.target.is_some() { "another --target DIR" } else { "--target DIR" };
    needs.push(Needs {
        space: vec![steps::Place::new(&prepared.plan.staging, staging_bytes, "staging", Some(moved_by))],
        ..Needs::default()
    });
    needs.push(Needs {
        space: vec![steps::Place::new(&prepared.state.root, 0, "the state directory", Some("AIRBIN_STATE_DIR=DIR"))],
        ..Needs::default()
    });
    let host = preflight::Host {
        bundle: &bundle.index.bundle,
        requires: &bundle.index.requires,
        skip: &options.skip_preflight,
        containerd_namespace: &options.containerd_namespace,
    };
    preflight::check(&host, &needs)
}

/// Members the run reads from disk: those this role's command steps run or name, and the
/// tools, files and config samples no command step names (the product's tools may read
/// them beside themselves); one that only another role's commands name is that role's.
/// Images and registry packs stream from the bundle: one is staged only when a command
/// of this role names it. With `--noexec`, and for a bundle without steps (staging is
/// what its install is for, as makeself's), every member.
pub fn members_to_stage<'a>(bundle: &'a Bundle, plan: &Plan, options: &Options) -> Vec<&'a Member> {
    if options.noexec || bundle.index.steps.is_empty() {
        return bundle.index.members.iter().collect();
    }
    let commands = |steps: &mut dyn Iterator<Item = &'a crate::format::Step>| -> Vec<&'a crate::format::Step> {
        steps.flat_map(|s| std::iter::once(s).chain(&s.on_failure)).filter(|s| matches!(s.action, Action::Command { .. })).collect()
    };
    let ours: Vec<&crate::format::Step> = plan
        .steps
        .iter()
        .flat_map(|s| std::iter::once(&s.step).chain(&s.step.on_failure))
        .filter(|s| matches!(s.action, Action::Command { .. }))
        .collect();
    if ours.is_empty() {
        return Vec::new();
    }
    let every = commands(&mut bundle.index.steps.iter());
    let names = |steps: &[&crate::format::Step], member: &Member| {
        steps.iter().any(|step| match &step.action {
            Action::Command { run } => run.iter().any(|word| word == &member.name || word.starts_with(&format!("{}/", member.name))),
            _ => false,
        })
    };
    bundle
        .index
        .members
        .iter()
        .filter(|m| {
            names(&ours, m) || (matches!(m.kind, MemberKind::Tool | MemberKind::File | MemberKind::ConfigSample) && !names(&every, m))
        })
        .collect()
}
