//! A lab machine as the scenarios use it: a name, its address on the scenario's network
//! (what configs and the fan-out name), and an SSH endpoint from this host. Every backend
//! gives its machines sshd, so one way of running commands and moving files serves all
//! three. Commands are bounded by a deadline and stopped on Ctrl-C.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use airbin_format::error::{Error, IoContext, Result};

/// How to reach a machine over SSH from the lab's host.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: String,
    pub(crate) identity: PathBuf,
    /// The lab's own known_hosts (never the user's).
    pub(crate) known_hosts: PathBuf,
}

#[derive(Clone, Debug)]
pub(crate) struct Machine {
    /// `node1`, `node2`, ... in the scenario.
    pub(crate) name: String,
    /// Its address on the scenario's network: what configs and other nodes use.
    pub(crate) address: String,
    pub(crate) ssh: Endpoint,
}

/// What a command run on a machine gave.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ran {
    /// None when it was killed (by the deadline, by Ctrl-C) or lost its connection.
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Ran {
    pub(crate) fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Its JSON document on stdout (every `--json` command prints one).
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or(serde_json::Value::Null)
    }

    /// The end of what it said, for a report.
    pub(crate) fn tail(&self) -> String {
        let text = format!("{}{}", self.stderr, if self.stdout.len() < 2000 { self.stdout.as_str() } else { "" });
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    }
}

impl Machine {
    fn ssh_command(&self) -> Command {
        let mut command = Command::new("ssh");
        command
            .args(["-q", "-p", &self.ssh.port.to_string(), "-i"])
            .arg(&self.ssh.identity)
            .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=accept-new", "-o", "ConnectTimeout=10"])
            .args(["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.ssh.known_hosts.display()))
            .arg(format!("{}@{}", self.ssh.user, self.ssh.host));
        command
    }

    /// Runs `script` (POSIX sh) on the machine, with `input` on its stdin; at most `limit`.
    pub(crate) fn run_with(&self, script: &str, input: Option<&Path>, limit: Duration) -> Result<Ran> {
        let mut command = self.ssh_command();
        command.arg(format!("sh -c {}", shell_quote(script)));
        command.stdin(match input {
            Some(file) => Stdio::from(std::fs::File::open(file).ctx("reading", file)?),
            None => Stdio::null(),
        });
        let child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(no_ssh)?;
        Ok(bounded(child, limit, &mut |_| false))
    }

    pub(crate) fn run(&self, script: &str, limit: Duration) -> Result<Ran> {
        self.run_with(script, None, limit)
    }

    /// Runs `script`, calling `on_line` with each line of its stdout as it comes; when
    /// it returns true the command is left to the caller's next move (its output so far
    /// is returned and the SSH session is closed).
    pub(crate) fn run_watching(&self, script: &str, limit: Duration, on_line: &mut dyn FnMut(&str) -> bool) -> Result<Ran> {
        let mut command = self.ssh_command();
        command.arg(format!("sh -c {}", shell_quote(script)));
        let child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(no_ssh)?;
        Ok(bounded(child, limit, on_line))
    }

    /// Copies a local file to `to` on the machine (its directory made).
    pub(crate) fn put(&self, file: &Path, to: &str) -> Result<()> {
        let dir = to.rsplit_once('/').map_or(".", |(d, _)| d);
        // On disk before anything runs from it, as a bundle a field engineer copied long
        // before an install is: a power cut must not take the copy with the page cache.
        let (dir, part, to_q) = (shell_quote(dir), shell_quote(&format!("{to}.part")), shell_quote(to));
        let ran = self.run_with(
            &format!("mkdir -p {dir} && cat > {part} && sync {part} && mv {part} {to_q} && sync {dir}"),
            Some(file),
            Duration::from_secs(600),
        )?;
        match ran.ok() {
            true => Ok(()),
            false => Err(Error::host(format!("copying {} to {}:{to} failed: {}", file.display(), self.name, ran.tail()))),
        }
    }

    /// Writes `text` into `to` on the machine.
    pub(crate) fn write(&self, text: &str, to: &str, scratch: &Path) -> Result<()> {
        let local = scratch.join(format!("put-{}", airbin_format::files::random_hex()));
        std::fs::write(&local, text).ctx("writing", &local)?;
        let result = self.put(&local, to);
        let _ = std::fs::remove_file(&local);
        result
    }

    /// Copies `from` (a file) or a tarball of `from` (a directory) off the machine into `to`.
    pub(crate) fn fetch(&self, from: &str, to: &Path) -> Result<bool> {
        let from = shell_quote(from);
        let script =
            format!("if [ -d {from} ]; then tar -C {from} -czf - . 2>/dev/null; elif [ -f {from} ]; then cat {from}; else exit 3; fi");
        let mut command = self.ssh_command();
        command.arg(format!("sh -c {}", shell_quote(&script)));
        let out = std::fs::File::create(to).ctx("writing", to)?;
        let child = command.stdin(Stdio::null()).stdout(out).stderr(Stdio::null()).spawn().map_err(no_ssh)?;
        let ran = bounded(child, Duration::from_secs(120), &mut |_| false);
        if !ran.ok() {
            let _ = std::fs::remove_file(to);
        }
        Ok(ran.ok())
    }

    /// Waits until sshd answers, at most `limit`.
    pub(crate) fn wait_for_ssh(&self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(ran) = self.run("true", Duration::from_secs(15)) {
                if ran.ok() {
                    return Ok(());
                }
            }
            airbin_format::error::check_cancel()?;
            if Instant::now() > deadline {
                return Err(Error::host(format!(
                    "{} ({}:{}) did not answer on SSH within {} s",
                    self.name,
                    self.ssh.host,
                    self.ssh.port,
                    limit.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

fn no_ssh(e: std::io::Error) -> Error {
    Error::host(format!("cannot run ssh ({e}): install openssh-client"))
}

/// Waits for `child` at most `limit` (and not past Ctrl-C), reading its output; stops
/// early when `on_line` says so.
fn bounded(mut child: Child, limit: Duration, on_line: &mut dyn FnMut(&str) -> bool) -> Ran {
    let deadline = Instant::now() + limit;
    let stderr = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    });
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let reader = child.stdout.take().map(|pipe| {
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(std::result::Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        })
    });
    let mut stdout = String::new();
    let mut stopped = false;
    let code = loop {
        while let Ok(line) = lines_rx.try_recv() {
            stdout.push_str(&line);
            stdout.push('\n');
            if !stopped && on_line(&line) {
                stopped = true;
            }
        }
        if stopped || airbin_format::cancel::requested() || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        match child.try_wait() {
            Ok(Some(status)) => break status.code(),
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => break None,
        }
    };
    if let Some(reader) = reader {
        let _ = reader.join();
    }
    while let Ok(line) = lines_rx.try_recv() {
        stdout.push_str(&line);
        stdout.push('\n');
    }
    let stderr = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
    Ran { code, stdout, stderr }
}

/// `text` as one single-quoted shell word.
pub(crate) fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// A fresh ed25519 key pair for this lab at `path` (and `path.pub`): never the user's.
pub(crate) fn lab_key(path: &Path) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "airbin-lab", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::host(format!("cannot run ssh-keygen ({e}): install openssh-client")))?;
    if !out.status.success() {
        return Err(Error::host(format!("ssh-keygen failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(())
}

/// Writes `text` to a local file.
pub(crate) fn save(path: &Path, text: &str) -> Result<()> {
    let mut file = std::fs::File::create(path).ctx("writing", path)?;
    file.write_all(text.as_bytes()).ctx("writing", path)
}
