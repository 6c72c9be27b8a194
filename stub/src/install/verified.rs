//! The mark an install leaves once every byte of its bundle has passed: which file it
//! was (`FileIdentity`) and which digests it carried. A rerun on the same, unwritten
//! file (the resume after a kill or a fixed config) recalls that verdict instead of
//! hashing every byte again, and hashes only the members it reads, as it reads them.
//!
//! The mark is trusted only where the journal is: a file of this user, in a directory
//! of this user, neither writable by anyone else.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::state::StateDir;
use airbin_format::digest::to_hex;
use airbin_format::{Bundle, FileIdentity};

#[derive(Serialize, Deserialize, PartialEq, Eq)]
struct Mark {
    file_sha256: String,
    index_sha256: String,
    identity: FileIdentity,
}

impl Mark {
    fn of(bundle: &Bundle, identity: FileIdentity) -> Mark {
        Mark { file_sha256: bundle.sha256(), index_sha256: to_hex(&bundle.trailer.index_sha256), identity }
    }
}

fn mark_path(state: &StateDir) -> PathBuf {
    state.root.join("verified")
}

/// Whether an earlier run verified this very file, unwritten since.
pub(crate) fn recall(state: &StateDir, bundle: &Bundle) -> bool {
    let path = mark_path(state);
    if !owned_by_us_alone(&path) || !owned_by_us_alone(&state.root) {
        return false;
    }
    let Ok(identity) = bundle.identity() else { return false };
    let Some(mark) = crate::fsx::read_small_nofollow(&path, 64 << 10).ok().and_then(|text| serde_json::from_slice::<Mark>(&text).ok())
    else {
        return false;
    };
    mark == Mark::of(bundle, identity)
}

/// Leaves the mark, if every byte was hashed in this run and passed, and the file's
/// identity is still `before` (taken before the hashing began: the file was not
/// written meanwhile). Only where the run's state directory exists (a run makes it
/// once its preflight passed); failing to write it costs the next run a full check,
/// nothing else. Whether the mark is down.
pub(crate) fn remember(state: &StateDir, bundle: &Bundle, before: &FileIdentity) -> bool {
    if !bundle.verified_whole() || !state.root.is_dir() || bundle.identity().ok().as_ref() != Some(before) {
        return false;
    }
    let Ok(text) = serde_json::to_vec(&Mark::of(bundle, before.clone())) else { return false };
    let path = mark_path(state);
    let temp = state.root.join(crate::fsx::temp_name("verified", ".airbin-partial-"));
    let written = crate::fsx::create_new_file(&temp).and_then(|mut file| std::io::Write::write_all(&mut file, &text));
    if written.is_err() || fs::rename(&temp, &path).is_err() {
        let _ = fs::remove_file(&temp);
        return false;
    }
    true
}

/// Forgets the mark: the next run hashes every byte.
pub(crate) fn forget(state: &StateDir) {
    let _ = fs::remove_file(mark_path(state));
}

fn owned_by_us_alone(path: &Path) -> bool {
    fs::symlink_metadata(path)
        .is_ok_and(|meta| meta.uid() == nix::unistd::geteuid().as_raw() && meta.mode() & 0o022 == 0 && !meta.file_type().is_symlink())
}
