//! `status`: the journal of the last run on this host, and `--follow` of a running one.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use serde::Serialize;

use super::{envelope, open, print_json, Context};
use crate::error::Result;
use crate::install::journal::{self, Event, History, Outcome, Record};
use crate::install::state::StateDir;
use crate::progress::out_line;

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

/// `status`: the last run of this bundle's product on this host: which bundle, when,
/// each step's result and time, how it ended (or that it is running), and its log.
/// `--follow` shows a running install's log as it grows, until it ends.
pub fn status(ctx: &Context, follow: bool) -> Result<()> {
    if ctx.global.all_nodes {
        return super::nodes::status(ctx);
    }
    let bundle = open(ctx)?;
    let meta = &bundle.index.bundle;
    let state = StateDir::for_bundle(&meta.name);
    if follow {
        follow_run(&state);
    }
    let records = journal::read(&state.journal());
    let last = journal::last_run(&records);
    let holder = state.holder();
    let history = History::of(&records);
    let installed = crate::install::record::read(&state);
    let Some(Record { at: started, event: Event::RunStarted { bundle_sha256, version, pid, log, role, phase, .. }, .. }) = last.first()
    else {
        if ctx.ui.json {
            print_json(&envelope("status", None, json!({"runs": 0, "state_dir": state.root})));
        } else {
            out_line(&format!("no install of {} has run on this host (state directory {})", meta.name, state.root.display()));
        }
        return Ok(());
    };
    let ended = last.iter().rev().find_map(|r| match &r.event {
        Event::RunFinished { outcome, exit_code, .. } => Some((r.at.clone(), *outcome, *exit_code)),
        _ => None,
    });
    let (outcome, result) = match (&ended, &holder) {
        (Some((_, Outcome::Ok, _)), _) => (RunState::Ok, "finished ok".to_string()),
        (Some((_, Outcome::Failed, code)), _) => (RunState::Failed, format!("failed (exit {code})")),
        (Some((_, Outcome::Interrupted, _)), _) => (RunState::Interrupted, "interrupted".to_string()),
        (None, Some(holder)) => (RunState::Running, format!("running ({holder})")),
        (None, None) => (
            RunState::Killed,
            "killed: it ended without a word (kill -9, a crash or a power cut); run the bundle again to resume".to_string(),
        ),
    };

    // Each step of the bundle, in order: what the last run did with it.
    let this_bundle = *bundle_sha256 == bundle.sha256();
    let steps: Vec<serde_json::Value> = bundle
        .index
        .steps
        .iter()
        // The steps of the role the last run had.
        .filter(|step| role.is_none_or(|role| step.runs_on(role)))
        // And of the kind of install it was (an install's, an upgrade's).
        .filter(|step| phase.is_none_or(|phase| step.when.includes(phase)))
        .map(|step| {
            let name = step.name();
            let mut state = if this_bundle && history.done.contains_key(&name) { Seen::AlreadyDone } else { Seen::NotRun };
            let mut detail = String::new();
            let mut seconds = 0.0;
            let mut attempts = 0;
            for record in last {
                match &record.event {
                    Event::StepStarted { step, attempt } if *step == name => {
                        state = Seen::Running;
                        attempts = *attempt;
                    }
                    Event::StepDone { step, seconds: s, detail: d, .. } if *step == name => {
                        state = Seen::Done;
                        seconds = *s;
                        detail = d.clone();
                    }
                    Event::StepFailed { step, seconds: s, error, .. } if *step == name => {
                        state = Seen::Failed;
                        seconds = *s;
                        detail = error.clone();
                    }
                    _ => {}
                }
            }
            if state == Seen::Running && holder.is_none() {
                state = if ended.is_some() { Seen::Failed } else { Seen::Killed };
            }
            json!({"name": name, "kind": step.action.kind(), "state": state, "label": state.label(), "attempts": attempts, "seconds": seconds, "detail": detail, "done_at": history.done.get(&name).map(|d| &d.at)})
        })
        .collect();

    if ctx.ui.json {
        print_json(&envelope(
            "status",
            None,
            json!({
                "runs": records.iter().filter(|r| matches!(r.event, Event::RunStarted { .. })).count(),
                "last_run": {"started": started, "pid": pid, "version": version, "bundle_sha256": bundle_sha256, "result": result, "outcome": outcome,
                             "ended": ended.as_ref().map(|e| &e.0), "log": log},
                "this_bundle": this_bundle, "complete": history.complete && this_bundle, "role": role,
                "state_dir": state.root, "steps": steps, "installed": installed,
            }),
        ));
        return Ok(());
    }
    let role = role.map(|r| format!(", role {r}")).unwrap_or_default();
    out_line(&format!("{} {}: last run started {started} (pid {pid}{role}): {result}", meta.name, version));
    if !this_bundle {
        out_line(&format!(
            "  (that run was of another bundle, SHA-256 {}; this one is {})",
            &bundle_sha256[..12.min(bundle_sha256.len())],
            &bundle.sha256()[..12]
        ));
    }
    let width = steps.iter().map(|s| s["name"].as_str().unwrap_or("").len()).max().unwrap_or(0);
    for step in &steps {
        let seconds = step["seconds"].as_f64().unwrap_or(0.0);
        let time = if seconds > 0.0 { format!("{seconds:.1}s") } else { String::new() };
        out_line(&format!(
            "  {:12}  {:width$}  {:>7}  {}",
            step["label"].as_str().unwrap_or(""),
            step["name"].as_str().unwrap_or(""),
            time,
            step["detail"].as_str().unwrap_or("")
        ));
    }
    out_line(&format!("  log: {}", log.display()));
    out_line(&format!("  journal: {}", state.journal().display()));
    if let Some(installed) = &installed {
        out_line(&format!("  installed: {} {} ({} at {})", installed.name, installed.describe(), installed.how, installed.installed_at));
    }
    Ok(())
}

/// Shows the log of the running install as it grows, until the run lets go of its lock.
fn follow_run(state: &StateDir) {
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
                    let _ = std::io::stdout().lock().write_all(text.as_bytes());
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
