//! `command`: a program of the product (a `tool` member, found by name in the staging
//! directory without the engineer editing PATH) or of the host, run in the staging
//! directory with the bundle's environment. Its output streams to the terminal with the
//! step's name in front and into the run's log; a timeout or Ctrl-C stops its whole
//! process group.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::values as config;
use super::{Failure, Inputs, Needs, RunContext};
use crate::interrupt;
use crate::ui::err_line;
use crate::ui::runlog;
use airbin_format::error::{Error, Result};
use airbin_format::MemberKind;

/// How many of a failed command's last lines its error shows.
const LAST_LINES: usize = 10;
/// After SIGTERM, how long a command has to exit before SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub(crate) struct Command {
    pub(crate) program: Program,
    pub(crate) args: Vec<String>,
}

#[derive(Clone, Debug)]
pub(crate) enum Program {
    /// A `tool` member, run from the staging directory.
    Tool { name: String, path: PathBuf },
    /// A program of the host: a path, or a name looked up on PATH.
    Host(String),
}

impl Program {
    fn shown(&self) -> &str {
        match self {
            Program::Tool { name, .. } => name,
            Program::Host(name) => name,
        }
    }
}

pub(crate) fn prepare(inputs: &Inputs, run: &[String], step: &str) -> Result<Command> {
    let needed_by = format!("step '{step}'");
    let mut words = run.iter().map(|word| config::expand(word, inputs.config, &needed_by));
    let program = words.next().ok_or_else(|| Error::integrity(format!("{needed_by} has an empty run list")))??;
    let args = words.collect::<Result<Vec<_>>>()?;
    let program = match inputs.bundle.index.member(&program) {
        Some(member) if member.kind == MemberKind::Tool => {
            Program::Tool { name: member.name.clone(), path: inputs.staging.join(&member.name) }
        }
        _ => Program::Host(program),
    };
    Ok(Command { program, args })
}

impl Command {
    pub(crate) fn describe(&self) -> String {
        let origin = match &self.program {
            Program::Tool { .. } => "the bundle's",
            Program::Host(_) => "the host's",
        };
        format!("run {origin} {} {}", self.program.shown(), shell_words(&self.args)).trim_end().to_string()
    }

    pub(crate) fn needs(&self) -> Needs {
        match &self.program {
            // A tool of the bundle is staged with the rest: nothing to ask of the host.
            Program::Tool { .. } => Needs::default(),
            Program::Host(name) => Needs { programs: vec![name.clone()], ..Needs::default() },
        }
    }

    pub(crate) fn run(&self, ctx: &RunContext) -> std::result::Result<String, Failure> {
        let program: PathBuf = match &self.program {
            Program::Tool { path, .. } => path.clone(),
            Program::Host(name) if name.contains('/') => ctx.staging.join(name),
            Program::Host(name) => find_on_path(name, Some(ctx.staging))
                .ok_or_else(|| Error::host(format!("{name} is not on PATH; install it, or fix the step")))?,
        };
        let mut command = std::process::Command::new(&program);
        command.args(&self.args).current_dir(ctx.staging).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        command.envs(ctx.env.iter().map(|(k, v)| (k, v)));
        command.env("AIRBIN_STEP", ctx.step_name);
        command.env("AIRBIN_STEP_TOKEN", ctx.token);
        command.env("PATH", path_with(ctx.staging));
        command.envs(ctx.step_env);
        // Its own process group: a timeout or Ctrl-C stops everything it started, and a
        // hangup of the engineer's terminal does not reach it.
        command.process_group(0);
        // A run killed outright (kill -9, the OOM killer) takes its step's process with
        // it, so that the rerun, which redoes the step, never races a leftover of it.
        // Safe: between fork and exec it makes one async-signal-safe system call.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        let started = Instant::now();
        let mut child = command.spawn().map_err(|e| Error::host(format!("cannot start {}: {e}", program.display())))?;
        let (status, tail, stopped) = supervise(&mut child, ctx);
        let elapsed = started.elapsed();
        let shown = self.program.shown();
        let failure = |error: Error| Failure { error, last_lines: tail.iter().cloned().collect() };
        match stopped {
            Some(Stop::Interrupted) => return Err(failure(Error::interrupted())),
            Some(Stop::TimedOut(limit)) => {
                return Err(failure(Error::step(format!(
                    "{shown} timed out after {} and was stopped",
                    humantime::format_duration(Duration::from_secs(limit.as_secs()))
                ))))
            }
            None => {}
        }
        match status {
            Some(status) if status.success() => Ok(format!("{shown} exited 0 after {:.1}s", elapsed.as_secs_f64())),
            Some(status) => Err(failure(Error::step(format!("{shown} {}", describe_status(status))))),
            None => Err(failure(Error::step(format!("{shown}: its exit status was lost")))),
        }
    }
}

enum Stop {
    Interrupted,
    TimedOut(Duration),
}

/// Streams the child's output (prefixed, into the log) until it exits, a timeout
/// passes or Ctrl-C arrives; returns its status, its last lines and why it was stopped.
fn supervise(child: &mut Child, ctx: &RunContext) -> (Option<ExitStatus>, VecDeque<String>, Option<Stop>) {
    let (sender, lines) = mpsc::channel::<String>();
    let readers: Vec<_> = [child.stdout.take().map(|r| Box::new(r) as Box<dyn Read + Send>), child.stderr.take().map(|r| Box::new(r) as _)]
        .into_iter()
        .flatten()
        .map(|pipe| {
            let sender = sender.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(pipe);
                let mut raw = Vec::new();
                while reader.read_until(b'\n', &mut raw).is_ok_and(|n| n > 0) {
                    let text = String::from_utf8_lossy(&raw).trim_end_matches(['\n', '\r']).to_string();
                    if sender.send(text).is_err() {
                        break;
                    }
                    raw.clear();
                }
            })
        })
        .collect();
    drop(sender);

    let started = Instant::now();
    let mut tail = VecDeque::new();
    let mut stopped = None;
    let mut status = None;
    let mut exited_at: Option<Instant> = None;
    loop {
        match lines.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => {
                show(ctx, &line);
                tail.push_back(runlog::mask(&line));
                if tail.len() > LAST_LINES {
                    tail.pop_front();
                }
                continue;
            }
            // Both pipes closed: everything the command wrote has been shown.
            Err(mpsc::RecvTimeoutError::Disconnected) if status.is_some() => break,
            Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(Duration::from_millis(50)),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if status.is_none() {
            status = child.try_wait().ok().flatten();
            if status.is_some() {
                exited_at = Some(Instant::now());
            }
        }
        // A daemon the command left running may hold its pipes open: stop listening soon
        // after the command itself has exited.
        if exited_at.is_some_and(|at| at.elapsed() > Duration::from_secs(2)) {
            break;
        }
        if status.is_none() && stopped.is_none() {
            if interrupt::requested() {
                stopped = Some(Stop::Interrupted);
            } else if let Some(limit) = ctx.timeout.filter(|limit| started.elapsed() >= *limit) {
                stopped = Some(Stop::TimedOut(limit));
            }
            if stopped.is_some() {
                status = Some(stop_group(child));
                exited_at = Some(Instant::now());
            }
        }
    }
    drop(readers);
    (status, tail, stopped)
}

fn show(ctx: &RunContext, line: &str) {
    let line = runlog::mask(&format!("[{}] {line}", ctx.step_name));
    runlog::line(&line);
    if !ctx.ui.quiet {
        err_line(&line);
    }
}

/// SIGTERM to the child's process group, SIGKILL after the grace period; reaps it.
fn stop_group(child: &mut Child) -> ExitStatus {
    let group = Pid::from_raw(child.id() as i32);
    let _ = killpg(group, Signal::SIGTERM);
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            let _ = killpg(group, Signal::SIGKILL);
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = killpg(group, Signal::SIGKILL);
    child.wait().unwrap_or_else(|_| ExitStatus::from_raw(9))
}

fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => {
            let name = Signal::try_from(signal).map_or_else(|_| format!("signal {signal}"), |s| s.as_str().to_string());
            format!("was killed by {name}")
        }
        _ => "ended without an exit code".to_string(),
    }
}

/// PATH with the staging directory first, so a product's own scripts find its tools.
fn path_with(staging: &Path) -> std::ffi::OsString {
    let mut paths = vec![staging.to_path_buf()];
    if let Some(path) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(paths).unwrap_or_default()
}

/// Where `name` is found on PATH (the staging directory first, when given).
pub(crate) fn find_on_path(name: &str, staging: Option<&Path>) -> Option<PathBuf> {
    let path = match staging {
        Some(staging) => path_with(staging),
        None => std::env::var_os("PATH").unwrap_or_default(),
    };
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| {
        std::fs::metadata(candidate).is_ok_and(|m| m.is_file() && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
    })
}

/// Arguments as a shell would need them quoted, for the plan.
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c)) {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
