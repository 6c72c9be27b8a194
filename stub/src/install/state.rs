//! The state directory of one bundle name on this host (default
//! `/var/lib/airbin/<name>/`, or `$AIRBIN_STATE_DIR/<name>/`): the journal, the logs,
//! the lock and the staging directory. One lock per state directory, whatever
//! `--target` says, so two runs of the same product can never overlap.
//!
//! Everything in it steers what a run does (what is done, what is installed, what it
//! removes), so it must be this user's alone: a state directory another user could
//! write into (or replace) is refused, it is made 0700, and nothing in it is opened
//! through a link.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use airbin_format::error::{Error, IoContext, Result};

pub(crate) struct StateDir {
    pub(crate) root: PathBuf,
}

impl StateDir {
    /// The state directory for bundles named `name`.
    pub(crate) fn for_bundle(name: &str) -> StateDir {
        let base = match std::env::var_os("AIRBIN_STATE_DIR") {
            Some(dir) => crate::fsx::absolute(Path::new(&dir)),
            None if nix::unistd::geteuid().is_root() => PathBuf::from("/var/lib/airbin"),
            None => std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from).join(".local/state/airbin"),
        };
        StateDir { root: base.join(name) }
    }

    pub(crate) fn journal(&self) -> PathBuf {
        self.root.join("journal.jsonl")
    }
    pub(crate) fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub(crate) fn staging(&self) -> PathBuf {
        self.root.join("staging")
    }
    /// What the install placed on the host (`steps::placed`).
    pub(crate) fn placed(&self) -> PathBuf {
        self.root.join("placed.json")
    }

    pub(crate) fn lock_path(&self) -> PathBuf {
        self.root.join("lock")
    }

    /// Refuses a state directory that is not this user's alone: a link, owned by someone
    /// else, or writable by others (itself, or the directory holding it without the
    /// sticky bit: another user could replace it). Where it does not exist yet, the
    /// same of where it would be made.
    pub(crate) fn check(&self) -> Result<()> {
        let me = nix::unistd::geteuid().as_raw();
        let base = self.root.parent().unwrap_or(Path::new("/"));
        let places = [(self.root.as_path(), true), (base, false), (base.parent().unwrap_or(Path::new("/")), false)];
        for (dir, own) in places {
            let meta = match fs::symlink_metadata(dir) {
                Ok(meta) => meta,
                Err(_) => continue,
            };
            let mode = meta.mode();
            let why = if meta.file_type().is_symlink() && own {
                Some("is a symlink".to_string())
            } else if !meta.is_dir() && !meta.file_type().is_symlink() {
                Some("is not a directory".to_string())
            } else if own && meta.uid() != me {
                Some(format!("belongs to user {} (this run is user {me})", meta.uid()))
            } else if own && mode & 0o022 != 0 {
                Some(format!("is writable by other users (mode {:04o})", mode & 0o7777))
            } else if !own && meta.is_dir() && mode & 0o002 != 0 && mode & 0o1000 == 0 {
                Some(format!("lies in {}, which any user may write to without the sticky bit", dir.display()))
            } else {
                None
            };
            if let Some(why) = why {
                return Err(Error::permission(format!(
                    "the state directory {} {why}: another user could plant there what the install trusts (its journal, its record, its staging); use a directory of your own (AIRBIN_STATE_DIR=DIR) or make it yours alone (chmod 700)",
                    self.root.display()
                )));
            }
        }
        Ok(())
    }

    /// Makes the state directory (0700) after the checks above.
    pub(crate) fn create(&self) -> Result<()> {
        self.check()?;
        if let Some(base) = self.root.parent() {
            fs::create_dir_all(base).ctx("creating the state directory", base)?;
        }
        match fs::DirBuilder::new().mode(0o700).create(&self.root) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => self.check(),
            Err(e) => Err(Error::io(e, "creating the state directory", &self.root)),
        }
    }

    /// A directory in the state directory (`logs`, `staging`), made 0700; one that is a
    /// link or not a directory is refused.
    pub(crate) fn subdir(&self, path: &Path) -> Result<()> {
        match fs::DirBuilder::new().mode(0o700).create(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(Error::io(e, "creating", path)),
            Err(_) => {}
        }
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => Ok(()),
            _ => Err(Error::permission(format!(
                "{} in the state directory is not a directory of this run's (a link?): remove it, then run again",
                path.display()
            ))),
        }
    }

    /// Takes the lock, creating the state directory; refused with the holder's PID and
    /// start time while another run holds it.
    pub(crate) fn lock(&self) -> Result<Lock> {
        self.create()?;
        let path = self.lock_path();
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&path)
            .ctx("creating the lock", &path)?;
        match file.try_lock() {
            Ok(()) => {
                let _ = file.set_len(0);
                let _ = writeln!(file, "pid {} started {}", std::process::id(), crate::ui::timestamp());
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
    pub(crate) fn holder(&self) -> Option<String> {
        let path = self.lock_path();
        let file = OpenOptions::new().read(true).custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC).open(&path).ok()?;
        match file.try_lock_shared() {
            Ok(()) => None,
            Err(_) => {
                let text = crate::fsx::read_small_nofollow(&path, 4096).ok()?;
                Some(String::from_utf8_lossy(&text).trim().to_string()).filter(|t| !t.is_empty())
            }
        }
    }
}

/// Held for the whole run; released when dropped (or when the process dies).
pub(crate) struct Lock {
    _file: File,
}
