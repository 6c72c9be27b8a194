//! Registry image packs: a docker registry's storage tree (`docker/registry/v2/...`),
//! and the check that it serves, shared by the builder (on its input) and the stub (on a
//! registry root after a restore).
//!
//! What a registry needs to serve a tag (distribution 2.8): the tag's `current/link`,
//! a `_manifests/revisions` link for each manifest, a `_layers` link in the repository
//! for the config and each layer, and every blob they name. A link file is exactly
//! `sha256:<hex>`, no newline. The same check (`check_pack`) runs on the builder's input,
//! so a pack that would not serve is refused there, and on the registry root after a
//! restore.

mod serves;
mod storage;

use crate::error::Result;
use crate::rules;
pub use serves::{check_pack, hex_of, Descriptor, ManifestJson};
pub use storage::{DirStorage, TarStorage};

pub const V2: &str = "docker/registry/v2/";
/// Blobs up to this size are kept in memory when a pack is read from a tar stream:
/// manifests and configs are a few KiB.
const SMALL_BLOB: u64 = 4 << 20;

/// Read access to a registry storage tree, wherever it lies.
pub trait Storage {
    /// Paths (relative to `docker/registry/v2/`) of every link file under `repositories/`.
    fn link_paths(&self) -> Result<Vec<String>>;
    fn read_link(&self, path: &str) -> Result<Option<Vec<u8>>>;
    /// The SHA-256 (hex) of blob `hex`'s data, if the blob exists.
    fn blob_digest(&self, hex: &str) -> Result<Option<String>>;
    fn blob_content(&self, hex: &str) -> Result<Option<Vec<u8>>>;
    /// Every blob of the tree, for the check that every blob matches its name.
    fn all_blobs(&self) -> Result<Vec<String>>;
}

/// A blob's data file, relative to `docker/registry/v2/`.
pub fn blob_path(hex: &str) -> String {
    format!("blobs/sha256/{}/{hex}/data", hex.get(..2).unwrap_or(hex))
}

/// What a path of a registry pack may be: the registry's own layout, nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackEntry {
    Dir,
    File,
}

/// Whether `rel` (relative to the pack's root, `./` stripped) has a place in a registry's
/// storage tree, and as what: `docker/registry/v2/` and below it `blobs/sha256/XX/HEX/data`
/// and the link files of `repositories/NAME/{_layers,_manifests}`, with repository names,
/// tags and digests of the registry's grammar. `None`: it has no place there.
pub fn pack_entry(rel: &str) -> Option<PackEntry> {
    use PackEntry::{Dir, File};
    let rel = rel.trim_start_matches("./").trim_end_matches('/');
    let parts: Vec<&str> = if rel.is_empty() || rel == "." { Vec::new() } else { rel.split('/').collect() };
    let prefix = ["docker", "registry", "v2"];
    let n = parts.len().min(3);
    if parts[..n] != prefix[..n] {
        return None;
    }
    if parts.len() <= 3 {
        return Some(Dir);
    }
    let rest = &parts[3..];
    let hex = |h: &str| rules::is_sha256_hex(h);
    match rest {
        ["blobs"] | ["blobs", "sha256"] => Some(Dir),
        ["blobs", "sha256", xx] if xx.len() == 2 && xx.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) => Some(Dir),
        ["blobs", "sha256", xx, h] if hex(h) && h.starts_with(xx) => Some(Dir),
        ["blobs", "sha256", xx, h, "data"] if hex(h) && h.starts_with(xx) => Some(File),
        ["repositories"] => Some(Dir),
        ["repositories", repo @ ..] => {
            let split = repo.iter().position(|p| p.starts_with('_')).unwrap_or(repo.len());
            let (name, tail) = repo.split_at(split);
            if !name.iter().all(|p| rules::is_repository_name(p)) {
                return None;
            }
            if tail.is_empty() {
                return Some(Dir);
            }
            if name.is_empty() {
                return None;
            }
            match tail {
                ["_layers"]
                | ["_layers", "sha256"]
                | ["_manifests"]
                | ["_manifests", "revisions"]
                | ["_manifests", "revisions", "sha256"] => Some(Dir),
                ["_layers", "sha256", h] | ["_manifests", "revisions", "sha256", h] if hex(h) => Some(Dir),
                ["_layers", "sha256", h, "link"] | ["_manifests", "revisions", "sha256", h, "link"] if hex(h) => Some(File),
                ["_manifests", "tags"] => Some(Dir),
                ["_manifests", "tags", tag] | ["_manifests", "tags", tag, "current" | "index"] if rules::is_tag(tag) => Some(Dir),
                ["_manifests", "tags", tag, "index", "sha256"] if rules::is_tag(tag) => Some(Dir),
                ["_manifests", "tags", tag, "index", "sha256", h] if rules::is_tag(tag) && hex(h) => Some(Dir),
                ["_manifests", "tags", tag, "current", "link"] if rules::is_tag(tag) => Some(File),
                ["_manifests", "tags", tag, "index", "sha256", h, "link"] if rules::is_tag(tag) && hex(h) => Some(File),
                // Upload sessions are not needed to serve; an empty one is tolerated.
                ["_uploads"] => Some(Dir),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Why a tar entry of a pack is refused, if it is: not a regular file or directory, or
/// a path with no place in a registry's storage tree (as a file where a file goes, a
/// directory where a directory goes).
pub fn unsafe_pack_entry(rel: &str, kind: tar::EntryType) -> Option<String> {
    let shown = rules::printable(rel, 200);
    let wanted = match kind {
        tar::EntryType::Regular | tar::EntryType::Continuous => PackEntry::File,
        tar::EntryType::Directory => PackEntry::Dir,
        _ => return Some(format!("'{shown}' is neither a regular file nor a directory: a registry pack holds only those")),
    };
    match pack_entry(rel) {
        Some(found) if found == wanted => None,
        Some(_) => Some(format!("'{shown}' is a {} where the registry keeps a {}", kind_word(wanted), kind_word(pack_entry(rel)?))),
        None => Some(format!(
            "'{shown}' has no place in a registry's storage (docker/registry/v2/{{blobs,repositories}} with the registry's own names)"
        )),
    }
}

fn kind_word(kind: PackEntry) -> &'static str {
    match kind {
        PackEntry::Dir => "directory",
        PackEntry::File => "file",
    }
}

#[cfg(test)]
mod tests;
