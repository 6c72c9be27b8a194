//! The check that a storage tree serves every tag it holds: links as the registry
//! reads them, every manifest (through indexes, every platform's), config and layer
//! linked in its repository, and every blob there with the digest it is named by.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Deserialize;

use super::{blob_path, Storage, V2};
use crate::records::{RegistryPackRecord, RepositoryRecord, TagRecord};

/// The parts of a manifest or index that say what else must be there.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestJson {
    schema_version: Option<u32>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// A manifest list or OCI index.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
pub struct Descriptor {
    pub digest: String,
    #[serde(default)]
    pub urls: Vec<String>,
}

pub fn hex_of(digest: &str) -> Option<&str> {
    digest.strip_prefix("sha256:").filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
}

/// What a tree's links say, per repository: tag → manifest, revisions, layers.
#[derive(Default)]
struct Links {
    tags: BTreeMap<String, BTreeMap<String, String>>,
    revisions: BTreeMap<String, BTreeSet<String>>,
    layers: BTreeMap<String, BTreeSet<String>>,
}

/// Blobs checked already (a layer shared by images is read once).
type Checked = HashMap<String, ()>;

/// Checks that the tree would serve every tag of its repositories (or of `only`, for a
/// registry root that holds more than the pack) and returns what it holds.
pub fn check_pack(storage: &dyn Storage, only: Option<&RegistryPackRecord>) -> std::result::Result<RegistryPackRecord, String> {
    let links = read_links(storage, only)?;
    if let Some(only) = only {
        check_only(only, &links)?;
    }
    if links.tags.is_empty() {
        return Err(format!("the pack has no tags: no {V2}repositories/<name>/_manifests/tags/<tag>/current/link"));
    }
    let mut checked = Checked::new();
    for (repo, repo_tags) in &links.tags {
        check_repository(storage, repo, repo_tags, &links, &mut checked)?;
    }
    let blob_count = match only {
        None => {
            let all = storage.all_blobs().map_err(|e| e.message)?;
            for hex in &all {
                check_blob(storage, hex, "blob", &mut checked)?;
            }
            all.len() as u64
        }
        Some(_) => checked.len() as u64,
    };
    let repositories = links
        .tags
        .into_iter()
        .map(|(name, repo_tags)| RepositoryRecord {
            name,
            tags: repo_tags.into_iter().map(|(tag, hex)| TagRecord { tag, manifest: format!("sha256:{hex}") }).collect(),
        })
        .collect();
    Ok(RegistryPackRecord { repositories, blobs: blob_count, omitted: Vec::new() })
}

/// Every link of the tree (of `only`'s repositories), each exactly `sha256:<hex>` and,
/// for revisions and layers, naming its own directory.
fn read_links(storage: &dyn Storage, only: Option<&RegistryPackRecord>) -> std::result::Result<Links, String> {
    let mut links = Links::default();
    for path in storage.link_paths().map_err(|e| e.message)? {
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
        let content = storage.read_link(&path).map_err(|e| e.message)?.unwrap_or_default();
        let text = String::from_utf8_lossy(&content);
        let Some(hex) = hex_of(&text) else {
            return Err(format!(
                "{V2}{path} holds {text:?}, not exactly 'sha256:<64 hex digits>' (a trailing newline makes the registry answer 500)"
            ));
        };
        match kind {
            "tag" => drop(links.tags.entry(repo.to_string()).or_default().insert(name, hex.to_string())),
            "revision" | "layer" if name != hex => {
                return Err(format!("{V2}{path} names sha256:{hex}, not the sha256:{name} of its directory"))
            }
            "revision" => drop(links.revisions.entry(repo.to_string()).or_default().insert(name)),
            _ => drop(links.layers.entry(repo.to_string()).or_default().insert(name)),
        }
    }
    Ok(links)
}

/// Every tag `only` records points where it did.
fn check_only(only: &RegistryPackRecord, links: &Links) -> std::result::Result<(), String> {
    for repo in &only.repositories {
        for tag in &repo.tags {
            let found = links.tags.get(&repo.name).and_then(|t| t.get(&tag.tag));
            if found.map(|hex| format!("sha256:{hex}")).as_deref() != Some(tag.manifest.as_str()) {
                return Err(format!("{}:{} does not point at {} in the registry root", repo.name, tag.tag, tag.manifest));
            }
        }
    }
    Ok(())
}

/// Every tagged manifest of `repo`, and through indexes every manifest they list: each
/// with its revision link, its blob, and its config and layers linked and present.
fn check_repository(
    storage: &dyn Storage,
    repo: &str,
    repo_tags: &BTreeMap<String, String>,
    links: &Links,
    checked: &mut Checked,
) -> std::result::Result<(), String> {
    let (no_revisions, no_layers) = (BTreeSet::new(), BTreeSet::new());
    let repo_revisions = links.revisions.get(repo).unwrap_or(&no_revisions);
    let repo_layers = links.layers.get(repo).unwrap_or(&no_layers);
    let mut pending: Vec<(String, String)> = repo_tags.iter().map(|(tag, hex)| (format!("{repo}:{tag}"), hex.clone())).collect();
    let mut seen = BTreeSet::new();
    while let Some((what, hex)) = pending.pop() {
        if !seen.insert(hex.clone()) {
            continue;
        }
        if !repo_revisions.contains(&hex) {
            return Err(format!("{what}: manifest sha256:{hex} has no revision link ({V2}repositories/{repo}/_manifests/revisions/sha256/{hex}/link is missing)"));
        }
        check_blob(storage, &hex, &format!("{what}: manifest"), checked)?;
        let content = storage
            .blob_content(&hex)
            .map_err(|e| e.message)?
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
            check_blob(storage, blob_hex, &format!("{what}: {role}"), checked)?;
        }
    }
    Ok(())
}

/// The blob `hex` is there, and its content has that digest.
fn check_blob(storage: &dyn Storage, hex: &str, what: &str, checked: &mut Checked) -> std::result::Result<(), String> {
    if checked.contains_key(hex) {
        return Ok(());
    }
    match storage.blob_digest(hex).map_err(|e| e.message)? {
        None => Err(format!("{what} sha256:{hex} has no blob ({V2}{} is missing)", blob_path(hex))),
        Some(actual) if actual != hex => Err(format!("the blob {V2}{} has the SHA-256 {actual}, not its name", blob_path(hex))),
        Some(_) => {
            checked.insert(hex.to_string(), ());
            Ok(())
        }
    }
}
