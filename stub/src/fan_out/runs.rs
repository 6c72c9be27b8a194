//! Step 4 of the fan-out, every node's part, and the gathering of every node's
//! `status` or `support`: each node's outcome read from its own `--json` document.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use airbin_format::error::ExitClass;
use airbin_format::Role;

use super::docs::{self, NodeDoc};
use super::remote::{run_child, unreachable, Finished};
use super::targets::{node_args, quote, Target};
use super::{each, FanOut, NodeOutcome, NodeStatus};
use crate::interrupt;
use crate::ui::Ui;

/// Step 4: every node's part, streamed; the outcome of each.
pub(crate) fn run(targets: &[Target], fan: &FanOut, command: &str, extra: &[&str], ui: &Ui) -> Vec<NodeOutcome> {
    // The node that serves the others: the primary, or a single management node with workers.
    let serving_failed = AtomicBool::new(false);
    each(targets, fan.parallel, |target| {
        let label = target.label();
        let depends_on_primary = matches!(target.node.role, Role::Secondary | Role::Worker);
        if depends_on_primary && serving_failed.load(Ordering::SeqCst) {
            let why = "not run: the node it depends on (the primary) failed".to_string();
            return outcome(target, ExitClass::Step.code(), NodeStatus::NotRun, why, None);
        }
        if interrupt::requested() {
            return outcome(target, ExitClass::Interrupted.code(), NodeStatus::NotRun, "not run: interrupted".into(), None);
        }
        ui.status(format!("[{label}] {command} starts"));
        let stop = (!target.local).then(|| {
            let pattern = format!("--bundle {}", target.bin);
            target.shell(fan, &format!("pkill -INT -f -- {}", quote(&pattern)))
        });
        let finished = run_child(target.tagged(fan, &node_args(command, target, fan, extra), Some(&fan.tag)), &label, true, stop);
        let result = match finished {
            Err(e) => outcome(target, e.class.code(), NodeStatus::Failed, e.message, None),
            // SSH's own exit, during the run: the connection dropped (the node's run goes
            // on: it ignores the hangup). Reconnect and follow that run to its end.
            Ok(f) if f.code == 255 && !target.local => follow_after_drop(target, fan, ui, &f),
            Ok(f) => {
                let doc = docs::read(&f.stdout);
                let summary =
                    summary_of(doc.as_ref().map(|d| &d.0), f.code).unwrap_or_else(|| f.last_lines.last().cloned().unwrap_or_default());
                outcome(target, f.code, NodeStatus::of_exit(f.code), summary, doc)
            }
        };
        if matches!(target.node.role, Role::Primary | Role::Single) && result.exit_code != 0 {
            serving_failed.store(true, Ordering::SeqCst);
        }
        ui.status(format!("[{label}] {}", result.summary));
        result
    })
}

/// How long the coordinator tries to reach a node again after its connection dropped.
const RECONNECT_FOR: Duration = Duration::from_secs(120);

/// The connection to a node dropped while its run went on there: reconnect, follow the
/// node's journal until that run (found by the fan-out's tag) ends, and report its
/// real result.
fn follow_after_drop(target: &Target, fan: &FanOut, ui: &Ui, dropped: &Finished) -> NodeOutcome {
    let label = target.label();
    let why = dropped.last_lines.iter().rev().find(|l| !l.trim().is_empty()).cloned().unwrap_or_else(|| "no answer".into());
    ui.status(format!("[{label}] the SSH connection dropped during its run ({why}); reconnecting to follow that run"));
    let deadline = std::time::Instant::now() + RECONNECT_FOR;
    loop {
        let follow = target.shell(fan, &target.script(&["status".into(), "--follow".into(), "--json".into()]));
        match run_child(follow, &label, false, None) {
            Ok(f) if f.code != 255 => {
                let doc = docs::read(&f.stdout);
                let last = doc.as_ref().and_then(|d| d.0.body.last_run.clone());
                let Some(last) = last.filter(|last| last.fan_out.as_deref() == Some(fan.tag.as_str())) else {
                    return outcome(
                        target,
                        ExitClass::Host.code(),
                        NodeStatus::Failed,
                        "the SSH connection dropped before the node's run began there: run install --all-nodes again".into(),
                        doc,
                    );
                };
                let status = match last.outcome.as_str() {
                    "ok" => NodeStatus::Ok,
                    "interrupted" => NodeStatus::Interrupted,
                    _ => NodeStatus::Failed,
                };
                let code = match last.outcome.as_str() {
                    "killed" => ExitClass::Host.code(),
                    _ => last.exit_code.unwrap_or(ExitClass::Host.code()),
                };
                let result = if last.result.is_empty() { &last.outcome } else { &last.result };
                let summary = format!("the SSH connection dropped during the run; reconnected and followed it: {result}");
                return outcome(target, code, status, summary, doc);
            }
            _ if std::time::Instant::now() >= deadline || interrupt::requested() => {
                return outcome(
                    target,
                    ExitClass::Host.code(),
                    NodeStatus::ConnectionLost,
                    format!(
                        "the SSH connection to {} dropped during its run ({why}) and the node could not be reached again within {}: its run goes on there; {} status --all-nodes shows it once the node answers",
                        target.node.ssh_target(),
                        humantime::format_duration(RECONNECT_FOR),
                        crate::shell::bundle()
                    ),
                    None,
                );
            }
            _ => std::thread::sleep(Duration::from_secs(2)),
        }
    }
}

fn outcome(target: &Target, exit_code: i32, status: NodeStatus, summary: String, doc: Option<(NodeDoc, serde_json::Value)>) -> NodeOutcome {
    let (doc, report) = doc.map_or((None, None), |(doc, raw)| (Some(doc), Some(raw)));
    NodeOutcome { node: target.node.listed.clone(), role: target.node.role, exit_code, status, summary, report, doc }
}

/// One line from a node's install document: what it did or where it stopped.
fn summary_of(doc: Option<&NodeDoc>, code: i32) -> Option<String> {
    let doc = doc?;
    let steps = &doc.steps;
    let count = |state: &str| steps.iter().filter(|s| s.state == state).count();
    if code == 0 {
        if doc.body.nothing_to_do {
            return Some(format!("nothing to do: all {} steps were done already", steps.len()));
        }
        return Some(format!("finished: {} step(s) done, {} done already", count("done"), count("already-done")));
    }
    let failed = steps.iter().find(|s| s.state == "failed").map(|s| s.name.as_str());
    let error = docs::error_of(Some(doc)).unwrap_or_default();
    let first = error.lines().next().unwrap_or("").to_string();
    Some(match failed {
        Some(step) => format!("FAILED at step '{step}' (exit {code}): {first}"),
        None => format!("stopped (exit {code}): {first}"),
    })
}

/// Runs a command (`args_of` the node, with `--json`) on every node that has the
/// bundle and gathers each node's document: for `status` and `support`.
pub(crate) fn gather(targets: &[Target], fan: &FanOut, args_of: impl Fn(&Target) -> Vec<String> + Sync) -> Vec<NodeOutcome> {
    each(targets, fan.parallel, |target| {
        let mut args = args_of(target);
        args.push("--json".into());
        let check = format!("[ -f {} ]", quote(&target.bin));
        let command_line = if target.local {
            target.command(fan, &args)
        } else {
            target.shell(
                fan,
                &format!(
                    "{check} || {{ echo 'no copy of the bundle there: install --all-nodes has not reached this node' >&2; exit 9; }}; {}",
                    target.script(&args)
                ),
            )
        };
        match run_child(command_line, &target.label(), false, None) {
            Err(e) => outcome(target, e.class.code(), NodeStatus::Failed, e.message, None),
            Ok(f) if f.code == 255 && !target.local => {
                outcome(target, ExitClass::Host.code(), NodeStatus::Unreachable, unreachable(target, &f), None)
            }
            Ok(f) if f.code == 9 => outcome(target, 0, NodeStatus::NotRun, f.last_lines.last().cloned().unwrap_or_default(), None),
            Ok(f) => {
                let doc = docs::read(&f.stdout);
                let status = if f.code == 0 { NodeStatus::Ok } else { NodeStatus::Failed };
                let summary = docs::error_of(doc.as_ref().map(|d| &d.0)).or_else(|| f.last_lines.last().cloned()).unwrap_or_default();
                outcome(target, f.code, status, summary, doc)
            }
        }
    })
}
