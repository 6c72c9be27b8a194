//! `status`: the journal of the last run on this host, and `--follow` of a running one.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use serde::Serialize;

use super::{envelope, open, print_json, Context};
use crate::cli::StatusArgs;
use crate::error::{Error, Result};
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
pub fn status(ctx: &Context, args: &StatusArgs) -> Result<()> {
    if args.fan_out.all_nodes {
        return super::nodes::status(ctx, args);
    }
    let f = &args.fan_out;
    if args.config.is_some() || f.parallel != 0 || !f.ssh_option.is_empty() || f.remote_dir.is_some() {
        return Err(Error::usage(
            "--config, --parallel, --ssh-option and --remote-dir go with status --all-nodes; add it, or leave them out",
        ));
    }
    if args.engine.is_some() && !args.verify {
        return Err(Error::usage("--engine goes with status --verify (the engine to look for the images in)"));
    }
    let bundle = open(ctx)?;
    super::verified_first_where_pinned(ctx, &bundle, &args.trust)?;
    let meta = &bundle.index.bundle;
    let state = StateDir::for_bundle(&meta.name);
    state.check()?;
    if args.follow {
        // With --json, stdout holds the one document: the log goes to stderr.
        follow_run(&state, ctx.ui.json);
    }
    let records = journal::read(&state.journal());
    let last = journal::last_run(&records);
    let holder = state.holder();
    let history = History::of(&records);
    let installed = crate::install::record::read(&state);
    let remembered = crate::install::remembered::read(&state);
    let Some(Record { at: started, event: Event::RunStarted { bundle_sha256, version, pid, log, role, phase, fan_out, .. }, .. }) =
        last.first()
    else {
        if args.verify {
            return Err(nothing_to_verify(meta));
        }
        if ctx.ui.json {
            print_json(&envelope("status", None, json!({"runs": 0, "state_dir": state.root})));
        } else {
            out_line(&format!("no install of {} has run on this host (state directory {})", meta.name, state.root.display()));
        }
        return Ok(());
    };
    let answers = remembered_json(&bundle, &remembered);
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
                    Event::StepStarted { step, attempt, .. } if *step == name => {
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

    let drift = match (args.verify, &installed) {
        (false, _) => None,
        (true, None) => return Err(nothing_to_verify(meta)),
        (true, Some(installed)) => {
            let engine = args.engine.as_deref().map(|e| crate::engines::detect(Some(e), "k8s.io")).transpose()?;
            Some(crate::install::drift::check(&bundle, &state, installed, engine.as_ref()))
        }
    };
    let drift_error = drift.as_ref().filter(|d| !d.drift.is_empty()).map(|d| {
        let named: Vec<String> = d.drift.iter().map(|x| format!("{} {}: {} (repair: {})", x.kind, x.what, x.found, x.repair)).collect();
        Error::drift(format!("the host no longer matches the install: {} drift(s): {}", d.drift.len(), named.join("; ")))
    });
    if ctx.ui.json {
        print_json(&envelope(
            "status",
            drift_error.as_ref(),
            json!({
                "runs": records.iter().filter(|r| matches!(r.event, Event::RunStarted { .. })).count(),
                "last_run": {"started": started, "pid": pid, "version": version, "bundle_sha256": bundle_sha256, "result": result, "outcome": outcome,
                             "ended": ended.as_ref().map(|e| &e.0), "exit_code": ended.as_ref().map(|e| e.2), "log": log, "fan_out": fan_out,
                             "phase": phase},
                "this_bundle": this_bundle, "complete": history.complete && this_bundle, "role": role,
                "state_dir": state.root, "steps": steps, "installed": installed, "answers": answers,
                "verify": drift,
            }),
        ));
        return drift_error.map_or(Ok(()), Err);
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
    if !remembered.is_empty() {
        out_line(&format!("  answers remembered from the run of {} at {}:", remembered.version, remembered.at));
        for (key, value) in answers.as_object().into_iter().flatten() {
            out_line(&format!("      {key} = {} ({})", value["value"].as_str().unwrap_or(""), value["from"].as_str().unwrap_or("")));
        }
    }
    if let Some(report) = &drift {
        out_line(&format!(
            "  verify: {} image(s), {} registry blob(s), {} file(s) checked: {}",
            report.images,
            report.blobs,
            report.files,
            if report.drift.is_empty() { "all match the install".to_string() } else { format!("{} DRIFT(S)", report.drift.len()) }
        ));
        for d in &report.drift {
            out_line(&format!("    DRIFT {} {}: {}; repair: {}", d.kind, d.what, d.found, d.repair));
        }
    }
    drift_error.map_or(Ok(()), Err)
}

fn nothing_to_verify(meta: &crate::format::BundleMeta) -> Error {
    Error::host(format!("nothing of {} is recorded as installed on this host: there is nothing to verify; install it first", meta.name))
}

/// The remembered answers as `status` shows them: each value (masked where secret) and
/// where it came from.
fn remembered_json(bundle: &crate::format::Bundle, remembered: &crate::install::remembered::Remembered) -> serde_json::Value {
    let secret =
        |key: &str| crate::install::config::is_secret_key(key) || bundle.index.parameters.iter().any(|p| p.secret && p.key() == key);
    let map: serde_json::Map<String, serde_json::Value> = remembered
        .values
        .iter()
        .map(|(key, value)| {
            let shown = if secret(key) { crate::format::params::MASK.to_string() } else { crate::install::remembered::text_of(value) };
            (key.clone(), json!({"value": shown, "from": remembered.from.get(key)}))
        })
        .collect();
    serde_json::Value::Object(map)
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
