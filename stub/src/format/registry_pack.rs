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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::digest::to_hex;
use super::records::{RegistryPackRecord, RepositoryRecord, TagRecord};
use super::{rules, tarsafe};
use crate::error::{Error, IoContext, Result};
use crate::interrupt;

pub(crate) const V2: &str = "docker/registry/v2/";
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
pub(crate) fn blob_path(hex: &str) -> String {
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

/// A registry root on disk; blobs are hashed only when asked for.
pub struct DirStorage {
    pub v2: PathBuf,
    /// Digests of blob files already known, by name: a restore hashed what it wrote while
    /// it wrote it, and need not read it back.
    known_digests: HashMap<String, String>,
}

impl DirStorage {
    pub fn new(root: &Path) -> DirStorage {
        DirStorage::with_known_digests(root, HashMap::new())
    }

    pub fn with_known_digests(root: &Path, known_digests: HashMap<String, String>) -> DirStorage {
        DirStorage { v2: root.join(V2), known_digests }
    }
}

fn collect_links(dir: &Path, rel: &str, out: &mut Vec<String>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(e, "reading", dir)),
    };
    for entry in entries {
        let entry = entry.ctx("reading", dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let child_rel = format!("{rel}/{name}");
        let kind = entry.file_type().ctx("reading", &entry.path())?;
        if kind.is_dir() {
            // Upload sessions are not needed to serve.
            if name != "_uploads" {
                collect_links(&entry.path(), &child_rel, out)?;
            }
        } else if name == "link" {
            out.push(child_rel);
        }
    }
    Ok(())
}

impl Storage for DirStorage {
    fn link_paths(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        collect_links(&self.v2.join("repositories"), "repositories", &mut out)?;
        out.sort();
        Ok(out)
    }
    fn read_link(&self, path: &str) -> Result<Option<Vec<u8>>> {
        read_optional(&self.v2.join(path))
    }
    fn blob_digest(&self, hex: &str) -> Result<Option<String>> {
        let path = self.v2.join(blob_path(hex));
        if let Some(known) = self.known_digests.get(hex) {
            return Ok(path.is_file().then(|| known.clone()));
        }
        let mut file = match fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(e, "reading", &path)),
        };
        let mut hasher = Sha256::new();
        io::copy(&mut file, &mut hasher).ctx("reading", &path)?;
        Ok(Some(to_hex(&hasher.finalize())))
    }
    fn blob_content(&self, hex: &str) -> Result<Option<Vec<u8>>> {
        read_optional(&self.v2.join(blob_path(hex)))
    }
    fn all_blobs(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let sha = self.v2.join("blobs/sha256");
        let Ok(prefixes) = fs::read_dir(&sha) else { return Ok(out) };
        for prefix in prefixes.flatten() {
            for blob in fs::read_dir(prefix.path()).ctx("reading", &prefix.path())?.flatten() {
                if blob.path().join("data").is_file() {
                    out.push(blob.file_name().to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(e, "reading", path)),
    }
}

/// A pack read from a tar stream in one pass: links and small blobs kept, every blob hashed.
#[derive(Default)]
pub struct TarStorage {
    links: BTreeMap<String, Vec<u8>>,
    blobs: HashMap<String, (String, Option<Vec<u8>>)>,
}

impl TarStorage {
    /// Reads a pack's tar stream; `member` names it in errors. Every entry passes the
    /// unpack-safety checks.
    pub fn read<R: Read>(member: &str, reader: R) -> Result<TarStorage> {
        TarStorage::read_keeping(member, reader, SMALL_BLOB)
    }

    /// The SHA-256 of every blob in a pack's tar stream, by the blob's name; no content
    /// is kept, so memory stays flat however many blobs the pack has.
    pub fn blob_digests<R: Read>(member: &str, reader: R) -> Result<HashMap<String, String>> {
        let storage = TarStorage::read_keeping(member, tarsafe::BoundedHeaders::new(reader), 0)?;
        Ok(storage.blobs.into_iter().map(|(hex, (digest, _))| (hex, digest)).collect())
    }

    /// Blobs up to `keep` bytes are kept in memory (`keep` 0: none).
    fn read_keeping<R: Read>(member: &str, reader: R, keep: u64) -> Result<TarStorage> {
        let mut storage = TarStorage::default();
        let mut archive = tar::Archive::new(reader);
        let unreadable = |e: io::Error| Error::usage(format!("member {member}: the registry pack is not a readable tar archive ({e})"));
        for entry in archive.entries().map_err(unreadable)? {
            interrupt::check()?;
            let mut entry = entry.map_err(unreadable)?;
            tarsafe::check_entry(member, &entry)?;
            let path = entry.path().map_err(unreadable)?.to_string_lossy().trim_start_matches("./").to_string();
            if let Some(why) = unsafe_pack_entry(&path, entry.header().entry_type()) {
                return Err(Error::usage(format!("member {member}: {why}")));
            }
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let Some(rel) = path.strip_prefix(V2) else { continue };
            if rel.starts_with("repositories/") && rel.ends_with("/link") {
                let mut content = Vec::new();
                entry.by_ref().take(4096).read_to_end(&mut content).map_err(unreadable)?;
                storage.links.insert(rel.to_string(), content);
            } else if let Some(hex) =
                rel.strip_prefix("blobs/sha256/").and_then(|r| r.strip_suffix("/data")).and_then(|r| r.split('/').nth(1))
            {
                let small = keep > 0 && entry.size() <= keep;
                let mut hasher = Sha256::new();
                let mut kept = Vec::new();
                if small {
                    entry.read_to_end(&mut kept).map_err(unreadable)?;
                    hasher.update(&kept);
                } else {
                    io::copy(&mut entry, &mut hasher).map_err(unreadable)?;
                }
                storage.blobs.insert(hex.to_string(), (to_hex(&hasher.finalize()), small.then_some(kept)));
            }
        }
        Ok(storage)
    }
}

impl Storage for TarStorage {
    fn link_paths(&self) -> Result<Vec<String>> {
        Ok(self.links.keys().cloned().collect())
    }
    fn read_link(&self, path: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.links.get(path).cloned())
    }
    fn blob_digest(&self, hex: &str) -> Result<Option<String>> {
        Ok(self.blobs.get(hex).map(|(digest, _)| digest.clone()))
    }
    fn blob_content(&self, hex: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.blobs.get(hex).and_then(|(_, content)| content.clone()))
    }
    fn all_blobs(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = self.blobs.keys().cloned().collect();
        out.sort();
        Ok(out)
    }
}

/// The parts of a manifest or index that say what else must be there.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ManifestJson {
    schema_version: Option<u32>,
    #[serde(default)]
    pub(crate) config: Option<Descriptor>,
    #[serde(default)]
    pub(crate) layers: Vec<Descriptor>,
    /// A manifest list or OCI index.
    #[serde(default)]
    pub(crate) manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
pub(crate) struct Descriptor {
    pub(crate) digest: String,
    #[serde(default)]
    pub(crate) urls: Vec<String>,
}

pub(crate) fn hex_of(digest: &str) -> Option<&str> {
    digest.strip_prefix("sha256:").filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
}

/// Checks that the tree would serve every tag of its repositories (or of `only`, for a
/// registry root that holds more than the pack) and returns what it holds.
pub fn check_pack(storage: &dyn Storage, only: Option<&RegistryPackRecord>) -> std::result::Result<RegistryPackRecord, String> {
    let io_err = |e: Error| e.message;
    let mut tags: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut revisions: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut layers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();

    for path in storage.link_paths().map_err(io_err)? {
        let rest = path.strip_prefix("repositories/").unwrap_or(&path);
        let (repo, kind, name) = if let Some((repo, tail)) = rest.split_once("/_manifests/tags/") {
            match tail.strip_suffix("/current/link") {
                Some(tag) => (repo, "tag", tag.to_string()),
                None => continue, // tags/<tag>/index/...: history, not needed to serve
            }
        } else if let Some((repo, tail)) = rest.split_once("/_manifests/revisions/sha256/") {
            (repo, "revision", tail.trim_end_matches("/link").to_string())
        } else if let Some((repo, tail)) = rest.split_once("/_layers/sha256/") {
            (repo, "layer", tail.trim_end_matches("/link").to_string())
        } else {
            continue;
        };
        if only.is_some_and(|o| !o.repositories.iter().any(|r| r.name == repo)) {
            continue;
        }
        let content = storage.read_link(&path).map_err(io_err)?.unwrap_or_default();
        let text = String::from_utf8_lossy(&content);
        let Some(hex) = hex_of(&text) else {
            return Err(format!(
                "{V2}{path} holds {text:?}, not exactly 'sha256:<64 hex digits>' (a trailing newline makes the registry answer 500)"
            ));
        };
        match kind {
            "tag" => drop(tags.entry(repo.to_string()).or_default().insert(name, hex.to_string())),
            "revision" | "layer" if name != hex => {
                return Err(format!("{V2}{path} names sha256:{hex}, not the sha256:{name} of its directory"))
            }
            "revision" => drop(revisions.entry(repo.to_string()).or_default().insert(name)),
            _ => drop(layers.entry(repo.to_string()).or_default().insert(name)),
        }
    }

    if let Some(only) = only {
        for repo in &only.repositories {
            for tag in &repo.tags {
                let found = tags.get(&repo.name).and_then(|t| t.get(&tag.tag));
                if found.map(|hex| format!("sha256:{hex}")).as_deref() != Some(tag.manifest.as_str()) {
                    return Err(format!("{}:{} does not point at {} in the registry root", repo.name, tag.tag, tag.manifest));
                }
            }
        }
    }
    if tags.is_empty() {
        return Err(format!("the pack has no tags: no {V2}repositories/<name>/_manifests/tags/<tag>/current/link"));
    }

    let mut checked_blobs: HashMap<String, ()> = HashMap::new();
    let check_blob = |hex: &str, what: &str, checked: &mut HashMap<String, ()>| -> std::result::Result<(), String> {
        if checked.contains_key(hex) {
            return Ok(());
        }
        match storage.blob_digest(hex).map_err(io_err)? {
            None => Err(format!("{what} sha256:{hex} has no blob ({V2}{} is missing)", blob_path(hex))),
            Some(actual) if actual != hex => Err(format!("the blob {V2}{} has the SHA-256 {actual}, not its name", blob_path(hex))),
            Some(_) => {
                checked.insert(hex.to_string(), ());
                Ok(())
            }
        }
    };

    for (repo, repo_tags) in &tags {
        let repo_revisions = revisions.get(repo).cloned().unwrap_or_default();
        let repo_layers = layers.get(repo).cloned().unwrap_or_default();
        // Every tagged manifest, and through indexes every manifest they list.
        let mut pending: Vec<(String, String)> = repo_tags.iter().map(|(tag, hex)| (format!("{repo}:{tag}"), hex.clone())).collect();
        let mut seen = BTreeSet::new();
        while let Some((what, hex)) = pending.pop() {
            if !seen.insert(hex.clone()) {
                continue;
            }
            if !repo_revisions.contains(&hex) {
                return Err(format!("{what}: manifest sha256:{hex} has no revision link ({V2}repositories/{repo}/_manifests/revisions/sha256/{hex}/link is missing)"));
            }
            check_blob(&hex, &format!("{what}: manifest"), &mut checked_blobs)?;
            let content = storage
                .blob_content(&hex)
                .map_err(io_err)?
                .ok_or_else(|| format!("{what}: manifest sha256:{hex} is too large to be a manifest"))?;
            let manifest: ManifestJson =
                serde_json::from_slice(&content).map_err(|e| format!("{what}: manifest sha256:{hex} is not valid JSON ({e})"))?;
            if manifest.schema_version == Some(1) {
                return Err(format!("{what}: schema 1 manifests are not supported; copy the image again with a current skopeo or docker"));
            }
            for child in &manifest.manifests {
                let child_hex = hex_of(&child.digest).ok_or_else(|| format!("{what}: bad digest {}", child.digest))?;
                pending.push((format!("{what} (platform manifest)"), child_hex.to_string()));
            }
            for (role, descriptor) in manifest.config.iter().map(|c| ("config", c)).chain(manifest.layers.iter().map(|l| ("layer", l))) {
                if !descriptor.urls.is_empty() {
                    continue; // a foreign layer: fetched from its URLs, not from this registry
                }
                let blob_hex = hex_of(&descriptor.digest).ok_or_else(|| format!("{what}: bad digest {}", descriptor.digest))?;
                if !repo_layers.contains(blob_hex) {
                    return Err(format!("{what}: {role} sha256:{blob_hex} has no layer link ({V2}repositories/{repo}/_layers/sha256/{blob_hex}/link is missing)"));
                }
                check_blob(blob_hex, &format!("{what}: {role}"), &mut checked_blobs)?;
            }
        }
    }
    let blob_count = if only.is_none() {
        let all = storage.all_blobs().map_err(io_err)?;
        for hex in &all {
            check_blob(hex, "blob", &mut checked_blobs)?;
        }
        all.len() as u64
    } else {
        checked_blobs.len() as u64
    };

    let repositories = tags
        .into_iter()
        .map(|(name, repo_tags)| RepositoryRecord {
            name,
            tags: repo_tags.into_iter().map(|(tag, hex)| TagRecord { tag, manifest: format!("sha256:{hex}") }).collect(),
        })
        .collect();
    Ok(RegistryPackRecord { repositories, blobs: blob_count, omitted: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(bytes: &[u8]) -> String {
        to_hex(&Sha256::digest(bytes))
    }

    /// A one-tag pack as a tar stream, with `break_it` applied to the file list first.
    fn pack(break_it: impl FnOnce(&mut BTreeMap<String, Vec<u8>>)) -> Vec<u8> {
        let layer = b"layer bytes".to_vec();
        let config = b"{\"config\":{}}".to_vec();
        let manifest = format!(
            "{{\"schemaVersion\":2,\"config\":{{\"digest\":\"sha256:{}\"}},\"layers\":[{{\"digest\":\"sha256:{}\"}}]}}",
            sha(&config),
            sha(&layer)
        )
        .into_bytes();
        let mut files = BTreeMap::new();
        for blob in [&layer, &config, &manifest] {
            let hex = sha(blob);
            files.insert(format!("{V2}{}", blob_path(&hex)), blob.clone());
        }
        let repo = format!("{V2}repositories/app");
        for hex in [sha(&layer), sha(&config)] {
            files.insert(format!("{repo}/_layers/sha256/{hex}/link"), format!("sha256:{hex}").into_bytes());
        }
        let m = sha(&manifest);
        files.insert(format!("{repo}/_manifests/revisions/sha256/{m}/link"), format!("sha256:{m}").into_bytes());
        files.insert(format!("{repo}/_manifests/tags/1.0/current/link"), format!("sha256:{m}").into_bytes());
        break_it(&mut files);
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            builder.append_data(&mut header, path, &content[..]).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn check(tar: Vec<u8>) -> std::result::Result<RegistryPackRecord, String> {
        check_pack(&TarStorage::read("pack", &tar[..]).unwrap(), None)
    }

    #[test]
    fn a_whole_pack_records_its_tags() {
        let record = check(pack(|_| {})).unwrap();
        assert_eq!(record.repositories.len(), 1);
        assert_eq!(record.repositories[0].name, "app");
        assert_eq!(record.repositories[0].tags[0].tag, "1.0");
        assert_eq!(record.blobs, 3);
    }

    #[test]
    fn a_missing_blob_is_named() {
        let err = check(pack(|files| {
            let layer = format!("{V2}{}", blob_path(&sha(b"layer bytes")));
            files.remove(&layer);
        }))
        .unwrap_err();
        assert!(err.contains("app:1.0: layer sha256:") && err.contains("has no blob"), "{err}");
    }

    #[test]
    fn a_missing_layer_link_is_named() {
        let err =
            check(pack(|files| files.retain(|path, _| !path.contains("/_layers/sha256/") || !path.contains(&sha(b"{\"config\":{}}")))))
                .unwrap_err();
        assert!(err.contains("config sha256:") && err.contains("has no layer link"), "{err}");
    }

    #[test]
    fn a_link_with_a_newline_is_refused() {
        let err = check(pack(|files| {
            for (path, content) in files.iter_mut() {
                if path.ends_with("current/link") {
                    content.push(b'\n');
                }
            }
        }))
        .unwrap_err();
        assert!(err.contains("trailing newline"), "{err}");
    }

    #[test]
    fn a_blob_that_does_not_match_its_name_is_refused() {
        let err = check(pack(|files| {
            let layer = format!("{V2}{}", blob_path(&sha(b"layer bytes")));
            files.insert(layer, b"other bytes".to_vec());
        }))
        .unwrap_err();
        assert!(err.contains("not its name"), "{err}");
    }
}
