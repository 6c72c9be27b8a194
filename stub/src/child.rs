//! Programs the runtime waits on (the engines' CLIs, ssh, probes): each wait is bounded
//! in time, and a Ctrl-C or SIGTERM stops the program within a second, instead of
//! leaving the runtime blocked on a peer that no longer answers.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use airbin_format::error::{Error, Result};

/// How often a wait looks at the clock and at Ctrl-C.
const TICK: Duration = Duration::from_millis(50);

/// Runs `command` to its end, with its output, within `limit`; stopped (killed) past
/// it or on an interrupt, which are errors of their own (`Error::interrupted`, and a
/// host error naming the program and the limit).
pub(crate) fn output(command: &mut Command, limit: Duration) -> Result<Output> {
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::host(format!("cannot run {program}: {e}")))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.by_ref().take(16 << 20).read_to_end(&mut bytes);
        bytes
    });
    let err = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.by_ref().take(1 << 20).read_to_end(&mut bytes);
        bytes
    });
    let status = wait(&mut child, limit, &program);
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    Ok(Output { status: status?, stdout, stderr })
}

/// Waits for `child` within `limit`, killing it past the limit or on an interrupt.
pub(crate) fn wait(child: &mut Child, limit: Duration, program: &str) -> Result<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| Error::internal(format!("waiting for {program}: {e}")))? {
            return Ok(status);
        }
        if crate::interrupt::requested() {
            stop(child);
            return Err(Error::interrupted());
        }
        if Instant::now() >= deadline {
            stop(child);
            return Err(Error::host(format!(
                "{program} did not finish within {}: it was stopped (is what it talks to, an engine or a node, still answering?)",
                humantime::format_duration(limit)
            )));
        }
        std::thread::sleep(TICK);
    }
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
