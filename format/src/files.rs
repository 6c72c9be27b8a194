//! The file helpers both programs write with: whole-or-nothing writes, temporaries
//! with unguessable names that are never created through a planted link, guards that
//! remove what a failed step made, and a crash hook for the tests.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};

/// `path` made absolute against the working directory (without resolving links).
pub fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")).join(path)
    }
}

/// The nearest existing directory at or above `path`: where new files would take space.
pub fn existing_ancestor(path: &Path) -> PathBuf {
    let mut current = absolute(path);
    while !current.is_dir() {
        if !current.pop() {
            return PathBuf::from("/");
        }
    }
    current
}

/// The outermost directory that creating `path` would make, `None` when it exists.
pub fn first_missing_ancestor(path: &Path) -> Option<PathBuf> {
    let mut missing = None;
    let mut current = absolute(path);
    while !current.exists() {
        missing = Some(current.clone());
        if !current.pop() {
            break;
        }
    }
    missing
}

/// Removes a path on drop unless disarmed: the cleanup of every temporary.
pub struct RemoveOnDrop {
    path: Option<PathBuf>,
}

impl RemoveOnDrop {
    pub fn new(path: PathBuf) -> RemoveOnDrop {
        RemoveOnDrop { path: Some(path) }
    }
    pub fn disarm(mut self) -> PathBuf {
        self.path.take().expect("armed")
    }
    pub fn path(&self) -> &Path {
        self.path.as_deref().expect("armed")
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            remove_any(&path);
        }
    }
}

/// Removes a file, a link or a whole directory, whichever `path` is.
pub fn remove_any(path: &Path) {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => drop(fs::remove_dir_all(path)),
        Ok(_) => drop(fs::remove_file(path)),
        Err(_) => {}
    }
}

/// Creates `dir` and any missing parents; the guard removes what was created.
pub fn create_dir_guarded(dir: &Path) -> Result<Option<RemoveOnDrop>> {
    let topmost_missing = first_missing_ancestor(dir);
    fs::create_dir_all(dir).ctx("creating", dir)?;
    Ok(topmost_missing.map(RemoveOnDrop::new))
}

/// The marks in the names of every temporary a run creates (`.NAME.airbin-partial-PID-RANDOM`,
/// `.airbin-restore-PID-RANDOM`, `.NAME.airbin-old-PID-RANDOM`): what `sweep` looks for.
pub const TEMP_MARKS: [&str; 3] = [".airbin-partial-", ".airbin-restore-", ".airbin-old-"];

/// A temporary's name: `prefix` + `mark` + this run's PID (for `sweep`) + 64 random
/// bits, so that nobody can plant something under the name beforehand. Create it with
/// `create_new_file` or `fs::create_dir`, which refuse what is there already.
pub fn temp_name(prefix: &str, mark: &str) -> String {
    debug_assert!(TEMP_MARKS.contains(&mark));
    format!("{prefix}{mark}{}-{:016x}", std::process::id(), random_u64())
}

/// 64 random bits as 16 hex digits.
pub fn random_hex() -> String {
    format!("{:016x}", random_u64())
}

/// 64 bits no other user can guess: std's hasher keys come from the OS's randomness.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    hasher.finish()
}

/// Creates a file that must not exist yet, never through a symlink, readable by its
/// owner only until its mode is set.
pub fn create_new_file(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC).open(path)
}

/// Writes `bytes` to `path` whole or not at all: a temporary beside it, synced, then
/// renamed over it. A reader sees the old file or the new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let temp = dir.join(temp_name(&format!(".{name}"), ".airbin-partial-"));
    let mut file = create_new_file(&temp).ctx("creating", &temp)?;
    let guard = RemoveOnDrop::new(temp.clone());
    file.set_permissions(fs::Permissions::from_mode(mode)).ctx("setting the mode of", &temp)?;
    file.write_all(bytes).ctx("writing", &temp)?;
    file.sync_all().ctx("writing", &temp)?;
    crash_point(&format!("write:{name}"));
    fs::rename(guard.disarm(), path).ctx("writing", path)?;
    // The rename is on disk only once its directory is: a power cut must not bring the
    // old file back after a later record relied on the new one.
    sync_dir(dir);
    crash_point(&format!("written:{name}"));
    Ok(())
}

/// Whether `program` is a file in one of `PATH`'s directories (an absolute path: that file).
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Flushes a directory's entries (a rename, a create) to disk; failures are ignored: a
/// file system that cannot sync a directory has nothing more to do.
pub fn sync_dir(dir: &Path) {
    if let Ok(handle) = fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}

/// Reads a small regular file without following a link at its path, at most `cap`
/// bytes: what the runtime reads back of its own state (a planted link or FIFO there is
/// refused, not followed or waited on).
pub fn read_small_nofollow(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file =
        fs::OpenOptions::new().read(true).custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC).open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut out = Vec::new();
    file.take(cap).read_to_end(&mut out)?;
    Ok(out)
}

/// Fault hooks, for airbin's tests and `airbin lab`: `AIRBIN_TEST_CRASH_AT=NAME` (or
/// `NAME#N`, the Nth time) kills this process outright (SIGKILL) when it reaches the
/// point named NAME; `AIRBIN_TEST_STOP_AT=NAME#N` freezes it there (SIGSTOP), so that the
/// lab can cut a machine's power at exactly that point, unsynced page cache and all.
pub fn crash_point(name: &str) {
    type Wanted = Option<(String, u32)>;
    static WANTED: std::sync::OnceLock<(Wanted, Wanted)> = std::sync::OnceLock::new();
    static SEEN: std::sync::Mutex<Vec<(String, u32)>> = std::sync::Mutex::new(Vec::new());
    let parse = |var: &str| -> Wanted {
        let text = std::env::var(var).ok()?;
        let (point, nth) = text.split_once('#').map_or((text.as_str(), 1), |(p, n)| (p, n.parse().unwrap_or(1)));
        Some((point.to_string(), nth))
    };
    let (kill, stop) = WANTED.get_or_init(|| (parse("AIRBIN_TEST_CRASH_AT"), parse("AIRBIN_TEST_STOP_AT")));
    if kill.as_ref().is_none_or(|(p, _)| p != name) && stop.as_ref().is_none_or(|(p, _)| p != name) {
        return;
    }
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let count = match seen.iter_mut().find(|(n, _)| n == name) {
        Some((_, count)) => {
            *count += 1;
            *count
        }
        None => {
            seen.push((name.to_string(), 1));
            1
        }
    };
    let at = |wanted: &Wanted| wanted.as_ref().is_some_and(|(p, n)| p == name && *n == count);
    let signal = match (at(kill), at(stop)) {
        (true, _) => nix::sys::signal::Signal::SIGKILL,
        (_, true) => nix::sys::signal::Signal::SIGSTOP,
        _ => return,
    };
    let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), signal);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporaries_are_unpredictable_and_never_written_through_a_planted_link() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (temp_name(".x", ".airbin-partial-"), temp_name(".x", ".airbin-partial-"));
        assert_ne!(a, b);
        assert!(a.starts_with(&format!(".x.airbin-partial-{}-", std::process::id())));
        // Another user planted a symlink under the name: the create fails, the target is untouched.
        let victim = dir.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        let planted = dir.path().join(&a);
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        assert!(create_new_file(&planted).is_err());
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
    }
}
