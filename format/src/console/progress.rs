//! Progress over bytes of work: a bar on a terminal, a line per tenth of long work
//! otherwise, nothing with `--quiet`.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{err_line, timestamp, Ui};

pub struct Progress {
    bar: Option<ProgressBar>,
    plain: Option<Plain>,
}

struct Plain {
    label: std::sync::Mutex<String>,
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
    pub(super) fn start(ui: &Ui, label: &str, total: u64) -> Progress {
        if ui.quiet {
            return Progress { bar: None, plain: None };
        }
        if ui.is_terminal() {
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
                label: std::sync::Mutex::new(label.to_string()),
                total,
                done: AtomicU64::new(0),
                last_tenth: AtomicU64::new(0),
                started: Instant::now(),
                last_line_ms: AtomicU64::new(0),
            }),
        }
    }

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
                    plain.label(),
                    tenth * 10,
                    HumanBytes(done),
                    HumanBytes(plain.total)
                ));
            }
        }
    }

    /// Names the work anew, as it moves (`fetch 3/10 images`).
    pub fn relabel(&self, label: String) {
        if let Some(bar) = &self.bar {
            bar.set_message(label.clone());
        }
        if let Some(plain) = &self.plain {
            *plain.label.lock().expect("no panic holding it") = label;
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
        if let Some(plain) = &self.plain {
            err_line(&format!("{} {}: done ({})", timestamp(), plain.label(), HumanBytes(plain.total)));
        }
    }
}

impl Plain {
    fn label(&self) -> String {
        self.label.lock().expect("no panic holding it").clone()
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
