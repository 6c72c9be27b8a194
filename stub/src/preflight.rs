//! Checks made before anything lands on the host: free space where members will go.

use std::path::{Path, PathBuf};

use indicatif::HumanBytes;

use crate::error::{Error, Result};

/// Slack on top of what the index says, for file system overhead.
const MARGIN: u64 = 1 << 20;

/// The nearest existing directory at or above `path`: where new files would take space.
pub fn existing_ancestor(path: &Path) -> PathBuf {
    let mut current =
        if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")).join(path) };
    while !current.is_dir() {
        if !current.pop() {
            return PathBuf::from("/");
        }
    }
    current
}

/// Bytes available to this user on the file system that holds `path`.
pub fn available_bytes(path: &Path) -> Result<u64> {
    let dir = existing_ancestor(path);
    let stat =
        nix::sys::statvfs::statvfs(&dir).map_err(|e| Error::internal(format!("cannot read free space of {}: {e}", dir.display())))?;
    Ok(stat.blocks_available() as u64 * stat.fragment_size() as u64)
}

/// Fails with the needed and available bytes unless `needed` bytes fit under `path`.
pub fn check_space(path: &Path, needed: u64) -> Result<()> {
    let available = available_bytes(path)?;
    if needed.saturating_add(MARGIN) > available {
        return Err(Error::space(format!(
            "not enough free space in {}: {} ({needed} bytes) needed, {} ({available} bytes) available; free space there or use --target DIR on a larger file system",
            existing_ancestor(path).display(),
            HumanBytes(needed),
            HumanBytes(available),
        )));
    }
    Ok(())
}
