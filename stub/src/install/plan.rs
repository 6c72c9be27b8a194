//! The plan: this host's steps with every value resolved, and which of them the journal
//! records as done. A value: `plan` prints it, the runner executes it, the journal marks
//! it, and the same plan is printed before and after.

use std::path::PathBuf;

use serde::Serialize;

use super::journal::History;
use airbin_format::error::{Error, Result};
use airbin_format::Bundle;

use super::answers::{self, Answers};
use super::config::{self, ProductConfig};
use super::journal;
use super::roles::{self, NodeRole};
use super::state::StateDir;
use super::{record, upgrade, Options};
use crate::fsx;
use crate::steps::{self, Inputs, Step};

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum PlanState {
    /// Not done yet: this run does it.
    Pending,
    /// Done by an earlier run of this bundle: not run again.
    Done,
    /// Done earlier, done again on purpose (`--from`, `--force`).
    Redo,
}

impl PlanState {
    pub(crate) fn runs(self) -> bool {
        self != PlanState::Done
    }
}

#[derive(Clone, Debug)]
pub(crate) struct PlannedStep {
    pub(crate) step: Step,
    pub(crate) name: String,
    pub(crate) prepared: steps::Prepared,
    pub(crate) state: PlanState,
    /// When an earlier run finished it.
    pub(crate) done_at: Option<String>,
    /// A killed run had handed the step's whole stream to the engine.
    pub(crate) handed_over: Option<super::journal::HandedOver>,
}

#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub(crate) steps: Vec<PlannedStep>,
    /// Where members are staged and command steps run.
    pub(crate) staging: PathBuf,
}

/// What to redo on purpose.
#[derive(Clone, Debug, Default)]
pub(crate) struct Redo {
    pub(crate) force: bool,
    pub(crate) from: Option<String>,
}

/// What counts as done before this run.
#[derive(Clone, Copy, Debug)]
pub(crate) enum DoneBy<'a> {
    /// The journal of this very bundle: each step done with the same values.
    Journal(&'a History),
    /// The install record: the version is installed, every step done (at that time).
    Record(&'a str),
    /// Nothing: a first install, an upgrade, a reinstall.
    Nothing,
}

impl Plan {
    /// Marks each prepared step with what is done (`done`) and what is redone on purpose.
    pub(crate) fn new(prepared: Vec<(Step, steps::Prepared)>, done: DoneBy, redo: &Redo, staging: PathBuf) -> Result<Plan> {
        let names: Vec<String> = prepared.iter().map(|(s, _)| s.name()).collect();
        let from_index = match &redo.from {
            None => None,
            Some(from) => Some(names.iter().position(|n| n == from).ok_or_else(|| {
                Error::usage(format!("--from {from}: the bundle has no step of that name; its steps are: {}", names.join(", ")))
            })?),
        };
        let steps = prepared
            .into_iter()
            .enumerate()
            .map(|(i, (step, prepared))| {
                let name = step.name();
                // Done for this bundle, with the same values (a changed config redoes it).
                let done_at = match done {
                    DoneBy::Journal(history) => match history.done.get(&name) {
                        Some(done) if done.does.is_empty() || done.does == crate::ui::runlog::mask(&prepared.describe()) => {
                            Some(done.at.clone())
                        }
                        _ => None,
                    },
                    DoneBy::Record(at) => Some(at.to_string()),
                    DoneBy::Nothing => None,
                };
                let forced = redo.force || from_index.is_some_and(|from| i >= from);
                let state = match (&done_at, forced) {
                    // --force: every step again, and no step takes a shortcut.
                    (None, true) if redo.force => PlanState::Redo,
                    (None, _) => PlanState::Pending,
                    (Some(_), true) => PlanState::Redo,
                    (Some(_), false) => PlanState::Done,
                };
                let handed_over = match done {
                    DoneBy::Journal(history) => history.handed_over.get(&name).cloned(),
                    _ => None,
                };
                PlannedStep { step, name, prepared, state, done_at, handed_over }
            })
            .collect();
        Ok(Plan { steps, staging })
    }

    pub(crate) fn runs_any(&self) -> bool {
        self.steps.iter().any(|s| s.state.runs())
    }

    pub(crate) fn to_run(&self) -> impl Iterator<Item = &PlannedStep> {
        self.steps.iter().filter(|s| s.state.runs())
    }

    /// Names of the steps that will run again although done (for the journal).
    pub(crate) fn redone(&self) -> Vec<String> {
        self.steps.iter().filter(|s| s.state == PlanState::Redo).map(|s| s.name.clone()).collect()
    }
}

/// Everything up to the plan: what `plan` shows and `install` executes.
pub(crate) struct Prepared<'a> {
    pub(crate) bundle: &'a Bundle,
    pub(crate) state: StateDir,
    pub(crate) answers: Answers,
    pub(crate) plan: Plan,
    pub(crate) history: History,
    /// This node's role, and why.
    pub(crate) role: NodeRole,
    /// The bundle's steps that do not run on this node's role.
    pub(crate) other_roles: Vec<steps::Step>,
    /// Keys of the config the role's steps use, with their values (masked where secret)
    /// and, where it differs, the last run's.
    pub(crate) config_values: Vec<(String, String, Option<String>)>,
    /// What is installed here, and what this bundle is to it.
    pub(crate) installed: Option<record::Installed>,
    pub(crate) change: upgrade::Change,
    /// The bundle's steps of this role that are not part of this kind of run.
    pub(crate) other_phase: Vec<steps::Step>,
}

impl Prepared<'_> {
    pub(crate) fn config(&self) -> Option<&ProductConfig> {
        self.answers.config.as_ref()
    }
}

/// Steps 2 and 3: answers, role, what this bundle is to the host, the plan (read-only:
/// nothing is written).
pub(crate) fn prepare<'a>(bundle: &'a Bundle, options: &Options) -> Result<Prepared<'a>> {
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
        let last = upgrade::LastRun { bundle_sha256: history.bundle_sha256.as_deref() };
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
    let inputs =
        Inputs { bundle, config: config.map(|c| c as &dyn crate::steps::ConfigValues), overrides: &options.overrides, staging: &staging };
    let prepared = steps.iter().map(|s| Ok((s.clone(), steps::prepare(s, &inputs)?))).collect::<Result<Vec<_>>>()?;
    let plan = Plan::new(prepared, done_by(&change, &history, &sha, options), &options.redo, staging)?;
    let config_values = match config {
        Some(config) => unchecked
            .into_iter()
            .map(|key| {
                let value = config.shown(&key).unwrap_or_else(|| "(not set)".into());
                let secret = config.is_secret(&key);
                let was = answers.last.text(&key).filter(|was| *was != value);
                let shown = if secret { airbin_format::params::MASK.into() } else { value };
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
    let journal_is_ours = history.bundle_sha256.as_deref() == Some(sha) && history.phase != Some(airbin_format::Phase::Uninstall);
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::install::journal::Done;
    use crate::steps::Overrides;

    const STEPS: &str = r#"[{"kind":"command","name":"a","run":["true"]},{"kind":"command","name":"b","run":["true","b"]},
                             {"kind":"command","name":"c","run":["true","c"]}]"#;

    /// The bundle's steps, prepared; `done` are those the journal says are done.
    fn plan(dir: &std::path::Path, done: &[&str], by_record: bool, redo: Redo) -> Result<Plan> {
        let bundle = crate::testing::bundle_with_steps(dir, STEPS);
        let staging = dir.join("staging");
        let overrides = Overrides::default();
        let inputs = Inputs { bundle: &bundle, config: None, overrides: &overrides, staging: &staging };
        let prepared: Vec<_> = bundle.index.steps.iter().map(|s| (s.clone(), steps::prepare(s, &inputs).unwrap())).collect();
        let history = History {
            done: done.iter().map(|n| (n.to_string(), Done { at: format!("at-{n}"), does: String::new() })).collect::<BTreeMap<_, _>>(),
            ..History::default()
        };
        let by = if by_record { DoneBy::Record("then") } else { DoneBy::Journal(&history) };
        Plan::new(prepared, by, &redo, staging)
    }

    fn states(plan: &Plan) -> Vec<(String, PlanState)> {
        plan.steps.iter().map(|s| (s.name.clone(), s.state)).collect()
    }

    fn named(states: &[(&str, PlanState)]) -> Vec<(String, PlanState)> {
        states.iter().map(|(n, s)| (n.to_string(), *s)).collect()
    }

    #[test]
    fn steps_the_journal_records_are_done_and_the_rest_pending() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(dir.path(), &["a"], false, Redo::default()).unwrap();
        assert_eq!(states(&plan), named(&[("a", PlanState::Done), ("b", PlanState::Pending), ("c", PlanState::Pending)]));
        assert_eq!(plan.steps[0].done_at.as_deref(), Some("at-a"));
        assert!(plan.runs_any());
        assert_eq!(plan.to_run().count(), 2);
        // The record of an installed version: every step done then.
        let installed = self::plan(dir.path(), &[], true, Redo::default()).unwrap();
        assert!(!installed.runs_any());
    }

    #[test]
    fn from_and_force_redo_on_purpose_and_an_unknown_step_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let from_b = plan(dir.path(), &["a", "b", "c"], false, Redo { force: false, from: Some("b".into()) }).unwrap();
        assert_eq!(states(&from_b), named(&[("a", PlanState::Done), ("b", PlanState::Redo), ("c", PlanState::Redo)]));
        assert_eq!(from_b.redone(), ["b", "c"]);
        let forced = plan(dir.path(), &["a"], false, Redo { force: true, from: None }).unwrap();
        assert!(forced.steps.iter().all(|s| s.state == PlanState::Redo), "{:?}", states(&forced));
        let err = plan(dir.path(), &[], false, Redo { force: false, from: Some("z".into()) }).expect_err("refused");
        assert_eq!(err.class, airbin_format::error::ExitClass::Usage);
        assert!(err.message.contains("--from z: the bundle has no step of that name; its steps are: a, b, c"), "{}", err.message);
    }

    #[test]
    fn a_step_done_with_other_values_is_done_again() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = crate::testing::bundle_with_steps(dir.path(), STEPS);
        let staging = dir.path().join("staging");
        let overrides = Overrides::default();
        let inputs = Inputs { bundle: &bundle, config: None, overrides: &overrides, staging: &staging };
        let prepared: Vec<_> = bundle.index.steps.iter().map(|s| (s.clone(), steps::prepare(s, &inputs).unwrap())).collect();
        let does = prepared[0].1.describe();
        let done = |does: &str| Done { at: "then".into(), does: does.into() };
        let history =
            History { done: [("a".to_string(), done(&does)), ("b".to_string(), done("something else"))].into(), ..History::default() };
        let plan = Plan::new(prepared, DoneBy::Journal(&history), &Redo::default(), staging).unwrap();
        assert_eq!(states(&plan), named(&[("a", PlanState::Done), ("b", PlanState::Pending), ("c", PlanState::Pending)]));
    }
}
