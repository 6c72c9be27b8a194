//! How the runtime talks while it works: a progress bar on a terminal, plain timestamped
//! lines otherwise (a log file, a CI job, `--json`), nothing but errors with `--quiet`.

use std::io::{self, IsTerminal, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone, Copy, Debug)]
pub struct Ui {
    pub quiet: bool,
    pub json: bool,
    terminal: bool,
}

impl Ui {
    pub fn detect(quiet: bool, json: bool) -> Ui {
        let dumb = std::env::var("TERM").map_or(true, |t| t.is_empty() || t == "dumb");
        Ui { quiet, json, terminal: std::io::stderr().is_terminal() && !dumb && !json }
    }

    /// A status line on stderr, timestamped unless on a terminal, and in the run's log.
    pub fn status(&self, message: impl AsRef<str>) {
        let message = crate::runlog::mask(message.as_ref());
        crate::runlog::line(&message);
        if self.quiet {
            return;
        }
        if self.terminal {
            err_line(&message);
        } else {
            err_line(&format!("{} {message}", timestamp()));
        }
    }

    /// Whether stderr is a terminal (and so gets bars rather than lines).
    pub fn is_terminal(&self) -> bool {
        self.terminal
    }

    /// Progress over `total` bytes of work named `label`.
    pub fn progress(&self, label: &str, total: u64) -> Progress {
        if self.quiet {
            return Progress { bar: None, plain: None };
        }
        if self.terminal {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:12} [{bar:32}] {binary_bytes:>10}/{binary_total_bytes:10} {binary_bytes_per_sec:>12} eta {eta}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_message(label.to_string());
            if !bar.is_hidden() {
                return Progress { bar: Some(bar), plain: None };
            }
        }
        err_line(&format!("{} {label}: 0% of {}", timestamp(), HumanBytes(total)));
        Progress {
            bar: None,
            plain: Some(Plain {
                label: label.to_string(),
                total,
                done: AtomicU64::new(0),
                last_tenth: AtomicU64::new(0),
                started: Instant::now(),
                last_line_ms: AtomicU64::new(0),
            }),
        }
    }
}

pub struct Progress {
    bar: Option<ProgressBar>,
    plain: Option<Plain>,
}

struct Plain {
    label: String,
    total: u64,
    done: AtomicU64,
    last_tenth: AtomicU64,
    started: Instant,
    last_line_ms: AtomicU64,
}

/// Plain progress lines come at most this often: a log gets a line per tenth of long
/// work, and none in between for short work.
const PLAIN_LINE_EVERY_MS: u64 = 2000;

impl Progress {
    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
        if let Some(plain) = &self.plain {
            let done = plain.done.fetch_add(n, Ordering::Relaxed) + n;
            let tenth = (done.min(plain.total) * 10).checked_div(plain.total).map_or(10, |t| t.min(9));
            // Only the thread that moves the mark prints it: one line per tenth.
            let now_ms = plain.started.elapsed().as_millis() as u64;
            if now_ms < plain.last_line_ms.load(Ordering::Relaxed) + PLAIN_LINE_EVERY_MS {
                return;
            }
            let last = plain.last_tenth.fetch_max(tenth, Ordering::Relaxed);
            if tenth > last {
                plain.last_line_ms.store(now_ms, Ordering::Relaxed);
                err_line(&format!(
                    "{} {}: {}% ({} of {})",
                    timestamp(),
                    plain.label,
                    tenth * 10,
                    HumanBytes(done),
                    HumanBytes(plain.total)
                ));
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
        if let Some(plain) = &self.plain {
            err_line(&format!("{} {}: done ({})", timestamp(), plain.label, HumanBytes(plain.total)));
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
    }
}

/// One line on stderr, secrets masked. A write error is ignored: the terminal of a
/// dropped SSH session is gone, and the install goes on logging to its file
/// (`eprintln!` would panic), and a closed pipe ends nothing (`| head`).
pub fn err_line(text: &str) {
    let _ = writeln!(io::stderr().lock(), "{}", crate::runlog::mask(text));
}

/// One line on stdout, secrets masked, ignoring write errors for the same reasons.
pub fn out_line(text: &str) {
    let _ = writeln!(io::stdout().lock(), "{}", crate::runlog::mask(text));
}

pub fn timestamp() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Counts what is read through it into a `Progress`.
pub struct ProgressReader<'a, R> {
    inner: R,
    progress: &'a Progress,
}

impl<'a, R: Read> ProgressReader<'a, R> {
    pub fn new(inner: R, progress: &'a Progress) -> Self {
        ProgressReader { inner, progress }
    }
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
}

/// Counts what is written through it into a `Progress`.
pub struct ProgressWriter<'a, W> {
    pub inner: W,
    progress: &'a Progress,
}

impl<'a, W: Write> ProgressWriter<'a, W> {
    pub fn new(inner: W, progress: &'a Progress) -> Self {
        ProgressWriter { inner, progress }
    }
}

impl<W: Write> Write for ProgressWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
