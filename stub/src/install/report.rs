//! What a run says of itself: each step's state and detail, and the run's report, for
//! the summary, `status` and `--json`.

use std::path::PathBuf;

use serde::Serialize;

use airbin_format::error::{Error, ExitClass};
use airbin_format::Role;

use super::plan::PlannedStep;
use super::upgrade;
use crate::steps;

/// What became of a step in this run, for the summary, `status` and `--json`.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum StepState {
    /// Done by this run.
    Done,
    /// Done by an earlier run, not run again.
    AlreadyDone,
    Failed,
    /// Not run: an earlier step failed, or `--noexec`.
    NotRun,
}

impl StepState {
    pub(crate) fn label(self) -> &'static str {
        match self {
            StepState::Done => "done",
            StepState::AlreadyDone => "already done",
            StepState::Failed => "FAILED",
            StepState::NotRun => "not run",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct StepReport {
    pub(crate) name: String,
    pub(crate) kind: &'static str,
    pub(crate) state: StepState,
    pub(crate) detail: String,
    /// Attempts this run made (0 when it made none).
    pub(crate) attempts: u32,
    pub(crate) seconds: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) on_failure: Vec<StepReport>,
}

impl StepReport {
    /// A step this run did not run, with why.
    pub(crate) fn untouched(step: &steps::Step, state: StepState, detail: String) -> StepReport {
        StepReport { name: step.name(), kind: step.action.kind(), state, detail, attempts: 0, seconds: 0.0, on_failure: vec![] }
    }

    pub(crate) fn not_run(step: &PlannedStep, why: &str) -> StepReport {
        StepReport::untouched(&step.step, StepState::NotRun, why.into())
    }
}

/// What an install did, for the summary and `--json`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) role: Role,
    pub(crate) steps: Vec<StepReport>,
    /// Where the members were staged, when kept.
    pub(crate) staging: Option<PathBuf>,
    pub(crate) log: Option<PathBuf>,
    /// Every step was done already: nothing ran.
    pub(crate) nothing_to_do: bool,
    /// Leftovers of a killed run removed first: how many, and their bytes.
    pub(crate) swept: (usize, u64),
    /// What this run was to what was installed.
    pub(crate) change: upgrade::Change,
    /// The receipt a finished run wrote.
    pub(crate) receipt: Option<PathBuf>,
}

/// An install that stopped: the error, and what it had done.
pub(crate) struct Stopped {
    pub(crate) error: Error,
    pub(crate) report: Option<Box<Report>>,
}

impl From<Error> for Stopped {
    fn from(error: Error) -> Stopped {
        Stopped { error, report: None }
    }
}

/// A step an earlier run did.
pub(crate) fn already_done(planned: &PlannedStep) -> StepReport {
    StepReport::untouched(&planned.step, StepState::AlreadyDone, format!("done {}", planned.done_at.as_deref().unwrap_or("earlier")))
}

/// Ctrl-C or SIGTERM in the middle: what is true of the run, and what the next does.
pub(crate) fn interrupted(steps: &[StepReport]) -> Error {
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
