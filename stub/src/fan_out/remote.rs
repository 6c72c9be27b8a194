//! Commands on a node: run one with its output streamed under the node's name, copy a
//! file there, fetch one back.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use airbin_format::error::{Error, IoContext, Result};

use super::targets::{quote, Target};
use super::FanOut;
use crate::interrupt;
use crate::ui::err_line;

/// A finished child: its exit code (SSH's own failures are 255), stdout, stderr's end.
pub(super) struct Finished {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) last_lines: Vec<String>,
}

/// Runs `command`, each stderr line shown with `label` in front (when `stream`), its
/// stdout kept. Ctrl-C stops it: a local child gets SIGINT; a remote run gets SIGINT on
/// its node (a dropped SSH session alone would not stop it).
pub(super) fn run_child(mut command: Command, label: &str, stream: bool, mut stop_remote: Option<Command>) -> Result<Finished> {
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
pub(super) fn unreachable(target: &Target, finished: &Finished) -> String {
    let why = finished.last_lines.iter().rev().find(|l| !l.trim().is_empty()).cloned().unwrap_or_else(|| "no answer".into());
    format!(
        "{} is unreachable over SSH ({why}); check the address, that sshd runs there, and that this host's key is in its \
         authorized_keys and its host key in known_hosts (BatchMode: no password is asked)",
        target.node.ssh_target()
    )
}

/// Streams `data` to the file `to` on the node, through a temporary name renamed into place.
/// How long a copy to a node may take.
const COPY_LIMIT: Duration = Duration::from_secs(6 * 3600);

pub(super) fn send(target: &Target, fan: &FanOut, mut data: impl Read + Send, to: &str) -> std::result::Result<(), String> {
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
pub(super) fn link_here(target: &Target) -> Result<()> {
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

/// Fetches a file from a node (`cat` over SSH) into `to`.
pub(crate) fn fetch(target: &Target, fan: &FanOut, from: &str, to: &Path) -> Result<()> {
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
