//! Small file-system helpers of the runtime: free space, places another user could
//! steer, a rename that never replaces, and the sweep of what a killed run left behind.
//! The helpers the builder writes with too (atomic writes, guards, temporaries) are the
//! format crate's `files`, named here as well.

use std::ffi::{CString, OsStr};
use std::fs;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use indicatif::HumanBytes;

use airbin_format::error::{Error, IoContext, Result};
pub(crate) use airbin_format::files::{
    absolute, crash_point, create_dir_guarded, create_new_file, existing_ancestor, first_missing_ancestor, random_hex, read_small_nofollow,
    remove_any, temp_name, write_atomic, RemoveOnDrop, TEMP_MARKS,
};

/// Slack on top of what the index says, for file system overhead.
const MARGIN: u64 = 1 << 20;

/// Why writing at `path` could be steered by another user, if it could: a link on the
/// way that belongs to someone else (the kernel's own rule for links in sticky
/// directories), or a directory on the way that any user may write to without the
/// sticky bit (anyone could put a link or a directory of theirs there).
pub(crate) fn unsafe_place(path: &Path) -> Option<String> {
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
pub(crate) fn available_bytes(path: &Path) -> Result<u64> {
    let dir = existing_ancestor(path);
    let stat =
        nix::sys::statvfs::statvfs(&dir).map_err(|e| Error::internal(format!("cannot read free space of {}: {e}", dir.display())))?;
    Ok(stat.blocks_available() as u64 * stat.fragment_size() as u64)
}

/// Fails with the needed and available bytes unless `needed` bytes, and the margin kept
/// for the file system's own overhead, fit under `path`.
pub(crate) fn check_space(path: &Path, needed: u64) -> Result<()> {
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
pub(crate) const SPACE_MARGIN: u64 = MARGIN;

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
pub(crate) fn tree_bytes(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else { return 0 };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(path).map(|entries| entries.flatten().map(|e| tree_bytes(&e.path())).sum()).unwrap_or(0)
}

/// Every entry below `dir` (not `dir` itself), parents before children, without
/// following links: (path, is a directory). Links and other non-files count as files.
pub(crate) fn walk(dir: &Path) -> Vec<(PathBuf, bool)> {
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
pub(crate) fn file_sha256(path: &Path) -> Result<String> {
    use sha2::Digest;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)
        .ctx("reading", path)?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file, &mut hasher).ctx("reading", path)?;
    Ok(airbin_format::digest::to_hex(&hasher.finalize()))
}

/// Removes the temporaries that runs no longer alive left directly in `dir`; returns
/// how many and their bytes. A temporary whose run is still alive is left alone.
pub(crate) fn sweep(dir: &Path) -> (usize, u64) {
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
pub(crate) fn rename_no_replace(from_dir: BorrowedFd<'_>, from: &OsStr, to_dir: BorrowedFd<'_>, to: &OsStr) -> nix::Result<()> {
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

/// Opens `path` to append to, creating it for this user's eyes only (0600), never
/// through a link planted where it belongs: the run's log and journal.
pub(crate) fn open_private_append(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new().create(true).append(true).mode(0o600).custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

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
