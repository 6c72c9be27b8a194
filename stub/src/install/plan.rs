//! The plan: this host's steps with every value resolved, and which of them the journal
//! records as done. A value: `plan` prints it, the runner executes it, the journal marks
//! it, and the same plan is printed before and after.

use std::path::PathBuf;

use serde::Serialize;

use super::journal::History;
use crate::error::{Error, Result};
use crate::steps::{Prepared, Step};

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PlanState {
    /// Not done yet: this run does it.
    Pending,
    /// Done by an earlier run of this bundle: not run again.
    Done,
    /// Done earlier, done again on purpose (`--from`, `--force`).
    Redo,
}

impl PlanState {
    pub fn runs(self) -> bool {
        self != PlanState::Done
    }
}

#[derive(Clone, Debug)]
pub struct PlannedStep {
    pub step: Step,
    pub name: String,
    pub prepared: Prepared,
    pub state: PlanState,
    /// When an earlier run finished it.
    pub done_at: Option<String>,
    /// A killed run had handed the step's whole stream to the engine.
    pub handed_over: Option<super::journal::HandedOver>,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub steps: Vec<PlannedStep>,
    /// Where members are staged and command steps run.
    pub staging: PathBuf,
}

/// What to redo on purpose.
#[derive(Clone, Debug, Default)]
pub struct Redo {
    pub force: bool,
    pub from: Option<String>,
}

/// What counts as done before this run.
#[derive(Clone, Copy, Debug)]
pub enum DoneBy<'a> {
    /// The journal of this very bundle: each step done with the same values.
    Journal(&'a History),
    /// The install record: the version is installed, every step done (at that time).
    Record(&'a str),
    /// Nothing: a first install, an upgrade, a reinstall.
    Nothing,
}

impl Plan {
    /// Marks each prepared step with what is done (`done`) and what is redone on purpose.
    pub fn new(prepared: Vec<(Step, Prepared)>, done: DoneBy, redo: &Redo, staging: PathBuf) -> Result<Plan> {
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
                        Some(done) if done.does.is_empty() || done.does == crate::runlog::mask(&prepared.describe()) => {
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

    pub fn runs_any(&self) -> bool {
        self.steps.iter().any(|s| s.state.runs())
    }

    pub fn to_run(&self) -> impl Iterator<Item = &PlannedStep> {
        self.steps.iter().filter(|s| s.state.runs())
    }

    /// Names of the steps that will run again although done (for the journal).
    pub fn redone(&self) -> Vec<String> {
        self.steps.iter().filter(|s| s.state == PlanState::Redo).map(|s| s.name.clone()).collect()
    }
}
