//! The run's log file: every status line, every step's output and every decision of an
//! install, timestamped, under the state directory. Global because every part of the
//! run writes to it and it must outlive the terminal: writes to it never fail the run.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{IoContext, Result};

static LOG: Mutex<Option<(File, PathBuf)>> = Mutex::new(None);

/// Starts logging to `path` (created, appended to if it exists).
pub fn open(path: &Path) -> Result<()> {
    let file = OpenOptions::new().create(true).append(true).open(path).ctx("creating the log", path)?;
    *LOG.lock().unwrap_or_else(|e| e.into_inner()) = Some((file, path.to_path_buf()));
    Ok(())
}

/// The log being written, if any.
pub fn path() -> Option<PathBuf> {
    LOG.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|(_, p)| p.clone())
}

/// Appends one timestamped line.
pub fn line(text: &str) {
    if let Some((file, _)) = LOG.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        let _ = writeln!(file, "{} {text}", crate::progress::timestamp());
    }
}

/// Flushes to disk: at the end of a run, so that a crash after it loses nothing.
pub fn sync() {
    if let Some((file, _)) = LOG.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        let _ = file.sync_data();
    }
}
