//! Restoring a pack into a registry root: unpacked beside it, then renamed into place
//! in the order a running registry can serve from.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::Ownership;
use crate::error::{IoContext, Result};
use crate::format::digest::to_hex;
use crate::format::registry_pack::V2;
use crate::format::{tarsafe, Bundle, Member};
use crate::fsx::RemoveOnDrop;
use crate::interrupt;
use crate::progress::Ui;

/// The order in which restored files go live, so that a running registry never sees a
/// link to content that is not there yet: blobs, then layer links, then revisions, then tags.
fn go_live_rank(rel: &str) -> u8 {
    if rel.contains("/_manifests/tags/") {
        3
    } else if rel.contains("/_manifests/revisions/") {
        2
    } else if rel.contains("/_layers/") {
        1
    } else {
        0
    }
}

/// What a restore did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Files renamed into the root.
    pub placed: usize,
    /// Of those, blobs that were there already with content that did not match their
    /// digest (a damaged earlier copy), replaced from the pack.
    pub repaired: usize,
}

/// Restores a registry-pack member into `root`: unpacked beside it first (same file
/// system), then each file renamed into place in go-live order. Blobs already there are
/// kept when their content matches their digest (they are content-addressed) and
/// replaced when it does not; links are replaced by the pack's.
pub fn restore(bundle: &Bundle, member: &Member, root: &Path, ownership: &Ownership, ui: &Ui) -> Result<Restored> {
    crate::fsx::check_space(root, member.unpacked_bytes)?;
    fs::create_dir_all(root).ctx("creating the registry root", root)?;
    let staging = root.join(format!(".airbin-restore-{}", std::process::id()));
    let _cleanup = RemoveOnDrop::new(staging.clone());
    let progress = ui.progress("unpack", member.size);
    let content = crate::progress::ProgressReader::new(bundle.content_reader(member)?, &progress);
    tarsafe::unpack_tree(&member.name, content, &staging)?;
    progress.finish();

    let mut files = Vec::new();
    collect_files(&staging, Path::new(""), &mut files)?;
    files.sort_by_key(|rel| (go_live_rank(&rel.to_string_lossy()), rel.clone()));
    let mut restored = Restored::default();
    for rel in &files {
        interrupt::check()?;
        let from = staging.join(rel);
        let to = root.join(rel);
        let rel_text = rel.to_string_lossy();
        if rel_text.starts_with(&format!("{V2}blobs/")) && to.is_file() {
            let named = rel.parent().and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if file_sha256(&to)? == named {
                continue;
            }
            restored.repaired += 1;
        }
        if let Some(parent) = to.parent() {
            create_dirs_owned(root, parent, ownership)?;
        }
        apply_ownership(&from, ownership, false)?;
        fs::rename(&from, &to).ctx("placing", &to)?;
        restored.placed += 1;
    }
    Ok(restored)
}

fn file_sha256(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).ctx("reading", path)?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).ctx("reading", path)?;
    Ok(to_hex(&hasher.finalize()))
}

fn collect_files(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).ctx("reading", dir)? {
        let entry = entry.ctx("reading", dir)?;
        let child = rel.join(entry.file_name());
        if entry.file_type().ctx("reading", &entry.path())?.is_dir() {
            collect_files(&entry.path(), &child, out)?;
        } else {
            out.push(child);
        }
    }
    Ok(())
}

/// Creates the directories from `root` down to `dir`, owned like the restored files.
fn create_dirs_owned(root: &Path, dir: &Path, ownership: &Ownership) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        if parent != root && parent.starts_with(root) {
            create_dirs_owned(root, parent, ownership)?;
        }
    }
    fs::create_dir(dir).ctx("creating", dir)?;
    apply_ownership(dir, ownership, true)
}

fn apply_ownership(path: &Path, ownership: &Ownership, is_dir: bool) -> Result<()> {
    if ownership.uid.is_some() || ownership.gid.is_some() {
        std::os::unix::fs::chown(path, ownership.uid, ownership.gid).ctx("changing the owner of", path)?;
    }
    if let Some(mode) = ownership.file_mode {
        // Directories get an x bit wherever the file mode has an r bit.
        let mode = if is_dir { mode | ((mode & 0o444) >> 2) } else { mode };
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).ctx("setting the mode of", path)?;
    }
    Ok(())
}
