//! The state directory of one bundle name on this host (default
//! `/var/lib/airbin/<name>/`, or `$AIRBIN_STATE_DIR/<name>/`): the journal, the logs,
//! the lock and the staging directory. One lock per state directory, whatever
//! `--target` says, so two runs of the same product can never overlap.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

pub struct StateDir {
    pub root: PathBuf,
}

impl StateDir {
    /// The state directory for bundles named `name`.
    pub fn for_bundle(name: &str) -> StateDir {
        let base = match std::env::var_os("AIRBIN_STATE_DIR") {
            Some(dir) => crate::fsx::absolute(Path::new(&dir)),
            None if nix::unistd::geteuid().is_root() => PathBuf::from("/var/lib/airbin"),
            None => std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from).join(".local/state/airbin"),
        };
        StateDir { root: base.join(name) }
    }

    pub fn journal(&self) -> PathBuf {
        self.root.join("journal.jsonl")
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn staging(&self) -> PathBuf {
        self.root.join("staging")
    }
    /// The SHA-256 of the bundle `staging()` holds the members of.
    pub fn staged_for(&self) -> PathBuf {
        self.root.join("staged-for")
    }
    pub fn lock_path(&self) -> PathBuf {
        self.root.join("lock")
    }

    /// Takes the lock, creating the state directory; refused with the holder's PID and
    /// start time while another run holds it.
    pub fn lock(&self) -> Result<Lock> {
        fs::create_dir_all(&self.root).ctx("creating the state directory", &self.root)?;
        let path = self.lock_path();
        let mut file =
            OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path).ctx("creating the lock", &path)?;
        match file.try_lock() {
            Ok(()) => {
                let _ = file.set_len(0);
                let _ = writeln!(file, "pid {} started {}", std::process::id(), crate::progress::timestamp());
                Ok(Lock { _file: file })
            }
            Err(fs::TryLockError::WouldBlock) => {
                let holder = self.holder().unwrap_or_else(|| "another process".to_string());
                Err(Error::host(format!(
                    "another run of this bundle is going on ({holder}; lock {}); wait for it to finish ({} status --follow), then run this one again",
                    path.display(),
                    crate::shell::bundle()
                )))
            }
            Err(fs::TryLockError::Error(e)) => Err(Error::io(e, "locking", &path)),
        }
    }

    /// "pid 123 started 2026-..." of the run holding the lock, if one does.
    pub fn holder(&self) -> Option<String> {
        let path = self.lock_path();
        let file = File::open(&path).ok()?;
        match file.try_lock_shared() {
            Ok(()) => None,
            Err(_) => fs::read_to_string(&path).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()),
        }
    }
}

/// Held for the whole run; released when dropped (or when the process dies).
pub struct Lock {
    _file: File,
}
