//! The run's log file: every status line, every step's output and every decision of an
//! install, timestamped, under the state directory. Global because every part of the
//! run writes to it and it must outlive the terminal: writes to it never fail the run.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use airbin_format::error::{IoContext, Result};

static LOG: Mutex<Option<(File, PathBuf)>> = Mutex::new(None);
/// Values that never appear in the log or on the terminal: those of the config's
/// secret-looking keys.
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// From now on, `mask` replaces each of `values` (of 3 characters or more), as it is
/// and as JSON writes it inside a string (a quote or a backslash escaped).
pub(crate) fn add_secrets(values: impl IntoIterator<Item = String>) {
    let mut secrets = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    for value in values.into_iter().filter(|v| v.chars().count() >= 3) {
        let escaped = serde_json::to_string(&value).unwrap_or_default();
        let escaped = escaped.trim_matches('"').to_string();
        if escaped != value {
            secrets.push(escaped);
        }
        secrets.push(value);
    }
    // Longest first, so that a secret holding another is masked whole.
    secrets.sort_by_key(|v| std::cmp::Reverse(v.len()));
    secrets.dedup();
}

/// `text` with every known secret replaced by `********`.
pub(crate) fn mask(text: &str) -> String {
    let secrets = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    secrets.iter().fold(text.to_string(), |text, secret| text.replace(secret.as_str(), "********"))
}

/// Starts logging to `path` (created, appended to if it exists).
pub(crate) fn open(path: &Path) -> Result<()> {
    let file = crate::fsx::open_private_append(path).ctx("creating the log", path)?;
    *LOG.lock().unwrap_or_else(|e| e.into_inner()) = Some((file, path.to_path_buf()));
    Ok(())
}

/// The log being written, if any.
pub(crate) fn path() -> Option<PathBuf> {
    LOG.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|(_, p)| p.clone())
}

/// Appends one timestamped line, secrets masked.
pub(crate) fn line(text: &str) {
    if let Some((file, _)) = LOG.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        let _ = writeln!(file, "{} {}", airbin_format::console::timestamp(), mask(text));
    }
}

/// Stops logging (the log is about to be removed).
pub(crate) fn close() {
    *LOG.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// Flushes to disk: at the end of a run, so that a crash after it loses nothing.
pub(crate) fn sync() {
    if let Some((file, _)) = LOG.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        let _ = file.sync_data();
    }
}

/// The run log as the console's transcript: every status line goes to it, and every
/// text that leaves the process is masked.
pub(crate) struct RunLog;

impl airbin_format::console::Transcript for RunLog {
    fn mask(&self, text: &str) -> String {
        mask(text)
    }
    fn record(&self, text: &str) {
        line(text)
    }
    fn path(&self) -> Option<PathBuf> {
        path()
    }
}
