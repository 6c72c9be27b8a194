//! What the builder records about a member beyond its bytes: the images of an image
//! archive, the repositories and tags of a registry pack. A member that is not what its
//! kind says is refused here, at build time, not discovered in the field.

use std::collections::{HashMap, HashSet};
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
    /// For a multi-platform OCI archive: the part of it that is the bundle's platform,
    /// which is what the bundle carries instead of the whole file.
    pub subset: Option<ImageSubset>,
}

/// One platform of a multi-platform OCI archive: its entries, and an `index.json` that
/// names that platform's manifests only, so every engine loads that one.
pub struct ImageSubset {
    pub index_json: Vec<u8>,
    /// The archive's entries to keep besides `index.json`: `oci-layout` and the blobs the
    /// chosen manifests reach.
    pub keep: HashSet<String>,
}

/// `arch` is the bundle's: every image must be for it.
pub fn inspect(kind: MemberKind, member: &str, source: &Source, arch: &str) -> Result<Details> {
    match kind {
        MemberKind::Image => image_archive(member, source.path(), arch),
        MemberKind::RegistryPack => Ok(Details { registry: Some(registry_pack(member, source)?), ..Details::default() }),
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

/// An OCI image layout's `index.json`, or an image index blob (a multi-platform image).
#[derive(Deserialize)]
struct OciIndex {
    manifests: Vec<OciDescriptor>,
}

#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciDescriptor {
    digest: String,
    #[serde(default)]
    media_type: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    annotations: HashMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Clone, Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    variant: String,
}

impl Platform {
    fn to_json(&self) -> serde_json::Value {
        let mut json = serde_json::json!({"architecture": self.architecture, "os": self.os});
        if !self.variant.is_empty() {
            json["variant"] = self.variant.clone().into();
        }
        json
    }

    fn describe(&self) -> String {
        let mut text = format!("{}/{}", self.os, self.architecture);
        if !self.variant.is_empty() {
            text = format!("{text}/{}", self.variant);
        }
        text
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciManifest {
    config: OciDescriptor,
    #[serde(default)]
    layers: Vec<OciDescriptor>,
    /// Present in an image index blob, which has `manifests` instead of a config.
    #[serde(default)]
    media_type: String,
}

/// What an image config says it runs on.
#[derive(Deserialize)]
struct ImageConfig {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

const INDEX_TYPES: [&str; 2] = ["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"];

/// How a message names an image: its first tag, else its ID.
fn image_name(tags: &[String], id: &str) -> String {
    tags.first().cloned().unwrap_or_else(|| id.to_string())
}

fn blob_name(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

/// Refuses an image whose config is for another arch than the bundle's.
fn check_config_arch(config: &[u8], image: &str, arch: &str, refuse: &dyn Fn(String) -> Error) -> Result<()> {
    let config: ImageConfig =
        serde_json::from_slice(config).map_err(|e| refuse(format!("has an image config for {image} that is not JSON ({e})")))?;
    let written = if config.architecture.is_empty() { "no architecture" } else { config.architecture.as_str() };
    if airbin_stub::format::arch::canonical(&config.architecture) != Some(arch) || !matches!(config.os.as_str(), "linux" | "") {
        return Err(refuse(format!(
            "holds the image {image}, whose config says {}/{written}; this bundle is for linux/{arch}: save the image for that platform \
             (docker pull --platform linux/{arch} ..., then docker save) or build the bundle for the image's arch (--arch)",
            if config.os.is_empty() { "linux" } else { &config.os }
        )));
    }
    Ok(())
}

fn normalize(path: &Path) -> String {
    path.to_string_lossy().trim_start_matches("./").to_string()
}

/// Reads an image archive (`docker save`: docker-archive, or the OCI layout newer
/// Docker writes) and returns every image with its ID and tags.
fn image_archive(member: &str, path: &Path, arch: &str) -> Result<Details> {
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
            let id = format!("sha256:{}", to_hex(&Sha256::digest(config)));
            let tags = manifest.repo_tags.unwrap_or_default();
            check_config_arch(config, &image_name(&tags, &id), arch, &refuse)?;
            images.push(ImageRecord { id, tags });
        }
        return Ok(Details { images: checked_references(images, &refuse)?, ..Details::default() });
    }

    if let Some(raw) = small.get("index.json") {
        let index: OciIndex = serde_json::from_slice(raw).map_err(|e| bad_json("index.json", e))?;
        let blob =
            |digest: &str| small.get(&blob_name(digest)).ok_or_else(|| refuse(format!("lacks the blob {digest} that its index names")));
        let mut images = Vec::new();
        let mut chosen = Vec::new();
        let mut multi_platform = false;
        for descriptor in index.manifests {
            // Docker writes the full name for containerd; the OCI ref name is often the
            // tag alone ("2.7.3"), which names no image: then the image is known by ID only.
            let tag = descriptor
                .annotations
                .get("io.containerd.image.name")
                .or_else(|| descriptor.annotations.get("org.opencontainers.image.ref.name").filter(|name| name.contains(':')))
                .cloned();
            let mut manifest_descriptor = descriptor.clone();
            let named = blob(&descriptor.digest)?;
            let manifest: OciManifest = match parse_manifest(named) {
                Ok(manifest) => manifest,
                Err(e) if !is_index(&descriptor.media_type, named) => return Err(bad_json("manifest blob", e)),
                Err(_) => {
                    // A multi-platform image: the bundle carries its one platform.
                    multi_platform = true;
                    let platforms: OciIndex = serde_json::from_slice(named).map_err(|e| bad_json("image index blob", e))?;
                    let name = tag.clone().unwrap_or_else(|| descriptor.digest.clone());
                    manifest_descriptor = pick_platform(&platforms.manifests, arch).cloned().ok_or_else(|| {
                        let offered: Vec<String> =
                            platforms.manifests.iter().filter_map(|m| m.platform.as_ref()).map(Platform::describe).collect();
                        refuse(format!(
                            "holds the multi-platform image {name} without linux/{arch} (it has {}): pull that platform too \
                             (docker pull --platform linux/{arch} ...) and save again, or build the bundle for one it has (--arch)",
                            if offered.is_empty() { "no platforms named".to_string() } else { offered.join(", ") }
                        ))
                    })?;
                    manifest_descriptor.annotations.extend(descriptor.annotations.clone());
                    parse_manifest(blob(&manifest_descriptor.digest)?).map_err(|e| bad_json("manifest blob", e))?
                }
            };
            let image = tag.clone().unwrap_or_else(|| manifest.config.digest.clone());
            check_config_arch(blob(&manifest.config.digest)?, &image, arch, &refuse)?;
            for layer in &manifest.layers {
                if !names.contains(&blob_name(&layer.digest)) {
                    return Err(refuse(format!("lacks the layer {} of the image {image}", layer.digest)));
                }
            }
            images.push(ImageRecord { id: manifest.config.digest.clone(), tags: tag.into_iter().collect() });
            chosen.push((manifest_descriptor, manifest));
        }
        let subset = multi_platform.then(|| platform_subset(raw, &chosen)).transpose().map_err(|e| bad_json("index.json", e))?;
        return Ok(Details { images: checked_references(images, &refuse)?, registry: None, subset });
    }
    Err(refuse(
        "is not an image archive: it has no manifest.json or index.json at its top; make it with `docker save -o FILE IMAGE...`".into(),
    ))
}

fn parse_manifest(blob: &[u8]) -> serde_json::Result<OciManifest> {
    let manifest: OciManifest = serde_json::from_slice(blob)?;
    if INDEX_TYPES.contains(&manifest.media_type.as_str()) {
        return Err(serde::de::Error::custom("an image index, not a manifest"));
    }
    Ok(manifest)
}

fn is_index(media_type: &str, blob: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        manifests: Option<serde_json::Value>,
    }
    INDEX_TYPES.contains(&media_type) || serde_json::from_slice::<Probe>(blob).is_ok_and(|probe| probe.manifests.is_some())
}

/// The manifest of an image index that runs on linux/`arch` (attestations, which say
/// `unknown/unknown`, never match).
fn pick_platform<'a>(manifests: &'a [OciDescriptor], arch: &str) -> Option<&'a OciDescriptor> {
    manifests.iter().find(|m| {
        m.platform.as_ref().is_some_and(|p| p.os == "linux" && airbin_stub::format::arch::canonical(&p.architecture) == Some(arch))
    })
}

/// The archive cut down to the chosen manifests: an `index.json` that names them (with
/// the image index's names on them) and the blobs they reach.
fn platform_subset(raw_index: &[u8], chosen: &[(OciDescriptor, OciManifest)]) -> serde_json::Result<ImageSubset> {
    let mut index: serde_json::Value = serde_json::from_slice(raw_index)?;
    let mut keep = HashSet::from(["oci-layout".to_string()]);
    let mut manifests = Vec::new();
    for (descriptor, manifest) in chosen {
        keep.insert(blob_name(&descriptor.digest));
        keep.insert(blob_name(&manifest.config.digest));
        keep.extend(manifest.layers.iter().map(|layer| blob_name(&layer.digest)));
        manifests.push(serde_json::json!({
            "mediaType": descriptor.media_type,
            "digest": descriptor.digest,
            "size": descriptor.size,
            "platform": descriptor.platform.as_ref().map(Platform::to_json),
            "annotations": descriptor.annotations,
        }));
    }
    index["manifests"] = serde_json::Value::Array(manifests);
    Ok(ImageSubset { index_json: serde_json::to_vec(&index)?, keep })
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
