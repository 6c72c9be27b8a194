//! `status`: the journal of the last run on this host, and `--follow` of a running one.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use airbin_format::console::{out_line, print_json, Envelope};
use airbin_format::error::{Error, Result};
use airbin_format::{Bundle, Phase, Role};

use super::{open, options, trust, Context};
use crate::cli::StatusArgs;
use crate::install::drift;
use crate::install::journal::{self, Event, History, Outcome, Record};
use crate::install::record::Installed;
use crate::install::remembered::{self, Remembered};
use crate::install::state::StateDir;

/// What the last run did with a step, as `status` tells it.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum Seen {
    Done,
    AlreadyDone,
    Failed,
    NotRun,
    /// Started and not ended, while the run holds its lock.
    Running,
    /// Started and not ended by a run that is gone without a word.
    Killed,
}

impl Seen {
    fn label(self) -> &'static str {
        match self {
            Seen::Done => "done",
            Seen::AlreadyDone => "already done",
            Seen::Failed => "FAILED",
            Seen::NotRun => "not run",
            Seen::Running => "running",
            Seen::Killed => "killed",
        }
    }
}

/// How the last run stands.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum RunState {
    Ok,
    Failed,
    Interrupted,
    Running,
    /// Gone without recording an end: kill -9, a crash, a power cut.
    Killed,
}

/// One step of the bundle: what the last run did with it.
#[derive(Serialize)]
struct StepSeen {
    name: String,
    kind: &'static str,
    state: Seen,
    label: &'static str,
    attempts: u32,
    seconds: f64,
    detail: String,
    done_at: Option<String>,
}

/// The last run, as the journal has it.
#[derive(Serialize)]
struct LastRun<'a> {
    started: &'a str,
    pid: u32,
    version: &'a str,
    bundle_sha256: &'a str,
    result: String,
    outcome: RunState,
    ended: Option<String>,
    exit_code: Option<i32>,
    log: &'a Path,
    fan_out: &'a Option<String>,
    phase: &'a Option<Phase>,
}

/// A remembered answer: its value (masked where secret) and where it came from.
#[derive(Serialize)]
struct Answer {
    value: String,
    from: Option<String>,
}

#[derive(Serialize)]
struct Status<'a> {
    runs: usize,
    last_run: LastRun<'a>,
    this_bundle: bool,
    complete: bool,
    role: &'a Option<Role>,
    state_dir: &'a Path,
    installed: &'a Option<Installed>,
    answers: BTreeMap<String, Answer>,
    verify: Option<drift::Report>,
}

#[derive(Serialize)]
struct NoRun<'a> {
    runs: usize,
    state_dir: &'a Path,
}

/// `status`: the last run of this bundle's product on this host: which bundle, when,
/// each step's result and time, how it ended (or that it is running), and its log.
/// `--follow` shows a running install's log as it grows, until it ends. `--verify`
/// checks the host against the install's record.
pub(crate) fn status(ctx: &Context, args: &StatusArgs) -> Result<()> {
    check_args(args)?;
    let bundle = open(ctx)?;
    trust::verified_first_where_pinned(ctx, &bundle, &args.trust)?;
    let meta = &bundle.index.bundle;
    let state = StateDir::for_bundle(&meta.name);
    state.check()?;
    if args.follow {
        // With --json, stdout holds the one document: the log goes to stderr.
        follow_run(&state, ctx.ui.json);
    }
    let records = journal::read(&state.journal());
    let last = journal::last_run(&records);
    let installed = crate::install::record::read(&state);
    let Some(Record { at: started, event: Event::RunStarted { bundle_sha256, version, pid, log, role, phase, fan_out, .. }, .. }) =
        last.first()
    else {
        if args.verify {
            return Err(nothing_to_verify(meta));
        }
        match ctx.ui.json {
            true => print_json(&Envelope::ok("status", NoRun { runs: 0, state_dir: &state.root })),
            false => out_line(&format!("no install of {} has run on this host (state directory {})", meta.name, state.root.display())),
        }
        return Ok(());
    };
    let history = History::of(&records);
    let (outcome, result, ended) = how_it_stands(last, &state);
    let this_bundle = *bundle_sha256 == bundle.sha256();
    // A step started and not ended: running while the run holds its lock; failed when
    // the run ended; killed when the run is gone without a word.
    let unended = match (state.holder(), &ended) {
        (Some(_), _) => Seen::Running,
        (None, Some(_)) => Seen::Failed,
        (None, None) => Seen::Killed,
    };
    let steps = steps_seen(&bundle, last, &history, this_bundle, (*role, *phase), unended);
    let drift = match (args.verify, &installed) {
        (false, _) => None,
        (true, None) => return Err(nothing_to_verify(meta)),
        (true, Some(installed)) => {
            let engine = args.engine.as_deref().map(|e| crate::engines::detect(Some(e), "k8s.io")).transpose()?;
            Some(drift::check(&bundle, &state, installed, engine.as_ref()))
        }
    };
    let drift_error = drift.as_ref().and_then(drift_error);
    let doc = Status {
        runs: records.iter().filter(|r| matches!(r.event, Event::RunStarted { .. })).count(),
        last_run: LastRun {
            started,
            pid: *pid,
            version,
            bundle_sha256,
            result,
            outcome,
            exit_code: ended.as_ref().map(|e| e.1),
            ended: ended.map(|e| e.0),
            log,
            fan_out,
            phase,
        },
        this_bundle,
        complete: history.complete && this_bundle,
        role,
        state_dir: &state.root,
        installed: &installed,
        answers: answers(&bundle, &remembered::read(&state)),
        verify: drift,
    };
    match ctx.ui.json {
        true => print_json(&Envelope::ended("status", drift_error.as_ref(), doc).with_steps(steps)),
        false => print_text(&bundle, &state, &doc, &steps, &remembered::read(&state)),
    }
    drift_error.map_or(Ok(()), Err)
}

fn check_args(args: &StatusArgs) -> Result<()> {
    options::refuse_fan_out_flags(&args.fan_out, "status")?;
    if args.config.is_some() {
        return Err(Error::usage("--config goes with status --all-nodes; add it, or leave it out"));
    }
    if args.engine.is_some() && !args.verify {
        return Err(Error::usage("--engine goes with status --verify (the engine to look for the images in)"));
    }
    Ok(())
}

/// How the last run stands: its state, one line, and (when it ended) when and how.
fn how_it_stands(last: &[Record], state: &StateDir) -> (RunState, String, Option<(String, i32)>) {
    let ended = last.iter().rev().find_map(|r| match &r.event {
        Event::RunFinished { outcome, exit_code, .. } => Some((r.at.clone(), *outcome, *exit_code)),
        _ => None,
    });
    let (state, line) = match (&ended, state.holder()) {
        (Some((_, Outcome::Ok, _)), _) => (RunState::Ok, "finished ok".to_string()),
        (Some((_, Outcome::Failed, code)), _) => (RunState::Failed, format!("failed (exit {code})")),
        (Some((_, Outcome::Interrupted, _)), _) => (RunState::Interrupted, "interrupted".to_string()),
        (None, Some(holder)) => (RunState::Running, format!("running ({holder})")),
        (None, None) => (
            RunState::Killed,
            "killed: it ended without a word (kill -9, a crash or a power cut); run the bundle again to resume".to_string(),
        ),
    };
    (state, line, ended.map(|(at, _, code)| (at, code)))
}

/// Each step of the bundle, in order, of the role and the kind of install the last run
/// had: what that run did with it; a step started and not ended is `unended`.
fn steps_seen(
    bundle: &Bundle,
    last: &[Record],
    history: &History,
    this_bundle: bool,
    (role, phase): (Option<Role>, Option<Phase>),
    unended: Seen,
) -> Vec<StepSeen> {
    let steps = bundle.index.steps.iter().filter(|step| role.is_none_or(|role| step.runs_on(role)));
    let steps = steps.filter(|step| phase.is_none_or(|phase| step.when.includes(phase)));
    steps
        .map(|step| {
            let name = step.name();
            let mut seen = StepSeen {
                state: if this_bundle && history.done.contains_key(&name) { Seen::AlreadyDone } else { Seen::NotRun },
                kind: step.action.kind(),
                label: "",
                attempts: 0,
                seconds: 0.0,
                detail: String::new(),
                done_at: history.done.get(&name).map(|d| d.at.clone()),
                name,
            };
            for record in last {
                match &record.event {
                    Event::StepStarted { step, attempt, .. } if *step == seen.name => {
                        (seen.state, seen.attempts) = (Seen::Running, *attempt)
                    }
                    Event::StepDone { step, seconds, detail, .. } if *step == seen.name => {
                        (seen.state, seen.seconds, seen.detail) = (Seen::Done, *seconds, detail.clone())
                    }
                    Event::StepFailed { step, seconds, error, .. } if *step == seen.name => {
                        (seen.state, seen.seconds, seen.detail) = (Seen::Failed, *seconds, error.clone())
                    }
                    _ => {}
                }
            }
            if seen.state == Seen::Running {
                seen.state = unended;
            }
            seen.label = seen.state.label();
            seen
        })
        .collect()
}

fn drift_error(report: &drift::Report) -> Option<Error> {
    if report.drift.is_empty() {
        return None;
    }
    let named: Vec<String> = report.drift.iter().map(|x| format!("{} {}: {} (repair: {})", x.kind, x.what, x.found, x.repair)).collect();
    Some(Error::drift(format!("the host no longer matches the install: {} drift(s): {}", report.drift.len(), named.join("; "))))
}

fn print_text(bundle: &Bundle, state: &StateDir, doc: &Status, steps: &[StepSeen], remembered: &Remembered) {
    let (meta, last) = (&bundle.index.bundle, &doc.last_run);
    let role = doc.role.map(|r| format!(", role {r}")).unwrap_or_default();
    out_line(&format!("{} {}: last run started {} (pid {}{role}): {}", meta.name, last.version, last.started, last.pid, last.result));
    if !doc.this_bundle {
        out_line(&format!(
            "  (that run was of another bundle, SHA-256 {}; this one is {})",
            &last.bundle_sha256[..12.min(last.bundle_sha256.len())],
            &bundle.sha256()[..12]
        ));
    }
    let width = steps.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for step in steps {
        let time = if step.seconds > 0.0 { format!("{:.1}s", step.seconds) } else { String::new() };
        out_line(&format!("  {:12}  {:width$}  {:>7}  {}", step.label, step.name, time, step.detail));
    }
    out_line(&format!("  log: {}", last.log.display()));
    out_line(&format!("  journal: {}", state.journal().display()));
    if let Some(installed) = doc.installed {
        out_line(&format!("  installed: {} {} ({} at {})", installed.name, installed.describe(), installed.how, installed.installed_at));
    }
    if !remembered.is_empty() {
        out_line(&format!("  answers remembered from the run of {} at {}:", remembered.version, remembered.at));
        for (key, answer) in &doc.answers {
            out_line(&format!("      {key} = {} ({})", answer.value, answer.from.as_deref().unwrap_or("")));
        }
    }
    if let Some(report) = &doc.verify {
        let verdict =
            if report.drift.is_empty() { "all match the install".to_string() } else { format!("{} DRIFT(S)", report.drift.len()) };
        out_line(&format!(
            "  verify: {} image(s), {} registry blob(s), {} file(s) checked: {verdict}",
            report.images, report.blobs, report.files
        ));
        for d in &report.drift {
            out_line(&format!("    DRIFT {} {}: {}; repair: {}", d.kind, d.what, d.found, d.repair));
        }
    }
}

fn nothing_to_verify(meta: &airbin_format::BundleMeta) -> Error {
    Error::host(format!("nothing of {} is recorded as installed on this host: there is nothing to verify; install it first", meta.name))
}

/// The remembered answers as `status` shows them: each value (masked where secret) and
/// where it came from.
fn answers(bundle: &Bundle, remembered: &Remembered) -> BTreeMap<String, Answer> {
    let secret =
        |key: &str| crate::install::config::is_secret_key(key) || bundle.index.parameters.iter().any(|p| p.secret && p.key() == key);
    remembered
        .values
        .iter()
        .map(|(key, value)| {
            let shown = if secret(key) { airbin_format::params::MASK.to_string() } else { remembered::text_of(value) };
            (key.clone(), Answer { value: shown, from: remembered.from.get(key).cloned() })
        })
        .collect()
}

/// Shows the log of the running install as it grows, until the run lets go of its lock
/// (on stderr when stdout is for the JSON document).
fn follow_run(state: &StateDir, to_stderr: bool) {
    if state.holder().is_none() {
        return;
    }
    let log_of_last = || -> Option<PathBuf> {
        journal::last_run(&journal::read(&state.journal())).first().and_then(|r| match &r.event {
            Event::RunStarted { log, .. } => Some(log.clone()),
            _ => None,
        })
    };
    let mut shown = 0u64;
    let mut current = log_of_last();
    loop {
        let running = state.holder().is_some();
        if let Some(path) = &current {
            if let Ok(mut file) = std::fs::File::open(path) {
                let _ = file.seek(SeekFrom::Start(shown));
                let mut fresh = Vec::new();
                if file.read_to_end(&mut fresh).is_ok() && !fresh.is_empty() {
                    shown += fresh.len() as u64;
                    let text = String::from_utf8_lossy(&fresh);
                    use std::io::Write;
                    let _ = match to_stderr {
                        true => std::io::stderr().lock().write_all(text.as_bytes()),
                        false => std::io::stdout().lock().write_all(text.as_bytes()),
                    };
                }
            }
        }
        if !running {
            return;
        }
        let latest = log_of_last();
        if latest != current {
            current = latest;
            shown = 0;
        }
        std::thread::sleep(Duration::from_millis(200));
        if crate::interrupt::requested() {
            return;
        }
    }
}
