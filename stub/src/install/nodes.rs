//! The fan-out: one command on one node runs every node's part (`--all-nodes`). The
//! nodes come from the config's node lists; each other node is reached with the
//! system's OpenSSH (key-based, `BatchMode`: nothing is ever asked), and this node runs
//! its part as a child process like the others, so every node is driven the same way:
//!
//! 1. reach: every other node over SSH, with the free space where the bundle goes and
//!    whether an identical copy is there already; every problem reported at once, and
//!    nothing is copied anywhere unless every node answers;
//! 2. copy: the `.bin` (unless an identical copy is there) and the config, each into a
//!    temporary name renamed into place; each node's run verifies its own copy;
//! 3. preflight: every node checks itself for its role (`preflight`), each as soon as
//!    its copy is there; all problems at once (failed copies included), and no node
//!    installs unless every node is ready;
//! 4. run: every node's part with its role, at most `--parallel` at a time, management
//!    nodes first, each line of every node's output with the node in front. A node that
//!    fails stops only what depends on it: the primary (or a single management node)
//!    serves the others, so when it fails the nodes not started yet are not started; a
//!    secondary or a worker stops nothing else. A rerun resumes every node from its own
//!    journal.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use super::config::ProductConfig;
use super::roles::{self, Node, NodeList, ThisHost};
use crate::error::{Error, ExitClass, IoContext, Result};
use crate::format::{Bundle, Role, TRAILER_LEN};
use crate::interrupt;
use crate::progress::{err_line, Ui};

/// How the fan-out reaches and drives the nodes, typed at the command line's edge.
#[derive(Clone, Debug, Default)]
pub struct FanOut {
    /// At most this many nodes at a time (0: all at once).
    pub parallel: usize,
    /// Extra `ssh -o` options.
    pub ssh_options: Vec<String>,
    /// Where the bundle and config go on the other nodes (default `/var/tmp/airbin/<name>`).
    pub remote_dir: Option<String>,
    /// Flags every node's run is given as they are (`--engine docker`, `--force`...).
    pub pass: Vec<String>,
    /// Where the SSH connections to the nodes are shared (`Connections`), when they are.
    pub control_dir: Option<std::path::PathBuf>,
    /// This fan-out's tag, which each node's run records in its journal: how a node's
    /// run is found again after its SSH connection dropped.
    pub tag: String,
    /// The public keys this host pins (the bundle passed them here): copied to every
    /// node, and given to each node's run, which checks its own copy against them.
    pub keys: Vec<std::path::PathBuf>,
}

/// One SSH connection a node, opened once and shared by every command the fan-out runs
/// there (OpenSSH's ControlMaster): each SSH handshake costs about a third of a second,
/// and a fan-out runs five commands a node. Closed when dropped; a master left by a
/// killed run ends by itself after a minute unused.
pub struct Connections {
    dir: std::path::PathBuf,
    targets: Vec<Target>,
    options: Vec<String>,
}

impl Connections {
    /// Opens a shared connection to every other node (quietly: a node that cannot be
    /// reached is reported by the first command run there) and sets `fan` to use them.
    pub fn open(targets: &[Target], fan: &mut FanOut) -> Result<Connections> {
        let dir = std::env::temp_dir().join(crate::fsx::temp_name(".ssh", ".airbin-partial-"));
        std::fs::create_dir(&dir).ctx("creating", &dir)?;
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).ctx("creating", &dir)?;
        fan.control_dir = Some(dir.clone());
        let remote: Vec<Target> = targets.iter().filter(|t| !t.local).cloned().collect();
        let shared = Connections { dir, targets: remote, options: fan.ssh_options.clone() };
        each(&shared.targets, fan.parallel, |target| {
            let mut command = target.ssh(fan);
            command.args(["-o", "ControlMaster=yes", "-o", "ControlPersist=60", "--", target.node.ssh_target(), "true"]);
            // Out of this terminal's process group: Ctrl-C must not cut the connections
            // the stop of every node's run goes through.
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
            let _ = crate::child::output(&mut command, Duration::from_secs(30));
        });
        Ok(shared)
    }
}

impl Drop for Connections {
    fn drop(&mut self) {
        let fan = FanOut { ssh_options: self.options.clone(), control_dir: Some(self.dir.clone()), ..FanOut::default() };
        for target in &self.targets {
            let mut command = target.ssh(&fan);
            command.args(["-O", "exit", "--", target.node.ssh_target()]);
            let _ = crate::child::output(&mut command, Duration::from_secs(10));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One node and how this run reaches it.
#[derive(Clone, Debug)]
pub struct Target {
    pub node: Node,
    /// This host: its part runs here, without SSH.
    pub local: bool,
    /// The bundle and the config on that node.
    pub bin: String,
    pub config: String,
    /// Where every other node's fan-out looks for the bundle on this node (the remote
    /// directory): for this host, a link to `bin`.
    pub known_as: String,
    /// The pinned keys on that node (copied there beside the bundle).
    pub keys: Vec<String>,
}

impl Target {
    pub fn label(&self) -> String {
        self.node.label()
    }

    /// The command that runs `sh BIN ARGS` on the node.
    fn command(&self, fan: &FanOut, args: &[String]) -> Command {
        self.tagged(fan, args, None)
    }

    /// The same, with the fan-out's tag in the run's environment (`AIRBIN_FAN_OUT`).
    fn tagged(&self, fan: &FanOut, args: &[String], tag: Option<&str>) -> Command {
        if self.local {
            let mut command = Command::new("sh");
            command.arg(&self.bin).args(args);
            if let Some(tag) = tag {
                command.env("AIRBIN_FAN_OUT", tag);
            }
            command
        } else {
            let prefix = tag.map(|t| format!("AIRBIN_FAN_OUT={} ", quote(t))).unwrap_or_default();
            self.shell(fan, &format!("{prefix}{}", self.script(args)))
        }
    }

    /// `sh BIN ARGS` as a line for the node's shell, every word quoted.
    fn script(&self, args: &[String]) -> String {
        let words = ["sh", self.bin.as_str()].into_iter().chain(args.iter().map(String::as_str));
        words.map(quote).collect::<Vec<_>>().join(" ")
    }

    /// `ssh NODE SCRIPT`: the script runs in the node's login shell.
    fn shell(&self, fan: &FanOut, script: &str) -> Command {
        let mut command = self.ssh(fan);
        command.args(["--", self.node.ssh_target(), script]);
        command
    }

    /// `ssh` with the fan-out's options, before the destination.
    fn ssh(&self, fan: &FanOut) -> Command {
        let mut command = Command::new("ssh");
        command.args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=15", "-o", "LogLevel=ERROR"]);
        if let Some(dir) = &fan.control_dir {
            command.arg("-o").arg(format!("ControlPath={}/%C", dir.display()));
        }
        for option in &fan.ssh_options {
            command.args(["-o", option]);
        }
        command
    }
}

pub use crate::shell::quote;

/// `--all-nodes` on a bundle whose spec names no node list.
pub fn no_node_list() -> Error {
    Error::usage("--all-nodes: this bundle names no node list (its spec sets no config.management_nodes_key); run it on each node instead")
}

/// Every node the config lists, with where its bundle and config are.
pub fn targets(bundle: &Bundle, config: &ProductConfig, fan: &FanOut) -> Result<Vec<Target>> {
    let list: NodeList = roles::node_list(&bundle.index.config, Some(config))?.ok_or_else(no_node_list)?;
    let me = ThisHost::detect().find(&list)?.map(|(node, _)| node.clone());
    let meta = &bundle.index.bundle;
    let dir = fan.remote_dir.clone().unwrap_or_else(|| format!("/var/tmp/airbin/{}", meta.name));
    let file = bundle.path.file_name().map_or_else(|| format!("{}.bin", meta.file_stem()), |f| f.to_string_lossy().into_owned());
    Ok(list
        .nodes
        .into_iter()
        .map(|node| {
            let local = me.as_ref() == Some(&node);
            let known_as = format!("{dir}/{file}");
            let (bin, config) = if local {
                (crate::fsx::absolute(&bundle.path).display().to_string(), crate::fsx::absolute(&config.path).display().to_string())
            } else {
                (known_as.clone(), format!("{dir}/config"))
            };
            let keys = fan
                .keys
                .iter()
                .enumerate()
                .map(|(i, key)| if local { crate::fsx::absolute(key).display().to_string() } else { format!("{dir}/keys/{i}.pub") })
                .collect();
            Target { node, local, bin, config, known_as, keys }
        })
        .collect())
}

/// What became of one node.
#[derive(Clone, Debug, Serialize)]
pub struct NodeOutcome {
    pub node: String,
    pub role: Role,
    pub exit_code: i32,
    /// ok, failed, interrupted, not-run, unreachable, connection-lost.
    pub status: &'static str,
    /// One line: what it did or why it stopped.
    pub summary: String,
    /// The node's own `--json` document, when it gave one.
    pub report: Option<serde_json::Value>,
}

/// Runs `work` for each item, at most `parallel` at once (0: all), results in order.
fn each<T: Sync, R: Send>(items: &[T], parallel: usize, work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let lanes = if parallel == 0 { items.len() } else { parallel.min(items.len()) };
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..lanes {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(i) else { break };
                let result = work(item);
                results.lock().expect("no lane panics holding it")[i] = Some(result);
            });
        }
    });
    results.into_inner().expect("no lane panics holding it").into_iter().map(|r| r.expect("every item ran")).collect()
}

/// A finished child: its exit code (SSH's own failures are 255), stdout, stderr's end.
struct Finished {
    code: i32,
    stdout: String,
    last_lines: Vec<String>,
}

/// Runs `command`, each stderr line shown with `label` in front (when `stream`), its
/// stdout kept. Ctrl-C stops it: a local child gets SIGINT; a remote run gets SIGINT on
/// its node (a dropped SSH session alone would not stop it).
fn run_child(mut command: Command, label: &str, stream: bool, mut stop_remote: Option<Command>) -> Result<Finished> {
    use std::os::unix::process::CommandExt;
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child: Child = command
        .spawn()
        .map_err(|e| Error::host(format!("cannot run {:?} ({e}); is OpenSSH's client installed?", command.get_program())))?;
    let stderr = child.stderr.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    let label = label.to_string();
    let tail = std::thread::spawn(move || {
        let mut last: Vec<String> = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(std::result::Result::ok) {
            if stream {
                err_line(&format!("[{label}] {line}"));
            }
            last.push(line);
            if last.len() > 20 {
                last.remove(0);
            }
        }
        last
    });
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let mut stopped = false;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| Error::internal(format!("waiting for a node's run: {e}")))? {
            break status;
        }
        if interrupt::requested() && !stopped {
            stopped = true;
            match stop_remote.take() {
                // The remote run is told to stop and says so on its way out.
                Some(mut stop) => {
                    let _ = stop.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status();
                }
                None => {
                    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let last_lines = tail.join().unwrap_or_default();
    let stdout = out.join().unwrap_or_default();
    use std::os::unix::process::ExitStatusExt;
    let code = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Ok(Finished { code, stdout, last_lines })
}

/// The one line of SSH's complaint, and what to do about it.
fn unreachable(target: &Target, finished: &Finished) -> String {
    let why = finished.last_lines.iter().rev().find(|l| !l.trim().is_empty()).cloned().unwrap_or_else(|| "no answer".into());
    format!(
        "{} is unreachable over SSH ({why}); check the address, that sshd runs there, and that this host's key is in its \
         authorized_keys and its host key in known_hosts (BatchMode: no password is asked)",
        target.node.ssh_target()
    )
}

/// Step 1: every other node answers over SSH and has room for the bundle. Returns, for
/// each node, whether an identical copy of the bundle is there already.
pub fn reach(bundle: &Bundle, targets: &[Target], fan: &FanOut, ui: &Ui) -> Result<Vec<bool>> {
    let len = bundle.trailer.total_len;
    let tail = local_tail(&bundle.path)?;
    let results = each(targets, fan.parallel, |target| -> std::result::Result<bool, String> {
        if target.local {
            return Ok(true);
        }
        let dir = Path::new(&target.bin).parent().map_or("/".into(), |d| d.display().to_string());
        // The nearest existing directory's free space, then the size and trailer of a copy
        // already there: the trailer holds the digest of every byte.
        let script = format!(
            "d={}; while [ ! -d \"$d\" ]; do d=$(dirname \"$d\"); done; df -Pk \"$d\" | tail -n 1; \
             if [ -f {bin} ]; then wc -c < {bin}; tail -c {TRAILER_LEN} {bin} | od -An -v -tx1; fi",
            quote(&dir),
            bin = quote(&target.bin)
        );
        let finished = run_child(target.shell(fan, &script), &target.label(), false, None).map_err(|e| e.message)?;
        if finished.code == 255 {
            return Err(unreachable(target, &finished));
        }
        if finished.code != 0 {
            return Err(format!("{} answered, but its shell failed ({})", target.node.ssh_target(), finished.last_lines.join("; ")));
        }
        let mut lines = finished.stdout.lines();
        let free_kib: u64 = lines.next().and_then(|l| l.split_whitespace().nth(3)).and_then(|f| f.parse().ok()).unwrap_or(u64::MAX);
        let size: Option<u64> = lines.next().and_then(|l| l.trim().parse().ok());
        let hex: String = lines.flat_map(|l| l.split_whitespace()).collect::<Vec<_>>().join("");
        let has_copy = size == Some(len) && hex == tail;
        if !has_copy && free_kib.saturating_mul(1024) < len {
            return Err(format!(
                "{}: only {} free for the bundle in {dir}, which needs {}; free space there, or give --remote-dir DIR",
                target.node.ssh_target(),
                indicatif::HumanBytes(free_kib * 1024),
                indicatif::HumanBytes(len)
            ));
        }
        Ok(has_copy)
    });
    let problems: Vec<String> = results.iter().filter_map(|r| r.as_ref().err().cloned()).collect();
    if !problems.is_empty() {
        return Err(Error::host(format!(
            "{} of {} nodes cannot be reached or have no room; nothing was copied or installed anywhere:\n  {}",
            problems.len(),
            targets.len(),
            problems.join("\n  ")
        )));
    }
    let copies: Vec<bool> = results.into_iter().map(|r| r.unwrap_or(false)).collect();
    let reached = targets.iter().filter(|t| !t.local).count();
    ui.status(format!("reached {reached} other node(s) over SSH"));
    Ok(copies)
}

/// The last bytes of the bundle (its trailer) as `od -An -tx1` prints them, without spaces.
fn local_tail(path: &Path) -> Result<String> {
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ctx("opening", path)?;
    file.seek(SeekFrom::End(-(TRAILER_LEN as i64))).ctx("reading", path)?;
    let mut tail = vec![0u8; TRAILER_LEN as usize];
    file.read_exact(&mut tail).ctx("reading", path)?;
    Ok(tail.iter().map(|b| format!("{b:02x}")).collect())
}

/// Steps 2 and 3, node by node at once: the bundle (unless an identical copy is there)
/// and the config onto each other node, each through a temporary name; then each node's
/// own preflight for its role. Every problem of every node in one report; no node
/// installs unless every node is ready.
pub fn copy_and_check(bundle: &Bundle, config: &ProductConfig, targets: &[Target], has_copy: &[bool], fan: &FanOut, ui: &Ui) -> Result<()> {
    for target in targets.iter().filter(|t| t.local) {
        link_here(target)?;
    }
    for (target, _) in targets.iter().zip(has_copy).filter(|(t, has)| **has && !t.local) {
        ui.status(format!("[{}] an identical copy of the bundle is there already: not sent again", target.label()));
    }
    let sending = targets.iter().zip(has_copy).filter(|(t, has)| !**has && !t.local).count() as u64;
    let progress = ui.progress("copy", sending * bundle.trailer.total_len);
    let indexed: Vec<(usize, &Target)> = targets.iter().enumerate().collect();
    let results = each(&indexed, fan.parallel, |(i, target)| -> Option<String> {
        if !target.local {
            let keys = fan.keys.iter().zip(&target.keys).try_for_each(|(local, remote)| {
                let text =
                    crate::fsx::read_small_nofollow(local, 64 << 10).map_err(|e| format!("cannot read {} ({e})", local.display()))?;
                send(target, fan, text.as_slice(), remote)
            });
            let copied = keys.and_then(|()| send(target, fan, config.text.as_bytes(), &target.config)).and_then(|()| {
                if has_copy[*i] {
                    return Ok(());
                }
                ui.status(format!("[{}] copying the bundle to {}", target.label(), target.bin));
                let file = std::fs::File::open(&bundle.path).map_err(|e| format!("cannot read {} ({e})", bundle.path.display()))?;
                send(target, fan, crate::progress::ProgressReader::new(file, &progress), &target.bin)
            });
            if let Err(why) = copied {
                return Some(format!("[{}] {why}", target.label()));
            }
        }
        preflight(target, fan)
    });
    progress.finish();
    let problems: Vec<String> = results.into_iter().flatten().collect();
    if problems.is_empty() {
        ui.status(format!("preflight passed on all {} node(s)", targets.len()));
        return Ok(());
    }
    Err(Error::host(format!(
        "preflight failed on {} of {} nodes; nothing was installed anywhere; fix these, then run again:\n  {}",
        problems.len(),
        targets.len(),
        problems.join("\n  ")
    )))
}

/// A node's own preflight for its role: None when it is ready, else its problems.
fn preflight(target: &Target, fan: &FanOut) -> Option<String> {
    let finished = run_child(target.command(fan, &node_args("preflight", target, fan, &["--json"])), &target.label(), false, None);
    match finished {
        Err(e) => Some(format!("[{}] {}", target.label(), e.message)),
        Ok(f) if f.code == 255 && !target.local => Some(format!("[{}] {}", target.label(), unreachable(target, &f))),
        Ok(f) if f.code != 0 => {
            let doc = document(&f.stdout);
            let why = error_of(doc.as_ref()).unwrap_or_else(|| f.last_lines.join("; "));
            Some(format!("[{}] {}", target.label(), why.replace('\n', "\n    ")))
        }
        Ok(_) => None,
    }
}

/// Streams `data` to the file `to` on the node, through a temporary name renamed into place.
/// How long a copy to a node may take.
const COPY_LIMIT: Duration = Duration::from_secs(6 * 3600);

fn send(target: &Target, fan: &FanOut, mut data: impl Read + Send, to: &str) -> std::result::Result<(), String> {
    let dir = Path::new(to).parent().map_or("/".into(), |d| d.display().to_string());
    let partial = format!("{dir}/.airbin-partial-copy-$$");
    // The config holds the site's secrets: what is copied is for the node's user alone.
    let script = format!("umask 077 && mkdir -p {} && cat > \"{partial}\" && mv -f \"{partial}\" {}", quote(&dir), quote(to));
    let mut command = target.shell(fan, &script);
    command.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|e| format!("cannot run ssh ({e})"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    // Fed on a thread, waited for here: a node that stops reading is stopped on Ctrl-C
    // (killing ssh breaks the feeder's pipe), and within the copy's deadline.
    let (sent, status, said) = std::thread::scope(|scope| {
        let feeder = scope.spawn(move || {
            let sent = std::io::copy(&mut data, &mut stdin);
            drop(stdin);
            sent
        });
        let said = scope.spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let status = crate::child::wait(&mut child, COPY_LIMIT, "ssh");
        (feeder.join().expect("the feeder panicked"), status, said.join().unwrap_or_default())
    });
    let status = status.map_err(|e| e.message)?;
    if sent.is_err() || !status.success() {
        let why = said.lines().last().unwrap_or("the copy broke off").to_string();
        return Err(format!("{}: copying to {to} failed ({why}); check the space and permissions there", target.node.ssh_target()));
    }
    Ok(())
}

/// Links this host's bundle where a fan-out from another node looks for it (for
/// `status --all-nodes` and `support --all-nodes` from there), unless it is there.
fn link_here(target: &Target) -> Result<()> {
    let at = Path::new(&target.known_as);
    if at == Path::new(&target.bin) {
        return Ok(());
    }
    let dir = at.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).ctx("creating", dir)?;
    let temp = dir.join(crate::fsx::temp_name(".link", ".airbin-partial-"));
    std::os::unix::fs::symlink(&target.bin, &temp).ctx("linking", &temp)?;
    let guard = crate::fsx::RemoveOnDrop::new(temp);
    std::fs::rename(guard.path(), at).ctx("linking", at)?;
    guard.disarm();
    Ok(())
}

/// The arguments every node's own command is given: its role, its config, and the flags
/// passed on.
fn node_args(command: &str, target: &Target, fan: &FanOut, extra: &[&str]) -> Vec<String> {
    let mut args = vec![command.to_string(), "--role".into(), target.node.role.to_string(), "--config".into(), target.config.clone()];
    for key in &target.keys {
        args.extend(["--trusted-key".to_string(), key.clone()]);
    }
    args.extend(fan.pass.iter().cloned());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// A node's `--json` document, if its stdout holds one.
fn document(stdout: &str) -> Option<serde_json::Value> {
    serde_json::from_str(stdout.trim()).ok()
}

fn error_of(doc: Option<&serde_json::Value>) -> Option<String> {
    doc?.get("error")?.get("message")?.as_str().map(str::to_string)
}

/// Step 4: every node's part, streamed; the outcome of each.
pub fn run(targets: &[Target], fan: &FanOut, command: &str, extra: &[&str], ui: &Ui) -> Vec<NodeOutcome> {
    // The node that serves the others: the primary, or a single management node with workers.
    let serving_failed = AtomicBool::new(false);
    each(targets, fan.parallel, |target| {
        let label = target.label();
        let depends_on_primary = matches!(target.node.role, Role::Secondary | Role::Worker);
        if depends_on_primary && serving_failed.load(Ordering::SeqCst) {
            let why = "not run: the node it depends on (the primary) failed".to_string();
            return outcome(target, ExitClass::Step.code(), "not-run", why, None);
        }
        if interrupt::requested() {
            return outcome(target, ExitClass::Interrupted.code(), "not-run", "not run: interrupted".into(), None);
        }
        ui.status(format!("[{label}] {command} starts"));
        let stop = (!target.local).then(|| {
            let pattern = format!("--bundle {}", target.bin);
            target.shell(fan, &format!("pkill -INT -f -- {}", quote(&pattern)))
        });
        let finished = run_child(target.tagged(fan, &node_args(command, target, fan, extra), Some(&fan.tag)), &label, true, stop);
        let result = match finished {
            Err(e) => outcome(target, e.class.code(), "failed", e.message, None),
            // SSH's own exit, during the run: the connection dropped (the node's run goes
            // on: it ignores the hangup). Reconnect and follow that run to its end.
            Ok(f) if f.code == 255 && !target.local => follow_after_drop(target, fan, ui, &f),
            Ok(f) => {
                let doc = document(&f.stdout);
                let status = match f.code {
                    0 => "ok",
                    130 => "interrupted",
                    _ => "failed",
                };
                let summary = summary_of(doc.as_ref(), f.code).unwrap_or_else(|| f.last_lines.last().cloned().unwrap_or_default());
                outcome(target, f.code, status, summary, doc)
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
                let doc = document(&f.stdout);
                let last = doc.as_ref().and_then(|d| d.get("last_run"));
                let ours = last.and_then(|l| l.get("fan_out")).and_then(|t| t.as_str()) == Some(fan.tag.as_str());
                if !ours {
                    return outcome(
                        target,
                        ExitClass::Host.code(),
                        "failed",
                        "the SSH connection dropped before the node's run began there: run install --all-nodes again".into(),
                        doc,
                    );
                }
                let last = last.expect("checked");
                let code = last.get("exit_code").and_then(|c| c.as_i64()).map_or(ExitClass::Host.code(), |c| c as i32);
                let state = last.get("outcome").and_then(|o| o.as_str()).unwrap_or("?").to_string();
                let status = match state.as_str() {
                    "ok" => "ok",
                    "interrupted" => "interrupted",
                    _ => "failed",
                };
                let code = if state == "killed" { ExitClass::Host.code() } else { code };
                let summary = format!(
                    "the SSH connection dropped during the run; reconnected and followed it: {}",
                    last.get("result").and_then(|r| r.as_str()).unwrap_or(&state)
                );
                return outcome(target, code, status, summary, doc);
            }
            _ if std::time::Instant::now() >= deadline || interrupt::requested() => {
                return outcome(
                    target,
                    ExitClass::Host.code(),
                    "connection-lost",
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

fn outcome(target: &Target, exit_code: i32, status: &'static str, summary: String, report: Option<serde_json::Value>) -> NodeOutcome {
    NodeOutcome { node: target.node.listed.clone(), role: target.node.role, exit_code, status, summary, report }
}

/// One line from a node's install document: what it did or where it stopped.
fn summary_of(doc: Option<&serde_json::Value>, code: i32) -> Option<String> {
    let doc = doc?;
    let steps = doc.get("steps")?.as_array()?;
    let count = |state: &str| steps.iter().filter(|s| s["state"] == state).count();
    if code == 0 {
        if doc["nothing_to_do"] == true {
            return Some(format!("nothing to do: all {} steps were done already", steps.len()));
        }
        return Some(format!("finished: {} step(s) done, {} done already", count("done"), count("already-done")));
    }
    let failed = steps.iter().find(|s| s["state"] == "failed").and_then(|s| s["name"].as_str());
    let error = error_of(Some(doc)).unwrap_or_default();
    let first = error.lines().next().unwrap_or("").to_string();
    Some(match failed {
        Some(step) => format!("FAILED at step '{step}' (exit {code}): {first}"),
        None => format!("stopped (exit {code}): {first}"),
    })
}

/// The worst exit code of the nodes: any failure beats success, the highest code wins.
pub fn worst(outcomes: &[NodeOutcome]) -> i32 {
    outcomes.iter().map(|o| o.exit_code).max().unwrap_or(0)
}

/// Runs a command (`args_of` the node, with `--json`) on every node that has the
/// bundle and gathers each node's document: for `status` and `support`.
pub fn gather(targets: &[Target], fan: &FanOut, args_of: impl Fn(&Target) -> Vec<String> + Sync) -> Vec<NodeOutcome> {
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
            Err(e) => outcome(target, e.class.code(), "failed", e.message, None),
            Ok(f) if f.code == 255 && !target.local => {
                outcome(target, ExitClass::Host.code(), "unreachable", unreachable(target, &f), None)
            }
            Ok(f) if f.code == 9 => outcome(target, 0, "not-run", f.last_lines.last().cloned().unwrap_or_default(), None),
            Ok(f) => {
                let doc = document(&f.stdout);
                let status = if f.code == 0 { "ok" } else { "failed" };
                let summary = error_of(doc.as_ref()).or_else(|| f.last_lines.last().cloned()).unwrap_or_default();
                outcome(target, f.code, status, summary, doc)
            }
        }
    })
}

/// Fetches a file from a node (`cat` over SSH) into `to`.
pub fn fetch(target: &Target, fan: &FanOut, from: &str, to: &Path) -> Result<()> {
    if target.local {
        std::fs::copy(from, to).ctx("copying", Path::new(from))?;
        return Ok(());
    }
    let mut command = target.shell(fan, &format!("cat {}", quote(from)));
    let file = std::fs::File::create(to).ctx("creating", to)?;
    command.stdin(Stdio::null()).stdout(file).stderr(Stdio::null());
    let mut child = command.spawn().map_err(|e| Error::host(format!("cannot run ssh ({e})")))?;
    let status = crate::child::wait(&mut child, Duration::from_secs(3600), "ssh")?;
    if !status.success() {
        return Err(Error::host(format!("fetching {from} from {} failed (ssh exited with {status})", target.node.ssh_target())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_runs_in_lanes_and_keeps_its_order() {
        let items: Vec<u32> = (0..7).collect();
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let out = each(&items, 2, |n| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            running.fetch_sub(1, Ordering::SeqCst);
            n * 10
        });
        assert_eq!(out, [0, 10, 20, 30, 40, 50, 60]);
        assert!(most.load(Ordering::SeqCst) <= 2);
    }
}
