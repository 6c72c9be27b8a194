//! The OCI image layout: `index.json` names manifests (or image indexes, for a
//! multi-platform image), which name a config and layers, all under `blobs/sha256/`.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;

use super::{bad_json, check_config_arch, ArchiveImage, ImageArchive, ImageSubset, Pass, ReadOptions};
use crate::error::{Error, Result};

/// An OCI image layout's `index.json`, or an image index blob (a multi-platform image).
#[derive(Deserialize)]
struct OciIndex {
    manifests: Vec<Descriptor>,
}

#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
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
struct Manifest {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
    /// Present in an image index blob, which has `manifests` instead of a config.
    #[serde(default)]
    media_type: String,
}

const INDEX_TYPES: [&str; 2] = ["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"];

fn blob_name(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

pub(super) fn images(pass: &Pass, options: &ReadOptions, refuse: &dyn Fn(String) -> Error) -> Result<ImageArchive> {
    let raw = &pass.json["index.json"];
    let index: OciIndex = serde_json::from_slice(raw).map_err(|e| bad_json("index.json", e, refuse))?;
    if index.manifests.is_empty() {
        return Err(refuse("holds no image (index.json names none)".into()));
    }
    let blob = |digest: &str| blob_of(pass, digest, refuse);
    let mut images = Vec::new();
    let mut chosen = Vec::new();
    let mut multi_platform = false;
    for descriptor in index.manifests {
        let tag = tag_of(&descriptor);
        let named = blob(&descriptor.digest)?;
        let (manifest_descriptor, manifest) = match parse_manifest(named) {
            Ok(manifest) => (descriptor.clone(), manifest),
            Err(e) if !is_index(&descriptor.media_type, named) => return Err(bad_json("manifest blob", e, refuse)),
            Err(_) => {
                // A multi-platform image: the bundle carries its one platform.
                multi_platform = true;
                one_platform(&descriptor, named, tag.as_deref(), options.arch, pass, refuse)?
            }
        };
        let image = tag.clone().unwrap_or_else(|| manifest.config.digest.clone());
        let config = blob(&manifest.config.digest)?;
        check_config_arch(config, &image, options.arch, refuse)?;
        let layers = manifest
            .layers
            .iter()
            .map(|layer| {
                pass.layer(&blob_name(&layer.digest), &|| refuse(format!("lacks the layer {} of the image {image}", layer.digest)))
            })
            .collect::<Result<Vec<_>>>()?;
        images.push(ArchiveImage { id: manifest.config.digest.clone(), tags: tag.into_iter().collect(), config: config.clone(), layers });
        chosen.push((manifest_descriptor, manifest));
    }
    let subset = multi_platform.then(|| platform_subset(raw, &chosen)).transpose().map_err(|e| bad_json("index.json", e, refuse))?;
    Ok(ImageArchive { images, subset })
}

/// Docker writes the full name for containerd; the OCI ref name is often the tag alone
/// ("2.7.3"), which names no image: then the image is known by ID only.
fn tag_of(descriptor: &Descriptor) -> Option<String> {
    let annotations = &descriptor.annotations;
    annotations
        .get("io.containerd.image.name")
        .or_else(|| annotations.get("org.opencontainers.image.ref.name").filter(|name| name.contains(':')))
        .cloned()
}

/// The linux/`arch` manifest of an image index blob, with the index's names on it.
fn one_platform(
    descriptor: &Descriptor,
    index_blob: &[u8],
    tag: Option<&str>,
    arch: &str,
    pass: &Pass,
    refuse: &dyn Fn(String) -> Error,
) -> Result<(Descriptor, Manifest)> {
    let platforms: OciIndex = serde_json::from_slice(index_blob).map_err(|e| bad_json("image index blob", e, refuse))?;
    let name = tag.map_or_else(|| descriptor.digest.clone(), str::to_string);
    let mut chosen = pick_platform(&platforms.manifests, arch).cloned().ok_or_else(|| {
        let offered: Vec<String> = platforms.manifests.iter().filter_map(|m| m.platform.as_ref()).map(Platform::describe).collect();
        refuse(format!(
            "holds the multi-platform image {name} without linux/{arch} (it has {}): pull that platform too \
             (docker pull --platform linux/{arch} ...) and save again, or build the bundle for one it has (--arch)",
            if offered.is_empty() { "no platforms named".to_string() } else { offered.join(", ") }
        ))
    })?;
    chosen.annotations.extend(descriptor.annotations.clone());
    let manifest = parse_manifest(blob_of(pass, &chosen.digest, refuse)?).map_err(|e| bad_json("manifest blob", e, refuse))?;
    Ok((chosen, manifest))
}

fn blob_of<'p>(pass: &'p Pass, digest: &str, refuse: &dyn Fn(String) -> Error) -> Result<&'p Vec<u8>> {
    pass.json.get(&blob_name(digest)).ok_or_else(|| refuse(format!("lacks the blob {digest} that its index names")))
}

fn parse_manifest(blob: &[u8]) -> serde_json::Result<Manifest> {
    let manifest: Manifest = serde_json::from_slice(blob)?;
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
fn pick_platform<'a>(manifests: &'a [Descriptor], arch: &str) -> Option<&'a Descriptor> {
    manifests.iter().find(|m| m.platform.as_ref().is_some_and(|p| p.os == "linux" && crate::arch::canonical(&p.architecture) == Some(arch)))
}

/// The archive cut down to the chosen manifests: an `index.json` that names them (with
/// the image index's names on them) and the blobs they reach.
fn platform_subset(raw_index: &[u8], chosen: &[(Descriptor, Manifest)]) -> serde_json::Result<ImageSubset> {
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
