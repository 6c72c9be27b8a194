//! The one reader of image archives, for both sides: the builder's inspection of an
//! image member and the runtime's `push-images` read an archive with it, so a member
//! that builds is one that pushes. It reads what `docker save` writes: the
//! docker-archive layout (`manifest.json`, configs, layer tarballs) and the OCI image
//! layout (`index.json`, `blobs/sha256/...`), which Docker 25 and later write with a
//! `manifest.json` beside it; a multi-platform OCI image is cut down to one platform.
//!
//! One pass over the tar stream: the JSON files (configs, manifests, indexes: a file of
//! at most `MAX_JSON` that starts like JSON) are kept, within `MAX_KEPT` in all so that
//! a hostile archive cannot exhaust memory; every other file is digested when asked for
//! (`push-images` sends layers by digest) or skipped. The layout is read from the kept
//! files at the end, since `manifest.json` may come last.

mod docker;
mod oci;

use std::collections::{HashMap, HashSet};
use std::io::Read;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::records::ImageRecord;
use crate::rules;

/// A JSON file of an archive (a config, a manifest, an index) is never larger.
pub const MAX_JSON: u64 = 4 << 20;
/// All of an archive's JSON files together are never larger.
pub const MAX_KEPT: u64 = 64 << 20;

pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// What the reader is asked for.
pub struct ReadOptions<'a> {
    /// The bundle's arch: every image must be for linux/`arch`, and a multi-platform
    /// image gives that platform.
    pub arch: &'a str,
    /// Digest every layer (`push-images` needs digests; inspection does not).
    pub digest_layers: bool,
}

/// An image archive as both sides need it.
pub struct ImageArchive {
    pub images: Vec<ArchiveImage>,
    /// For a multi-platform OCI archive: the part of it that is the bundle's platform,
    /// which is what a bundle carries instead of the whole file.
    pub subset: Option<ImageSubset>,
}

pub struct ArchiveImage {
    /// The image ID: its config's digest.
    pub id: String,
    pub tags: Vec<String>,
    pub config: Vec<u8>,
    pub layers: Vec<Layer>,
}

/// A layer: where it is in the archive, and (when digested) what it is.
#[derive(Clone, Debug)]
pub struct Layer {
    pub path: String,
    pub size: u64,
    /// `sha256:...` of its bytes, with `digest_layers`.
    pub digest: Option<String>,
    /// Tar, gzip or zstd, from its first bytes, with `digest_layers`.
    pub media_type: Option<&'static str>,
}

/// One platform of a multi-platform OCI archive: its entries, and an `index.json` that
/// names that platform's manifests only, so every engine loads that one.
pub struct ImageSubset {
    pub index_json: Vec<u8>,
    /// The archive's entries to keep besides `index.json`: `oci-layout` and the blobs the
    /// chosen manifests reach.
    pub keep: HashSet<String>,
}

impl ImageArchive {
    /// The images as the bundle's index records them.
    pub fn records(&self) -> Vec<ImageRecord> {
        self.images.iter().map(|i| ImageRecord { id: i.id.clone(), tags: i.tags.clone() }).collect()
    }
}

/// What one pass over the tar stream keeps.
struct Pass {
    /// Path → bytes of every JSON-looking file.
    json: HashMap<String, Vec<u8>>,
    /// Path → (size, digest, media type) of every other file.
    files: HashMap<String, (u64, Option<String>, Option<&'static str>)>,
}

/// Reads an image archive. `refuse` words what is wrong with it ("has no manifest.json
/// or index.json at its top") as the caller's error, naming the member and the file.
pub fn read(reader: impl Read, options: &ReadOptions, refuse: &dyn Fn(String) -> Error) -> Result<ImageArchive> {
    let pass = one_pass(reader, options, refuse)?;
    let images = if pass.json.contains_key("manifest.json") {
        ImageArchive { images: docker::images(&pass, options, refuse)?, subset: None }
    } else if pass.json.contains_key("index.json") {
        oci::images(&pass, options, refuse)?
    } else {
        return Err(refuse(
            "is not an image archive: it has no manifest.json or index.json at its top; make it with `docker save -o FILE IMAGE...`".into(),
        ));
    };
    checked_references(&images.images, refuse)?;
    Ok(images)
}

fn one_pass(reader: impl Read, options: &ReadOptions, refuse: &dyn Fn(String) -> Error) -> Result<Pass> {
    let mut pass = Pass { json: HashMap::new(), files: HashMap::new() };
    let mut kept = 0u64;
    let mut archive = tar::Archive::new(crate::tarsafe::BoundedHeaders::new(reader));
    let entries =
        archive.entries().map_err(|e| refuse(format!("is not a tar archive ({e}); an image member is what `docker save` writes")))?;
    for entry in entries {
        crate::error::check_cancel()?;
        let mut entry = entry.map_err(|e| refuse(format!("is not a readable tar archive ({e})")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(|e| refuse(e.to_string()))?.to_string_lossy().trim_start_matches("./").to_string();
        let size = entry.size();
        let mut head = [0u8; 1 << 12];
        let n = read_head(&mut entry, &mut head).map_err(|e| refuse(format!("is not a readable tar archive ({e})")))?;
        if size <= MAX_JSON && looks_like_json(&head[..n]) {
            kept += size;
            if kept > MAX_KEPT {
                return Err(refuse(format!(
                    "has more than {} MiB of JSON files (configs, manifests); it is not what `docker save` writes",
                    MAX_KEPT >> 20
                )));
            }
            let mut content = head[..n].to_vec();
            entry.read_to_end(&mut content).map_err(|e| refuse(format!("is not a readable tar archive ({e})")))?;
            pass.json.insert(path, content);
            continue;
        }
        let (digest, media_type) = match options.digest_layers {
            true => {
                let digest = digest_rest(&head[..n], &mut entry).map_err(|e| refuse(format!("is not a readable tar archive ({e})")))?;
                (Some(digest), Some(media_type_of(&head[..n])))
            }
            false => (None, None),
        };
        pass.files.insert(path, (size, digest, media_type));
    }
    Ok(pass)
}

/// Fills `head` as far as the entry goes (a short read is not its end).
fn read_head(entry: &mut impl Read, head: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < head.len() {
        match entry.read(&mut head[n..])? {
            0 => break,
            got => n += got,
        }
    }
    Ok(n)
}

fn looks_like_json(head: &[u8]) -> bool {
    matches!(head.iter().find(|b| !b.is_ascii_whitespace()), Some(b'{' | b'['))
}

fn digest_rest(head: &[u8], rest: &mut impl Read) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    hasher.update(head);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = rest.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}

fn media_type_of(head: &[u8]) -> &'static str {
    match head {
        [0x1f, 0x8b, ..] => LAYER_GZIP,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => LAYER_ZSTD,
        _ => LAYER_TAR,
    }
}

impl Pass {
    /// A layer the layout names, refused when the archive lacks it.
    fn layer(&self, path: &str, missing: &dyn Fn() -> Error) -> Result<Layer> {
        let path = path.trim_start_matches("./");
        match (self.files.get(path), self.json.get(path)) {
            (Some((size, digest, media_type)), _) => {
                Ok(Layer { path: path.to_string(), size: *size, digest: digest.clone(), media_type: *media_type })
            }
            // A layer whose first bytes look like JSON (possible, if odd): kept in memory.
            (None, Some(bytes)) => Ok(Layer {
                path: path.to_string(),
                size: bytes.len() as u64,
                digest: Some(format!("sha256:{}", hex::encode(Sha256::digest(bytes)))),
                media_type: Some(media_type_of(bytes)),
            }),
            (None, None) => Err(missing()),
        }
    }
}

/// What an image config says it runs on.
#[derive(Deserialize)]
struct ImageConfig {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

/// Refuses an image whose config is for another platform than linux/`arch`.
fn check_config_arch(config: &[u8], image: &str, arch: &str, refuse: &dyn Fn(String) -> Error) -> Result<()> {
    let config: ImageConfig =
        serde_json::from_slice(config).map_err(|e| refuse(format!("has an image config for {image} that is not JSON ({e})")))?;
    let written = if config.architecture.is_empty() { "no architecture" } else { config.architecture.as_str() };
    if crate::arch::canonical(&config.architecture) != Some(arch) || !matches!(config.os.as_str(), "linux" | "") {
        return Err(refuse(format!(
            "holds the image {image}, whose config says {}/{written}; this bundle is for linux/{arch}: save the image for that platform \
             (docker pull --platform linux/{arch} ..., then docker save) or build the bundle for the image's arch (--arch)",
            if config.os.is_empty() { "linux" } else { &config.os }
        )));
    }
    Ok(())
}

/// Every tag must be a reference of the Docker grammar, and every ID a SHA-256: they
/// reach the engine's command line and API at install time.
fn checked_references(images: &[ArchiveImage], refuse: &dyn Fn(String) -> Error) -> Result<()> {
    for image in images {
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
    Ok(())
}

/// How a message names an image: its first tag, else its ID.
fn image_name(tags: &[String], id: &str) -> String {
    tags.first().cloned().unwrap_or_else(|| id.to_string())
}

fn bad_json(file: &str, e: serde_json::Error, refuse: &dyn Fn(String) -> Error) -> Error {
    refuse(format!("has a {file} that is not what docker writes ({e})"))
}

#[cfg(test)]
mod tests;
