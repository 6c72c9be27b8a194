//! One planned step to its end: each attempt journaled as it starts and ends, retried
//! as the step allows (what a failed attempt left running stopped first), its
//! `on_failure` steps run once when it finally fails.

use std::time::{Duration, Instant};

use super::journal::{Event, Journal};
use super::plan::{PlanState, PlannedStep};
use super::report::{StepReport, StepState};
use crate::interrupt;
use crate::steps::{self, Failure, RunContext};
use crate::ui::Ui;
use airbin_format::error::{Error, ExitClass, Result};

/// What every step of the run shares.
pub(crate) struct Shared<'a> {
    pub(crate) bundle: &'a airbin_format::Bundle,
    pub(crate) engine: Option<&'a crate::engines::Engine>,
    pub(crate) ui: &'a Ui,
    pub(crate) staging: &'a std::path::Path,
    pub(crate) env: &'a [(String, String)],
    pub(crate) inputs: &'a steps::Inputs<'a>,
    pub(crate) placed: &'a crate::steps::placed::Recorder,
}

/// What one attempt of one step is given.
struct Attempt<'a> {
    step_name: &'a str,
    step_env: &'a std::collections::BTreeMap<String, String>,
    timeout: Option<Duration>,
    redo: bool,
    handed_over_before: Option<&'a super::journal::HandedOver>,
    hand_over: &'a (dyn Fn() + Sync),
    token: &'a str,
}

impl<'a> Shared<'a> {
    fn context(&'a self, attempt: Attempt<'a>) -> RunContext<'a> {
        RunContext {
            bundle: self.bundle,
            engine: self.engine,
            ui: self.ui,
            staging: self.staging,
            env: self.env,
            step_name: attempt.step_name,
            step_env: attempt.step_env,
            timeout: attempt.timeout,
            redo: attempt.redo,
            handed_over_before: attempt.handed_over_before,
            hand_over: attempt.hand_over,
            token: attempt.token,
            placed: self.placed,
        }
    }
}

/// Appends one event to the journal (shared with the thread that feeds an engine).
type Append<'j> = dyn Fn(Event) -> Result<()> + Sync + 'j;

/// Runs `planned` to the end: its report, and the error that stops the install if it
/// finally failed.
pub(crate) fn run(planned: &PlannedStep, shared: &Shared, journal: &mut Journal) -> (StepReport, Option<Error>) {
    let run_id = journal.run_id().to_string();
    // A step may record its hand-over from the thread that feeds its engine.
    let journal = std::sync::Mutex::new(journal);
    let append = |event: Event| journal.lock().unwrap_or_else(|e| e.into_inner()).append(event);
    let step = &planned.step;
    let attempts = step.retries + 1;
    let env = expand_env(step, shared);
    let started = Instant::now();
    let mut report = StepReport::untouched(step, StepState::Failed, String::new());
    let mut last = None;
    let mut previous_token: Option<String> = None;
    for attempt in 1..=attempts {
        report.attempts = attempt;
        if let Some(token) = &previous_token {
            super::leftovers::stop_and_say(shared.ui, &planned.name, token);
        }
        let token = format!("{run_id}-{attempt}-{}", crate::fsx::random_hex());
        if let Err(e) = append(Event::StepStarted { step: planned.name.clone(), attempt, token: Some(token.clone()) }) {
            return (report, Some(e));
        }
        previous_token = Some(token.clone());
        let began = Instant::now();
        let outcome = attempt_once(planned, shared, &env, (attempt, &token), &append);
        let seconds = began.elapsed().as_secs_f64();
        match outcome {
            Ok(mut detail) => {
                if attempt > 1 {
                    detail.push_str(&format!(" (succeeded on attempt {attempt} of {attempts})"));
                }
                let does = crate::ui::runlog::mask(&planned.prepared.describe());
                let detail = crate::ui::runlog::mask(&detail);
                if let Err(e) = append(Event::StepDone { step: planned.name.clone(), attempt, seconds, detail: detail.clone(), does }) {
                    return (report, Some(e));
                }
                report.state = StepState::Done;
                report.detail = detail;
                report.seconds = started.elapsed().as_secs_f64();
                return (report, None);
            }
            Err(failure) => {
                let error = crate::ui::runlog::mask(&failure.error.message);
                let _ = append(Event::StepFailed { step: planned.name.clone(), attempt, seconds, error: error.clone() });
                let retryable = matches!(failure.error.class, ExitClass::Step | ExitClass::Host);
                match failure.error.class {
                    ExitClass::Interrupted => shared.ui.status(format!("step '{}' was interrupted and stopped", planned.name)),
                    _ => shared.ui.status(format!("step '{}' attempt {attempt} of {attempts} failed: {error}", planned.name)),
                }
                last = Some(failure);
                if !retryable || attempt == attempts || interrupt::requested() || !wait_to_retry(planned, shared) {
                    break;
                }
            }
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    finally_failed(planned, shared, &run_id, report, last)
}

/// One attempt of the step, with its own token and its hand-over journaled.
fn attempt_once(
    planned: &PlannedStep,
    shared: &Shared,
    env: &Result<std::collections::BTreeMap<String, String>>,
    (attempt, token): (u32, &str),
    append: &Append,
) -> std::result::Result<String, Failure> {
    let began = Instant::now();
    let hand_over = || {
        let _ = append(Event::StepHandedOver { step: planned.name.clone(), attempt, seconds: began.elapsed().as_secs_f64() });
    };
    let step_env = env.as_ref().map_err(|e| Failure::from(e.clone()))?;
    planned.prepared.run(&shared.context(Attempt {
        step_name: &planned.name,
        step_env,
        timeout: planned.step.timeout.map(|t| t.duration()).filter(|_| planned.prepared.honours_timeout()),
        redo: planned.state == PlanState::Redo,
        // Only the first attempt's: a retry starts over.
        handed_over_before: planned.handed_over.as_ref().filter(|_| attempt == 1),
        hand_over: &hand_over,
        token,
    }))
}

/// Says when the step is tried again, and waits; false when interrupted meanwhile.
fn wait_to_retry(planned: &PlannedStep, shared: &Shared) -> bool {
    let delay = planned.step.retry_delay();
    shared.ui.status(format!("retrying '{}' in {}", planned.name, humantime::format_duration(delay)));
    sleep_unless_interrupted(delay).is_ok()
}

/// The step failed for good: its `on_failure` steps run, and the error says what the
/// step said last.
fn finally_failed(
    planned: &PlannedStep,
    shared: &Shared,
    run_id: &str,
    mut report: StepReport,
    last: Option<Failure>,
) -> (StepReport, Option<Error>) {
    let failure = last.unwrap_or_else(|| Failure::from(Error::interrupted()));
    if failure.error.class == ExitClass::Interrupted || interrupt::requested() {
        report.detail = "interrupted".into();
        return (report, Some(Error::interrupted()));
    }
    report.detail = crate::ui::runlog::mask(&failure.error.message);
    report.on_failure = run_on_failure(planned, shared, run_id);
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
fn run_on_failure(planned: &PlannedStep, shared: &Shared, run_id: &str) -> Vec<StepReport> {
    let mut reports = Vec::new();
    for step in &planned.step.on_failure {
        let name = step.name();
        shared.ui.status(format!("step '{}' failed: running its on_failure step '{name}'", planned.name));
        let started = Instant::now();
        let token = format!("{run_id}-on-failure-{}", crate::fsx::random_hex());
        let result = steps::prepare(step, shared.inputs).map_err(Failure::from).and_then(|prepared| {
            let env = expand_env(step, shared).map_err(Failure::from)?;
            let attempt = Attempt {
                step_name: &name,
                step_env: &env,
                timeout: step.timeout.map(|t| t.duration()),
                redo: false,
                handed_over_before: None,
                hand_over: &|| {},
                token: &token,
            };
            prepared.run(&shared.context(attempt))
        });
        let (state, detail) = match result {
            Ok(detail) => (StepState::Done, detail),
            Err(f) => (StepState::Failed, crate::ui::runlog::mask(&f.error.message)),
        };
        shared.ui.status(format!("on_failure step '{name}' {}: {detail}", state.label()));
        reports.push(StepReport { attempts: 1, seconds: started.elapsed().as_secs_f64(), ..StepReport::untouched(step, state, detail) });
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
