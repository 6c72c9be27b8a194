//! How both programs talk to a person: a progress bar on a terminal, plain timestamped
//! lines otherwise (a log file, a CI job, `--json`), nothing but errors with `--quiet`;
//! one writer for stdout and stderr that a closed pipe or a dropped terminal never
//! panics; and the one JSON document (`Envelope`) every command prints with `--json`.
//!
//! It lives in the format crate because the builder links nothing of the runtime. The
//! runtime adds what only it has through a `Transcript`: its run log, which every status
//! line also goes to, and the masking of secrets in everything that leaves the process.

mod envelope;
mod progress;
mod stdout;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::SystemTime;

pub use envelope::{Empty, Envelope, ErrorDoc, NoSteps, Outcome};
pub use progress::{Progress, ProgressReader, ProgressWriter};
pub use stdout::{err_line, json_printed, out_line, print_json};

/// What a program keeps of what it says, beyond the terminal.
pub trait Transcript: Sync {
    /// `text` with what must never be shown (secrets) masked.
    fn mask(&self, text: &str) -> String;
    /// Keeps a status line (in a log file).
    fn record(&self, line: &str);
    /// Where the lines are kept, for the JSON document and the error line.
    fn path(&self) -> Option<PathBuf>;
}

static TRANSCRIPT: OnceLock<&'static dyn Transcript> = OnceLock::new();

/// Sets the program's transcript, once, before it says anything.
pub fn set_transcript(transcript: &'static dyn Transcript) {
    let _ = TRANSCRIPT.set(transcript);
}

/// `text` as it may leave the process.
pub fn mask(text: &str) -> String {
    match TRANSCRIPT.get() {
        Some(t) => t.mask(text),
        None => text.to_string(),
    }
}

fn record(line: &str) {
    if let Some(t) = TRANSCRIPT.get() {
        t.record(line);
    }
}

/// The transcript's file, if the program keeps one.
pub fn transcript_path() -> Option<PathBuf> {
    TRANSCRIPT.get().and_then(|t| t.path())
}

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

    /// A status line on stderr, timestamped unless on a terminal, and in the transcript.
    pub fn status(&self, message: impl AsRef<str>) {
        let message = mask(message.as_ref());
        record(&message);
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
        Progress::start(self, label, total)
    }
}

pub fn timestamp() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}
