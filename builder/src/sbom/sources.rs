//! Where an image's layers are: in an image archive (`docker save`, docker-archive or
//! OCI layout, read by the format crate's one reader for the layout) or in a registry
//! pack (a directory, or a tarball of one), whose tags point at manifests that name
//! their layers' blobs.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use serde::Deserialize;

use airbin_format::error::{Error, IoContext, Result};
use airbin_format::image_archive::{self, ReadOptions};
use airbin_format::registry_pack::blob_path;
use airbin_format::RegistryPackRecord;

use super::layers::{scan_layer, scan_outer, LayerScan, Scanned};
use super::{packages, ImageFacts};
use crate::assemble::source::{open_tarball, Source};

/// The images of an archive, each with the packages of its layers.
pub(crate) fn image_archive(member: &str, path: &Path, arch: &str) -> Result<Vec<ImageFacts>> {
    let refuse = |why: String| Error::usage(format!("member {member}: {} {why}", path.display()));
    let archive = image_archive::read(open_tarball(path)?, &ReadOptions { arch, digest_layers: false }, &refuse)?;
    let wanted: std::collections::HashSet<String> = archive.images.iter().flat_map(|i| i.layers.iter().map(|l| l.path.clone())).collect();
    let scanned = scan_outer(open_tarball(path)?, &|p| wanted.contains(p), &refuse)?;
    let mut out = Vec::new();
    for image in archive.images {
        let diff_ids = diff_ids(&image.config);
        let layers: Vec<String> = image
            .layers
            .iter()
            .enumerate()
            .map(|(i, layer)| match layer.path.strip_prefix("blobs/sha256/") {
                Some(hex) => format!("sha256:{hex}"),
                None => diff_ids.get(i).cloned().unwrap_or_else(|| layer.path.clone()),
            })
            .collect();
        // A layer that is no tar stream counts as empty, so the others keep their places.
        let empty = LayerScan::default();
        let scans: Vec<&LayerScan> = image.layers.iter().map(|l| scanned.layers.get(&l.path).unwrap_or(&empty)).collect();
        let mut found = packages::of_image(&scans);
        let unread = image.layers.iter().filter(|l| !scanned.layers.contains_key(&l.path)).count();
        if unread > 0 {
            found.not_read.push(format!("{unread} layer(s) that are no tar stream"));
        }
        out.push(ImageFacts { member: member.to_string(), digest: image.id, tags: image.tags, layers, found });
    }
    Ok(out)
}

fn diff_ids(config: &[u8]) -> Vec<String> {
    #[derive(Deserialize)]
    struct Config {
        rootfs: Option<RootFs>,
    }
    #[derive(Deserialize)]
    struct RootFs {
        #[serde(default)]
        diff_ids: Vec<String>,
    }
    serde_json::from_slice::<Config>(config).ok().and_then(|c| c.rootfs).map(|r| r.diff_ids).unwrap_or_default()
}

/// A manifest, or an index of them (a multi-platform image).
#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    architecture: String,
}

/// A registry pack's blobs: read on demand from a directory, or all at once from a
/// tarball's one pass.
enum Blobs {
    Dir(std::path::PathBuf),
    Scanned(HashMap<String, LayerScan>, HashMap<String, Vec<u8>>),
}

impl Blobs {
    fn json(&self, hex: &str) -> Option<Vec<u8>> {
        match self {
            Blobs::Dir(v2) => std::fs::read(v2.join(blob_path(hex))).ok(),
            Blobs::Scanned(_, json) => json.get(hex).cloned(),
        }
    }

    fn layer(&self, hex: &str) -> Result<Option<LayerScan>> {
        match self {
            Blobs::Dir(v2) => {
                let path = v2.join(blob_path(hex));
                let Ok(file) = File::open(&path) else { return Ok(None) };
                scan_layer(&mut BufReader::with_capacity(1 << 20, file)).ctx("reading", &path)
            }
            Blobs::Scanned(layers, _) => Ok(layers.get(hex).cloned()),
        }
    }
}

/// The hex digest of a blob path (`…/blobs/sha256/XX/HEX/data`).
fn blob_hex(path: &str) -> Option<&str> {
    let rest = path.strip_suffix("/data")?;
    let (_, hex) = rest.rsplit_once('/')?;
    rest.contains("blobs/sha256/").then_some(hex)
}

/// A pack's entries keyed by their blob's hex digest.
fn by_hex<V>(map: HashMap<String, V>) -> HashMap<String, V> {
    map.into_iter().filter_map(|(path, value)| Some((blob_hex(&path)?.to_string(), value))).collect()
}

/// The images of a registry pack: one for each manifest its tags point at.
pub(crate) fn registry_pack(member: &str, source: &Source, record: &RegistryPackRecord, arch: &str) -> Result<Vec<ImageFacts>> {
    let blobs = match source {
        Source::Dir { root, .. } => Blobs::Dir(root.join("docker/registry/v2")),
        other => {
            let path = other.path();
            let refuse = |why: String| Error::usage(format!("member {member}: {} {why}", path.display()));
            let Scanned { layers, json } = scan_outer(open_tarball(path)?, &|p| blob_hex(p).is_some(), &refuse)?;
            Blobs::Scanned(by_hex(layers), by_hex(json))
        }
    };
    // Tags that point at one manifest are one image.
    let mut images: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for repository in &record.repositories {
        for tag in &repository.tags {
            images.entry((repository.name.clone(), tag.manifest.clone())).or_default().push(format!("{}:{}", repository.name, tag.tag));
        }
    }
    let mut out = Vec::new();
    for ((_, digest), tags) in images {
        let (layers, scans, missing) = pack_layers(&blobs, &digest, arch)?;
        let mut found = packages::of_image(&scans.iter().collect::<Vec<_>>());
        if missing > 0 {
            found.not_read.push(format!("{missing} layer(s) not in this pack (a delta leaves out what its base carries)"));
        }
        out.push(ImageFacts { member: member.to_string(), digest, tags, layers, found });
    }
    Ok(out)
}

/// The layers of the manifest `digest` (for an index, of its `arch` manifest): their
/// digests, the scans of those the pack holds, and how many it does not.
fn pack_layers(blobs: &Blobs, digest: &str, arch: &str) -> Result<(Vec<String>, Vec<LayerScan>, usize)> {
    let hex = |d: &str| d.strip_prefix("sha256:").unwrap_or(d).to_string();
    let read = |d: &str| blobs.json(&hex(d)).and_then(|bytes| serde_json::from_slice::<Manifest>(&bytes).ok());
    let Some(mut manifest) = read(digest) else { return Ok((Vec::new(), Vec::new(), 0)) };
    if !manifest.manifests.is_empty() {
        let chosen = manifest.manifests.iter().find(|m| m.platform.as_ref().is_some_and(|p| p.architecture == arch));
        let Some(one) = chosen.or(manifest.manifests.first()).and_then(|m| read(&m.digest)) else {
            return Ok((Vec::new(), Vec::new(), 0));
        };
        manifest = one;
    }
    let (mut scans, mut missing) = (Vec::new(), 0);
    for layer in &manifest.layers {
        match blobs.layer(&hex(&layer.digest))? {
            Some(scan) => scans.push(scan),
            // Counted as empty, so the others keep their places.
            None => {
                scans.push(LayerScan::default());
                missing += 1
            }
        }
    }
    Ok((manifest.layers.into_iter().map(|l| l.digest).collect(), scans, missing))
}
