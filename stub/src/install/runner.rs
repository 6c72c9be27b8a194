//! The runner: one planned step at a time, each attempt journaled as it starts and
//! ends, retried as the step allows, its `on_failure` steps run once when it finally
//! fails.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::journal::{Event, Journal};
use super::plan::{PlanState, PlannedStep};
use crate::error::{Error, ExitClass, Result};
use crate::interrupt;
use crate::progress::Ui;
use crate::steps::{self, Failure, RunContext};

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

/// What every step of the run shares.
pub struct Shared<'a> {
    pub bundle: &'a crate::format::Bundle,
    pub engine: Option<&'a crate::engines::Engine>,
    pub ui: &'a Ui,
    pub staging: &'a std::path::Path,
    pub env: &'a [(String, String)],
    pub inputs: &'a steps::Inputs<'a>,
}

impl<'a> Shared<'a> {
    fn context(
        &'a self,
        step_name: &'a str,
        step_env: &'a std::collections::BTreeMap<String, String>,
        timeout: Option<Duration>,
        redo: bool,
        handed_over_before: Option<&'a crate::install::journal::HandedOver>,
        hand_over: &'a (dyn Fn() + Sync),
    ) -> RunContext<'a> {
        RunContext {
            bundle: self.bundle,
            engine: self.engine,
            ui: self.ui,
            staging: self.staging,
            env: self.env,
            step_name,
            step_env,
            timeout,
            redo,
            handed_over_before,
            hand_over,
        }
    }
}

/// Runs `planned` to the end: its report, and the error that stops the install if it
/// finally failed.
pub fn run(planned: &PlannedStep, shared: &Shared, journal: &mut Journal) -> (StepReport, Option<Error>) {
    // A step may record its hand-over from the thread that feeds its engine.
    let journal = std::sync::Mutex::new(journal);
    let append = |event: Event| journal.lock().unwrap_or_else(|e| e.into_inner()).append(event);
    let step = &planned.step;
    let attempts = step.retries + 1;
    let timeout = step.timeout.map(|t| t.duration()).filter(|_| planned.prepared.honours_timeout());
    let env = expand_env(step, shared);
    let started = Instant::now();
    let mut report = StepReport {
        name: planned.name.clone(),
        kind: step.action.kind(),
        state: StepState::Failed,
        detail: String::new(),
        attempts: 0,
        seconds: 0.0,
        on_failure: vec![],
    };
    let mut last = None;
    for attempt in 1..=attempts {
        report.attempts = attempt;
        let began = Instant::now();
        if let Err(e) = append(Event::StepStarted { step: planned.name.clone(), attempt }) {
            return (report, Some(e));
        }
        let hand_over = || {
            let _ = append(Event::StepHandedOver { step: planned.name.clone(), attempt, seconds: began.elapsed().as_secs_f64() });
        };
        // Only the first attempt's: a retry starts over.
        let before = planned.handed_over.as_ref().filter(|_| attempt == 1);
        let outcome = match &env {
            Ok(step_env) => planned.prepared.run(&shared.context(
                &planned.name,
                step_env,
                timeout,
                planned.state == PlanState::Redo,
                before,
                &hand_over,
            )),
            Err(e) => Err(Failure::from(e.clone())),
        };
        let seconds = began.elapsed().as_secs_f64();
        match outcome {
            Ok(mut detail) => {
                if attempt > 1 {
                    detail.push_str(&format!(" (succeeded on attempt {attempt} of {attempts})"));
                }
                let does = crate::runlog::mask(&planned.prepared.describe());
                let detail = crate::runlog::mask(&detail);
                if let Err(e) = append(Event::StepDone { step: planned.name.clone(), attempt, seconds, detail: detail.clone(), does }) {
                    return (report, Some(e));
                }
                report.state = StepState::Done;
                report.detail = detail;
                report.seconds = started.elapsed().as_secs_f64();
                return (report, None);
            }
            Err(failure) => {
                let _ = append(Event::StepFailed { step: planned.name.clone(), attempt, seconds, error: failure.error.message.clone() });
                let retryable = matches!(failure.error.class, ExitClass::Step | ExitClass::Host);
                shared.ui.status(format!("step '{}' attempt {attempt} of {attempts} failed: {}", planned.name, failure.error.message));
                last = Some(failure);
                if !retryable || attempt == attempts || interrupt::requested() {
                    break;
                }
                shared.ui.status(format!("retrying '{}' in {}", planned.name, humantime::format_duration(step.retry_delay())));
                if sleep_unless_interrupted(step.retry_delay()).is_err() {
                    break;
                }
            }
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    let failure = last.unwrap_or_else(|| Failure::from(Error::interrupted()));
    if failure.error.class == ExitClass::Interrupted || interrupt::requested() {
        report.detail = "interrupted".into();
        return (report, Some(Error::interrupted()));
    }
    report.detail = failure.error.message.clone();
    report.on_failure = run_on_failure(planned, shared);
    let tries = if report.attempts > 1 { format!(" (after {} attempts)", report.attempts) } else { String::new() };
    let mut message = format!("step '{}' failed{tries}: {}", planned.name, failure.error.message);
    if !failure.last_lines.is_empty() {
        message.push_str("\n  its last lines of output:");
        for line in &failure.last_lines {
            message.push_str(&format!("\n  | {line}"));
        }
    }
    let class = match failure.error.class {
        ExitClass::Step | ExitClass::Host => ExitClass::Step,
        other => other,
    };
    (report, Some(Error::new(class, message)))
}

/// The step's own environment, with `${config.KEY}` expanded.
fn expand_env(step: &steps::Step, shared: &Shared) -> Result<std::collections::BTreeMap<String, String>> {
    step.env
        .iter()
        .map(|(k, v)| {
            let value = super::config::expand(v, shared.inputs.config, &format!("step '{}' env {k}", step.name()))?;
            Ok((k.clone(), value))
        })
        .collect()
}

/// Runs a failed step's `on_failure` steps, each once; their own failures are logged
/// and reported, and do not hide the step's.
fn run_on_failure(planned: &PlannedStep, shared: &Shared) -> Vec<StepReport> {
    let mut reports = Vec::new();
    for step in &planned.step.on_failure {
        let name = step.name();
        shared.ui.status(format!("step '{}' failed: running its on_failure step '{name}'", planned.name));
        let started = Instant::now();
        let result = steps::prepare(step, shared.inputs).map_err(Failure::from).and_then(|prepared| {
            let env = expand_env(step, shared).map_err(Failure::from)?;
            prepared.run(&shared.context(&name, &env, step.timeout.map(|t| t.duration()), false, None, &|| {}))
        });
        let (state, detail) = match result {
            Ok(detail) => (StepState::Done, detail),
            Err(f) => (StepState::Failed, f.error.message),
        };
        shared.ui.status(format!("on_failure step '{name}' {}: {detail}", state.label()));
        reports.push(StepReport {
            name,
            kind: step.action.kind(),
            state,
            detail,
            attempts: 1,
            seconds: started.elapsed().as_secs_f64(),
            on_failure: vec![],
        });
    }
    reports
}

fn sleep_unless_interrupted(duration: Duration) -> Result<()> {
    let until = Instant::now() + duration;
    while Instant::now() < until {
        interrupt::check()?;
        std::thread::sleep(Duration::from_millis(100).min(until.saturating_duration_since(Instant::now())));
    }
    Ok(())
}
