//! Small file-system helpers: free space, absolute paths, remove-on-drop guards, a
//! rename that never replaces, and the sweep of what a killed run left behind.

use std::ffi::{CString, OsStr};
use std::fs;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use indicatif::HumanBytes;

use crate::error::{Error, IoContext, Result};

/// Slack on top of what the index says, for file system overhead.
const MARGIN: u64 = 1 << 20;

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

/// Why writing at `path` could be steered by another user, if it could: a link on the
/// way that belongs to someone else (the kernel's own rule for links in sticky
/// directories), or a directory on the way that any user may write to without the
/// sticky bit (anyone could put a link or a directory of theirs there).
pub fn unsafe_place(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid().as_raw();
    let mut at = PathBuf::from("/");
    for part in absolute(path).components().skip(1) {
        let parent = at.clone();
        at.push(part);
        let Ok(meta) = fs::symlink_metadata(&at) else {
            // Not there yet: what makes it is the directory above.
            return fs::metadata(&parent)
                .ok()
                .filter(|m| m.mode() & 0o002 != 0 && m.mode() & 0o1000 == 0)
                .map(|_| format!("{} would be made in {}, which any user may write to", at.display(), parent.display()));
        };
        if meta.file_type().is_symlink() {
            if meta.uid() != 0 && meta.uid() != me {
                return Some(format!("{} is a link that belongs to user {}", at.display(), meta.uid()));
            }
            // Follow it (ours or root's) and go on from where it leads.
            match fs::canonicalize(&at) {
                Ok(real) => at = real,
                Err(_) => return None,
            }
            continue;
        }
        if meta.is_dir() && meta.mode() & 0o002 != 0 && meta.mode() & 0o1000 == 0 {
            return Some(format!("{} may be written by any user (mode {:04o})", at.display(), meta.mode() & 0o7777));
        }
    }
    None
}

/// Bytes available to this user on the file system that holds `path`.
pub fn available_bytes(path: &Path) -> Result<u64> {
    let dir = existing_ancestor(path);
    let stat =
        nix::sys::statvfs::statvfs(&dir).map_err(|e| Error::internal(format!("cannot read free space of {}: {e}", dir.display())))?;
    Ok(stat.blocks_available() as u64 * stat.fragment_size() as u64)
}

/// Fails with the needed and available bytes unless `needed` bytes, and the margin kept
/// for the file system's own overhead, fit under `path`.
pub fn check_space(path: &Path, needed: u64) -> Result<()> {
    let available = available_bytes(path)?;
    if needed.saturating_add(MARGIN) > available {
        return Err(Error::space(format!(
            "not enough free space in {}: {} ({needed} bytes) needed plus a {} margin for the file system, {} ({available} bytes) available; free space there",
            existing_ancestor(path).display(),
            HumanBytes(needed),
            HumanBytes(MARGIN),
            HumanBytes(available),
        )));
    }
    Ok(())
}

/// The slack kept free on top of what lands (file system overhead), for messages.
pub const SPACE_MARGIN: u64 = MARGIN;

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

/// The PID in a temporary's name, if it has one of `TEMP_MARKS`.
fn temp_owner(name: &str) -> Option<i32> {
    let (_, after) = TEMP_MARKS.iter().find_map(|mark| name.split_once(mark))?;
    after.split('-').next()?.parse().ok()
}

fn pid_alive(pid: i32) -> bool {
    // Signal 0 checks existence; EPERM means it exists under another user.
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(e) => e == nix::errno::Errno::EPERM,
    }
}

/// Bytes a file or tree takes (apparent sizes), without following links.
pub fn tree_bytes(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else { return 0 };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(path).map(|entries| entries.flatten().map(|e| tree_bytes(&e.path())).sum()).unwrap_or(0)
}

/// Every entry below `dir` (not `dir` itself), parents before children, without
/// following links: (path, is a directory). Links and other non-files count as files.
pub fn walk(dir: &Path) -> Vec<(PathBuf, bool)> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else { return out };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        out.push((entry.path(), is_dir));
        if is_dir {
            out.extend(walk(&entry.path()));
        }
    }
    out
}

/// The SHA-256 (hex) of a file's content, read without following a link at its path.
pub fn file_sha256(path: &Path) -> Result<String> {
    use sha2::Digest;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)
        .ctx("reading", path)?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file, &mut hasher).ctx("reading", path)?;
    Ok(crate::format::digest::to_hex(&hasher.finalize()))
}

/// Removes the temporaries that runs no longer alive left directly in `dir`; returns
/// how many and their bytes. A temporary whose run is still alive is left alone.
pub fn sweep(dir: &Path) -> (usize, u64) {
    let Ok(entries) = fs::read_dir(dir) else { return (0, 0) };
    let mut removed = (0, 0);
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = temp_owner(&name.to_string_lossy()) else { continue };
        if pid == std::process::id() as i32 || pid_alive(pid) {
            continue;
        }
        let path = entry.path();
        let bytes = tree_bytes(&path);
        remove_any(&path);
        if fs::symlink_metadata(&path).is_err() {
            removed.0 += 1;
            removed.1 += bytes;
        }
    }
    removed
}

/// `renameat2(RENAME_NOREPLACE)`: renames `from` (below `from_dir`) to `to` (below
/// `to_dir`) only if `to` does not exist, checked and done as one step. nix wraps it
/// for glibc only, so the static (musl) stub makes the system call itself.
pub fn rename_no_replace(from_dir: BorrowedFd<'_>, from: &OsStr, to_dir: BorrowedFd<'_>, to: &OsStr) -> nix::Result<()> {
    use nix::libc;
    let from = CString::new(from.as_bytes()).map_err(|_| Errno::EINVAL)?;
    let to = CString::new(to.as_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: both names are NUL-terminated strings that outlive the call, and both
    // descriptors are open (borrowed for the call).
    let res = unsafe {
        libc::syscall(libc::SYS_renameat2, from_dir.as_raw_fd(), from.as_ptr(), to_dir.as_raw_fd(), to.as_ptr(), libc::RENAME_NOREPLACE)
    };
    Errno::result(res).map(drop)
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

/// A test hook: `AIRBIN_TEST_CRASH_AT=NAME` (or `NAME#N`, the Nth time) kills this
/// process outright (SIGKILL) when it reaches the point named NAME, so that the tests
/// can stop a run at every write of its state and check what a rerun makes of it.
pub fn crash_point(name: &str) {
    static WANTED: std::sync::OnceLock<Option<(String, u32)>> = std::sync::OnceLock::new();
    static SEEN: std::sync::Mutex<Vec<(String, u32)>> = std::sync::Mutex::new(Vec::new());
    let wanted = WANTED.get_or_init(|| {
        let text = std::env::var("AIRBIN_TEST_CRASH_AT").ok()?;
        let (point, nth) = text.split_once('#').map_or((text.as_str(), 1), |(p, n)| (p, n.parse().unwrap_or(1)));
        Some((point.to_string(), nth))
    });
    let Some((point, nth)) = wanted else { return };
    if point != name {
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
    if count == *nth {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporaries_are_unpredictable_and_never_written_through_a_planted_link() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (temp_name(".x", ".airbin-partial-"), temp_name(".x", ".airbin-partial-"));
        assert_ne!(a, b);
        assert_eq!(temp_owner(&a), Some(std::process::id() as i32));
        // Another user planted a symlink under the name: the create fails, the target is untouched.
        let victim = dir.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        let planted = dir.path().join(&a);
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        assert!(create_new_file(&planted).is_err());
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
    }

    #[test]
    fn sweep_removes_only_dead_runs_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        // PID 0x7fff_fff0 is far above any pid_max: no such process.
        let dead = dir.path().join(".cadm.airbin-partial-2147483632-00ff00ff00ff00ff");
        fs::write(&dead, b"12345").unwrap();
        let tree = dir.path().join(".airbin-restore-2147483632");
        fs::create_dir_all(tree.join("a")).unwrap();
        fs::write(tree.join("a/b"), b"123").unwrap();
        let alive = dir.path().join(temp_name(".x", ".airbin-partial-"));
        fs::write(&alive, b"1").unwrap();
        fs::write(dir.path().join("kept"), b"1").unwrap();
        assert_eq!(sweep(dir.path()), (2, 8));
        let mut left: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        left.sort();
        assert_eq!(left, [alive.file_name().unwrap().to_owned(), "kept".into()]);
    }
}
