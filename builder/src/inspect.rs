//! What the builder records about a member beyond its bytes: the images of an image
//! archive, the repositories and tags of a registry pack. A member that is not what its
//! kind says is refused here, at build time, not discovered in the field.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use airbin_stub::error::{Error, Result};
use airbin_stub::format::digest::to_hex;
use airbin_stub::format::registry_pack::{check_pack, DirStorage, TarStorage};
use airbin_stub::format::rules;
use airbin_stub::format::ImageRecord;
use airbin_stub::format::MemberKind;
use airbin_stub::format::RegistryPackRecord;

use crate::source::{open_tarball, Source};

#[derive(Default)]
pub struct Details {
    pub images: Vec<ImageRecord>,
    pub registry: Option<RegistryPackRecord>,
}

pub fn inspect(kind: MemberKind, member: &str, source: &Source) -> Result<Details> {
    match kind {
        MemberKind::Image => Ok(Details { images: image_archive(member, source.path())?, registry: None }),
        MemberKind::RegistryPack => Ok(Details { images: Vec::new(), registry: Some(registry_pack(member, source)?) }),
        MemberKind::Tool | MemberKind::ConfigSample | MemberKind::File => Ok(Details::default()),
    }
}

/// One entry of a docker-archive `manifest.json`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveManifest {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

/// An OCI image layout's `index.json`.
#[derive(Deserialize)]
struct OciIndex {
    manifests: Vec<OciDescriptor>,
}

#[derive(Deserialize)]
struct OciDescriptor {
    digest: String,
    #[serde(default)]
    annotations: HashMap<String, String>,
}

#[derive(Deserialize)]
struct OciManifest {
    config: OciDescriptor,
}

fn normalize(path: &Path) -> String {
    path.to_string_lossy().trim_start_matches("./").to_string()
}

/// Reads an image archive (`docker save`: docker-archive, or the OCI layout newer
/// Docker writes) and returns every image with its ID and tags.
fn image_archive(member: &str, path: &Path) -> Result<Vec<ImageRecord>> {
    let refuse = |why: String| Error::usage(format!("member {member}: {} {why}", path.display()));
    // First pass: the small JSON files and the names of all entries.
    let mut small: HashMap<String, Vec<u8>> = HashMap::new();
    let mut kept = 0u64;
    let mut names = Vec::new();
    let mut archive = tar::Archive::new(airbin_stub::format::tarsafe::BoundedHeaders::new(open_tarball(path)?));
    for entry in
        archive.entries().map_err(|e| refuse(format!("is not a tar archive ({e}); an image member is what `docker save` writes")))?
    {
        let mut entry = entry.map_err(|e| refuse(format!("is not a readable tar archive ({e})")))?;
        let name = normalize(&entry.path().map_err(|e| refuse(e.to_string()))?);
        // Only the small JSON files matter (manifest.json, index.json, configs, OCI
        // manifests): kept within a bound, so a hostile archive cannot exhaust memory.
        let json_like = name.ends_with(".json") || name.starts_with("blobs/") || !name.contains('/');
        if entry.size() <= 4 << 20 && entry.header().entry_type().is_file() && json_like {
            kept += entry.size();
            if kept > 256 << 20 {
                return Err(refuse("has more than 256 MiB of small files at its top; it is not what `docker save` writes".into()));
            }
            let mut content = Vec::new();
            entry.read_to_end(&mut content).map_err(|e| refuse(e.to_string()))?;
            small.insert(name.clone(), content);
        }
        names.push(name);
    }
    let bad_json = |file: &str, e: serde_json::Error| refuse(format!("has a {file} that is not what docker writes ({e})"));

    if let Some(raw) = small.get("manifest.json") {
        let manifests: Vec<ArchiveManifest> = serde_json::from_slice(raw).map_err(|e| bad_json("manifest.json", e))?;
        if manifests.is_empty() {
            return Err(refuse("holds no image (manifest.json is empty)".into()));
        }
        let mut images = Vec::new();
        for manifest in manifests {
            let config = small
                .get(manifest.config.trim_start_matches("./"))
                .ok_or_else(|| refuse(format!("lacks the config {} that manifest.json names", manifest.config)))?;
            for layer in &manifest.layers {
                if !names.iter().any(|n| n == layer.trim_start_matches("./")) {
                    return Err(refuse(format!("lacks the layer {layer} that manifest.json names")));
                }
            }
            images.push(ImageRecord {
                id: format!("sha256:{}", to_hex(&Sha256::digest(config))),
                tags: manifest.repo_tags.unwrap_or_default(),
            });
        }
        return checked_references(images, &refuse);
    }

    if let Some(raw) = small.get("index.json") {
        let index: OciIndex = serde_json::from_slice(raw).map_err(|e| bad_json("index.json", e))?;
        let mut images = Vec::new();
        for descriptor in index.manifests {
            let hex = descriptor.digest.trim_start_matches("sha256:");
            let blob = small
                .get(&format!("blobs/sha256/{hex}"))
                .ok_or_else(|| refuse(format!("lacks the manifest blob {}", descriptor.digest)))?;
            let manifest: OciManifest = serde_json::from_slice(blob).map_err(|e| bad_json("manifest blob", e))?;
            // Docker writes the full name for containerd; the OCI ref name is often the
            // tag alone ("2.7.3"), which names no image: then the image is known by ID only.
            let tag = descriptor
                .annotations
                .get("io.containerd.image.name")
                .or_else(|| descriptor.annotations.get("org.opencontainers.image.ref.name").filter(|name| name.contains(':')));
            images.push(ImageRecord { id: manifest.config.digest, tags: tag.cloned().into_iter().collect() });
        }
        return checked_references(images, &refuse);
    }
    Err(refuse(
        "is not an image archive: it has no manifest.json or index.json at its top; make it with `docker save -o FILE IMAGE...`".into(),
    ))
}

/// Every tag must be a reference of the Docker grammar, and every ID a SHA-256: they
/// reach the engine's command line and API at install time.
fn checked_references(images: Vec<ImageRecord>, refuse: &dyn Fn(String) -> Error) -> Result<Vec<ImageRecord>> {
    for image in &images {
        if !rules::is_digest(&image.id) {
            return Err(refuse(format!("has an image whose ID '{}' is not sha256:<64 hex digits>", rules::printable(&image.id, 100))));
        }
        for tag in &image.tags {
            if !rules::is_image_reference(tag) {
                return Err(refuse(format!(
                    "tags an image '{}', which is not a Docker image reference (name[:tag], lowercase path components); retag it and save it again",
                    rules::printable(tag, 200)
                )));
            }
        }
    }
    Ok(images)
}

fn registry_pack(member: &str, source: &Source) -> Result<RegistryPackRecord> {
    let path = source.path();
    let record = match source {
        Source::Dir { root, .. } => {
            if !root.join("docker/registry/v2").is_dir() {
                return Err(Error::usage(format!(
                    "member {member}: {} is not a registry root: it has no docker/registry/v2 directory; give the registry's rootdirectory",
                    root.display()
                )));
            }
            check_pack(&DirStorage::new(root), None)
        }
        _ => check_pack(&TarStorage::read(member, open_tarball(path)?)?, None),
    };
    record.map_err(|why| Error::usage(format!("member {member}: the registry pack {} would not serve: {why}", path.display())))
}
